/*
 * zstd: one frame per chunk that always records its content size (numcodecs 0.11 cannot read a
 * frame without it), compressed in one call or streamed from the chunk's runs in place. A context
 * per call: it is small next to a chunk, and a cached one would sit in the encode stage's live
 * bytes between chunks.
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
 * from one on. libzstd's workers read their jobs from a round buffer it copies the input into (its
 * copy, bounded: workspace() counts it, and the copy ledger counts its bytes with tly_copy_note(), in
 * the encode stage: every input byte passes through that buffer once, as zstdmt_compress.c's memcpy
 * into inBuff; so a lone chunk's zstd write trades one counted copy of its bytes for its threads).
 * A frame decodes on one thread: the format has no independent pieces to split a decode among.
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
    if (!decode)
        return ZSTD_estimateCStreamSize_usingCParams(ZSTD_getCParams(c->zstd.level, n, 0));
    if (!windowed)
        return ZSTD_estimateDCtxSize() + ZSTD_BLOCKSIZE_MAX; /* and its input buffer */
    return ZSTD_estimateDStreamSize(n < WINDOW_MAX ? n : WINDOW_MAX);
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
        tly_copy_note(n); /* libzstd's workers' round buffer (the header comment) */
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

static int stream(ZSTD_CCtx *cctx, struct stream_out *o, const struct iovec *iov, int niov, uint64_t total)
{
    size_t r = ZSTD_CCtx_setPledgedSrcSize(cctx, total);
    if (ZSTD_isError(r))
        return zerr("pledging the content size", r);
    for (int i = 0; i < niov; i++) {
        ZSTD_inBuffer in = {iov[i].iov_base, iov[i].iov_len, 0};
        int rc = pump(cctx, o, &in, ZSTD_e_continue);
        if (rc)
            return rc;
    }
    ZSTD_inBuffer end = {NULL, 0, 0};
    return pump(cctx, o, &end, ZSTD_e_end);
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
    struct stream_out o = {{out, out_cap, 0}, sink, arg, tly_stage_current()};
    TLY_STAGE(TLY_ENCODE)
    {
        ZSTD_CCtx *cctx;
        rc = cctx_new(c, (size_t)total, &cctx);
        if (rc == 0) {
            rc = stream(cctx, &o, iov, niov, total);
            ZSTD_freeCCtx(cctx);
            if (rc == 0 && workers(c->threads, (size_t)total))
                tly_copy_note((size_t)total); /* libzstd's workers' round buffer (the header comment) */
        }
    }
    return rc;
}

/* ---- streaming decode ---- */

struct tly_zstd_dstream {
    struct tly_dstream base; /* first: the registry's view of it */
    ZSTD_DCtx *dctx;
    ZSTD_outBuffer z; /* the destination, or the caller's block buffer */
    tly_sink_fn sink; /* NULL: decoding straight into the destination */
    void *arg;
    enum tly_stage caller; /* the sink runs in the caller's stage */
    size_t dst_n, produced;
    bool header_checked, done;
    unsigned char head[18]; /* the frame header (at most 18 bytes), when it arrives in pieces */
    size_t head_n;
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

int tly_zstd_dstream_feed(struct tly_zstd_dstream *ds, const void *in, size_t n)
{
    int rc = 0;
    if (!ds->header_checked && n > 0)
        rc = check_header(ds, in, n);
    ZSTD_inBuffer zin = {in, n, 0};
    TLY_STAGE(TLY_DECODE)
    {
        while (rc == 0 && zin.pos < zin.size) {
            if (ds->done) {
                rc = tly_fail(TLY_ECODEC, "zstd: %zu trailing bytes after the frame", zin.size - zin.pos);
                break;
            }
            size_t r = ZSTD_decompressStream(ds->dctx, &ds->z, &zin);
            if (ZSTD_isError(r)) {
                rc = zerr("stream decompression failed", r);
                break;
            }
            ds->done = r == 0;
            if (ds->sink && (ds->z.pos == ds->z.size || ds->done))
                rc = dstream_drain(ds);
        }
    }
    return rc;
}

void tly_zstd_dstream_abort(struct tly_zstd_dstream *ds)
{
    if (ds == NULL)
        return;
    TLY_STAGE(TLY_DECODE)
    {
        ZSTD_freeDCtx(ds->dctx);
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
    else if (ds->sink == NULL && ds->z.pos != ds->dst_n)
        rc = tly_fail(TLY_ECODEC, "zstd: frame decoded to %zu bytes, expected %zu", ds->z.pos, ds->dst_n);
    else if (ds->sink != NULL && ds->produced != ds->dst_n)
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
    .dstream_feed = ds_feed,
    .dstream_close = ds_close,
    .dstream_abort = ds_abort,
};
