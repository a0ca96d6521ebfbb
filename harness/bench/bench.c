/*
 * tally bench: throughput against the machine's own limits, measured in the same run. The rows and
 * the scaling table come from scenarios/bench.json. Every measurement runs in a child process of its
 * own (`tally bench-cell SPEC`, bench/measure.c), best of N:
 *   tally      the engine writes or reads the array (the row's figure; also its peak extra bytes)
 *   untracked  the same with TALLY_TRACK=0 (the hooks' cost)
 *   raw        pwrite/pread of the same bytes, chunk by chunk, same threads (local), or the S3
 *              client alone PUTting/GETting the same objects from/to memory, same concurrency (s3)
 *   codec      the codec alone on the same chunks from memory, same threads, no I/O
 *   zarr       zarr-python 2.13 on the same local workload (harness/run/peer_zarr_python.py)
 * Baselines follow the engine's rule for chunks fewer than threads: a read is split into ranges
 * among them (at least 8 MiB each), and a decode gets their share of threads. Before a timed read
 * every kind frees the source array, so each process holds what the engine's read holds. Rows
 * report GB/s (10^9 bytes/s) with ratio_to_raw (uncompressed rows), ratio_to_codec_limit
 * (compressed rows), ratio_to_zarr_python (local rows) and ratio_to_untracked.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "harness.h"
#include "tally/tally.h"

struct opts {
    bool quick, json;
    const char *out;
    int reps;
    json_t *plan;           /* scenarios/bench.json */
    char dir[TLY_H_PATH];   /* local scratch */
    char s3url[TLY_H_PATH]; /* s3://bucket/tally-bench-PID, or "" */
};

/* Run one measurement in a child (best of reps); its result, or NULL. */
static json_t *child(const struct opts *o, json_t *spec, bool untracked, const char *peer_script)
{
    json_t *best = NULL;
    for (int r = 0; r < o->reps; r++) {
        char *text = json_dumps(spec, JSON_COMPACT);
        char *argv[] = {peer_script ? "/usr/bin/python3" : "tally", peer_script ? (char *)peer_script : "bench-cell",
                        text, NULL};
        struct tly_h_env env = {"TALLY_TRACK", untracked ? "0" : NULL};
        struct tly_h_child ch;
        int rc = tly_h_spawn(peer_script ? argv[0] : tly_h_self(), argv, &env, 1, false, &ch);
        free(text);
        if (rc != 0)
            return best;
        json_t *res = WIFEXITED(ch.status) && WEXITSTATUS(ch.status) == 0 ? json_loads(ch.out, 0, NULL) : NULL;
        tly_h_child_free(&ch);
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
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:[I,I], s:[I,I], s:i, s:i, s:I}", "scenario", "bench",
                     "kind", kind, "op", op, "store", store, "codec_spec", codec_spec, "dir",
                     strcmp(store, "s3") ? o->dir : o->s3url, "dtype",
                     json_string_value(json_object_get(o->plan, "dtype")), "shape", (json_int_t)shape[0],
                     (json_int_t)shape[1], "chunks", (json_int_t)chunks[0], (json_int_t)chunks[1], "threads", threads,
                     "io_concurrency", io, "memory_limit", (json_int_t)mem);
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
        char script[TLY_H_PATH];
        tly_h_project_file("harness/run/peer_zarr_python.py", script);
        json_t *cell =
            json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:[I,I], s:[I,I]}", "scenario", name, "op", op, "store", "local",
                      "codec", codec, "format", "v2", "layout", l->name, "shape", (json_int_t)l->shape[0],
                      (json_int_t)l->shape[1], "chunks", (json_int_t)l->chunks[0], (json_int_t)l->chunks[1]);
        json_object_set_new(cell, "dir", json_string(o->dir)); /* the same filesystem as tally's rows */
        if (!strcmp(codec, "zstd"))                            /* the peer's zstd at the bench's level */
            json_object_set(cell, "zstd_level", json_object_get(o->plan, "zarr_python_zstd_level"));
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

/* An integer of the plan, or "cpus" (the machine's). */
static int plan_int(json_t *v, int cpus)
{
    return json_is_string(v) && !strcmp(json_string_value(v), "cpus") ? cpus : (int)json_integer_value(v);
}

static void run_rows(struct opts *o, bool s3, int threads, json_t *rows)
{
    const char *which = o->quick ? "quick" : "full";
    uint64_t side = (uint64_t)json_integer_value(json_object_get(json_object_get(o->plan, "side"), which));
    int io = (int)json_integer_value(json_object_get(o->plan, "io_concurrency"));
    uint64_t mem = (uint64_t)json_integer_value(json_object_get(o->plan, "memory_limit"));
    size_t si, li, oi;
    json_t *store, *lay, *op;
    json_array_foreach(json_object_get(o->plan, "stores"), si, store)
    {
        if (!strcmp(json_string_value(store), "s3") && !s3)
            continue;
        json_array_foreach(json_object_get(o->plan, "layouts"), li, lay)
        {
            uint64_t cs = (uint64_t)json_integer_value(json_object_get(lay, "chunk_side"));
            struct layout l = {NULL, {side, side}, {cs ? cs : side, cs ? cs : side}};
            char name[64];
            uint64_t n = (side / l.chunks[0]) * (side / l.chunks[1]);
            snprintf(name, sizeof name, "%llux%lluMiB", (unsigned long long)n,
                     (unsigned long long)(l.chunks[0] * l.chunks[1] * 4 >> 20));
            l.name = json_string_value(json_object_get(lay, "name")) ? json_string_value(json_object_get(lay, "name"))
                                                                     : name;
            const char *codec;
            json_t *spec;
            json_object_foreach(json_object_get(o->plan, "codecs"), codec, spec)
            {
                json_array_foreach(json_object_get(o->plan, "ops"), oi, op)
                {
                    json_array_append_new(rows, bench_row(o, json_string_value(op), json_string_value(store), codec,
                                                          json_string_value(spec), &l, threads, io, mem));
                }
            }
        }
    }
}

