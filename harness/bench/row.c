/*
 * tally bench's rows, measured: every kind of a row (tally, untracked, its limit, its layout's
 * limit, zarr-python) runs once per repetition, each time in a child process of its own, the kinds
 * of one repetition one after another and each repetition starting at the next kind, so that slow
 * drift of the machine reaches them all alike. The figures and the row's verdict come from stats.c.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "bench/bench.h"

#define MAX_KINDS 7

/* One kind of a row: its figure's name, and its repetitions so far. */
struct kind {
    const char *fig;  /* the figure's name in the row */
    const char *kind; /* bench-cell's kind ("tally" for untracked too); NULL: zarr-python */
    bool untracked;   /* TALLY_TRACK=0 */
    json_t *spec;     /* what the child measures */
    double gbps[TLY_H_BENCH_MAX_REPS];
    int64_t peak[TLY_H_BENCH_MAX_REPS];
    json_t *time[TLY_H_BENCH_MAX_REPS]; /* tally's: the pass's stage time and bottleneck, or NULL */
    int n;
    char why[256];    /* the last failure, or "" */
    struct kind *cpu; /* an overlap kind's: where its CPU-shared limit goes */
    bool derived;     /* never run: its figures come with another kind's (cpu, from overlap) */
};

/* The child's spec for a case and kind. */
/* The chunks the codec works on: a sharded row's inner chunks, else its chunks. */
static const uint64_t *moved(const struct tly_h_bench_case *c)
{
    return c->inner[0] ? c->inner : c->chunks;
}

static json_t *spec_of(const struct tly_h_bench *b, const struct tly_h_bench_case *c, const char *kind)
{
    bool s3 = strcmp(c->store, "s3") == 0, engine = kind && strcmp(kind, "tally") == 0;
    /* a sharded row's baselines: the store moves shards (raw, raw_layout: each shard one object),
     * the codec and the overlapped limit work on inner chunks */
    bool io_only = kind && strncmp(kind, "raw", 3) == 0;
    const uint64_t *ch = engine || io_only ? c->chunks : moved(c);
    json_t *spec = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:[I,I], s:[I,I], s:i, s:i, s:I}", "scenario",
                             c->name, "kind", kind ? kind : "zarr_python", "op", c->op, "store", c->store, "codec",
                             c->codec, "codec_spec", c->codec_spec, "dir", s3 ? b->s3url : b->dir, "dtype",
                             json_string_value(json_object_get(b->plan, "dtype")), "shape", (json_int_t)c->shape[0],
                             (json_int_t)c->shape[1], "chunks", (json_int_t)ch[0], (json_int_t)ch[1], "threads",
                             c->threads, "io_concurrency", c->io, "memory_limit", (json_int_t)c->mem);
    if (engine && c->inner[0])
        json_object_set_new(spec, "inner_chunks", json_pack("[I,I]", (json_int_t)c->inner[0], (json_int_t)c->inner[1]));
    if (engine && c->inner[0])
        json_object_set_new(spec, "format", json_string("v3"));
    if (kind && !strncmp(kind, "overlap", 7) && c->inner[0]) /* an S3 write's PUTs: one object per shard */
        json_object_set_new(spec, "object_chunks",
                            json_pack("[I,I]", (json_int_t)c->chunks[0], (json_int_t)c->chunks[1]));
    return spec;
}

/* One repetition of kind @p k in a child; appends its figure, or notes why it failed. */
static void measure_once(struct kind *k)
{
    char script[TLY_H_PATH];
    char *text = json_dumps(k->spec, JSON_COMPACT);
    tly_h_project_file("harness/bench/zarr_python.py", script);
    char *argv[] = {k->kind ? "tally" : "/usr/bin/python3", k->kind ? "bench-cell" : script, text, NULL};
    struct tly_h_env env = {"TALLY_TRACK", k->untracked ? "0" : NULL};
    struct tly_h_child ch = {0};
    int rc = text ? tly_h_spawn(k->kind ? tly_h_self() : argv[0], argv, &env, 1, true, &ch) : -1;
    free(text);
    bool ran = rc == 0 && WIFEXITED(ch.status) && WEXITSTATUS(ch.status) == 0;
    json_t *res = ran ? json_loads(ch.out, 0, NULL) : NULL;
    double g = json_number_value(json_object_get(res, "gbps"));
    if (res && g > 0) {
        k->gbps[k->n] = g;
        k->time[k->n] = json_object_get(res, "bottleneck")
                            ? json_pack("{s:O, s:O, s:O}", "stage_time", json_object_get(res, "stage_time"), "time",
                                        json_object_get(res, "time"), "bottleneck", json_object_get(res, "bottleneck"))
                            : NULL;
        k->peak[k->n++] = (int64_t)json_integer_value(json_object_get(res, "peak_extra_bytes"));
        double cg = json_number_value(json_object_get(res, "cpu_gbps"));
        if (k->cpu && cg > 0)
            k->cpu->gbps[k->cpu->n++] = cg;
        else if (k->cpu)
            snprintf(k->cpu->why, sizeof k->cpu->why, "its CPU time could not be read");
    } else {
        snprintf(k->why, sizeof k->why, "%s", rc != 0 ? "could not start" : tly_h_last_line(ch.err));
    }
    json_decref(res);
    tly_h_child_free(&ch);
}

