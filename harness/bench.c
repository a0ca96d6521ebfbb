/*
 * tally bench: throughput against the machine's own limits, measured in the same run.
 *
 * Every measurement runs in a child process of its own (`tally bench-cell SPEC`), best of N:
 *   tally      the engine writes or reads the array (the row's figure; also its peak extra bytes)
 *   untracked  the same with TALLY_TRACK=0 (the hooks' cost)
 *   raw        pwrite/pread of the same bytes, chunk by chunk, same threads (local), or the S3
 *              client alone PUTting/GETting the same objects from/to memory, same concurrency (s3)
 *   codec      the codec alone on the same chunks from memory, same threads, no I/O
 * Baselines follow the engine's rule for chunks fewer than threads: a read is split into ranges
 * among them (at least 8 MiB each), and a decode gets their share of threads. Before a timed read
 * every kind frees the source array, so each process holds what the engine's read holds.
 *   zarr       zarr-python 2.13 on the same local workload (harness/peer_zarr_python.py)
 * and rows report GB/s (10^9 bytes/s) with ratio_to_raw (uncompressed rows), ratio_to_codec_limit
 * (compressed rows), ratio_to_zarr_python (local rows) and ratio_to_untracked. A scaling table
 * varies chunks per dimension x threads (x io-concurrency for S3).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jemalloc/jemalloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tally/error.h"
#include "harness.h"
#include "result.h"
#include "tally/tally.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------ the child: one measurement */

struct spec {
    const char *kind, *op, *store, *codec, *dir;
    uint64_t shape[2], chunks[2];
    int threads, io;
    uint64_t memory_limit;
};

static uint64_t spec_bytes(const struct spec *s)
{
    return s->shape[0] * s->shape[1] * 4;
}

static uint64_t spec_nchunks(const struct spec *s)
{
    return ((s->shape[0] + s->chunks[0] - 1) / s->chunks[0]) * ((s->shape[1] + s->chunks[1] - 1) / s->chunks[1]);
}

static uint64_t spec_chunk_bytes(const struct spec *s)
{
    return s->chunks[0] * s->chunks[1] * 4;
}

static const struct tly_dtype f4 = {'f', 4, '<'};

/* Parallel loop over chunk indices: fn(ctx, i) on @p threads threads. */
struct par {
    int (*fn)(void *ctx, uint64_t i);
    void *ctx;
    uint64_t n;
    _Atomic uint64_t next;
    _Atomic int err;
};

static void *par_worker(void *arg)
{
    struct par *p = arg;
    for (uint64_t i; !atomic_load(&p->err) && (i = atomic_fetch_add(&p->next, 1)) < p->n;) {
        int e = p->fn(p->ctx, i);
        if (e)
            atomic_store(&p->err, e);
    }
    return NULL;
}

static int par_run(int threads, uint64_t n, int (*fn)(void *, uint64_t), void *ctx)
{
    struct par p = {.fn = fn, .ctx = ctx, .n = n};
    pthread_t th[256];
    int k = 0;
    for (; k < threads - 1 && k < 255; k++)
        pthread_create(&th[k], NULL, par_worker, &p);
    par_worker(&p);
    for (int i = 0; i < k; i++)
        pthread_join(th[i], NULL);
    return atomic_load(&p.err);
}

/* The engine's rule for fewer chunks than workers: each chunk gets the idle ones' share. */
static uint64_t share(const struct spec *s, int workers)
{
    uint64_t n = spec_nchunks(s);
    return n < (uint64_t)workers ? (uint64_t)workers / n : 1;
}

/* Ranges per chunk for a read with @p workers at once: the share, in ranges of >= 8 MiB (tly__readv). */
static uint64_t read_ways(const struct spec *s, int workers)
{
    uint64_t ways = share(s, workers), most = spec_chunk_bytes(s) / ((uint64_t)8 << 20);
    return ways > most ? (most ? most : 1) : ways;
}

/* Task t of a split read: chunk t / ways at byte @p off of the data, n bytes, its part [lo, hi). */
struct slice {
    uint64_t chunk, off;
    size_t n, lo, hi;
};

