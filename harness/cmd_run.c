/*
 * tally run: every scenario in a fresh child process (clean peaks), budgets checked, results.json
 * and the reports written. tally scenario: the child side (one cell, its result on stdout).
 */
#include <errno.h>
#include <getopt.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tally/error.h"
#include "harness.h"
#include "scenario.h"
#include "tally/tally.h"

/* The scenario file: --scenarios, else the matrix. */
static const char *scenarios_path(const char *given)
{
    return given ? given : tly_h_matrix_path();
}

/* Run one cell in a child: `tally scenario CELL` or `PROGRAM --scenario CELL`. */
static json_t *run_child(json_t *cell, char **err_text, int *status)
{
    char *spec = json_dumps(cell, JSON_COMPACT);
    const char *prog = json_string_value(json_object_get(cell, "program_path"));
    char *argv[] = {prog ? (char *)prog : "tally", prog ? "--scenario" : "scenario", spec, NULL};
    char *text = NULL;
    int rc = tly_h_spawn(prog ? prog : tly_h_self(), argv, NULL, NULL, &text, err_text, status);
    free(spec);
    if (rc != 0) {
        *err_text = strdup(strerror(-rc));
        *status = -1;
        return NULL;
    }
    json_t *res = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    return res;
}

static const char *last_line(const char *s)
{
    static char buf[512];
    if (s == NULL || *s == '\0')
        return "no message";
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == '\n')
        n--;
    size_t start = n;
    while (start > 0 && s[start - 1] != '\n')
        start--;
    snprintf(buf, sizeof buf, "%.*s", (int)(n - start), s + start);
    return buf;
}

static bool s3_configured(void)
{
    return getenv("AWS_ENDPOINT_URL") && getenv("TALLY_S3_BUCKET");
}

/* Run @p cell and return its entry for results.json; *errors++ when it could not run. */
static json_t *run_cell(json_t *cell, int *errors, int *failed_budgets)
{
    const char *name = json_string_value(json_object_get(cell, "scenario"));
    const char *store = json_string_value(json_object_get(cell, "store"));
    json_t *entry;
    if (store && strcmp(store, "s3") == 0 && !s3_configured()) {
        entry = json_pack(
            "{s:O, s:s, s:s, s:b}", "scenario", json_object_get(cell, "scenario"), "status", "skipped", "reason",
            "no S3 endpoint: AWS_ENDPOINT_URL and TALLY_S3_BUCKET are not set (scripts/s3-server)", "ok", 1);
    } else {
        char *err_text = NULL;
        int status = 0;
        json_t *res = run_child(cell, &err_text, &status);
        if (res == NULL || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            char reason[600];
            if (WIFSIGNALED(status))
                snprintf(reason, sizeof reason, "the scenario died of signal %d: %s", WTERMSIG(status),
                         last_line(err_text));
            else
                snprintf(reason, sizeof reason, "%s", last_line(err_text));
            entry = json_pack("{s:O, s:s, s:s, s:b}", "scenario", json_object_get(cell, "scenario"), "status", "failed",
                              "reason", reason, "ok", 0);
            json_decref(res);
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
        free(err_text);
    }
    const char *k;
    json_t *v;
    json_object_foreach(cell, k, v) /* the cell's axes, for skipped and failed ones too */
    {
        if (!json_object_get(entry, k) && strcmp(k, "budgets") && strcmp(k, "codec_spec") && strcmp(k, "program_path"))
            json_object_set(entry, k, v);
    }
    (void)name;
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
        const char *stage = json_string_value(json_object_get(b, "stage"));
        json_t *actual = json_object_get(b, "actual");
        fprintf(stderr, "tally run: %s: budget failed: %s%s%s%s = %s%.4g, limit %.4g\n", name, stage ? "stage " : "",
                stage ? stage : "", stage ? " " : "", json_string_value(json_object_get(b, "name")),
                json_is_number(actual) ? "" : "(missing) ", json_is_number(actual) ? json_number_value(actual) : 0.0,
                json_number_value(json_object_get(b, "limit")));
    }
}

