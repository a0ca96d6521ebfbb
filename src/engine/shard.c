/*
 * Zarr v3 sharding (sharding_indexed v1.0): each chunk of the grid is a shard, one stored object
 * holding inner chunks and an index of (offset, nbytes) pairs, one per inner chunk in C order,
 * 2^64-1 twice for an inner chunk not stored (all fill value), then the index's CRC-32C.
 *
 * Reading a region:
 *   1. the index of every shard the region touches (one size query and one ranged read each, in
 *      parallel), checked: checksum, every entry inside the shard's data, no two overlapping;
 *   2. the inner chunks the region touches, sorted by offset and coalesced into groups of adjacent
 *      byte ranges (gaps up to TLY__SHARD_GAP, groups up to TLY__RANGE_MIN unless one inner chunk is
 *      larger), each group one read into a buffer, its inner chunks decoded straight into the output
 *      where they are contiguous there, else into an inner chunk's buffer scattered to the runs;
 *      uncompressed inner chunks without a checksum are read straight into the output's runs.
 *   Missing shards and inner chunks: the fill value written into the output.
 *
 * Writing: a shard the region covers is written inner chunk by inner chunk, each a task of its own:
 * encoded by whichever worker takes it (from the caller's memory where the codec reads pieces in
 * place: none, zstd; else gathered first when strided), then appended to the shard's object under the
 * shard's lock as soon as it is ready (local: pwritev; S3: multipart parts cut from the appended
 * bytes), its place recorded in the index. An inner chunk that holds only the fill value is not
 * stored. The index goes last (index_location end), or is reserved first and patched in at the end
 * (start). The encoded shard is never held whole. A shard the region covers only partly is read
 * whole, patched and written again (a read-modify-write of the shard: stats.rmw counts them).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "tally/error.h"
#include "engine/internal.h"
#include "tally/codec.h"
#include "tally/mem.h"
#include "tally/timing.h"
#include "mem/plant.h"

/* Reads join two inner chunks' byte ranges into one when at most this many bytes lie between them:
 * a ranged GET costs a round trip (~1 ms on the RGW here), in which 64 KiB is little to read for
 * nothing. The slack this allows is at most TLY__SHARD_GAP per group joined. */
#define TLY__SHARD_GAP ((uint64_t)64 * 1024)
#define EMPTY UINT64_MAX
/* An index of more entries than this is refused (its 16 bytes per inner chunk are held whole). */
#define SHARD_N_MAX ((uint64_t)1 << 26)

static inline uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static inline void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++, v >>= 8)
        p[i] = (uint8_t)v;
}

static inline uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++, v >>= 8)
        p[i] = (uint8_t)v;
}

int tly__shard_setup(struct tly_array *a)
{
    const struct tly_meta *m = &a->meta;
    uint64_t n = 1;
    if (m->rank == 0)
        return tly_fail(TLY_EUNSUPPORTED, "%s: a sharded array of rank 0", tly_store_url(a->store));
    int err = tly_grid_init(&a->inner, m->rank, m->shape, m->shard.inner);
    if (err)
        return err;
    for (int d = 0; d < m->rank; d++) {
        if (m->shard.inner[d] == 0 || m->chunks[d] % m->shard.inner[d] != 0)
            return tly_fail(TLY_EFORMAT, "%s: inner chunk %llu does not divide the shard's %llu (dimension %d)",
                            tly_store_url(a->store), (unsigned long long)m->shard.inner[d],
                            (unsigned long long)m->chunks[d], d);
        a->per_shard[d] = m->chunks[d] / m->shard.inner[d];
        if (a->per_shard[d] > SHARD_N_MAX || n * a->per_shard[d] > SHARD_N_MAX)
            return tly_fail(TLY_EUNSUPPORTED, "%s: more than %llu inner chunks in a shard", tly_store_url(a->store),
                            (unsigned long long)SHARD_N_MAX);
        n *= a->per_shard[d];
    }
    a->shard_n = n;
    a->index_bytes = 16 * n + (m->shard.index_crc ? 4 : 0);
    return 0;
}

/* The bytes of one (full-size) inner chunk. */
static uint64_t inner_bytes(const struct tly_array *a)
{
    return tly_grid_chunk_elems(&a->inner) * a->meta.dtype.size;
}

/* Inner chunk @p local (C order in the shard) of shard @p sidx, as global inner grid coordinates;
 * false when it lies wholly outside the array (an edge shard's padding). */
