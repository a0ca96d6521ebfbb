/*
 * Writing a region: each chunk it touches is planned into segments — runs of the caller's memory
 * and runs of fill value for edge padding — in chunk order, and those segments go to the store:
 *
 *   raw      (none) the segments as iovecs to pwritev (no copy)
 *   streams  (zstd, gzip, zlib) the segments streamed through the compressor in place, output in
 *            bounded blocks
 *   blocks   (blosc) block by block (write_blocks.c), the blocks compressed on the chunk's share
 *            of threads from the caller's memory (gathered block by block when the chunk is in
 *            pieces) and written in order as they come, the header and offset table patched in at
 *            the end (on S3 into the first part, which the writer keeps until the commit)
 *   whole    (any other codec, and settings whose blocks the codec cannot reproduce) the whole
 *            chunk compressed into one buffer, from the one segment when the chunk is contiguous,
 *            else from the segments gathered into a buffer
 *
 * The path is chosen by what the codec can do (tally/codec.h), never by which codec it is.
 *
 * A chunk the region covers only partly is read (or filled), patched and written whole.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tally/error.h"
#include "engine/internal.h"
#include "codec/blocks.h"
#include "tally/codec.h"
#include "tally/mem.h"
#include "mem/plant.h"

struct wctx {
    struct tly__op op; /* first: tly__op_run() fills it */
    const char *buf;
    const struct tly_block_plan *blocks; /* chunks written block by block (NULL: whole) */
};

struct sink {
    struct tly_writer *w;
    uint64_t bytes;
};

static int sink_write(void *arg, const void *data, size_t n)
{
    struct sink *sk = arg;
    struct iovec iov = {(void *)data, n};
    int err;
    TLY_STAGE(TLY_PUT)
    {
        err = tly_writer_writev(sk->w, &iov, 1);
    }
    sk->bytes += n;
    return err;
}

/* Encode the segments and write them under @p key; the stored size into @p stored. */
static int put_chunk(struct wctx *x, const char *key, const struct tly__segs *s, uint64_t chunk_bytes, uint64_t *stored)
{
    struct tly__op *op = &x->op;
    struct tly_array *a = op->a;
    const struct tly_codec *c = &a->meta.codec;
    struct tly_writer *w;
    int err;
    if (x->blocks) {
        err = tly__put_blocks(op, x->blocks, key, s->iov, s->pad, s->n, stored);
        if (err)
            tly_err_prefix("chunk %s", key);
        return err;
    }
    TLY_STAGE(TLY_PUT)
    {
        err = tly_store_writer(a->store, key, &w);
    }
    if (err)
        return err;
    void *gathered = NULL, *enc = NULL;
    size_t cap = tly_codec_stream_block(c, false);
    if (tly_codec_stores_raw(c)) {
        TLY_STAGE(TLY_PUT)
        {
            tly__plant_point(TLY_PUT);
            err = tly_writer_add(w, s->iov, s->n); /* the caller's memory and the fill pattern: stable */
        }
        *stored = chunk_bytes;
    } else if (tly_codec_streams(c)) {
        struct sink sk = {w, 0};
        tly_writer_parts_in_flight(w, tly__parts_in_flight(op, false));
        tly__turn_take(op, false);
        TLY_STAGE(TLY_ENCODE)
        {
            tly__plant_point(TLY_ENCODE);
            enc = tly_pool_alloc(cap);
        }
        struct tly_codec oc = tly__op_codec(op); /* a lone chunk's idle threads: zstd's workers */
        tly__op_chunk_threads(op, tly_codec_threads(&oc, chunk_bytes, false));
        err = enc ? tly__encode_stream(op, &oc, s->iov, s->n, chunk_bytes, enc, cap, sink_write, &sk)
                  : tly_fail(-ENOMEM, "out of memory for the %s output buffer", tly_codec_name(c->id));
        tly__turn_give(op); /* every encoded byte is with the writer */
        *stored = sk.bytes;
    } else {
        tly__turn_take(op, false);
        const void *src = tly__segs_contiguous(a, s, chunk_bytes, &gathered);
        size_t bound = tly_codec_bound(c, chunk_bytes), n = 0;
        TLY_STAGE(TLY_ENCODE)
        {
            tly__plant_point(TLY_ENCODE);
            enc = src ? tly_pool_alloc(bound) : NULL;
        }
        if (enc) {
            err = tly__encode(op, enc, bound, src, chunk_bytes, &n);
        } else {
            err = tly_fail(-ENOMEM, "out of memory for a %llu-byte chunk", (unsigned long long)chunk_bytes);
        }
        tly__turn_give(op);
        if (!err) {
            struct iovec iov = {enc, n};
            TLY_STAGE(TLY_PUT)
            {
                err = tly_writer_add(w, &iov, 1); /* enc lives until the commit below */
            }
        }
        *stored = n;
    }
    TLY_STAGE(TLY_PUT)
    {
        if (err)
            tly_writer_abort(w);
        else
            err = tly_writer_commit(w);
    }
    tly_pool_free(gathered);
    tly_pool_free(enc);
    if (err)
        tly_err_prefix("chunk %s", key);
    return err;
}

