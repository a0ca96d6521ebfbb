/*
 * tally selftest: prove the instrument.
 *
 * 1. For each stage the local matrix exercises (and sign/http when an S3 endpoint is configured),
 *    run a scenario that passes through that stage twice, in child processes: clean, and with a
 *    defect planted in the stage (TALLY_PLANT: an extra allocation of half the array, filled
 *    through the copy ledger and held to the end of the operation). The clean run must hold its
 *    budgets; the planted one must show the planted bytes in that stage's copies, allocations and
 *    at-peak split, and fail that stage's budget.
 * 2. The tracker's requested peak against heaptrack's (Debian's heaptrack, on the same run) within
 *    2%, and its reserved peak against jemalloc's own thread.peak counter within 2%.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cell/cell.h"
#include "options.h"
#include "harness.h"
#include "run/matrix.h"
#include "run/run.h"

struct probe {
    const char *stage;
    const char *op, *store, *codec, *layout;
};

/* Smaller arrays keep the selftest quick: 64 MiB, one chunk or strided tiles. */
static const struct probe probes[] = {
    {"plan", "write", "local", "none", "one"},      {"meta", "write", "local", "none", "one"},
    {"pool", "write", "local", "zstd", "one"},      {"put", "write", "local", "none", "one"},
    {"gather", "write", "local", "blosc", "tiles"}, {"encode", "write", "local", "blosc", "one"},
    {"get", "read", "local", "none", "one"},        {"decode", "read", "local", "zstd", "one"},
    {"scatter", "read", "local", "zstd", "tiles"},  {"sign", "write", "s3", "none", "one"},
    {"http", "write", "s3", "none", "one"},
};

static json_t *probe_cell(const struct probe *p, json_t *rules)
{
    bool tiles = strcmp(p->layout, "tiles") == 0;
    const char *spec = strcmp(p->codec, "blosc") == 0  ? "blosc:cname=lz4,clevel=5,shuffle=1"
                       : strcmp(p->codec, "zstd") == 0 ? "zstd:level=3"
                                                       : "none";
    char name[128];
    snprintf(name, sizeof name, "selftest-%s-%s-%s-%s", p->op, p->store, p->codec, tiles ? "strided" : "one-chunk");
    json_t *cell = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:[i,i], s:[i,i], s:i}", "scenario", name, "op",
                             p->op, "store", p->store, "codec", p->codec, "codec_spec", spec, "format", "v2", "layout",
                             tiles ? "strided" : "one-chunk", "dtype", "<f4", "shape", 4096, 4096, "chunks",
                             tiles ? 2048 : 4096, tiles ? 1024 : 4096, "threads", 1);
    json_object_set_new(cell, "memory_limit", json_integer(64 << 20));
    json_object_set_new(cell, "budgets", tly_h_rules_budgets(rules, cell));
    return cell;
}

/* Run `tally scenario CELL` with TALLY_PLANT=@p plant (NULL: none) and, with @p wrap, under that command. */
static json_t *run(json_t *cell, const char *plant, char *const *wrap)
{
    struct tly_h_env env = {"TALLY_PLANT", plant};
    char reason[TLY_H_REASON];
    json_t *res = tly_h_child_run(cell, &env, 1, wrap, reason);
    if (res == NULL)
        fprintf(stderr, "tally selftest: %s: %s\n", json_string_value(json_object_get(cell, "scenario")), reason);
    return res;
}

static double stage_num(json_t *res, const char *stage, const char *field)
{
    return json_number_value(json_object_get(json_object_get(json_object_get(res, "stages"), stage), field));
}

static bool stage_budget_failed(json_t *lines, const char *stage)
{
    size_t i;
    json_t *b;
    json_array_foreach(lines, i, b)
    {
        const char *s = json_string_value(json_object_get(b, "stage"));
        if (s && strcmp(s, stage) == 0 && !json_is_true(json_object_get(b, "ok")))
            return true;
    }
    return false;
}

