/* TLY_CODEC_NONE: chunks stored as they are. The engine bypasses it on its zero-copy paths; when it
 * is called, its copy is a payload copy and goes through the ledger. */
#include "codec/internal.h"
#include "tally/error.h"
#include "tally/mem.h"

size_t tly__none_bound(size_t n)
{
    return n;
}

int tly__none_encode(void *dst, size_t cap, const void *src, size_t n, size_t *out_n)
{
    if (cap < n)
        return tly_fail(TLY_EUSAGE, "none: output buffer of %zu bytes is smaller than the %zu-byte chunk", cap, n);
    if (n > 0) /* memcpy's pointers must be valid even for 0 bytes, and the caller's may be NULL */
        tly_copy(dst, src, n);
    *out_n = n;
    return 0;
}

int tly__none_decode(void *dst, size_t dst_n, const void *src, size_t n)
{
    if (n != dst_n)
        return tly_fail(TLY_ECODEC, "none: chunk is %zu bytes, expected %zu", n, dst_n);
    if (n > 0)
        tly_copy(dst, src, n);
    return 0;
}