static void progress(bool tty, size_t i, size_t n, const char *name, const char *state)
{
    if (tty)
        fprintf(stderr, "\r\033[K[%zu/%zu] %s %s", i, n, name, state);
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

static void xml_text(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '&':
            fputs("&amp;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        default:
            fputc(*s, f);
        }
    }
}

/* JUnit XML: a testcase per scenario; failed budgets as <failure>, skipped cells as <skipped>. */
static int write_junit(const char *path, json_t *results)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return tly_fail_errno("%s", path);
    size_t i, n = json_array_size(results), failures = 0, skipped = 0, errors = 0;
    json_t *e;
    json_array_foreach(results, i, e)
    {
        const char *st = json_string_value(json_object_get(e, "status"));
        skipped += !strcmp(st, "skipped");
        errors += !strcmp(st, "failed");
        failures += !strcmp(st, "ok") && !json_is_true(json_object_get(e, "ok"));
    }
    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n<testsuite name=\"tally.matrix\" "
            "tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" skipped=\"%zu\">\n",
            n, failures, errors, skipped);
    json_array_foreach(results, i, e)
    {
        const char *st = json_string_value(json_object_get(e, "status"));
        fprintf(f, "<testcase classname=\"tally.matrix\" name=\"");
        xml_text(f, json_string_value(json_object_get(e, "scenario")));
        fprintf(f, "\" time=\"%.3f\">", json_number_value(json_object_get(e, "wall_s")));
        if (!strcmp(st, "skipped") || !strcmp(st, "failed")) {
            fprintf(f, "<%s message=\"", !strcmp(st, "skipped") ? "skipped" : "error");
            xml_text(f, json_string_value(json_object_get(e, "reason")));
            fprintf(f, "\"/>");
        } else if (!json_is_true(json_object_get(e, "ok"))) {
            fprintf(f, "<failure message=\"budget failed\">");
            size_t j;
            json_t *b;
            json_array_foreach(json_object_get(e, "budgets"), j, b)
            {
                if (json_is_true(json_object_get(b, "ok")))
                    continue;
                const char *stage = json_string_value(json_object_get(b, "stage"));
                char line[256];
                snprintf(line, sizeof line, "%s%s%s = %.4g, limit %.4g\n", stage ? stage : "", stage ? " " : "",
                         json_string_value(json_object_get(b, "name")), json_number_value(json_object_get(b, "actual")),
                         json_number_value(json_object_get(b, "limit")));
                xml_text(f, line);
            }
            fprintf(f, "</failure>");
        }
        fprintf(f, "</testcase>\n");
    }
    fprintf(f, "</testsuite>\n</testsuites>\n");
    return fclose(f) == 0 ? 0 : tly_fail_errno("%s", path);
}

static int mkdirs(const char *dir)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(buf, 0777);
            *p = '/';
        }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return tly_fail_errno("%s", dir);
    return 0;
}

