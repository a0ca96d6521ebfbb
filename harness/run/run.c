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
#include "cli/cli.h"
#include "report/report.h"
#include "run/matrix.h"
#include "run/run.h"

/* The entry of results.json for a cell that did not produce a result. */
static json_t *entry_without_result(json_t *cell, const char *status, const char *reason, bool ok)
{
    return json_pack("{s:O, s:s, s:s, s:b}", "scenario", json_object_get(cell, "scenario"), "status", status, "reason",
                     reason, "ok", ok);
}

/* Run @p cell and return its entry for results.json; *errors++ when it could not run. */
static json_t *run_cell(json_t *cell, int *errors, int *failed_budgets)
{
    const char *store = json_string_value(json_object_get(cell, "store"));
    json_t *entry;
    if (store && strcmp(store, "s3") == 0 && !tly_h_s3_configured()) {
        entry = entry_without_result(
            cell, "skipped", "no S3 endpoint: AWS_ENDPOINT_URL and TALLY_S3_BUCKET are not set (scripts/s3-server)",
            true);
    } else {
        char reason[TLY_H_REASON];
        json_t *res = tly_h_child_run(cell, NULL, 0, NULL, reason);
        if (res == NULL) {
            entry = entry_without_result(cell, "failed", reason, false);
            (*errors)++;
        } else {
            bool ok;
            json_t *lines = tly_h_check_budgets(json_object_get(cell, "budgets"), res, &ok);
            json_t *v = json_object_get(res, "verified");
            if (v && !json_is_true(v)) {
                json_array_append_new(lines, json_pack("{s:s, s:n, s:i, s:i, s:b}", "name", "verified", "stage",
                                                       "limit", 1, "actual", 0, "ok", 0));
                ok = false;
            }
            entry = res;
            json_object_set_new(entry, "status", json_string("ok"));
            json_object_set_new(entry, "budgets", lines);
            json_object_set_new(entry, "ok", json_boolean(ok));
            if (!ok)
                (*failed_budgets)++;
        }
    }
    const char *k;
    json_t *v;
    json_object_foreach(cell, k, v) /* the cell's axes, for skipped and failed ones too */
    {
        if (!json_object_get(entry, k) && strcmp(k, "budgets") && strcmp(k, "codec_spec") &&
            strcmp(k, "program_path") && strcmp(k, "index"))
            json_object_set(entry, k, v);
    }
    return entry;
}

static void say_failures(json_t *entry)
{
    const char *name = json_string_value(json_object_get(entry, "scenario"));
    if (strcmp(json_string_value(json_object_get(entry, "status")), "failed") == 0) {
        fprintf(stderr, "tally run: %s: could not run: %s\n", name,
                json_string_value(json_object_get(entry, "reason")));
        return;
    }
    size_t i;
    json_t *b;
    json_array_foreach(json_object_get(entry, "budgets"), i, b)
    {
        if (json_is_true(json_object_get(b, "ok")))
            continue;
        char line[256];
        tly_h_budget_line_text(b, line, sizeof line);
        fprintf(stderr, "tally run: %s: budget failed: %s\n", name, line);
    }
}

static void summary(FILE *f, json_t *results)
{
    fprintf(f, "%-36s %-8s %7s %9s %9s %8s\n", "scenario", "status", "copies", "extra", "GB/s", "budgets");
    size_t i;
    json_t *e;
    json_array_foreach(results, i, e)
    {
        const char *status = json_string_value(json_object_get(e, "status"));
        if (strcmp(status, "ok") != 0) {
            fprintf(f, "%-36s %-8s %s\n", json_string_value(json_object_get(e, "scenario")), status,
                    json_string_value(json_object_get(e, "reason")));
            continue;
        }
        fprintf(f, "%-36s %-8s %7lld %9.3f %9.2f %8s\n", json_string_value(json_object_get(e, "scenario")), status,
                json_integer_value(json_object_get(e, "extra_copies")),
                json_number_value(json_object_get(e, "peak_extra_ratio")),
                json_number_value(json_object_get(e, "throughput_bps")) / 1e9,
                json_is_true(json_object_get(e, "ok")) ? "ok" : "FAILED");
    }
}

struct run_opts {
    const char *filter, *out, *file, *junit;
    bool list;
};

