/*
 * The runs layer that read, write, the block paths and shards stand on: a chunk's runs in the
 * region's buffer filled with the fill value (missing chunks, edge padding) or copied through the
 * ledger; a chunk as segments of memory in chunk order (runs of the caller's buffer and of fill
 * value) and gathered when it must be one piece; the runs of a chunk stored as it is read straight
 * into the output; and a large read split into ranges read at once.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/internal.h"
#include "tally/error.h"
#include "tally/mem.h"
#include "mem/plant.h"

void tly__fill(const struct tly_array *a, void *dst, size_t n)
{
    if (!a->meta.has_fill || a->fill_pattern == NULL) {
        memset(dst, 0, n);
        return;
    }
    char *p = dst;
    while (n > 0) {
        size_t k = n < TLY__FILL_PATTERN_BYTES ? n : TLY__FILL_PATTERN_BYTES;
        memcpy(p, a->fill_pattern, k); /* the fill value, not payload: no ledger entry */
        p += k;
        n -= k;
    }
}

void tly__fill_runs(const struct tly_array *a, const struct tly_runs *rs, void *buf)
{
    struct tly_runs_iter it;
    uint64_t co, bo;
    tly_runs_iter_init(&it, rs);
    while (tly_runs_next(&it, &co, &bo))
        tly__fill(a, (char *)buf + bo, rs->run_bytes);
}

void tly__copy_runs(const struct tly_runs *rs, char *chunk, char *buf, bool to_buf)
{
    struct tly_runs_iter it;
    uint64_t co, bo;
    tly_runs_iter_init(&it, rs);
    while (tly_runs_next(&it, &co, &bo))
        if (to_buf)
            tly_copy(buf + bo, chunk + co, rs->run_bytes);
        else
            tly_copy(chunk + co, buf + bo, rs->run_bytes);
}

static int segs_push(struct tly__segs *s, const void *p, size_t len, bool pad)
{
    if (len == 0)
        return 0;
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 16;
        struct iovec *iov = realloc(s->iov, (size_t)cap * sizeof *iov);
        if (iov)
            s->iov = iov;
        bool *pd = iov ? realloc(s->pad, (size_t)cap * sizeof *pd) : NULL;
        if (pd == NULL)
            return tly_fail(-ENOMEM, "out of memory planning a chunk");
        s->pad = pd;
        s->cap = cap;
    }
    s->iov[s->n] = (struct iovec){(void *)p, len};
    s->pad[s->n++] = pad;
    return 0;
}

static int push_fill(struct tly__segs *s, const struct tly_array *a, uint64_t len)
{
    while (len > 0) {
        size_t k = len < TLY__FILL_PATTERN_BYTES ? (size_t)len : TLY__FILL_PATTERN_BYTES;
        int err = segs_push(s, a->fill_pattern, k, true);
        if (err)
            return err;
        len -= k;
    }
    return 0;
}

int tly__plan_segments(const struct tly_array *a, const struct tly_runs *rs, const char *src, struct tly__segs *s)
{
    struct tly_runs_iter it;
    uint64_t co, bo, pos = 0;
    int err = 0;
    tly_runs_iter_init(&it, rs);
    while (!err && tly_runs_next(&it, &co, &bo)) {
        if (co > pos)
            err = push_fill(s, a, co - pos);
        if (!err)
            err = segs_push(s, src + bo, rs->run_bytes, false);
        pos = co + rs->run_bytes;
    }
    if (!err && pos < rs->chunk_bytes)
        err = push_fill(s, a, rs->chunk_bytes - pos);
    return err;
}

int tly__segs_one(struct tly__segs *s, const void *p, size_t len)
{
    return segs_push(s, p, len, false);
}

