/*
 * An operation (a write or read of a region): its options resolved (tly_io_opts_resolve), its
 * region checked and planned into a chunk range, its pool of the memory budget, its chunks run on the
 * workers (each chunk an event while a trace is on), and its counters and the store's traffic
 * reported when it ends.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/opts.h"
#include "engine/internal.h"
#include "tally/error.h"
#include "tally/mem.h"
#include "tally/timing.h"

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
    op->requests0 = tly_store_read_requests(a->store);
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
    out->store_read_requests = tly_store_read_requests(op->a->store) - op->requests0;
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
    out->chunk_threads = atomic_load(&s->chunk_threads) > 1 ? atomic_load(&s->chunk_threads) : 1;
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

/* Threads each chunk may use: with fewer chunks than threads, the idle ones' share. */
static int share(int threads, uint64_t chunks)
{
    return chunks > 0 && chunks < (uint64_t)threads ? threads / (int)chunks : 1;
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
    op->workers = tly__workers(a);
    if (op->overlap_io && !a->remote) /* half as many again: ~30% of their time blocked leaves the threads busy */
        op->workers = a->opts.threads + (a->opts.threads + 1) / 2;
    op->read_ways = share(op->workers, n);
    op->stats.workers = (uint64_t)op->workers < n ? (uint64_t)op->workers : n;
    op->stats.threads = a->opts.threads;
    op->stats.io_concurrency = a->opts.io_concurrency;
    pthread_mutex_init(&op->turn_mu, NULL);
    pthread_cond_init(&op->turn_cv, NULL);
    op->turns_taken = 0;
    return 0;
}

void tly__op_end(struct tly__op *op, struct tly_io_stats *stats)
{
    stats_out(op, stats);
    tly_pool_destroy(op->pool);
    op->pool = NULL;
    pthread_cond_destroy(&op->turn_cv);
    pthread_mutex_destroy(&op->turn_mu);
}

void tly__op_chunk_threads(struct tly__op *op, int n)
{
    int now = atomic_load(&op->stats.chunk_threads);
    while (n > now && !atomic_compare_exchange_weak(&op->stats.chunk_threads, &now, n))
        ;
}

/*
 * One part uploading at a time left a lone chunk's encode waiting for it: write-s3-blosc-one-chunk
 * (1 GiB, 8 MiB parts) had its workers blocked on I/O 39% of the time and the HTTP loop busy 0.32 of a
 * thread, 0.27 GB/s against 0.41 for its CPU-shared limit. Half the budget is what a lone S3 chunk
 * takes on reads too (read_blocks.c's plan_window).
 */
uint64_t tly__own_window(const struct tly__op *op)
{
    const struct tly_array *a = op->a;
    if (!a->remote || op->nchunks == 0 || op->nchunks >= (uint64_t)op->workers)
        return 0;
    return a->opts.memory_limit / 2 / op->nchunks;
}

int tly__parts_in_flight(const struct tly__op *op, bool head)
{
    const struct tly_array *a = op->a;
    if (a->opts.part_size == 0)
        return 1;
    uint64_t per = tly__own_window(op) / a->opts.part_size, held = head ? 2 : 1;
    int n = per > held + 1 ? (int)(per - held) : 1;
    return n > a->opts.io_concurrency ? a->opts.io_concurrency : n;
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
    err = op->nchunks ? tly__run_tasks(op->workers, op->nchunks, chunk_task, &ct) : 0;
    tly__op_end(op, stats);
    return err;
}
