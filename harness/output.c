/*
 * Output buffers for reads: large ones ask for transparent huge pages over their 2 MiB-aligned
 * part, as numpy does for its arrays (zarr-python, the peer, gets them, so the comparison is fair
 * only if we do too). Faulting in a GiB costs ~0.35 s in 4 KiB pages and ~0.07 s in 2 MiB pages
 * here when huge pages are at hand; when they are not, the kernel compacts memory in the fault (THP
 * defrag "madvise"), so the cost varies from run to run. The engine's own buffers stay on 4 KiB
 * pages for that reason (see tly_pool_alloc).
 */
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "harness.h"

#define HUGE_PAGE ((size_t)2 << 20)

void *tly_h_alloc_output(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p && n >= 2 * HUGE_PAGE) {
        uintptr_t a = ((uintptr_t)p + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1);
        uintptr_t b = ((uintptr_t)p + n) & ~(uintptr_t)(HUGE_PAGE - 1);
        if (b > a)
            (void)madvise((void *)a, b - a, MADV_HUGEPAGE); /* advice: EINVAL without THP is fine */
    }
    return p;
}