const void *tly__segs_contiguous(const struct tly_array *a, const struct tly__segs *s, uint64_t n, void **gathered)
{
    *gathered = NULL;
    if (s->n == 1 && !s->pad[0])
        return s->iov[0].iov_base;
    TLY_STAGE(TLY_GATHER)
    {
        tly__plant_point(TLY_GATHER);
        *gathered = tly_pool_alloc(n);
        char *p = *gathered;
        for (int i = 0; p && i < s->n; p += s->iov[i].iov_len, i++) {
            if (s->pad[i])
                tly__fill(a, p, s->iov[i].iov_len);
            else
                tly_copy(p, s->iov[i].iov_base, s->iov[i].iov_len);
        }
    }
    return *gathered;
}

void tly__segs_free(struct tly__segs *s)
{
    free(s->iov);
    free(s->pad);
    *s = (struct tly__segs){0};
}

#define READ_BATCH 1024

/* Uncompressed: read the runs straight into the output, one call per stretch of adjacent runs. */
int tly__read_runs(struct tly__op *op, const char *key, uint64_t base, const struct tly_runs *rs, char *out)
{
    struct iovec iov[READ_BATCH];
    struct tly_runs_iter it;
    uint64_t co, bo, start = 0, next = 0;
    int n = 0, err = 0;
    tly_runs_iter_init(&it, rs);
    while (!err && tly_runs_next(&it, &co, &bo)) {
        if (n > 0 && (co != next || n == READ_BATCH)) {
            err = tly__readv(op, key, base + start, iov, n);
            n = 0;
        }
        if (n == 0)
            start = co;
        if (n > 0 && (char *)iov[n - 1].iov_base + iov[n - 1].iov_len == out + bo)
            iov[n - 1].iov_len += rs->run_bytes; /* adjacent in the output too: one piece */
        else
            iov[n++] = (struct iovec){out + bo, rs->run_bytes};
        next = co + rs->run_bytes;
    }
    if (!err && n > 0)
        err = tly__readv(op, key, base + start, iov, n);
    return err;
}

/* One range of a split read: bytes [lo, hi) of the whole, read into the matching slice of the pieces. */
struct split {
    struct tly__op *op;
    const char *key;
    uint64_t offset, total;
    const struct iovec *iov;
    int niov, ways;
};

static int read_range(void *arg, uint64_t i)
{
    struct split *sp = arg;
    uint64_t lo = sp->total * i / (uint64_t)sp->ways, hi = sp->total * (i + 1) / (uint64_t)sp->ways;
    struct iovec small[16], *sub = small;
    int err = 0;
    TLY_STAGE(TLY_GET)
    {
        if (sp->niov > 16)
            sub = malloc((size_t)sp->niov * sizeof *sub);
        int m = 0;
        uint64_t at = 0; /* offset of piece j in the whole */
        for (int j = 0; sub && j < sp->niov && at < hi; at += sp->iov[j].iov_len, j++) {
            uint64_t a = at > lo ? at : lo, b = at + sp->iov[j].iov_len < hi ? at + sp->iov[j].iov_len : hi;
            if (a < b)
                sub[m++] = (struct iovec){(char *)sp->iov[j].iov_base + (a - at), (size_t)(b - a)};
        }
        err = sub ? tly_store_readv(sp->op->a->store, sp->key, sp->offset + lo, sub, m)
                  : tly_fail(-ENOMEM, "out of memory");
        if (sub != small)
            free(sub);
    }
    return err;
}

int tly__readv(struct tly__op *op, const char *key, uint64_t offset, const struct iovec *iov, int niov)
{
    uint64_t total = 0;
    for (int j = 0; j < niov; j++)
        total += iov[j].iov_len;
    uint64_t ways = total / TLY__RANGE_MIN;
    if (ways > (uint64_t)op->read_ways)
        ways = (uint64_t)op->read_ways;
    if (ways < 2)
        return tly_store_readv(op->a->store, key, offset, iov, niov);
    struct split sp = {op, key, offset, total, iov, niov, (int)ways};
    atomic_fetch_add(&op->stats.split_ranges, ways);
    return tly__run_tasks((int)ways, ways, read_range, &sp);
}