static bool inner_at(const struct tly_array *a, const uint64_t *sidx, uint64_t local, uint64_t *g)
{
    bool inside = true;
    for (int d = a->meta.rank - 1; d >= 0; d--) {
        g[d] = sidx[d] * a->per_shard[d] + local % a->per_shard[d];
        local /= a->per_shard[d];
        inside = inside && g[d] < a->inner.nchunks[d];
    }
    return inside;
}

/* The local index of global inner chunk @p g in shard @p sidx. */
static uint64_t local_of(const struct tly_array *a, const uint64_t *sidx, const uint64_t *g)
{
    uint64_t l = 0;
    for (int d = 0; d < a->meta.rank; d++)
        l = l * a->per_shard[d] + (g[d] - sidx[d] * a->per_shard[d]);
    return l;
}

static bool has_crc(const struct tly_array *a)
{
    return a->meta.crc32c;
}

/* ------------------------------------------------------------------------------------------------
 * Reading
 */

struct shard {
    uint64_t idx[TLY_MAX_RANK];
    char key[256];
    uint64_t size; /* the object's bytes */
    bool missing;  /* no object: every inner chunk is the fill value */
    uint64_t *ent; /* 2 per inner chunk: offset, nbytes */
};

struct item {
    uint64_t shard, local, off, nb;
};

struct group {
    uint64_t first, n; /* items */
    uint64_t off, end; /* the byte range they span */
    bool direct;       /* one uncompressed inner chunk without checksum: its runs read straight */
};

struct sread {
    struct tly__op op;
    char *out;
    struct shard *sh;
    struct item *items;
    uint64_t nitems, items_cap;
    struct group *groups;
    uint64_t ngroups, groups_cap;
};

static int by_off(const void *x, const void *y)
{
    const struct item *p = x, *q = y;
    return p->off < q->off ? -1 : p->off > q->off;
}

static int check_entries(const struct tly_array *a, struct shard *s)
{
    uint64_t lo = a->meta.shard.index_start ? a->index_bytes : 0;
    uint64_t hi = a->meta.shard.index_start ? s->size : s->size - a->index_bytes;
    struct item *sorted = NULL;
    uint64_t n = 0;
    int err = 0;
    for (uint64_t k = 0; k < a->shard_n && !err; k++) {
        uint64_t off = s->ent[2 * k], nb = s->ent[2 * k + 1];
        if (off == EMPTY && nb == EMPTY)
            continue;
        if (off < lo || off > hi || nb > hi - off || nb == 0)
            err = tly_fail(TLY_EFORMAT,
                           "index entry %llu (offset %llu, %llu bytes) lies outside the shard's data [%llu, %llu)",
                           (unsigned long long)k, (unsigned long long)off, (unsigned long long)nb,
                           (unsigned long long)lo, (unsigned long long)hi);
        n++;
    }
    if (err || n < 2)
        return err;
    sorted = malloc(n * sizeof *sorted);
    if (sorted == NULL)
        return tly_fail(-ENOMEM, "out of memory checking a shard index");
    n = 0;
    for (uint64_t k = 0; k < a->shard_n; k++)
        if (s->ent[2 * k] != EMPTY)
            sorted[n++] = (struct item){0, k, s->ent[2 * k], s->ent[2 * k + 1]};
    qsort(sorted, n, sizeof *sorted, by_off);
    for (uint64_t i = 1; i < n && !err; i++)
        if (sorted[i].off < sorted[i - 1].off + sorted[i - 1].nb)
            err = tly_fail(TLY_EFORMAT, "index entries %llu and %llu overlap (bytes %llu+%llu and %llu+%llu)",
                           (unsigned long long)sorted[i - 1].local, (unsigned long long)sorted[i].local,
                           (unsigned long long)sorted[i - 1].off, (unsigned long long)sorted[i - 1].nb,
                           (unsigned long long)sorted[i].off, (unsigned long long)sorted[i].nb);
    free(sorted);
    return err;
}

