/*
 * Reports of a run, from its results: copies.md (memray-array-shaped tables of extra copies, and
 * the split of each peak by stage), index.html (a memory timeline per scenario, SVG stacked by
 * stage, peak marked; opens with no server), trace.json (Chrome trace events: a counter track per
 * stage, for Perfetto).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "harness.h"
#include "report/report.h"
#include "tally/tally.h"

static const char *const colors[TLY_NSTAGES] = {
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
    "#ff9da7", "#9c755f", "#bab0ac", "#17becf", "#7f7f7f", "#c7c7c7",
};

static const char *str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static const char *const codecs[] = {"none", "blosc", "zstd"};

/* The entry of results for (op, store, format, layout, codec), or NULL. */
static json_t *find(json_t *results, const char *op, const char *store, const char *format, const char *layout,
                    const char *codec)
{
    size_t i;
    json_t *e;
    json_array_foreach(results, i, e)
    {
        if (json_object_get(e, "program")) /* custom scenarios: not cells of the memray-shaped tables */
            continue;
        if (!strcmp(str(e, "op"), op) && !strcmp(str(e, "store"), store) && !strcmp(str(e, "format"), format) &&
            !strcmp(str(e, "layout"), layout) && !strcmp(str(e, "codec"), codec))
            return e;
    }
    return NULL;
}

static void cell_text(json_t *e, char *buf, size_t cap)
{
    if (e == NULL)
        snprintf(buf, cap, " ");
    else if (strcmp(str(e, "status"), "ok") != 0)
        snprintf(buf, cap, "%s", str(e, "status"));
    else if (!json_is_true(json_object_get(e, "ok")))
        snprintf(buf, cap, "**%lld** (budget)", json_integer_value(json_object_get(e, "extra_copies")));
    else
        snprintf(buf, cap, "%lld", json_integer_value(json_object_get(e, "extra_copies")));
}

/* Distinct values of key @p k over the results, in first-seen order. */
static json_t *distinct(json_t *results, const char *k)
{
    json_t *out = json_array();
    size_t i, j;
    json_t *e, *v;
    json_array_foreach(results, i, e)
    {
        json_t *val = json_object_get(e, k);
        bool seen = !json_is_string(val);
        json_array_foreach(out, j, v) seen |= json_equal(v, val);
        if (!seen)
            json_array_append(out, val);
    }
    return out;
}

static json_t *find_peer(json_t *peers, const char *op, const char *format, const char *layout, const char *codec)
{
    size_t i;
    json_t *e;
    json_array_foreach(peers, i, e)
    {
        if (!strcmp(str(e, "op"), op) && !strcmp(str(e, "format"), format) && !strcmp(str(e, "layout"), layout) &&
            !strcmp(str(e, "codec"), codec))
            return e;
    }
    return NULL;
}

static void peer_cell(json_t *e, char *buf, size_t cap)
{
    if (e == NULL)
        snprintf(buf, cap, " ");
    else if (!strcmp(str(e, "status"), "ok"))
        snprintf(buf, cap, "%lld", json_integer_value(json_object_get(e, "extra_copies")));
    else if (!strcmp(str(e, "format"), "v3"))
        snprintf(buf, cap, "no v3");
    else
        snprintf(buf, cap, "%s", str(e, "status"));
}

