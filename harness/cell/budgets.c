/*
 * Budgets: the limits a cell's result must hold, as data beside the cells (scenarios/matrix.json).
 * Validated when the matrix is loaded (a typo is an error then, not a "(missing)" figure at the end
 * of a run), checked against a result when the cell has run.
 */
#include <math.h>
#include <string.h>

#include "cell/cell.h"
#include "harness.h"

/* The figures a budget may limit, at the top of a result, per stage, and per library (other stacks). */
static const char *const top_figures[] = {"extra_copies",        "peak_extra_ratio",   "peak_extra_bytes",
                                          "peak_bytes",          "chunks_read",        "store_bytes_read",
                                          "store_bytes_written", "read_amplification", NULL};
static const char *const stage_figures[] = {"allocs",     "alloc_bytes", "peak_bytes", "at_peak_bytes",
                                            "copy_bytes", "copies",      NULL};
static const char *const library_figures[] = {"allocs",       "alloc_bytes", "peak_bytes", "at_peak_bytes",
                                              "copied_bytes", "copies",      NULL};

static int limits(json_t *o, const char *where, const char *path, const char *const *figures)
{
    if (!json_is_object(o))
        return tly_fail(TLY_EFORMAT, "%s: budgets%s must be an object", where, path);
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        if (!tly_h_word_in(figures, k))
            return tly_fail(TLY_EFORMAT, "%s: budgets%s: unknown figure '%s'", where, path, k);
        if (!json_is_number(v))
            return tly_fail(TLY_EFORMAT, "%s: budgets%s.%s must be a number", where, path, k);
    }
    return 0;
}

int tly_h_budgets_validate(json_t *budgets, const char *where)
{
    if (!json_is_object(budgets))
        return tly_fail(TLY_EFORMAT, "%s: budgets must be an object", where);
    const char *k;
    json_t *v;
    json_object_foreach(budgets, k, v)
    {
        char path[160];
        if (strcmp(k, "sites") == 0) {
            int err = tly_h_budgets_sites_validate(v, where);
            if (err)
                return err;
        } else if (strcmp(k, "stages") == 0 || strcmp(k, "libraries") == 0) {
            bool stages = k[0] == 's';
            if (!json_is_object(v))
                return tly_fail(TLY_EFORMAT, "%s: budgets.%s must be an object", where, k);
            const char *name;
            json_t *lim;
            json_object_foreach(v, name, lim)
            {
                if (stages && tly_stage_from_name(name) < 0)
                    return tly_fail(TLY_EFORMAT, "%s: budgets.stages: unknown stage '%s'", where, name);
                snprintf(path, sizeof path, ".%s.%s", k, name);
                int err = limits(lim, where, path, stages ? stage_figures : library_figures);
                if (err)
                    return err;
            }
        } else if (!tly_h_word_in(top_figures, k)) {
            return tly_fail(TLY_EFORMAT, "%s: budgets: unknown figure '%s'", where, k);
        } else if (!json_is_number(v)) {
            return tly_fail(TLY_EFORMAT, "%s: budgets.%s must be a number", where, k);
        }
    }
    return 0;
}

/* One budget line: {name, stage | library, limit, actual, ok}. */
static void add_line(json_t *lines, const char *name, const char *owner_key, const char *owner, double limit,
                     json_t *actual, bool ok)
{
    json_t *line = json_pack("{s:s, s:f, s:o, s:b}", "name", name, "limit", limit, "actual",
                             json_is_number(actual) ? json_real(json_number_value(actual)) : json_null(), "ok", ok);
    json_object_set_new(line, "stage", owner && !strcmp(owner_key, "stages") ? json_string(owner) : json_null());
    if (owner && strcmp(owner_key, "libraries") == 0)
        json_object_set_new(line, "library", json_string(owner));
    json_array_append_new(lines, line);
}

/* Limits are maxima. Copy volumes are ratios: a little slack for their rounding. */
static bool within(const char *figure, json_t *actual, double limit)
{
    if (!json_is_number(actual))
        return false;
    double a = json_number_value(actual);
    return strcmp(figure, "copies") == 0 ? a <= limit + 1e-3 : a <= limit;
}