static struct slice slice_of(const struct spec *s, uint64_t t, uint64_t ways)
{
    struct slice sl = {.chunk = t / ways};
    uint64_t part = t % ways, cb = spec_chunk_bytes(s), total = spec_bytes(s);
    sl.off = sl.chunk * cb;
    sl.n = (size_t)(sl.off + cb <= total ? cb : total - sl.off);
    sl.lo = (size_t)(sl.n * part / ways);
    sl.hi = (size_t)(sl.n * (part + 1) / ways);
    return sl;
}

/* raw local: chunk i is the i-th chunk-sized slice of the data, one file each. Reads split a chunk
 * into `ways` ranges when chunks are fewer than threads, as the engine does. */
struct raw {
    const struct spec *s;
    char *data;
    bool write;
    uint64_t ways;
};

static int raw_one(void *arg, uint64_t t)
{
    struct raw *r = arg;
    struct slice sl = slice_of(r->s, t, r->ways);
    uint64_t off = sl.off;
    size_t lo = sl.lo, hi = sl.hi;
    char path[4200];
    snprintf(path, sizeof path, "%s/raw.%llu", r->s->dir, (unsigned long long)sl.chunk);
    int fd = open(path, r->write ? O_WRONLY | O_CREAT | O_TRUNC : O_RDONLY, 0644);
    if (fd < 0)
        return -errno;
    size_t done = lo;
    while (done < hi) {
        ssize_t k = r->write ? pwrite(fd, r->data + off + done, hi - done, (off_t)done)
                             : pread(fd, r->data + off + done, hi - done, (off_t)done);
        if (k <= 0) {
            close(fd);
            return k < 0 ? -errno : -EIO;
        }
        done += (size_t)k;
    }
    close(fd);
    return 0;
}

/* codec alone: compress chunk slices into per-chunk buffers, or decompress them back */
struct cod {
    const struct spec *s;
    struct tly_codec c;
    char *data, **enc;
    size_t *enc_n;
    bool encode;
};

static int codec_one(void *arg, uint64_t i)
{
    struct cod *x = arg;
    uint64_t cb = spec_chunk_bytes(x->s), total = spec_bytes(x->s), off = i * cb;
    size_t n = (size_t)(off + cb <= total ? cb : total - off);
    if (x->encode) {
        size_t bound = tly_codec_bound(&x->c, n);
        if (x->enc[i] == NULL)
            x->enc[i] = malloc(bound);
        return tly_codec_encode(&x->c, x->enc[i], bound, x->data + off, n, &x->enc_n[i]);
    }
    return tly_codec_decode(&x->c, x->data + off, n, x->enc[i], x->enc_n[i]);
}

/* Takes @p data (freed here, as measure_tally frees it before a timed read). */
static int measure_codec(const struct spec *s, char *data, double *secs)
{
    struct cod x = {.s = s, .data = data, .encode = true};
    uint64_t n = spec_nchunks(s);
    int err = tly_codec_parse(s->codec, &x.c);
    x.c.blosc.typesize = 4;
    /* the same threads as the engine: a decode gets the idle threads' share when chunks are fewer */
    x.c.threads = (int)share(s, s->threads);
    x.enc = calloc(n, sizeof *x.enc);
    x.enc_n = calloc(n, sizeof *x.enc_n);
    double t0 = now_s();
    if (!err)
        err = par_run(s->threads, n, codec_one, &x); /* encode (timed for writes) */
    double t1 = now_s();
    if (!err && strcmp(s->op, "read") == 0) {
        /* decode into a fresh output, as the engine's read does (its page faults on both sides) */
        x.encode = false;
        free(data); /* the process holds what the engine's read holds: the encoded chunks and the output */
        data = NULL;
        t0 = now_s();
        x.data = tly_h_alloc_output(spec_bytes(s));
        err = x.data ? par_run(s->threads, n, codec_one, &x) : -ENOMEM;
        t1 = now_s();
        free(x.data);
    }
    free(data);
    *secs = t1 - t0;
    for (uint64_t i = 0; i < n; i++)
        free(x.enc[i]);
    free(x.enc);
    free(x.enc_n);
    return err;
}