static void copies_table(FILE *f, json_t *results, json_t *peers, const char *op, const char *title)
{
    fprintf(f, "## %s\n\nExtra copies: peak ≈ (1 + copies) × array (memray-array's method).\n\n", title);
    fprintf(f, "| store | format | layout | none | blosc | zstd |\n|---|---|---|---|---|---|\n");
    json_t *stores = distinct(results, "store"), *formats = distinct(results, "format");
    json_t *layouts = distinct(results, "layout");
    size_t a, b, c;
    json_t *s, *fm, *l;
    json_array_foreach(stores, a, s) json_array_foreach(formats, b, fm) json_array_foreach(layouts, c, l)
    {
        char cells[3][64];
        bool any = false;
        for (int k = 0; k < 3; k++) {
            json_t *e = find(results, op, json_string_value(s), json_string_value(fm), json_string_value(l), codecs[k]);
            any |= e != NULL;
            cell_text(e, cells[k], sizeof cells[k]);
        }
        if (any)
            fprintf(f, "| %s | %s | %s | %s | %s | %s |\n", json_string_value(s), json_string_value(fm),
                    json_string_value(l), cells[0], cells[1], cells[2]);
        bool peer = false;
        for (int k = 0; k < 3 && !strcmp(json_string_value(s), "local"); k++) {
            json_t *e = find_peer(peers, op, json_string_value(fm), json_string_value(l), codecs[k]);
            peer |= e != NULL;
            peer_cell(e, cells[k], sizeof cells[k]);
        }
        if (peer)
            fprintf(f, "| local, peer: %s | %s | %s | %s | %s | %s |\n",
                    str(find_peer(peers, op, json_string_value(fm), json_string_value(l), "none"), "peer")[0]
                        ? str(find_peer(peers, op, json_string_value(fm), json_string_value(l), "none"), "peer")
                        : "zarr-python",
                    json_string_value(fm), json_string_value(l), cells[0], cells[1], cells[2]);
    }
    fputc('\n', f);
    json_decref(stores);
    json_decref(formats);
    json_decref(layouts);
}

static void split_table(FILE *f, json_t *results)
{
    fprintf(f, "## Where the peak is, and who copies\n\n"
               "At-peak: what each stage held at the moment of the process-wide peak, above the baseline "
               "(MiB). Copies: payload bytes each stage copied / array bytes (http ≈ 1.0 is the copy into or out "
               "of libcurl's socket buffers, not an extra copy).\n\n");
    fprintf(f, "| scenario | peak extra × array | at peak (MiB) | copies |\n|---|---|---|---|\n");
    size_t i;
    json_t *e;
    json_array_foreach(results, i, e)
    {
        if (strcmp(str(e, "status"), "ok") != 0)
            continue;
        char at[512] = "", cp[512] = "";
        size_t na = 0, nc = 0;
        const char *k;
        json_t *v;
        json_object_foreach(json_object_get(e, "stages"), k, v)
        {
            double mib = (double)json_integer_value(json_object_get(v, "at_peak_bytes")) / 1048576.0;
            double copies = json_number_value(json_object_get(v, "copies"));
            if (mib >= 0.05 && na < sizeof at)
                na += (size_t)snprintf(at + na, sizeof at - na, "%s%s %.1f", na ? ", " : "", k, mib);
            if (copies >= 0.005 && nc < sizeof cp)
                nc += (size_t)snprintf(cp + nc, sizeof cp - nc, "%s%s %.2f", nc ? ", " : "", k, copies);
        }
        fprintf(f, "| %s | %.3f | %s | %s |\n", str(e, "scenario"),
                json_number_value(json_object_get(e, "peak_extra_ratio")), na ? at : "—", nc ? cp : "—");
    }
    fputc('\n', f);
}

static int write_copies_md(const char *dir, json_t *results, json_t *peers)
{
    char path[TLY_H_PATH];
    snprintf(path, sizeof path, "%s/copies.md", dir);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return tly_fail_errno("%s", path);
    fprintf(f, "# tally: copy counts\n\nEach cell is one scenario run in a process of its own "
               "(`tally run`; array: uniform random float32 in [0, 1)). Skipped cells say so.\n\n");
    copies_table(f, results, peers, "write", "Writes");
    copies_table(f, results, peers, "read", "Reads");
    json_t *any = json_array_get(peers, 0);
    if (any && json_object_get(any, "method"))
        fprintf(f, "Peer rows: %s. Method: %s\n\n", str(any, "peer"), str(any, "method"));
    split_table(f, results);
    return fclose(f) == 0 ? 0 : tly_fail_errno("%s", path);
}

/* ---- index.html ---- */

#define W 760.0
#define H 220.0
#define PAD_L 60.0
#define PAD_B 28.0

