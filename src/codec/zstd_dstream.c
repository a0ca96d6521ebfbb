/*
 * zstd's streaming decode (tly_zstd_dstream_*): a frame decoded as its bytes arrive.
 *
 * A frame decodes on one thread (the format has no independent pieces to split a decode
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

#include "codec/ops.h"
#include "codec/stream.h"
#include "codec/zstd.h"
#include "tally/error.h"
#include "tally/mem.h"

#define BLOCK_HEADER 3 /* a block header's bytes (RFC 8878, 3.1.1.2) */

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
    uint64_t at, end;    /* bytes walked, and where the part being walked ends */
    unsigned char bh[3]; /* a block header */
    bool last, compressed, checksum, stitching;
    unsigned char *stitch; /* a compressed block's bytes that arrived in two feeds or more */
    size_t stitch_n;
};

/* A decoder of @p dst_n bytes with its context, in stage decode; its output set by the caller. */
static int dstream_new(size_t dst_n, struct tly_zstd_dstream **out_ds)
{
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
            ds->dst_n = dst_n;
            *out_ds = ds;
        }
    }
    /* The caller's stage is taken outside the scope above, which would report decode. */
    if (rc == 0)
        (*out_ds)->caller = tly_stage_current();
    return rc;
}

int tly_zstd_dstream_open(const struct tly_codec *c, void *dst, size_t dst_n, tly_sink_fn sink, void *arg, void *out,
                          size_t out_cap, struct tly_zstd_dstream **out_ds)
{
    if (c == NULL || c->id != TLY_CODEC_ZSTD || out_ds == NULL || (sink == NULL && dst_n > 0 && dst == NULL) ||
        (sink != NULL && (out == NULL || out_cap == 0)))
        return tly_fail(TLY_EUSAGE, "zstd: stream decoding needs a zstd codec and a destination or a sink");
    int rc = dstream_new(dst_n, out_ds);
    if (rc == 0) {
        struct tly_zstd_dstream *ds = *out_ds;
        ds->sink = sink;
        ds->arg = arg;
        ds->z = sink ? (ZSTD_outBuffer){out, out_cap, 0} : (ZSTD_outBuffer){dst, dst_n, 0};
        /* A destination that holds the whole frame and never moves lets zstd decode into it
         * directly, without a window buffer of its own. */
        if (sink == NULL)
            ZSTD_DCtx_setParameter(ds->dctx, ZSTD_d_stableOutBuffer, 1);
    }
    return rc;
}

int tly_zstd_dstream_open_placed(const struct tly_codec *c, size_t dst_n, tly_place_fn place, void *arg, void *scratch,
                                 size_t scratch_cap, struct tly_zstd_dstream **out_ds)
{
    if (c == NULL || c->id != TLY_CODEC_ZSTD || out_ds == NULL || place == NULL || scratch == NULL || scratch_cap == 0)
        return tly_fail(TLY_EUSAGE, "zstd: placed decoding needs a zstd codec, a place function and a scratch buffer");
    int rc = dstream_new(dst_n, out_ds);
    if (rc == 0) { /* the places change from call to call: libzstd decodes into its window and copies out */
        struct tly_zstd_dstream *ds = *out_ds;
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
    int rc = tly__zstd_frame_header(ds->head, ds->head_n, &h);
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
                rc = tly__zstd_err("stream decompression failed", r);
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