/* Takes @p data (freed here before a timed read, as measure_tally frees it). */
static int measure_raw_local(const struct spec *s, char *data, double *secs)
{
    uint64_t n = spec_nchunks(s);
    struct raw r = {s, data, true, 1};
    double t0 = now_s();
    int err = par_run(s->threads, n, raw_one, &r);
    *secs = now_s() - t0;
    if (!err && strcmp(s->op, "read") == 0) {
        free(data);
        data = NULL;
        char *out = tly_h_alloc_output(spec_bytes(s));
        r = (struct raw){s, out, false, read_ways(s, s->threads)};
        uint64_t ways = r.ways;
        t0 = now_s();
        err = out ? par_run(s->threads, n * ways, raw_one, &r) : -ENOMEM;
        *secs = now_s() - t0;
        free(out);
    }
    free(data);
    for (uint64_t i = 0; i < n; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/raw.%llu", s->dir, (unsigned long long)i);
        unlink(path);
    }
    return err;
}

/* raw S3: the store client alone, objects PUT from / GET into memory, io-concurrency at once */
struct raws3 {
    const struct spec *s;
    struct tly_store *st;
    char *data;
    bool write;
    uint64_t ways; /* ranged GETs per object, as the engine splits a lone chunk's read */
};

static int raws3_one(void *arg, uint64_t t)
{
    struct raws3 *r = arg;
    struct slice sl = slice_of(r->s, t, r->ways);
    uint64_t off = sl.off;
    size_t n = sl.n;
    char key[64];
    snprintf(key, sizeof key, "raw/%llu", (unsigned long long)sl.chunk);
    if (r->write) {
        struct tly_writer *w;
        int err = tly_store_writer(r->st, key, &w);
        struct iovec iov = {r->data + off, n};
        if (!err)
            err = tly_writer_add(w, &iov, 1);
        if (!err)
            return tly_writer_commit(w);
        tly_writer_abort(w);
        return err;
    }
    struct iovec iov = {r->data + off + sl.lo, sl.hi - sl.lo};
    return tly_store_readv(r->st, key, sl.lo, &iov, 1);
}

/* Takes @p data (freed here before a timed read, as measure_tally frees it). */
static int measure_raw_s3(const struct spec *s, char *data, double *secs)
{
    struct tly_store *st;
    struct tly_store_opts so = {.io_concurrency = s->io};
    int err = tly_store_open(s->dir, &so, &st);
    if (err) {
        free(data);
        return err;
    }
    struct raws3 r = {s, st, data, true, 1};
    double t0 = now_s();
    err = par_run(s->io, spec_nchunks(s), raws3_one, &r);
    *secs = now_s() - t0;
    if (!err && strcmp(s->op, "read") == 0) {
        free(data);
        data = NULL;
        char *out = tly_h_alloc_output(spec_bytes(s));
        r = (struct raws3){s, st, out, false, read_ways(s, s->io)};
        t0 = now_s();
        err = out ? par_run(s->io, spec_nchunks(s) * r.ways, raws3_one, &r) : -ENOMEM;
        *secs = now_s() - t0;
        free(out);
    }
    free(data);
    for (uint64_t i = 0; i < spec_nchunks(s); i++) {
        char key[64];
        snprintf(key, sizeof key, "raw/%llu", (unsigned long long)i);
        tly_store_delete(st, key);
    }
    tly_store_close(st);
    return err;
}

