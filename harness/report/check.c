/*
 * tally check: compare a run (or the merged shards of one) with the committed baseline. It fails
 * closed: a baseline cell that the run skipped, lost, could not run or did not measure (tracking
 * off) fails the check unless --allow-missing says why; a figure that grows past its tolerance is a
 * regression naming cell, implementation, figure, stage, old, new and tolerance. --update rewrites
 * the baseline from a run, deliberately, and refuses a run with failed budgets or untracked cells.
 */
#include <errno.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"
#include "report/check.h"
#include "report/report.h"
#include "tally/tally.h"

struct check_opts {
    const char *baseline, *allow_missing, *allow_only, *junit, *summary;
    double ratio_tol, copies_tol, throughput_tol;
    bool update, fail_on_throughput;
    regex_t only; /* --allow-missing-only, compiled */
};

static void add(json_t *lines, const char *kind, const char *cell, const char *figure, const char *owner, double old,
                double now, double tol, const char *reason)
{
    json_t *l =
        json_pack("{s:s, s:s, s:f, s:f, s:f}", "kind", kind, "cell", cell, "old", old, "new", now, "tolerance", tol);
    json_object_set_new(l, "figure", figure ? json_string(figure) : json_null());
    json_object_set_new(l, "owner", owner ? json_string(owner) : json_null());
    json_object_set_new(l, "reason", reason ? json_string(reason) : json_null());
    json_array_append_new(lines, l);
}

static double r3(double v)
{
    return round(v * 1000) / 1000;
}

/* A read's amplification is a figure a few parts in 10^4 above 1 (blosc's first range): kept to 5 places. */
static double r5(double v)
{
    return round(v * 100000) / 100000;
}

/* What the baseline keeps of a result: the memory figures, copy volumes, and throughput when repeated. */
static json_t *figures(json_t *e)
{
    /* the run's figures were validated when it loaded (tly_h_results_validate): finite, in range */
    json_t *o = json_object();
    json_object_set(o, "extra_copies", json_object_get(e, "extra_copies"));
    json_object_set_new(o, "peak_extra_ratio",
                        json_real(r3(json_number_value(json_object_get(e, "peak_extra_ratio")))));
    static const char *const owners[][2] = {{"stages", "copies"}, {"libraries", "copies"}};
    for (int k = 0; k < 2; k++) {
        json_t *m = json_object();
        const char *name;
        json_t *v;
        /* another stack's (preloaded) "unstaged" ledger holds only its copies of TALLY_PROFILE_COPY_MIN
         * bytes or more, how many depending on the pieces a body arrives in (GDAL's S3 reads moved
         * 0.45 -> 0.86 between runs): its libraries hold every copy, and are what is gated */
        bool preloaded = json_is_object(json_object_get(e, "libraries"));
        json_object_foreach(json_object_get(e, owners[k][0]), name, v)
        {
            if (k == 0 && preloaded && strcmp(name, "unstaged") == 0)
                continue;
            double c = json_number_value(json_object_get(v, owners[k][1]));
            if (c >= 0.001)
                json_object_set_new(m, name, json_real(r3(c)));
        }
        if (k == 0 || json_object_size(m))
            json_object_set_new(o, k ? "libraries" : "copies", m);
        else
            json_decref(m);
    }
    json_t *amp = json_object_get(e, "read_amplification");
    if (json_is_number(amp))
        json_object_set_new(o, "read_amplification", json_real(r5(json_number_value(amp))));
    json_t *t = json_object_get(e, "throughput");
    if (t && json_integer_value(json_object_get(t, "n")) >= 3)
        json_object_set(o, "throughput", t);
    return o;
}

/* One figure, lower is better: a regression past the tolerance, an improvement past it. */
static int compare(json_t *lines, const char *cell, const char *figure, const char *owner, double base, double now,
                   double tol)
{
    if (now > base + tol + 1e-9) {
        add(lines, TLY_H_REGRESSION, cell, figure, owner, base, now, tol, NULL);
        return 1;
    }
    if (now < base - tol - 1e-9)
        add(lines, TLY_H_IMPROVED, cell, figure, owner, base, now, tol, NULL);
    return 0;
}