/* Bring in the chunk's current content (or the fill value) for a read-modify-write. */
static int load_chunk(struct tly__op *op, const char *key, void *dst, uint64_t chunk_bytes)
{
    struct tly_array *a = op->a;
    uint64_t size;
    int err;
    TLY_STAGE(TLY_GET)
    {
        err = tly_store_size(a->store, key, &size);
    }
    if (err == TLY_ENOTFOUND) {
        tly_errclear();
        tly__fill(a, dst, chunk_bytes);
        return 0;
    }
    if (err)
        return err;
    const struct tly_codec *c = &a->meta.codec;
    if (tly_codec_stores_raw(c)) {
        if (size != chunk_bytes)
            return tly_fail(TLY_EFORMAT, "chunk %s: %llu bytes, expected %llu", key, (unsigned long long)size,
                            (unsigned long long)chunk_bytes);
        struct iovec iov = {dst, chunk_bytes};
        TLY_STAGE(TLY_GET)
        {
            err = tly__readv(op, key, 0, &iov, 1);
        }
        return err;
    }
    void *enc = tly_pool_alloc(size);
    TLY_STAGE(TLY_GET)
    {
        struct iovec iov = {enc, size};
        err = enc ? tly__readv(op, key, 0, &iov, 1) : tly_fail(-ENOMEM, "out of memory");
    }
    if (!err)
        err = tly__decode(op, dst, chunk_bytes, enc, size);
    tly_pool_free(enc);
    if (err)
        tly_err_prefix("chunk %s", key);
    return err;
}

/* A chunk the region covers only partly: load it, patch in the region's runs, write it whole. */
static int rmw_chunk(struct wctx *x, const char *key, const struct tly_runs *rs, uint64_t *stored)
{
    void *cb = tly_pool_alloc(rs->chunk_bytes);
    if (cb == NULL)
        return tly_fail(-ENOMEM, "chunk %s: out of memory", key);
    int err = load_chunk(&x->op, key, cb, rs->chunk_bytes);
    if (!err) {
        TLY_STAGE(TLY_GATHER)
        {
            tly__plant_point(TLY_GATHER);
            tly__copy_runs(rs, cb, (char *)x->buf, false);
        }
        struct tly__segs s = {0};
        TLY_STAGE(TLY_PLAN)
        {
            err = tly__segs_one(&s, cb, rs->chunk_bytes);
        }
        if (!err)
            err = put_chunk(x, key, &s, rs->chunk_bytes, stored);
        TLY_STAGE(TLY_PLAN)
        {
            tly__segs_free(&s);
        }
    }
    tly_pool_free(cb);
    return err;
}

/* The most bytes writing this chunk holds at once (its ticket): pool buffers and the codec's own
 * workspace (zstd's context, deflate's state, c-blosc's temporaries). */
