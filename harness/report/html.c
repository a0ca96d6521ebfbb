/*
 * index.html: a table of the cells and a memory timeline per measured cell (SVG, stacked by the
 * timeline's own columns: stages for tally's engine, libraries for other stacks; the peak marked).
 * It opens from disk, with no server.
 */
#include <stdio.h>
#include <string.h>

#include "report/report.h"
#include "tally/tally.h"

#define W 760.0
#define H 220.0
#define PAD_L 60.0
#define PAD_B 28.0

static const char *const palette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
                                      "#ff9da7", "#9c755f", "#bab0ac", "#17becf", "#7f7f7f", "#c7c7c7"};
#define NPALETTE (sizeof palette / sizeof palette[0])

const char *tly_h_series_color(const char *name, size_t column)
{
    int s = tly_stage_from_name(name);
    return palette[(s >= 0 ? (size_t)s : column) % NPALETTE];
}

void tly_h_html_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '<')
            fputs("&lt;", f);
        else if (*s == '&')
            fputs("&amp;", f);
        else if (*s == '\'')
            fputs("&#39;", f);
        else
            fputc(*s, f);
    }
}

static double value(json_t *row, size_t k)
{
    double v = (double)json_integer_value(json_array_get(row, k));
    return v > 0 ? v : 0; /* a stage can show negative live bytes (a small free charged to the freer) */
}

/* One series' stacked area: from the sum of the series before it to that sum plus its own. */
static void area(FILE *f, json_t *rows, size_t k, double tmax, double ymax, const char *name, const char *color)
{
    size_t i, n = json_array_size(rows);
    json_t *r;
    double pw = W - PAD_L - 10, ph = H - PAD_B - 10;
#define X(t) (PAD_L + (t) / tmax * pw)
#define Y(v) (10 + ph - (v) / ymax * ph)
    fprintf(f, "<path fill='%s' fill-opacity='0.85' d='", color);
    json_array_foreach(rows, i, r)
    {
        double below = 0;
        for (size_t c = 2; c <= k; c++)
            below += value(r, c);
        fprintf(f, "%c%.1f %.1f", i ? 'L' : 'M', X(json_number_value(json_array_get(r, 0))), Y(below));
    }
    for (size_t j = n; j-- > 0;) {
        r = json_array_get(rows, j);
        double below = 0;
        for (size_t c = 2; c < k; c++)
            below += value(r, c);
        fprintf(f, "L%.1f %.1f", X(json_number_value(json_array_get(r, 0))), Y(below));
    }
    fprintf(f, "Z'><title>");
    tly_h_html_text(f, name);
    fprintf(f, "</title></path>\n");
}

static void svg_timeline(FILE *f, json_t *e)
{
    json_t *tl = json_object_get(e, "timeline"), *cols = json_object_get(tl, "columns");
    json_t *rows = json_object_get(tl, "samples");
    size_t n = json_array_size(rows), ncol = json_array_size(cols);
    if (n < 2 || ncol < 2) {
        fprintf(f, "<p>No timeline.</p>\n");
        return;
    }
    double tmax = json_number_value(json_array_get(json_array_get(rows, n - 1), 0)), ymax = 1;
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
    fprintf(f, "<svg xmlns='http://www.w3.org/2000/svg' width='%.0f' height='%.0f' role='img'>\n", W, H);
    fprintf(f, "<rect x='%.1f' y='10' width='%.1f' height='%.1f' fill='#fafafa' stroke='#ccc'/>\n", PAD_L, pw, ph);
    for (size_t k = 2; k < ncol; k++) {
        bool any = false;
        json_array_foreach(rows, i, r) any |= value(r, k) > 0;
        const char *name = json_string_value(json_array_get(cols, k));
        if (any)
            area(f, rows, k, tmax, ymax, name ? name : "?", tly_h_series_color(name ? name : "", k - 2));
    }
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
            "text-anchor='end'>%.3f s</text>\n</svg>\n",
            PAD_L, H - 8, W - 10, H - 8, tmax);
#undef X
#undef Y
}

static void legend(FILE *f, json_t *e)
{
    json_t *cols = json_object_get(json_object_get(e, "timeline"), "columns");
    fprintf(f, "<p class='legend'>");
    for (size_t k = 2; k < json_array_size(cols); k++) {
        const char *name = json_string_value(json_array_get(cols, k));
        fprintf(f, "<span><i style='background:%s'></i>", tly_h_series_color(name ? name : "", k - 2));
        tly_h_html_text(f, name ? name : "?");
        fprintf(f, "</span>");
    }
    fprintf(f, "</p>\n");
}

static void cell_row(FILE *f, json_t *e, size_t i)
{
    bool ok = json_is_true(json_object_get(e, "ok"));
    char key[512];
    tly_h_cell_key(e, key, sizeof key);
    fprintf(f, "<tr><td><a href='#s%zu'>", i);
    tly_h_html_text(f, key);
    fprintf(f, "</a></td><td>%s</td>", tly_h_str(e, "status"));
    if (!strcmp(tly_h_str(e, "status"), "ok")) {
        fprintf(f, "<td>%lld%s</td><td>%.3f</td><td>%.2f</td>", json_integer_value(json_object_get(e, "extra_copies")),
                json_is_true(json_object_get(e, "overhead_bound")) ? " (overhead)" : "",
                json_number_value(json_object_get(e, "peak_extra_ratio")),
                json_number_value(json_object_get(e, "throughput_bps")) / 1e9);
    } else {
        fprintf(f, "<td colspan='3'>");
        tly_h_html_text(f, tly_h_str(e, "reason"));
        fprintf(f, "</td>");
    }
    fprintf(f, "<td class='%s'>%s</td></tr>\n", ok ? "" : "bad", ok ? "ok" : "failed");
}

int tly_h_write_index_html(const char *dir, json_t *results)
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
    fprintf(f, "<table><tr><th>cell</th><th>status</th><th>extra copies</th><th>peak extra × array</th>"
               "<th>GB/s</th><th>budgets</th></tr>\n");
    size_t i;
    json_t *e;
    json_array_foreach(results, i, e) cell_row(f, e, i);
    fprintf(f, "</table>\n");
    json_array_foreach(results, i, e)
    {
        if (strcmp(tly_h_str(e, "status"), "ok") != 0)
            continue;
        char key[512];
        tly_h_cell_key(e, key, sizeof key);
        fprintf(f, "<section id='s%zu'><h3>", i);
        tly_h_html_text(f, key);
        fprintf(f,
                "</h3><p>array %.1f MiB, before %.1f MiB, peak %.1f MiB: peak extra %.1f MiB (%.3f × array), "
                "%lld extra copies; %.2f GB/s</p>\n",
                (double)json_integer_value(json_object_get(e, "array_bytes")) / 1048576.0,
                (double)json_integer_value(json_object_get(e, "before_bytes")) / 1048576.0,
                (double)json_integer_value(json_object_get(e, "peak_bytes")) / 1048576.0,
                (double)json_integer_value(json_object_get(e, "peak_extra_bytes")) / 1048576.0,
                json_number_value(json_object_get(e, "peak_extra_ratio")),
                json_integer_value(json_object_get(e, "extra_copies")),
                json_number_value(json_object_get(e, "throughput_bps")) / 1e9);
        legend(f, e);
        svg_timeline(f, e);
        fprintf(f, "</section>\n");
    }
    fprintf(f, "</body></html>\n");
    return fclose(f) == 0 ? 0 : tly_fail_errno("%s", path);
}
