/*
 * The schema of results files (docs/design.md, "The figures every report shares"): a result, a
 * results document and a baseline checked before a report, the gate or `check --update` uses them.
 * Numbers finite and in range, counts non-negative integers, names without control characters,
 * each cell once; a file that fails is an error naming the file, the cell and the key.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "report/report.h"
#include "tally/tally.h"
/* ---- the schema of a result (docs/design.md, "The figures every report shares") ---- */

/* Bounds that keep every sum and product a report or the gate makes of a figure finite (x 1e6 for
 * Perfetto's microseconds, x 1e5 for the gate's rounding), far above anything measured. */
#define RATIO_MAX 1e15     /* arrays: a ratio, a copy volume, a read amplification */
#define SECONDS_MAX 1e9    /* 31 years */
#define RATE_MAX 1e18      /* bytes per second */
#define NAME_MAX_BYTES 200 /* a cell's, stage's or library's name: two fit the reports' 512-byte keys */

enum kind {
    COUNT,        /* a non-negative integer */
    BYTES,        /* a non-negative integer of bytes */
    SIGNED_BYTES, /* an integer of bytes: a difference (per-stage live bytes are charged to the freeing thread) */
    RATIO,        /* a finite number, 0 .. RATIO_MAX */
    EXTRA_RATIO,  /* peak_extra_ratio: -1 .. RATIO_MAX (a whole-process profile takes one array off the peak) */
    SECONDS,      /* a finite number, 0 .. SECONDS_MAX */
    RATE,         /* a finite number, 0 .. RATE_MAX */
    FLAG,         /* true or false */
    NAME,         /* an identifier: 1..NAME_MAX_BYTES bytes, no control character */
    TEXT,         /* a string (a reason, a sentence): shown escaped */
    STATUS,       /* a cell's status: ok, skipped, failed, untracked, program_failed (tally profile) */
};

struct rule {
    const char *key;
    enum kind kind;
    bool nullable;
};

struct where {
    const char *file;
    char cell[NAME_MAX_BYTES * 2 + 2];
};

/* The error: "FILE: cell CELL: key 'KEY': WHY", its names shown escaped (they may be what is wrong). */
static int refuse(const struct where *w, const char *key, const char *why)
{
    char c[sizeof w->cell * 4], k[1024];
    return tly_fail(TLY_EFORMAT, "%s: cell %s: key '%s': %s", w->file, tly_h_term(c, sizeof c, w->cell),
                    tly_h_term(k, sizeof k, key), why);
}

/* @p v as the error shows it: a number as itself, a string quoted and escaped (its first bytes), else
 * its JSON type. */
static void shown(json_t *v, char *buf, size_t cap)
{
    char text[80];
    if (json_is_number(v))
        snprintf(buf, cap, "%.17g", json_number_value(v));
    else if (json_is_string(v))
        snprintf(buf, cap, "'%s'", tly_h_term(text, sizeof text, json_string_value(v)));
    else
        snprintf(buf, cap, "%s",
                 json_is_string(v)    ? "a string"
                 : json_is_null(v)    ? "null"
                 : json_is_boolean(v) ? (json_is_true(v) ? "true" : "false")
                 : json_is_array(v)   ? "a list"
                                      : "an object");
}

static bool number_in(json_t *v, double lo, double hi)
{
    double x = json_number_value(v);
    return json_is_number(v) && isfinite(x) && x >= lo && x <= hi;
}

/* Why @p s is not a name (NULL when it is). */
static const char *name_error(const char *s)
{
    if (!*s || strlen(s) > NAME_MAX_BYTES)
        return "is not a name (a string of 1 to 200 bytes)";
    return tly_h_text_has_controls(s) ? "has a control character" : NULL;
}

