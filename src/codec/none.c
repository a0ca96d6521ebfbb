/* none: chunks stored as they are. The engine bypasses it on its zero-copy paths (its table says raw);
 * when it is called, its copy is a payload copy and goes through the ledger. */
#include "codec/ops.h"
#include "tally/error.h"
#include "tally/mem.h"

static size_t bound(const struct tly_codec *c, size_t n)
{
    (void)c;
    return n;
}

static int encode(const struct tly_codec *c, void *dst, size_t cap, const void *src, size_t n, size_t *out_n)
{
    (void)c;
    if (cap < n)
        return tly_fail(TLY_EUSAGE, "none: output buffer of %zu bytes is smaller than the %zu-byte chunk", cap, n);
    if (n > 0) /* memcpy's pointers must be valid even for 0 bytes, and the caller's may be NULL */
        tly_copy(dst, src, n);
    *out_n = n;
    return 0;
}

static int decode(const struct tly_codec *c, void *dst, size_t dst_n, const void *src, size_t n)
{
    (void)c;
    if (n != dst_n)
        return tly_fail(TLY_ECODEC, "none: chunk is %zu bytes, expected %zu", n, dst_n);
    if (n > 0)
        tly_copy(dst, src, n);
    return 0;
}

static int decoded_size(const struct tly_codec *c, const void *src, size_t n, uint64_t *out)
{
    (void)c, (void)src, (void)n, (void)out;
    return tly_fail(TLY_EUNSUPPORTED, "none: an unencoded chunk records no decoded size");
}

const struct tly__codec_ops tly__codec_none = {
    .name = "none",
    .id = TLY_CODEC_NONE,
    .raw = true,
    .bound = bound,
    .encode = encode,
    .decode = decode,
    .decoded_size = decoded_size,
};
