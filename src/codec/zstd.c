/*
 * zstd: one frame per chunk that always records its content size (numcodecs 0.11 cannot read a
 * frame without it), compressed in one call or streamed (one run read in place, or a chunk's runs
 * gathered by libzstd: the comment below) into the caller's output blocks. A context per call:
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
 * One thread streams without copies of its own: one contiguous run is read in place
 * (ZSTD_c_stableInBuffer) and each block compressed straight into the caller's output (room()).
 * libzstd's buffered streaming, which tally used before, copies every input byte into its window
 * buffer and most of the frame out of its output buffer: a 256 MiB array in 8 contiguous chunks at
 * level 1 had libzstd memcpy 2.9 times the array's bytes in buffered streaming, 1.01 now, the same
 * as a one-shot ZSTD_compress2 of the same bytes (numcodecs', measured by tally profile's memcpy
 * counter); the 1.01 are libzstd's own block work (literals of random floats, raw blocks), not a
 * copy of the chunk. Runs that are not one (a strided chunk's rows) have to be gathered: libzstd
 * copies them into its window buffer, and the ledger counts that copy in encode.
 *
 * Decoding: a frame decodes on one thread (the format has no independent pieces to split a decode
 * among). Straight into a contiguous destination (ZSTD_d_stableOutBuffer: no window of its own),
 * else (a strided chunk) libzstd decodes into its window and copies out: into the output's runs
 * themselves (tly_zstd_dstream_open_placed), the scatter's one copy, noted in the ledger, where a
 * sink would take a second. A compressed block decodes only with all its bytes there, so one that
 * arrives split between feeds is stitched whole first (walk_feed), a copy the ledger counts
 * (libzstd's own input buffer would make it unseen: measured 0.08 of the array for 1 MiB file
 * reads, nearly all the encoded bytes for an HTTP body's 16 KiB pieces). tests/engine/zstd_ledger.py
 * holds the ledger to the preload's memcpy counter, in both directions.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* For ZSTD_d_stableOutBuffer (experimental in 1.5, a plain parameter value; Debian ships it). */
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>

#include "codec/ops.h"
#include "codec/stream.h"
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
#define BLOCK_HEADER 3                  /* a block header's bytes (RFC 8878, 3.1.1.2) */
#define BIG_JOB_MIN ((size_t)256 << 20) /* a chunk this large takes jobs of 2 x JOB (the header comment) */

/* The bytes of a job of libzstd's workers for a chunk of @p n bytes. */
static size_t job(size_t n)
{
    return n >= BIG_JOB_MIN ? 2 * JOB : JOB;
}

/* libzstd's workers for @p threads threads on @p n bytes: none for one thread, a chunk of no more
 * than one job, or a libzstd built without them. */
static int workers(int threads, size_t n)
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
    return decode ? 1 : workers(c->threads, n);
}

static size_t workspace(const struct tly_codec *c, size_t n, bool decode, bool windowed)
{
    int nw = decode ? 0 : workers(c->threads, n);
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

static int zerr(const char *what, size_t r)
{
    return tly_fail(TLY_ECODEC, "zstd: %s: %s", what, ZSTD_getErrorName(r));
}

/* A compression context with @p c's settings, for @p n bytes. */
static int cctx_new(const struct tly_codec *c, size_t n, ZSTD_CCtx **out)
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
        (workers(c->threads, n) &&
         (ZSTD_isError(r = ZSTD_CCtx_setParameter(cctx, ZSTD_c_nbWorkers, workers(c->threads, n))) ||
          ZSTD_isError(r = ZSTD_CCtx_setParameter(cctx, ZSTD_c_jobSize, (int)job(n)))))) {
        ZSTD_freeCCtx(cctx);
        return zerr("setting parameters", r);
    }
    *out = cctx;
    return 0;
}

