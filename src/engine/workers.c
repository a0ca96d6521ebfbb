/*
 * Workers: run a task per chunk on a few threads. The first failure wins: the others stop taking
 * chunks, and its code and message come back on the calling thread. Each runs as one of the
 * engine's workers for time accounting (tally/timing.h), and while a trace is on each chunk, codec
 * call and wait for the codec gate is an event of its thread.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tally/error.h"
#include "common/opts.h"
#include "engine/internal.h"
#include "codec/blocks.h"
#include "tally/codec.h"
#include "tally/mem.h"
#include "tally/timing.h"

#define MAX_THREADS 256

struct job {
    tly__task_fn fn;
    void *ctx;
    uint64_t n;
    _Atomic uint64_t next;
    _Atomic int err;
    pthread_mutex_t mu;
    char msg[1024];
};

static void *work(void *arg)
{
    struct job *j = arg;
    tly_time_worker(true);
    for (;;) {
        if (atomic_load_explicit(&j->err, memory_order_relaxed))
            break;
        uint64_t i = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (i >= j->n)
            break;
        int err = j->fn(j->ctx, i);
        if (err) {
            pthread_mutex_lock(&j->mu);
            if (atomic_load(&j->err) == 0) {
                snprintf(j->msg, sizeof j->msg, "%s", tly_errmsg());
                atomic_store(&j->err, err);
            }
            pthread_mutex_unlock(&j->mu);
            break;
        }
    }
    tly_time_worker(false);
    return NULL;
}

int tly__run_tasks(int threads, uint64_t n, tly__task_fn fn, void *ctx)
{
    if (threads <= 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cpus > 0 ? (int)cpus : 1;
    }
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    if ((uint64_t)threads > n)
        threads = (int)n;
    struct job j = {.fn = fn, .ctx = ctx, .n = n};
    pthread_mutex_init(&j.mu, NULL);
    pthread_t th[MAX_THREADS];
    int started = 0;
    for (; started < threads - 1; started++)
        if (pthread_create(&th[started], NULL, work, &j) != 0)
            break; /* fewer threads is slower, not wrong */
    work(&j);
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    pthread_mutex_destroy(&j.mu);
    int err = atomic_load(&j.err);
    if (err)
        tly_fail(err, "%s", j.msg);
    return err;
}

void tly__chunk_at(int rank, const uint64_t *lo, const uint64_t *hi, uint64_t i, uint64_t *idx)
{
    for (int d = rank - 1; d >= 0; d--) {
        uint64_t span = hi[d] - lo[d];
        idx[d] = lo[d] + i % span;
        i /= span;
    }
}

/* The store's traffic as the operation starts (store_bytes_read/written are what it adds). */
static void traffic_begin(struct tly__op *op, struct tly_array *a)
{
    op->a = a;
    tly_store_traffic(a->store, &op->traffic_read0, &op->traffic_written0);
}

static void stats_out(const struct tly__op *op, struct tly_io_stats *out)
{
    if (out == NULL)
        return;
    const struct tly__op_stats *s = &op->stats;
    struct tly_pool_stats ps = {0};
    if (op->pool)
        tly_pool_stats(op->pool, &ps);
    uint64_t read, written;
    tly_store_traffic(op->a->store, &read, &written);
    out->store_bytes_read = read - op->traffic_read0;
    out->store_bytes_written = written - op->traffic_written0;
    out->chunks = atomic_load(&s->chunks);
    out->missing = atomic_load(&s->missing);
    out->rmw = atomic_load(&s->rmw);
    out->stored_bytes = atomic_load(&s->stored_bytes);
    out->needed_bytes = atomic_load(&s->needed_bytes);
    out->split_ranges = atomic_load(&s->split_ranges);
    out->pool_peak = ps.peak_in_use;
    out->pool_waits = ps.waits;
    out->pool_forced = ps.forced;
    out->workers = s->workers;
    out->threads = s->threads;
    out->io_concurrency = s->io_concurrency;
}