static void run_scaling(struct opts *o, bool s3, int cpus, json_t *scaling)
{
    const char *which = o->quick ? "quick" : "full";
    uint64_t side = (uint64_t)json_integer_value(json_object_get(json_object_get(o->plan, "side"), which));
    int io = (int)json_integer_value(json_object_get(o->plan, "io_concurrency"));
    uint64_t mem = (uint64_t)json_integer_value(json_object_get(o->plan, "memory_limit"));
    json_t *sc = json_object_get(o->plan, "scaling");
    json_t *per_dims = json_object_get(json_object_get(sc, "chunks_per_dim"), which);
    size_t pi, ti, k;
    json_t *pd, *t, *ios;
    json_array_foreach(per_dims, pi, pd)
    {
        json_array_foreach(json_object_get(sc, "threads"), ti, t)
        {
            int th = plan_int(t, cpus);
            json_array_append_new(scaling, scaling_row(o, "local", "none", "none", side,
                                                       (uint64_t)json_integer_value(pd), th > 0 ? th : 1, io, mem));
        }
    }
    if (!s3 || o->quick)
        return;
    json_array_foreach(per_dims, pi, pd)
    {
        json_array_foreach(json_object_get(sc, "s3_io_concurrency"), k, ios)
        {
            json_array_append_new(scaling, scaling_row(o, "s3", "none", "none", side, (uint64_t)json_integer_value(pd),
                                                       cpus, (int)json_integer_value(ios), mem));
        }
    }
}

static int write_outputs(struct opts *o, json_t *doc)
{
    char path[TLY_H_PATH];
    int err = tly_h_mkdirs(o->out);
    if (!err)
        err = tly_h_pathf(path, "%s/bench.json", o->out);
    if (!err && json_dump_file(doc, path, JSON_INDENT(2) | JSON_REAL_PRECISION(5)) != 0)
        err = tly_fail(-EIO, "cannot write %s", path);
    FILE *f = err || tly_h_pathf(path, "%s/bench.md", o->out) ? NULL : fopen(path, "w");
    if (f) {
        write_md(f, doc);
        fclose(f);
    }
    if (o->json) {
        json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(5));
        putchar('\n');
    } else {
        write_md(stdout, doc);
    }
    return err;
}

int tly_h_cmd_bench(int argc, char **argv)
{
    static const struct option lo[] = {{"quick", no_argument, NULL, 'q'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"out", required_argument, NULL, 'o'},
                                       {NULL, 0, NULL, 0}};
    struct opts o = {.out = "reports/latest", .reps = 3};
    for (int ch; (ch = tly_h_getopt(argc, argv, lo)) != -1;) {
        if (ch == 'q')
            o.quick = true;
        else if (ch == 'j')
            o.json = true;
        else if (ch == 'o')
            o.out = optarg;
        else
            return tly_h_usage_error("bench");
    }
    if (optind != argc)
        return tly_h_usage_error("bench");
    if (o.quick)
        o.reps = 1;
    char planfile[TLY_H_PATH];
    tly_h_project_file("scenarios/bench.json", planfile);
    json_error_t je;
    if ((o.plan = json_load_file(planfile, JSON_REJECT_DUPLICATES, &je)) == NULL) {
        fprintf(stderr, "tally bench: %s:%d: %s\n", planfile, je.line, je.text);
        return TLY_EXIT_ERROR;
    }
    /* Local data on /dev/shm when there is one (as TensorStore's published runs), so the figures are
     * the engine's and the memory's, not the disk's. */
    const char *base = getenv("TALLY_BENCH_DIR");
    if (!base)
        base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    if (tly_h_pathf(o.dir, "%s/tally-bench-XXXXXX", base) != 0 || mkdtemp(o.dir) == NULL) {
        fprintf(stderr, "tally bench: %s: %s\n", o.dir, strerror(errno));
        json_decref(o.plan);
        return TLY_EXIT_ERROR;
    }
    bool s3 = getenv("AWS_ENDPOINT_URL") && getenv("TALLY_S3_BUCKET");
    if (s3)
        snprintf(o.s3url, sizeof o.s3url, "s3://%s/tally-bench-%d", getenv("TALLY_S3_BUCKET"), (int)getpid());
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = cpus > 0 ? (int)cpus : 1;
    json_t *rows = json_array(), *scaling = json_array();
    run_rows(&o, s3, threads, rows);
    run_scaling(&o, s3, threads, scaling);
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
    int rc = write_outputs(&o, doc) ? tly_h_fail_cmd("bench", -EIO) : TLY_EXIT_OK;
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r) if (json_object_get(r, "error")) rc = TLY_EXIT_ERROR;
    json_decref(doc);
    json_decref(o.plan);
    return rc;
}
