/*
 * The child side of tally bench (`tally bench-cell SPEC`): one measurement of one kind, in a process
 * of its own (see bench.c for the kinds and why each is the limit it is).
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

#include "cell/result.h"
#include "cli/cli.h"
#include "harness.h"

#define now_s tly_h_now_s

/* A measurement: the cell, and which kind of measurement of it. */
struct spec {
    const struct tly_h_cell *cell;
    const char *kind, *op, *store, *codec, *dir;
    int threads, io;
};

static uint64_t spec_bytes(const struct spec *s)
{
    return tly_h_cell_bytes(s->cell);
}

static uint64_t spec_nchunks(const struct spec *s)
{
    uint64_t n = 1;
    for (int d = 0; d < s->cell->rank; d++)
        n *= (s->cell->shape[d] + s->cell->chunks[d] - 1) / s->cell->chunks[d];
    return n;
}

static uint64_t spec_chunk_bytes(const struct spec *s)
{
    uint64_t n = s->cell->dtype.size;
    for (int d = 0; d < s->cell->rank; d++)
        n *= s->cell->chunks[d];
    return n;
}

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

/* Ranges per chunk for a read with @p workers at once: the share, in ranges of >= 8 MiB (as the engine splits a lone
 * chunk). */
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
    char path[TLY_H_PATH];
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
    x.c.blosc.typesize = s->cell->dtype.size;
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
        char path[TLY_H_PATH];
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
    char url[TLY_H_PATH];
    int err = tly_h_pathf(url, "%s/array", s->dir);
    if (!err)
        err = tly_h_cell_meta(s->cell, &m);
    struct tly_h_result r = {.op = s->op, .meta = &m, .store = s->store};
    void *d = data, *out = NULL;
    if (!err) {
        err = tly_h_measure_engine(s->cell, url, &d, &r, &out);
        *secs = r.win.wall_s;
        *peak_extra = r.win.after.peak_bytes - r.win.before.live_bytes - (int64_t)r.output_bytes;
    }
    struct tly_store *st;
    if (tly_store_open(url, NULL, &st) == 0) {
        tly_store_clear(st);
        tly_store_close(st);
    }
    if (strcmp(s->store, "local") == 0)
        rmdir(url); /* clear empties the array's directory; the bench's own goes at the end */
    free(out);
    free(d);
    return err;
}

int tly_h_cmd_bench_cell(int argc, char **argv)
{
    json_t *j = argc == 2 ? json_loads(argv[1], 0, NULL) : NULL;
    struct tly_h_cell cell;
    if (j == NULL || tly_h_cell_parse(j, "bench cell", &cell) != 0 || cell.dir == NULL || cell.rank == 0 ||
        !json_is_string(json_object_get(j, "kind"))) {
        if (j)
            fprintf(stderr, "tally bench-cell: %s\n", tly_errmsg()[0] ? tly_errmsg() : "needs kind, dir and an array");
        json_decref(j);
        return tly_h_usage_error("bench-cell");
    }
    json_decref(j);
    struct spec s = {&cell,
                     json_string_value(json_object_get(cell.json, "kind")),
                     cell.op,
                     cell.store,
                     cell.codec_spec,
                     cell.dir,
                     cell.opts.threads,
                     cell.opts.io_concurrency};
    char *data = tly_h_alloc_output(spec_bytes(&s));
    if (data == NULL || s.threads <= 0 || s.io <= 0) {
        free(data);
        tly_h_cell_release(&cell);
        return TLY_EXIT_ERROR;
    }
    tly_h_gen_all(data, spec_bytes(&s), &cell.dtype);
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
    if (err) {
        tly_h_cell_release(&cell);
        return tly_h_fail_cmd("bench-cell", err);
    }
    printf("{\"wall_s\": %.6f, \"gbps\": %.6f, \"peak_extra_bytes\": %lld}\n", secs,
           secs > 0 ? (double)spec_bytes(&s) / secs / 1e9 : 0.0, (long long)peak);
    tly_h_cell_release(&cell);
    return TLY_EXIT_OK;
}