static void svg_timeline(FILE *f, json_t *e)
{
    json_t *tl = json_object_get(e, "timeline");
    json_t *rows = json_object_get(tl, "samples");
    size_t n = json_array_size(rows);
    if (n < 2) {
        fprintf(f, "<p>No timeline.</p>\n");
        return;
    }
    double tmax = json_number_value(json_array_get(json_array_get(rows, n - 1), 0));
    double ymax = 1;
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r)
    {
        double live = (double)json_integer_value(json_array_get(r, 1));
        ymax = live > ymax ? live : ymax;
    }
    if (tmax <= 0)
        tmax = 1e-6;
    double pw = W - PAD_L - 10, ph = H - PAD_B - 10;
#define X(t) (PAD_L + (t) / tmax * pw)
#define Y(v) (10 + ph - (v) / ymax * ph)
    fprintf(f, "<svg xmlns='http://www.w3.org/2000/svg' width='%.0f' height='%.0f' role='img'>\n", W, H);
    fprintf(f, "<rect x='%.1f' y='10' width='%.1f' height='%.1f' fill='#fafafa' stroke='#ccc'/>\n", PAD_L, pw, ph);
    /* stacked areas: stage s spans [sum of stages < s, sum of stages <= s] (negative live counts as 0) */
    for (int s = 0; s < TLY_NSTAGES; s++) {
        bool any = false;
        json_array_foreach(rows, i, r) any |= json_integer_value(json_array_get(r, 2 + (size_t)s)) > 0;
        if (!any)
            continue;
        fprintf(f, "<path fill='%s' fill-opacity='0.85' d='", colors[s]);
        json_array_foreach(rows, i, r)
        {
            double below = 0;
            for (int k = 0; k <= s; k++) {
                double v = (double)json_integer_value(json_array_get(r, 2 + (size_t)k));
                below += v > 0 ? v : 0;
            }
            fprintf(f, "%c%.1f %.1f", i ? 'L' : 'M', X(json_number_value(json_array_get(r, 0))), Y(below));
        }
        for (size_t j = n; j-- > 0;) {
            r = json_array_get(rows, j);
            double below = 0;
            for (int k = 0; k < s; k++) {
                double v = (double)json_integer_value(json_array_get(r, 2 + (size_t)k));
                below += v > 0 ? v : 0;
            }
            fprintf(f, "L%.1f %.1f", X(json_number_value(json_array_get(r, 0))), Y(below));
        }
        fprintf(f, "Z'><title>%s</title></path>\n", tly_stage_name((enum tly_stage)s));
    }
    /* the process-wide live line and the peak */
    fprintf(f, "<polyline fill='none' stroke='#222' stroke-width='1' points='");
    json_array_foreach(rows, i, r) fprintf(f, "%.1f,%.1f ", X(json_number_value(json_array_get(r, 0))),
                                           Y((double)json_integer_value(json_array_get(r, 1))));
    fprintf(f, "'/>\n");
    json_t *pk = json_array_get(rows, (size_t)json_integer_value(json_object_get(tl, "peak_index")));
    double pt = json_number_value(json_array_get(pk, 0)), pv = (double)json_integer_value(json_array_get(pk, 1));
    fprintf(f, "<line x1='%.1f' x2='%.1f' y1='10' y2='%.1f' stroke='#d00' stroke-dasharray='4 3'/>\n", X(pt), X(pt),
            10 + ph);
    fprintf(f,
            "<circle cx='%.1f' cy='%.1f' r='4' fill='#d00'/><text x='%.1f' y='%.1f' font-size='11' fill='#d00'>"
            "peak %.1f MiB</text>\n",
            X(pt), Y(pv), X(pt) + 6 > W - 120 ? X(pt) - 110 : X(pt) + 6,
            Y(pv) + 14 > H - PAD_B ? Y(pv) - 6 : Y(pv) + 14, pv / 1048576.0);
    fprintf(f, "<text x='4' y='18' font-size='11'>%.0f MiB</text><text x='4' y='%.1f' font-size='11'>0</text>\n",
            ymax / 1048576.0, 10 + ph);
    fprintf(f,
            "<text x='%.1f' y='%.1f' font-size='11'>0 s</text><text x='%.1f' y='%.1f' font-size='11' "
            "text-anchor='end'>%.3f s</text>\n",
            PAD_L, H - 8, W - 10, H - 8, tmax);
    fprintf(f, "</svg>\n");