/*
 * A copy volume that fell while the peak did not is no improvement: the copy may only have moved
 * where the instrument cannot see it (a transposed copy is a loop, no memcpy: its ledger says 0 with
 * the same peak). It is a note; a regression is still a regression.
 */
static int compare_copies(json_t *lines, const char *cell, const char *owner, double base, double now, double tol,
                          bool peak_fell)
{
    if (now < base - tol - 1e-9 && !peak_fell) {
        add(lines, TLY_H_NOTE, cell, "copies", owner, base, now, tol,
            "the copy volume fell but the peak did not: the copies may now be made where the instrument cannot "
            "see them (loops, such as numpy's strided or transposed copies, never call memcpy), not an "
            "improvement");
        return 0;
    }
    return compare(lines, cell, "copies", owner, base, now, tol);
}

/* Per-owner copy volumes: owners that copy now, against what they copied; owners that stopped. */
static int compare_owners(json_t *lines, const char *cell, const char *key, json_t *was, json_t *now, double tol,
                          bool peak_fell)
{
    json_t *b = json_object_get(was, key), *n = json_object_get(now, key);
    const char *kind = strcmp(key, "copies") == 0 ? "stage" : "library";
    int bad = 0;
    const char *k;
    json_t *v;
    char owner[160];
    json_object_foreach(n, k, v)
    {
        snprintf(owner, sizeof owner, "%s %s", kind, k);
        bad += compare_copies(lines, cell, owner, json_number_value(json_object_get(b, k)), json_number_value(v), tol,
                              peak_fell);
    }
    json_object_foreach(b, k, v)
    {
        snprintf(owner, sizeof owner, "%s %s", kind, k);
        if (!json_object_get(n, k))
            bad += compare_copies(lines, cell, owner, json_number_value(v), 0, tol, peak_fell);
    }
    return bad;
}

/*
 * Read amplification, lower is better, with the run's tolerance (--tolerance: an S3 retry reads bytes
 * again), never a cell's own (which says how its peak and copies move with timing, not its bytes). A
 * baseline written before the figure existed has none: the run's is a new figure, shown and never
 * failed, until `tally check --update` records it; one the baseline has and the run lacks fails.
 */
static int compare_amplification(json_t *lines, const char *cell, json_t *was, json_t *now, double tol)
{
    json_t *b = json_object_get(was, "read_amplification"), *n = json_object_get(now, "read_amplification");
    if (json_is_number(b) && json_is_number(n))
        return compare(lines, cell, "read_amplification", NULL, json_number_value(b), json_number_value(n), tol);
    if (json_is_number(n)) {
        add(lines, TLY_H_NEW_FIGURE, cell, "read_amplification", NULL, 0, json_number_value(n), 0,
            "no baseline (tally check --update records it)");
        return 0;
    }
    if (json_is_number(b)) {
        add(lines, TLY_H_MISSING, cell, "read_amplification", NULL, json_number_value(b), 0, 0,
            "in the baseline, not measured by the run");
        return 1;
    }
    return 0;
}

/* Throughput, higher is better: a change only when the ranges of the repetitions are apart too. */
static void compare_throughput(json_t *lines, const char *cell, json_t *was, json_t *now, double tol)
{
    json_t *b = json_object_get(was, "throughput"), *n = json_object_get(now, "throughput");
    if (!b || !n)
        return;
    double bm = json_number_value(json_object_get(b, "median_bps")),
           nm = json_number_value(json_object_get(n, "median_bps"));
    double bmin = json_number_value(json_object_get(b, "min_bps")),
           bmax = json_number_value(json_object_get(b, "max_bps"));
    double nmin = json_number_value(json_object_get(n, "min_bps")),
           nmax = json_number_value(json_object_get(n, "max_bps"));
    if (nmax < bmin && nm < bm * (1 - tol))
        add(lines, TLY_H_SLOWER, cell, "throughput_gbps", NULL, bm / 1e9, nm / 1e9, tol, NULL);
    else if (nmin > bmax && nm > bm * (1 + tol))
        add(lines, TLY_H_FASTER, cell, "throughput_gbps", NULL, bm / 1e9, nm / 1e9, tol, NULL);
}

