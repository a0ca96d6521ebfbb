/*
 * copies.md: the tables of a run. First memray-array's workload for every implementation (peak extra
 * × array, the and memray-array's shape), then extra copies per cell (a row per store, format,
 * layout and implementation), then where each peak is and who copied (stages for tally's engine,
 * libraries for other stacks).
 */
#include <stdio.h>
#include <string.h>

#include "cell/result.h"
#include "report/report.h"
#include "tally/tally.h"

/* memray-array's codecs: the columns of its workload's table, and always columns of the copies tables. */
static const char *const memray[] = {"none", "blosc", "zstd"};

#define MAX_COLUMNS 16

const char *tly_h_str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static bool is(json_t *e, const char *k, const char *v)
{
    return strcmp(tly_h_str(e, k), v) == 0;
}

/* The entry of @p results for (impl, op, store, format, layout, codec), or NULL. */
static json_t *find(json_t *results, const char *impl, const char *op, const char *store, const char *format,
                    const char *layout, const char *codec)
{
    size_t i;
    json_t *e;
    json_array_foreach(results, i, e)
    {
        if (json_object_get(e, "program")) /* custom scenarios: not cells of these tables */
            continue;
        if (is(e, "impl", impl) && is(e, "op", op) && is(e, "store", store) && is(e, "format", format) &&
            is(e, "layout", layout) && is(e, "codec", codec))
            return e;
    }
    return NULL;
}

/* Distinct string values of key @p k over the results, in first-seen order. */
static json_t *distinct(json_t *results, const char *k)
{
    json_t *out = json_array();
    size_t i, j;
    json_t *e, *v;
    json_array_foreach(results, i, e)
    {
        json_t *val = json_object_get(e, k);
        bool seen = !json_is_string(val) || json_object_get(e, "program");
        json_array_foreach(out, j, v) seen |= json_equal(v, val);
        if (!seen)
            json_array_append(out, val);
    }
    return out;
}

static bool measured(json_t *e)
{
    return e && is(e, "status", "ok");
}

/* The name a result's stack is shown by: its impl_label where the adapter gave one ("zarr-python + boto3
 * store": a store of the adapter's own is in the figures), else its impl ("tally" for the engine's). */
static const char *stack_name(json_t *e)
{
    if (json_is_string(json_object_get(e, "impl_label")))
        return tly_h_str(e, "impl_label");
    return json_object_get(e, "impl") ? tly_h_str(e, "impl") : "tally";
}

/* A cell of the extra-copies tables: the count, its caveats, or why there is none. */
static void copies_text(json_t *e, char *buf, size_t cap)
{
    if (e == NULL)
        snprintf(buf, cap, " ");
    else if (!measured(e))
        snprintf(buf, cap, "%s",
                 is(e, "status", "skipped")          ? "—"
                 : is(e, "status", "failed")         ? "failed"
                 : is(e, "status", "program_failed") ? "program failed"
                                                     : "untracked");
    else
        snprintf(buf, cap, "%s%lld%s", json_is_true(json_object_get(e, "ok")) ? "" : "**",
                 json_integer_value(json_object_get(e, "extra_copies")),
                 json_is_true(json_object_get(e, "overhead_bound")) ? "\u2020"
                 : !json_is_true(json_object_get(e, "ok"))          ? "** (budget)"
                                                                    : "");
}

/* The copies tables' codec columns: the registry's codecs (tly_codec_names()) that are memray-array's
 * or that a cell of @p results has, in the registry's order. */
static int codec_columns(json_t *results, const char **cols)
{
    json_t *present = distinct(results, "codec");
    int n = 0;
    for (const char *const *c = tly_codec_names(); *c && n < MAX_COLUMNS; c++) {
        bool want = tly_h_word_in((const char *const[]){memray[0], memray[1], memray[2], NULL}, *c);
        size_t i;
        json_t *v;
        json_array_foreach(present, i, v) want |= strcmp(json_string_value(v), *c) == 0;
        if (want)
            cols[n++] = *c;
    }
    json_decref(present);
    return n;
}

