/*
 * zstd: one frame per chunk that always records its content size (numcodecs 0.11 cannot read a
 * frame without it), compressed in one call or streamed (one run read in place, or a chunk's runs
 * gathered by libzstd: zstd_stream.c) into the caller's output blocks. A context per call:
 * it is small next to a chunk, and a cached one would sit in the encode stage's live bytes
 * between chunks.
 *
 * Threads inside a chunk: compression takes the codec's `threads` (the engine lends a lone chunk
 * its idle workers) as libzstd's own workers (ZSTD_c_nbWorkers), in jobs of job() bytes.
 * Measured on a 2-CPU machine, the engine writing one 1 GiB chunk of the cells' float32 data at
 * level 1 to a local file (tally bench-cell, 2 threads): 2 workers in 512 KiB jobs (libzstd's
 * least) 0.83-1.00 GB/s with 6-7 MiB peak extra, no faster than one thread; 2 workers in 1 MiB
 * jobs 1.19 (11 MiB); 3 workers in 1 MiB jobs 0.94-1.06 (15 MiB); 2 workers in 2 MiB jobs 0.97
 * (27 MiB). The codec alone, with no file to write, goes faster with half as many workers again
 * (3 in 1 MiB jobs 1.45 GB/s, 2 in 1 MiB jobs 1.17), which is why the bench's codec limit for a lone
 * chunk uses them (harness/bench/codec.c); the engine's writes need that CPU. Buffers: per worker a
 * context and a job's output, and the round buffer (workspace() counts them): 1 MiB jobs cost 4-5
 * MiB more than 512 KiB ones, 0.13 of a 100 MB chunk's bytes at its peak against 0.08, so a chunk
 * takes them only from BIG_JOB_MIN bytes on (where those 4-5 MiB are under 2% of it). The output
 * is still one standard frame with its content size, the same bytes for any number of workers
 * from one on. libzstd's workers read their jobs from a round buffer it copies the input into, and
 * their jobs' output is copied out into the caller's (zstdmt_compress.c's memcpy into inBuff and
 * ZSTDMT_flushProduced): bounded buffers (workspace() counts them), and the copy ledger counts both
 * copies' bytes with tly_copy_note(), in the encode stage. So a lone chunk's zstd write trades
 * a copy of its bytes and of its frame for its threads.
 *
 * Streaming lives beside it: encoding in zstd_stream.c, decoding in zstd_dstream.c (their own
 * comments say how each copies nothing the ledger does not count).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/ops.h"
#include "codec/stream.h"
#include "codec/zstd.h"
#include "tally/error.h"
#include "tally/mem.h"

static size_t bound(const struct tly_codec *c, size_t n)
{
    (void)c;
    size_t b = ZSTD_compressBound(n);
    return ZSTD_isError(b) ? SIZE_MAX : b;
}

#define WINDOW_MAX ((size_t)8 << 20)    /* level 19's window; levels 20-22 (--ultra) go beyond */
#define JOB ((size_t)512 << 10)         /* a job of libzstd's workers: its least */
#define BIG_JOB_MIN ((size_t)256 << 20) /* a chunk this large takes jobs of 2 x JOB (the header comment) */

/* The bytes of a job of libzstd's workers for a chunk of @p n bytes. */
static size_t job(size_t n)
{
    return n >= BIG_JOB_MIN ? 2 * JOB : JOB;
}

/* libzstd's workers for @p threads threads on @p n bytes: none for one thread, a chunk of no more
 * than one job, or a libzstd built without them. */
int tly__zstd_workers(int threads, size_t n)
{
    if (threads <= 1 || n <= JOB)
        return 0;
    ZSTD_bounds b = ZSTD_cParam_getBounds(ZSTD_c_nbWorkers);
    if (ZSTD_isError(b.error) || b.upperBound < 1)
        return 0;
    return threads < b.upperBound ? threads : b.upperBound;
}

static int threads(const struct tly_codec *c, size_t n, bool decode)
{
    return decode ? 1 : tly__zstd_workers(c->threads, n);
}