static int encode(const struct tly_codec *c, void *dst, size_t cap, const void *src, size_t n, size_t *out_n)
{
    ZSTD_CCtx *cctx;
    int rc = cctx_new(c, n, &cctx);
    if (rc)
        return rc;
    size_t r = ZSTD_compress2(cctx, dst, cap, src, n);
    ZSTD_freeCCtx(cctx);
    if (ZSTD_isError(r))
        return zerr("compression failed", r);
    if (workers(c->threads, n))
        tly_copy_note(n + r); /* libzstd's workers' round buffer and their jobs' output (the header comment) */
    *out_n = r;
    return 0;
}

/*
 * The frame's header read (zstd's own reason when it is no frame: bad magic, a window too large),
 * into @p out. 1 when @p n bytes are too few to hold it, 0 when read, or the error.
 */
static int frame_header(const void *src, size_t n, ZSTD_frameHeader *out)
{
    size_t r = ZSTD_getFrameHeader(out, src, n);
    if (ZSTD_isError(r))
        return zerr("frame header", r);
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
    int rc = frame_header(src, n, &h);
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
        return zerr("decompression failed", r);
    if (r != dst_n)
        return tly_fail(TLY_ECODEC, "zstd: frame decoded to %zu bytes, expected %zu", r, dst_n);
    return 0;
}

static int decoded_size(const struct tly_codec *c, const void *src, size_t n, uint64_t *out)
{
    (void)c;
    return content_size(src, n, out);
}

/* Streaming: the caller's output buffer, and where it goes when it fills. */
struct stream_out {
    ZSTD_outBuffer z;
    uint64_t out; /* bytes drained */
    tly_sink_fn sink;
    void *arg;
    enum tly_stage caller; /* the sink does the caller's work (a put), so it runs in the caller's stage */
};

static int drain(struct stream_out *o)
{
    if (o->z.pos == 0)
        return 0;
    int rc = 0;
    TLY_STAGE(o->caller)
    {
        rc = o->sink(o->arg, o->z.dst, o->z.pos);
    }
    o->out += o->z.pos;
    o->z.pos = 0;
    if (rc > 0)
        return tly_fail(TLY_EUSAGE, "zstd: stream sink returned %d, not 0 or a negative code", rc);
    return rc;
}

/* Feed @p in (all of it; with ZSTD_e_end, also flush the frame's end), draining @p o when it fills. */
static int pump(ZSTD_CCtx *cctx, struct stream_out *o, ZSTD_inBuffer *in, ZSTD_EndDirective mode)
{
    for (;;) {
        size_t left = ZSTD_compressStream2(cctx, &o->z, in, mode);
        if (ZSTD_isError(left))
            return zerr("stream compression failed", left);
        int done = mode == ZSTD_e_end ? left == 0 : in->pos == in->size;
        if (o->z.pos == o->z.size || (done && mode == ZSTD_e_end)) {
            int rc = drain(o);
            if (rc)
                return rc;
        }
        if (done)
            return 0;
    }
}

/*
 * Where libzstd compresses a block: straight into the caller's output when it has room for the
 * block's bound, else into its own output buffer, copied out as room comes (zstd_compress.c's
 * ZSTD_compressStream_generic). So every call is given at most a block of input, and a block
 * buffer (@p o smaller than the frame's bound) is drained before it has less room than a block's
 * bound: no block goes through libzstd's buffer. A buffer of the whole frame's bound never needs it.
 */
static int room(struct stream_out *o, size_t step, bool whole)
{
    if (whole || o->z.size - o->z.pos >= ZSTD_compressBound(step))
        return 0;
    return drain(o);
}

/*
 * One contiguous run: libzstd reads it in place (ZSTD_c_stableInBuffer: no copy into a window
 * buffer of its own, and no such buffer), its size grown a block per call, which the parameter
 * allows, so that each call compresses one block into the caller's output.
 */