/* Every repetition of every kind, interleaved: repetition r runs the kinds from the r-th on. */
static void measure_all(const struct tly_h_bench *b, struct kind *k, int nk)
{
    for (int r = 0; r < b->reps; r++)
        for (int j = 0; j < nk; j++)
            if (!k[(r + j) % nk].derived)
                measure_once(&k[(r + j) % nk]);
}

/* Where tally's time went in its median repetition: stage_time, time and bottleneck into @p row (and
 * how many repetitions were bound by the same resource). The kind's time objects are freed. */
static void median_time(struct kind *k, json_t *row)
{
    int best = -1;
    struct tly_h_bench_fig f;
    tly_h_bench_fig_of(k->gbps, k->n, &f);
    for (int i = 0; i < k->n; i++)
        if (k->time[i] && (best < 0 || fabs(k->gbps[i] - f.med) < fabs(k->gbps[best] - f.med)))
            best = i;
    if (best >= 0) {
        const char *res = json_string_value(json_object_get(json_object_get(k->time[best], "bottleneck"), "resource"));
        int same = 0;
        for (int i = 0; i < k->n; i++)
            same +=
                k->time[i] &&
                !strcmp(json_string_value(json_object_get(json_object_get(k->time[i], "bottleneck"), "resource")), res);
        json_object_update(row, k->time[best]);
        json_object_set_new(json_object_get(row, "bottleneck"), "agreeing_reps", json_integer(same));
    }
    for (int i = 0; i < k->n; i++)
        json_decref(k->time[i]);
}

/* The kind's figure; with its median peak when it is tally's. */
static json_t *figure(const struct tly_h_bench *b, const struct kind *k)
{
    json_t *f = tly_h_bench_fig_json(k->gbps, k->n, b->max_spread);
    if (k->kind && !k->untracked && strcmp(k->kind, "tally") == 0 && k->n)
        json_object_set_new(f, "peak_extra_bytes", json_integer(tly_h_bench_median_i(k->peak, k->n)));
    if (k->why[0])
        json_object_set_new(f, "error", json_string(k->why));
    return f;
}

static void progress(const struct tly_h_bench *b, const char *name, const struct kind *k, int nk, const char *status)
{
    fprintf(stderr, "  %s:", name);
    for (int i = 0; i < nk; i++) {
        struct tly_h_bench_fig f;
        tly_h_bench_fig_of(k[i].gbps, k[i].n, &f);
        fprintf(stderr, " %s %.2f (%.0f%%)%s", k[i].fig, f.med, 100 * f.spread, f.spread > b->max_spread ? "!" : "");
    }
    fprintf(stderr, " -> %s\n", status);
}

/* True when a chunk of @p c lies strided in the array (a trailing dimension is cut). */
static bool strided(const struct tly_h_bench_case *c)
{
    return moved(c)[1] < c->shape[1];
}