static int measure_tally(const struct spec *s, char *data, double *secs, int64_t *peak_extra)
{
    struct tly_meta m;
    char url[4200];
    snprintf(url, sizeof url, "%s/array", s->dir);
    int err = tly_h_build_meta("v2", &f4, 2, s->shape, s->chunks, s->codec, NULL, &m);
    struct tly_io_opts o = {.threads = s->threads, .io_concurrency = s->io, .memory_limit = s->memory_limit};
    struct tly_region all;
    tly_region_all(&all, 2, s->shape);
    struct tly_array *a = NULL;
    struct tly_h_window w;
    bool write = strcmp(s->op, "write") == 0;
    if (!err && !write) { /* the fixture, untimed */
        err = tly_array_create(url, &m, true, &o, &a);
        if (!err)
            err = tly_array_write(a, data, &all, NULL);
        tly_array_close(a);
        a = NULL;
        free(data);
        data = NULL;
    }
    char *out = NULL;
    if (!err) {
        tly_h_window_open(&w);
        double t0 = now_s();
        if (write) {
            err = tly_array_create(url, &m, true, &o, &a);
            if (!err)
                err = tly_array_write(a, data, &all, NULL);
        } else {
            out = tly_h_alloc_output(spec_bytes(s));
            err = out ? tly_array_open(url, &o, &a) : -ENOMEM;
            if (!err)
                err = tly_array_read(a, out, &all, NULL);
        }
        *secs = now_s() - t0;
        tly_h_window_close(&w);
        *peak_extra = w.after.peak_bytes - w.before.live_bytes - (out ? (int64_t)malloc_usable_size(out) : 0);
    }
    if (a)
        tly_store_clear(tly_array_store(a));
    tly_array_close(a);
    if (strcmp(s->store, "local") == 0)
        rmdir(url); /* clear empties the array's directory; the bench's own goes at the end */
    free(out);
    free(data);
    return err;
}

static int parse_spec(json_t *j, struct spec *s)
{
    memset(s, 0, sizeof *s);
    s->kind = json_string_value(json_object_get(j, "kind"));
    s->op = json_string_value(json_object_get(j, "op"));
    s->store = json_string_value(json_object_get(j, "store"));
    s->codec = json_string_value(json_object_get(j, "codec_spec"));
    s->dir = json_string_value(json_object_get(j, "dir"));
    for (int d = 0; d < 2; d++) {
        s->shape[d] = (uint64_t)json_integer_value(json_array_get(json_object_get(j, "shape"), (size_t)d));
        s->chunks[d] = (uint64_t)json_integer_value(json_array_get(json_object_get(j, "chunks"), (size_t)d));
    }
    s->threads = (int)json_integer_value(json_object_get(j, "threads"));
    s->io = (int)json_integer_value(json_object_get(j, "io_concurrency"));
    s->memory_limit = (uint64_t)json_integer_value(json_object_get(j, "memory_limit"));
    if (!s->kind || !s->op || !s->store || !s->codec || !s->dir || !s->shape[0] || !s->chunks[0] || s->threads <= 0 ||
        s->io <= 0)
        return tly_fail(TLY_EUSAGE, "bench cell: incomplete spec");
    return 0;
}

int tly_h_cmd_bench_cell(int argc, char **argv)
{
    json_t *j = argc == 2 ? json_loads(argv[1], 0, NULL) : NULL;
    struct spec s;
    if (j == NULL || parse_spec(j, &s) != 0) {
        fprintf(stderr, "usage: tally bench-cell SPEC_JSON (the child side of tally bench)\n");
        json_decref(j);
        return TLY_EXIT_ERROR;
    }
    char *data = tly_h_alloc_output(spec_bytes(&s));
    if (data == NULL) {
        json_decref(j);
        return TLY_EXIT_ERROR;
    }
    tly_h_gen_all(data, spec_bytes(&s), &f4);
    double secs = 0;
    int64_t peak = 0;
    int err;
    /* each measurement takes the array: a read frees it before its timed part */
    if (!strcmp(s.kind, "tally"))
        err = measure_tally(&s, data, &secs, &peak);
    else if (!strcmp(s.kind, "codec"))
        err = measure_codec(&s, data, &secs);
    else if (!strcmp(s.kind, "raw") && !strcmp(s.store, "s3"))
        err = measure_raw_s3(&s, data, &secs);
    else
        err = measure_raw_local(&s, data, &secs);
    json_decref(j);
    if (err) {
        fprintf(stderr, "tally bench-cell: %s\n", tly_errmsg()[0] ? tly_errmsg() : tly_strerror(err));
        return TLY_EXIT_ERROR;
    }
    printf("{\"wall_s\": %.6f, \"gbps\": %.6f, \"peak_extra_bytes\": %lld}\n", secs,
           secs > 0 ? (double)spec_bytes(&s) / secs / 1e9 : 0.0, (long long)peak);
    return TLY_EXIT_OK;
}

