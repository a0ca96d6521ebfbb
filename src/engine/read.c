/*
 * Reading a region: for each chunk it touches,
 *
 *   missing   the fill value written into the output's runs
 *   raw       (none) preadv straight into the output's runs (runs adjacent in the chunk share a call)
 *   streams   (zstd, gzip, zlib) the encoded chunk streamed into the decoder as it arrives (local:
 *             1 MiB blocks, a lone chunk's read ahead by a second worker while the first decodes;
 *             S3: ranges of up to the part size, the first of which also says the chunk's size, or
 *             for a lone chunk the HTTP body's pieces, decoded on the S3 client's loop thread),
 *             straight into the output when the chunk lies contiguously there, else copied by the
 *             decoder out of its window straight into the runs (zstd), or through a small window
 *             scattered (a codec that cannot place its output)
 *   blocks    (blosc) block by block (read_blocks.c): the header and offset table, then groups of
 *             blocks read into a small slot and each decoded as it arrives, straight into the output
 *             when the chunk lies contiguously there, else through a block buffer scattered to the
 *             runs; a stored frame is read straight into the output's runs
 *   whole     (any other codec) the encoded chunk read whole into a pool buffer and decoded straight
 *             into the output when the chunk lies contiguously there, else into a chunk buffer
 *             scattered to the runs
 *
 * The path is chosen by what the codec can do (tally/codec.h), never by which codec it is.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tally/error.h"
#include "engine/internal.h"
#include "tally/codec.h"
#include "tally/mem.h"
#include "tally/timing.h"
#include "mem/plant.h"

struct rctx {
    struct tly__op op; /* first: tly__op_run() fills it */
    char *buf;
    struct tly__lanes lanes; /* block-by-block reads' lanes over all the operation's chunks */
};

/* Output of a streamed decode, scattered to the runs as it comes (the chunk is strided there). */
struct scatter {
    struct tly_runs_iter it;
    size_t run_bytes;
    char *out;
    uint64_t pos;    /* chunk offset of the next byte the decoder produces */
    uint64_t co, bo; /* the current run */
    bool have_run;
};

static int scatter_sink(void *arg, const void *data, size_t n)
{
    struct scatter *sc = arg;
    const char *p = data;
    TLY_STAGE(TLY_SCATTER)
    {
        tly__plant_point(TLY_SCATTER);
        while (n > 0 && sc->have_run) {
            size_t k;
            if (sc->pos < sc->co) { /* bytes the region does not want (or edge padding) */
                k = sc->co - sc->pos < n ? (size_t)(sc->co - sc->pos) : n;
            } else {
                uint64_t in_run = sc->pos - sc->co;
                k = sc->run_bytes - in_run < n ? (size_t)(sc->run_bytes - in_run) : n;
                tly_copy(sc->out + sc->bo + in_run, p, k);
                if (in_run + k == sc->run_bytes)
                    sc->have_run = tly_runs_next(&sc->it, &sc->co, &sc->bo);
            }
            p += k;
            n -= k;
            sc->pos += k;
        }
        sc->pos += n; /* past the last run: nothing more is wanted */
    }
    return 0;
}

#define STREAM_IN_BLOCK ((size_t)1 << 20)

/*
 * The block of encoded bytes a streamed read (zstd, gzip, zlib) holds: local, 1 MiB preads; remote,
 * range GETs of up to the part size (one GET for most chunks), decoded on the worker so that chunks
 * decode in parallel. A lone remote chunk (nothing to decode beside it) holds none: the HTTP body's
 * own pieces go straight into its decoder on the client's loop thread.
 */
static size_t stream_in_cap(const struct tly__op *op, uint64_t size)
{
    const struct tly_array *a = op->a;
    if (a->remote && op->nchunks == 1)
        return 0;
    size_t block = a->remote ? a->opts.part_size : STREAM_IN_BLOCK;
    return size < block ? (size_t)size : block;
}

#define AHEAD_SLOTS 3 /* blocks a lone local chunk's read holds: one decoding, one read, one reading */

/* Whether a chunk of @p size encoded bytes is read ahead (read_ahead()): a lone local chunk of more
 * than one block, with a second worker to read while the first decodes. */
static bool reads_ahead(const struct tly__op *op, uint64_t size)
{
    return !op->a->remote && op->nchunks == 1 && op->workers >= 2 && size > STREAM_IN_BLOCK;
}

