/*
 * Writing a region of a sharded array (shard.c has the format): an inner chunk per task, encoded and
 * appended to its shard's object as soon as it is ready, the index last or patched in; a shard the
 * region covers partly is read, patched and written whole.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tally/error.h"
#include "engine/shard.h"
#include "tally/codec.h"
#include "tally/mem.h"
#include "tally/timing.h"
#include "mem/plant.h"

/* Remote: shards open at once at most. Tasks run shard by shard, so one shard appends at a time: a
 * second open shard's share of the part buffers would mostly wait (measured on the RGW here, zstd,
 * 4 shards of 256 inner chunks, 64 MiB: 2 open 0.16 GB/s, 1 open 0.19-0.23, the plan before 0.13). */
#define SHARDS_OPEN 1

struct wshard {
    pthread_mutex_t mu;
    bool slotted; /* holds one of the operation's open-shard slots (remote) */
    struct tly_writer *w;
    uint64_t tail;   /* bytes appended so far */
    uint64_t left;   /* inner chunks not yet done */
    uint64_t *ent;   /* the index, 2 per inner chunk */
    bool open, done; /* the object is being written; committed (or deleted, when all empty) */
    char key[256];
    uint64_t idx[TLY_MAX_RANK];
};

struct swrite {
    struct tly__op op;
    const char *src;
    struct wshard *sh;
    uint64_t nsh;
    /* Remote: a shard's writer holds part buffers (one filling, in_flight uploading, and the first
     * while an index at the start waits for it) from its first inner chunk to its commit. Shards open
     * at once are limited to the slots those buffers fit in, reserved from the memory budget up front
     * (plan_parts).
     * A task takes its shard's slot before its own ticket and holds nothing while it waits; tasks
     * are taken in order, so the shards that hold the slots always have their tasks running. */
    int slots; /* 0: no limit (local) */
    int slots_free;
    int in_flight; /* parts each open shard's writer uploads at once (tly_writer_parts_in_flight) */
    pthread_mutex_t slot_mu;
    pthread_cond_t slot_cv;
};

static void slot_take(struct swrite *x, struct wshard *s)
{
    if (x->slots == 0)
        return;
    pthread_mutex_lock(&x->slot_mu);
    if (!s->slotted && x->slots_free == 0)
        TLY_STAGE(TLY_POOL)
        {
            uint64_t t0 = tly_wait_begin();
            while (!s->slotted && x->slots_free == 0) /* another task of the shard may take it meanwhile */
                pthread_cond_wait(&x->slot_cv, &x->slot_mu);
            tly_wait_end(t0, TLY_WAIT_TICKET);
        }
    if (!s->slotted) {
        x->slots_free--;
        s->slotted = true;
        pthread_cond_broadcast(&x->slot_cv);
    }
    pthread_mutex_unlock(&x->slot_mu);
}

static void slot_give(struct swrite *x, struct wshard *s)
{
    if (x->slots == 0)
        return;
    pthread_mutex_lock(&x->slot_mu);
    if (s->slotted) {
        x->slots_free++;
        s->slotted = false;
        pthread_cond_broadcast(&x->slot_cv);
    }
    pthread_mutex_unlock(&x->slot_mu);
}

/* Whether every piece holds only the fill value. */
static bool all_fill(const struct tly_array *a, const struct tly__segs *s)
{
    for (int i = 0; i < s->n; i++) {
        if (s->pad[i])
            continue;
        const char *p = s->iov[i].iov_base;
        for (size_t left = s->iov[i].iov_len; left > 0;) {
            size_t k = left < TLY__FILL_PATTERN_BYTES ? left : TLY__FILL_PATTERN_BYTES;
            if (memcmp(p, a->fill_pattern, k) != 0)
                return false;
            p += k;
            left -= k;
        }
    }
    return true;
}

/* Collects the one block of output a stream encoder gives when its buffer holds the whole frame. */
struct collect {
    void *buf;
    size_t n;
    int calls;
};

static int collect_sink(void *arg, const void *data, size_t n)
{
    struct collect *c = arg;
    if (c->calls++ > 0 || data != c->buf)
        return tly_fail(TLY_EINTERNAL, "a stream encoder's output did not fit its bound");
    c->n = n;
    return 0;
}