/* Why @p v is not of @p kind (NULL when it is). */
static const char *kind_error(json_t *v, enum kind kind)
{
    const char *s = json_string_value(v);
    switch (kind) {
    case COUNT:
        return json_is_integer(v) && json_integer_value(v) >= 0 ? NULL : "is not a count (a non-negative integer)";
    case BYTES:
        return json_is_integer(v) && json_integer_value(v) >= 0 ? NULL : "is not bytes (a non-negative integer)";
    case SIGNED_BYTES:
        return json_is_integer(v) ? NULL : "is not bytes (an integer)";
    case RATIO:
        return number_in(v, 0, RATIO_MAX) ? NULL : "is not a ratio (a number from 0 to 1e15)";
    case EXTRA_RATIO:
        return number_in(v, -1, RATIO_MAX) ? NULL : "is not a ratio (a number from -1 to 1e15)";
    case SECONDS:
        return number_in(v, 0, SECONDS_MAX) ? NULL : "is not seconds (a number from 0 to 1e9)";
    case RATE:
        return number_in(v, 0, RATE_MAX) ? NULL : "is not bytes per second (a number from 0 to 1e18)";
    case FLAG:
        return json_is_boolean(v) ? NULL : "is not true or false";
    case TEXT:
        return s && strlen(s) == json_string_length(v) ? NULL : "is not a string (without NUL)";
    case NAME:
    case STATUS:
        if (!s || strlen(s) != json_string_length(v))
            return "is not a name (a string of 1 to 200 bytes)";
        if (name_error(s))
            return name_error(s);
        if (kind == STATUS && strcmp(s, "ok") && strcmp(s, "skipped") && strcmp(s, "failed") &&
            strcmp(s, "untracked") && strcmp(s, "program_failed"))
            return "is not a status (ok, skipped, failed, untracked or program_failed)";
        return NULL;
    }
    return "is of no known kind";
}

/* @p v (at @p key) against @p kind; absent is no error here. */
static int check_value(const struct where *w, const char *key, json_t *v, enum kind kind, bool nullable)
{
    if (v == NULL || (nullable && json_is_null(v)))
        return 0;
    const char *why = kind_error(v, kind);
    if (why == NULL)
        return 0;
    char val[96], msg[200];
    shown(v, val, sizeof val);
    snprintf(msg, sizeof msg, "%s %s", val, why);
    return refuse(w, key, msg);
}

/* The members of object @p o that @p rules name (@p prefix: the object's key path). */
static int check_rules(const struct where *w, const char *prefix, json_t *o, const struct rule *rules, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char key[600];
        snprintf(key, sizeof key, "%.500s%s%.80s", prefix, *prefix ? "." : "", rules[i].key);
        int err = check_value(w, key, json_object_get(o, rules[i].key), rules[i].kind, rules[i].nullable);
        if (err)
            return err;
    }
    return 0;
}

#define NRULES(r) (sizeof(r) / sizeof(r)[0])

/* A map of names to objects (stages, libraries, stage_time): names as NAME, members by @p rules. */
static int check_named(const struct where *w, json_t *e, const char *map, const struct rule *rules, size_t n)
{
    json_t *m = json_object_get(e, map);
    if (m == NULL || json_is_null(m))
        return 0;
    if (!json_is_object(m))
        return refuse(w, map, "is not an object");
    const char *name;
    json_t *v;
    json_object_foreach(m, name, v)
    {
        char key[600];
        snprintf(key, sizeof key, "%s.%s", map, name);
        int err = name_error(name) ? refuse(w, key, name_error(name)) : 0;
        if (!err && !json_is_object(v))
            err = refuse(w, key, "is not an object");
        if (!err)
            err = check_rules(w, key, v, rules, n);
        if (err)
            return err;
    }
    return 0;
}

/* Every number in @p v, however deep, finite and in [@p lo, RATE_MAX] (time, chunks_io, pool, throughput). */
static int check_numbers(const struct where *w, const char *key, json_t *v, double lo)
{
    if (json_is_number(v)) {
        if (number_in(v, lo, RATE_MAX))
            return 0;
        char msg[160];
        snprintf(msg, sizeof msg, "%.17g is out of range (a number from %g to 1e18)", json_number_value(v), lo);
        return refuse(w, key, msg);
    }
    size_t i;
    json_t *x;
    const char *k;
    char sub[600];
    if (json_is_array(v))
        json_array_foreach(v, i, x)
        {
            snprintf(sub, sizeof sub, "%s[%zu]", key, i);
            int err = check_numbers(w, sub, x, lo);
            if (err)
                return err;
        }
    if (json_is_object(v))
        json_object_foreach(v, k, x)
        {
            snprintf(sub, sizeof sub, "%s.%s", key, k);
            int err = check_numbers(w, sub, x, lo);
            if (err)
                return err;
        }
    return 0;
}