static int check_cell(json_t *lines, const char *cell, json_t *was, json_t *now, const struct check_opts *o)
{
    /* a cell whose figures depend on timing (S3 parts in flight, a garbage collector, the pieces a
     * body arrives in) carries a wider tolerance, and says why: it holds for its peak and its copies */
    double own = json_number_value(json_object_get(was, "tolerance"));
    double tol = own > o->ratio_tol ? own : o->ratio_tol;
    double bratio = json_number_value(json_object_get(was, "peak_extra_ratio"));
    double nratio = json_number_value(json_object_get(now, "peak_extra_ratio"));
    int bad = compare(lines, cell, "peak_extra_ratio", NULL, bratio, nratio, tol);
    double bc = json_number_value(json_object_get(was, "extra_copies"));
    double nc = json_number_value(json_object_get(now, "extra_copies"));
    /* extra_copies is peak_extra_ratio rounded: when the ratio moved less than its tolerance, a new
     * rounding is a figure sitting at .5, not a new copy */
    if (fabs(nratio - bratio) > tol + 1e-9)
        bad += compare(lines, cell, "extra_copies", NULL, bc, nc, o->copies_tol);
    else if (nc != bc)
        add(lines, TLY_H_NOTE, cell, "extra_copies", NULL, bc, nc, o->copies_tol,
            "peak_extra_ratio moved within its tolerance across a rounding boundary");
    bool peak_fell = nratio < bratio - tol - 1e-9;
    bad += compare_owners(lines, cell, "copies", was, now, tol, peak_fell);
    /* a stack whose small copies vary from run to run (a garbage collector's, a JIT's) may carry a
     * wider tolerance for its libraries' copies alone, and says why; its peak keeps the narrow one */
    double lib_own = json_number_value(json_object_get(was, "library_tolerance"));
    bad += compare_owners(lines, cell, "libraries", was, now, lib_own > tol ? lib_own : tol, peak_fell);
    bad += compare_amplification(lines, cell, was, now, o->ratio_tol); /* not the cell's own: that is its peak's */
    compare_throughput(lines, cell, was, now, o->throughput_tol);
    return bad;
}

/* Why a run's entry cannot be compared (NULL: it can). */
static const char *not_measured(json_t *e)
{
    const char *status = json_string_value(json_object_get(e, "status"));
    if (status == NULL || strcmp(status, "ok") != 0)
        return status ? status : "no status";
    if (json_is_false(json_object_get(e, "tracking")))
        return "untracked";
    return NULL;
}

static void reason_text(json_t *e, const char *why, char *buf, size_t cap)
{
    const char *r = json_string_value(json_object_get(e, "reason"));
    if (!r && strcmp(why, "untracked") == 0)
        r = json_string_value(json_object_get(e, "untracked_reason"));
    snprintf(buf, cap, "%s%s%s", why, r ? ": " : "", r ? r : "");
}