static size_t workspace(const struct tly_codec *c, size_t n, bool decode, bool windowed)
{
    int nw = decode ? 0 : tly__zstd_workers(c->threads, n);
    if (!decode && nw) { /* per worker a context and a job's output; the round buffer of input */
        ZSTD_compressionParameters cp = ZSTD_getCParams(c->zstd.level, n, 0);
        size_t window = (size_t)1 << cp.windowLog; /* the round buffer: the window or the jobs, and 3 more */
        size_t j = job(n), round = (j * (size_t)nw > window ? j * (size_t)nw : window) + 3 * j;
        return (size_t)nw * (ZSTD_estimateCCtxSize_usingCParams(cp) + ZSTD_compressBound(j)) + round;
    }
    if (!decode && windowed) /* runs gathered into its window buffer (stream_runs) */
        return ZSTD_estimateCStreamSize_usingCParams(ZSTD_getCParams(c->zstd.level, n, 0));
    if (!decode) /* one run read in place: the context and its output buffer */
        return ZSTD_estimateCCtxSize_usingCParams(ZSTD_getCParams(c->zstd.level, n, 0)) + ZSTD_CStreamOutSize();
    /* and a block's bytes stitched when they arrive split (walk_feed) */
    if (!windowed)
        return ZSTD_estimateDCtxSize() + ZSTD_BLOCKSIZE_MAX + ZSTD_BLOCKSIZE_MAX; /* and its input buffer */
    return ZSTD_estimateDStreamSize(n < WINDOW_MAX ? n : WINDOW_MAX) + ZSTD_BLOCKSIZE_MAX;
}

static int check(const struct tly_codec *c)
{
    if (c->zstd.level < ZSTD_minCLevel() || c->zstd.level > ZSTD_maxCLevel())
        return tly_fail(TLY_EUSAGE, "zstd: level %d is not %d..%d", c->zstd.level, ZSTD_minCLevel(), ZSTD_maxCLevel());
    if (c->zstd.checksum != 0 && c->zstd.checksum != 1)
        return tly_fail(TLY_EUSAGE, "zstd: checksum %d is not 0 or 1", c->zstd.checksum);
    return 0;
}

static int set(struct tly_codec *c, const char *key, const char *val)
{
    long long v;
    int rc;
    if (strcmp(key, "level") == 0) {
        if ((rc = tly__codec_int("zstd", key, val, ZSTD_minCLevel(), ZSTD_maxCLevel(), &v)) == 0)
            c->zstd.level = (int)v;
        return rc;
    }
    if (strcmp(key, "checksum") == 0) {
        if ((rc = tly__codec_int("zstd", key, val, 0, 1, &v)) == 0)
            c->zstd.checksum = (int)v;
        return rc;
    }
    return tly_fail(TLY_EUSAGE, "zstd: unknown option '%s' (level, checksum)", key);
}

int tly__zstd_err(const char *what, size_t r)
{
    return tly_fail(TLY_ECODEC, "zstd: %s: %s", what, ZSTD_getErrorName(r));
}

/* A compression context with @p c's settings, for @p n bytes. */
int tly__zstd_cctx(const struct tly_codec *c, size_t n, ZSTD_CCtx **out)
{
    int rc = check(c);
    if (rc)
        return rc;
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    if (cctx == NULL)
        return tly_fail(-ENOMEM, "zstd: cannot allocate a compression context");
    size_t r;
    /* The content size flag is zstd's default; set anyway, since numcodecs depends on it. */
    if (ZSTD_isError(r = ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, c->zstd.level)) ||
        ZSTD_isError(r = ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, c->zstd.checksum)) ||
        ZSTD_isError(r = ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1)) ||
        (tly__zstd_workers(c->threads, n) &&
         (ZSTD_isError(r = ZSTD_CCtx_setParameter(cctx, ZSTD_c_nbWorkers, tly__zstd_workers(c->threads, n))) ||
          ZSTD_isError(r = ZSTD_CCtx_setParameter(cctx, ZSTD_c_jobSize, (int)job(n)))))) {
        ZSTD_freeCCtx(cctx);
        return tly__zstd_err("setting parameters", r);
    }
    *out = cctx;
    return 0;
}

static int encode(const struct tly_codec *c, void *dst, size_t cap, const void *src, size_t n, size_t *out_n)
{
    ZSTD_CCtx *cctx;
    int rc = tly__zstd_cctx(c, n, &cctx);
    if (rc)
        return rc;
    size_t r = ZSTD_compress2(cctx, dst, cap, src, n);
    ZSTD_freeCCtx(cctx);
    if (ZSTD_isError(r))
        return tly__zstd_err("compression failed", r);
    if (tly__zstd_workers(c->threads, n))
        tly_copy_note(n + r); /* libzstd's workers' round buffer and their jobs' output (the header comment) */
    *out_n = r;
    return 0;
}

/*
 * The frame's header read (zstd's own reason when it is no frame: bad magic, a window too large),
 * into @p out. 1 when @p n bytes are too few to hold it, 0 when read, or the error.
 */
