/*
 * tally bench: throughput against the machine's own limits, measured in the same run; the rows and
 * the scaling table come from scenarios/bench.json. Every measurement runs in a child process of its
 * own (`tally bench-cell SPEC`, bench/measure.c, or bench/zarr_python.py), N repetitions of each
 * kind taking turns (bench/row.c):
 *   tally         the engine writes or reads the array (the row's figure; also its peak extra bytes)
 *   untracked     the same with TALLY_TRACK=0 (the hooks' cost)
 *   raw           pwrite/pread of the same bytes, each chunk a contiguous slice, same threads (local),
 *                 or the S3 client alone PUTting/GETting the same objects, same concurrency (s3)
 *   raw_layout    the same, each chunk's runs moved straight from or into their strided places in
 *                 the array (pwritev/preadv; a PUT/GET with the runs as pieces): chunked rows only
 *   codec         the codec alone on the same chunks in memory, same threads, no I/O
 *   codec_layout  the same, gathering each chunk from its strided places before encoding, or
 *                 scattering it after decoding: chunked compressed rows only
 *   overlap       a compressed read's overlapped limit: the array's bytes over the longer of reading
 *                 the encoded chunks (as raw reads, same threads or transfers) and decoding them (as
 *                 codec); overlap_layout on chunked rows (the decode as codec_layout's)
 *   zarr_python   zarr-python 2.13 on the same local workload
 * Baselines follow the engine's rule for chunks fewer than threads: a read is split into ranges
 * among them (at least 8 MiB each), and a decode gets their share of threads. Every kind follows one
 * memory policy (bench/measure.c). Figures are medians with their spread; ratios, and the verdicts
 * unstable and invalid, come from bench/stats.c; --compare is bench/compare.c.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench.h"
#include "options.h"
#include "tally/tally.h"

static bool wanted(const struct tly_h_bench *b, const char *name)
{
    return !b->has_filter || regexec(&b->filter, name, 0, NULL, 0) == 0;
}

/* An integer of the plan, or "cpus" (the machine's). */
static int plan_int(json_t *v, int cpus)
{
    return json_is_string(v) && !strcmp(json_string_value(v), "cpus") ? cpus : (int)json_integer_value(v);
}

static uint64_t plan_side(const struct tly_h_bench *b)
{
    return (uint64_t)json_integer_value(json_object_get(json_object_get(b->plan, "side"), b->quick ? "quick" : "full"));
}

/* The case every row and scaling row starts from: the plan's array, threads, io and memory limit. */
static struct tly_h_bench_case base_case(const struct tly_h_bench *b, const char *store, int threads)
{
    uint64_t side = plan_side(b);
    return (struct tly_h_bench_case){.store = store,
                                     .codec = "none",
                                     .codec_spec = "none",
                                     .shape = {side, side},
                                     .chunks = {side, side},
                                     .threads = threads,
                                     .io = (int)json_integer_value(json_object_get(b->plan, "io_concurrency")),
                                     .mem = (uint64_t)json_integer_value(json_object_get(b->plan, "memory_limit"))};
}

static void run_rows(struct tly_h_bench *b, bool s3, int threads, json_t *rows)
{
    size_t si, li, oi;
    json_t *store, *lay, *op, *spec;
    const char *codec;
    json_array_foreach(json_object_get(b->plan, "stores"), si, store)
    {
        if (!strcmp(json_string_value(store), "s3") && !s3)
            continue;
        json_array_foreach(json_object_get(b->plan, "layouts"), li, lay)
        {
            struct tly_h_bench_case c = base_case(b, json_string_value(store), threads);
            uint64_t cs = (uint64_t)json_integer_value(json_object_get(lay, "chunk_side"));
            uint64_t spd = (uint64_t)json_integer_value(json_object_get(lay, "shards_per_dim"));
            uint64_t ipd = (uint64_t)json_integer_value(json_object_get(lay, "inner_per_shard_dim"));
            c.chunks[0] = c.chunks[1] = cs ? cs : c.shape[0];
            char counted[64];
            snprintf(counted, sizeof counted, "%llux%lluMiB",
                     (unsigned long long)((c.shape[0] / c.chunks[0]) * (c.shape[1] / c.chunks[1])),
                     (unsigned long long)(c.chunks[0] * c.chunks[1] * 4 >> 20));
            if (spd && ipd) { /* sharded: spd x spd shards of ipd x ipd inner chunks */
                c.chunks[0] = c.chunks[1] = c.shape[0] / spd;
                c.inner[0] = c.inner[1] = c.chunks[0] / ipd;
                snprintf(counted, sizeof counted, "%llushards-%llux%llu", (unsigned long long)(spd * spd),
                         (unsigned long long)ipd, (unsigned long long)ipd);
            }
            const char *lname = json_string_value(json_object_get(lay, "name"));
            const char *lkey = json_string_value(json_object_get(lay, "key"));
            c.layout_key = lkey ? lkey : lname ? lname : counted;
            json_object_foreach(json_object_get(b->plan, "codecs"), codec, spec)
            {
                json_array_foreach(json_object_get(b->plan, "ops"), oi, op)
                {
                    c.op = json_string_value(op);
                    c.codec = codec;
                    c.codec_spec = json_string_value(spec);
                    snprintf(c.name, sizeof c.name, "%s-%s-%s-%s", c.op, c.store, codec, lname ? lname : counted);
                    snprintf(c.key, sizeof c.key, "%s-%s-%s-%s", c.op, c.store, codec, c.layout_key);
                    if (wanted(b, c.name))
                        json_array_append_new(rows, tly_h_bench_row(b, &c));
                }
            }
        }
    }
}

