/*
 * tally profile -- CMD: any program under the preload tracker (docs/impl-protocol.md). Its memory
 * and copies are charged to the libraries that asked for them; the window is the whole process, or
 * what the program marks. CMD talks to the user as usual and its exit status is passed through;
 * tally's own failures are exit 2, a failed --budgets exit 1, and a command that cannot be found 127
 * (as env and timeout do).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cell/cell.h"
#include "cell/figures.h"
#include "cell/preload.h"
#include "cell/resident.h"
#include "cell/result.h"
#include "options.h"
#include "report/stacks.h"
#include "profile/tree.h"
#include "report/report.h"

struct profile_opts {
    const char *out, *name, *budgets;
    json_t *budget_doc; /* --budgets, parsed and checked before the program runs */
    uint64_t array_bytes;
    bool json;
    const char *json_file; /* --json=FILE; NULL: stdout, the program's stdout sent to stderr */
};

/*
 * The figures against the array: --array-bytes, else the one the marks named. Without marks the
 * window is the whole process, so the program's own array is inside it: one array of the peak is
 * taken to be that (memray-array's reading, peak ≈ (1 + copies) × array), as a read's output is.
 */
static void rescale(json_t *r, uint64_t given)
{
    if (given)
        json_object_set_new(r, "array_bytes", json_integer((json_int_t)given));
    uint64_t array = (uint64_t)json_integer_value(json_object_get(r, "array_bytes"));
    tly_h_figures(r, !json_is_true(json_object_get(r, "marked")));
    const char *owners[] = {"libraries", "stages"}, *bytes[] = {"copied_bytes", "copy_bytes"};
    for (int k = 0; k < 2; k++) {
        const char *name;
        json_t *v;
        json_object_foreach(json_object_get(r, owners[k]), name, v) json_object_set_new(
            v, "copies",
            array ? json_real((double)json_integer_value(json_object_get(v, bytes[k])) / (double)array) : json_null());
    }
}

static void print_peaks(FILE *f, json_t *r)
{
    json_t *p = json_object_get(r, TLY_K_PEAKS);
    const char *names[] = {"requested", "reserved", "resident"};
    fprintf(f, "peak extra by");
    for (int i = 0; i < 3; i++) {
        json_t *k = json_object_get(p, names[i]);
        char b[32];
        if (!json_is_object(k)) {
            fprintf(f, "%s %s: not measured", i ? ";" : "", names[i]);
            continue;
        }
        fprintf(f, "%s %s %s", i ? ";" : "", names[i],
                tly_h_bytes(b, sizeof b, (double)json_integer_value(json_object_get(k, "extra_bytes"))));
        if (json_is_number(json_object_get(k, "extra_ratio")))
            fprintf(f, " (%.3f x)", json_number_value(json_object_get(k, "extra_ratio")));
    }
    fprintf(f, "\n  requested: bytes asked for (heaptrack's, memray's unit); reserved: jemalloc's size classes; "
               "resident: anonymous RSS, sampled every ms\n");
    if (json_is_string(json_object_get(r, TLY_K_PEAKS_NOTE)))
        fprintf(f, "  %s\n", json_string_value(json_object_get(r, TLY_K_PEAKS_NOTE)));
}

/* Copies the peak holds and no memcpy explains: said, not hidden (tly_h_unexplained_copies). */
static void print_unexplained(FILE *f, json_t *r)
{
    json_t *u = json_object_get(r, "unexplained_copies");
    if (json_is_object(u))
        fprintf(f, "unexplained copies: %s\n", json_string_value(json_object_get(u, "note")));
}