/*
 * A lone local chunk read ahead: a frame decodes on one thread, and the preads that bring its
 * encoded bytes (the kernel's copy out of the page cache, 0.1-0.2 of the decode's time) would
 * otherwise wait for it and it for them. Two workers share the work: each takes the next block to
 * decode when it has been read and nobody decodes, else the next block to read into a free slot,
 * else waits. So the decoder is fed while the other reads ahead, blocks are decoded in order, and
 * one thread alone (no second worker started) alternates and never waits on itself.
 */
struct ahead {
    struct tly__op *op;
    const char *key;
    struct tly_dstream *ds;
    uint64_t size, next; /* encoded bytes; the offset of the next block to read */
    uint64_t blocks, decoded;
    size_t cap;
    char *buf[AHEAD_SLOTS];
    size_t len[AHEAD_SLOTS];
    enum { SLOT_FREE, SLOT_BUSY, SLOT_FULL } st[AHEAD_SLOTS];
    int rd, dec; /* the next slot to read into, and to decode */
    bool decoding, failed;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

static int ahead_task(void *arg, uint64_t i)
{
    (void)i;
    struct ahead *h = arg;
    int err = 0;
    pthread_mutex_lock(&h->mu);
    while (!h->failed && h->decoded < h->blocks) {
        int s = h->dec;
        if (!h->decoding && h->st[s] == SLOT_FULL) {
            h->decoding = true;
            h->st[s] = SLOT_BUSY;
            pthread_mutex_unlock(&h->mu);
            err = tly__feed(h->op, h->ds, h->buf[s], h->len[s]);
            pthread_mutex_lock(&h->mu);
            h->st[s] = SLOT_FREE;
            h->dec = (s + 1) % AHEAD_SLOTS;
            h->decoded++;
            h->decoding = false;
        } else if (h->next < h->size && h->st[s = h->rd] == SLOT_FREE) {
            uint64_t off = h->next;
            struct iovec iov = {h->buf[s], h->size - off < h->cap ? (size_t)(h->size - off) : h->cap};
            h->next += iov.iov_len;
            h->st[s] = SLOT_BUSY;
            h->rd = (s + 1) % AHEAD_SLOTS;
            pthread_mutex_unlock(&h->mu);
            TLY_STAGE(TLY_GET)
            {
                err = tly__readv(h->op, h->key, off, &iov, 1);
            }
            pthread_mutex_lock(&h->mu);
            h->len[s] = iov.iov_len;
            h->st[s] = SLOT_FULL;
        } else { /* the next block is being read (an I/O wait), or every slot waits on the decoder */
            bool io = h->st[h->dec] != SLOT_FULL;
            TLY_STAGE(io ? TLY_GET : TLY_DECODE)
            {
                uint64_t t0 = tly_wait_begin();
                pthread_cond_wait(&h->cv, &h->mu);
                tly_wait_end(t0, io ? TLY_WAIT_IO : TLY_WAIT_GATE);
            }
            continue;
        }
        if (err)
            h->failed = true; /* this thread's message comes back through tly__run_tasks */
        pthread_cond_broadcast(&h->cv);
        if (err)
            break;
    }
    pthread_mutex_unlock(&h->mu);
    return err;
}

static int read_ahead(struct tly__op *op, const char *key, uint64_t size, struct tly_dstream *ds)
{
    struct ahead h = {.op = op, .key = key, .ds = ds, .size = size, .cap = STREAM_IN_BLOCK};
    h.blocks = (size + h.cap - 1) / h.cap;
    int err = 0;
    for (int k = 0; k < AHEAD_SLOTS && !err; k++)
        if ((h.buf[k] = tly_pool_alloc(h.cap)) == NULL)
            err = tly_fail(-ENOMEM, "out of memory for a read-ahead block");
    if (!err) {
        pthread_mutex_init(&h.mu, NULL);
        pthread_cond_init(&h.cv, NULL);
        err = tly__run_tasks(2, 2, ahead_task, &h);
        pthread_cond_destroy(&h.cv);
        pthread_mutex_destroy(&h.mu);
    }
    for (int k = 0; k < AHEAD_SLOTS; k++)
        tly_pool_free(h.buf[k]);
    return err;
}

/* Close (verdict) or, after a failure whose reason must stand, abort. */
static int dstream_end(struct tly_dstream *ds, bool failed)
{
    if (failed) {
        tly_dstream_abort(ds);
        return 0;
    }
    return tly_dstream_close(ds);
}

static int feed_sink(void *arg, const void *data, size_t n)
{
    return tly_dstream_feed(arg, data, n);
}

/* Where a remote chunk's read learns its size from its first request (read_headed()): the object's
 * size, and whether it was missing there (a chunk gone between two requests is an error). */
struct headed {
    uint64_t size;
    bool missing;
};

/* Remote, in blocks: GET each range of the encoded chunk into @p in, then decode it here. With @p hd,
 * the first range is asked from byte 0 with no size known (tly_store_read_head: @p size is only an
 * upper bound), and its reply says the object's size. */
static int fetch_and_feed(struct tly__op *op, const char *key, uint64_t size, void *in, size_t in_cap,
                          struct tly_dstream *ds, struct headed *hd)
{
    int err = 0;
    uint64_t off = 0;
    if (hd) {
        TLY_STAGE(TLY_GET)
        {
            err = tly_store_read_head(op->a->store, key, in, in_cap, &hd->size);
        }
        hd->missing = err == TLY_ENOTFOUND;
        size = hd->size;
        off = size < in_cap ? size : in_cap;
        if (!err)
            err = tly__feed(op, ds, in, (size_t)off);
    }
    for (; !err && off < size; off += in_cap) {
        struct iovec iov = {in, size - off < in_cap ? (size_t)(size - off) : in_cap};
        TLY_STAGE(TLY_GET)
        {
            err = tly__readv(op, key, off, &iov, 1);
        }
        if (!err)
            err = tly__feed(op, ds, in, iov.iov_len);
    }
    return err;
}

/*
 * Where a placed decoder puts the bytes from chunk offset @p pos on: the rest of the run that holds
 * pos, or the bytes up to the next run (bytes the region does not want, edge padding) into scratch.
 */
static int place_run(void *arg, uint64_t pos, void **dst, size_t *len)
{
    struct scatter *sc = arg;
    while (sc->have_run && sc->co + sc->run_bytes <= pos)
        sc->have_run = tly_runs_next(&sc->it, &sc->co, &sc->bo);
    if (!sc->have_run) { /* past the last run: nothing more is wanted */
        *dst = NULL;
        *len = SIZE_MAX;
    } else if (pos < sc->co) {
        *dst = NULL;
        *len = (size_t)(sc->co - pos);
    } else {
        *dst = sc->out + sc->bo + (pos - sc->co);
        *len = (size_t)(sc->run_bytes - (pos - sc->co));
    }
    return 0;
}

/*
 * A codec that streams: the encoded chunk streams from the store into the decoder (see stream_in_cap),
 * decoded straight into the output when the chunk is contiguous there, else through a small window
 * scattered to the runs. The encoded chunk is held whole only when it fits in one block.
 */
static int read_stream(struct tly__op *op, const char *key, const struct tly_runs *rs, uint64_t size, char *out,
                       struct headed *hd)
{
    struct tly_array *a = op->a;
    const struct tly_codec *c = &a->meta.codec;
    bool ahead = reads_ahead(op, size);
    size_t in_cap = ahead ? 0 : stream_in_cap(op, size); /* read ahead: its own blocks */
    size_t win_cap = tly_runs_contiguous(rs) ? 0 : tly_codec_stream_block(c, true);
    void *in, *win = NULL;
    struct scatter sc = {.run_bytes = rs->run_bytes, .out = out};
    struct tly_dstream *ds = NULL;
    int err = 0;
    in = in_cap ? tly_pool_alloc(in_cap) : NULL;
    win = win_cap ? tly_pool_alloc(win_cap) : NULL;
    TLY_STAGE(TLY_DECODE)
    {
        tly__plant_point(TLY_DECODE);
    }
    if ((in_cap && in == NULL) || (win_cap && win == NULL))
        err = tly_fail(-ENOMEM, "out of memory for %s stream buffers", tly_codec_name(c->id));
    if (!err && win_cap) {
        TLY_STAGE(TLY_SCATTER)
        {
            tly__plant_point(TLY_SCATTER); /* the decoder's copies into the runs are the scatter */
        }
        tly_runs_iter_init(&sc.it, rs);
        sc.have_run = tly_runs_next(&sc.it, &sc.co, &sc.bo);
        /* a codec that places its output copies it once, straight into the runs; else a sink */
        err = tly_dstream_open_placed(c, rs->chunk_bytes, place_run, &sc, win, win_cap, &ds);
        if (err == TLY_EUNSUPPORTED)
            err = tly_dstream_open(c, NULL, rs->chunk_bytes, scatter_sink, &sc, win, win_cap, &ds);
    } else if (!err) {
        err = tly_dstream_open(c, out + rs->buf_base, rs->chunk_bytes, NULL, NULL, NULL, 0, &ds);
    }
    if (!err && ahead) {
        err = read_ahead(op, key, size, ds);
    } else if (!err && a->remote && in_cap) {
        err = fetch_and_feed(op, key, size, in, in_cap, ds, hd);
    } else if (!err) {
        TLY_STAGE(TLY_GET)
        {
            err = tly_store_read_stream(a->store, key, in, in_cap, feed_sink, ds);
        }
    }
    /* After a failure the reason stands: close() would replace it with "truncated". */
    int end = dstream_end(ds, err != 0);
    tly_pool_free(in);
    tly_pool_free(win);
    return err ? err : end;
}

/* Any other codec: the encoded chunk read whole, decoded into the output (or a chunk buffer). */
static int read_whole(struct tly__op *op, const char *key, const struct tly_runs *rs, uint64_t size, char *out)
{
    bool contiguous = tly_runs_contiguous(rs);
    void *enc = tly_pool_alloc((size_t)size), *chunk = contiguous ? NULL : tly_pool_alloc(rs->chunk_bytes);
    int err = enc && (contiguous || chunk)
                  ? 0
                  : tly_fail(-ENOMEM, "out of memory for a %llu-byte chunk", (unsigned long long)size);
    if (!err) {
        struct iovec iov = {enc, (size_t)size};
        TLY_STAGE(TLY_GET)
        {
            err = tly__readv(op, key, 0, &iov, 1);
        }
    }
    if (!err)
        err = tly__decode(op, contiguous ? out + rs->buf_base : chunk, rs->chunk_bytes, enc, (size_t)size);
    if (!err && !contiguous)
        TLY_STAGE(TLY_SCATTER)
        {
            tly__plant_point(TLY_SCATTER);
            tly__copy_runs(rs, chunk, out, true);
        }
    tly_pool_free(chunk);
    tly_pool_free(enc);
    return err;
}

/* The most bytes reading this chunk holds at once (its ticket): pool buffers and the codec's own
 * workspace. A chunk read block by block takes its own once its header is read (read_blocks.c). */
static uint64_t read_ticket(const struct tly__op *op, const struct tly_runs *rs, uint64_t size)
{
    struct tly_codec c = tly__op_codec(op);
    bool contiguous = tly_runs_contiguous(rs);
    if (tly_codec_stores_raw(&c) || tly_codec_has_blocks(&c))
        return 0;
    if (!tly_codec_streams(&c))
        return size + (contiguous ? 0 : rs->chunk_bytes) + tly_codec_workspace(&c, rs->chunk_bytes, true, false);
    uint64_t work = tly_codec_workspace(&c, rs->chunk_bytes, true, !contiguous);
    uint64_t in = reads_ahead(op, size) ? AHEAD_SLOTS * STREAM_IN_BLOCK : stream_in_cap(op, size);
    return in + (contiguous ? 0 : tly_codec_stream_block(&c, true)) + work;
}

/* A chunk of @p size stored bytes, whatever its codec but one with block frames, into @p out. */
static int read_sized(struct tly__op *op, const char *key, const struct tly_runs *rs, uint64_t size, char *out)
{
    const struct tly_codec *c = &op->a->meta.codec;
    int err;
    if (tly_codec_stores_raw(c)) {
        if (size != rs->chunk_bytes)
            return tly_fail(TLY_EFORMAT, "%llu bytes, expected %llu", (unsigned long long)size,
                            (unsigned long long)rs->chunk_bytes);
        TLY_STAGE(TLY_GET)
        {
            err = tly__read_runs(op, key, 0, rs, out);
        }
        return err;
    }
    if (tly_codec_streams(c))
        return read_stream(op, key, rs, size, out, NULL);
    return read_whole(op, key, rs, size, out);
}

/* Whether a chunk's read learns its size from its first range (read_headed()) rather than asking it
 * first: a remote chunk of a streamed codec read in ranges (stream_in_cap()), one among others. */
static bool reads_headed(const struct tly__op *op)
{
    const struct tly_codec *c = &op->a->meta.codec;
    return op->a->remote && op->nchunks != 1 && !tly_codec_stores_raw(c) && tly_codec_streams(c) &&
           op->a->opts.part_size > 0;
}

/*
 * A remote streamed chunk among others: its first range and its size in one request (a range from
 * byte 0), not a HEAD and then the GET (read-s3-zstd-256x4MiB made 512 requests for 256 chunks). The
 * first range, and so the chunk's ticket, is sized before the size is known: the most the codec can
 * make of the chunk (tly_codec_bound), or the part size where that is less. A compressible chunk's
 * ticket is that bound rather than its stored bytes, as its buffer is.
 */
static int read_headed(struct tly__op *op, const char *key, const struct tly_runs *rs, char *out, uint64_t *size,
                       bool *missing)
{
    const struct tly_array *a = op->a;
    uint64_t bound = tly_codec_bound(&a->meta.codec, rs->chunk_bytes);
    uint64_t cap = bound < a->opts.part_size ? bound : a->opts.part_size;
    uint64_t ticket = read_ticket(op, rs, cap);
    struct headed hd = {0};
    TLY_STAGE(TLY_POOL)
    {
        tly__plant_point(TLY_POOL);
        tly_pool_acquire(op->pool, ticket);
    }
    int err = read_stream(op, key, rs, cap, out, &hd);
    tly_pool_release(op->pool, ticket);
    *size = hd.size;
    *missing = hd.missing;
    return err;
}

static int read_one(void *arg, uint64_t i)
{
    struct rctx *x = arg;
    struct tly_array *a = x->op.a;
    uint64_t idx[TLY_MAX_RANK], size = 0;
    struct tly_runs rs;
    char key[512];
    int err = 0;
    TLY_STAGE(TLY_PLAN)
    {
        tly__plant_point(TLY_PLAN);
        tly__chunk_at(a->grid.rank, x->op.lo, x->op.hi, i, idx);
        tly_runs_plan(&a->grid, idx, x->op.r, a->meta.dtype.size, &rs);
        if (tly_meta_chunk_key(&a->meta, idx, key, sizeof key) < 0)
            err = tly_fail(TLY_EUSAGE, "chunk key too long");
    }
    if (err)
        return err;
    const struct tly_codec *c = &a->meta.codec;
    bool blocks = !tly_codec_stores_raw(c) && !tly_codec_streams(c) && tly_codec_has_blocks(c);
    bool missing = false, headed = !blocks && reads_headed(&x->op);
    if (blocks) { /* its size from the read of its header: no request for the size alone (read_blocks.c) */
        TLY_STAGE(TLY_GET)
        {
            tly__plant_point(TLY_GET);
        }
        err = tly__read_blocks(&x->op, &x->lanes, key, &rs, x->buf, &size, &missing);
    } else if (headed) { /* its size from its first range too */
        TLY_STAGE(TLY_GET)
        {
            tly__plant_point(TLY_GET);
        }
        err = read_headed(&x->op, key, &rs, x->buf, &size, &missing);
    } else {
        TLY_STAGE(TLY_GET)
        {
            tly__plant_point(TLY_GET);
            err = tly_store_size(a->store, key, &size);
        }
        missing = err == TLY_ENOTFOUND;
    }
    atomic_fetch_add(&x->op.stats.chunks, 1);
    if (missing) {
        tly_errclear();
        TLY_STAGE(TLY_SCATTER)
        {
            tly__fill_runs(a, &rs, x->buf);
        }
        atomic_fetch_add(&x->op.stats.missing, 1);
        return 0;
    }
    if (!err && !blocks && !headed) { /* block and headed reads take their own tickets */
        uint64_t ticket = read_ticket(&x->op, &rs, size);
        TLY_STAGE(TLY_POOL)
        {
            tly__plant_point(TLY_POOL);
            tly_pool_acquire(x->op.pool, ticket);
        }
        err = read_sized(&x->op, key, &rs, size, x->buf);
        tly_pool_release(x->op.pool, ticket);
    }
    atomic_fetch_add(&x->op.stats.stored_bytes, size);
    atomic_fetch_add(&x->op.stats.needed_bytes, size);
    if (err)
        tly_err_prefix("chunk %s", key);
    return err;
}

int tly_array_read(struct tly_array *a, void *buf, const struct tly_region *r, struct tly_io_stats *stats)
{
    int err;
    if (a->meta.shard.on) {
        err = tly__shard_read(a, buf, r, stats);
    } else {
        struct rctx x = {.buf = buf};
        tly__lanes_init(&x.lanes, a->opts.threads);
        err = tly__op_run(&x.op, a, r, read_one, &x, stats);
        tly__lanes_destroy(&x.lanes);
    }
    /* every chunk read (or found missing) was the opened array's only if its metadata is unchanged;
     * and a read that failed (a chunk deleted between its size and its bytes, a chunk of the new array
     * that does not decode as the old one's) says the cause, an overwrite, rather than the symptom */
    if (err && err != TLY_ENOTFOUND && err != TLY_EFORMAT && err != TLY_ECODEC)
        return err; /* not what a replaced chunk looks like (and a dead server gets no second wait) */
    int changed;
    TLY_STAGE(TLY_META)
    {
        char symptom[512];
        snprintf(symptom, sizeof symptom, "%s", tly_errmsg());
        changed = tly_store_unchanged(a->store);
        if (err && changed != -ESTALE)
            tly_fail(err, "%s", symptom); /* the read's own message, not the check's */
    }
    return err && changed != -ESTALE ? err : changed;
}