/* Encode an inner chunk's pieces into a new pool buffer (@p enc, @p len bytes). */
static int encode_inner(struct swrite *x, const struct tly__segs *s, uint64_t n, void **enc, size_t *len)
{
    struct tly_array *a = x->op.a;
    const struct tly_codec *c = &a->meta.codec;
    size_t bound = tly_codec_bound(c, n);
    void *gathered = NULL;
    int err;
    TLY_STAGE(TLY_ENCODE)
    {
        tly__plant_point(TLY_ENCODE);
        *enc = bound == SIZE_MAX ? NULL : tly_pool_alloc(bound);
    }
    if (*enc == NULL)
        return tly_fail(-ENOMEM, "out of memory for a %llu-byte inner chunk", (unsigned long long)n);
    if (tly_codec_streams(c)) { /* the pieces read in place */
        struct collect col = {*enc, 0, 0};
        err = tly__encode_stream(&x->op, c, s->iov, s->n, n, *enc, bound, collect_sink, &col);
        *len = col.n;
        return err;
    }
    const void *src = tly__segs_contiguous(a, s, n, &gathered);
    if (src == NULL)
        return tly_fail(-ENOMEM, "out of memory for a %llu-byte inner chunk", (unsigned long long)n);
    err = tly__encode(&x->op, *enc, bound, src, n, len);
    tly_pool_free(gathered);
    return err;
}

/* The most bytes one inner chunk's task holds (its ticket). */
static uint64_t inner_ticket(const struct tly_array *a, uint64_t n)
{
    const struct tly_codec *c = &a->meta.codec;
    if (tly_codec_stores_raw(c))
        return 0;
    uint64_t t = tly_codec_bound(c, n) + tly_codec_workspace(c, n, false, true); /* its runs may be gathered */
    /* a codec that does not stream may gather a strided inner chunk first */
    return tly_codec_streams(c) ? t : t + n;
}

/* Open shard @p s's object (under its lock), the index's place reserved first when it goes there. */
static int open_shard(struct swrite *x, struct wshard *s)
{
    struct tly_array *a = x->op.a;
    int err;
    TLY_STAGE(TLY_PUT)
    {
        err = tly_store_writer(a->store, s->key, &s->w);
    }
    if (!err)
        tly_writer_parts_in_flight(s->w, x->in_flight);
    if (err || !a->meta.shard.index_start)
        goto out;
    tly_writer_keep_head(s->w, (size_t)a->index_bytes, 0); /* a first part of the part size */
    static const uint8_t zeros[4096];
    for (uint64_t left = a->index_bytes; !err && left > 0;) {
        struct iovec iov = {(void *)zeros, left < sizeof zeros ? (size_t)left : sizeof zeros};
        TLY_STAGE(TLY_PUT)
        {
            err = tly_writer_writev(s->w, &iov, 1);
        }
        left -= iov.iov_len;
    }
    s->tail = a->index_bytes;
out:
    s->open = !err;
    if (err && s->w) {
        tly_writer_abort(s->w);
        s->w = NULL;
    }
    return err;
}

/* The shard's index, as stored. */
static int index_bytes(const struct tly_array *a, const struct wshard *s, uint8_t **out)
{
    uint64_t n = a->shard_n;
    uint8_t *b;
    TLY_STAGE(TLY_PUT)
    {
        b = malloc(a->index_bytes);
    }
    if (b == NULL)
        return tly_fail(-ENOMEM, "out of memory for a shard index");
    for (uint64_t k = 0; k < 2 * n; k++)
        tly__shard_put_le64(b + 8 * k, s->ent[k]);
    if (a->meta.shard.index_crc)
        tly__shard_put_le32(b + 16 * n, tly_crc32c(0, b, 16 * n));
    *out = b;
    return 0;
}

/* The last inner chunk of shard @p s is done: its index written (or patched in), the object
 * committed; a shard of nothing but fill value is not stored (an old one is deleted). Under its lock. */
static int finish_shard(struct swrite *x, struct wshard *s)
{
    struct tly_array *a = x->op.a;
    uint8_t *b = NULL;
    int err = 0;
    s->done = true;
    if (!s->open) {
        TLY_STAGE(TLY_PUT)
        {
            err = tly_store_delete(a->store, s->key);
        }
        return err;
    }
    err = index_bytes(a, s, &b);
    TLY_STAGE(TLY_PUT)
    {
        struct iovec iov = {b, a->index_bytes};
        if (!err)
            err = a->meta.shard.index_start ? tly_writer_patch(s->w, 0, b, a->index_bytes)
                                            : tly_writer_writev(s->w, &iov, 1);
        if (err)
            tly_writer_abort(s->w);
        else
            err = tly_writer_commit(s->w);
        s->w = NULL;
        s->open = false;
        free(b);
    }
    slot_give(x, s);
    atomic_fetch_add(&x->op.stats.stored_bytes, a->index_bytes);
    return err;
}