static void print_summary(FILE *f, json_t *r)
{
    char a[32], b[32], extra[200];
    if (json_integer_value(json_object_get(r, "array_bytes")) > 0)
        tly_h_extra_text(json_integer_value(json_object_get(r, "peak_extra_bytes")),
                         (uint64_t)json_integer_value(json_object_get(r, "array_bytes")), extra, sizeof extra);
    else
        snprintf(extra, sizeof extra, "no array size (--array-bytes N, or the marks name it): no copy ratios");
    char rss[64] = "";
    if (json_is_integer(json_object_get(r, "max_rss_bytes")))
        snprintf(rss, sizeof rss, " (max RSS %s, whole process)",
                 tly_h_bytes(a, sizeof a, (double)json_integer_value(json_object_get(r, "max_rss_bytes"))));
    fprintf(f, "\ntally profile: %s window, %.3f s; array %s; peak %s%s; %s\n",
            json_is_true(json_object_get(r, "marked")) ? "marked" : "whole-process",
            json_number_value(json_object_get(r, "wall_s")),
            tly_h_bytes(a, sizeof a, (double)json_integer_value(json_object_get(r, "array_bytes"))),
            tly_h_bytes(b, sizeof b, (double)json_integer_value(json_object_get(r, "peak_bytes"))), rss, extra);
    if (json_is_string(json_object_get(r, "peak_extra_note")))
        fprintf(f, "peak extra 0, not negative: %s\n", json_string_value(json_object_get(r, "peak_extra_note")));
    print_peaks(f, r);
    fprintf(f, "%-26s %12s %12s %12s %10s\n", "library", "allocated", "own peak", "at peak", "copied");
    int64_t total = json_integer_value(json_object_get(r, "before_bytes")); /* the rows add up to the peak */
    unsigned quiet = 0;
    fprintf(f, "%-26s %12s %12s %12s\n", "live when the window opened", "", "",
            tly_h_bytes(a, sizeof a, (double)total));
    const char *name;
    json_t *v;
    json_object_foreach(json_object_get(r, "libraries"), name, v)
    {
        char c[32], d[32], e[32];
        total += json_integer_value(json_object_get(v, "at_peak_bytes"));
        /* every copy is counted now, so nearly every library copied something: a row for those that
         * allocated, held or copied a visible share (0.005 x array; any copy without an array) */
        bool copied = json_is_number(json_object_get(v, "copies"))
                          ? json_number_value(json_object_get(v, "copies")) >= 0.005
                          : json_integer_value(json_object_get(v, "copied_bytes")) > 0;
        if (json_integer_value(json_object_get(v, "alloc_bytes")) == 0 && !copied &&
            json_integer_value(json_object_get(v, "at_peak_bytes")) == 0 &&
            json_integer_value(json_object_get(v, "peak_bytes")) == 0) {
            quiet++;
            continue;
        }
        char shown[4 * 256];
        char ratio[32] = "\u2014"; /* no array: no ratio */
        if (json_is_number(json_object_get(v, "copies")))
            snprintf(ratio, sizeof ratio, "%.2f", json_number_value(json_object_get(v, "copies")));
        fprintf(f, "%-26s %12s %12s %12s %10s\n", tly_h_term(shown, sizeof shown, name),
                tly_h_bytes(c, sizeof c, (double)json_integer_value(json_object_get(v, "alloc_bytes"))),
                tly_h_bytes(d, sizeof d, (double)json_integer_value(json_object_get(v, "peak_bytes"))),
                tly_h_bytes(e, sizeof e, (double)json_integer_value(json_object_get(v, "at_peak_bytes"))), ratio);
    }
    json_t *sm = json_object_get(r, "small");
    char c[32];
    int64_t small = json_integer_value(json_object_get(sm, "at_peak_bytes")),
            mm = json_integer_value(json_object_get(r, "mmap_bytes")),
            peak = json_integer_value(json_object_get(r, "peak_bytes"));
    fprintf(f, "%-26s %12s %12s %12s\n", "blocks under 64 KiB, all",
            tly_h_bytes(a, sizeof a, (double)json_integer_value(json_object_get(sm, "alloc_bytes"))), "",
            tly_h_bytes(b, sizeof b, (double)small));
    /* the mappings' growth in the window: what they held at the peak less what they held at its start
     * (the timeline's first sample; its last column) */
    json_t *first = json_array_get(json_object_get(json_object_get(r, "timeline"), "samples"), 0);
    int64_t mm_start =
        json_array_size(first) ? json_integer_value(json_array_get(first, json_array_size(first) - 1)) : 0;
    fprintf(f, "%-26s %12s %12s %12s\n", "mmap (anonymous, >= 1 MiB)", "",
            tly_h_bytes(a, sizeof a, (double)json_integer_value(json_object_get(r, "mmap_peak_bytes"))),
            tly_h_bytes(b, sizeof b, (double)(mm - mm_start)));
    if (quiet)
        fprintf(f, "(%u libraries with nothing allocated or held and copies under 0.005 x array: in results.json)\n",
                quiet);
    total += small + mm - mm_start;
    fprintf(f, "%-26s %12s %12s %12s\n", "total at the peak", "", "", tly_h_bytes(c, sizeof c, (double)total));
    if (llabs(peak - total) > 64 * 1024) /* a free between the peak and its split: never seen above a few KiB */
        fprintf(f, "%-26s %12s %12s %12s\n", "  (peak, for comparison)", "", "",
                tly_h_bytes(c, sizeof c, (double)peak));
    fprintf(f,
            "copied: by the library that called memcpy/memmove/mempcpy (every copy, any size), x array; coverage "
            "%.3f\n",
            json_number_value(json_object_get(json_object_get(r, "coverage"), "ratio")));
    print_unexplained(f, r);
    json_t *st = json_object_get(r, "stage_time");
    if (!json_is_object(st)) {
        fprintf(f, "time: %s\n",
                json_string_value(json_object_get(r, "stage_time_about"))
                    ? json_string_value(json_object_get(r, "stage_time_about"))
                    : "not measured");
        return;
    }
    fprintf(f, "time by the marks' stages:");
    json_object_foreach(st, name, v)
    {
        char shown[4 * 256];
        fprintf(f, " %s %.3f s", tly_h_term(shown, sizeof shown, name),
                json_number_value(json_object_get(v, "busy_s")) + json_number_value(json_object_get(v, "waiting_s")));
    }
    fputc('\n', f);
}