int tly_h_cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"filter", required_argument, NULL, 'f'},    {"out", required_argument, NULL, 'o'},
        {"scenarios", required_argument, NULL, 's'}, {"list", no_argument, NULL, 'l'},
        {"junit", required_argument, NULL, 'j'},     {NULL, 0, NULL, 0}};
    const char *filter = NULL, *out = "reports/latest", *file = NULL, *junit = NULL;
    bool list = false;
    optind = 1;
    for (int ch; (ch = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
        switch (ch) {
        case 'f':
            filter = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 's':
            file = optarg;
            break;
        case 'l':
            list = true;
            break;
        case 'j':
            junit = optarg;
            break;
        default:
            fputs("usage: tally run [--filter REGEX] [--out DIR] [--scenarios FILE] [--list] [--junit FILE]\n", stderr);
            return TLY_EXIT_ERROR;
        }
    }
    json_t *cells;
    int err = tly_h_scenarios_load(scenarios_path(file), &cells);
    if (err) {
        fprintf(stderr, "tally run: %s\n", tly_errmsg());
        return TLY_EXIT_ERROR;
    }
    regex_t re;
    if (filter && regcomp(&re, filter, REG_EXTENDED | REG_NOSUB) != 0) {
        fprintf(stderr, "tally run: --filter '%s' is not a regular expression\n", filter);
        json_decref(cells);
        return TLY_EXIT_ERROR;
    }
    json_t *chosen = json_array();
    size_t i;
    json_t *c;
    json_array_foreach(cells, i, c)
    {
        const char *name = json_string_value(json_object_get(c, "scenario"));
        if (!filter || regexec(&re, name, 0, NULL, 0) == 0)
            json_array_append(chosen, c);
    }
    if (filter)
        regfree(&re);
    json_decref(cells);
    if (list) {
        json_array_foreach(chosen, i, c) puts(json_string_value(json_object_get(c, "scenario")));
        json_decref(chosen);
        return TLY_EXIT_OK;
    }
    if (mkdirs(out) != 0) {
        fprintf(stderr, "tally run: %s\n", tly_errmsg());
        json_decref(chosen);
        return TLY_EXIT_ERROR;
    }
    bool tty = isatty(2);
    int errors = 0, failed = 0;
    size_t n = json_array_size(chosen);
    json_t *results = json_array();
    json_array_foreach(chosen, i, c)
    {
        const char *name = json_string_value(json_object_get(c, "scenario"));
        progress(tty, i + 1, n, name, "...");
        json_t *entry = run_cell(c, &errors, &failed);
        const char *status = json_string_value(json_object_get(entry, "status"));
        if (tty)
            progress(tty, i + 1, n, name,
                     strcmp(status, "ok")                         ? status
                     : json_is_true(json_object_get(entry, "ok")) ? "ok"
                                                                  : "FAILED");
        else
            fprintf(stderr, "[%zu/%zu] %s %s\n", i + 1, n, name, status);
        json_array_append_new(results, entry);
    }
    if (tty)
        fputs("\r\033[K", stderr);
    char path[4200];
    snprintf(path, sizeof path, "%s/results.json", out);
    if (json_dump_file(results, path, JSON_INDENT(1) | JSON_REAL_PRECISION(6)) != 0) {
        fprintf(stderr, "tally run: cannot write %s\n", path);
        errors++;
    }
    summary(stdout, results);
    json_array_foreach(results, i, c)
    {
        if (!json_is_true(json_object_get(c, "ok")))
            say_failures(c);
    }
    if (junit && write_junit(junit, results) != 0) {
        fprintf(stderr, "tally run: %s\n", tly_errmsg());
        errors++;
    }
    if (tly_h_report(out, results) != 0) {
        fprintf(stderr, "tally run: report: %s\n", tly_errmsg());
        errors++;
    }
    printf("results: %s (%zu scenarios: %d failed budgets, %d could not run)\n", path, n, failed, errors);
    json_decref(results);
    json_decref(chosen);
    return errors ? TLY_EXIT_ERROR : failed ? TLY_EXIT_BUDGET : TLY_EXIT_OK;
}

int tly_h_cmd_scenario(int argc, char **argv)
{
    if (argc != 2) {
        fputs("usage: tally scenario CELL_JSON  (the child side of tally run)\n", stderr);
        return TLY_EXIT_ERROR;
    }
    json_error_t je;
    json_t *cell = json_loads(argv[1], 0, &je);
    if (cell == NULL) {
        fprintf(stderr, "tally scenario: the cell is not JSON: %s\n", je.text);
        return TLY_EXIT_ERROR;
    }
    json_t *res = tly_h_cell_run(cell);
    json_decref(cell);
    if (res == NULL) {
        fprintf(stderr, "tally scenario: %s\n", tly_errmsg());
        return TLY_EXIT_ERROR;
    }
    /* TALLY_RESULT_FILE: for a child run under a wrapper (heaptrack) that prints on stdout itself */
    const char *file = getenv("TALLY_RESULT_FILE");
    int rc = TLY_EXIT_OK;
    if (file) {
        if (json_dump_file(res, file, JSON_COMPACT | JSON_REAL_PRECISION(6)) != 0) {
            fprintf(stderr, "tally scenario: cannot write %s\n", file);
            rc = TLY_EXIT_ERROR;
        }
    } else {
        json_dumpf(res, stdout, JSON_COMPACT | JSON_REAL_PRECISION(6));
        fputc('\n', stdout);
    }
    json_decref(res);
    return rc;
}
