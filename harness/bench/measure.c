/*
 * The child side of tally bench (`tally bench-cell SPEC`): one measurement of one kind, in a process
 * of its own, under the memory policy every kind follows; and the engine's measurement (kind tally,
 * which is also the untracked one under TALLY_TRACK=0). The baselines are in limits.c and codec.c.
 *
 * The memory policy, "prefaulted": on this kind of machine touching fresh memory can cost more than
 * the work measured (a guest's memory is backed lazily by its host, huge pages are compacted in the
 * fault), and it lands on whichever side allocates fresh pages. So no kind pays for fresh pages in
 * its timed pass:
 *   - the caller's buffers (the array a write reads, the output a read fills) are allocated and
 *     touched before the timed pass; so are a baseline's working buffers (one per worker);
 *   - every kind runs its operation once untimed and then once timed, in the same process, so that
 *     the buffers it allocates inside the operation (the engine's pool tickets; a codec's state) are
 *     pages its allocator already has. jemalloc is told to keep freed pages (dirty and muzzy decay
 *     -1; by default it hands chunks over 8 MiB back at once), as zarr-python's glibc malloc is
 *     (bench/zarr_python.py);
 *   - what a write wrote is removed after each pass, so both passes create their files or objects.
 * A read frees the source array before its passes, so the process holds what a read holds.
 */
#include <errno.h>
#include <jemalloc/jemalloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/measure.h"
#include "cell/result.h"
#include "options.h"
#include "harness.h"

static void keep_freed_pages(void)
{
    ssize_t never = -1;
    unsigned narenas = 0;
    size_t sz = sizeof narenas;
    (void)mallctl("arenas.dirty_decay_ms", NULL, NULL, &never, sizeof never); /* arenas made from now on */
    (void)mallctl("arenas.muzzy_decay_ms", NULL, NULL, &never, sizeof never);
    (void)mallctl("arenas.narenas", &narenas, &sz, NULL, 0);
    for (unsigned i = 0; i < narenas; i++) { /* and those there are (an arena not made yet: an error, ignored) */
        char name[64];
        snprintf(name, sizeof name, "arena.%u.dirty_decay_ms", i);
        (void)mallctl(name, NULL, NULL, &never, sizeof never);
        snprintf(name, sizeof name, "arena.%u.muzzy_decay_ms", i);
        (void)mallctl(name, NULL, NULL, &never, sizeof never);
    }
}

/* This process's CPU time so far in seconds, every thread's, user and system (its page-cache copies
 * and socket writes are its system time); -1 when unknown. Not the machine's: another process's work
 * (another test, a build) would lower a limit made of it, and make the engine look faster than the
 * machine allows. */
