/*
 * tally bench --compare OLD.json NEW.json: two bench documents, row by row and figure by figure,
 * with noise-aware tolerances. A change is significant only when the two runs' [min, max] ranges do
 * not overlap AND the medians differ by more than the tolerance; anything less is the machine's
 * noise. Only the ratios gate (a regression exits 1): each is measured against limits of the same
 * run, so it holds across machines and loads, and quick and full runs should agree on it. GB/s
 * moves with the machine: a significant change is shown (slower, faster), between runs of the same
 * array only, and does not fail.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bench/bench.h"

struct counts {
    int agree, apart, regressions, improvements, moved, skipped;
};

struct ctx {
    FILE *f;
    double tolerance;
    struct counts n;
    char skipped[1024]; /* the row's figures not compared, and why */
};

/* The GB/s figures a row may have (same array only); they do not gate. */
static const char *const gbps_keys[] = {"gbps", "write_gbps", "read_gbps", NULL};

static double num(json_t *row, const char *key, const char *suffix)
{
    char k[80];
    snprintf(k, sizeof k, "%s%s", key, suffix);
    return json_number_value(json_object_get(row, k));
}

/* Why a figure of @p row has no number: "unstable", "invalid", ... or NULL when it does not apply. */
static const char *why_missing(json_t *row, const char *key)
{
    const char *w = json_string_value(json_object_get(json_object_get(row, "withheld"), key));
    if (w)
        return w;
    if (json_object_get(row, key) && strstr(key, "gbps"))
        return json_string_value(json_object_get(row, "status"));
    return NULL;
}

/* A figure one run lacks: noted for the row's "not compared" line when it applies. */
static void skip(struct ctx *c, json_t *o, json_t *n, const char *key)
{
    bool on = json_is_number(json_object_get(o, key)), nn = json_is_number(json_object_get(n, key));
    const char *wo = on ? "measured" : why_missing(o, key), *wn = nn ? "measured" : why_missing(n, key);
    if (!wo && !wn)
        return; /* it applies to neither */
    size_t len = strlen(c->skipped);
    snprintf(c->skipped + len, sizeof c->skipped - len, "%s%s (%s, %s)", len ? "; " : "", key, wo ? wo : "none",
             wn ? wn : "none");
    c->n.skipped++;
}

static void compare_figure(struct ctx *c, const char *name, json_t *o, json_t *n, const char *key, bool gate)
{
    if (!json_is_number(json_object_get(o, key)) || !json_is_number(json_object_get(n, key))) {
        skip(c, o, n, key);
        return;
    }
    double ov = num(o, key, ""), olo = num(o, key, "_min"), ohi = num(o, key, "_max");
    double nv = num(n, key, ""), nlo = num(n, key, "_min"), nhi = num(n, key, "_max");
    double rel = ov > 0 ? (nv - ov) / ov : 0;
    const char *verdict = NULL;
    if (!(nhi < olo || nlo > ohi))
        c->n.agree++;
    else if (fabs(rel) <= c->tolerance)
        c->n.apart++, verdict = "apart";
    else if (!gate)
        c->n.moved++, verdict = rel < 0 ? "slower" : "faster";
    else if (rel < 0)
        c->n.regressions++, verdict = "REGRESSION";
    else
        c->n.improvements++, verdict = "improvement";
    if (verdict)
        fprintf(c->f, "%-12s %s %s: %.3g (%.3g-%.3g) -> %.3g (%.3g-%.3g), %+.1f%%\n", verdict, name, key, ov, olo, ohi,
                nv, nlo, nhi, 100 * rel);
}

/* The row of @p rows whose key is @p key, or NULL. */
static json_t *find_row(json_t *rows, const char *key)
{
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r)
    {
        const char *k = json_string_value(json_object_get(r, "key"));
        if (key && k && !strcmp(key, k))
            return r;
    }
    return NULL;
}

