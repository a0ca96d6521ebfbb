/*
 * results.json: a run's results with their provenance (schema, tally version, git commit, date,
 * host, allocator, build), loaded one file at a time or merged from the shards of one matrix.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "report/report.h"
#include "tally/tally.h"

json_t *tly_h_results_new(const char *matrix, size_t cells_total, const char *filter, const char *shard)
{
    char date[32];
    tly_h_utc_date(time(NULL), date);
    const char *alloc = tly_mem_allocator_version();
    json_t *doc = json_pack(
        "{s:s, s:s, s:s, s:o, s:o, s:s, s:b, s:o, s:s, s:I, s:o, s:o}", "schema", TLY_H_RESULTS_SCHEMA, "tally_version",
        tly_version(), "date", date, "host", tly_h_host_json(), "jemalloc_version",
        alloc ? json_string(alloc) : json_null(), "build_type", TALLY_BUILD_TYPE, "tracking", tly_mem_tracking(),
        "untracked_reason", tly_mem_tracking() ? json_null() : json_string(tly_mem_untracked_reason()), "matrix",
        matrix, "cells_total", (json_int_t)cells_total, "filter", filter ? json_string(filter) : json_null(), "shard",
        shard ? json_string(shard) : json_null());
    tly_h_git_state(doc);
    json_object_set_new(doc, "results", json_array());
    return doc;
}

json_t *tly_h_results_list(json_t *doc)
{
    return json_object_get(doc, "results");
}

/* DIR/results.json, or the file itself when @p path names one. */
static json_t *load_one(const char *path, const char *cmd)
{
    char file[TLY_H_PATH];
    size_t n = strlen(path);
    bool is_file = n > 5 && strcmp(path + n - 5, ".json") == 0;
    if (tly_h_pathf(file, is_file ? "%s" : "%s/results.json", path) != 0) {
        tly_h_fail_cmd(cmd, TLY_EUSAGE);
        return NULL;
    }
    json_error_t je;
    json_t *doc = json_load_file(file, JSON_REJECT_DUPLICATES, &je);
    const char *why = NULL;
    char buf[300];
    char shown[sizeof buf];
    if (doc == NULL) {
        snprintf(buf, sizeof buf, "%s", tly_h_term(shown, sizeof shown, je.text)); /* it may quote the file */
        why = buf;
    } else if (json_is_array(doc)) {
        why = "results of an older tally (a bare list, schema 1): run the matrix again with this tally";
    } else if (!json_is_string(json_object_get(doc, "schema")) ||
               strcmp(json_string_value(json_object_get(doc, "schema")), TLY_H_RESULTS_SCHEMA) != 0) {
        snprintf(buf, sizeof buf, "schema '%s', this tally reads '%s'",
                 json_is_string(json_object_get(doc, "schema"))
                     ? tly_h_term(shown, 64, json_string_value(json_object_get(doc, "schema")))
                     : "(none)",
                 TLY_H_RESULTS_SCHEMA);
        why = buf;
    } else if (!json_is_array(json_object_get(doc, "results"))) {
        why = "no list of results";
    }
    if (why) {
        fprintf(stderr, "tally %s: %s: %s\n", cmd, file, why);
        json_decref(doc);
        return NULL;
    }
    if (tly_h_results_validate(doc, file) != 0) {
        fprintf(stderr, "tally %s: %s\n", cmd, tly_errmsg());
        json_decref(doc);
        return NULL;
    }
    return doc;
}

static const char *str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* Shards merge when they are of one matrix, one tally and one commit. */
static const char *mismatch(json_t *a, json_t *b)
{
    static const char *const same[] = {"tally_version", "git_commit", "matrix", "cells_total", NULL};
    for (int i = 0; same[i]; i++)
        if (!json_equal(json_object_get(a, same[i]) ? json_object_get(a, same[i]) : json_null(),
                        json_object_get(b, same[i]) ? json_object_get(b, same[i]) : json_null()))
            return same[i];
    return NULL;
}

static int by_cell(const void *x, const void *y)
{
    json_t *a = *(json_t *const *)x, *b = *(json_t *const *)y;
    json_int_t ia = json_integer_value(json_object_get(a, "index")),
               ib = json_integer_value(json_object_get(b, "index"));
    if (ia != ib)
        return ia < ib ? -1 : 1;
    json_int_t ka = json_integer_value(json_object_get(a, "impl_index"));
    json_int_t kb = json_integer_value(json_object_get(b, "impl_index"));
    return ka < kb ? -1 : ka > kb;
}

/* The results of @p docs in matrix order, each cell (impl, scenario) once; NULL after saying why. */
static json_t *merge(json_t **docs, int n, char **paths, const char *cmd)
{
    json_t *all = json_array(), *seen = json_object();
    for (int i = 0; i < n; i++) {
        size_t k;
        json_t *e;
        json_array_foreach(tly_h_results_list(docs[i]), k, e)
        {
            char key[512];
            snprintf(key, sizeof key, "%s/%s", json_string_value(json_object_get(e, "impl")) ? str(e, "impl") : "tally",
                     str(e, "scenario"));
            if (json_object_get(seen, key)) {
                char shown[sizeof key * 4];
                fprintf(stderr, "tally %s: %s: cell %s is also in %s\n", cmd, paths[i],
                        tly_h_term(shown, sizeof shown, key), json_string_value(json_object_get(seen, key)));
                json_decref(all);
                json_decref(seen);
                return NULL;
            }
            json_object_set_new(seen, key, json_string(paths[i]));
            json_array_append(all, e);
        }
    }
    json_decref(seen);
    size_t total = json_array_size(all);
    json_t **v = calloc(total ? total : 1, sizeof *v);
    for (size_t k = 0; k < total; k++)
        v[k] = json_incref(json_array_get(all, k));
    qsort(v, total, sizeof *v, by_cell);
    json_array_clear(all);
    for (size_t k = 0; k < total; k++)
        json_array_append_new(all, v[k]);
    free(v);
    return all;
}

json_t *tly_h_results_load(char **paths, int n, const char *cmd)
{
    json_t **docs = calloc((size_t)n, sizeof *docs), *out = NULL;
    int ok = 0;
    for (; ok < n && (docs[ok] = load_one(paths[ok], cmd)) != NULL; ok++) {
        const char *field = ok ? mismatch(docs[0], docs[ok]) : NULL;
        if (field) {
            fprintf(stderr, "tally %s: %s and %s are not shards of one run: their %s differ\n", cmd, paths[0],
                    paths[ok], field);
            json_decref(docs[ok]);
            break;
        }
    }
    if (ok == n) {
        json_t *list = n == 1 ? json_incref(tly_h_results_list(docs[0])) : merge(docs, n, paths, cmd);
        if (list) {
            out = json_copy(docs[0]);
            json_object_set_new(out, "results", list);
            if (n > 1) {
                json_object_set_new(out, "shard", json_null());
                json_t *from = json_array();
                for (int i = 0; i < n; i++)
                    json_array_append_new(from, json_string(paths[i]));
                json_object_set_new(out, "merged_from", from);
            }
        }
    }
    for (int i = 0; i < ok; i++)
        json_decref(docs[i]);
    free(docs);
    return out;
}