/* The result as a run of one cell: results.json and the reports in the --out directory. */
static int write_reports(const struct profile_opts *o, json_t *entry)
{
    char path[TLY_H_PATH];
    int err = tly_h_mkdirs(o->out);
    if (!err)
        err = tly_h_pathf(path, "%s/results.json", o->out);
    if (err)
        return err;
    json_t *doc = tly_h_results_new("tally profile", 1, NULL, NULL);
    json_array_append(tly_h_results_list(doc), entry);
    /* the figures are the profiled program's processes' to write (TALLY_PROFILE_DIR): checked as any
     * results file is before they reach a report */
    err = tly_h_results_validate(doc, "the preload's result (written in the profiled process)");
    if (!err)
        err = json_dump_file(doc, path, JSON_INDENT(1) | JSON_REAL_PRECISION(6))
                  ? tly_fail(-EIO, "cannot write %s", path)
                  : tly_h_report(o->out, doc);
    if (!err)
        err = tly_h_stacks_folded(o->out, entry);
    json_decref(doc);
    return err;
}

/* Budgets for the cell, as the matrix writes them: {"libraries": {"numpy": {"copies": 1.1}}, "extra_copies": 1}. */
/* --budgets, before anything runs: a budget that cannot be read or names an unknown key fails at once
 * (exit 2), never after the program has run for an hour. */
static int parse_budgets(struct profile_opts *o)
{
    if (o->budgets == NULL)
        return 0;
    json_error_t je;
    json_t *b = json_loads(o->budgets, 0, &je);
    int err = b ? tly_h_budgets_validate(b, "--budgets") : tly_fail(TLY_EUSAGE, "--budgets: %s", je.text);
    if (err)
        json_decref(b);
    else
        o->budget_doc = b;
    return err;
}