static void check_owners(json_t *budgets, json_t *result, const char *key, json_t *lines, bool *all_ok)
{
    const char *owner, *f;
    json_t *v, *lim;
    json_object_foreach(json_object_get(budgets, key), owner, v)
    {
        json_t *have = json_object_get(json_object_get(result, key), owner);
        json_object_foreach(v, f, lim)
        {
            /* a library that allocated and copied nothing is not in the result: its figures are 0 */
            json_t *actual = json_object_get(have, f);
            json_t *zero = !have && !strcmp(key, "libraries") ? json_integer(0) : NULL;
            bool ok = within(f, actual ? actual : zero, json_number_value(lim));
            add_line(lines, f, key, owner, json_number_value(lim), actual ? actual : zero, ok);
            json_decref(zero);
            *all_ok &= ok;
        }
    }
}

json_t *tly_h_check_budgets(json_t *budgets, json_t *result, bool *all_ok)
{
    json_t *lines = json_array();
    *all_ok = true;
    const char *k;
    json_t *v;
    json_object_foreach(budgets, k, v)
    {
        if (strcmp(k, "stages") == 0 || strcmp(k, "libraries") == 0 || strcmp(k, "sites") == 0)
            continue;
        json_t *actual = json_object_get(result, k);
        bool ok = within(k, actual, json_number_value(v));
        add_line(lines, k, "", NULL, json_number_value(v), actual, ok);
        *all_ok &= ok;
    }
    check_owners(budgets, result, "stages", lines, all_ok);
    check_owners(budgets, result, "libraries", lines, all_ok);
    json_t *sites = json_object_get(budgets, "sites");
    if (sites)
        tly_h_budgets_sites_check(sites, result, lines, all_ok);
    return lines;
}

bool tly_h_budget_next_failed(json_t *lines, size_t *i, char *buf, size_t cap)
{
    for (size_t n = json_array_size(lines); *i < n; ++*i) {
        json_t *line = json_array_get(lines, *i);
        if (json_is_true(json_object_get(line, "ok")))
            continue;
        tly_h_budget_line_text(line, buf, cap);
        ++*i;
        return true;
    }
    return false;
}

/* A figure or a limit: byte counts whole ("4194304", not "4.194e+06"), ratios to 6 digits, so that a
 * read amplification of 1.00013 over a limit of 1.0001 does not read "1 over 1". */
static void number_text(double v, char *buf, size_t cap)
{
    if (v == (double)(long long)v && fabs(v) < 1e15)
        snprintf(buf, cap, "%lld", (long long)v);
    else
        snprintf(buf, cap, "%.6g", v);
}

void tly_h_budget_line_text(json_t *line, char *buf, size_t cap)
{
    const char *stage = json_string_value(json_object_get(line, "stage"));
    const char *lib = json_string_value(json_object_get(line, "library"));
    const char *site = json_string_value(json_object_get(line, "site"));
    json_t *actual = json_object_get(line, "actual");
    char num[48], lim[32];
    double limit = json_number_value(json_object_get(line, "limit"));
    if (json_is_number(actual))
        number_text(json_number_value(actual), num, sizeof num);
    else if (site) /* a result without stacks */
        snprintf(num, sizeof num, "(missing: the result has no call stacks)");
    else /* a figure the cell does not have: another stack's store traffic, a write's read amplification */
        snprintf(num, sizeof num, "(missing: this cell does not measure it)");
    if (site) {
        number_text(limit, lim, sizeof lim);
        snprintf(buf, cap, "site '%s' %s = %s, limit %s", site, json_string_value(json_object_get(line, "name")), num,
                 lim);
        return;
    }
    number_text(limit, lim, sizeof lim);
    snprintf(buf, cap, "%s%s%s%s = %s, limit %s",
             stage ? "stage "
             : lib ? "library "
                   : "",
             stage ? stage
             : lib ? lib
                   : "",
             stage || lib ? " " : "", json_string_value(json_object_get(line, "name")), num, lim);
}
