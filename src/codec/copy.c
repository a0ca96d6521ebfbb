/* copy: a test codec, the identity, that shows what adding a codec takes (this file and its line in
 * registry.c) and drives the engine's whole-chunk paths. Its chunks are stored as they are, but the
 * engine does not know that: it encodes and decodes them like any codec that neither streams nor has
 * blocks, and each copy goes through the ledger. It has no Zarr metadata of its own. */
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
        return tly_fail(TLY_EUSAGE, "copy: output buffer of %zu bytes is smaller than the %zu-byte chunk", cap, n);
    if (n > 0)
        tly_copy(dst, src, n);
    *out_n = n;
    return 0;
}

static int decode(const struct tly_codec *c, void *dst, size_t dst_n, const void *src, size_t n)
{
    (void)c;
    if (n != dst_n)
        return tly_fail(TLY_ECODEC, "copy: chunk is %zu bytes, expected %zu", n, dst_n);
    if (n > 0)
        tly_copy(dst, src, n);
    return 0;
}

const struct tly__codec_ops tly__codec_copy = {
    .name = "copy",
    .id = (enum tly_codec_id)100, /* any id no other codec has */
    .bound = bound,
    .encode = encode,
    .decode = decode,
};
