/* The scenario matrix: loaded, validated, expanded into cells with their budgets (see matrix.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cell/cell.h"
#include "harness.h"
#include "report/report.h"
#include "run/matrix.h"

static const char *const axis_names[] = {"op", "store", "codec", "format", "layout", NULL};
#define NAXES 5

static const char *const top_keys[] = {"about",   "axes",      "layouts",      "codecs",
                                       "data",    "threads",   "memory_limit", "memory_limit_about",
                                       "budgets", "scenarios", "impls",        NULL};
static const char *const impl_keys[] = {"command", "about", "sharded_fixture", "s3_fixture", NULL};
static const char *const layout_keys[] = {"dtype",  "shape",          "chunks",  "about", "inner_chunks",
                                          "region", "index_location", "formats", "ops",   NULL};
static const char *const when_keys[] = {"op", "store", "codec", "format", "layout", "impl", "scenario", NULL};

static int only_keys(json_t *o, const char *const *allowed, const char *path, const char *where)
{
    if (!json_is_object(o))
        return tly_fail(TLY_EFORMAT, "%s: %s must be an object", path, where);
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        if (!tly_h_word_in(allowed, k))
            return tly_fail(TLY_EFORMAT, "%s: %s: unknown key '%s'", path, where, k);
    }
    return 0;
}

/* Rule @p r: "when" names axes with string values; its limits are budgets. */
static int check_rule(json_t *r, const char *path, size_t i)
{
    char where[64];
    snprintf(where, sizeof where, "budgets[%zu]", i);
    if (!json_is_object(r))
        return tly_fail(TLY_EFORMAT, "%s: %s must be an object", path, where);
    json_t *when = json_object_get(r, "when");
    int err = when ? only_keys(when, when_keys, path, where) : 0;
    if (err)
        return err;
    const char *k;
    json_t *v;
    json_object_foreach(when, k, v)
    {
        if (!json_is_string(v))
            return tly_fail(TLY_EFORMAT, "%s: %s.when.%s must be a string", path, where, k);
    }
    json_t *limits = json_deep_copy(r);
    json_object_del(limits, "when");
    json_object_del(limits, "about");
    char full[TLY_H_PATH];
    snprintf(full, sizeof full, "%s: %s", path, where);
    err = tly_h_budgets_validate(limits, full);
    json_decref(limits);
    return err;
}