/* The baseline's cells against the run's entries (@p run: cell key -> entry). */
static int check_all(json_t *lines, json_t *cells, json_t *run, const struct check_opts *o, int *compared)
{
    int bad = 0;
    const char *key;
    json_t *was;
    json_object_foreach(cells, key, was)
    {
        json_t *e = json_object_get(run, key);
        const char *why = e ? not_measured(e) : "not in the run";
        if (why) {
            char reason[700];
            if (e)
                reason_text(e, why, reason, sizeof reason);
            else
                snprintf(reason, sizeof reason, "%s", why);
            bool failed = e && !strcmp(why, "failed");
            bool allowed = o->allow_missing && (!o->allow_only || regexec(&o->only, key, 0, NULL, 0) == 0);
            const char *kind = failed ? TLY_H_FAILED : allowed ? TLY_H_ALLOWED : TLY_H_MISSING;
            add(lines, kind, key, NULL, NULL, 0, 0, 0, reason);
            bad += strcmp(kind, TLY_H_ALLOWED) != 0;
            continue;
        }
        json_t *now = figures(e);
        size_t from = json_array_size(lines);
        bad += check_cell(lines, key, was, now, o);
        tly_h_check_name_sites(lines, from, e);
        json_decref(now);
        (*compared)++;
    }
    json_object_foreach(run, key, was)
    {
        const char *why = not_measured(was);
        bool in_baseline = json_object_get(cells, key) != NULL;
        if (!in_baseline && why && strcmp(why, "failed") == 0) {
            add(lines, TLY_H_FAILED, key, NULL, NULL, 0, 0, 0, json_string_value(json_object_get(was, "reason")));
            bad++;
        }
        if (!why && !json_is_true(json_object_get(was, "ok"))) {
            add(lines, TLY_H_FAILED, key, NULL, NULL, 0, 0, 0, "its budgets failed (see tally run)");
            bad++;
        }
        if (!in_baseline && !why && !json_is_false(json_object_get(was, "baseline")))
            add(lines, TLY_H_NEW, key, NULL, NULL, 0, 0, 0, "not in the baseline (tally check --update adds it)");
    }
    return bad;
}

/* The run's entries by cell key. */
static json_t *index_run(json_t *results)
{
    json_t *run = json_object();
    size_t i;
    json_t *e;
    json_array_foreach(results, i, e)
    {
        char key[512];
        tly_h_cell_key(e, key, sizeof key);
        json_object_set(run, key, e);
    }
    return run;
}

static json_t *load_baseline(const char *path, bool update)
{
    json_error_t je;
    json_t *b = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (b == NULL && update)
        return json_pack("{s:s, s:{}}", "schema", TLY_H_BASELINE_SCHEMA, "cells");
    const char *schema = json_string_value(json_object_get(b, "schema"));
    char shown[sizeof je.text * 4];
    if (b == NULL)
        fprintf(stderr, "tally check: %s: %s\n", path, tly_h_term(shown, sizeof shown, je.text));
    else if (!schema || strcmp(schema, TLY_H_BASELINE_SCHEMA) != 0 || !json_is_object(json_object_get(b, "cells")))
        fprintf(stderr, "tally check: %s: schema '%s', this tally reads '%s'\n", path,
                schema ? tly_h_term(shown, 256, schema) : "(none)", TLY_H_BASELINE_SCHEMA);
    else if (tly_h_baseline_validate(b, path) != 0)
        fprintf(stderr, "tally check: %s\n", tly_errmsg());
    else
        return b;
    json_decref(b);
    return NULL;
}