/* Task @p i: an inner chunk of a shard, encoded and appended. */
static int write_inner(void *arg, uint64_t i)
{
    struct swrite *x = arg;
    struct tly_array *a = x->op.a;
    /* remote: shard by shard (the open-shard slots rely on it); local: the shards' inner chunks
     * interleaved, so that workers append to different shards rather than wait for one's lock */
    uint64_t si = x->slots ? i / a->shard_n : i % x->nsh, local = x->slots ? i % a->shard_n : i / x->nsh;
    struct wshard *s = &x->sh[si];
    uint64_t g[TLY_MAX_RANK], n = tly__inner_bytes(a), ticket = 0;
    struct tly__segs segs = {0};
    struct tly_runs rs;
    void *enc = NULL;
    size_t len = 0;
    bool empty = true;
    int err = 0;
    TLY_STAGE(TLY_PLAN)
    {
        tly__plant_point(TLY_PLAN);
        if (tly__inner_at(a, s->idx, local, g)) {
            tly_runs_plan(&a->inner, g, x->op.r, a->meta.dtype.size, &rs);
            err = tly__plan_segments(a, &rs, x->src, &segs);
            empty = !err && all_fill(a, &segs);
        }
    }
    if (!err && !empty) {
        slot_take(x, s);
        ticket = inner_ticket(a, n);
        TLY_STAGE(TLY_POOL)
        {
            tly__plant_point(TLY_POOL);
            tly_pool_acquire(x->op.pool, ticket);
        }
        if (!tly_codec_stores_raw(&a->meta.codec))
            err = encode_inner(x, &segs, n, &enc, &len);
        else
            len = n;
    }
    uint8_t crc[4];
    if (!err && !empty && a->meta.crc32c) {
        uint32_t v = 0;
        TLY_STAGE(TLY_ENCODE)
        {
            if (enc)
                v = tly_crc32c(0, enc, len);
            else
                for (int k = 0; k < segs.n; k++)
                    v = tly_crc32c(v, segs.iov[k].iov_base, segs.iov[k].iov_len);
        }
        tly__shard_put_le32(crc, v);
    }
    pthread_mutex_lock(&s->mu);
    if (!err && !empty && !s->open)
        err = open_shard(x, s);
    if (!err && !empty) {
        struct iovec one = {enc, len}, tail = {crc, 4};
        TLY_STAGE(TLY_PUT)
        {
            tly__plant_point(TLY_PUT);
            err = enc ? tly_writer_writev(s->w, &one, 1) : tly_writer_writev(s->w, segs.iov, segs.n);
            if (!err && a->meta.crc32c)
                err = tly_writer_writev(s->w, &tail, 1);
        }
        uint64_t stored = len + (a->meta.crc32c ? 4 : 0);
        s->ent[2 * local] = s->tail;
        s->ent[2 * local + 1] = stored;
        s->tail += stored;
        atomic_fetch_add(&x->op.stats.chunks, 1);
        atomic_fetch_add(&x->op.stats.stored_bytes, stored);
    }
    if (!err && --s->left == 0)
        err = finish_shard(x, s);
    pthread_mutex_unlock(&s->mu);
    tly_pool_free(enc);
    if (ticket)
        tly_pool_release(x->op.pool, ticket);
    TLY_STAGE(TLY_PLAN)
    {
        tly__segs_free(&segs);
    }
    if (err)
        tly_err_prefix("shard %s", s->key);
    return err;
}

/*
 * Remote: the memory budget's split between the inner chunks in work and the open shards' part
 * buffers. Codec work runs on `threads` workers at once (the gate), so tickets for one inner chunk
 * more than that (encoding, and one encoded waiting to append) keep it busy; the part buffers get the rest,
 * at most half the budget (as before: a 100 MB array's peak stays under half of it, 0 extra copies),
 * drawn by the shards open at once (the slots): each a part filling, the first kept while an index at
 * the start waits for it, and as many parts uploading as its share holds beyond those (before: two
 * shards open, one part uploading each; 64 MiB now gives one shard three). The reservation holds the
 * rest of the budget too, so the inner chunks' tickets never take more than their share. A budget too
 * small for that runs one shard, one part uploading, with half the budget reserved (as a chunk larger
 * than the budget runs on a forced ticket). Returns the bytes to reserve; sets x->slots and x->in_flight.
 */