/* ------------------------------------------------------------------ the parent: rows and ratios */

struct opts {
    bool quick, json;
    const char *out;
    int reps;
    char dir[4096];  /* local scratch */
    char s3url[512]; /* s3://bucket/tally-bench-PID, or "" */
};

/* Run one measurement in a child (best of reps); its result, or NULL. */
static json_t *child(const struct opts *o, json_t *spec, bool untracked, const char *peer_script)
{
    json_t *best = NULL;
    for (int r = 0; r < o->reps; r++) {
        char *text = json_dumps(spec, JSON_COMPACT);
        char *argv[] = {peer_script ? "/usr/bin/python3" : "tally", peer_script ? (char *)peer_script : "bench-cell",
                        text, NULL};
        char *buf = NULL;
        int status = 0;
        int rc = tly_h_spawn(peer_script ? argv[0] : tly_h_self(), argv, "TALLY_TRACK", untracked ? "0" : NULL, &buf,
                             NULL, &status);
        free(text);
        if (rc != 0)
            return best;
        json_t *res = WIFEXITED(status) && WEXITSTATUS(status) == 0 ? json_loads(buf, 0, NULL) : NULL;
        free(buf);
        if (res && peer_script) { /* the peer's result: throughput_bps */
            json_object_set_new(res, "gbps",
                                json_real(json_number_value(json_object_get(res, "throughput_bps")) / 1e9));
        }
        double g = json_number_value(json_object_get(res, "gbps"));
        if (res && (!best || g > json_number_value(json_object_get(best, "gbps")))) {
            json_decref(best);
            best = res;
        } else {
            json_decref(res);
        }
    }
    return best;
}

static json_t *make_spec(const struct opts *o, const char *kind, const char *op, const char *store,
                         const char *codec_spec, const uint64_t *shape, const uint64_t *chunks, int threads, int io,
                         uint64_t mem)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:[I,I], s:[I,I], s:i, s:i, s:I}", "kind", kind, "op", op, "store",
                     store, "codec_spec", codec_spec, "dir", strcmp(store, "s3") ? o->dir : o->s3url, "shape",
                     (json_int_t)shape[0], (json_int_t)shape[1], "chunks", (json_int_t)chunks[0], (json_int_t)chunks[1],
                     "threads", threads, "io_concurrency", io, "memory_limit", (json_int_t)mem);
}

static json_t *ratio(json_t *num, json_t *den)
{
    double a = json_number_value(json_object_get(num, "gbps")), b = json_number_value(json_object_get(den, "gbps"));
    return num && den && b > 0 ? json_real(a / b) : json_null();
}

struct layout {
    const char *name;
    uint64_t shape[2], chunks[2];
};