static int stream_stable(ZSTD_CCtx *cctx, struct stream_out *o, const void *src, size_t n, size_t step, bool whole)
{
    size_t r = ZSTD_CCtx_setParameter(cctx, ZSTD_c_stableInBuffer, 1);
    if (ZSTD_isError(r))
        return zerr("reading the input in place", r);
    ZSTD_inBuffer in = {src, 0, 0};
    for (;;) {
        int rc = room(o, step, whole);
        if (rc)
            return rc;
        in.size += n - in.size < step ? n - in.size : step;
        ZSTD_EndDirective mode = in.size == n ? ZSTD_e_end : ZSTD_e_continue;
        size_t left = ZSTD_compressStream2(cctx, &o->z, &in, mode);
        if (ZSTD_isError(left))
            return zerr("stream compression failed", left);
        if (mode == ZSTD_e_end && left == 0)
            return drain(o);
        if (o->z.pos == o->z.size && (rc = drain(o)) != 0)
            return rc;
    }
}

/*
 * Runs that are not one: libzstd copies them into its window buffer (a gather, ZSTD_c_stableInBuffer
 * needs one run), given a block at most per call. The copy is noted in the ledger.
 */
static int stream_runs(ZSTD_CCtx *cctx, struct stream_out *o, const struct iovec *iov, int niov, size_t step,
                       bool whole)
{
    for (int i = 0; i < niov; i++) {
        for (size_t at = 0; at < iov[i].iov_len;) {
            int rc = room(o, step, whole);
            if (rc)
                return rc;
            size_t k = iov[i].iov_len - at < step ? iov[i].iov_len - at : step;
            ZSTD_inBuffer in = {(const char *)iov[i].iov_base + at, k, 0};
            if ((rc = pump(cctx, o, &in, ZSTD_e_continue)) != 0)
                return rc;
            at += k;
        }
    }
    int rc = room(o, step, whole);
    if (rc)
        return rc;
    ZSTD_inBuffer end = {NULL, 0, 0};
    return pump(cctx, o, &end, ZSTD_e_end);
}

/* libzstd's workers: they copy the runs into their round buffer, and their jobs' output out. */
static int stream_workers(ZSTD_CCtx *cctx, struct stream_out *o, const struct iovec *iov, int niov)
{
    for (int i = 0; i < niov; i++) {
        ZSTD_inBuffer in = {iov[i].iov_base, iov[i].iov_len, 0};
        int rc = pump(cctx, o, &in, ZSTD_e_continue);
        if (rc)
            return rc;
    }
    ZSTD_inBuffer end = {NULL, 0, 0};
    return pump(cctx, o, &end, ZSTD_e_end);
}

/* A block of libzstd's for a frame of @p n bytes at @p level: up to 128 KiB, at most its window. */
static size_t block_of(int level, size_t n)
{
    ZSTD_compressionParameters cp = ZSTD_getCParams(level, n, 0);
    size_t w = (size_t)1 << cp.windowLog;
    return w < ZSTD_BLOCKSIZE_MAX ? w : ZSTD_BLOCKSIZE_MAX;
}

static int stream(const struct tly_codec *c, ZSTD_CCtx *cctx, struct stream_out *o, const struct iovec *iov, int niov,
                  uint64_t total)
{
    size_t r = ZSTD_CCtx_setPledgedSrcSize(cctx, total);
    if (ZSTD_isError(r))
        return zerr("pledging the content size", r);
    if (workers(c->threads, (size_t)total)) {
        int rc = stream_workers(cctx, o, iov, niov);
        if (rc == 0) /* their round buffer, and their jobs' output copied out (the header comment) */
            tly_copy_note((size_t)(total + o->out));
        return rc;
    }
    size_t step = block_of(c->zstd.level, (size_t)total);
    bool whole = o->z.size >= ZSTD_compressBound((size_t)total);
    int k = 0; /* the runs that hold bytes */
    const struct iovec *one = NULL;
    for (int i = 0; i < niov; i++)
        if (iov[i].iov_len > 0)
            k++, one = &iov[i];
    if (k <= 1)
        return stream_stable(cctx, o, one ? one->iov_base : "", one ? one->iov_len : 0, step, whole);
    int rc = stream_runs(cctx, o, iov, niov, step, whole);
    if (rc == 0)
        tly_copy_note((size_t)total); /* the runs gathered into libzstd's window buffer */
    return rc;
}