static uint64_t plan_parts(struct swrite *x, uint64_t nsh)
{
    struct tly_array *a = x->op.a;
    uint64_t part = a->opts.part_size, head = a->meta.shard.index_start ? 1 : 0, limit = a->opts.memory_limit;
    uint64_t work = ((uint64_t)a->opts.threads + 1) * inner_ticket(a, tly__inner_bytes(a));
    /* at most half the budget: a 100 MB shard's peak (its parts and inner chunks) under half the array */
    uint64_t parts = limit > work ? limit - work : 0;
    if (parts > limit / 2)
        parts = limit / 2;
    uint64_t tokens = parts / part, slots = nsh < SHARDS_OPEN ? nsh : SHARDS_OPEN;
    if (slots == 0)
        slots = 1;
    while (slots > 1 && tokens / slots < 3 + head)
        slots--;
    uint64_t per = tokens / slots;
    x->slots = (int)slots;
    x->slots_free = x->slots;
    x->in_flight = per >= 2 + head ? (int)(per - 1 - head) : 1;
    if (x->in_flight > a->opts.io_concurrency) /* more would wait for a transfer, holding their parts */
        x->in_flight = a->opts.io_concurrency;
    uint64_t reserve = slots * (uint64_t)(x->in_flight + 1 + head) * part;
    if (per < 2 + head)
        return reserve < limit / 2 ? reserve : limit / 2;
    /* the inner chunks' tickets get `work` and no more: up to io_concurrency workers would otherwise
     * fill the rest with inner chunks waiting for the gate (a 100 MB shard's peak went over half the
     * array: 1 extra copy) */
    return limit - work > reserve ? limit - work : reserve;
}

/* Write the shards @p sh (covered by the region @p r of @p src) inner chunk by inner chunk, under
 * @p outer's pool; its counters get theirs. */
static int write_shards(struct tly__op *outer, const char *src, const struct tly_region *r, struct wshard *sh,
                        uint64_t nsh)
{
    struct tly_array *a = outer->a;
    struct swrite x = {.src = src, .sh = sh, .nsh = nsh};
    int err = 0;
    x.op.a = a;
    x.op.r = r;
    x.op.pool = outer->pool;
    for (uint64_t i = 0; i < nsh; i++) {
        pthread_mutex_init(&sh[i].mu, NULL);
        sh[i].left = a->shard_n;
        sh[i].tail = 0;
        TLY_STAGE(TLY_PLAN)
        {
            sh[i].ent = malloc(2 * a->shard_n * sizeof *sh[i].ent);
        }
        if (sh[i].ent == NULL)
            err = tly_fail(-ENOMEM, "out of memory for a shard index");
        for (uint64_t k = 0; !err && k < 2 * a->shard_n; k++)
            sh[i].ent[k] = TLY__SHARD_EMPTY;
    }
    uint64_t tasks = nsh * a->shard_n, reserve = 0;
    x.op.codec_threads = tly__share(a->opts.threads, tasks);
    x.op.read_ways = 1;
    if (a->remote) {
        reserve = plan_parts(&x, nsh);
        pthread_mutex_init(&x.slot_mu, NULL);
        pthread_cond_init(&x.slot_cv, NULL);
        TLY_STAGE(TLY_POOL)
        {
            tly_pool_acquire(outer->pool, reserve);
        }
    }
    if (!err && tasks)
        err = tly__run_tasks(tly__workers(a), tasks, write_inner, &x);
    if (a->remote) {
        tly_pool_release(outer->pool, reserve);
        pthread_mutex_destroy(&x.slot_mu);
        pthread_cond_destroy(&x.slot_cv);
    }
    for (uint64_t i = 0; i < nsh; i++) {
        if (sh[i].open)
            TLY_STAGE(TLY_PUT)
            {
                tly_writer_abort(sh[i].w);
            }

        pthread_mutex_destroy(&sh[i].mu);
        TLY_STAGE(TLY_PLAN)
        {
            free(sh[i].ent);
        }
        sh[i].ent = NULL;
    }
    atomic_fetch_add(&outer->stats.chunks, atomic_load(&x.op.stats.chunks));
    atomic_fetch_add(&outer->stats.stored_bytes, atomic_load(&x.op.stats.stored_bytes));
    return err;
}

/* The region of shard @p sidx that lies in the array. */
static void shard_region(const struct tly_array *a, const uint64_t *sidx, struct tly_region *out)
{
    out->rank = a->meta.rank;
    for (int d = 0; d < out->rank; d++) {
        out->start[d] = sidx[d] * a->meta.chunks[d];
        uint64_t e = out->start[d] + a->meta.chunks[d];
        out->stop[d] = e < a->meta.shape[d] ? e : a->meta.shape[d];
    }
}