static void scaling_one(struct tly_h_bench *b, const char *store, uint64_t per_dim, int threads, int io,
                        json_t *scaling)
{
    struct tly_h_bench_case c = base_case(b, store, threads > 0 ? threads : 1);
    c.chunks[0] = c.chunks[1] = c.shape[0] / per_dim;
    c.io = io;
    snprintf(c.name, sizeof c.name, "scaling-%s-none-%llux%llu-t%d%s", store, (unsigned long long)per_dim,
             (unsigned long long)per_dim, c.threads, strcmp(store, "s3") ? "" : "-io");
    if (!strcmp(store, "s3"))
        snprintf(c.name + strlen(c.name), sizeof c.name - strlen(c.name), "%d", io);
    snprintf(c.key, sizeof c.key, "%s", c.name);
    if (wanted(b, c.name))
        json_array_append_new(scaling, tly_h_bench_scaling_row(b, &c, per_dim));
}

static void run_scaling(struct tly_h_bench *b, bool s3, int cpus, json_t *scaling)
{
    json_t *sc = json_object_get(b->plan, "scaling");
    json_t *per_dims = json_object_get(json_object_get(sc, "chunks_per_dim"), b->quick ? "quick" : "full");
    int io = (int)json_integer_value(json_object_get(b->plan, "io_concurrency"));
    size_t pi, k;
    json_t *pd, *t;
    json_array_foreach(per_dims, pi, pd)
    {
        json_array_foreach(json_object_get(sc, "threads"), k, t)
        {
            scaling_one(b, "local", (uint64_t)json_integer_value(pd), plan_int(t, cpus), io, scaling);
        }
    }
    if (!s3 || b->quick)
        return;
    json_array_foreach(per_dims, pi, pd)
    {
        json_array_foreach(json_object_get(sc, "s3_io_concurrency"), k, t)
        {
            scaling_one(b, "s3", (uint64_t)json_integer_value(pd), cpus, (int)json_integer_value(t), scaling);
        }
    }
}

static int write_outputs(const struct tly_h_bench *b, json_t *doc)
{
    char path[TLY_H_PATH];
    int err = tly_h_mkdirs(b->out);
    if (!err)
        err = tly_h_pathf(path, "%s/bench.json", b->out);
    if (!err && json_dump_file(doc, path, JSON_INDENT(2) | JSON_REAL_PRECISION(5)) != 0)
        err = tly_fail(-EIO, "cannot write %s", path);
    FILE *f = err || tly_h_pathf(path, "%s/bench.md", b->out) ? NULL : fopen(path, "w");
    if (f) {
        tly_h_bench_write_md(f, doc);
        fclose(f);
    }
    if (b->json) {
        json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(5));
        putchar('\n');
    } else {
        tly_h_bench_write_md(stdout, doc);
    }
    return err;
}