static int stream_args(const struct tly_codec *c, const struct iovec *iov, int niov, uint64_t total, const void *out,
                       size_t out_cap, tly_sink_fn sink)
{
    if (c == NULL || c->id != TLY_CODEC_ZSTD)
        return tly_fail(TLY_EUSAGE, "zstd: stream encoding needs a zstd codec");
    return tly__stream_args("zstd", iov, niov, total, out, out_cap, sink);
}

int tly_zstd_encode_stream(const struct tly_codec *c, const struct iovec *iov, int niov, uint64_t total, void *out,
                           size_t out_cap, tly_sink_fn sink, void *arg)
{
    int rc = stream_args(c, iov, niov, total, out, out_cap, sink);
    if (rc)
        return rc;
    struct stream_out o = {{out, out_cap, 0}, 0, sink, arg, tly_stage_current()};
    TLY_STAGE(TLY_ENCODE)
    {
        ZSTD_CCtx *cctx;
        rc = cctx_new(c, (size_t)total, &cctx);
        if (rc == 0) {
            rc = stream(c, cctx, &o, iov, niov, total);
            ZSTD_freeCCtx(cctx);
        }
    }
    return rc;
}

/* ---- streaming decode ---- */

struct tly_zstd_dstream {
    struct tly_dstream base; /* first: the registry's view of it */
    ZSTD_DCtx *dctx;
    ZSTD_outBuffer z; /* the destination, or the caller's block buffer */
    tly_sink_fn sink; /* NULL: decoding straight into the destination, or into places */
    void *arg;
    tly_place_fn place; /* where the next bytes go (tly_dstream_open_placed), else NULL */
    void *place_arg;
    void *scratch; /* the bytes no place wants */
    size_t scratch_cap;
    enum tly_stage caller; /* the sink runs in the caller's stage */
    size_t dst_n, produced;
    bool header_checked, done;
    unsigned char head[18]; /* the frame header (at most 18 bytes), when it arrives in pieces */
    size_t head_n;
    /* the walk over the frame's parts as they arrive (walk_feed) */
    enum { W_HEAD, W_BHEAD, W_BODY, W_TAIL, W_DONE } w;
    uint64_t at, end; /* bytes walked, and where the part being walked ends */
    unsigned char bh[3]; /* a block header */
    bool last, compressed, checksum, stitching;
    unsigned char *stitch; /* a compressed block's bytes that arrived in two feeds or more */
    size_t stitch_n;
};

int tly_zstd_dstream_open(const struct tly_codec *c, void *dst, size_t dst_n, tly_sink_fn sink, void *arg, void *out,
                          size_t out_cap, struct tly_zstd_dstream **out_ds)
{
    if (c == NULL || c->id != TLY_CODEC_ZSTD || out_ds == NULL || (sink == NULL && dst_n > 0 && dst == NULL) ||
        (sink != NULL && (out == NULL || out_cap == 0)))
        return tly_fail(TLY_EUSAGE, "zstd: stream decoding needs a zstd codec and a destination or a sink");
    int rc = 0;
    TLY_STAGE(TLY_DECODE)
    {
        struct tly_zstd_dstream *ds = calloc(1, sizeof *ds);
        ZSTD_DCtx *dctx = ds ? ZSTD_createDCtx() : NULL;
        if (dctx == NULL) {
            free(ds);
            rc = tly_fail(-ENOMEM, "zstd: cannot allocate a decompression context");
        } else {
            ds->dctx = dctx;
            ds->sink = sink;
            ds->arg = arg;
            ds->dst_n = dst_n;
            ds->z = sink ? (ZSTD_outBuffer){out, out_cap, 0} : (ZSTD_outBuffer){dst, dst_n, 0};
            /* A destination that holds the whole frame and never moves lets zstd decode into it
             * directly, without a window buffer of its own. */
            if (sink == NULL)
                ZSTD_DCtx_setParameter(dctx, ZSTD_d_stableOutBuffer, 1);
            *out_ds = ds;
        }
    }
    /* The caller's stage is taken outside the scope above, which would report decode. */
    if (rc == 0)
        (*out_ds)->caller = tly_stage_current();
    return rc;
}

