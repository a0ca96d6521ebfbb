/*
 * blosc: c-blosc 1.x frames, as numcodecs writes them. Only the thread-safe _ctx calls are used
 * (the global-state calls share one lock and honour BLOSC_* environment variables).
 *
 * Threads inside a chunk: decompression takes the codec's `threads` (the engine lends a lone chunk
 * its idle workers), since c-blosc's threads decode their blocks straight into the output.
 * Compression takes them too, but the engine never asks for it: c-blosc 1.x's threaded compressor
 * compresses each block aside and memcpy()s it into place (a payload copy no ledger would see), in
 * the order the threads finish (so the same array would not give the same bytes twice). The engine
 * compresses a chunk's blocks on its own threads instead (src/engine/write_blocks.c), each block's
 * bytes in their place; the codec alone on threads is tally bench's limit for it.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <blosc.h>

#include "codec/blosc.h"
#include "codec/ops.h"
#include "tally/error.h"

/* blosc_compress_ctx takes size_t sizes but keeps them in int32_t inside. */
#define BLOSC_MAX_CAP ((size_t)BLOSC_MAX_BUFFERSIZE + BLOSC_MAX_OVERHEAD)

#define CNAMES "lz4, lz4hc, blosclz, zstd, zlib, snappy"

/* c-blosc starts (and joins) its threads inside each _ctx call; more than it has blocks is no use. */
static int internal_threads(int threads)
{
    return threads < 1 ? 1 : threads > 64 ? 64 : threads;
}

/* c-blosc 1.x's temporaries: two blocks a call (three a thread when it runs on threads); its
 * automatic block is at most 32 KiB x 16 (clevel 9) x 2 (the high-ratio codecs). */
static size_t workspace(const struct tly_codec *c, size_t n, bool decode, bool windowed)
{
    (void)windowed;
    (void)decode; /* threads take three blocks each either way */
    size_t block = c->blosc.blocksize ? c->blosc.blocksize : (size_t)1 << 20;
    if (block > n)
        block = n;
    int threads = c->threads > 1 ? internal_threads(c->threads) : 0;
    return (threads ? (size_t)threads * 3 * block : 2 * block) + 4096;
}

static int threads(const struct tly_codec *c, size_t n, bool decode)
{
    (void)n;
    (void)decode;
    return internal_threads(c->threads);
}

static size_t bound(const struct tly_codec *c, size_t n)
{
    (void)c;
    return n > SIZE_MAX - BLOSC_MAX_OVERHEAD ? SIZE_MAX : n + BLOSC_MAX_OVERHEAD;
}

static int check_cname(const char *cname, size_t cap)
{
    if (memchr(cname, '\0', cap) == NULL)
        return tly_fail(TLY_EUSAGE, "blosc: cname is not a terminated string");
    if (blosc_compname_to_compcode(cname) < 0)
        return tly_fail(TLY_EUSAGE, "blosc: cname '%s' is unknown or not in this c-blosc build (" CNAMES ")", cname);
    return 0;
}

int tly__blosc_check(const struct tly_codec *c)
{
    int rc = check_cname(c->blosc.cname, sizeof c->blosc.cname);
    if (rc)
        return rc;
    if (c->blosc.clevel < 0 || c->blosc.clevel > 9)
        return tly_fail(TLY_EUSAGE, "blosc: clevel %d is not 0..9", c->blosc.clevel);
    if (c->blosc.shuffle < TLY_NOSHUFFLE || c->blosc.shuffle > TLY_BITSHUFFLE)
        return tly_fail(TLY_EUSAGE, "blosc: shuffle %d is not 0 (none), 1 (byte) or 2 (bit)", c->blosc.shuffle);
    if (c->blosc.blocksize > BLOSC_MAX_BUFFERSIZE)
        return tly_fail(TLY_EUSAGE, "blosc: blocksize %zu is over c-blosc's limit of %d", c->blosc.blocksize,
                        BLOSC_MAX_BUFFERSIZE);
    /* c-blosc records typesizes over 255 as 1 (as numcodecs does); 0 or less is a caller's bug. */
    if (c->blosc.typesize < 1)
        return tly_fail(TLY_EUSAGE, "blosc: typesize %d is not positive", c->blosc.typesize);
    return 0;
}

static int set_shuffle(struct tly_codec *c, const char *val)
{
    /* The Zarr v3 names, beside numcodecs' numbers. */
    static const char *const names[] = {"noshuffle", "shuffle", "bitshuffle"};
    for (int i = 0; i < 3; i++) {
        if (strcmp(val, names[i]) == 0) {
            c->blosc.shuffle = i;
            return 0;
        }
    }
    long long v;
    int rc = tly__codec_int("blosc", "shuffle", val, TLY_NOSHUFFLE, TLY_BITSHUFFLE, &v);
    if (rc == 0)
        c->blosc.shuffle = (int)v;
    return rc;
}

static int set(struct tly_codec *c, const char *key, const char *val)
{
    long long v;
    int rc;
    if (strcmp(key, "cname") == 0) {
        if (strlen(val) >= sizeof c->blosc.cname || blosc_compname_to_compcode(val) < 0)
            return tly_fail(TLY_EUSAGE, "blosc: cname '%s' is unknown or not in this c-blosc build (" CNAMES ")", val);
        snprintf(c->blosc.cname, sizeof c->blosc.cname, "%s", val);
        return 0;
    }
    if (strcmp(key, "clevel") == 0) {
        if ((rc = tly__codec_int("blosc", key, val, 0, 9, &v)) == 0)
            c->blosc.clevel = (int)v;
        return rc;
    }
    if (strcmp(key, "shuffle") == 0)
        return set_shuffle(c, val);
    if (strcmp(key, "blocksize") == 0) {
        if ((rc = tly__codec_int("blosc", key, val, 0, BLOSC_MAX_BUFFERSIZE, &v)) == 0)
            c->blosc.blocksize = (size_t)v;
        return rc;
    }
    return tly_fail(TLY_EUSAGE, "blosc: unknown option '%s' (cname, clevel, shuffle, blocksize)", key);
}