static const char about[] =
    "Rows: tally with the plan's memory limit and one thread per CPU (S3: the plan's transfers in flight). "
    "Limits: raw = pwrite/pread of the same bytes in one file per chunk, each chunk a contiguous slice of the "
    "array, with the same threads (local), or the S3 client alone PUTting/GETting the same objects from/to memory "
    "with the same concurrency (s3); codec = the codec alone on the same chunks in memory with the same threads. "
    "Where a row's chunks lie strided in the array (the chunked rows), the layout's limits move the same bytes "
    "into the same strided places by the simplest code: raw_layout = pwritev/preadv of each chunk's runs (S3: "
    "one PUT/GET per chunk with the runs as its pieces), codec_layout = the codec alone, gathering each chunk "
    "before encoding or scattering it after decoding; ratio_to_layout_limit is the target, ratio_to_raw and "
    "ratio_to_codec_limit say what the layout costs. Elsewhere the layout's limit is the contiguous one. "
    "A compressed row's overlapped limit = the array's bytes over the longer of moving the encoded chunks "
    "(reading them as raw reads the decoded ones, or storing them: files by pwrite, S3 objects by the S3 client "
    "alone) and decoding or encoding them (as codec, or as codec_layout on chunked rows), each timed on its own: "
    "an engine that codes blocks as they move hides the shorter behind the longer at best. Its CPU-shared limit "
    "counts the CPUs too: where moving bytes costs CPU (page-cache copies, HTTP), the two halves cannot both have "
    "every CPU at once, so the limit is the array's bytes over the longest of either half's time and the CPU "
    "seconds of both halves (the measuring process's, every thread, user and system) over the CPUs; it is the "
    "target of a compressed row where the machine's CPUs are its bound (cpu_layout: the layout's way, a simplest "
    "code, so no physical limit; on S3 it counts the CPU of the project's S3 server too, radosgw, ceph-osd and "
    "ceph-mon from /proc, when the run is against scripts/s3-server on the same machine, and without it is "
    "loose). "
    "The column \"of the overlap limit the CPUs allow\" is the CPU-shared limit over the overlapped one, "
    "repetition by repetition (both come from the same processes): the most of the overlapped limit any engine "
    "can reach on this machine, below 1 where the two halves' CPU seconds do not fit side by side on its CPUs "
    "(on S3 against a server on the same CPUs, the server's with them). "
    "zarr-python 2.13 runs the same local workload; untracked = tally with TALLY_TRACK=0. With fewer chunks than "
    "threads (the one-chunk rows), the engine and its limits split a chunk's read into ranges among them and "
    "decode blosc on their share of threads.";

static const char policy_about[] =
    "No kind pays for fresh memory in its timed pass: the array a write reads and the output a read fills are "
    "allocated and touched before it, as are a limit's working buffers; every kind (tally, its limits, "
    "zarr-python) runs its operation once untimed and then once timed in the same process, with its allocator "
    "told to keep freed pages (jemalloc: decay -1; glibc: no mmap'd blocks, no trimming), so the buffers an "
    "operation allocates inside itself (tally's pool, zarr-python's chunk buffers) are pages it already has; "
    "what a write wrote is removed after each pass, so both passes create their files or objects. A read frees "
    "the source array first, so each process holds what a read holds. The figures are steady-state ones; the "
    "first touch of fresh memory, which on a VM can cost more than the work, is in none of them.";

/* A real number in [lo, hi] for option @p name; -1 with a message when it is not one. */
static int arg_real(const char *name, const char *v, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (end == v || *end != '\0' || errno != 0 || !(d >= lo && d <= hi)) {
        fprintf(stderr, "tally bench: --%s: '%s' is not a number from %g to %g\n", name, v, lo, hi);
        return -1;
    }
    *out = d;
    return 0;
}

/* The options into @p b; compare set for --compare, judge for --judge (which takes only --out and --json
 * beside it). 0, or TLY_EXIT_ERROR after a message. */