static const struct rule entry_rules[] = {
    {"scenario", NAME, false},
    {"impl", NAME, false},
    {"status", STATUS, false},
    {"op", NAME, true},
    {"store", NAME, false},
    {"codec", NAME, false},
    {"format", NAME, false},
    {"layout", NAME, false},
    {"dtype", NAME, false},
    {"reason", TEXT, true},
    {"untracked_reason", TEXT, true},
    {"ok", FLAG, false},
    {"tracking", FLAG, false},
    {"overhead_bound", FLAG, false},
    {"baseline", FLAG, false},
    {"marked", FLAG, false},
    {"index", COUNT, false},
    {"impl_index", COUNT, false},
    {"trace_dropped", COUNT, false},
    {"array_bytes", BYTES, false},
    {"before_bytes", BYTES, false},
    {"output_bytes", BYTES, false},
    {"peak_bytes", BYTES, false},
    {"peak_extra_bytes", SIGNED_BYTES, false},
    {"wall_s", SECONDS, false},
    {"throughput_bps", RATE, false},
    {"store_bytes_read", BYTES, true},
    {"store_bytes_written", BYTES, true},
    {"store_read_requests", COUNT, true},
    {"read_amplification", RATIO, true},
    {"mmap_bytes", SIGNED_BYTES, false},
    {"mmap_peak_bytes", SIGNED_BYTES, false},
};
static const struct rule owner_rules[] = {
    {"allocs", COUNT, false},
    {"alloc_bytes", BYTES, false},
    {"peak_bytes", SIGNED_BYTES, false},
    {"at_peak_bytes", SIGNED_BYTES, false},
    {"copy_bytes", BYTES, false},
    {"copied_bytes", BYTES, false},
    {"copy_count", COUNT, false},
    {"copies", RATIO, true}, /* null where there is no array to be a ratio of (a profile without --array-bytes) */
};
static const struct rule stage_time_rules[] = {
    {"busy_s", SECONDS, false},
    {"waiting_s", SECONDS, false},
    {"busy_fraction", RATIO, false},
    {"busy_threads", RATIO, false},
};
static const struct rule bottleneck_rules[] = {{"resource", NAME, false}, {"sentence", TEXT, false}};
static const struct rule trace_rules[] = {
    {"ph", NAME, false},          {"cat", NAME, false},    {"name", TEXT, false},
    {"tid", SIGNED_BYTES, false}, {"ts_ns", COUNT, false}, {"dur_ns", COUNT, false},
};

/* The memory timeline: named columns, samples [t_s, live, per column...] of the columns' length. */
static int check_timeline(const struct where *w, json_t *tl)
{
    if (tl == NULL || json_is_null(tl))
        return 0;
    json_t *cols = json_object_get(tl, "columns"), *rows = json_object_get(tl, "samples");
    if (!json_is_object(tl) || !json_is_array(cols) || !json_is_array(rows))
        return refuse(w, "timeline", "is not an object with lists 'columns' and 'samples'");
    size_t i, k;
    json_t *x, *row;
    char key[600];
    json_array_foreach(cols, i, x)
    {
        snprintf(key, sizeof key, "timeline.columns[%zu]", i);
        int err = check_value(w, key, x, NAME, false);
        if (err)
            return err;
    }
    json_array_foreach(rows, i, row)
    {
        snprintf(key, sizeof key, "timeline.samples[%zu]", i);
        if (!json_is_array(row) || json_array_size(row) != json_array_size(cols))
            return refuse(w, key, "is not a list as long as the columns");
        json_array_foreach(row, k, x)
        {
            snprintf(key, sizeof key, "timeline.samples[%zu][%zu]", i, k);
            int err = check_value(w, key, x, k == 0 ? SECONDS : SIGNED_BYTES, false);
            if (err)
                return err;
        }
    }
    json_t *pk = json_object_get(tl, "peak_index");
    int err = check_value(w, "timeline.peak_index", pk, COUNT, false);
    if (!err && pk && json_array_size(rows) && (size_t)json_integer_value(pk) >= json_array_size(rows))
        err = refuse(w, "timeline.peak_index", "is past the last sample");
    return err;
}