static json_t *bench_row(const struct opts *o, const char *op, const char *store, const char *codec,
                         const char *codec_spec, const struct layout *l, int threads, int io, uint64_t mem)
{
    char name[128];
    snprintf(name, sizeof name, "%s-%s-%s-%s", op, store, codec, l->name);
    fprintf(stderr, "bench %s ...\n", name);
    json_t *spec = make_spec(o, "tally", op, store, codec_spec, l->shape, l->chunks, threads, io, mem);
    json_t *t = child(o, spec, false, NULL), *u = child(o, spec, true, NULL);
    json_decref(spec);
    bool none = strcmp(codec, "none") == 0, local = strcmp(store, "local") == 0;
    spec = make_spec(o, none ? "raw" : "codec", op, store, codec_spec, l->shape, l->chunks, threads, io, mem);
    json_t *base = child(o, spec, false, NULL);
    json_decref(spec);
    json_t *zp = NULL;
    if (local) {
        char script[4200];
        snprintf(script, sizeof script, "%s/harness/peer_zarr_python.py", TALLY_SOURCE_DIR);
        json_t *cell =
            json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:[I,I], s:[I,I]}", "scenario", name, "op", op, "store", "local",
                      "codec", codec, "format", "v2", "layout", l->name, "shape", (json_int_t)l->shape[0],
                      (json_int_t)l->shape[1], "chunks", (json_int_t)l->chunks[0], (json_int_t)l->chunks[1]);
        json_object_set_new(cell, "dir", json_string(o->dir)); /* the same filesystem as tally's rows */
        if (!strcmp(codec, "zstd"))                            /* the peer's zstd at the bench's level */
            json_object_set_new(cell, "zstd_level", json_integer(1));
        zp = child(o, cell, false, script);
        json_decref(cell);
    }
    json_t *row =
        json_pack("{s:s, s:f, s:o, s:o, s:o, s:o, s:o}", "name", name, "gbps",
                  json_number_value(json_object_get(t, "gbps")), "ratio_to_raw", none ? ratio(t, base) : json_null(),
                  "ratio_to_codec_limit", none ? json_null() : ratio(t, base), "ratio_to_zarr_python",
                  local ? ratio(t, zp) : json_null(), "ratio_to_untracked", ratio(t, u), "peak_extra_bytes",
                  t ? json_integer(json_integer_value(json_object_get(t, "peak_extra_bytes"))) : json_null());
    json_object_set_new(row, "baseline_gbps", json_real(json_number_value(json_object_get(base, "gbps"))));
    json_object_set_new(row, "zarr_python_gbps",
                        zp ? json_real(json_number_value(json_object_get(zp, "gbps"))) : json_null());
    json_object_set_new(row, "untracked_gbps", json_real(json_number_value(json_object_get(u, "gbps"))));
    json_object_set_new(row, "threads", json_integer(threads));
    json_object_set_new(row, "memory_limit", json_integer((json_int_t)mem));
    if (!t)
        json_object_set_new(row, "error", json_string("the tally measurement did not run"));
    json_decref(t);
    json_decref(u);
    json_decref(base);
    json_decref(zp);
    return row;
}

static json_t *machine(void)
{
    struct utsname u;
    uname(&u);
    char model[256] = "unknown", line[512];
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
            snprintf(model, sizeof model, "%s", strchr(line, ':') + 2);
            model[strcspn(model, "\n")] = '\0';
            break;
        }
    if (f)
        fclose(f);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    uint64_t mem = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
    return json_pack("{s:i, s:I, s:s, s:s}", "cpus", (int)cpus, "mem_bytes", (json_int_t)mem, "cpu_model", model,
                     "kernel", u.release);
}

static void write_md(FILE *f, json_t *doc)
{
    json_t *m = json_object_get(doc, "machine");
    fprintf(f,
            "# tally bench\n\nMachine: %lld CPUs, %.1f GiB, %s, Linux %s. GB/s = 10^9 bytes/s. Each figure is "
            "the best of %lld runs, each in a process of its own, in the same run as its baselines.\n\n",
            json_integer_value(json_object_get(m, "cpus")),
            (double)json_integer_value(json_object_get(m, "mem_bytes")) / 1073741824.0,
            json_string_value(json_object_get(m, "cpu_model")), json_string_value(json_object_get(m, "kernel")),
            json_integer_value(json_object_get(doc, "reps")));
    fprintf(f, "%s\n\n", json_string_value(json_object_get(doc, "about")));
    fprintf(f, "| row | GB/s | baseline GB/s | ratio_to_raw | ratio_to_codec_limit | zarr-python GB/s | "
               "ratio_to_zarr_python | ratio_to_untracked | peak extra MiB |\n|---|---|---|---|---|---|---|---|---|\n");
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(doc, "rows"), i, r)
    {
        char cells[6][32];
        const char *keys[] = {"ratio_to_raw",         "ratio_to_codec_limit", "zarr_python_gbps",
                              "ratio_to_zarr_python", "ratio_to_untracked",   "baseline_gbps"};
        for (int k = 0; k < 6; k++) {
            json_t *v = json_object_get(r, keys[k]);
            snprintf(cells[k], sizeof cells[k], json_is_number(v) ? "%.2f" : "—", json_number_value(v));
        }
        fprintf(f, "| %s | %.2f | %s | %s | %s | %s | %s | %s | %.1f |\n",
                json_string_value(json_object_get(r, "name")), json_number_value(json_object_get(r, "gbps")), cells[5],
                cells[0], cells[1], cells[2], cells[3], cells[4],
                (double)json_integer_value(json_object_get(r, "peak_extra_bytes")) / 1048576.0);
    }
    fprintf(f, "\n## Scaling\n\nThe same array, chunks per dimension x threads (x io-concurrency for S3); "
               "memory limit as above.\n\n| store | codec | chunks per dim | chunk MiB | threads | io | write GB/s | "
               "read GB/s | write peak extra MiB | read peak extra MiB |\n|---|---|---|---|---|---|---|---|---|---|\n");
    json_array_foreach(json_object_get(doc, "scaling"), i, r)
    {
        fprintf(f, "| %s | %s | %lld | %.1f | %lld | %lld | %.2f | %.2f | %.1f | %.1f |\n",
                json_string_value(json_object_get(r, "store")), json_string_value(json_object_get(r, "codec")),
                json_integer_value(json_object_get(r, "chunks_per_dim")),
                json_number_value(json_object_get(r, "chunk_mib")), json_integer_value(json_object_get(r, "threads")),
                json_integer_value(json_object_get(r, "io_concurrency")),
                json_number_value(json_object_get(r, "write_gbps")), json_number_value(json_object_get(r, "read_gbps")),
                (double)json_integer_value(json_object_get(r, "write_peak_extra_bytes")) / 1048576.0,
                (double)json_integer_value(json_object_get(r, "read_peak_extra_bytes")) / 1048576.0);
    }
}