/* Shard @p i's index: read, checked and decoded into s->ent (or s->missing). */
static int read_index(void *arg, uint64_t i)
{
    struct sread *x = arg;
    struct tly_array *a = x->op.a;
    struct shard *s = &x->sh[i];
    uint64_t ib = a->index_bytes, n = a->shard_n;
    uint8_t *raw = NULL;
    int err;
    TLY_STAGE(TLY_GET)
    {
        tly__plant_point(TLY_GET);
        err = tly_store_size(a->store, s->key, &s->size);
    }
    if (err == TLY_ENOTFOUND) {
        tly_errclear();
        s->missing = true;
        return 0;
    }
    if (!err && s->size < ib)
        err = tly_fail(TLY_EFORMAT, "%llu bytes, fewer than its index's %llu (truncated?)", (unsigned long long)s->size,
                       (unsigned long long)ib);
    if (!err) {
        TLY_STAGE(TLY_POOL)
        {
            tly_pool_acquire(x->op.pool, 2 * ib);
        }
        TLY_STAGE(TLY_GET)
        {
            raw = tly_pool_alloc(ib);
            struct iovec iov = {raw, ib};
            err = raw ? tly_store_readv(a->store, s->key, a->meta.shard.index_start ? 0 : s->size - ib, &iov, 1)
                      : tly_fail(-ENOMEM, "out of memory for a shard index");
        }
        atomic_fetch_add(&x->op.stats.stored_bytes, ib);
        uint32_t want, got;
        if (!err && a->meta.shard.index_crc && (want = le32(raw + 16 * n)) != (got = tly_crc32c(0, raw, 16 * n)))
            err = tly_fail(TLY_EFORMAT, "index checksum mismatch (stored %08x, computed %08x)", want, got);
        TLY_STAGE(TLY_PLAN)
        {
            s->ent = err ? NULL : malloc(2 * n * sizeof *s->ent);
        }
        if (!err && s->ent == NULL)
            err = tly_fail(-ENOMEM, "out of memory for a shard index");
        for (uint64_t k = 0; !err && k < 2 * n; k++)
            s->ent[k] = le64(raw + 8 * k);
        tly_pool_free(raw);
        tly_pool_release(x->op.pool, 2 * ib);
        if (!err)
            err = check_entries(a, s);
    }
    if (err)
        tly_err_prefix("shard %s", s->key);
    return err;
}

static int push_item(struct sread *x, struct item it)
{
    if (x->nitems == x->items_cap) {
        uint64_t cap = x->items_cap ? 2 * x->items_cap : 64;
        struct item *p = realloc(x->items, cap * sizeof *p);
        if (p == NULL)
            return tly_fail(-ENOMEM, "out of memory planning a sharded read");
        x->items = p;
        x->items_cap = cap;
    }
    x->items[x->nitems++] = it;
    return 0;
}

static int push_group(struct sread *x, struct group g)
{
    if (x->ngroups == x->groups_cap) {
        uint64_t cap = x->groups_cap ? 2 * x->groups_cap : 64;
        struct group *p = realloc(x->groups, cap * sizeof *p);
        if (p == NULL)
            return tly_fail(-ENOMEM, "out of memory planning a sharded read");
        x->groups = p;
        x->groups_cap = cap;
    }
    x->groups[x->ngroups++] = g;
    return 0;
}

/* Whether inner chunks are read straight into the output's runs (uncompressed, no checksum). */
static bool direct(const struct tly_array *a)
{
    return a->meta.codec.id == TLY_CODEC_NONE && !has_crc(a);
}

/* The inner chunks shard @p i holds of the region: missing ones filled now, the others items,
 * sorted by offset and coalesced into groups. */
static int plan_shard(struct sread *x, uint64_t i, const uint64_t *ilo, const uint64_t *ihi)
{
    struct tly_array *a = x->op.a;
    struct shard *s = &x->sh[i];
    int rank = a->meta.rank;
    uint64_t lo[TLY_MAX_RANK], hi[TLY_MAX_RANK], g[TLY_MAX_RANK], count = 1;
    for (int d = 0; d < rank; d++) {
        uint64_t b = s->idx[d] * a->per_shard[d], e = b + a->per_shard[d];
        lo[d] = ilo[d] > b ? ilo[d] : b;
        hi[d] = ihi[d] < e ? ihi[d] : e;
        count *= hi[d] > lo[d] ? hi[d] - lo[d] : 0;
    }
    uint64_t first = x->nitems;
    int err = 0;
    for (uint64_t k = 0; k < count && !err; k++) {
        tly__chunk_at(rank, lo, hi, k, g);
        uint64_t l = local_of(a, s->idx, g);
        if (s->missing || s->ent[2 * l] == EMPTY) {
            struct tly_runs rs;
            tly_runs_plan(&a->inner, g, x->op.r, a->meta.dtype.size, &rs);
            TLY_STAGE(TLY_SCATTER)
            {
                tly__fill_runs(a, &rs, x->out);
            }
            atomic_fetch_add(&x->op.stats.missing, 1);
            atomic_fetch_add(&x->op.stats.chunks, 1);
            continue;
        }
        err = push_item(x, (struct item){i, l, s->ent[2 * l], s->ent[2 * l + 1]});
    }
    if (err)
        return err;
    if (x->nitems > first)
        qsort(x->items + first, x->nitems - first, sizeof *x->items, by_off);
    for (uint64_t k = first; k < x->nitems && !err;) {
        struct group gr = {k, 1, x->items[k].off, x->items[k].off + x->items[k].nb, direct(a)};
        for (k++; !gr.direct && k < x->nitems; k++) {
            const struct item *it = &x->items[k];
            if (it->off - gr.end > TLY__SHARD_GAP || it->off + it->nb - gr.off > TLY__RANGE_MIN)
                break;
            gr.end = it->off + it->nb;
            gr.n++;
        }
        err = push_group(x, gr);
    }
    return err;
}