/* The window's trace events (Chrome's, times in whole ns). */
static int check_trace(const struct where *w, json_t *trace)
{
    if (trace == NULL || json_is_null(trace))
        return 0;
    if (!json_is_array(trace))
        return refuse(w, "trace", "is not a list");
    size_t i;
    json_t *ev;
    json_array_foreach(trace, i, ev)
    {
        char key[64];
        snprintf(key, sizeof key, "trace[%zu]", i);
        if (!json_is_object(ev))
            return refuse(w, key, "is not an object");
        int err = check_rules(w, key, ev, trace_rules, NRULES(trace_rules));
        if (!err && json_object_get(ev, "args") && !json_is_object(json_object_get(ev, "args")))
            err = refuse(w, key, "has 'args' that are not an object");
        if (err)
            return err;
    }
    return 0;
}

/* peak_extra_ratio and extra_copies: present in a measured cell; null only without an array (a
 * profile that was not told its size). */
static int check_extra(const struct where *w, json_t *e)
{
    json_t *array = json_object_get(e, "array_bytes");
    bool no_array = json_is_integer(array) && json_integer_value(array) == 0;
    bool measured = !strcmp(tly_h_str(e, "status"), "ok");
    static const struct rule extra[] = {{"peak_extra_ratio", EXTRA_RATIO, false}, {"extra_copies", COUNT, false}};
    for (size_t i = 0; i < NRULES(extra); i++) {
        json_t *v = json_object_get(e, extra[i].key);
        if (v == NULL && measured)
            return refuse(w, extra[i].key, "is missing from a measured cell");
        int err = check_value(w, extra[i].key, v, extra[i].kind, no_array);
        if (err)
            return err;
    }
    /* a stage's or library's copy ratio likewise: null only where there is no array */
    static const char *const owners[] = {"stages", "libraries"};
    for (size_t k = 0; k < 2 && !no_array; k++) {
        const char *name;
        json_t *v;
        json_object_foreach(json_object_get(e, owners[k]), name, v)
        {
            if (json_is_null(json_object_get(v, "copies"))) {
                char key[NAME_MAX_BYTES + 32];
                snprintf(key, sizeof key, "%s.%s.copies", owners[k], name);
                return refuse(w, key, "is null in a cell with an array (a ratio of copied bytes to it)");
            }
        }
    }
    return 0;
}

int tly_h_result_validate(json_t *e, const char *file)
{
    struct where w = {.file = file};
    const char *impl = json_string_value(json_object_get(e, "impl")),
               *sc = json_string_value(json_object_get(e, "scenario"));
    if (sc)
        snprintf(w.cell, sizeof w.cell, "%.200s/%.200s", impl ? impl : "tally", sc);
    else
        snprintf(w.cell, sizeof w.cell, "(this result)");
    if (!json_is_object(e))
        return refuse(&w, "results[]", "is not an object");
    int err = check_rules(&w, "", e, entry_rules, NRULES(entry_rules));
    if (!err)
        err = check_extra(&w, e);
    if (!err)
        err = check_named(&w, e, "stages", owner_rules, NRULES(owner_rules));
    if (!err)
        err = check_named(&w, e, "libraries", owner_rules, NRULES(owner_rules));
    if (!err)
        err = check_named(&w, e, "stage_time", stage_time_rules, NRULES(stage_time_rules));
    json_t *bn = json_object_get(e, "bottleneck");
    if (!err && bn && !json_is_null(bn))
        err = json_is_object(bn) ? check_rules(&w, "bottleneck", bn, bottleneck_rules, NRULES(bottleneck_rules))
                                 : refuse(&w, "bottleneck", "is not an object");
    static const char *const counted[] = {"time", "chunks_io", "pool", "throughput"};
    for (size_t i = 0; !err && i < sizeof counted / sizeof counted[0]; i++)
        err = check_numbers(&w, counted[i], json_object_get(e, counted[i]), 0);
    json_t *cov = json_object_get(e, "coverage");
    if (!err && cov)
        err = json_is_object(cov) ? check_value(&w, "coverage.ratio", json_object_get(cov, "ratio"), RATIO, false)
                                  : refuse(&w, "coverage", "is not an object");
    if (!err && cov)
        err = check_numbers(&w, "coverage", cov, -RATE_MAX);
    json_t *budgets = json_object_get(e, "budgets");
    if (!err && budgets && !json_is_array(budgets))
        err = refuse(&w, "budgets", "is not a list");
    if (!err)
        err = check_timeline(&w, json_object_get(e, "timeline"));
    if (!err)
        err = check_trace(&w, json_object_get(e, "trace"));
    return err;
}