/* One stage: clean run holds budgets; planted run shows the defect in the stage and fails its budget. */
static bool probe_stage(const struct probe *p, json_t *rules)
{
    json_t *cell = probe_cell(p, rules);
    json_t *budgets = json_object_get(cell, "budgets");
    uint64_t array = 4096 * 4096 * 4, plant = array / 2;
    char env[64];
    snprintf(env, sizeof env, "%s:%llu", p->stage, (unsigned long long)plant);
    json_t *clean = run(cell, NULL, NULL), *planted = run(cell, env, NULL);
    bool ok = clean && planted;
    bool clean_ok = false, failed = false;
    double dcopies = 0, dbytes = 0, datpeak = 0;
    if (ok) {
        json_t *l1 = tly_h_check_budgets(budgets, clean, &clean_ok);
        bool planted_ok;
        json_t *l2 = tly_h_check_budgets(budgets, planted, &planted_ok);
        failed = stage_budget_failed(l2, p->stage);
        json_decref(l1);
        json_decref(l2);
        dcopies = (stage_num(planted, p->stage, "copy_bytes") - stage_num(clean, p->stage, "copy_bytes")) / plant;
        dbytes = (stage_num(planted, p->stage, "alloc_bytes") - stage_num(clean, p->stage, "alloc_bytes")) / plant;
        datpeak = (stage_num(planted, p->stage, "at_peak_bytes") - stage_num(clean, p->stage, "at_peak_bytes")) / plant;
        /* found: the planted copy (exactly: the ledger has no noise), its allocation and its share of the
         * peak (within 2% and 5%: the stage's own allocations differ a little between two runs, e.g.
         * libcurl's in http) */
        ok = clean_ok && failed && dcopies > 0.999 && dcopies < 1.001 && dbytes > 0.98 && dbytes < 1.1 &&
             datpeak > 0.95 && datpeak < 1.05;
    }
    printf("%-8s %-28s %-6s %8.3f %8.3f %8.3f %-7s %s\n", p->stage,
           json_string_value(json_object_get(cell, "scenario")), clean_ok ? "ok" : "FAILED", dcopies, dbytes, datpeak,
           failed ? "failed" : "held", ok ? "ok" : "FAILED");
    json_decref(clean);
    json_decref(planted);
    json_decref(cell);
    return ok;
}

static double heaptrack_peak(const char *file)
{
    char *argv[] = {"heaptrack_print", "-f", (char *)file, NULL};
    struct tly_h_child ch;
    if (tly_h_spawn(argv[0], argv, NULL, 0, false, &ch) != 0)
        return -1;
    char *text = ch.out;
    const char *line = text ? strstr(text, "peak heap memory consumption") : NULL;
    const char *colon = line ? strchr(line, ':') : NULL;
    if (colon == NULL) {
        tly_h_child_free(&ch);
        return -1;
    }
    char *end;
    double v = strtod(colon + 1, &end);
    switch (*end) { /* heaptrack prints decimal units: 1K = 1000 */
    case 'K':
        v *= 1e3;
        break;
    case 'M':
        v *= 1e6;
        break;
    case 'G':
        v *= 1e9;
        break;
    default:
        break;
    }
    tly_h_child_free(&ch);
    return v;
}

/*
 * The tracker's peaks against heaptrack's and jemalloc's on one run: its requested peak against
 * heaptrack's (both count the bytes asked for), its reserved peak against jemalloc's thread.peak
 * (both count usable bytes); a zstd write with no verification read after the window, so that the
 * window holds the process's peak.
 */