json_t *tly_h_bench_row(struct tly_h_bench *b, const struct tly_h_bench_case *c)
{
    bool none = strcmp(c->codec, "none") == 0, local = strcmp(c->store, "local") == 0;
    const char *limit = none ? "raw" : "codec", *layout = !strided(c) ? limit : none ? "raw_layout" : "codec_layout";
    /* a compressed row's overlapped limit: moving the encoded chunks and decoding or encoding them (the
     * layout's way when strided), the longer of the two, and with them its CPU-shared limit
     * (overlap.c); S3 rows without a codec: the S3 client's alone */
    const char *overlap = none ? NULL : strided(c) ? "overlap_layout" : "overlap";
    if (!local && none)
        overlap = layout;
    const char *cpu = none ? NULL : strided(c) ? "cpu_layout" : "cpu";
    struct kind k[MAX_KINDS] = {{.fig = "tally", .kind = "tally"},
                                {.fig = "untracked", .kind = "tally", .untracked = true},
                                {.fig = limit, .kind = limit}};
    int nk = 3;
    if (strided(c))
        k[nk++] = (struct kind){.fig = layout, .kind = layout};
    if (overlap && strcmp(overlap, layout) != 0)
        k[nk++] = (struct kind){.fig = overlap, .kind = overlap};
    if (cpu) { /* measured by the overlap kind's processes */
        k[nk] = (struct kind){.fig = cpu, .derived = true};
        k[nk - 1].cpu = &k[nk];
        nk++;
    }
    if (local && !c->inner[0]) /* zarr-python 2.13 has no sharding */
        k[nk++] = (struct kind){.fig = "zarr_python", .kind = NULL};
    fprintf(stderr, "bench %s (%d kinds x %d) ...\n", c->name, nk, b->reps);
    for (int i = 0; i < nk; i++)
        k[i].spec = k[i].derived ? NULL : spec_of(b, c, k[i].kind);
    measure_all(b, k, nk);
    json_t *figs = json_object();
    for (int i = 0; i < nk; i++) {
        json_object_set_new(figs, k[i].fig, figure(b, &k[i]));
        json_decref(k[i].spec);
    }
    uint64_t bytes = c->shape[0] * c->shape[1] * 4, n = (c->shape[0] / moved(c)[0]) * (c->shape[1] / moved(c)[1]);
    json_t *row =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:b, s:i, s:i, s:I, s:s, s:s, s:s?, s:o}", "name", c->name,
                  "key", c->key, "op", c->op, "store", c->store, "codec", c->codec, "layout", c->layout_key,
                  "array_bytes", (json_int_t)bytes, "chunks", (json_int_t)n, "strided", strided(c), "threads",
                  c->threads, "io_concurrency", c->io, "memory_limit", (json_int_t)c->mem, "limit", limit,
                  "layout_limit", layout, "overlap_limit", overlap, "figures", figs);
    json_object_set_new(row, "cpu_limit", cpu ? json_string(cpu) : json_null());
    /* a zstd chunk is one frame, and a frame decodes on one thread: a lone chunk's read cannot use
     * the idle threads, and its limit (the codec alone on the same chunks) is one thread too */
    if (!none && !strcmp(c->op, "read") && !strcmp(c->codec, "zstd") && n < (uint64_t)c->threads)
        json_object_set_new(row, "limit_note",
                            json_sprintf("one thread by the format: a Zarr zstd chunk is one frame, which decodes on "
                                         "one thread; its limit is the codec alone on %llu of %d threads",
                                         (unsigned long long)n, c->threads));
    if (c->inner[0])
        json_object_set_new(row, "shards",
                            json_integer((json_int_t)((c->shape[0] / c->chunks[0]) * (c->shape[1] / c->chunks[1]))));
    tly_h_bench_judge(row);
    median_time(&k[0], row);
    for (int i = 1; i < nk; i++)
        for (int r = 0; r < k[i].n; r++)
            json_decref(k[i].time[r]);
    const char *status = json_string_value(json_object_get(row, "status"));
    progress(b, c->name, k, nk, status);
    b->failures += strcmp(status, "error") == 0;
    return row;
}

/* A scaling figure into the row: NAME_gbps, NAME_gbps_min, NAME_gbps_max, NAME_spread,
 * NAME_unstable, NAME_peak_extra_bytes. */
static void scaling_fig(const struct tly_h_bench *b, json_t *row, const struct kind *k, json_t *reasons)
{
    const char *name = k->fig;
    json_t *f = figure(b, k);
    const char *keys[] = {"gbps", "gbps_min", "gbps_max", "spread", "unstable", "peak_extra_bytes"};
    for (int i = 0; i < 6; i++) {
        char key[64];
        snprintf(key, sizeof key, "%s_%s", name, keys[i]);
        json_t *v = json_object_get(f, keys[i]);
        json_object_set(row, key, v ? v : json_null());
    }
    if (json_is_true(json_object_get(f, "unstable")))
        json_array_append_new(reasons, json_sprintf("%s: unstable, its repetitions spread %.0f%% of the median", name,
                                                    100 * json_number_value(json_object_get(f, "spread"))));
    if (k->why[0])
        json_array_append_new(reasons, json_sprintf("%s: not measured (%s)", name, k->why));
    json_decref(f);
}

json_t *tly_h_bench_scaling_row(struct tly_h_bench *b, const struct tly_h_bench_case *c, uint64_t per_dim)
{
    struct tly_h_bench_case w = *c, r = *c;
    w.op = "write";
    r.op = "read";
    struct kind k[2] = {{.fig = "write", .kind = "tally", .spec = spec_of(b, &w, "tally")},
                        {.fig = "read", .kind = "tally", .spec = spec_of(b, &r, "tally")}};
    fprintf(stderr, "scaling %s (write and read x %d) ...\n", c->name, b->reps);
    measure_all(b, k, 2);
    for (int i = 0; i < 2; i++)
        for (int rep = 0; rep < k[i].n; rep++)
            json_decref(k[i].time[rep]);
    json_t *reasons = json_array();
    json_t *row =
        json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:f, s:i, s:i}", "name", c->name, "key", c->key, "store", c->store,
                  "codec", c->codec, "array_bytes", (json_int_t)(c->shape[0] * c->shape[1] * 4), "chunks_per_dim",
                  (json_int_t)per_dim, "chunk_mib", (double)(c->chunks[0] * c->chunks[1] * 4) / 1048576.0, "threads",
                  c->threads, "io_concurrency", c->io);
    scaling_fig(b, row, &k[0], reasons);
    scaling_fig(b, row, &k[1], reasons);
    bool failed = k[0].why[0] || k[1].why[0];
    json_object_set_new(row, "status", json_string(failed ? "error" : json_array_size(reasons) ? "unstable" : "ok"));
    json_object_set_new(row, "reasons", reasons);
    b->failures += failed;
    progress(b, c->name, k, 2, json_string_value(json_object_get(row, "status")));
    json_decref(k[0].spec);
    json_decref(k[1].spec);
    return row;
}