static uint64_t write_ticket(const struct wctx *x, const struct tly_runs *rs, const struct tly__segs *s)
{
    const struct tly__op *op = &x->op;
    const struct tly_array *a = op->a;
    const struct tly_codec *c = &a->meta.codec;
    uint64_t n = rs->chunk_bytes;
    bool blocks = x->blocks != NULL, streamed = tly_codec_streams(c), raw = tly_codec_stores_raw(c);
    uint64_t enc = streamed ? tly_codec_stream_block(c, false)
                   : blocks ? tly__blocks_write_bytes(op, x->blocks, rs->covers_chunk && s->n == 1 && !s->pad[0])
                   : raw    ? 0
                            : tly_codec_bound(c, n);
    struct tly_codec oc = tly__op_codec(op); /* a streamed encode runs on the chunk's threads */
    /* a streamed encode of runs that are not one gathers them into the library's window */
    enc += blocks ? 0 : tly_codec_workspace(streamed ? &oc : c, n, false, rs->covers_chunk && s->n > 1);
    /* a remote store copies streamed output into multipart parts: one filling, those uploading */
    if (streamed && a->remote) {
        uint64_t parts = (uint64_t)(tly__parts_in_flight(op, false) + 1) * a->opts.part_size;
        uint64_t bound = tly_codec_bound(c, n);
        enc += bound < parts ? bound : parts;
    }
    if (!rs->covers_chunk) { /* read-modify-write: the chunk, its old encoded bytes and their decoder, the new ones */
        struct tly_codec dc = tly__op_codec(op);
        return n + (raw ? 0 : tly_codec_bound(c, n) + tly_codec_workspace(&dc, n, true, false)) + enc;
    }
    bool gather = !raw && !streamed && !blocks && !(s->n == 1 && !s->pad[0]); /* whole, from pieces */
    return enc + (gather ? n : 0);
}

static int write_one(void *arg, uint64_t i)
{
    struct wctx *x = arg;
    struct tly_array *a = x->op.a;
    uint64_t idx[TLY_MAX_RANK];
    struct tly_runs rs;
    char key[512];
    struct tly__segs s = {0};
    int err = 0;
    TLY_STAGE(TLY_PLAN)
    {
        tly__plant_point(TLY_PLAN);
        tly__chunk_at(a->grid.rank, x->op.lo, x->op.hi, i, idx);
        tly_runs_plan(&a->grid, idx, x->op.r, a->meta.dtype.size, &rs);
        if (tly_meta_chunk_key(&a->meta, idx, key, sizeof key) < 0)
            err = tly_fail(TLY_EUSAGE, "chunk key too long");
        else if (rs.covers_chunk)
            err = tly__plan_segments(a, &rs, x->buf, &s);
    }
    uint64_t stored = 0, ticket = err ? 0 : write_ticket(x, &rs, &s);
    TLY_STAGE(TLY_POOL)
    {
        tly__plant_point(TLY_POOL);
        tly_pool_acquire(x->op.pool, ticket);
    }
    if (!err && rs.covers_chunk)
        err = put_chunk(x, key, &s, rs.chunk_bytes, &stored);
    else if (!err) {
        err = rmw_chunk(x, key, &rs, &stored);
        atomic_fetch_add(&x->op.stats.rmw, 1);
    }
    tly_pool_release(x->op.pool, ticket);
    TLY_STAGE(TLY_PLAN)
    {
        tly__segs_free(&s);
    }
    atomic_fetch_add(&x->op.stats.chunks, 1);
    atomic_fetch_add(&x->op.stats.stored_bytes, stored);
    return err;
}

int tly_array_write(struct tly_array *a, const void *buf, const struct tly_region *r, struct tly_io_stats *stats)
{
    if (a->meta.shard.on) {
        int err = tly__shard_write(a, buf, r, stats);
        if (err)
            a->failed = true;
        return err;
    }
    struct wctx x = {.buf = buf};
    /* a compressed write blocks in pwrite (dirty-page throttling, the file system: 29% of the workers'
     * time in issue 26's bench) while it could encode: half as many local workers again as threads, at
     * most `threads` of them encoding at once (the codec gate) */
    x.op.overlap_io = !tly_codec_stores_raw(&a->meta.codec);
    struct tly_block_plan plan;
    /* block by block (the table patched in at the end: on S3 into the kept first part); settings the
     * codec's own choices cannot be reproduced for are written whole */
    const struct tly__block_ops *blocks = tly__codec_blocks(&a->meta.codec);
    if (blocks) {
        uint64_t n = tly_grid_chunk_elems(&a->grid) * a->meta.dtype.size;
        if (blocks->plan(&a->meta.codec, n, &plan) == 0)
            x.blocks = &plan;
        else
            tly_errclear();
    }
    int err = tly__op_run(&x.op, a, r, write_one, &x, stats);
    if (err)
        a->failed = true; /* a staged array with a failed write is never published */
    return err;
}
