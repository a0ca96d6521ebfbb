/*
 * Scenarios: the matrix file expanded into cells (one JSON object each, what a child process
 * runs), their budgets resolved from the rules that match them, and budgets checked against a
 * result.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tally/error.h"
#include "harness.h"
#include "scenario.h"

static const char *const axis_names[] = {"op", "store", "codec", "format", "layout"};
#define NAXES 5

static bool rule_matches(json_t *when, json_t *cell)
{
    const char *k;
    json_t *v;
    json_object_foreach(when, k, v)
    {
        json_t *have = json_object_get(cell, k);
        if (!have || !json_equal(have, v))
            return false;
    }
    return true;
}

/* Merge rule @p r's limits into @p budgets (later rules override earlier ones, figure by figure). */
static void merge_limits(json_t *budgets, json_t *r)
{
    const char *k;
    json_t *v;
    json_object_foreach(r, k, v)
    {
        if (strcmp(k, "when") == 0 || strcmp(k, "about") == 0)
            continue;
        if (strcmp(k, "stages") == 0) {
            json_t *st = json_object_get(budgets, "stages");
            if (!st)
                json_object_set_new(budgets, "stages", st = json_object());
            const char *sk;
            json_t *sv;
            json_object_foreach(v, sk, sv)
            {
                json_t *one = json_object_get(st, sk);
                if (!one)
                    json_object_set_new(st, sk, one = json_object());
                json_object_update(one, sv);
            }
        } else {
            json_object_set(budgets, k, v);
        }
    }
}

json_t *tly_h_cell_budgets(json_t *rules, json_t *cell)
{
    json_t *budgets = json_object();
    size_t i;
    json_t *r;
    json_array_foreach(rules, i, r)
    {
        json_t *when = json_object_get(r, "when");
        if (!when || rule_matches(when, cell))
            merge_limits(budgets, r);
    }
    return budgets;
}

static int expand_matrix(json_t *m, const char *path, json_t *cells)
{
    json_t *axes = json_object_get(m, "axes"), *layouts = json_object_get(m, "layouts");
    json_t *codecs = json_object_get(m, "codecs"), *rules = json_object_get(m, "budgets");
    if (!json_is_object(axes) || !json_is_object(layouts) || !json_is_object(codecs))
        return tly_fail(TLY_EFORMAT, "%s: needs objects 'axes', 'layouts' and 'codecs'", path);
    json_t *ax[NAXES];
    size_t n[NAXES], total = 1;
    for (int a = 0; a < NAXES; a++) {
        ax[a] = json_object_get(axes, axis_names[a]);
        if (!json_is_array(ax[a]) || json_array_size(ax[a]) == 0)
            return tly_fail(TLY_EFORMAT, "%s: axis '%s' must be a non-empty list", path, axis_names[a]);
        n[a] = json_array_size(ax[a]);
        total *= n[a];
    }
    for (size_t k = 0; k < total; k++) {
        json_t *cell = json_object();
        size_t rem = k;
        for (int a = NAXES - 1; a >= 0; a--) {
            json_object_set(cell, axis_names[a], json_array_get(ax[a], rem % n[a]));
            rem /= n[a];
        }
        const char *layout = json_string_value(json_object_get(cell, "layout"));
        const char *codec = json_string_value(json_object_get(cell, "codec"));
        json_t *lay = json_object_get(layouts, layout ? layout : "");
        json_t *spec = json_object_get(codecs, codec ? codec : "");
        if (!json_is_object(lay) || !json_is_string(spec)) {
            json_decref(cell);
            return tly_fail(TLY_EFORMAT, "%s: layout '%s' or codec '%s' is not defined", path, layout, codec);
        }
        char name[256];
        snprintf(name, sizeof name, "%s-%s-%s-%s-%s", json_string_value(json_object_get(cell, "op")),
                 json_string_value(json_object_get(cell, "store")), codec,
                 json_string_value(json_object_get(cell, "format")), layout);
        json_object_set_new(cell, "scenario", json_string(name));
        json_object_set(cell, "codec_spec", spec);
        json_object_set(cell, "dtype", json_object_get(lay, "dtype"));
        json_object_set(cell, "shape", json_object_get(lay, "shape"));
        json_object_set(cell, "chunks", json_object_get(lay, "chunks"));
        json_object_set_new(cell, "threads", json_integer(json_integer_value(json_object_get(m, "threads"))));
        json_object_set_new(cell, "memory_limit", json_integer(json_integer_value(json_object_get(m, "memory_limit"))));
        json_object_set_new(cell, "budgets", tly_h_cell_budgets(rules, cell));
        json_array_append_new(cells, cell);
    }
    return 0;
}