static int encode(const struct tly_codec *c, void *dst, size_t cap, const void *src, size_t n, size_t *out_n)
{
    int rc = tly__blosc_check(c);
    if (rc)
        return rc;
    if (n > BLOSC_MAX_BUFFERSIZE)
        return tly_fail(TLY_ECODEC, "blosc: a %zu-byte chunk is over c-blosc 1.x's limit of %d bytes", n,
                        BLOSC_MAX_BUFFERSIZE);
    size_t destsize = cap < BLOSC_MAX_CAP ? cap : BLOSC_MAX_CAP;
    int r = blosc_compress_ctx(c->blosc.clevel, c->blosc.shuffle, (size_t)c->blosc.typesize, n, src, dst, destsize,
                               c->blosc.cname, c->blosc.blocksize, internal_threads(c->threads));
    if (r < 0)
        return tly_fail(TLY_ECODEC, "blosc: compression with %s failed (%d)", c->blosc.cname, r);
    if (r == 0) /* c-blosc's answer when the frame does not fit */
        return tly_fail(TLY_ECODEC, "blosc: a %zu-byte chunk does not fit in %zu bytes (bound %zu)", n, cap,
                        bound(c, n));
    *out_n = (size_t)r;
    return 0;
}

/*
 * Check everything c-blosc 1.x's decompressor trusts before it reads the frame: the header's cbytes
 * is the chunk's size (blosc_cbuffer_validate), and the rest of the frame is large enough for what
 * the header promises (a memcpy'ed frame holds nbytes after the header; a compressed one holds one
 * 4-byte offset per block), so a corrupt header cannot send it past the end of the chunk.
 */
static int header(const void *src, size_t n, size_t *out_nbytes)
{
    if (n < BLOSC_MIN_HEADER_LENGTH)
        return tly_fail(TLY_ECODEC, "blosc: chunk of %zu bytes is shorter than a blosc header (%d)", n,
                        BLOSC_MIN_HEADER_LENGTH);
    int version, versionlz;
    blosc_cbuffer_versions(src, &version, &versionlz);
    size_t nbytes, cbytes, blocksize;
    blosc_cbuffer_sizes(src, &nbytes, &cbytes, &blocksize);
    if (version == 0 || version > BLOSC_VERSION_FORMAT)
        return tly_fail(TLY_ECODEC, "blosc: header corrupt (format version %d; this c-blosc reads 1..%d)", version,
                        BLOSC_VERSION_FORMAT);
    if (blosc_cbuffer_validate(src, n, &nbytes) < 0)
        return tly_fail(TLY_ECODEC, "blosc: header corrupt (records %zu compressed bytes, chunk has %zu)", cbytes, n);
    size_t typesize;
    int flags;
    blosc_cbuffer_metainfo(src, &typesize, &flags);
    if (typesize == 0)
        return tly_fail(TLY_ECODEC, "blosc: header corrupt (typesize 0)");
    if (flags & BLOSC_MEMCPYED) {
        if (n - BLOSC_MIN_HEADER_LENGTH != nbytes)
            return tly_fail(TLY_ECODEC, "blosc: header corrupt (uncompressed frame of %zu bytes records %zu)", n,
                            nbytes);
    } else if (nbytes > 0) {
        if (blocksize == 0)
            return tly_fail(TLY_ECODEC, "blosc: header corrupt (blocksize 0)");
        size_t nblocks = nbytes / blocksize + (nbytes % blocksize != 0);
        if (nblocks > (n - BLOSC_MIN_HEADER_LENGTH) / sizeof(int32_t))
            return tly_fail(TLY_ECODEC, "blosc: header corrupt (%zu blocks do not fit in %zu bytes)", nblocks, n);
    }
    *out_nbytes = nbytes;
    return 0;
}

static int decode(const struct tly_codec *c, void *dst, size_t dst_n, const void *src, size_t n)
{
    size_t nbytes = 0;
    int rc = header(src, n, &nbytes);
    if (rc)
        return rc;
    if (nbytes != dst_n)
        return tly_fail(TLY_ECODEC, "blosc: chunk holds %zu bytes, expected %zu", nbytes, dst_n);
    /* blosc_decompress_ctx returns 0 for an error too, so an empty chunk is not handed to it. */
    if (nbytes == 0)
        return 0;
    int r = blosc_decompress_ctx(src, dst, dst_n, internal_threads(c->threads));
    if (r < 0 || (size_t)r != dst_n)
        return tly_fail(TLY_ECODEC, "blosc: decompression failed (%d): data corrupt", r);
    return 0;
}

static int decoded_size(const struct tly_codec *c, const void *src, size_t n, uint64_t *out)
{
    (void)c;
    size_t nbytes = 0;
    int rc = header(src, n, &nbytes);
    if (rc == 0)
        *out = nbytes;
    return rc;
}

const struct tly__codec_ops tly__codec_blosc = {
    .name = "blosc",
    .id = TLY_CODEC_BLOSC,
    .set = set,
    .bound = bound,
    .workspace = workspace,
    .encode = encode,
    .decode = decode,
    .decoded_size = decoded_size,
    .threads = threads,
    .blocks = &tly__blosc_blocks,
};