/* Scatter a decoded inner chunk at @p src to its runs in the output. */
static void scatter(const struct tly_runs *rs, const char *src, char *out)
{
    struct tly_runs_iter it;
    uint64_t co, bo;
    tly_runs_iter_init(&it, rs);
    TLY_STAGE(TLY_SCATTER)
    {
        tly__plant_point(TLY_SCATTER);
        while (tly_runs_next(&it, &co, &bo))
            tly_copy(out + bo, src + co, rs->run_bytes);
    }
}

/* One inner chunk of a group, its @p nb encoded bytes at @p enc: checked, decoded into the output. */
static int decode_item(struct sread *x, const uint64_t *g, uint8_t *enc, uint64_t nb, void **scratch)
{
    struct tly_array *a = x->op.a;
    struct tly_runs rs;
    uint64_t n = inner_bytes(a);
    tly_runs_plan(&a->inner, g, x->op.r, a->meta.dtype.size, &rs);
    if (has_crc(a)) {
        if (nb < 4)
            return tly_fail(TLY_EFORMAT, "%llu bytes, too few for its checksum", (unsigned long long)nb);
        nb -= 4;
        uint32_t want = le32(enc + nb), got;
        TLY_STAGE(TLY_DECODE)
        {
            got = tly_crc32c(0, enc, nb);
        }
        if (want != got)
            return tly_fail(TLY_EFORMAT, "checksum mismatch (stored %08x, computed %08x)", want, got);
    }
    if (a->meta.codec.id == TLY_CODEC_NONE) {
        if (nb != n)
            return tly_fail(TLY_EFORMAT, "%llu bytes, expected %llu", (unsigned long long)nb, (unsigned long long)n);
        scatter(&rs, (const char *)enc, x->out);
        return 0;
    }
    if (tly_runs_contiguous(&rs))
        return tly__decode(&x->op, x->out + rs.buf_base, n, enc, nb);
    if (*scratch == NULL) {
        TLY_STAGE(TLY_DECODE)
        {
            *scratch = tly_pool_alloc(n);
        }
        if (*scratch == NULL)
            return tly_fail(-ENOMEM, "out of memory for a %llu-byte inner chunk", (unsigned long long)n);
    }
    int err = tly__decode(&x->op, *scratch, n, enc, nb);
    if (!err)
        scatter(&rs, *scratch, x->out);
    return err;
}

static void item_coords(const struct sread *x, const struct item *it, uint64_t *g)
{
    inner_at(x->op.a, x->sh[it->shard].idx, it->local, g);
}