static void copies_table(FILE *f, json_t *results, const char *op, const char *title)
{
    fprintf(f,
            "## %s: extra copies\n\nPeak ≈ (1 + copies) × array (memray-array's method). — the implementation "
            "cannot do the cell (the reason is in results.json); † the peak extra is under the fixed overhead "
            "(16 MiB), not copies; **bold** a failed budget.\n\n",
            title);
    const char *cols[MAX_COLUMNS];
    int ncols = codec_columns(results, cols);
    fprintf(f, "| store | format | layout | impl |");
    for (int k = 0; k < ncols; k++)
        fprintf(f, " %s |", cols[k]);
    fprintf(f, "\n|---|---|---|---|");
    for (int k = 0; k < ncols; k++)
        fprintf(f, "---|");
    fputc('\n', f);
    json_t *stores = distinct(results, "store"), *formats = distinct(results, "format");
    json_t *layouts = distinct(results, "layout"), *impls = distinct(results, "impl");
    size_t a, b, c, d;
    json_t *s, *fm, *l, *im;
    json_array_foreach(stores, a, s) json_array_foreach(formats, b, fm) json_array_foreach(layouts, c, l)
        json_array_foreach(impls, d, im)
    {
        char cells[MAX_COLUMNS][64];
        bool any = false;
        json_t *named = NULL; /* the row's first measured result: it names the stack */
        for (int k = 0; k < ncols; k++) {
            json_t *e = find(results, json_string_value(im), op, json_string_value(s), json_string_value(fm),
                             json_string_value(l), cols[k]);
            if (measured(e) && named == NULL)
                named = e;
            any |= measured(e);
            copies_text(e, cells[k], sizeof cells[k]);
        }
        if (any) {
            const char *names[] = {json_string_value(s), json_string_value(fm), json_string_value(l),
                                   stack_name(named)};
            for (int k = 0; k < 4; k++) {
                fprintf(f, "| ");
                tly_h_md_text(f, names[k]);
                fputc(' ', f);
            }
            for (int k = 0; k < ncols; k++)
                fprintf(f, "| %s ", cells[k]);
            fprintf(f, "|\n");
        }
    }
    fputc('\n', f);
    json_decref(stores);
    json_decref(formats);
    json_decref(layouts);
    json_decref(impls);
}

/* A cell's peak extra x array by one of the three peaks (cell/figures.h); -1 when it has none. A
 * result from before the three peaks has only the headline. */
static double peak_ratio(json_t *e, const char *kind)
{
    if (!measured(e))
        return -1;
    json_t *k = json_object_get(json_object_get(e, "peaks"), kind);
    if (json_is_object(k))
        return json_is_number(json_object_get(k, "extra_ratio")) ? json_number_value(json_object_get(k, "extra_ratio"))
                                                                 : -1;
    return strcmp(kind, "requested") == 0 ? json_number_value(json_object_get(e, "peak_extra_ratio")) : -1;
}

static const char *const peak_kinds[] = {"requested", "reserved", "resident"};
static const char *const peak_about[] = {
    "Peak extra × array (peak − before − output) / array, in requested bytes (the bytes each allocation asked "
    "for, as heaptrack and memray count them), every implementation measured by the same hooks. Before "
    "2026-12-06 this table counted jemalloc's size classes (the reserved table below): a 100 MB request holds "
    "100.66 MB, so a stack that holds a compressed copy showed up to 0.13 more.",
    "The same peaks in jemalloc's usable bytes (its size classes): what the allocator reserved.",
    "Anonymous resident memory (RssAnon), sampled every millisecond from outside the process: what the kernel "
    "gave. Below the requested figure where memory was allocated and not yet touched at the heap's peak "
    "(GDAL's compressed reads: its chunk buffer is zero-filled before the output is written)."};

/* memray-array's workload for each implementation: local, one chunk, in the format it writes; one
 * table per peak. */
static void headline(FILE *f, json_t *results)
{
    json_t *impls = distinct(results, "impl");
    for (int p = 0; p < 3; p++) {
        bool any = false;
        size_t i;
        json_t *im;
        json_array_foreach(impls, i, im)
        {
            const char *name = json_string_value(im);
            for (int v = 0; v < 2; v++) {
                const char *format = v ? "v3" : "v2";
                double r[6];
                bool have = false;
                for (int k = 0; k < 6; k++) {
                    json_t *e =
                        find(results, name, k < 3 ? "write" : "read", "local", format, "one-chunk", memray[k % 3]);
                    r[k] = e ? peak_ratio(e, peak_kinds[p]) : -1;
                    have |= r[k] >= 0;
                }
                if (!have)
                    continue;
                if (!any) {
                    if (p == 0)
                        fprintf(f, "## memray-array's workload: 100 MB float32 in one chunk, local\n\n%s\n\n",
                                peak_about[0]);
                    else
                        fprintf(f, "### %s\n\n%s\n\n", peak_kinds[p], peak_about[p]);
                    fprintf(f, "| impl | format | write none | write blosc | write zstd | read none | read blosc | "
                               "read zstd |\n|---|---|---|---|---|---|---|---|\n");
                }
                any = true;
                fprintf(f, "| ");
                tly_h_md_text(f, name);
                fprintf(f, " | %s |", format);
                for (int k = 0; k < 6; k++)
                    r[k] >= 0 ? fprintf(f, " %.2f |", r[k]) : fprintf(f, " — |");
                fputc('\n', f);
                if (strcmp(name, "tally") != 0)
                    break; /* another stack: the format it writes (zarrita's is v3) */
            }
        }
        if (any)
            fputc('\n', f);
    }
    json_decref(impls);
}

