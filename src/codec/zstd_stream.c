/*
 * zstd's streaming encode (tly_zstd_encode_stream): a chunk's runs through one frame into the
 * caller's output blocks, each drained to its sink as it fills.
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
            return tly__zstd_err("stream compression failed", left);
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
        return tly__zstd_err("reading the input in place", r);
    ZSTD_inBuffer in = {src, 0, 0};
    for (;;) {
        int rc = room(o, step, whole);
        if (rc)
            return rc;
        in.size += n - in.size < step ? n - in.size : step;
        ZSTD_EndDirective mode = in.size == n ? ZSTD_e_end : ZSTD_e_continue;
        size_t left = ZSTD_compressStream2(cctx, &o->z, &in, mode);
        if (ZSTD_isError(left))
            return tly__zstd_err("stream compression failed", left);
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
        return tly__zstd_err("pledging the content size", r);
    if (tly__zstd_workers(c->threads, (size_t)total)) {
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
        rc = tly__zstd_cctx(c, (size_t)total, &cctx);
        if (rc == 0) {
            rc = stream(c, cctx, &o, iov, niov, total);
            ZSTD_freeCCtx(cctx);
        }
    }
    return rc;
}