/* A budget on a library the process never loaded (a misspelt name) fails closed, naming what was
 * loaded: held at 0 it would pass whatever the program did. */
static int budget_libraries_loaded(const struct profile_opts *o, json_t *entry)
{
    json_t *loaded = json_object_get(entry, "loaded_libraries");
    if (o->budget_doc == NULL || !json_is_array(loaded))
        return 0;
    const char *name;
    json_t *limits;
    json_object_foreach(json_object_get(o->budget_doc, "libraries"), name, limits)
    {
        (void)limits;
        size_t i;
        json_t *l;
        bool found = false;
        json_array_foreach(loaded, i, l) found = found || (json_is_string(l) && !strcmp(json_string_value(l), name));
        if (found)
            continue;
        char list[2048] = "", shown[2048];
        size_t n = 0;
        json_array_foreach(loaded, i, l)
        {
            if (n < sizeof list - 1)
                n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "", json_string_value(l));
        }
        return tly_fail(TLY_EUSAGE, "budget on library '%s': no such library was loaded; loaded: %s",
                        tly_h_term(shown, sizeof shown, name), list);
    }
    return 0;
}

static int check_budgets(const struct profile_opts *o, json_t *entry, bool *ok)
{
    *ok = true;
    json_t *b = o->budget_doc;
    if (b == NULL)
        return 0;
    int err = budget_libraries_loaded(o, entry);
    if (!err) {
        json_t *lines = tly_h_check_budgets(b, entry, ok);
        size_t i;
        json_t *l;
        json_array_foreach(lines, i, l)
        {
            char text[256];
            tly_h_budget_line_text(l, text, sizeof text);
            fprintf(stderr, "tally profile: budget %s: %s\n",
                    json_is_true(json_object_get(l, "ok")) ? "held" : "FAILED", text);
        }
        json_object_set_new(entry, "budgets", lines);
        json_object_set_new(entry, "ok", json_boolean(*ok));
    }
    return err;
}

static int parse(int argc, char **argv, struct profile_opts *o)
{
    static const struct option opts[] = {
        {"out", required_argument, NULL, 'o'},     {"array-bytes", required_argument, NULL, 'a'},
        {"json", optional_argument, NULL, 'j'},    {"name", required_argument, NULL, 'n'},
        {"budgets", required_argument, NULL, 'b'}, {NULL, 0, NULL, 0}};
    *o = (struct profile_opts){.out = "reports/profile"};
    /* "+": options end at CMD, so its own options stay its own */
    for (int ch; (ch = getopt_long(argc, argv, "+", opts, NULL)) != -1;) {
        if (ch == 'o')
            o->out = optarg;
        else if (ch == 'j')
            o->json = true, o->json_file = optarg;
        else if (ch == 'n')
            o->name = optarg;
        else if (ch == 'b')
            o->budgets = optarg;
        else if (ch != 'a' || tly_h_arg_size("profile", "array-bytes", optarg, 1, UINT64_MAX, &o->array_bytes))
            return tly_h_usage_error("profile");
    }
    return optind < argc ? 0 : tly_h_usage_error("profile");
}

/* What became of CMD: its exit status to pass through, said on stderr when it is not plain. */
static int cmd_status(const char *cmd, int rc, int status)
{
    if (rc == -ENOENT) {
        fprintf(stderr, "tally profile: %s: command not found\n", cmd);
        return 127;
    }
    if (rc != 0) {
        fprintf(stderr, "tally profile: %s: cannot run it: %s\n", cmd, strerror(-rc));
        return rc == -EACCES ? 126 : TLY_EXIT_ERROR;
    }
    if (WIFSIGNALED(status)) {
        fprintf(stderr, "tally profile: %s was killed by signal %d (%s)\n", cmd, WTERMSIG(status),
                strsignal(WTERMSIG(status)));
        return 128 + WTERMSIG(status);
    }
    return WEXITSTATUS(status);
}