#undef X
#undef Y
}

static void html_escape(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '<')
            fputs("&lt;", f);
        else if (*s == '&')
            fputs("&amp;", f);
        else
            fputc(*s, f);
    }
}

static int write_index_html(const char *dir, json_t *results)
{
    char path[TLY_H_PATH];
    snprintf(path, sizeof path, "%s/index.html", dir);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return tly_fail_errno("%s", path);
    fprintf(f, "<!doctype html>\n<html><head><meta charset='utf-8'><title>tally: memory timelines</title>\n"
               "<style>body{font:14px sans-serif;margin:2em;color:#222}table{border-collapse:collapse}"
               "td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}td:first-child{text-align:left}"
               ".bad{color:#c00;font-weight:bold}.legend span{display:inline-block;margin-right:12px}"
               ".legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:middle}"
               "section{margin:1.5em 0}</style></head><body>\n<h1>tally: memory timelines</h1>\n");
    fprintf(f, "<p class='legend'>");
    for (int s = 0; s < TLY_NSTAGES; s++)
        fprintf(f, "<span><i style='background:%s'></i>%s</span>", colors[s], tly_stage_name((enum tly_stage)s));
    fprintf(f, "</p>\n<table><tr><th>scenario</th><th>status</th><th>extra copies</th><th>peak extra × array</th>"
               "<th>GB/s</th><th>budgets</th></tr>\n");
    size_t i;
    json_t *e;
    json_array_foreach(results, i, e)
    {
        bool ok = json_is_true(json_object_get(e, "ok"));
        fprintf(f, "<tr><td><a href='#s%zu'>%s</a></td><td>%s</td>", i, str(e, "scenario"), str(e, "status"));
        if (!strcmp(str(e, "status"), "ok"))
            fprintf(f, "<td>%lld</td><td>%.3f</td><td>%.2f</td>",
                    json_integer_value(json_object_get(e, "extra_copies")),
                    json_number_value(json_object_get(e, "peak_extra_ratio")),
                    json_number_value(json_object_get(e, "throughput_bps")) / 1e9);
        else
            fprintf(f, "<td colspan='3'>%s</td>", str(e, "reason"));
        fprintf(f, "<td class='%s'>%s</td></tr>\n", ok ? "" : "bad", ok ? "ok" : "failed");
    }
    fprintf(f, "</table>\n");
    json_array_foreach(results, i, e)
    {
        if (strcmp(str(e, "status"), "ok") != 0)
            continue;
        fprintf(f, "<section id='s%zu'><h3>", i);
        html_escape(f, str(e, "scenario"));
        fprintf(f,
                "</h3><p>array %.1f MiB, baseline %.1f MiB, peak %.1f MiB: %lld extra copies (%.3f × array); "
                "%.2f GB/s</p>\n",
                (double)json_integer_value(json_object_get(e, "array_bytes")) / 1048576.0,
                (double)json_integer_value(json_object_get(e, "baseline_bytes")) / 1048576.0,
                (double)json_integer_value(json_object_get(e, "peak_bytes")) / 1048576.0,
                json_integer_value(json_object_get(e, "extra_copies")),
                json_number_value(json_object_get(e, "peak_extra_ratio")),
                json_number_value(json_object_get(e, "throughput_bps")) / 1e9);
        svg_timeline(f, e);
        fprintf(f, "</section>\n");
    }
    fprintf(f, "</body></html>\n");
    return fclose(f) == 0 ? 0 : tly_fail_errno("%s", path);
}

/* ---- trace.json (Chrome trace-event format) ---- */