int tly__zstd_frame_header(const void *src, size_t n, ZSTD_frameHeader *out)
{
    size_t r = ZSTD_getFrameHeader(out, src, n);
    if (ZSTD_isError(r))
        return tly__zstd_err("frame header", r);
    if (r > 0)
        return 1;
    if (out->frameType == ZSTD_skippableFrame)
        return tly_fail(TLY_ECODEC, "zstd: a skippable frame where a frame of data was expected");
    return 0;
}

/* The frame's content size, or the error for a frame that is no frame or does not record it. */
static int content_size(const void *src, size_t n, uint64_t *out)
{
    ZSTD_frameHeader h;
    int rc = tly__zstd_frame_header(src, n, &h);
    if (rc == 1)
        return tly_fail(TLY_ECODEC, "zstd: frame header truncated (%zu bytes)", n);
    if (rc)
        return rc;
    if (h.frameContentSize == ZSTD_CONTENTSIZE_UNKNOWN)
        return tly_fail(TLY_EUNSUPPORTED, "zstd: frame does not record its content size");
    *out = h.frameContentSize;
    return 0;
}

static int decode(const struct tly_codec *c, void *dst, size_t dst_n, const void *src, size_t n)
{
    (void)c;
    uint64_t size = 0;
    int rc = content_size(src, n, &size);
    if (rc)
        return rc == TLY_EUNSUPPORTED ? TLY_ECODEC : rc; /* a chunk tally cannot check is refused */
    if (size != dst_n)
        return tly_fail(TLY_ECODEC, "zstd: frame content size %llu != expected %zu", (unsigned long long)size, dst_n);
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    if (dctx == NULL)
        return tly_fail(-ENOMEM, "zstd: cannot allocate a decompression context");
    size_t r = ZSTD_decompressDCtx(dctx, dst, dst_n, src, n);
    ZSTD_freeDCtx(dctx);
    if (ZSTD_isError(r))
        return tly__zstd_err("decompression failed", r);
    if (r != dst_n)
        return tly_fail(TLY_ECODEC, "zstd: frame decoded to %zu bytes, expected %zu", r, dst_n);
    return 0;
}

static int decoded_size(const struct tly_codec *c, const void *src, size_t n, uint64_t *out)
{
    (void)c;
    return content_size(src, n, out);
}

/* ---- the table ---- */

static size_t stream_block(bool decode)
{
    return decode ? ZSTD_DStreamOutSize() : ZSTD_CStreamOutSize();
}

static int ds_open(const struct tly_codec *c, void *dst, size_t dst_n, tly_sink_fn sink, void *arg, void *out,
                   size_t out_cap, struct tly_dstream **out_ds)
{
    struct tly_zstd_dstream *ds;
    int rc = tly_zstd_dstream_open(c, dst, dst_n, sink, arg, out, out_cap, &ds);
    if (rc == 0)
        *out_ds = (struct tly_dstream *)ds; /* its first member (zstd_dstream.c) */
    return rc;
}

static int ds_open_placed(const struct tly_codec *c, size_t dst_n, tly_place_fn place, void *arg, void *scratch,
                          size_t scratch_cap, struct tly_dstream **out_ds)
{
    struct tly_zstd_dstream *ds = NULL;
    int rc = tly_zstd_dstream_open_placed(c, dst_n, place, arg, scratch, scratch_cap, &ds);
    if (rc == 0)
        *out_ds = (struct tly_dstream *)ds; /* its first member (zstd_dstream.c) */
    return rc;
}

static int ds_feed(struct tly_dstream *ds, const void *in, size_t n)
{
    return tly_zstd_dstream_feed((struct tly_zstd_dstream *)ds, in, n);
}

static int ds_close(struct tly_dstream *ds)
{
    return tly_zstd_dstream_close((struct tly_zstd_dstream *)ds);
}

static void ds_abort(struct tly_dstream *ds)
{
    tly_zstd_dstream_abort((struct tly_zstd_dstream *)ds);
}

const struct tly__codec_ops tly__codec_zstd = {
    .name = "zstd",
    .id = TLY_CODEC_ZSTD,
    .set = set,
    .bound = bound,
    .workspace = workspace,
    .encode = encode,
    .decode = decode,
    .decoded_size = decoded_size,
    .threads = threads,
    .stream_block = stream_block,
    .encode_stream = tly_zstd_encode_stream,
    .dstream_open = ds_open,
    .dstream_open_placed = ds_open_placed,
    .dstream_feed = ds_feed,
    .dstream_close = ds_close,
    .dstream_abort = ds_abort,
};