int tly_zstd_dstream_open_placed(const struct tly_codec *c, size_t dst_n, tly_place_fn place, void *arg, void *scratch,
                                 size_t scratch_cap, struct tly_zstd_dstream **out_ds)
{
    if (place == NULL || scratch == NULL || scratch_cap == 0)
        return tly_fail(TLY_EUSAGE, "zstd: placed decoding needs a place function and a scratch buffer");
    int rc = tly_zstd_dstream_open(c, scratch, dst_n, NULL, NULL, NULL, 0, out_ds);
    if (rc == 0) {
        struct tly_zstd_dstream *ds = *out_ds;
        /* the places change from call to call: libzstd decodes into its window and copies out */
        ZSTD_DCtx_setParameter(ds->dctx, ZSTD_d_stableOutBuffer, 0);
        ds->place = place;
        ds->place_arg = arg;
        ds->scratch = scratch;
        ds->scratch_cap = scratch_cap;
        ds->z = (ZSTD_outBuffer){scratch, 0, 0}; /* full: the first byte asks for its place */
    }
    return rc;
}

/* The place of the bytes from ds->produced on, as ds->z. */
static int next_place(struct tly_zstd_dstream *ds)
{
    void *dst = NULL;
    size_t len = 0;
    int rc = 0;
    if (ds->produced < ds->dst_n)
        TLY_STAGE(ds->caller)
        {
            rc = ds->place(ds->place_arg, ds->produced, &dst, &len);
        }
    if (rc)
        return rc > 0 ? tly_fail(TLY_EUSAGE, "zstd: place function returned %d", rc) : rc;
    if (len > ds->dst_n - ds->produced)
        len = ds->dst_n - ds->produced; /* the frame's content size bounds what it decodes to */
    if (dst == NULL && len > ds->scratch_cap)
        len = ds->scratch_cap;
    if (ds->produced < ds->dst_n && len == 0)
        return tly_fail(TLY_EINTERNAL, "zstd: no place for byte %zu of %zu", ds->produced, ds->dst_n);
    ds->z = (ZSTD_outBuffer){dst ? dst : ds->scratch, len, 0};
    return 0;
}

/* Check the frame's content size once its header is complete (it may come in several pieces). */
static int check_header(struct tly_zstd_dstream *ds, const void *in, size_t n)
{
    size_t k = n < sizeof ds->head - ds->head_n ? n : sizeof ds->head - ds->head_n;
    memcpy(ds->head + ds->head_n, in, k); /* at most 18 header bytes, not payload */
    ds->head_n += k;
    ZSTD_frameHeader h;
    int rc = frame_header(ds->head, ds->head_n, &h);
    if (rc == 1) /* not enough bytes yet (18 always are) */
        return 0;
    if (rc)
        return rc;
    if (h.frameContentSize == ZSTD_CONTENTSIZE_UNKNOWN)
        return tly_fail(TLY_ECODEC, "zstd: frame does not record its content size");
    if (h.frameContentSize != ds->dst_n)
        return tly_fail(TLY_ECODEC, "zstd: frame content size %llu != expected %zu", h.frameContentSize, ds->dst_n);
    ds->header_checked = true;
    ds->end = h.headerSize;
    ds->checksum = h.checksumFlag != 0;
    return 0;
}

static int dstream_drain(struct tly_zstd_dstream *ds)
{
    if (ds->sink == NULL || ds->z.pos == 0)
        return 0;
    int rc;
    TLY_STAGE(ds->caller)
    {
        rc = ds->sink(ds->arg, ds->z.dst, ds->z.pos);
    }
    ds->produced += ds->z.pos;
    ds->z.pos = 0;
    return rc > 0 ? tly_fail(TLY_EUSAGE, "zstd: stream sink returned %d", rc) : rc;
}