static int parse(int argc, char **argv, struct tly_h_bench *b, bool *compare, double *tolerance, const char **judge)
{
    static const struct option lo[] = {
        {"quick", no_argument, NULL, 'q'},        {"json", no_argument, NULL, 'j'},
        {"out", required_argument, NULL, 'o'},    {"reps", required_argument, NULL, 'r'},
        {"filter", required_argument, NULL, 'f'}, {"max-spread", required_argument, NULL, 's'},
        {"compare", no_argument, NULL, 'c'},      {"tolerance", required_argument, NULL, 't'},
        {"judge", required_argument, NULL, 'J'},  {NULL, 0, NULL, 0}};
    long long reps = b->reps;
    for (int ch; (ch = tly_h_getopt(argc, argv, lo)) != -1;) {
        int bad = 0;
        if (ch == 'q')
            b->quick = true;
        else if (ch == 'j')
            b->json = true;
        else if (ch == 'o')
            b->out = optarg;
        else if (ch == 'r')
            bad = tly_h_arg_int("bench", "reps", optarg, TLY_H_BENCH_MIN_REPS, TLY_H_BENCH_MAX_REPS, &reps);
        else if (ch == 'f')
            b->filter_text = optarg;
        else if (ch == 's')
            bad = arg_real("max-spread", optarg, 0, 100, &b->max_spread);
        else if (ch == 'c')
            *compare = true;
        else if (ch == 't')
            bad = arg_real("tolerance", optarg, 0, 100, tolerance);
        else if (ch == 'J')
            *judge = optarg;
        else
            return tly_h_usage_error("bench");
        if (bad)
            return TLY_EXIT_ERROR;
    }
    b->reps = (int)reps;
    if (optind != argc - (*compare ? 2 : 0) || (*judge && (*compare || b->quick || b->filter_text)))
        return tly_h_usage_error("bench");
    if (b->filter_text && regcomp(&b->filter, b->filter_text, REG_EXTENDED | REG_NOSUB) != 0) {
        fprintf(stderr, "tally bench: --filter: '%s' is not a regular expression\n", b->filter_text);
        return TLY_EXIT_ERROR;
    }
    b->has_filter = b->filter_text != NULL;
    return 0;
}

/* The plan and the scratch directory; 0 or TLY_EXIT_ERROR after a message. */
static int prepare(struct tly_h_bench *b)
{
    char planfile[TLY_H_PATH];
    tly_h_project_file("scenarios/bench.json", planfile);
    json_error_t je;
    if ((b->plan = json_load_file(planfile, JSON_REJECT_DUPLICATES, &je)) == NULL) {
        fprintf(stderr, "tally bench: %s:%d: %s\n", planfile, je.line, je.text);
        return TLY_EXIT_ERROR;
    }
    /* Local data on /dev/shm when there is one (as TensorStore's published runs), so the figures are
     * the engine's and the memory's, not the disk's. */
    const char *base = getenv("TALLY_BENCH_DIR");
    if (!base)
        base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    if (tly_h_pathf(b->dir, "%s/tally-bench-XXXXXX", base) != 0 || mkdtemp(b->dir) == NULL) {
        fprintf(stderr, "tally bench: %s: %s\n", b->dir, strerror(errno));
        return TLY_EXIT_ERROR;
    }
    if (getenv("AWS_ENDPOINT_URL") && getenv("TALLY_S3_BUCKET"))
        snprintf(b->s3url, sizeof b->s3url, "s3://%s/tally-bench-%d", getenv("TALLY_S3_BUCKET"), (int)getpid());
    return 0;
}

/* The exit status of a run: 2 when a measurement failed, 1 when a row is invalid; a summary line. */
static int verdict(const struct tly_h_bench *b, json_t *doc)
{
    int n[4] = {0};
    const char *words[4] = {"ok", "unstable", "invalid", "error"};
    const char *tables[2] = {"rows", "scaling"};
    for (int t = 0; t < 2; t++) {
        size_t i;
        json_t *r;
        json_array_foreach(json_object_get(doc, tables[t]), i, r)
        {
            for (int w = 0; w < 4; w++)
                n[w] += !strcmp(json_string_value(json_object_get(r, "status")), words[w]);
        }
    }
    fprintf(stderr, "tally bench: %d ok, %d unstable, %d invalid, %d with errors\n", n[0], n[1], n[2], n[3]);
    return b->failures || n[3] ? TLY_EXIT_ERROR : n[2] ? TLY_EXIT_BUDGET : TLY_EXIT_OK;
}

/* The command line that made the document, as a shell would take it back: "tally bench" and @p argv's
 * options (argv[0] is "bench"), each quoted when it holds more than letters, digits and -_./,:= */
