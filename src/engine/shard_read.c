/*
 * Reading a region of a sharded array (shard.c has the format): the index of every shard the region
 * touches, checked; then its inner chunks, coalesced into groups of adjacent byte ranges, each group
 * one read, its inner chunks decoded straight into the output where contiguous there.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tally/error.h"
#include "engine/shard.h"
#include "tally/codec.h"
#include "tally/mem.h"
#include "mem/plant.h"

/* Reads join two inner chunks' byte ranges into one when at most this many bytes lie between them:
 * a ranged GET costs a round trip (~1 ms on the RGW here), in which 64 KiB is little to read for
 * nothing. The slack this allows is at most TLY__SHARD_GAP per group joined. */
#define TLY__SHARD_GAP ((uint64_t)64 * 1024)

/* The local index of global inner chunk @p g in shard @p sidx. */
static uint64_t local_of(const struct tly_array *a, const uint64_t *sidx, const uint64_t *g)
{
    uint64_t l = 0;
    for (int d = 0; d < a->meta.rank; d++)
        l = l * a->per_shard[d] + (g[d] - sidx[d] * a->per_shard[d]);
    return l;
}

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
    struct tly__shard *sh;
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

static int check_entries(const struct tly_array *a, struct tly__shard *s)
{
    uint64_t lo = a->meta.shard.index_start ? a->index_bytes : 0;
    uint64_t hi = a->meta.shard.index_start ? s->size : s->size - a->index_bytes;
    struct item *sorted = NULL;
    uint64_t n = 0;
    int err = 0;
    for (uint64_t k = 0; k < a->shard_n && !err; k++) {
        uint64_t off = s->ent[2 * k], nb = s->ent[2 * k + 1];
        if (off == TLY__SHARD_EMPTY && nb == TLY__SHARD_EMPTY)
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
        if (s->ent[2 * k] != TLY__SHARD_EMPTY)
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
    struct tly__shard *s = &x->sh[i];
    uint64_t ib = a->index_bytes, n = a->shard_n;
    uint8_t *raw = NULL;
    /* the index is read and decoded whole (its bytes, then its entries): a budget it does not fit is
     * refused by name, never overrun by one request (an index of 2^26 inner chunks is 1 GiB) */
    uint64_t limit = a->opts.memory_limit;
    if (limit && 2 * ib > limit)
        return tly_fail(
            TLY_EUSAGE,
            "shard %s: its index (%llu inner chunks: %llu bytes, twice that to read and decode) does not fit "
            "--memory-limit %llu: raise it (TALLY_MEMORY_LIMIT)",
            s->key, (unsigned long long)n, (unsigned long long)ib, (unsigned long long)limit);
    /* an index at the end: its bytes and the shard's size by one request (a suffix range on S3);
     * at the start: the size, then its bytes */
    bool end = !a->meta.shard.index_start;
    int err = 0;
    TLY_STAGE(TLY_POOL)
    {
        tly_pool_acquire(x->op.pool, 2 * ib);
    }
    TLY_STAGE(TLY_GET)
    {
        tly__plant_point(TLY_GET);
        raw = tly_pool_alloc(ib);
        if (raw == NULL)
            err = tly_fail(-ENOMEM, "out of memory for a shard index");
        else if (end)
            err = tly_store_read_tail(a->store, s->key, raw, ib, &s->size);
        else
            err = tly_store_size(a->store, s->key, &s->size);
    }
    if (err == TLY_ENOTFOUND) {
        tly_errclear();
        s->missing = true;
        err = 0;
    } else {
        if (!err && s->size < ib)
            err = tly_fail(TLY_EFORMAT, "%llu bytes, fewer than its index's %llu (truncated?)",
                           (unsigned long long)s->size, (unsigned long long)ib);
        if (!err && !end)
            TLY_STAGE(TLY_GET)
            {
                struct iovec iov = {raw, ib};
                err = tly_store_readv(a->store, s->key, 0, &iov, 1);
            }
        atomic_fetch_add(&x->op.stats.stored_bytes, ib);
        uint32_t want, got;
        if (!err && a->meta.shard.index_crc &&
            (want = tly__shard_le32(raw + 16 * n)) != (got = tly_crc32c(0, raw, 16 * n)))
            err = tly_fail(TLY_EFORMAT, "index checksum mismatch (stored %08x, computed %08x)", want, got);
        TLY_STAGE(TLY_PLAN)
        {
            s->ent = err ? NULL : malloc(2 * n * sizeof *s->ent);
        }
        if (!err && s->ent == NULL)
            err = tly_fail(-ENOMEM, "out of memory for a shard index");
        for (uint64_t k = 0; !err && k < 2 * n; k++)
            s->ent[k] = tly__shard_le64(raw + 8 * k);
        if (!err)
            err = check_entries(a, s);
    }
    tly_pool_free(raw);
    tly_pool_release(x->op.pool, 2 * ib);
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

/*
 * The most bytes a group spans (unless one inner chunk is larger): the budget's share of one worker,
 * at most TLY__RANGE_MIN. A remote store runs io_concurrency workers, each group a ticket of its span
 * and an inner chunk's decode: groups of 8 MiB let 64 MiB hold 5 GETs in flight (memory-bound: the
 * workers waited 76% of the time for tickets, 0.37 GB/s of 0.56 on the RGW here), 2 MiB ones 15
 * (0.51); locally the threads' share is above 8 MiB at any budget worth having.
 */
static uint64_t group_max(const struct tly_array *a)
{
    uint64_t share = a->opts.memory_limit / (uint64_t)tly__workers(a);
    return share < TLY__RANGE_MIN ? share : TLY__RANGE_MIN;
}

/* Whether inner chunks are read straight into the output's runs (uncompressed, no checksum). */
static bool direct(const struct tly_array *a)
{
    return tly_codec_stores_raw(&a->meta.codec) && !a->meta.crc32c;
}

/* The inner chunks shard @p i holds of the region: missing ones filled now, the others items,
 * sorted by offset and coalesced into groups. */
static int plan_shard(struct sread *x, uint64_t i, const uint64_t *ilo, const uint64_t *ihi)
{
    struct tly_array *a = x->op.a;
    struct tly__shard *s = &x->sh[i];
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
        if (s->missing || s->ent[2 * l] == TLY__SHARD_EMPTY) {
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
    uint64_t gmax = group_max(a);
    for (uint64_t k = first; k < x->nitems && !err;) {
        struct group gr = {k, 1, x->items[k].off, x->items[k].off + x->items[k].nb, direct(a)};
        for (k++; !gr.direct && k < x->nitems; k++) {
            const struct item *it = &x->items[k];
            if (it->off - gr.end > TLY__SHARD_GAP || it->off + it->nb - gr.off > gmax)
                break;
            gr.end = it->off + it->nb;
            gr.n++;
        }
        err = push_group(x, gr);
    }
    return err;
}

/* Scatter a decoded inner chunk at @p src to its runs in the output. */
static void scatter(const struct tly_runs *rs, char *src, char *out)
{
    TLY_STAGE(TLY_SCATTER)
    {
        tly__plant_point(TLY_SCATTER);
        tly__copy_runs(rs, src, out, true);
    }
}

/* One inner chunk of a group, its @p nb encoded bytes at @p enc: checked, decoded into the output. */
static int decode_item(struct sread *x, const uint64_t *g, uint8_t *enc, uint64_t nb, void **scratch)
{
    struct tly_array *a = x->op.a;
    struct tly_runs rs;
    uint64_t n = tly__inner_bytes(a);
    tly_runs_plan(&a->inner, g, x->op.r, a->meta.dtype.size, &rs);
    if (a->meta.crc32c) {
        if (nb < 4)
            return tly_fail(TLY_EFORMAT, "%llu bytes, too few for its checksum", (unsigned long long)nb);
        nb -= 4;
        uint32_t want = tly__shard_le32(enc + nb), got;
        TLY_STAGE(TLY_DECODE)
        {
            got = tly_crc32c(0, enc, nb);
        }
        if (want != got)
            return tly_fail(TLY_EFORMAT, "checksum mismatch (stored %08x, computed %08x)", want, got);
    }
    if (tly_codec_stores_raw(&a->meta.codec)) {
        if (nb != n)
            return tly_fail(TLY_EFORMAT, "%llu bytes, expected %llu", (unsigned long long)nb, (unsigned long long)n);
        scatter(&rs, (char *)enc, x->out);
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
    tly__inner_at(x->op.a, x->sh[it->shard].idx, it->local, g);
}

static int read_group(void *arg, uint64_t gi)
{
    struct sread *x = arg;
    struct tly_array *a = x->op.a;
    const struct group *gr = &x->groups[gi];
    const struct tly__shard *s = &x->sh[x->items[gr->first].shard];
    uint64_t g[TLY_MAX_RANK], span = gr->end - gr->off, n = tly__inner_bytes(a);
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

int tly__shard_read(struct tly_array *a, void *buf, const struct tly_region *r, struct tly_io_stats *stats)
{
    struct sread x = {.out = buf};
    int err = tly__op_begin(&x.op, a, &a->grid, r);
    if (err)
        return err;
    TLY_STAGE(TLY_PLAN)
    {
        err = tly__shard_list(&x.op, &x.sh);
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
        tly__shard_list_free(x.sh, x.op.nchunks);
        free(x.items);
        free(x.groups);
    }
    return err;
}