/* The cells of the scenario file that the filter selects; NULL after saying why not. */
static json_t *choose(const struct run_opts *o)
{
    char path[TLY_H_PATH];
    if (o->file)
        snprintf(path, sizeof path, "%s", o->file);
    else
        tly_h_matrix_default(path);
    json_t *cells;
    if (tly_h_matrix_load(path, &cells) != 0) {
        tly_h_fail_cmd("run", TLY_EFORMAT);
        return NULL;
    }
    regex_t re;
    if (o->filter && regcomp(&re, o->filter, REG_EXTENDED | REG_NOSUB) != 0) {
        fprintf(stderr, "tally run: --filter '%s' is not a regular expression\n", o->filter);
        json_decref(cells);
        return NULL;
    }
    json_t *chosen = json_array();
    size_t i;
    json_t *c;
    json_array_foreach(cells, i, c)
    {
        if (!o->filter || regexec(&re, json_string_value(json_object_get(c, "scenario")), 0, NULL, 0) == 0)
            json_array_append(chosen, c);
    }
    if (o->filter)
        regfree(&re);
    json_decref(cells);
    return chosen;
}

static void progress(bool tty, size_t i, size_t n, const char *name, json_t *entry)
{
    const char *status = entry ? json_string_value(json_object_get(entry, "status")) : "...";
    if (entry && strcmp(status, "ok") == 0 && !json_is_true(json_object_get(entry, "ok")))
        status = "FAILED";
    if (tty)
        fprintf(stderr, "\r\033[K[%zu/%zu] %s %s", i, n, name, status);
    else if (entry)
        fprintf(stderr, "[%zu/%zu] %s %s\n", i, n, name, status);
}

static int run_all(const struct run_opts *o, json_t *chosen)
{
    if (tly_h_mkdirs(o->out) != 0)
        return tly_h_fail_cmd("run", TLY_EUSAGE);
    bool tty = isatty(2);
    int errors = 0, failed = 0;
    size_t i, n = json_array_size(chosen);
    json_t *c, *results = json_array();
    json_array_foreach(chosen, i, c)
    {
        const char *name = json_string_value(json_object_get(c, "scenario"));
        progress(tty, i + 1, n, name, NULL);
        json_t *entry = run_cell(c, &errors, &failed);
        progress(tty, i + 1, n, name, entry);
        json_array_append_new(results, entry);
    }
    if (tty)
        fputs("\r\033[K", stderr);
    char path[TLY_H_PATH];
    snprintf(path, sizeof path, "%s/results.json", o->out);
    if (json_dump_file(results, path, JSON_INDENT(1) | JSON_REAL_PRECISION(6)) != 0) {
        fprintf(stderr, "tally run: cannot write %s\n", path);
        errors++;
    }
    summary(stdout, results);
    json_array_foreach(results, i, c) if (!json_is_true(json_object_get(c, "ok"))) say_failures(c);
    if (o->junit && tly_h_write_junit(o->junit, results) != 0)
        errors += tly_h_fail_cmd("run", TLY_EUSAGE) != 0;
    if (tly_h_report(o->out, results) != 0)
        errors += tly_h_fail_cmd("run", TLY_EUSAGE) != 0;
    printf("results: %s (%zu scenarios: %d failed budgets, %d could not run)\n", path, n, failed, errors);
    json_decref(results);
    return errors ? TLY_EXIT_ERROR : failed ? TLY_EXIT_BUDGET : TLY_EXIT_OK;
}

int tly_h_cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"filter", required_argument, NULL, 'f'},    {"out", required_argument, NULL, 'o'},
        {"scenarios", required_argument, NULL, 's'}, {"list", no_argument, NULL, 'l'},
        {"junit", required_argument, NULL, 'j'},     {NULL, 0, NULL, 0}};
    struct run_opts o = {.out = "reports/latest"};
    for (int ch; (ch = tly_h_getopt(argc, argv, opts)) != -1;) {
        switch (ch) {
        case 'f':
            o.filter = optarg;
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
    json_t *chosen = choose(&o);
    if (chosen == NULL)
        return TLY_EXIT_ERROR;
    int rc = TLY_EXIT_OK;
    size_t i;
    json_t *c;
    if (o.list)
        json_array_foreach(chosen, i, c) puts(json_string_value(json_object_get(c, "scenario")));
    else
        rc = run_all(&o, chosen);
    json_decref(chosen);
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
