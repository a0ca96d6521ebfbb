/*
 * tally check: compare a run (DIR/results.json) with the committed baseline on extra_copies,
 * peak_extra_ratio and per-stage copy volumes. A figure that grows beyond its tolerance fails the
 * check; one that shrinks beyond it is reported as an improvement. --update rewrites the baseline
 * from the run, deliberately (scenarios the run skipped keep their old entries).
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "report/report.h"

struct tol {
    double copies; /* extra_copies: an integer, default 0 */
    double ratio;  /* peak_extra_ratio and stage copies, as fractions of the array: default 0.05 */
};

static json_t *figures(json_t *e)
{
    json_t *copies = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(e, "stages"), k, v)
    {
        double c = json_number_value(json_object_get(v, "copies"));
        if (c >= 0.001)
            json_object_set_new(copies, k, json_real(round(c * 1000) / 1000));
    }
    return json_pack("{s:O, s:f, s:o}", "extra_copies", json_object_get(e, "extra_copies"), "peak_extra_ratio",
                     round(json_number_value(json_object_get(e, "peak_extra_ratio")) * 1000) / 1000, "copies", copies);
}

/* Compare one figure; returns true when it regressed. */
static bool compare(const char *scenario, const char *figure, const char *stage, double base, double now, double tol,
                    int *improved)
{
    if (now > base + tol + 1e-9) {
        printf("REGRESSION %s: %s%s%s %.4g -> %.4g (tolerance %.4g)\n", scenario, stage ? "stage " : "",
               stage ? stage : "", stage ? " " : "", base, now, tol);
        (void)figure;
        return true;
    }
    if (now < base - tol - 1e-9) {
        printf("improved   %s: %s%s%s %.4g -> %.4g\n", scenario, stage ? "stage " : "", stage ? stage : "",
               stage ? " " : "", base, now);
        (*improved)++;
    }
    return false;
}

static int check_one(const char *name, json_t *base, json_t *now, struct tol t, int *improved)
{
    int bad = 0;
    char label[64];
    snprintf(label, sizeof label, "extra_copies");
    bad += compare(name, label, NULL, json_number_value(json_object_get(base, "extra_copies")),
                   json_number_value(json_object_get(now, "extra_copies")), t.copies, improved);
    bad += compare(name, "peak_extra_ratio", NULL, json_number_value(json_object_get(base, "peak_extra_ratio")),
                   json_number_value(json_object_get(now, "peak_extra_ratio")), t.ratio, improved);
    json_t *bc = json_object_get(base, "copies"), *nc = json_object_get(now, "copies");
    const char *k;
    json_t *v;
    json_object_foreach(nc, k, v) /* stages that copy now, against what they copied */
    {
        bad += compare(name, "copies", k, json_number_value(json_object_get(bc, k)), json_number_value(v), t.ratio,
                       improved);
    }
    json_object_foreach(bc, k, v) /* stages that stopped copying */
    {
        if (!json_object_get(nc, k))
            bad += compare(name, "copies", k, json_number_value(v), 0, t.ratio, improved);
    }
    return bad;
}

int tly_h_cmd_check(int argc, char **argv)
{
    static const struct option opts[] = {{"baseline", required_argument, NULL, 'b'},
                                         {"tolerance", required_argument, NULL, 't'},
                                         {"copies-tolerance", required_argument, NULL, 'c'},
                                         {"update", no_argument, NULL, 'u'},
                                         {NULL, 0, NULL, 0}};
    const char *baseline = NULL;
    struct tol t = {0, 0.05};
    bool update = false, bad = false;
    for (int ch; !bad && (ch = tly_h_getopt(argc, argv, opts)) != -1;) {
        switch (ch) {
        case 'b':
            baseline = optarg;
            break;
        case 't':
            t.ratio = atof(optarg);
            break;
        case 'c':
            t.copies = atof(optarg);
            break;
        case 'u':
            update = true;
            break;
        default: /* an unknown option (getopt named it) or --help */
            bad = true;
            break;
        }
    }
    if (bad || baseline == NULL || argc - optind > 1) {
        return tly_h_usage_error("check");
    }
    const char *dir = optind < argc ? argv[optind] : "reports/latest";
    char path[TLY_H_PATH];
    snprintf(path, sizeof path, "%s/results.json", dir);
    json_error_t je;
    json_t *results = tly_h_load_results(dir, "check");
    if (results == NULL)
        return TLY_EXIT_ERROR;
    json_t *base = json_load_file(baseline, 0, &je);
    if (base == NULL && !update) {
        fprintf(stderr, "tally check: %s: %s\n", baseline, je.text);
        json_decref(results);
        return TLY_EXIT_ERROR;
    }
    if (base == NULL)
        base = json_pack("{s:{}}", "scenarios");
    json_t *scen = json_object_get(base, "scenarios");
    int regressions = 0, improved = 0, compared = 0, failed = 0;
    size_t i;
    json_t *e;
    json_array_foreach(results, i, e)
    {
        const char *name = json_string_value(json_object_get(e, "scenario"));
        const char *status = json_string_value(json_object_get(e, "status"));
        if (strcmp(status, "failed") == 0) {
            printf("FAILED     %s: did not run: %s\n", name, json_string_value(json_object_get(e, "reason")));
            failed++;
            continue;
        }
        if (strcmp(status, "ok") != 0 || json_is_false(json_object_get(e, "baseline")))
            continue; /* skipped, or a scenario its budgets gate alone */
        json_t *now = figures(e), *was = json_object_get(scen, name);
        if (update) {
            json_object_set(scen, name, now);
        } else if (was == NULL) {
            printf("new        %s: not in the baseline (tally check --update adds it)\n", name);
        } else {
            regressions += check_one(name, was, now, t, &improved);
            compared++;
        }
        json_decref(now);
    }
    int rc = TLY_EXIT_OK;
    if (update) {
        json_object_set_new(base, "about",
                            json_string("tally's committed baseline: per scenario, extra_copies, peak_extra_ratio "
                                        "and per-stage copy volumes of a `tally run`; `tally check` fails when a "
                                        "figure grows past its tolerance. Rewritten only by `tally check --update`."));
        if (json_dump_file(base, baseline, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(6)) != 0) {
            fprintf(stderr, "tally check: cannot write %s\n", baseline);
            rc = TLY_EXIT_ERROR;
        } else {
            printf("tally check: %s updated from %s (%zu scenarios)\n", baseline, path, json_object_size(scen));
        }
    } else {
        printf("tally check: %d scenarios compared with %s: %d regressions, %d improvements%s\n", compared, baseline,
               regressions, improved, failed ? ", and scenarios that did not run" : "");
        rc = regressions || failed ? TLY_EXIT_BUDGET : TLY_EXIT_OK;
    }
    json_decref(base);
    json_decref(results);
    return rc;
}