/* --update: the run becomes the baseline, unless it is not fit to be one. */
static int update(const struct check_opts *o, json_t *base, json_t *doc, json_t *run)
{
    json_t *cells = json_object_get(base, "cells");
    int refused = 0;
    const char *key;
    json_t *e;
    json_object_foreach(run, key, e)
    {
        const char *why = not_measured(e);
        char shown[2048];
        if (why && strcmp(why, "skipped") != 0) {
            fprintf(stderr, "tally check --update: %s: %s: not written into a baseline\n",
                    tly_h_term(shown, sizeof shown, key), why);
            refused++;
        } else if (!why && !json_is_true(json_object_get(e, "ok"))) {
            fprintf(stderr, "tally check --update: %s: its budgets failed: not written into a baseline\n",
                    tly_h_term(shown, sizeof shown, key));
            refused++;
        }
    }
    if (refused) {
        fprintf(stderr, "tally check --update: %d cells are not fit for a baseline; %s is unchanged\n", refused,
                o->baseline);
        return TLY_EXIT_BUDGET;
    }
    json_object_foreach(run, key, e)
    {
        if (not_measured(e) || json_is_false(json_object_get(e, "baseline")))
            continue; /* cells the run skipped keep their entries */
        json_t *fig = figures(e), *old = json_object_get(cells, key);
        static const char *const decisions[] = {"tolerance", "tolerance_about", "library_tolerance",
                                                "library_tolerance_about"};
        for (size_t k = 0; k < sizeof decisions / sizeof decisions[0]; k++) /* a decision, not a figure */
            if (json_object_get(old, decisions[k]))
                json_object_set(fig, decisions[k], json_object_get(old, decisions[k]));
        json_object_set_new(cells, key, fig);
    }
    json_object_set_new(base, "schema", json_string(TLY_H_BASELINE_SCHEMA));
    json_object_set_new(base, "about",
                        json_string("tally's committed baseline: per cell (implementation/scenario), extra_copies, "
                                    "peak_extra_ratio, copy volumes per stage (and per library for other stacks), "
                                    "read_amplification (tally's reads) and, from repeated runs, throughput; `tally "
                                    "check` fails when a figure grows past its "
                                    "tolerance. Rewritten only by `tally check --update`."));
    json_t *src = json_object();
    static const char *const keep[] = {"tally_version", "git_commit", "date", "host", "build_type", "jemalloc_version"};
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
        json_object_set(src, keep[i], json_object_get(doc, keep[i]));
    json_object_set_new(base, "source", src);
    if (json_dump_file(base, o->baseline, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(6)) != 0) {
        fprintf(stderr, "tally check: cannot write %s: %s\n", o->baseline, strerror(errno));
        return TLY_EXIT_ERROR;
    }
    printf("tally check: %s updated (%zu cells)\n", o->baseline, json_object_size(cells));
    return TLY_EXIT_OK;
}

static int report_lines(const struct check_opts *o, json_t *lines, json_t *cells, int compared, int bad)
{
    int counts[6] = {0};
    size_t i;
    json_t *l;
    json_array_foreach(lines, i, l)
    {
        const char *kind = json_string_value(json_object_get(l, "kind"));
        char text[1024];
        tly_h_check_line_text(l, text, sizeof text);
        tly_h_term_text(stdout, text); /* its cell, owner and reason come from the results */
        putchar('\n');
        counts[0] += !strcmp(kind, TLY_H_REGRESSION);
        counts[1] += !strcmp(kind, TLY_H_IMPROVED);
        counts[2] += !strcmp(kind, TLY_H_MISSING) || !strcmp(kind, TLY_H_FAILED);
        counts[3] += !strcmp(kind, TLY_H_SLOWER);
        counts[4] += !strcmp(kind, TLY_H_NEW_FIGURE);
        counts[5] += !strcmp(kind, TLY_H_ALLOWED);
    }
    bad += o->fail_on_throughput ? counts[3] : 0;
    printf("tally check: %d cells compared with %s: %d regressions, %d improvements, %d missing or failed, %d "
           "slower, %d new figures without a baseline\n",
           compared, o->baseline, counts[0], counts[1], counts[2], counts[3], counts[4]);
    if (o->allow_missing)
        printf("tally check: %d missing, allowed%s%s: %s\n", counts[5], o->allow_only ? " when they match " : "",
               o->allow_only ? o->allow_only : "", o->allow_missing);
    int rc = bad ? TLY_EXIT_BUDGET : TLY_EXIT_OK;
    const char *summary = o->summary ? o->summary : getenv("GITHUB_STEP_SUMMARY");
    if (o->junit && tly_h_check_junit(o->junit, lines, cells, o->fail_on_throughput) != 0)
        rc = tly_h_fail_cmd("check", -EIO);
    if (summary && *summary && tly_h_check_summary(summary, lines, compared, o->fail_on_throughput) != 0)
        rc = tly_h_fail_cmd("check", -EIO);
    return rc;
}