/* Custom scenarios: {"scenarios": [{"scenario": NAME, "program": PATH, ... , "budgets": {...}}]} */
static int add_programs(json_t *m, const char *path, const char *dir, json_t *cells)
{
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(m, "scenarios"), i, s)
    {
        const char *name = json_string_value(json_object_get(s, "scenario"));
        const char *prog = json_string_value(json_object_get(s, "program"));
        if (!name || !prog)
            return tly_fail(TLY_EFORMAT, "%s: scenario %zu needs 'scenario' and 'program'", path, i);
        json_t *cell = json_deep_copy(s);
        char *full, self[4096];
        snprintf(self, sizeof self, "%s", tly_h_self());
        char *slash = strrchr(self, '/');
        if (slash)
            *slash = '\0';
        /* "@NAME": a program built next to the tally command; else a path relative to the file */
        if ((prog[0] == '@' ? asprintf(&full, "%s/%s", self, prog + 1) : asprintf(&full, "%s/%s", dir, prog)) < 0) {
            json_decref(cell);
            return tly_fail(-12, "out of memory");
        }
        json_object_set_new(cell, "program_path", json_string(full));
        free(full);
        if (!json_object_get(cell, "budgets"))
            json_object_set_new(cell, "budgets", json_object());
        json_array_append_new(cells, cell);
    }
    return 0;
}

int tly_h_scenarios_load(const char *path, json_t **out)
{
    json_error_t je;
    json_t *m = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (m == NULL)
        return tly_fail(TLY_EFORMAT, "%s:%d:%d: %s", path, je.line, je.column, je.text);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    json_t *cells = json_array();
    int err = json_object_get(m, "axes") ? expand_matrix(m, path, cells) : 0;
    if (!err)
        err = add_programs(m, path, dir, cells);
    json_decref(m);
    if (err) {
        json_decref(cells);
        return err;
    }
    *out = cells;
    return 0;
}

/* One budget line: {name, stage, limit, actual, ok}. */
static void add_line(json_t *lines, const char *name, const char *stage, double limit, json_t *actual, bool ok)
{
    json_t *a = json_is_number(actual) ? json_real(json_number_value(actual)) : json_null();
    json_array_append_new(lines,
                          json_pack("{s:s, s:o, s:f, s:o, s:b}", "name", name, "stage",
                                    stage ? json_string(stage) : json_null(), "limit", limit, "actual", a, "ok", ok));
}

static double num(json_t *v)
{
    return json_is_integer(v) ? (double)json_integer_value(v) : json_real_value(v);
}

/* Limits are maxima. Copies compare with a little slack for rounding (copy volumes are ratios). */
static bool within(const char *figure, double actual, double limit)
{
    if (strcmp(figure, "copies") == 0)
        return actual <= limit + 1e-3;
    return actual <= limit;
}

json_t *tly_h_check_budgets(json_t *budgets, json_t *result, bool *all_ok)
{
    json_t *lines = json_array();
    *all_ok = true;
    const char *k;
    json_t *v;
    json_object_foreach(budgets, k, v)
    {
        if (strcmp(k, "stages") == 0)
            continue;
        json_t *actual = json_object_get(result, k);
        bool ok = json_is_number(actual) && within(k, num(actual), num(v));
        add_line(lines, k, NULL, num(v), actual, ok);
        *all_ok &= ok;
    }
    json_t *stages = json_object_get(result, "stages");
    json_object_foreach(json_object_get(budgets, "stages"), k, v)
    {
        const char *f;
        json_t *lim;
        json_object_foreach(v, f, lim)
        {
            json_t *actual = json_object_get(json_object_get(stages, k), f);
            bool ok = json_is_number(actual) && within(f, num(actual), num(lim));
            add_line(lines, f, k, num(lim), actual, ok);
            *all_ok &= ok;
        }
    }
    return lines;
}