static json_t *command_line(int argc, char **argv)
{
    char line[2048];
    size_t n = (size_t)snprintf(line, sizeof line, "tally %s", argc > 0 ? argv[0] : "bench");
    for (int i = 1; i < argc && n < sizeof line; i++) {
        bool plain = argv[i][0] != '\0' && strspn(argv[i], "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                           "0123456789-_./,:=") == strlen(argv[i]);
        n += (size_t)snprintf(line + n, sizeof line - n, plain ? " %s" : " '%s'", argv[i]);
    }
    return json_string(line);
}

/*
 * tally bench --judge FILE: a run's document judged again by this build: its rows' ratios, verdicts and
 * reasons, and the text that explains them, from the figures and repetitions it holds, unchanged; written
 * to --out as a run's is, with who judged it again and when. A new ratio reaches a measured run so
 * without measuring it again (72 minutes on 2 CPUs).
 */
static int judge_again(const struct tly_h_bench *b, const char *file, int argc, char **argv)
{
    json_error_t je;
    json_t *doc = json_load_file(file, JSON_REJECT_DUPLICATES, &je);
    if (doc == NULL) {
        fprintf(stderr, "tally bench --judge: %s:%d: %s\n", file, je.line, je.text);
        return TLY_EXIT_ERROR;
    }
    if (!tly_h_bench_is_doc(doc, "--judge", file)) {
        json_decref(doc);
        return TLY_EXIT_ERROR;
    }
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(doc, "rows"), i, r)
    {
        tly_h_bench_judge(r);
    }
    json_object_set_new(doc, "about", json_string(about));
    json_object_set_new(doc, "memory_policy_about", json_string(policy_about));
    char date[32];
    tly_h_utc_date(time(NULL), date);
    json_t *again = json_pack("{s:s, s:o}", "date", date, "command", command_line(argc, argv));
    tly_h_git_state(again);
    json_object_set_new(doc, "judged_again", again);
    int rc = write_outputs(b, doc) ? tly_h_fail_cmd("bench", -EIO) : verdict(b, doc);
    json_decref(doc);
    return rc;
}

int tly_h_cmd_bench(int argc, char **argv)
{
    struct tly_h_bench b = {.out = "reports/latest", .reps = TLY_H_BENCH_MIN_REPS, .max_spread = 0.25};
    bool compare = false;
    double tolerance = 0.10;
    const char *judge = NULL;
    int rc = parse(argc, argv, &b, &compare, &tolerance, &judge);
    if (rc != 0 || compare || judge) {
        if (b.has_filter)
            regfree(&b.filter);
        return rc != 0 ? rc
               : judge ? judge_again(&b, judge, argc, argv)
                       : tly_h_bench_compare_files(argv[optind], argv[optind + 1], tolerance);
    }
    if ((rc = prepare(&b)) != 0) {
        json_decref(b.plan);
        if (b.has_filter)
            regfree(&b.filter);
        return rc;
    }
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = cpus > 0 ? (int)cpus : 1;
    char date[32];
    tly_h_utc_date(time(NULL), date);
    double t0 = tly_h_now_s();
    json_t *git = json_object(); /* the tree as the run began: edits made while it runs are not its */
    tly_h_git_state(git);
    json_t *rows = json_array(), *scaling = json_array();
    run_rows(&b, b.s3url[0] != '\0', threads, rows);
    run_scaling(&b, b.s3url[0] != '\0', threads, scaling);
    rmdir(b.dir);
    double took = tly_h_now_s() - t0;
    uint64_t side = plan_side(&b);
    json_t *doc = json_pack("{s:s, s:o, s:b, s:i, s:f, s:f, s:s, s:s, s:o, s:I, s:o, s:o, s:s}", "schema",
                            TLY_H_BENCH_SCHEMA, "machine", tly_h_host_json(), "quick", b.quick, "reps", b.reps,
                            "max_spread", b.max_spread, "limit_slack", TLY_H_BENCH_LIMIT_SLACK, "memory_policy",
                            TLY_H_BENCH_MEMORY_POLICY, "memory_policy_about", policy_about, "filter",
                            b.filter_text ? json_string(b.filter_text) : json_null(), "array_bytes",
                            (json_int_t)(side * side * 4), "rows", rows, "scaling", scaling, "about", about);
    json_object_set_new(doc, "date", json_string(date));
    json_object_set_new(doc, "took_s", json_real(took));
    json_object_set_new(doc, "command", command_line(argc, argv));
    json_object_update(doc, git);
    json_decref(git);
    if (json_array_size(rows) + json_array_size(scaling) == 0) {
        fprintf(stderr, "tally bench: --filter '%s' matches no row\n", b.filter_text ? b.filter_text : "");
        rc = TLY_EXIT_ERROR;
    } else {
        rc = write_outputs(&b, doc) ? tly_h_fail_cmd("bench", -EIO) : verdict(&b, doc);
    }
    json_decref(doc);
    json_decref(b.plan);
    if (b.has_filter)
        regfree(&b.filter);
    return rc;
}