static json_t *scaling_row(const struct opts *o, const char *store, const char *codec, const char *spec_text,
                           uint64_t side, uint64_t per_dim, int threads, int io, uint64_t mem)
{
    uint64_t shape[2] = {side, side}, chunks[2] = {side / per_dim, side / per_dim};
    fprintf(stderr, "scaling %s %s %llux%llu threads %d io %d ...\n", store, codec, (unsigned long long)per_dim,
            (unsigned long long)per_dim, threads, io);
    json_t *ws = make_spec(o, "tally", "write", store, spec_text, shape, chunks, threads, io, mem);
    json_t *rs = make_spec(o, "tally", "read", store, spec_text, shape, chunks, threads, io, mem);
    json_t *w = child(o, ws, false, NULL), *r = child(o, rs, false, NULL);
    json_t *row =
        json_pack("{s:s, s:s, s:I, s:f, s:i, s:i, s:f, s:f, s:I, s:I}", "store", store, "codec", codec,
                  "chunks_per_dim", (json_int_t)per_dim, "chunk_mib", (double)(chunks[0] * chunks[1] * 4) / 1048576.0,
                  "threads", threads, "io_concurrency", io, "write_gbps", json_number_value(json_object_get(w, "gbps")),
                  "read_gbps", json_number_value(json_object_get(r, "gbps")), "write_peak_extra_bytes",
                  (json_int_t)json_integer_value(json_object_get(w, "peak_extra_bytes")), "read_peak_extra_bytes",
                  (json_int_t)json_integer_value(json_object_get(r, "peak_extra_bytes")));
    json_decref(ws);
    json_decref(rs);
    json_decref(w);
    json_decref(r);
    return row;
}