/* --out is made, and must take files, before the program runs: its figures are never lost to it. */
static int out_ready(const char *out)
{
    int err = tly_h_mkdirs(out);
    if (err == 0 && access(out, W_OK | X_OK) != 0)
        err = tly_fail_errno("%s", out);
    if (err)
        tly_err_prefix("--out");
    return err;
}

/* --json=FILE can be written, before the program runs (its figures are never lost to it). */
static int json_file_ready(const char *file)
{
    int fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        int err = tly_fail_errno("%s", file);
        tly_err_prefix("--json");
        return err;
    }
    close(fd);
    return 0;
}

/* A directory of tally's own for the preload's results (TALLY_PROFILE_DIR), under $TMPDIR. */
static int temp_dir(char *dir)
{
    const char *tmp = getenv("TMPDIR");
    bool env = tmp && *tmp;
    int err = tly_h_pathf(dir, "%s/tally-profile-XXXXXX", env ? tmp : "/tmp");
    if (!err && mkdtemp(dir) == NULL)
        return tly_fail_errno("cannot make a temporary directory in %s%s", env ? tmp : "/tmp", env ? " (TMPDIR)" : "");
    return err;
}

/* Why there are no figures, when the program ran: what became of it, and what that means. */
static void no_result(const char *cmd, int status)
{
    if (WIFSIGNALED(status))
        fprintf(stderr, "tally profile: no figures: the process was killed before the preload could write them\n");
    else
        fprintf(stderr,
                "tally profile: untracked: %s exited with status %d and no process of it left a result: "
                "each was killed or exec'd a program without the preload before it could write, the preload "
                "could not write (its message above says why), or it never loaded the preload (a static "
                "binary ignores LD_PRELOAD)\n",
                cmd, WEXITSTATUS(status));
}