static int write_trace(const char *dir, json_t *results)
{
    char path[TLY_H_PATH];
    snprintf(path, sizeof path, "%s/trace.json", dir);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return tly_fail_errno("%s", path);
    fprintf(f, "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n");
    bool first = true;
    size_t i;
    json_t *e;
    json_array_foreach(results, i, e)
    {
        if (strcmp(str(e, "status"), "ok") != 0)
            continue;
        json_t *name = json_pack("{s:s, s:s, s:I, s:I, s:{s:s}}", "name", "process_name", "ph", "M", "pid",
                                 (json_int_t)i + 1, "tid", (json_int_t)0, "args", "name", str(e, "scenario"));
        char *text = json_dumps(name, JSON_COMPACT);
        fprintf(f, "%s%s", first ? "" : ",\n", text);
        first = false;
        free(text);
        json_decref(name);
        size_t j;
        json_t *r;
        json_array_foreach(json_object_get(json_object_get(e, "timeline"), "samples"), j, r)
        {
            double ts = json_number_value(json_array_get(r, 0)) * 1e6;
            fprintf(f, ",\n{\"name\":\"live bytes\",\"ph\":\"C\",\"pid\":%zu,\"tid\":0,\"ts\":%.3f,\"args\":{", i + 1,
                    ts);
            for (int s = 0; s < TLY_NSTAGES; s++)
                fprintf(f, "%s\"%s\":%lld", s ? "," : "", tly_stage_name((enum tly_stage)s),
                        json_integer_value(json_array_get(r, 2 + (size_t)s)));
            fprintf(f, "}}");
        }
    }
    fprintf(f, "\n]}\n");
    return fclose(f) == 0 ? 0 : tly_fail_errno("%s", path);
}

int tly_h_report(const char *dir, json_t *doc)
{
    json_t *results = tly_h_results_list(doc);
    char path[TLY_H_PATH];
    snprintf(path, sizeof path, "%s/peer.json", dir);
    json_t *peers = json_load_file(path, 0, NULL);
    if (!json_is_array(peers)) {
        json_decref(peers);
        peers = json_array();
    }
    int err = write_copies_md(dir, results, peers);
    json_decref(peers);
    if (!err)
        err = write_index_html(dir, results);
    if (!err)
        err = write_trace(dir, results);
    return err;
}

void tly_h_cell_key(json_t *entry, char *buf, size_t cap)
{
    const char *impl = json_string_value(json_object_get(entry, "impl"));
    snprintf(buf, cap, "%s/%s", impl ? impl : "tally", str(entry, "scenario"));
}

int tly_h_cmd_report(int argc, char **argv)
{
    static const struct option opts[] = {{"out", required_argument, NULL, 'o'}, {NULL, 0, NULL, 0}};
    const char *out = NULL;
    for (int ch; (ch = tly_h_getopt(argc, argv, opts)) != -1;) {
        if (ch != 'o')
            return tly_h_usage_error("report");
        out = optarg;
    }
    char *dflt[] = {"reports/latest"};
    char **dirs = optind < argc ? argv + optind : dflt;
    int n = optind < argc ? argc - optind : 1;
    if (out == NULL && n > 1) {
        fprintf(stderr, "tally report: several runs merge into one report: say where with --out DIR\n");
        return TLY_EXIT_ERROR;
    }
    if (out == NULL)
        out = dirs[0];
    json_t *doc = tly_h_results_load(dirs, n, "report");
    if (doc == NULL)
        return TLY_EXIT_ERROR;
    int err = tly_h_mkdirs(out);
    char path[TLY_H_PATH];
    if (!err && n > 1 && !(err = tly_h_pathf(path, "%s/results.json", out)) &&
        json_dump_file(doc, path, JSON_INDENT(1) | JSON_REAL_PRECISION(6)) != 0)
        err = tly_fail(-EIO, "cannot write %s", path);
    if (!err)
        err = tly_h_report(out, doc);
    json_decref(doc);
    if (err)
        return tly_h_fail_cmd("report", err);
    printf("tally report: %s/copies.md, %s/index.html, %s/trace.json\n", out, out, out);
    return TLY_EXIT_OK;
}