static bool rule_matches(json_t *when, json_t *cell)
{
    const char *impl = json_string_value(json_object_get(cell, "impl"));
    const char *want = json_string_value(json_object_get(when, "impl"));
    /* a rule that names no implementation governs tally's own cells */
    if (strcmp(impl ? impl : "tally", want ? want : "tally") != 0)
        return false;
    const char *k;
    json_t *v;
    json_object_foreach(when, k, v)
    {
        json_t *have = json_object_get(cell, k);
        if (strcmp(k, "impl") != 0 && (!have || !json_equal(have, v)))
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
        if (strcmp(k, "stages") == 0 || strcmp(k, "libraries") == 0) {
            json_t *st = json_object_get(budgets, k);
            if (!st)
                json_object_set_new(budgets, k, st = json_object());
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

json_t *tly_h_rules_budgets(json_t *rules, json_t *cell)
{
    json_t *budgets = json_object();
    size_t i;
    json_t *r;
    json_array_foreach(rules, i, r)
    {
        if (rule_matches(json_object_get(r, "when"), cell))
            merge_limits(budgets, r);
    }
    return budgets;
}

/* The cell at position @p k of the axes' product (the last axis varies fastest). */
static json_t *product_cell(json_t *const *ax, const size_t *n, size_t k)
{
    json_t *cell = json_object();
    for (int a = NAXES - 1; a >= 0; a--) {
        json_object_set(cell, axis_names[a], json_array_get(ax[a], k % n[a]));
        k /= n[a];
    }
    return cell;
}

/* Fill the cell's array and settings from its layout and codec, and name it. */
static int complete_cell(json_t *m, json_t *cell, const char *path)
{
    const char *layout = json_string_value(json_object_get(cell, "layout"));
    const char *codec = json_string_value(json_object_get(cell, "codec"));
    json_t *lay = json_object_get(json_object_get(m, "layouts"), layout ? layout : "");
    json_t *spec = json_object_get(json_object_get(m, "codecs"), codec ? codec : "");
    if (!json_is_object(lay) || !json_is_string(spec))
        return tly_fail(TLY_EFORMAT, "%s: layout '%s' or codec '%s' is not defined", path, layout ? layout : "?",
                        codec ? codec : "?");
    int err = only_keys(lay, layout_keys, path, "a layout");
    if (err)
        return err;
    char name[256];
    snprintf(name, sizeof name, "%s-%s-%s-%s-%s", json_string_value(json_object_get(cell, "op")),
             json_string_value(json_object_get(cell, "store")), codec,
             json_string_value(json_object_get(cell, "format")), layout);
    if (tly_h_text_has_controls(name)) /* it names the cell in every report and on the terminal */
        return tly_fail(TLY_EFORMAT,
                        "%s: cell names may not hold control characters (an axis value or a layout's name)", path);
    json_object_set_new(cell, "scenario", json_string(name));
    json_object_set(cell, "codec_spec", spec);
    json_object_set(cell, "dtype", json_object_get(lay, "dtype"));
    json_object_set(cell, "shape", json_object_get(lay, "shape"));
    json_object_set(cell, "chunks", json_object_get(lay, "chunks"));
    static const char *const optional[] = {"inner_chunks", "index_location", "region"};
    for (size_t i = 0; i < sizeof optional / sizeof optional[0]; i++)
        if (json_object_get(lay, optional[i]))
            json_object_set(cell, optional[i], json_object_get(lay, optional[i]));
    json_t *threads = json_object_get(m, "threads"), *mem = json_object_get(m, "memory_limit");
    if (threads)
        json_object_set(cell, "threads", threads);
    if (mem)
        json_object_set(cell, "memory_limit", mem);
    return 0;
}

/* A layout may name the formats and ops it is for ("formats": ["v3"] for sharding, "ops": ["read"]
 * for a region): the product's other cells with it are not made. */
static bool layout_allows(json_t *m, json_t *cell)
{
    json_t *lay = json_object_get(json_object_get(m, "layouts"), json_string_value(json_object_get(cell, "layout")));
    static const char *const axes[][2] = {{"formats", "format"}, {"ops", "op"}};
    for (int i = 0; i < 2; i++) {
        json_t *list = json_object_get(lay, axes[i][0]), *v;
        size_t j;
        bool found = list == NULL;
        json_array_foreach(list, j, v)
        {
            found = found || json_equal(v, json_object_get(cell, axes[i][1]));
        }
        if (!found)
            return false;
    }
    return true;
}

static int expand_matrix(json_t *m, const char *path, json_t *cells)
{
    json_t *axes = json_object_get(m, "axes");
    if (!json_is_object(json_object_get(m, "layouts")) || !json_is_object(json_object_get(m, "codecs")))
        return tly_fail(TLY_EFORMAT, "%s: needs objects 'axes', 'layouts' and 'codecs'", path);
    int err = only_keys(axes, axis_names, path, "axes");
    if (err)
        return err;
    json_t *ax[NAXES];
    size_t n[NAXES], total = 1;
    for (int a = 0; a < NAXES; a++) {
        ax[a] = json_object_get(axes, axis_names[a]);
        if (!json_is_array(ax[a]) || json_array_size(ax[a]) == 0)
            return tly_fail(TLY_EFORMAT, "%s: axis '%s' must be a non-empty list", path, axis_names[a]);
        n[a] = json_array_size(ax[a]);
        total *= n[a];
    }
    for (size_t k = 0; k < total && !err; k++) {
        json_t *cell = product_cell(ax, n, k);
        err = complete_cell(m, cell, path);
        if (!err && layout_allows(m, cell))
            json_array_append(cells, cell);
        json_decref(cell);
    }
    return err;
}

/* The directory of file @p path (relative paths in the file are relative to it). */
static void dir_of(const char *path, char *dir)
{
    snprintf(dir, TLY_H_PATH, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, TLY_H_PATH, ".");
}

/* Custom scenarios: {"scenarios": [{"scenario": NAME, "program": PATH, ..., "budgets": {...}}]}. */
static int add_programs(json_t *m, const char *path, json_t *cells)
{
    char dir[TLY_H_PATH];
    dir_of(path, dir);
    json_t *list = json_object_get(m, "scenarios");
    if (list && !json_is_array(list))
        return tly_fail(TLY_EFORMAT, "%s: 'scenarios' must be a list", path);
    size_t i;
    json_t *s;
    json_array_foreach(list, i, s)
    {
        const char *prog = json_string_value(json_object_get(s, "program"));
        if (!json_is_object(s) || !prog)
            return tly_fail(TLY_EFORMAT, "%s: scenarios[%zu] needs 'scenario' and 'program'", path, i);
        const char *sc = json_string_value(json_object_get(s, "scenario"));
        if (sc && tly_h_text_has_controls(sc))
            return tly_fail(TLY_EFORMAT, "%s: scenarios[%zu].scenario holds a control character", path, i);
        char full[TLY_H_PATH];
        /* "@NAME": a program built next to the tally command; else a path relative to the file */
        int err = prog[0] == '@' ? tly_h_pathf(full, "%s/%s", tly_h_self_dir(), prog + 1)
                                 : tly_h_pathf(full, "%s/%s", dir, prog);
        if (err)
            return err;
        json_t *cell = json_deep_copy(s);
        json_object_set_new(cell, "program_path", json_string(full));
        json_array_append_new(cells, cell);
    }
    return 0;
}

/* Number the cells, give each its budgets, and validate it as a cell. */
static int finish_cells(json_t *m, const char *path, json_t *cells)
{
    json_t *rules = json_object_get(m, "budgets");
    if (rules && !json_is_array(rules))
        return tly_fail(TLY_EFORMAT, "%s: 'budgets' must be a list of rules", path);
    size_t i;
    json_t *c;
    json_array_foreach(rules, i, c)
    {
        int err = check_rule(c, path, i);
        if (err)
            return err;
    }
    json_array_foreach(cells, i, c)
    {
        json_object_set_new(c, "index", json_integer((json_int_t)i));
        if (!json_object_get(c, "budgets"))
            json_object_set_new(c, "budgets", tly_h_rules_budgets(rules, c));
        char where[TLY_H_PATH];
        snprintf(where, sizeof where, "%s: cell '%s'", path, json_string_value(json_object_get(c, "scenario")));
        struct tly_h_cell parsed;
        int err = tly_h_cell_parse(c, where, &parsed);
        if (err)
            return err;
        tly_h_cell_release(&parsed);
    }
    return 0;
}

/* A command word: "@NAME" is built next to tally; a relative path with a slash is relative to the file. */
static int resolve_word(const char *w, const char *dir, json_t *out)
{
    char full[TLY_H_PATH];
    int err = 0;
    if (w[0] == '@')
        err = tly_h_pathf(full, "%s/%s", tly_h_self_dir(), w + 1);
    else if (w[0] != '/' && strchr(w, '/'))
        err = tly_h_pathf(full, "%s/%s", dir, w);
    else
        snprintf(full, sizeof full, "%s", w);
    if (!err)
        json_array_append_new(out, json_string(full));
    return err;
}

/* "impls": {NAME: {"command": [WORD...], "about": TEXT}}: validated, commands resolved. */
static int load_impls(json_t *m, const char *path, json_t **out)
{
    char dir[TLY_H_PATH];
    dir_of(path, dir);
    json_t *impls = json_object_get(m, "impls");
    *out = json_object();
    if (impls == NULL)
        return 0;
    if (!json_is_object(impls))
        return tly_fail(TLY_EFORMAT, "%s: 'impls' must be an object", path);
    const char *name;
    json_t *v;
    json_object_foreach(impls, name, v)
    {
        char where[300];
        snprintf(where, sizeof where, "impls.%s", name);
        int err = only_keys(v, impl_keys, path, where);
        if (err)
            return err;
        if (strcmp(name, "tally") == 0 || strchr(name, '/') || !*name || tly_h_text_has_controls(name))
            return tly_fail(TLY_EFORMAT, "%s: impl name '%s' is taken, has a '/' or a control character", path,
                            tly_h_text_has_controls(name) ? "(not shown)" : name);
        json_t *cmd = json_object_get(v, "command"), *words = json_array();
        size_t i;
        json_t *w;
        err = json_is_array(cmd) && json_array_size(cmd) > 0 && json_array_size(cmd) < 8
                  ? 0
                  : tly_fail(TLY_EFORMAT, "%s: %s.command must be a list of 1 to 7 words", path, where);
        json_array_foreach(cmd, i, w)
        {
            if (!err)
                err = json_is_string(w) ? resolve_word(json_string_value(w), dir, words)
                                        : tly_fail(TLY_EFORMAT, "%s: %s.command[%zu] must be a string", path, where, i);
        }
        if (err) {
            json_decref(words);
            return err;
        }
        json_t *fx = json_object_get(v, "sharded_fixture"), *s3fx = json_object_get(v, "s3_fixture");
        if ((fx && !json_is_boolean(fx)) || (s3fx && !json_is_boolean(s3fx))) {
            json_decref(words);
            return tly_fail(TLY_EFORMAT, "%s: %s.sharded_fixture and s3_fixture must be true or false", path, where);
        }
        json_object_set_new(*out, name,
                            json_pack("{s:o, s:O, s:b, s:b}", "command", words, "about",
                                      json_object_get(v, "about") ? json_object_get(v, "about") : json_string(""),
                                      "sharded_fixture", json_is_true(fx), "s3_fixture", json_is_true(s3fx)));
    }
    return 0;
}

int tly_h_matrix_load(const char *path, struct tly_h_matrix *mx)
{
    memset(mx, 0, sizeof *mx);
    snprintf(mx->path, sizeof mx->path, "%s", path);
    json_error_t je;
    json_t *m = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (m == NULL)
        return tly_fail(TLY_EFORMAT, "%s:%d:%d: %s", path, je.line, je.column, je.text);
    json_t *cells = json_array();
    int err = only_keys(m, top_keys, path, "the matrix");
    if (!err && json_object_get(m, "axes"))
        err = expand_matrix(m, path, cells);
    if (!err)
        err = add_programs(m, path, cells);
    if (!err)
        err = finish_cells(m, path, cells);
    if (!err)
        err = load_impls(m, path, &mx->impls);
    mx->rules = json_incref(json_object_get(m, "budgets"));
    mx->cells = cells;
    json_decref(m);
    if (err)
        tly_h_matrix_free(mx);
    return err;
}

void tly_h_matrix_free(struct tly_h_matrix *m)
{
    json_decref(m->cells);
    json_decref(m->rules);
    json_decref(m->impls);
    m->cells = m->rules = m->impls = NULL;
}

json_t *tly_h_matrix_cell_for(const struct tly_h_matrix *m, json_t *cell, const char *impl, int impl_index)
{
    json_t *c = json_copy(cell);
    json_object_set_new(c, "impl", json_string(impl));
    json_object_set_new(c, "impl_index", json_integer(impl_index));
    if (strcmp(impl, "tally") != 0)
        json_object_set_new(c, "budgets", tly_h_rules_budgets(m->rules, c));
    return c;
}

void tly_h_matrix_default(char *out)
{
    tly_h_project_file("scenarios/matrix.json", out);
}
