/* Output buffers for reads: large ones ask for transparent huge pages, as numpy does for its arrays
 * (zarr-python, the peer, gets them, so the comparison is fair only if we do too). */
#include <stdlib.h>

#include "harness.h"
#include "tally/pool.h"

void *tly_h_alloc_output(size_t n)
{
    void *p = malloc(n ? n : 1);
    tly_huge_pages(p, n);
    return p;
}