static int read_group(void *arg, uint64_t gi)
{
    struct sread *x = arg;
    struct tly_array *a = x->op.a;
    const struct group *gr = &x->groups[gi];
    const struct shard *s = &x->sh[x->items[gr->first].shard];
    uint64_t g[TLY_MAX_RANK], span = gr->end - gr->off, n = inner_bytes(a);
    int err = 0;
    if (gr->direct) {
        struct tly_runs rs;
        const struct item *it = &x->items[gr->first];
        item_coords(x, it, g);
        tly_runs_plan(&a->inner, g, x->op.r, a->meta.dtype.size, &rs);
        if (it->nb != n)
            err = tly_fail(TLY_EFORMAT, "inner chunk %llu at byte %llu: %llu bytes, expected %llu",
                           (unsigned long long)it->local, (unsigned long long)it->off, (unsigned long long)it->nb,
                           (unsigned long long)n);
        else
            TLY_STAGE(TLY_GET)
            {
                tly__plant_point(TLY_GET);
                err = tly__read_runs(&x->op, s->key, it->off, &rs, x->out);
            }
        atomic_fetch_add(&x->op.stats.chunks, 1);
        atomic_fetch_add(&x->op.stats.stored_bytes, rs.nruns * rs.run_bytes);
        atomic_fetch_add(&x->op.stats.needed_bytes, rs.nruns * rs.run_bytes);
    } else {
        struct tly_codec c = tly__op_codec(&x->op);
        uint64_t ticket = span + n + tly_codec_workspace(&c, n, true, false);
        void *buf = NULL, *scratch = NULL;
        TLY_STAGE(TLY_POOL)
        {
            tly__plant_point(TLY_POOL);
            tly_pool_acquire(x->op.pool, ticket);
        }
        TLY_STAGE(TLY_GET)
        {
            tly__plant_point(TLY_GET);
            buf = tly_pool_alloc(span);
            struct iovec iov = {buf, span};
            err = buf ? tly__readv(&x->op, s->key, gr->off, &iov, 1)
                      : tly_fail(-ENOMEM, "out of memory for %llu bytes of a shard", (unsigned long long)span);
        }
        atomic_fetch_add(&x->op.stats.stored_bytes, span);
        for (uint64_t k = 0; !err && k < gr->n; k++) {
            const struct item *it = &x->items[gr->first + k];
            item_coords(x, it, g);
            err = decode_item(x, g, (uint8_t *)buf + (it->off - gr->off), it->nb, &scratch);
            atomic_fetch_add(&x->op.stats.chunks, 1);
            atomic_fetch_add(&x->op.stats.needed_bytes, it->nb);
            if (err) {
                char at[32 * TLY_MAX_RANK] = "", *p = at;
                for (int d = 0; d < a->meta.rank; d++)
                    p += snprintf(p, sizeof at - (size_t)(p - at), "%s%llu", d ? "," : "",
                                  (unsigned long long)(g[d] - s->idx[d] * a->per_shard[d]));
                tly_err_prefix("inner chunk (%s) at byte %llu", at, (unsigned long long)it->off);
            }
        }
        tly_pool_free(scratch);
        tly_pool_free(buf);
        tly_pool_release(x->op.pool, ticket);
    }
    if (err)
        tly_err_prefix("shard %s", s->key);
    return err;
}

/* The shards a region touches, with their keys. */
static int list_shards(struct tly__op *op, struct shard **out)
{
    struct tly_array *a = op->a;
    struct shard *sh = calloc(op->nchunks ? op->nchunks : 1, sizeof *sh);
    if (sh == NULL)
        return tly_fail(-ENOMEM, "out of memory planning a sharded operation");
    for (uint64_t i = 0; i < op->nchunks; i++) {
        tly__chunk_at(a->meta.rank, op->lo, op->hi, i, sh[i].idx);
        if (tly_meta_chunk_key(&a->meta, sh[i].idx, sh[i].key, sizeof sh[i].key) < 0) {
            free(sh);
            return tly_fail(TLY_EUSAGE, "shard key too long");
        }
    }
    *out = sh;
    return 0;
}

static void free_shards(struct shard *sh, uint64_t n)
{
    for (uint64_t i = 0; sh && i < n; i++)
        free(sh[i].ent);
    free(sh);
}

int tly__shard_read(struct tly_array *a, void *buf, const struct tly_region *r, struct tly_io_stats *stats)
{
    struct sread x = {.out = buf};
    int err = tly__op_begin(&x.op, a, &a->grid, r);
    if (err)
        return err;
    TLY_STAGE(TLY_PLAN)
    {
        err = list_shards(&x.op, &x.sh);
    }
    if (!err && x.op.nchunks)
        err = tly__run_tasks(tly__workers(a), x.op.nchunks, read_index, &x);
    uint64_t ilo[TLY_MAX_RANK], ihi[TLY_MAX_RANK];
    TLY_STAGE(TLY_PLAN)
    {
        if (!err)
            tly_grid_chunks_in(&a->inner, r, ilo, ihi);
        for (uint64_t i = 0; !err && i < x.op.nchunks; i++)
            err = plan_shard(&x, i, ilo, ihi);
    }
    if (!err && x.ngroups) {
        x.op.codec_threads = tly__share(a->opts.threads, x.ngroups);
        x.op.read_ways = tly__share(tly__workers(a), x.ngroups);
        err = tly__run_tasks(tly__workers(a), x.ngroups, read_group, &x);
    }
    tly__op_end(&x.op, stats);
    TLY_STAGE(TLY_PLAN)
    {
        free_shards(x.sh, x.op.nchunks);
        free(x.items);
        free(x.groups);
    }
    return err;
}