static double process_busy_s(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return -1;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

/*
 * The CPU seconds so far of the project's S3 server on this machine, every daemon's user and system
 * time (scripts/s3-server: radosgw, ceph-osd, ceph-mon; their PIDs in $TALLY_S3_DIR/data/run); -1
 * when it does not run here. On a machine that also runs the server, moving bytes to S3 costs its
 * CPU as well as the client's: a CPU-shared limit without it is one the engine cannot reach. A PID
 * whose command line does not name this server's ceph.conf (a PID reused) is not counted.
 */
static double server_busy_s(void)
{
    const char *dir = getenv("TALLY_S3_DIR");
    static const char *daemons[] = {"client.rgw.a", "osd.0", "mon.a"};
    long tick = sysconf(_SC_CLK_TCK);
    if (dir == NULL || *dir == '\0' || tick <= 0)
        return -1;
    double total = 0;
    int found = 0;
    for (size_t i = 0; i < sizeof daemons / sizeof *daemons; i++) {
        char path[4096], conf[4096], buf[4096];
        long pid = 0;
        snprintf(path, sizeof path, "%s/data/run/%s.pid", dir, daemons[i]);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        int ok = fscanf(f, "%ld", &pid) == 1 && pid > 0;
        fclose(f);
        snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
        size_t n = 0;
        if (ok && (f = fopen(path, "r")) != NULL) {
            n = fread(buf, 1, sizeof buf - 1, f);
            fclose(f);
        }
        for (size_t k = 0; k < n; k++)
            buf[k] = buf[k] ? buf[k] : ' ';
        buf[n] = '\0';
        snprintf(conf, sizeof conf, "-c %s/ceph.conf", dir);
        if (n == 0 || strstr(buf, conf) == NULL)
            continue;
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        if ((f = fopen(path, "r")) == NULL)
            continue;
        n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        const char *q = strrchr(buf, ')'); /* the command's name may hold spaces and parentheses */
        unsigned long long ut = 0, st = 0;
        /* after ")": state (field 3) ... utime (14) and stime (15) */
        if (q && sscanf(q + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) == 2) {
            total += (double)(ut + st) / (double)tick;
            found++;
        }
    }
    return found ? total : -1;
}

int tly_h_bench_time(const struct tly_h_bench_pass *p, struct tly_h_bench_timing *t)
{
    int err = p->run(p->ctx); /* the untimed pass */
    if (p->undo)
        p->undo(p->ctx);
    if (err)
        return err;
    struct tly_h_window w;
    tly_h_window_open(&w);
    double server0 = p->server ? server_busy_s() : -1;
    double busy0 = process_busy_s(), t0 = tly_h_now_s();
    err = p->run(p->ctx);
    t->secs = tly_h_now_s() - t0;
    double busy1 = process_busy_s(), server1 = server0 >= 0 ? server_busy_s() : -1;
    t->busy_s = busy0 >= 0 && busy1 >= busy0 ? busy1 - busy0 : -1;
    t->server_busy_s = server0 >= 0 && server1 >= server0 ? server1 - server0 : -1;
    if (t->busy_s >= 0 && t->server_busy_s > 0)
        t->busy_s += t->server_busy_s;
    tly_h_window_close(&w);
    t->time_before = w.time_before;
    t->time_after = w.time_after;
    t->peak_extra = w.after.peak_bytes - w.before.live_bytes;
    if (p->undo)
        p->undo(p->ctx);
    return err;
}

int tly_h_bench_output(const struct tly_h_bspec *s, char **data, char **out)
{
    free(*data);
    *data = NULL;
    *out = tly_h_bench_prefaulted(s->bytes);
    return *out ? 0 : tly_fail(-ENOMEM, "out of memory for the output");
}

int tly_h_bench_time_read(const struct tly_h_bspec *s, const struct tly_h_bench_pass *p, const char *out,
                          struct tly_h_bench_timing *t)
{
    int err = tly_h_bench_time(p, t);
    if (!err && s->read && !tly_h_gen_verify(out, s->bytes, &s->cell->dtype))
        err = tly_fail(TLY_EINTERNAL, "the %s read did not return the array", s->kind);
    return err;
}

void *tly_h_bench_prefaulted(size_t n)
{
    volatile char *p = tly_h_alloc_output(n);
    for (size_t i = 0; p && i < n; i += 4096)
        p[i] = 0;
    if (p && n)
        p[n - 1] = 0;
    return (void *)p;
}

/* The parallel loop: workers take the next task until none is left or one failed. */
struct par {
    int (*fn)(void *ctx, int worker, uint64_t i);
    void *ctx;
    uint64_t n;
    _Atomic uint64_t next;
    _Atomic int err, worker;
};

static void *par_worker(void *arg)
{
    struct par *p = arg;
    int w = atomic_fetch_add(&p->worker, 1);
    for (uint64_t i; !atomic_load(&p->err) && (i = atomic_fetch_add(&p->next, 1)) < p->n;) {
        int e = p->fn(p->ctx, w, i);
        if (e)
            atomic_store(&p->err, e);
    }
    return NULL;
}

int tly_h_bench_workers(int threads, uint64_t n)
{
    int w = threads > 256 ? 256 : threads < 1 ? 1 : threads;
    return n < (uint64_t)w ? (n ? (int)n : 1) : w;
}

int tly_h_bench_par(int threads, uint64_t n, int (*fn)(void *, int, uint64_t), void *ctx)
{
    struct par p = {.fn = fn, .ctx = ctx, .n = n};
    pthread_t th[256];
    int k = 0, want = tly_h_bench_workers(threads, n);
    for (; k < want - 1; k++)
        if (pthread_create(&th[k], NULL, par_worker, &p) != 0)
            break;
    par_worker(&p);
    for (int i = 0; i < k; i++)
        pthread_join(th[i], NULL);
    return atomic_load(&p.err);
}

uint64_t tly_h_bench_share(const struct tly_h_bspec *s, int workers)
{
    return s->nchunks < (uint64_t)workers ? (uint64_t)workers / s->nchunks : 1;
}

uint64_t tly_h_bench_read_ways(const struct tly_h_bspec *s, int workers)
{
    uint64_t ways = tly_h_bench_share(s, workers), most = s->chunk_bytes / ((uint64_t)8 << 20);
    return ways > most ? (most ? most : 1) : ways;
}

struct tly_h_bench_slice tly_h_bench_slice_of(const struct tly_h_bspec *s, uint64_t t, uint64_t ways)
{
    struct tly_h_bench_slice sl = {.chunk = t / ways};
    uint64_t part = t % ways;
    sl.off = sl.chunk * s->chunk_bytes;
    sl.n = (size_t)(sl.off + s->chunk_bytes <= s->bytes ? s->chunk_bytes : s->bytes - sl.off);
    sl.lo = (size_t)(sl.n * part / ways);
    sl.hi = (size_t)(sl.n * (part + 1) / ways);
    return sl;
}

void tly_h_bench_runs(const struct tly_h_bspec *s, uint64_t i, struct tly_runs *rs)
{
    uint64_t idx[TLY_MAX_RANK];
    for (int d = s->grid.rank - 1; d >= 0; d--) {
        idx[d] = i % s->grid.nchunks[d];
        i /= s->grid.nchunks[d];
    }
    struct tly_region all;
    tly_region_all(&all, s->grid.rank, s->grid.shape);
    tly_runs_plan(&s->grid, idx, &all, s->cell->dtype.size, rs);
}

/* The engine: the array at DIR/array, written from or read into the caller's buffer. */
struct eng {
    const struct tly_h_bspec *s;
    struct tly_meta m;
    struct tly_region all;
    char url[TLY_H_PATH];
    const void *src;
    void *out;
    struct tly_io_stats io; /* the last pass's */
};

static int eng_write(void *ctx)
{
    struct eng *e = ctx;
    struct tly_array *a = NULL;
    int err = tly_array_create(e->url, &e->m, true, &e->s->cell->opts, &a);
    if (!err)
        err = tly_array_write(a, e->src, &e->all, &e->io);
    tly_array_close(a);
    return err;
}

static int eng_read(void *ctx)
{
    struct eng *e = ctx;
    struct tly_array *a = NULL;
    int err = tly_array_open(e->url, &e->s->cell->opts, &a);
    if (!err)
        err = tly_array_read(a, e->out, &e->all, &e->io);
    tly_array_close(a);
    return err;
}

static void eng_undo(void *ctx)
{
    struct eng *e = ctx;
    struct tly_store *st;
    if (tly_store_open(e->url, NULL, &st) == 0) {
        tly_store_clear(st);
        tly_store_close(st);
    }
    if (!e->s->s3)
        rmdir(e->url); /* clear empties the array's directory; the bench's own goes at the end */
}

/* The timed pass's stage time and bottleneck (tally's kind, with time accounting on), for bench-cell's output. */
static json_t *pass_time;

/* Takes @p data (a read frees it before its passes). */
static int measure_tally(const struct tly_h_bspec *s, char *data, struct tly_h_bench_timing *t)
{
    struct eng e = {.s = s, .src = data};
    char *out = NULL;
    int err = tly_h_pathf(e.url, "%s/array", s->dir);
    if (!err)
        err = tly_h_cell_meta(s->cell, &e.m);
    tly_region_all(&e.all, s->cell->rank, s->cell->shape);
    struct tly_h_bench_pass p = {eng_write, eng_undo, &e, s->s3}; /* the S3 server's CPU: the verdict's */
    if (!err && s->read) {
        err = eng_write(&e); /* the fixture, untimed */
        if (!err)
            err = tly_h_bench_output(s, &data, &out);
        e.out = out;
        p = (struct tly_h_bench_pass){eng_read, NULL, &e, s->s3};
    }
    if (!err)
        err = tly_h_bench_time_read(s, &p, out, t);
    if (!err && tly_time_on()) {
        json_t *st = NULL, *time = tly_h_time_json(&t->time_before, &t->time_after, t->secs, &e.io, s->s3, &st);
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        if (t->server_busy_s > 0 && t->busy_s >= t->server_busy_s && cpus > 0) /* the machine's CPU time, rule 0 */
            json_object_update_new(time, json_pack("{s:i, s:f, s:f}", "machine_cpus", (int)cpus, "process_cpu_s",
                                                   t->busy_s - t->server_busy_s, "server_cpu_s", t->server_busy_s));
        pass_time =
            json_pack("{s:o, s:o, s:o}", "stage_time", st, "time", time, "bottleneck", tly_h_bottleneck(st, time));
    }
    if (s->read)
        eng_undo(&e);
    free(out);
    free(data);
    return err;
}

static const struct {
    const char *kind;
    int (*measure)(const struct tly_h_bspec *s, char *data, struct tly_h_bench_timing *t);
} kinds[] = {
    {"tally", measure_tally},
    {"raw", tly_h_bench_raw},
    {"raw_layout", tly_h_bench_raw},
    {"codec", tly_h_bench_codec},
    {"codec_layout", tly_h_bench_codec},
    {"overlap", tly_h_bench_overlap},
    {"overlap_layout", tly_h_bench_overlap},
};

/* The spec's cell and kind into @p s; 0, or an error naming what is wrong. */
static int spec_of(const struct tly_h_cell *cell, struct tly_h_bspec *s)
{
    *s = (struct tly_h_bspec){.cell = cell,
                              .kind = json_string_value(json_object_get(cell->json, "kind")),
                              .dir = cell->dir,
                              .read = strcmp(cell->op, "read") == 0,
                              .s3 = strcmp(cell->store, "s3") == 0,
                              .threads = cell->opts.threads,
                              .io = cell->opts.io_concurrency,
                              .bytes = tly_h_cell_bytes(cell)};
    if (s->kind == NULL || cell->dir == NULL || cell->rank == 0 || s->threads <= 0 || s->io <= 0)
        return tly_fail(TLY_EUSAGE, "a bench cell needs kind, dir, an array, threads and io_concurrency");
    s->layout = strstr(s->kind, "_layout") != NULL;
    int err = tly_grid_init(&s->grid, cell->rank, cell->shape, cell->chunks);
    if (err)
        return err;
    s->nchunks = 1;
    for (int d = 0; d < cell->rank; d++)
        s->nchunks *= s->grid.nchunks[d];
    s->chunk_bytes = tly_grid_chunk_elems(&s->grid) * cell->dtype.size;
    return 0;
}

int tly_h_cmd_bench_cell(int argc, char **argv)
{
    json_t *j = argc == 2 ? json_loads(argv[1], 0, NULL) : NULL;
    struct tly_h_cell cell;
    if (j == NULL || tly_h_cell_parse(j, "bench cell", &cell) != 0) {
        if (j)
            fprintf(stderr, "tally bench-cell: %s\n", tly_errmsg());
        json_decref(j);
        return tly_h_usage_error("bench-cell");
    }
    json_decref(j);
    struct tly_h_bspec s;
    int err = spec_of(&cell, &s);
    size_t k = 0;
    while (!err && k < sizeof kinds / sizeof kinds[0] && strcmp(kinds[k].kind, s.kind) != 0)
        k++;
    if (!err && k == sizeof kinds / sizeof kinds[0])
        err = tly_fail(TLY_EUSAGE, "unknown kind '%s'", s.kind);
    keep_freed_pages();
    char *data = err ? NULL : tly_h_alloc_output(s.bytes);
    if (!err && data == NULL)
        err = tly_fail(-ENOMEM, "out of memory for the array");
    struct tly_h_bench_timing t = {0};
    if (!err) {
        tly_h_gen_all(data, s.bytes, &cell.dtype); /* touches every page of it */
        err = kinds[k].measure(&s, data, &t);      /* takes the array */
    }
    if (err) {
        tly_h_cell_release(&cell);
        return tly_h_fail_cmd("bench-cell", err);
    }
    json_t *res =
        json_pack("{s:f, s:f, s:I, s:s}", "wall_s", t.secs, "gbps", t.secs > 0 ? (double)s.bytes / t.secs / 1e9 : 0.0,
                  "peak_extra_bytes", (json_int_t)t.peak_extra, "memory_policy", TLY_H_BENCH_MEMORY_POLICY);
    if (t.busy_s >= 0)
        json_object_set_new(res, "busy_cpu_s", json_real(t.busy_s));
    if (t.cpu_secs > 0)
        json_object_set_new(res, "cpu_gbps", json_real((double)s.bytes / t.cpu_secs / 1e9));
    if (pass_time)
        json_object_update(res, pass_time);
    json_decref(pass_time);
    json_dumpf(res, stdout, JSON_COMPACT | JSON_REAL_PRECISION(7));
    putchar('\n');
    json_decref(res);
    tly_h_cell_release(&cell);
    return TLY_EXIT_OK;
}
