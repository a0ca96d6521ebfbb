/* A chunk's runs in the region's buffer: the fill value written there (missing chunks, edge padding), or its bytes
 * copied. */
#include <string.h>

#include "engine/internal.h"
#include "tally/mem.h"

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

void tly__copy_runs(const struct tly_runs *rs, char *chunk, char *buf, bool to_buf)
{
    struct tly_runs_iter it;
    uint64_t co, bo;
    tly_runs_iter_init(&it, rs);
    while (tly_runs_next(&it, &co, &bo))
        if (to_buf)
            tly_copy(buf + bo, chunk + co, rs->run_bytes);
        else
            tly_copy(chunk + co, buf + bo, rs->run_bytes);
}
