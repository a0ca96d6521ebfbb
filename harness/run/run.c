/*
 * tally run: every cell in a fresh child process (clean peaks), budgets checked, results.json and
 * the reports written. tally scenario: the child side (one cell, its result on stdout).
 */
#include <getopt.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cell/cell.h"
#include "cell/result.h"
#include "options.h"
#include "report/report.h"
#include "report/stacks.h"
#include "run/impl.h"
#include "run/matrix.h"
#include "run/run.h"

#define MAX_IMPLS 16

/* The entry of results.json for a cell that did not produce a result. */
static json_t *entry_without_result(json_t *cell, const char *status, const char *reason, bool ok)
{
    return json_pack("{s:O, s:s, s:s, s:b}", "scenario", json_object_get(cell, "scenario"), "status", status, "reason",
                     reason, "ok", ok);
}

struct run_opts {
    const char *filter, *exclude, *out, *file, *junit, *shard, *impl_list;
    int shard_k, shard_n, repeat;
    double cell_timeout_s; /* each cell's process (and what it starts) killed past it; 0: none */
    bool list, allow_untracked;
};

struct tally {
    int errors, failed, untracked;
};

/* The implementations a run uses: tally's engine (impls[0] when chosen) and adapters. */
struct impls {
    struct tly_h_impl v[MAX_IMPLS];
    int n;
    struct tly_h_scratch scratch;
    bool scratch_open;
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Throughput over the repetitions: the median, and the range beside it. */
static void add_throughput(json_t *res, const double *bps, int n)
{
    double v[64];
    memcpy(v, bps, (size_t)n * sizeof *v); /* figures, not payload */
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    double median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    json_object_set_new(res, "throughput_bps", json_real(median));
    json_object_set_new(
        res, "throughput",
        json_pack("{s:i, s:f, s:f, s:f}", "n", n, "median_bps", median, "min_bps", v[0], "max_bps", v[n - 1]));
}

/* Run the cell's child @p o->repeat times: the first's figures, the median of their throughputs. */
static json_t *run_repeated(json_t *cell, const struct run_opts *o, char *reason)
{
    json_t *res = tly_h_child_run(cell, NULL, 0, NULL, reason);
    if (res == NULL || o->repeat <= 1)
        return res;
    double bps[64];
    int n = 0;
    bps[n++] = json_number_value(json_object_get(res, "throughput_bps"));
    while (n < o->repeat && n < 64) {
        json_t *again = tly_h_child_run(cell, NULL, 0, NULL, reason);
        if (again == NULL) {
            json_decref(res);
            return NULL;
        }
        bps[n++] = json_number_value(json_object_get(again, "throughput_bps"));
        json_decref(again);
    }
    add_throughput(res, bps, n);
    return res;
}

/* A result's budgets checked; the entry it becomes. */
static json_t *judge(json_t *cell, json_t *res, const struct run_opts *o, struct tally *t)
{
    if (json_is_false(json_object_get(res, "tracking")) && !o->allow_untracked) {
        char reason[TLY_H_REASON];
        snprintf(reason, sizeof reason, "tracking is off (%s): nothing was measured (--allow-untracked to run anyway)",
                 json_string_value(json_object_get(res, "untracked_reason")));
        json_decref(res);
        t->untracked++;
        return entry_without_result(cell, "untracked", reason, false);
    }
    bool ok;
    json_t *lines = tly_h_check_budgets(json_object_get(cell, "budgets"), res, &ok);
    json_t *v = json_object_get(res, "verified");
    if (v && !json_is_true(v)) {
        json_array_append_new(lines, json_pack("{s:s, s:n, s:i, s:i, s:b}", "name", "verified", "stage", "limit", 1,
                                               "actual", 0, "ok", 0));
        ok = false;
    }
    json_object_set_new(res, "status", json_string("ok"));
    json_object_set_new(res, "budgets", lines);
    json_object_set_new(res, "ok", json_boolean(ok));
    t->failed += !ok;
    return res;
}

static const struct tly_h_impl *impl_of(struct impls *im, json_t *cell)
{
    const char *name = json_string_value(json_object_get(cell, "impl"));
    for (int i = 0; name && i < im->n; i++)
        if (strcmp(im->v[i].name, name) == 0)
            return &im->v[i];
    return NULL;
}

/* An adapter's cell: skipped (with its reason), or judged like tally's. */
static json_t *run_external(json_t *cell, struct impls *im, const struct run_opts *o, struct tally *t)
{
    char reason[TLY_H_REASON];
    json_t *res = tly_h_impl_run(impl_of(im, cell), cell, &im->scratch, reason);
    if (res == NULL) {
        t->errors++;
        return entry_without_result(cell, "failed", reason, false);
    }
    const char *status = json_string_value(json_object_get(res, "status"));
    if (status && strcmp(status, "skipped") == 0) {
        json_t *e = entry_without_result(cell, "skipped", json_string_value(json_object_get(res, "reason")), true);
        json_decref(res);
        return e;
    }
    return judge(cell, res, o, t);
}

/* Run @p cell and return its entry for results.json. */
static json_t *run_cell(json_t *cell, struct impls *im, const struct run_opts *o, struct tally *t)
{
    const char *store = json_string_value(json_object_get(cell, "store"));
    const char *impl = json_string_value(json_object_get(cell, "impl"));
    json_t *entry;
    if (store && strcmp(store, "s3") == 0 && !tly_h_s3_configured()) {
        entry = entry_without_result(
            cell, "skipped", "no S3 endpoint: AWS_ENDPOINT_URL and TALLY_S3_BUCKET are not set (scripts/s3-server)",
            true);
    } else if (impl && strcmp(impl, "tally") != 0) {
        entry = run_external(cell, im, o, t);
    } else {
        char reason[TLY_H_REASON];
        json_t *res = run_repeated(cell, o, reason);
        if (res == NULL) {
            entry = entry_without_result(cell, "failed", reason, false);
            t->errors++;
        } else {
            entry = judge(cell, res, o, t);
        }
    }
    const char *k;
    json_t *v;
    json_object_foreach(cell, k, v) /* the cell's axes, for skipped and failed ones too */
    {
        if (!json_object_get(entry, k) && strcmp(k, "budgets") && strcmp(k, "codec_spec") && strcmp(k, "program_path"))
            json_object_set(entry, k, v);
    }
    return entry;
}

static void say_failures(json_t *entry)
{
    char name[512];
    tly_h_cell_key(entry, name, sizeof name);
    const char *status = json_string_value(json_object_get(entry, "status"));
    if (strcmp(status, "failed") == 0 || strcmp(status, "untracked") == 0) {
        char reason[4 * TLY_H_REASON]; /* an adapter's words: shown escaped */
        fprintf(stderr, "tally run: %s: %s: %s\n", name, strcmp(status, "failed") ? "untracked" : "could not run",
                tly_h_term(reason, sizeof reason, json_string_value(json_object_get(entry, "reason"))));
        return;
    }
    char line[256];
    for (size_t i = 0; tly_h_budget_next_failed(json_object_get(entry, "budgets"), &i, line, sizeof line);)
        fprintf(stderr, "tally run: %s: budget failed: %s\n", name, line);
    tly_h_stacks_print(stderr, entry, "  "); /* where its memory and copies came from, when it has stacks */
}

static void summary(FILE *f, json_t *results)
{
    fprintf(f, "%-48s %-9s %6s %9s %11s %11s %8s %9s %8s\n", "cell", "status", "copies", "extra", "store read",
            "written", "read amp", "GB/s", "budgets");
    size_t i;
    json_t *e;
    json_array_foreach(results, i, e)
    {
        const char *status = json_string_value(json_object_get(e, "status"));
        char name[512];
        tly_h_cell_key(e, name, sizeof name);
        if (strcmp(status, "ok") != 0) {
            char reason[4 * TLY_H_REASON];
            fprintf(f, "%-48s %-9s %s\n", name, status,
                    tly_h_term(reason, sizeof reason, json_string_value(json_object_get(e, "reason"))));
            continue;
        }
        char rd[32], wr[32], amp[32];
        tly_h_traffic_text(e, rd, wr, amp, sizeof rd);
        /* "—" is three bytes in one column: padded by hand */
        fprintf(f, "%-48s %-9s %6lld %9.3f %*s %*s %*s %9.2f %8s\n", name, status,
                json_integer_value(json_object_get(e, "extra_copies")),
                json_number_value(json_object_get(e, "peak_extra_ratio")), strcmp(rd, "—") ? 11 : 13, rd,
                strcmp(wr, "—") ? 11 : 13, wr, strcmp(amp, "—") ? 8 : 10, amp,
                json_number_value(json_object_get(e, "throughput_bps")) / 1e9,
                json_is_true(json_object_get(e, "ok")) ? "ok" : "FAILED");
    }
}

static bool matches(regex_t *re, json_t *c, const char *impl)
{
    char key[512];
    snprintf(key, sizeof key, "%s/%s", impl, json_string_value(json_object_get(c, "scenario")));
    return regexec(re, json_string_value(json_object_get(c, "scenario")), 0, NULL, 0) == 0 ||
           regexec(re, key, 0, NULL, 0) == 0;
}

/* The cells the filter and shard select, for each implementation of the run (tally's custom programs
 * have no adapter), in matrix order; NULL after saying why not. */
static json_t *choose(const struct run_opts *o, const struct tly_h_matrix *m, const struct impls *im)
{
    regex_t re, ex;
    if (o->filter && regcomp(&re, o->filter, REG_EXTENDED | REG_NOSUB) != 0) {
        fprintf(stderr, "tally run: --filter '%s' is not a regular expression\n", o->filter);
        return NULL;
    }
    if (o->exclude && regcomp(&ex, o->exclude, REG_EXTENDED | REG_NOSUB) != 0) {
        fprintf(stderr, "tally run: --exclude '%s' is not a regular expression\n", o->exclude);
        if (o->filter)
            regfree(&re);
        return NULL;
    }
    json_t *chosen = json_array();
    size_t i, selected = 0;
    json_t *c;
    json_array_foreach(m->cells, i, c)
    {
        for (int k = 0; k < im->n; k++) {
            bool tally = strcmp(im->v[k].name, "tally") == 0;
            if ((!tally && json_object_get(c, "program_path")) || (o->filter && !matches(&re, c, im->v[k].name)) ||
                (o->exclude && matches(&ex, c, im->v[k].name)))
                continue;
            /* --shard K/N partitions the cells selected, not the matrix: every shard of a filtered run
             * gets its share */
            if (!o->shard_n || selected % (size_t)o->shard_n == (size_t)(o->shard_k - 1))
                json_array_append_new(chosen, tly_h_matrix_cell_for(m, c, im->v[k].name, k));
            selected++;
        }
    }
    if (o->filter)
        regfree(&re);
    if (o->exclude)
        regfree(&ex);
    if (json_array_size(chosen) == 0 && selected > 0) {
        fprintf(stderr,
                "tally run: --shard %s: this shard has none of the %zu cells selected (fewer than its %d "
                "shards): nothing to run here, and nothing is missing\n",
                o->shard, selected, o->shard_n);
        return chosen;
    }
    if (json_array_size(chosen) == 0) {
        fprintf(stderr, "tally run: no cell of %s matches%s%s%s%s: nothing would be measured\n", m->path,
                o->filter ? " --filter " : "", o->filter ? o->filter : "", o->shard ? " --shard " : "",
                o->shard ? o->shard : "");
        json_decref(chosen);
        return NULL;
    }
    return chosen;
}

/* --impl NAME,NAME (default: tally and every adapter of the matrix); adapters probed. */
static int choose_impls(const struct run_opts *o, const struct tly_h_matrix *m, struct impls *im)
{
    char list[1024];
    const char *name;
    json_t *v;
    if (o->impl_list) {
        snprintf(list, sizeof list, "%s", o->impl_list);
    } else {
        int n = snprintf(list, sizeof list, "tally");
        json_object_foreach(m->impls, name, v) n += snprintf(list + n, sizeof list - (size_t)n, ",%s", name);
    }
    for (char *save, *w = strtok_r(list, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
        json_t *def = json_object_get(m->impls, w);
        if (strcmp(w, "tally") != 0 && def == NULL) {
            fprintf(stderr, "tally run: --impl '%s': %s names no such implementation (tally", w, m->path);
            json_object_foreach(m->impls, name, v) fprintf(stderr, ", %s", name);
            fprintf(stderr, ")\n");
            return TLY_EXIT_ERROR;
        }
        if (im->n == MAX_IMPLS)
            break;
        struct tly_h_impl *x = &im->v[im->n++];
        x->name = def ? json_object_iter_key(json_object_iter_at(m->impls, w)) : "tally";
        x->command = json_object_get(def, "command");
        x->sharded_fixture = json_is_true(json_object_get(def, "sharded_fixture"));
        x->s3_fixture = json_is_true(json_object_get(def, "s3_fixture"));
        x->available = true;
        if (def)
            tly_h_impl_probe(x);
        if (def && !o->list)
            fprintf(stderr, "impl %s: %s%s\n", x->name,
                    x->available ? "available " : "unavailable: ", x->available ? x->version : x->reason);
    }
    return 0;
}

/* A line when a cell starts and one when it ends, with its time (one line, rewritten, on a terminal):
 * a long run shows where it is, and a cell that hangs shows which. */
static void progress(bool tty, size_t i, size_t n, json_t *cell, json_t *entry, double elapsed_s)
{
    char name[512];
    tly_h_cell_key(cell, name, sizeof name);
    const char *status = entry ? json_string_value(json_object_get(entry, "status")) : "...";
    if (entry && strcmp(status, "ok") == 0 && !json_is_true(json_object_get(entry, "ok")))
        status = "FAILED";
    char took[32] = "";
    if (entry)
        snprintf(took, sizeof took, " (%.1f s)", elapsed_s);
    if (tty)
        fprintf(stderr, "\r\033[K[%zu/%zu] %s %s%s", i, n, name, status, took);
    else
        fprintf(stderr, "[%zu/%zu] %s %s%s\n", i, n, name, entry ? status : "started", took);
}

static int write_outputs(const struct run_opts *o, json_t *doc, int *errors)
{
    json_t *results = tly_h_results_list(doc);
    char path[TLY_H_PATH];
    snprintf(path, sizeof path, "%s/results.json", o->out);
    if (json_dump_file(doc, path, JSON_INDENT(1) | JSON_REAL_PRECISION(6)) != 0) {
        fprintf(stderr, "tally run: cannot write %s\n", path);
        (*errors)++;
    }
    if (o->junit && tly_h_write_junit(o->junit, results) != 0)
        *errors += tly_h_fail_cmd("run", TLY_EUSAGE) != 0;
    if (tly_h_report(o->out, doc) != 0)
        *errors += tly_h_fail_cmd("run", TLY_EUSAGE) != 0;
    return 0;
}

static int run_all(const struct run_opts *o, json_t *chosen, const struct tly_h_matrix *m, struct impls *im)
{
    if (tly_h_mkdirs(o->out) != 0)
        return tly_h_fail_cmd("run", TLY_EUSAGE);
    if (im->n > 1 || strcmp(im->v[0].name, "tally") != 0) {
        if (tly_h_scratch_open(&im->scratch) != 0)
            return tly_h_fail_cmd("run", TLY_EUSAGE);
        im->scratch_open = true;
    }
    bool tty = isatty(2);
    struct tally t = {0};
    size_t i, n = json_array_size(chosen);
    json_t *c, *doc = tly_h_results_new(m->path, json_array_size(m->cells), o->filter, o->shard);
    json_t *results = tly_h_results_list(doc), *names = json_array();
    for (int k = 0; k < im->n; k++)
        json_array_append_new(names, json_string(im->v[k].name));
    json_object_set_new(doc, "impls", names);
    json_object_set_new(doc, "exclude", o->exclude ? json_string(o->exclude) : json_null());
    tly_h_spawn_timeout(o->cell_timeout_s);
    json_array_foreach(chosen, i, c)
    {
        double t0 = tly_h_now_s();
        progress(tty, i + 1, n, c, NULL, 0);
        json_t *entry = run_cell(c, im, o, &t);
        progress(tty, i + 1, n, c, entry, tly_h_now_s() - t0);
        json_array_append_new(results, entry);
    }
    tly_h_spawn_timeout(0);
    if (im->scratch_open)
        tly_h_scratch_close(&im->scratch);
    if (tty)
        fputs("\r\033[K", stderr);
    summary(stdout, results);
    json_array_foreach(results, i, c) if (!json_is_true(json_object_get(c, "ok"))) say_failures(c);
    write_outputs(o, doc, &t.errors);
    printf("results: %s/results.json (%zu cells: %d failed budgets, %d could not run, %d untracked)\n", o->out, n,
           t.failed, t.errors, t.untracked);
    if (t.untracked)
        fprintf(stderr, "tally run: %d cells measured nothing (tracking is off); the run fails closed\n", t.untracked);
    json_decref(doc);
    return t.errors || t.untracked ? TLY_EXIT_ERROR : t.failed ? TLY_EXIT_BUDGET : TLY_EXIT_OK;
}

/* --shard K/N: 1 <= K <= N <= 1000. */
static int parse_shard(const char *v, struct run_opts *o)
{
    char k[32], n[32];
    const char *slash = strchr(v, '/');
    long long kk, nn;
    if (!slash || (size_t)(slash - v) >= sizeof k || strlen(slash + 1) >= sizeof n) {
        fprintf(stderr, "tally run: --shard '%s': want K/N, e.g. 1/3\n", v);
        return TLY_EXIT_ERROR;
    }
    snprintf(k, sizeof k, "%.*s", (int)(slash - v), v);
    snprintf(n, sizeof n, "%s", slash + 1);
    if (tly_h_arg_int("run", "shard (N)", n, 1, 1000, &nn) || tly_h_arg_int("run", "shard (K)", k, 1, nn, &kk))
        return TLY_EXIT_ERROR;
    o->shard = v;
    o->shard_k = (int)kk;
    o->shard_n = (int)nn;
    return 0;
}

int tly_h_cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {{"filter", required_argument, NULL, 'f'},
                                         {"out", required_argument, NULL, 'o'},
                                         {"exclude", required_argument, NULL, 'x'},
                                         {"scenarios", required_argument, NULL, 's'},
                                         {"list", no_argument, NULL, 'l'},
                                         {"junit", required_argument, NULL, 'j'},
                                         {"shard", required_argument, NULL, 'S'},
                                         {"repeat", required_argument, NULL, 'r'},
                                         {"allow-untracked", no_argument, NULL, 'u'},
                                         {"impl", required_argument, NULL, 'i'},
                                         {"cell-timeout", required_argument, NULL, 'T'},
                                         {NULL, 0, NULL, 0}};
    struct run_opts o = {.out = "reports/latest", .repeat = 1, .cell_timeout_s = 900};
    long long n;
    for (int ch; (ch = tly_h_getopt(argc, argv, opts)) != -1;) {
        switch (ch) {
        case 'S':
            if (parse_shard(optarg, &o) != 0)
                return TLY_EXIT_ERROR;
            break;
        case 'r':
            if (tly_h_arg_int("run", "repeat", optarg, 1, 64, &n) != 0)
                return TLY_EXIT_ERROR;
            o.repeat = (int)n;
            break;
        case 'u':
            o.allow_untracked = true;
            break;
        case 'T':
            if (tly_h_arg_int("run", "cell-timeout", optarg, 0, 86400, &n) != 0)
                return TLY_EXIT_ERROR;
            o.cell_timeout_s = (double)n;
            break;
        case 'i':
            o.impl_list = optarg;
            break;
        case 'f':
            o.filter = optarg;
            break;
        case 'x':
            o.exclude = optarg;
            break;
        case 'o':
            o.out = optarg;
            break;
        case 's':
            o.file = optarg;
            break;
        case 'l':
            o.list = true;
            break;
        case 'j':
            o.junit = optarg;
            break;
        default:
            return tly_h_usage_error("run");
        }
    }
    if (optind != argc)
        return tly_h_usage_error("run");
    char path[TLY_H_PATH];
    if (o.file)
        snprintf(path, sizeof path, "%s", o.file);
    else
        tly_h_matrix_default(path);
    struct tly_h_matrix m;
    if (tly_h_matrix_load(path, &m) != 0)
        return tly_h_fail_cmd("run", TLY_EFORMAT);
    struct impls im = {0};
    int rc = choose_impls(&o, &m, &im);
    json_t *chosen = rc ? NULL : choose(&o, &m, &im);
    if (chosen == NULL) {
        tly_h_matrix_free(&m);
        return TLY_EXIT_ERROR;
    }
    size_t i;
    json_t *c;
    if (o.list) {
        json_array_foreach(chosen, i, c)
        {
            char key[512];
            tly_h_cell_key(c, key, sizeof key);
            puts(key);
        }
    } else {
        rc = run_all(&o, chosen, &m, &im);
    }
    json_decref(chosen);
    tly_h_matrix_free(&m);
    return rc;
}

int tly_h_cmd_scenario(int argc, char **argv)
{
    if (argc != 2)
        return tly_h_usage_error("scenario");
    json_error_t je;
    json_t *cell = json_loads(argv[1], 0, &je);
    if (cell == NULL) {
        fprintf(stderr, "tally scenario: the cell is not JSON: %s\n", je.text);
        return TLY_EXIT_ERROR;
    }
    json_t *res = tly_h_cell_run(cell);
    json_decref(cell);
    return res ? tly_h_program_result("tally scenario", res) : tly_h_fail_cmd("scenario", TLY_EFORMAT);
}
