/* The fill value: written where there is no data (missing chunks, edge padding). */
#include <string.h>

#include "engine/internal.h"

void tly__fill(const struct tly_array *a, void *dst, size_t n)
{
    if (!a->meta.has_fill || a->fill_pattern == NULL) {
        memset(dst, 0, n);
        return;
    }
    char *p = dst;
    while (n > 0) {
        size_t k = n < TLY__FILL_PATTERN_BYTES ? n : TLY__FILL_PATTERN_BYTES;
        memcpy(p, a->fill_pattern, k); /* the fill value, not payload: no ledger entry */
        p += k;
        n -= k;
    }
}

void tly__fill_runs(const struct tly_array *a, const struct tly_runs *rs, void *buf)
{
    struct tly_runs_iter it;
    uint64_t co, bo;
    tly_runs_iter_init(&it, rs);
    while (tly_runs_next(&it, &co, &bo))
        tly__fill(a, (char *)buf + bo, rs->run_bytes);
}
