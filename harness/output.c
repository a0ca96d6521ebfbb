/* Output buffers for reads: large ones ask for transparent huge pages, as numpy does for its arrays. */
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "harness.h"

#define HUGE_PAGE ((size_t)2 << 20)

void *tly_h_alloc_output(size_t n)
{
    void *p = malloc(n ? n : 1);
    /* Faulting in a GiB of 4 KiB pages costs ~0.35 s here, 0.07 s with 2 MiB pages; numpy (and so
     * zarr-python, the peer) madvises its large arrays, so the comparison is fair only if we do. */
    if (p && n >= 2 * HUGE_PAGE) {
        uintptr_t a = ((uintptr_t)p + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1);
        uintptr_t b = ((uintptr_t)p + n) & ~(uintptr_t)(HUGE_PAGE - 1);
        if (b > a)
            madvise((void *)a, b - a, MADV_HUGEPAGE);
    }
    return p;
}