static void compare_rows(struct ctx *c, json_t *old_rows, json_t *new_rows)
{
    size_t i;
    json_t *o, *n;
    json_array_foreach(old_rows, i, o)
    {
        const char *key = json_string_value(json_object_get(o, "key"));
        json_t *match = find_row(new_rows, key);
        if (match == NULL) {
            fprintf(c->f, "only in OLD  %s\n", key ? key : "(a row without a key)");
            continue;
        }
        bool same_array = json_integer_value(json_object_get(o, "array_bytes")) ==
                          json_integer_value(json_object_get(match, "array_bytes"));
        c->skipped[0] = '\0';
        for (int k = 0; same_array && gbps_keys[k]; k++)
            compare_figure(c, key, o, match, gbps_keys[k], false);
        const char *limit = json_string_value(json_object_get(o, "limit"));
        const char *layout = json_string_value(json_object_get(o, "layout_limit"));
        bool same_limit = limit && layout && !strcmp(limit, layout); /* one chunk: one ratio under two names */
        for (int k = 0; tly_h_bench_ratio_keys[k]; k++)
            if (!(same_limit && !strcmp(tly_h_bench_ratio_keys[k], "ratio_to_layout_limit")))
                compare_figure(c, key, o, match, tly_h_bench_ratio_keys[k], true);
        if (c->skipped[0])
            fprintf(c->f, "not compared %s: %s\n", key, c->skipped);
    }
    json_array_foreach(new_rows, i, n)
    {
        const char *key = json_string_value(json_object_get(n, "key"));
        if (find_row(old_rows, key) == NULL)
            fprintf(c->f, "only in NEW  %s\n", key ? key : "(a row without a key)");
    }
}

bool tly_h_bench_is_doc(json_t *doc, const char *option, const char *which)
{
    const char *schema = json_string_value(json_object_get(doc, "schema"));
    if (schema && !strcmp(schema, TLY_H_BENCH_SCHEMA) && json_is_array(json_object_get(doc, "rows")))
        return true;
    fprintf(stderr, "tally bench %s: %s is not a %s document (schema %s): run tally bench again\n", option, which,
            TLY_H_BENCH_SCHEMA, schema ? schema : "none");
    return false;
}

static void describe(FILE *f, const char *which, json_t *doc)
{
    const char *filter = json_string_value(json_object_get(doc, "filter"));
    fprintf(f, "%s: %s run, %lld repetitions, arrays of %.0f MiB%s%s%s\n", which,
            json_is_true(json_object_get(doc, "quick")) ? "a quick" : "a full",
            json_integer_value(json_object_get(doc, "reps")),
            (double)json_integer_value(json_object_get(doc, "array_bytes")) / 1048576.0,
            filter ? ", rows matching '" : "", filter ? filter : "", filter ? "'" : "");
}

int tly_h_bench_compare(json_t *old, json_t *new, double tolerance, FILE *f)
{
    if (!tly_h_bench_is_doc(old, "--compare", "OLD") || !tly_h_bench_is_doc(new, "--compare", "NEW"))
        return -1;
    struct ctx c = {.f = f, .tolerance = tolerance};
    describe(f, "OLD", old);
    describe(f, "NEW", new);
    if (json_integer_value(json_object_get(old, "array_bytes")) !=
        json_integer_value(json_object_get(new, "array_bytes")))
        fprintf(f, "(different arrays: GB/s is not compared, ratios are)\n");
    compare_rows(&c, json_object_get(old, "rows"), json_object_get(new, "rows"));
    compare_rows(&c, json_object_get(old, "scaling"), json_object_get(new, "scaling"));
    fprintf(f,
            "%d figures compared: %d agree (their ranges overlap), %d apart within the tolerance (%.0f%%), %d "
            "regressions, %d improvements (ratios), %d GB/s moved (the machine's or the engine's: see the ratios); "
            "%d not compared (unstable, invalid or not measured in a run)\n",
            c.n.agree + c.n.apart + c.n.regressions + c.n.improvements + c.n.moved, c.n.agree, c.n.apart,
            100 * tolerance, c.n.regressions, c.n.improvements, c.n.moved, c.n.skipped);
    return c.n.regressions;
}

int tly_h_bench_compare_files(const char *old_path, const char *new_path, double tolerance)
{
    json_error_t je;
    json_t *docs[2] = {NULL, NULL};
    const char *paths[2] = {old_path, new_path};
    for (int i = 0; i < 2; i++) {
        if ((docs[i] = json_load_file(paths[i], 0, &je)) == NULL) {
            fprintf(stderr, "tally bench --compare: %s:%d: %s\n", paths[i], je.line, je.text);
            json_decref(docs[0]);
            return TLY_EXIT_ERROR;
        }
    }
    printf("tally bench --compare %s %s\n", old_path, new_path);
    int r = tly_h_bench_compare(docs[0], docs[1], tolerance, stdout);
    json_decref(docs[0]);
    json_decref(docs[1]);
    return r < 0 ? TLY_EXIT_ERROR : r > 0 ? TLY_EXIT_BUDGET : TLY_EXIT_OK;
}