/* ------------------------------------------------------------------------------------------------
 * Writing
 */

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
    /* Remote: a shard's writer holds part buffers (one filling, one uploading, and the first while
     * an index at the start waits for it) from its first inner chunk to its commit. Shards open at
     * once are limited to the slots those buffers fit in, reserved from the memory budget up front.
     * A task takes its shard's slot before its own ticket and holds nothing while it waits; tasks
     * are taken in order, so the shards that hold the slots always have their tasks running. */
    int slots; /* 0: no limit (local) */
    int slots_free;
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
    if (c->id == TLY_CODEC_ZSTD || c->id == TLY_CODEC_GZIP) { /* the pieces read in place */
        struct collect col = {*enc, 0, 0};
        err = c->id == TLY_CODEC_ZSTD ? tly_zstd_encode_stream(c, s->iov, s->n, n, *enc, bound, collect_sink, &col)
                                      : tly_gzip_encode_stream(c, s->iov, s->n, n, *enc, bound, collect_sink, &col);
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
    if (c->id == TLY_CODEC_NONE)
        return 0;
    uint64_t t = tly_codec_bound(c, n) + tly_codec_workspace(c, n, false, false);
    /* blosc may gather a strided inner chunk first */
    return c->id == TLY_CODEC_ZSTD || c->id == TLY_CODEC_GZIP ? t : t + n;
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
    if (err || !a->meta.shard.index_start)
        goto out;
    tly_writer_keep_head(s->w);
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
        put_le64(b + 8 * k, s->ent[k]);
    if (a->meta.shard.index_crc)
        put_le32(b + 16 * n, tly_crc32c(0, b, 16 * n));
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
    uint64_t g[TLY_MAX_RANK], n = inner_bytes(a), ticket = 0;
    struct tly__segs segs = {0};
    struct tly_runs rs;
    void *enc = NULL;
    size_t len = 0;
    bool empty = true;
    int err = 0;
    TLY_STAGE(TLY_PLAN)
    {
        tly__plant_point(TLY_PLAN);
        if (inner_at(a, s->idx, local, g)) {
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
        if (a->meta.codec.id != TLY_CODEC_NONE)
            err = encode_inner(x, &segs, n, &enc, &len);
        else
            len = n;
    }
    uint8_t crc[4];
    if (!err && !empty && has_crc(a)) {
        uint32_t v = 0;
        TLY_STAGE(TLY_ENCODE)
        {
            if (enc)
                v = tly_crc32c(0, enc, len);
            else
                for (int k = 0; k < segs.n; k++)
                    v = tly_crc32c(v, segs.iov[k].iov_base, segs.iov[k].iov_len);
        }
        put_le32(crc, v);
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
            if (!err && has_crc(a))
                err = tly_writer_writev(s->w, &tail, 1);
        }
        uint64_t stored = len + (has_crc(a) ? 4 : 0);
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
            sh[i].ent[k] = EMPTY;
    }
    uint64_t tasks = nsh * a->shard_n, reserve = 0;
    x.op.codec_threads = tly__share(a->opts.threads, tasks);
    x.op.read_ways = 1;
    if (a->remote) {
        uint64_t parts = (a->meta.shard.index_start ? 3 : 2) * (uint64_t)a->opts.part_size;
        uint64_t fit = a->opts.memory_limit / 2 / parts;
        x.slots = fit < 1 ? 1 : fit > nsh ? (int)(nsh ? nsh : 1) : (int)fit;
        x.slots_free = x.slots;
        reserve = (uint64_t)x.slots * parts;
        if (reserve > a->opts.memory_limit / 2)
            reserve = a->opts.memory_limit / 2;
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
    struct shard *list = NULL;
    int err = tly__op_begin(&op, a, &a->grid, r);
    if (err)
        return err;
    TLY_STAGE(TLY_PLAN)
    {
        err = list_shards(&op, &list);
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
        free_shards(list, op.nchunks);
    }
    return err;
}