/* @p n bytes of the frame into libzstd, and what it decodes to where it goes. */
static int decode_some(struct tly_zstd_dstream *ds, const void *in, size_t n)
{
    int rc = 0;
    ZSTD_inBuffer zin = {in, n, 0};
    TLY_STAGE(TLY_DECODE)
    {
        /* placed: a full place may leave decoded bytes in libzstd's buffer, flushed with no input */
        while (rc == 0 && (zin.pos < zin.size || (ds->place && ds->z.pos == ds->z.size && !ds->done))) {
            if (ds->done) {
                rc = tly_fail(TLY_ECODEC, "zstd: %zu trailing bytes after the frame", zin.size - zin.pos);
                break;
            }
            if (ds->place && ds->z.pos == ds->z.size && (rc = next_place(ds)) != 0)
                break;
            size_t in_at = zin.pos, out_at = ds->z.pos;
            size_t r = ZSTD_decompressStream(ds->dctx, &ds->z, &zin);
            if (ZSTD_isError(r)) {
                rc = zerr("stream decompression failed", r);
                break;
            }
            ds->done = r == 0;
            if (ds->place) {
                size_t k = ds->z.pos - out_at;
                ds->produced += k;
                /* libzstd's copy out of its window: into the runs, the scatter; bytes nobody wants
                 * (a region's edge, padding) into scratch, still a copy, counted in decode */
                TLY_STAGE(ds->z.dst == ds->scratch ? TLY_DECODE : TLY_SCATTER)
                {
                    tly_copy_note(k);
                }
                if (k == 0 && zin.pos == in_at)
                    break; /* it needs more input */
            }
            if (ds->sink && (ds->z.pos == ds->z.size || ds->done))
                rc = dstream_drain(ds);
        }
    }
    return rc;
}

/* The walk's next part, once the one before it has been walked to its end. */
static void next_part(struct tly_zstd_dstream *ds)
{
    switch (ds->w) {
    case W_HEAD:
        ds->w = W_BHEAD;
        ds->end = ds->at + BLOCK_HEADER;
        return;
    case W_BHEAD: {
        uint32_t h = (uint32_t)ds->bh[0] | (uint32_t)ds->bh[1] << 8 | (uint32_t)ds->bh[2] << 16;
        unsigned type = (h >> 1) & 3;
        uint64_t size = type == 1 ? 1 : h >> 3; /* an RLE block's body is its one byte */
        ds->last = h & 1;
        ds->compressed = type == 2 && size <= ZSTD_BLOCKSIZE_MAX; /* larger: libzstd says it is corrupt */
        ds->w = W_BODY;
        ds->end = type == 3 ? UINT64_MAX : ds->at + size; /* reserved: libzstd says so */
        if (size == 0 && type != 3)
            next_part(ds);
        return;
    }
    case W_BODY:
        ds->w = ds->last ? W_TAIL : W_BHEAD;
        ds->end = ds->at + (ds->last ? (ds->checksum ? 4 : 0) : BLOCK_HEADER);
        if (ds->last && !ds->checksum)
            next_part(ds);
        return;
    case W_TAIL:
    case W_DONE:
        ds->w = W_DONE; /* anything more is trailing bytes, which libzstd's end refuses */
        ds->end = UINT64_MAX;
        return;
    }
}

/*
 * A compressed block decodes only when all its bytes are there: one that arrives split between
 * feeds (a 1 MiB file read, an HTTP body's pieces) libzstd would copy into its input buffer,
 * unseen. So the frame is walked as it arrives (its header, then each block's header and body,
 * then the checksum), the feeds go to libzstd in runs of whole parts, and a compressed block that
 * arrives split is stitched here, a copy of its bytes the ledger counts (decode). Headers and the
 * checksum (a few bytes, not payload) and raw blocks (which libzstd takes piece by piece) pass as
 * they come.
 */