static int parse_opts(int argc, char **argv, struct check_opts *o)
{
    static const struct option opts[] = {{"baseline", required_argument, NULL, 'b'},
                                         {"tolerance", required_argument, NULL, 't'},
                                         {"copies-tolerance", required_argument, NULL, 'c'},
                                         {"throughput-tolerance", required_argument, NULL, 'T'},
                                         {"fail-on-throughput", no_argument, NULL, 'F'},
                                         {"allow-missing", required_argument, NULL, 'm'},
                                         {"allow-missing-only", required_argument, NULL, 'M'},
                                         {"junit", required_argument, NULL, 'j'},
                                         {"summary", required_argument, NULL, 's'},
                                         {"update", no_argument, NULL, 'u'},
                                         {NULL, 0, NULL, 0}};
    *o = (struct check_opts){.ratio_tol = 0.05, .copies_tol = 0, .throughput_tol = 0.10};
    for (int ch; (ch = tly_h_getopt(argc, argv, opts)) != -1;) {
        char *end = NULL;
        double v = 0;
        if (ch == 't' || ch == 'c' || ch == 'T') {
            v = strtod(optarg, &end);
            if (end == optarg || *end || !(v >= 0 && v <= 100)) {
                fprintf(stderr, "tally check: --%s '%s': want a number from 0 to 100\n",
                        ch == 't'   ? "tolerance"
                        : ch == 'c' ? "copies-tolerance"
                                    : "throughput-tolerance",
                        optarg);
                return TLY_EXIT_ERROR;
            }
        }
        switch (ch) {
        case 'b':
            o->baseline = optarg;
            break;
        case 't':
            o->ratio_tol = v;
            break;
        case 'c':
            o->copies_tol = v;
            break;
        case 'T':
            o->throughput_tol = v;
            break;
        case 'F':
            o->fail_on_throughput = true;
            break;
        case 'm':
            if (!*optarg) {
                fprintf(stderr, "tally check: --allow-missing needs a reason (why cells may be missing)\n");
                return TLY_EXIT_ERROR;
            }
            o->allow_missing = optarg;
            break;
        case 'M':
            if (regcomp(&o->only, optarg, REG_EXTENDED | REG_NOSUB) != 0) {
                fprintf(stderr, "tally check: --allow-missing-only '%s' is not a regular expression\n", optarg);
                return TLY_EXIT_ERROR;
            }
            o->allow_only = optarg;
            break;
        case 'j':
            o->junit = optarg;
            break;
        case 's':
            o->summary = optarg;
            break;
        case 'u':
            o->update = true;
            break;
        default:
            return tly_h_usage_error("check");
        }
    }
    if (o->allow_only && !o->allow_missing) {
        fprintf(stderr, "tally check: --allow-missing-only narrows --allow-missing REASON: give the reason too\n");
        return TLY_EXIT_ERROR;
    }
    return o->baseline ? 0 : tly_h_usage_error("check");
}

int tly_h_cmd_check(int argc, char **argv)
{
    struct check_opts o;
    if (parse_opts(argc, argv, &o) != 0)
        return TLY_EXIT_ERROR;
    char *dflt[] = {"reports/latest"};
    json_t *doc = tly_h_results_load(optind < argc ? argv + optind : dflt, optind < argc ? argc - optind : 1, "check");
    json_t *base = doc ? load_baseline(o.baseline, o.update) : NULL;
    if (base == NULL) {
        json_decref(doc);
        return TLY_EXIT_ERROR;
    }
    json_t *run = index_run(tly_h_results_list(doc));
    int rc;
    if (o.update) {
        rc = update(&o, base, doc, run);
    } else {
        json_t *lines = json_array(), *cells = json_object_get(base, "cells");
        int compared = 0;
        int bad = check_all(lines, cells, run, &o, &compared);
        rc = report_lines(&o, lines, cells, compared, bad);
        json_decref(lines);
    }
    json_decref(run);
    json_decref(base);
    json_decref(doc);
    return rc;
}