int tly_h_cmd_profile(int argc, char **argv)
{
    struct profile_opts o;
    if (parse(argc, argv, &o) != 0)
        return TLY_EXIT_ERROR;
    char **cmd = argv + optind, dir[TLY_H_PATH] = "", ld[TLY_H_PRELOAD_VALUE];
    struct tly_h_env env[TLY_H_PRELOAD_NENV];
    int err = parse_budgets(&o);
    if (!err)
        err = out_ready(o.out);
    if (!err && o.json_file)
        err = json_file_ready(o.json_file);
    if (!err)
        err = temp_dir(dir);
    if (!err && (err = tly_h_preload_env(env, ld, NULL, dir)) != 0)
        tly_h_tree_remove(dir);
    if (err) {
        json_decref(o.budget_doc);
        return tly_h_fail_cmd("profile", err);
    }
    struct tly_h_resident *rs = NULL;
    struct tly_h_spawn_watch watch = tly_h_resident_watch(&rs);
    /* --json on stdout: stdout is the result's alone, so it can be piped; the program's goes to stderr */
    int saved_out = o.json && !o.json_file ? dup(STDOUT_FILENO) : -1;
    if (saved_out >= 0) {
        fflush(stdout);
        dup2(STDERR_FILENO, STDOUT_FILENO);
    }
    int status = 0, rc = tly_h_spawn_inherit(cmd[0], cmd, env, TLY_H_PRELOAD_NENV, &status, &watch);
    if (saved_out >= 0) {
        dup2(saved_out, STDOUT_FILENO);
        close(saved_out);
    }
    int exit_code = cmd_status(cmd[0], rc, status);
    /* every process of the program that loaded the preload left its results in dir */
    json_t *procs = NULL;
    bool root_primary = false;
    json_t *r = rc == 0 ? tly_h_tree_collect(dir, status, rs, &procs, &root_primary) : NULL;
    tly_h_tree_remove(dir);
    tly_h_resident_free(rs);
    if (r == NULL) {
        if (rc == 0)
            no_result(cmd[0], status);
        if (json_array_size(procs))
            tly_h_tree_print(stderr, procs, NULL);
        json_decref(procs);
        json_decref(o.budget_doc);
        return exit_code ? exit_code : TLY_EXIT_ERROR;
    }
    rescale(r, o.array_bytes);
    tly_h_unexplained_copies(r); /* on the rescaled peak */
    if (!json_is_true(json_object_get(r, "marked")) && json_integer_value(json_object_get(r, "array_bytes")) > 0)
        json_object_set_new(r, "window_note",
                            json_string("whole process: one array of the peak is taken to be the "
                                        "program's own (peak ≈ (1 + copies) × array)"));
    json_object_set_new(r, "impl",
                        json_string(o.name                 ? o.name
                                    : strrchr(cmd[0], '/') ? strrchr(cmd[0], '/') + 1
                                                           : cmd[0]));
    json_object_set_new(r, "scenario", json_string("profile"));
    /* the kernel's resident high-water mark of the program (the largest of the processes tally waited
     * for: the program, and what it waited for), whole process, beside the window's heap peak */
    struct rusage ru;
    if (getrusage(RUSAGE_CHILDREN, &ru) == 0 && ru.ru_maxrss > 0)
        json_object_set_new(r, "max_rss_bytes", json_integer((json_int_t)ru.ru_maxrss * 1024));
    /* what became of the program: a program that failed makes the result program_failed (its figures
     * kept: they are what it did until it failed) */
    json_t *proc = json_object_get(r, "impl_process");
    bool failed = WIFSIGNALED(status) || WEXITSTATUS(status) != 0;
    if (json_is_object(proc) && root_primary) { /* another process's: "processes" says the program's */
        json_object_set_new(proc, "exit_status", WIFEXITED(status) ? json_integer(WEXITSTATUS(status)) : json_null());
        json_object_set_new(proc, "signal", WIFSIGNALED(status) ? json_integer(WTERMSIG(status)) : json_null());
    }
    json_object_set_new(r, "status", json_string(failed ? "program_failed" : "ok"));
    if (failed)
        json_object_set_new(r, "reason",
                            json_string(WIFSIGNALED(status) ? "the program was killed by a signal"
                                                            : "the program exited with a failure status"));
    json_object_set_new(r, "ok", json_true());
    bool tracked = json_is_true(json_object_get(r, "tracking")), ok = true;
    if (!tracked) {
        char shown[2048];
        fprintf(stderr, "tally profile: untracked: %s\n",
                tly_h_term(shown, sizeof shown, json_string_value(json_object_get(r, "untracked_reason"))));
    }
    err = check_budgets(&o, r, &ok);
    if (!err)
        err = write_reports(&o, r);
    if (o.json && o.json_file) {
        if (json_dump_file(r, o.json_file, JSON_INDENT(2) | JSON_REAL_PRECISION(6)) != 0 && !err)
            err = tly_fail(-EIO, "--json=%s: cannot write it", o.json_file);
    } else if (o.json) {
        json_dumpf(r, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
        fputc('\n', stdout);
    }
    if ((!o.json || o.json_file) && tracked && !err) {
        print_summary(stderr, r);
        tly_h_stacks_print(stderr, r, "");
        tly_h_tree_print(stderr, procs, json_object_get(r, "tree"));
        if (!err)
            fprintf(stderr, "reports: %s/results.json, copies.md, index.html, trace.json%s\n", o.out,
                    json_is_true(json_object_get(json_object_get(r, "stacks"), "enabled"))
                        ? ", peak.folded, copies.folded, allocated.folded"
                        : "");
    }
    json_decref(r);
    json_decref(procs);
    json_decref(o.budget_doc);
    if (err)
        tly_h_fail_cmd("profile", err);
    if (exit_code)
        return exit_code;
    return err || !tracked ? TLY_EXIT_ERROR : ok ? TLY_EXIT_OK : TLY_EXIT_BUDGET;
}