static int walk_feed(struct tly_zstd_dstream *ds, const unsigned char *in, size_t n)
{
    size_t pos = 0, run = 0; /* in[run, pos) goes to libzstd as it is */
    int rc;
    while (pos < n) {
        if (ds->stitching) {
            size_t k = ds->end - ds->at < n - pos ? (size_t)(ds->end - ds->at) : n - pos;
            TLY_STAGE(TLY_DECODE)
            {
                tly_copy(ds->stitch + ds->stitch_n, in + pos, k);
            }
            ds->stitch_n += k, ds->at += k, pos += k, run = pos;
            if (ds->at < ds->end)
                return 0;
            ds->stitching = false;
            if ((rc = decode_some(ds, ds->stitch, ds->stitch_n)) != 0)
                return rc;
            ds->stitch_n = 0;
            next_part(ds);
            continue;
        }
        if (ds->w == W_HEAD && !ds->header_checked) { /* its size is not known yet: it all passes */
            ds->at += n - pos;
            pos = n;
            break;
        }
        if (ds->w == W_BODY && ds->compressed && ds->end - ds->at > n - pos) {
            if ((rc = decode_some(ds, in + run, pos - run)) != 0)
                return rc;
            if (ds->stitch == NULL)
                TLY_STAGE(TLY_DECODE)
                {
                    ds->stitch = malloc(ZSTD_BLOCKSIZE_MAX);
                }
            if (ds->stitch == NULL)
                return tly_fail(-ENOMEM, "zstd: out of memory for a block's bytes");
            ds->stitching = true;
            continue;
        }
        size_t k = ds->end - ds->at < n - pos ? (size_t)(ds->end - ds->at) : n - pos;
        for (size_t i = 0; ds->w == W_BHEAD && i < k; i++) /* at most 3 bytes, not payload */
            ds->bh[BLOCK_HEADER - (ds->end - ds->at) + i] = in[pos + i];
        ds->at += k, pos += k;
        if (ds->at == ds->end)
            next_part(ds);
    }
    return decode_some(ds, in + run, pos - run);
}

int tly_zstd_dstream_feed(struct tly_zstd_dstream *ds, const void *in, size_t n)
{
    int rc = 0;
    if (!ds->header_checked && n > 0)
        rc = check_header(ds, in, n);
    if (rc == 0 && n == 0)
        rc = decode_some(ds, in, 0); /* a place's bytes still in libzstd's buffer */
    else if (rc == 0)
        rc = walk_feed(ds, in, n);
    return rc;
}

void tly_zstd_dstream_abort(struct tly_zstd_dstream *ds)
{
    if (ds == NULL)
        return;
    TLY_STAGE(TLY_DECODE)
    {
        ZSTD_freeDCtx(ds->dctx);
        free(ds->stitch);
        free(ds);
    }
}

int tly_zstd_dstream_close(struct tly_zstd_dstream *ds)
{
    if (ds == NULL)
        return 0;
    int rc = 0;
    if (!ds->done)
        rc = tly_fail(TLY_ECODEC, "zstd: frame truncated (ends before its last block)");
    else if (ds->sink == NULL && ds->place == NULL && ds->z.pos != ds->dst_n)
        rc = tly_fail(TLY_ECODEC, "zstd: frame decoded to %zu bytes, expected %zu", ds->z.pos, ds->dst_n);
    else if ((ds->sink != NULL || ds->place != NULL) && ds->produced != ds->dst_n)
        rc = tly_fail(TLY_ECODEC, "zstd: frame decoded to %zu bytes, expected %zu", ds->produced, ds->dst_n);
    tly_zstd_dstream_abort(ds);
    return rc;
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
        *out_ds = &ds->base;
    return rc;
}

static int ds_open_placed(const struct tly_codec *c, size_t dst_n, tly_place_fn place, void *arg, void *scratch,
                          size_t scratch_cap, struct tly_dstream **out_ds)
{
    struct tly_zstd_dstream *ds = NULL;
    int rc = tly_zstd_dstream_open_placed(c, dst_n, place, arg, scratch, scratch_cap, &ds);
    if (rc == 0)
        *out_ds = &ds->base;
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