/* "name 12.3, name 4.5" of an owner map's figure, MiB (@p mib) or × array. */
static void owners_text(FILE *f, json_t *owners, const char *fig, bool mib)
{
    size_t n = 0;
    const char *k;
    json_t *v;
    json_object_foreach(owners, k, v)
    {
        double x = json_number_value(json_object_get(v, fig));
        double shown = mib ? x / 1048576.0 : x;
        if (mib ? shown >= 0.05 : shown >= 0.005) {
            fprintf(f, "%s", n++ ? ", " : "");
            tly_h_md_text(f, k);
            fprintf(f, mib ? " %.1f" : " %.2f", shown);
        }
    }
    if (n == 0)
        fprintf(f, "—");
}

static void split_table(FILE *f, json_t *results)
{
    fprintf(f, "## Where the peak is, and who copies\n\n"
               "At peak: what each stage (tally) or library (other stacks) held at the moment of the process-wide "
               "peak, above what was live before the operation (MiB). Copied bytes (× array): payload bytes copied, by "
               "stage (tally's copy "
               "ledger; http ≈ 1.0 is the copy into or out of libcurl's socket buffers) or by the library that "
               "called memcpy/memmove/mempcpy (every copy, any size; loops that copy without them are not seen).\n\n");
    fprintf(f, "Store read, written: the object bytes the operation moved through the store's interface (pread/pwrite, "
               "HTTP bodies; not the metadata an open or create moves). Read amp.: store bytes read over the encoded "
               "bytes the region needed. — : not measured (other stacks), or a write.\n\n");
    fprintf(f, "| impl | cell | peak extra × array | peak extra MiB | at peak (MiB) | copied bytes (× array) | store "
               "read | store written | read amp. |\n|---|---|---|---|---|---|---|---|---|\n");
    size_t i;
    json_t *e;
    json_array_foreach(results, i, e)
    {
        if (!measured(e))
            continue;
        json_t *owners = json_object_get(e, json_object_get(e, "libraries") ? "libraries" : "stages");
        char rd[32], wr[32], amp[32];
        tly_h_traffic_text(e, rd, wr, amp, sizeof rd);
        fprintf(f, "| ");
        tly_h_md_text(f, stack_name(e));
        fprintf(f, " | ");
        tly_h_md_text(f, tly_h_str(e, "scenario"));
        fprintf(f, " | %.3f | %.1f | ", json_number_value(json_object_get(e, "peak_extra_ratio")),
                (double)json_integer_value(json_object_get(e, "peak_extra_bytes")) / 1048576.0);
        owners_text(f, owners, "at_peak_bytes", true);
        fprintf(f, " | ");
        owners_text(f, owners, "copies", false);
        fprintf(f, " | %s | %s | %s |\n", rd, wr, amp);
    }
    fputc('\n', f);
}

int tly_h_write_copies_md(const char *dir, json_t *doc)
{
    json_t *results = json_object_get(doc, "results"), *host = json_object_get(doc, "host");
    char path[TLY_H_PATH];
    snprintf(path, sizeof path, "%s/copies.md", dir);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return tly_fail_errno("%s", path);
    fprintf(f, "# tally: copy counts\n\nEach cell is one operation in a process of its own (`tally run`; array: "
               "uniform random float32 in [0, 1)); other stacks run through their adapters (harness/impl) under the "
               "same hooks, preloaded.\n\n");
    const char *commit = tly_h_str(doc, "git_commit");
    char commit12[13];
    snprintf(commit12, sizeof commit12, "%s", *commit ? commit : "unknown");
    fprintf(f, "Run: tally ");
    tly_h_md_text(f, tly_h_str(doc, "tally_version"));
    fprintf(f, ", commit ");
    tly_h_md_text(f, commit12);
    fprintf(f, "%s, ", json_is_true(json_object_get(doc, "git_dirty")) ? " (with uncommitted changes)" : "");
    tly_h_md_text(f, tly_h_str(doc, "date"));
    fprintf(f, "; %lld CPUs (", json_integer_value(json_object_get(host, "cpus")));
    tly_h_md_text(f, tly_h_str(host, "cpu_model"));
    fprintf(f, "), %.1f GiB, Linux ", (double)json_integer_value(json_object_get(host, "mem_bytes")) / 1073741824.0);
    tly_h_md_text(f, tly_h_str(host, "kernel"));
    fprintf(f, "; build ");
    tly_h_md_text(f, tly_h_str(doc, "build_type"));
    fprintf(f, ".\n\n");
    headline(f, results);
    copies_table(f, results, "write", "Writes");
    copies_table(f, results, "read", "Reads");
    split_table(f, results);
    return fclose(f) == 0 ? 0 : tly_fail_errno("%s", path);
}