/* Copy the part of region @p r (its buffer @p src) that lies in shard region @p sr into @p tmp (a
 * buffer holding exactly @p sr), row by row of the last dimension. */
static void patch_in(const struct tly_array *a, const struct tly_region *r, const char *src,
                     const struct tly_region *sr, char *tmp)
{
    int rank = a->meta.rank;
    size_t es = a->meta.dtype.size;
    uint64_t lo[TLY_MAX_RANK], ext[TLY_MAX_RANK], rows = 1;
    for (int d = 0; d < rank; d++) {
        lo[d] = r->start[d] > sr->start[d] ? r->start[d] : sr->start[d];
        uint64_t hi = r->stop[d] < sr->stop[d] ? r->stop[d] : sr->stop[d];
        ext[d] = hi > lo[d] ? hi - lo[d] : 0;
        if (d < rank - 1)
            rows *= ext[d];
    }
    size_t row = (size_t)(ext[rank - 1] * es);
    TLY_STAGE(TLY_GATHER)
    {
        tly__plant_point(TLY_GATHER);
        for (uint64_t k = 0; row > 0 && k < rows; k++) {
            uint64_t t = k, pos[TLY_MAX_RANK], to = 0, so = 0;
            pos[rank - 1] = 0;
            for (int d = rank - 2; d >= 0; d--) {
                pos[d] = t % ext[d];
                t /= ext[d];
            }
            for (int d = 0; d < rank; d++) {
                to = to * (sr->stop[d] - sr->start[d]) + (lo[d] + pos[d] - sr->start[d]);
                so = so * (r->stop[d] - r->start[d]) + (lo[d] + pos[d] - r->start[d]);
            }
            tly_copy(tmp + to * es, src + so * es, row);
        }
    }
}

/* A shard the region covers only partly: read whole, patched with the region's part, written whole. */
static int rmw_shard(struct tly__op *op, const char *src, struct wshard *s)
{
    struct tly_array *a = op->a;
    struct tly_region sr;
    shard_region(a, s->idx, &sr);
    uint64_t bytes = tly_region_count(&sr) * a->meta.dtype.size;
    char *tmp;
    TLY_STAGE(TLY_GATHER)
    {
        tmp = tly_pool_alloc(bytes);
    }
    if (tmp == NULL)
        return tly_fail(-ENOMEM, "shard %s: out of memory for a read-modify-write of %llu bytes", s->key,
                        (unsigned long long)bytes);
    int err = tly__shard_read(a, tmp, &sr, NULL);
    if (!err) {
        patch_in(a, op->r, src, &sr, tmp);
        err = write_shards(op, tmp, &sr, s, 1);
    }
    atomic_fetch_add(&op->stats.rmw, 1);
    tly_pool_free(tmp);
    return err;
}

int tly__shard_write(struct tly_array *a, const void *buf, const struct tly_region *r, struct tly_io_stats *stats)
{
    struct tly__op op = {0};
    struct tly__shard *list = NULL;
    int err = tly__op_begin(&op, a, &a->grid, r);
    if (err)
        return err;
    TLY_STAGE(TLY_PLAN)
    {
        err = tly__shard_list(&op, &list);
    }
    struct wshard *cov = NULL;
    uint64_t ncov = 0;
    TLY_STAGE(TLY_PLAN)
    {
        cov = err ? NULL : calloc(op.nchunks ? op.nchunks : 1, sizeof *cov);
    }
    if (!err && cov == NULL)
        err = tly_fail(-ENOMEM, "out of memory planning a sharded write");
    /* shards the region covers first (all at once), then each partly covered one on its own */
    for (int pass = 0; pass < 2 && !err; pass++) {
        for (uint64_t i = 0; i < op.nchunks && !err; i++) {
            struct tly_runs rs;
            tly_runs_plan(&a->grid, list[i].idx, r, a->meta.dtype.size, &rs);
            if (rs.covers_chunk != (pass == 0))
                continue;
            struct wshard w = {0};
            /* the shard's grid index and key, not payload */
            memcpy(w.idx, list[i].idx, sizeof w.idx);
            memcpy(w.key, list[i].key, sizeof w.key);
            if (pass == 0)
                cov[ncov++] = w;
            else
                err = rmw_shard(&op, buf, &w);
        }
        if (pass == 0 && ncov)
            err = write_shards(&op, buf, r, cov, ncov);
    }
    tly__op_end(&op, stats);
    TLY_STAGE(TLY_PLAN)
    {
        free(cov);
        tly__shard_list_free(list, op.nchunks);
    }
    return err;
}