int tly_h_cmd_bench(int argc, char **argv)
{
    static const struct option lo[] = {{"quick", no_argument, NULL, 'q'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"out", required_argument, NULL, 'o'},
                                       {NULL, 0, NULL, 0}};
    struct opts o = {.out = "reports/latest", .reps = 3};
    optind = 1;
    for (int ch; (ch = getopt_long(argc, argv, "", lo, NULL)) != -1;) {
        if (ch == 'q')
            o.quick = true;
        else if (ch == 'j')
            o.json = true;
        else if (ch == 'o')
            o.out = optarg;
        else {
            fputs("usage: tally bench [--quick] [--json] [--out DIR]\n", stderr);
            return TLY_EXIT_ERROR;
        }
    }
    if (o.quick)
        o.reps = 1;
    /* Local data on /dev/shm when there is one (as TensorStore's published runs), so the figures are
     * the engine's and the memory's, not the disk's. */
    const char *base = getenv("TALLY_BENCH_DIR");
    if (!base)
        base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(o.dir, sizeof o.dir, "%s/tally-bench-XXXXXX", base);
    if (mkdtemp(o.dir) == NULL) {
        fprintf(stderr, "tally bench: %s: %s\n", o.dir, strerror(errno));
        return TLY_EXIT_ERROR;
    }
    bool s3 = getenv("AWS_ENDPOINT_URL") && getenv("TALLY_S3_BUCKET");
    if (s3)
        snprintf(o.s3url, sizeof o.s3url, "s3://%s/tally-bench-%d", getenv("TALLY_S3_BUCKET"), (int)getpid());
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = cpus > 0 ? (int)cpus : 1, io = 32;
    uint64_t mem = (uint64_t)64 << 20;
    /* default: 1 GiB in 256 chunks of 4 MiB, and the one-chunk case; quick: 64 MiB in 16 chunks */
    uint64_t side = o.quick ? 4096 : 16384;
    struct layout layouts[] = {{"256x4MiB", {side, side}, {1024, 1024}}, {"one-chunk", {side, side}, {side, side}}};
    if (o.quick)
        layouts[0].name = "16x4MiB";
    static const char *const codecs[][2] = {
        {"none", "none"}, {"zstd", "zstd:level=1"}, {"blosc", "blosc:cname=lz4,clevel=5,shuffle=1"}};
    json_t *rows = json_array(), *scaling = json_array();
    const char *stores[] = {"local", "s3"};
    for (int si = 0; si < (s3 ? 2 : 1); si++)
        for (size_t li = 0; li < 2; li++)
            for (int ci = 0; ci < 3; ci++)
                for (int op = 0; op < 2; op++)
                    json_array_append_new(rows, bench_row(&o, op ? "read" : "write", stores[si], codecs[ci][0],
                                                          codecs[ci][1], &layouts[li], threads, io, mem));
    uint64_t per_dims[] = {4, 8, 16};
    int thread_counts[] = {1, threads > 1 ? threads : 2};
    for (size_t pi = 0; pi < (o.quick ? 2 : 3); pi++)
        for (int ti = 0; ti < 2; ti++)
            json_array_append_new(
                scaling, scaling_row(&o, "local", "none", "none", side, per_dims[pi], thread_counts[ti], io, mem));
    if (s3 && !o.quick) {
        int ios[] = {8, 32};
        for (size_t pi = 0; pi < 3; pi++)
            for (int k = 0; k < 2; k++)
                json_array_append_new(scaling,
                                      scaling_row(&o, "s3", "none", "none", side, per_dims[pi], threads, ios[k], mem));
    }
    rmdir(o.dir);
    json_t *doc = json_pack("{s:o, s:o, s:o, s:i, s:s}", "machine", machine(), "rows", rows, "scaling", scaling, "reps",
                            o.reps, "about",
                            "Rows: tally with a 64 MiB memory limit and one thread per CPU (S3: 32 transfers in "
                            "flight). Baselines: raw = pwrite/pread of the same bytes in chunk-sized files with the "
                            "same threads (local), or the S3 client alone PUTting/GETting the same objects from/to "
                            "memory with the same concurrency (s3); codec limit = the codec alone on the same chunks "
                            "from memory with the same threads; zarr-python 2.13 on the same workload; untracked = "
                            "tally with TALLY_TRACK=0. With fewer chunks than threads (the one-chunk rows), the engine "
                            "and its baselines split a chunk's read into ranges among them and decode blosc on their "
                            "share of threads.");
    char path[4200];
    mkdir(o.out, 0777);
    snprintf(path, sizeof path, "%s/bench.json", o.out);
    json_dump_file(doc, path, JSON_INDENT(2) | JSON_REAL_PRECISION(5));
    snprintf(path, sizeof path, "%s/bench.md", o.out);
    FILE *f = fopen(path, "w");
    if (f) {
        write_md(f, doc);
        fclose(f);
    }
    if (o.json) {
        json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(5));
        putchar('\n');
    } else {
        write_md(stdout, doc);
    }
    int rc = TLY_EXIT_OK;
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r) if (json_object_get(r, "error")) rc = TLY_EXIT_ERROR;
    json_decref(doc);
    return rc;
}