static bool cross_peaks(json_t *rules)
{
    struct probe p = {"-", "write", "local", "zstd", "one"};
    json_t *cell = probe_cell(&p, rules);
    json_object_set_new(cell, "verify", json_false());
    bool ok = true;
    char dir[] = "/tmp/tally-heaptrack-XXXXXX";
    if (system("command -v heaptrack >/dev/null 2>&1") != 0 || mkdtemp(dir) == NULL) {
        printf("heaptrack: not installed (scripts/deps installs it): FAILED\n");
        ok = false;
    } else {
        char out[256];
        snprintf(out, sizeof out, "%s/run", dir);
        char *wrap[] = {"heaptrack", "-o", out, NULL};
        json_t *res = run(cell, NULL, wrap);
        char file[300];
        snprintf(file, sizeof file, "%s.zst", out);
        double ht = heaptrack_peak(file);
        double ours = res ? (double)json_integer_value(json_object_get(res, "peak_bytes")) : -1;
        double diff = ours > 0 && ht > 0 ? (ours - ht) / ht : 1;
        bool good = ours > 0 && ht > 0 && diff < 0.02 && diff > -0.02;
        printf("heaptrack: peak %.1f MB, tally %.1f MB: %+.2f%% (within 2%%: %s)\n", ht / 1e6, ours / 1e6, diff * 100,
               good ? "ok" : "FAILED");
        ok &= good;
        json_decref(res);
        char rm[400];
        snprintf(rm, sizeof rm, "rm -rf '%s'", dir);
        if (system(rm) != 0)
            fprintf(stderr, "tally selftest: could not remove %s\n", dir);
    }
    json_t *res = run(cell, NULL, NULL);
    if (res) {
        json_t *cov = json_object_get(res, "coverage");
        double je = (double)json_integer_value(json_object_get(cov, "jemalloc_thread_peak_bytes"));
        /* jemalloc counts usable bytes: the reserved peak's units */
        double ours = (double)(json_integer_value(json_object_get(res, "reserved_peak_bytes")) -
                               json_integer_value(json_object_get(res, "reserved_before_bytes")));
        double diff = je > 0 ? (ours - je) / je : 1;
        bool good = je > 0 && diff < 0.02 && diff > -0.02;
        printf("jemalloc thread.peak: %.1f MB above the window's start, tally %.1f MB: %+.2f%% (within 2%%: %s)\n",
               je / 1e6, ours / 1e6, diff * 100, good ? "ok" : "FAILED");
        ok &= good;
        json_decref(res);
    } else {
        printf("jemalloc thread.peak: the scenario did not run: FAILED\n");
        ok = false;
    }
    json_decref(cell);
    return ok;
}

int tly_h_cmd_selftest(int argc, char **argv)
{
    static const struct option none[] = {{NULL, 0, NULL, 0}};
    if (tly_h_getopt(argc, argv, none) != -1 || optind != argc)
        return tly_h_usage_error("selftest");
    if (!tly_mem_tracking()) {
        /* 77: "skipped" to ctest (SKIP_RETURN_CODE), as in automake */
        fprintf(stderr, "tally selftest: skipped: tracking is off: %s\n", tly_mem_untracked_reason());
        return 77;
    }
    char path[TLY_H_PATH];
    tly_h_matrix_default(path);
    json_error_t je;
    json_t *m = json_load_file(path, 0, &je);
    if (m == NULL) {
        fprintf(stderr, "tally selftest: %s: %s\n", path, je.text);
        return TLY_EXIT_ERROR;
    }
    json_t *rules = json_object_get(m, "budgets");
    bool s3 = tly_h_s3_configured();
    printf("planted: half the array (32 MiB of a 64 MiB array), allocated in the stage and copied through the "
           "ledger.\nfound: planted run minus clean run, as a fraction of the planted bytes.\n\n");
    printf("%-8s %-28s %-6s %8s %8s %8s %-7s %s\n", "stage", "scenario", "clean", "copies", "allocs", "at-peak",
           "budget", "result");
    int bad = 0, n = 0;
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
        if (strcmp(probes[i].store, "s3") == 0 && !s3) {
            printf("%-8s skipped: no S3 endpoint (AWS_ENDPOINT_URL, TALLY_S3_BUCKET)\n", probes[i].stage);
            continue;
        }
        n++;
        bad += !probe_stage(&probes[i], rules);
    }
    putchar('\n');
    bool peaks = cross_peaks(rules);
    json_decref(m);
    printf("\ntally selftest: %d of %d stages proven%s\n", n - bad, n, peaks ? "; peaks agree" : "; peaks DISAGREE");
    return bad || !peaks ? TLY_EXIT_BUDGET : TLY_EXIT_OK;
}