int tly_io_opts_resolve(const struct tly_io_opts *opts, struct tly_io_opts *out)
{
    struct tly_io_opts o = opts ? *opts : (struct tly_io_opts){0};
    uint64_t threads, conc, mem, part;
    int err;
    if ((err = tly__opt_resolve(TLY_OPT_THREADS, o.threads > 0 ? (uint64_t)o.threads : 0, &threads)) ||
        (err =
             tly__opt_resolve(TLY_OPT_IO_CONCURRENCY, o.io_concurrency > 0 ? (uint64_t)o.io_concurrency : 0, &conc)) ||
        (err = tly__opt_resolve(TLY_OPT_MEMORY_LIMIT, o.memory_limit, &mem)) ||
        (err = tly__opt_resolve(TLY_OPT_PART_SIZE, o.part_size, &part)))
        return err;
    if (o.threads < 0 || o.io_concurrency < 0)
        return tly_fail(TLY_EUSAGE, "threads %d, I/O concurrency %d: want positive counts", o.threads,
                        o.io_concurrency);
    if (threads == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cpus > 0 ? (uint64_t)cpus : 1;
    }
    o.threads = (int)threads;
    o.io_concurrency = (int)conc;
    o.memory_limit = mem;
    o.part_size = (size_t)part;
    *out = o;
    return 0;
}

int tly__check_region(const struct tly_array *a, const struct tly_region *r)
{
    if (r->rank != a->grid.rank)
        return tly_fail(TLY_EUSAGE, "region has %d dimensions, the array %d", r->rank, a->grid.rank);
    for (int d = 0; d < r->rank; d++)
        if (r->start[d] > r->stop[d] || r->stop[d] > a->grid.shape[d])
            return tly_fail(TLY_EUSAGE, "region %llu:%llu of dimension %d is outside 0:%llu",
                            (unsigned long long)r->start[d], (unsigned long long)r->stop[d], d,
                            (unsigned long long)a->grid.shape[d]);
    return 0;
}

int tly__workers(const struct tly_array *a)
{
    if (a->remote && a->opts.io_concurrency > a->opts.threads)
        return a->opts.io_concurrency;
    return a->opts.threads;
}

/* Through the gate for codec work of stage @p s; the time spent waiting there is a gate wait in s. */
static void codec_enter(struct tly_array *a, enum tly_stage s)
{
    if (!a->remote)
        return; /* workers == threads: the gate would never close */
    pthread_mutex_lock(&a->gate_mu);
    if (a->gate_free == 0)
        TLY_STAGE(s)
        {
            uint64_t t0 = tly_wait_begin();
            while (a->gate_free == 0)
                pthread_cond_wait(&a->gate_cv, &a->gate_mu);
            tly_wait_end(t0, TLY_WAIT_GATE);
        }
    a->gate_free--;
    pthread_mutex_unlock(&a->gate_mu);
}

/* A codec call's events, while a trace is on: "blosc encode" with the bytes in, then out. */
static void codec_event(const struct tly_array *a, bool begin, const char *what, uint64_t bytes, int err)
{
    if (!tly_trace_on())
        return;
    char name[32];
    snprintf(name, sizeof name, "%s %s", tly_codec_name(a->meta.codec.id), what);
    tly_trace_note(begin ? TLY_EV_CODEC_BEGIN : TLY_EV_CODEC_END, bytes, 0, err != 0, name);
}

static void codec_leave(struct tly_array *a)
{
    if (!a->remote)
        return;
    pthread_mutex_lock(&a->gate_mu);
    a->gate_free++;
    pthread_cond_signal(&a->gate_cv);
    pthread_mutex_unlock(&a->gate_mu);
}

int tly__encode(struct tly__op *op, void *dst, size_t cap, const void *src, size_t n, size_t *out_n)
{
    codec_enter(op->a, TLY_ENCODE);
    codec_event(op->a, true, "encode", n, 0);
    int err = tly_codec_encode(&op->a->meta.codec, dst, cap, src, n, out_n);
    codec_event(op->a, false, "encode", *out_n, err);
    codec_leave(op->a);
    return err;
}

int tly__encode_block(struct tly__op *op, const struct tly_block_plan *p, uint64_t j, const void *src, void *out,
                      const void **at, size_t *len)
{
    uint64_t lo = j * p->blocksize, n = p->n - lo < p->blocksize ? p->n - lo : p->blocksize;
    codec_enter(op->a, TLY_ENCODE);
    codec_event(op->a, true, "encode", n, 0);
    *len = 0;
    int err = tly__codec_blocks(&op->a->meta.codec)->encode_block(&op->a->meta.codec, p, j, src, out, at, len);
    codec_event(op->a, false, "encode", *len, err);
    codec_leave(op->a);
    return err;
}