static const struct rule doc_rules[] = {
    {"tally_version", NAME, false}, {"git_commit", NAME, true},       {"git_dirty", FLAG, true},
    {"date", NAME, false},          {"jemalloc_version", NAME, true}, {"build_type", NAME, false},
    {"tracking", FLAG, false},      {"untracked_reason", TEXT, true}, {"matrix", TEXT, false},
    {"cells_total", COUNT, false},  {"filter", TEXT, true},           {"shard", TEXT, true},
    {"exclude", TEXT, true},
};
static const struct rule host_rules[] = {
    {"cpus", COUNT, false}, {"mem_bytes", BYTES, false}, {"cpu_model", TEXT, false}, {"kernel", TEXT, false}};

int tly_h_results_validate(json_t *doc, const char *file)
{
    struct where w = {.file = file, .cell = "(the run)"};
    int err = check_rules(&w, "", doc, doc_rules, NRULES(doc_rules));
    json_t *host = json_object_get(doc, "host");
    if (!err && host && !json_is_object(host))
        err = refuse(&w, "host", "is not an object");
    if (!err && host)
        err = check_rules(&w, "host", host, host_rules, NRULES(host_rules));
    json_t *seen = json_object();
    size_t i;
    json_t *e;
    json_array_foreach(tly_h_results_list(doc), i, e)
    {
        if (err)
            break;
        err = tly_h_result_validate(e, file);
        snprintf(w.cell, sizeof w.cell, "(results[%zu])", i);
        if (!err && !json_object_get(e, "scenario"))
            err = refuse(&w, "scenario", "is missing");
        if (!err && !json_object_get(e, "status"))
            err = refuse(&w, "status", "is missing");
        if (err)
            break;
        char key[512], msg[100];
        tly_h_cell_key(e, key, sizeof key);
        json_t *at = json_object_get(seen, key);
        if (at) {
            snprintf(w.cell, sizeof w.cell, "%.401s", key);
            snprintf(msg, sizeof msg, "the cell is in the results twice (results[%lld] and [%zu])",
                     json_integer_value(at), i);
            err = refuse(&w, "scenario", msg);
        }
        json_object_set_new(seen, key, json_integer((json_int_t)i));
    }
    json_decref(seen);
    return err;
}

static const struct rule baseline_rules[] = {
    {"extra_copies", COUNT, false},           {"peak_extra_ratio", EXTRA_RATIO, false},
    {"read_amplification", RATIO, false},     {"tolerance", RATIO, false},
    {"tolerance_about", TEXT, false},         {"library_tolerance", RATIO, false},
    {"library_tolerance_about", TEXT, false},
};

int tly_h_baseline_validate(json_t *baseline, const char *file)
{
    struct where w = {.file = file};
    const char *key;
    json_t *c;
    json_object_foreach(json_object_get(baseline, "cells"), key, c)
    {
        snprintf(w.cell, sizeof w.cell, "%.401s", key);
        if (tly_h_text_has_controls(key))
            return refuse(&w, "cells", "is a cell name with a control character");
        if (!json_is_object(c))
            return refuse(&w, "cells", "is not an object");
        int err = check_rules(&w, "", c, baseline_rules, NRULES(baseline_rules));
        static const char *const owners[] = {"copies", "libraries"};
        for (size_t k = 0; !err && k < 2; k++) {
            const char *name;
            json_t *v, *m = json_object_get(c, owners[k]);
            if (m && !json_is_object(m))
                err = refuse(&w, owners[k], "is not an object");
            json_object_foreach(m, name, v)
            {
                char sub[600];
                snprintf(sub, sizeof sub, "%s.%s", owners[k], name);
                err = name_error(name) ? refuse(&w, sub, name_error(name)) : 0;
                if (!err)
                    err = check_value(&w, sub, v, RATIO, false);
                if (err)
                    break;
            }
        }
        if (!err)
            err = check_numbers(&w, "throughput", json_object_get(c, "throughput"), 0);
        if (err)
            return err;
    }
    return 0;
}