struct tly_codec tly__op_codec(const struct tly__op *op)
{
    struct tly_codec c = op->a->meta.codec;
    c.threads = op->codec_threads;
    return c;
}

int tly__decode(struct tly__op *op, void *dst, size_t dst_n, const void *src, size_t n)
{
    struct tly_codec c = tly__op_codec(op);
    codec_enter(op->a, TLY_DECODE);
    codec_event(op->a, true, "decode", n, 0);
    int err = tly_codec_decode(&c, dst, dst_n, src, n);
    codec_event(op->a, false, "decode", dst_n, err);
    codec_leave(op->a);
    return err;
}

int tly__feed(struct tly__op *op, struct tly_dstream *ds, const void *in, size_t n)
{
    codec_enter(op->a, TLY_DECODE);
    codec_event(op->a, true, "decode", n, 0);
    int err = tly_dstream_feed(ds, in, n);
    codec_event(op->a, false, "decode", 0, err);
    codec_leave(op->a);
    return err;
}

/* Threads each chunk may use: with fewer chunks than threads, the idle ones' share. */
static int share(int threads, uint64_t chunks)
{
    return chunks > 0 && chunks < (uint64_t)threads ? threads / (int)chunks : 1;
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

/* An operation's chunk task, with its begin and end events (key, bytes) while a trace is on. */
struct chunk_task {
    struct tly__op *op;
    tly__task_fn fn;
    void *ctx;
};

static int chunk_task(void *arg, uint64_t i)
{
    struct chunk_task *ct = arg;
    if (!tly_trace_on())
        return ct->fn(ct->ctx, i);
    const struct tly_array *a = ct->op->a;
    uint64_t idx[TLY_MAX_RANK];
    char key[256];
    tly__chunk_at(a->grid.rank, ct->op->lo, ct->op->hi, i, idx);
    if (tly_meta_chunk_key(&a->meta, idx, key, sizeof key) < 0)
        key[0] = '\0';
    uint64_t bytes = tly_grid_chunk_elems(&a->grid) * a->meta.dtype.size;
    tly_trace_note(TLY_EV_CHUNK_BEGIN, bytes, i, 0, key);
    int err = ct->fn(ct->ctx, i);
    tly_trace_note(TLY_EV_CHUNK_END, bytes, i, err != 0, key);
    return err;
}

int tly__op_begin(struct tly__op *op, struct tly_array *a, const struct tly_grid *g, const struct tly_region *r)
{
    int err = tly__check_region(a, r);
    if (err)
        return err;
    traffic_begin(op, a);
    op->r = r;
    op->pool = tly_pool_create(a->opts.memory_limit);
    if (op->pool == NULL)
        return tly_fail(-ENOMEM, "out of memory");
    uint64_t n;
    TLY_STAGE(TLY_PLAN)
    {
        n = tly_grid_chunks_in(g, r, op->lo, op->hi);
    }
    op->nchunks = n;
    op->codec_threads = share(a->opts.threads, n);
    op->read_ways = share(tly__workers(a), n);
    op->stats.workers = (uint64_t)tly__workers(a) < n ? (uint64_t)tly__workers(a) : n;
    op->stats.threads = a->opts.threads;
    op->stats.io_concurrency = a->opts.io_concurrency;
    return 0;
}

void tly__op_end(struct tly__op *op, struct tly_io_stats *stats)
{
    stats_out(op, stats);
    tly_pool_destroy(op->pool);
    op->pool = NULL;
}

int tly__share(int threads, uint64_t chunks)
{
    return share(threads, chunks);
}

int tly__op_run(struct tly__op *op, struct tly_array *a, const struct tly_region *r, tly__task_fn fn, void *ctx,
                struct tly_io_stats *stats)
{
    int err = tly__op_begin(op, a, &a->grid, r);
    if (err)
        return err;
    struct chunk_task ct = {op, fn, ctx};
    err = op->nchunks ? tly__run_tasks(tly__workers(a), op->nchunks, chunk_task, &ct) : 0;
    tly__op_end(op, stats);
    return err;
}
