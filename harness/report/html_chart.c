/*
 * index.html's memory chart of one cell: memory above the operation's starting point (what was
 * live when its window opened), stacked by stage (or library), drawn as steps; the caller's own
 * bytes (a read's output array) and one array's size as labelled lines, not bands; a y axis with
 * ticks; copies marked on the time axis; the peak marked; the samples kept beside the chart for the
 * page's hover (time, each stage's bytes, the total).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "report/html.h"
#include "report/report.h"
#include "tally/tally.h"

#define H 250.0
#define TOP 12.0
#define BOTTOM 40.0 /* the time axis and the copies' marks */
#define MIB 1048576.0

struct chart {
    json_t *cols, *rows;
    size_t n, ncol;
    int caller; /* the caller's column (a line, not a band), or -1 */
    double tmax, ymax;
    double *base; /* each column's value when the window opened */
};

static double val(const struct chart *c, size_t i, size_t k)
{
    double v = (double)json_integer_value(json_array_get(json_array_get(c->rows, i), k)) - c->base[k];
    return v > 0 ? v : 0;
}

static double t_of(const struct chart *c, size_t i)
{
    return json_number_value(json_array_get(json_array_get(c->rows, i), 0));
}

static double y_of(const struct chart *c, double v)
{
    double ph = H - TOP - BOTTOM;
    double y = TOP + ph - (v / c->ymax) * ph;
    return y < TOP - 2 ? TOP - 2 : y;
}

/* The stacked value below column k (excluding the caller's) at sample i, with k's own when @p incl. */
static double below(const struct chart *c, size_t i, size_t k, bool incl)
{
    double s = 0;
    for (size_t j = 2; j < k + (incl ? 1 : 0); j++)
        if ((int)j != c->caller)
            s += val(c, i, j);
    return s;
}

static double total(const struct chart *c, size_t i)
{
    return below(c, i, c->ncol - 1, true);
}

/* Steps through (t_i, v_i), each value holding until the next sample: forward from the first
 * sample, or (@p back) from the last to the first, continuing a path. */
static void steps(FILE *f, const struct chart *c, double (*v)(const struct chart *, size_t, size_t, bool), size_t k,
                  bool incl, bool back)
{
    if (!back) {
        fprintf(f, "M%.2f %.2f", tly_h_fig_x(t_of(c, 0), c->tmax), y_of(c, v(c, 0, k, incl)));
        for (size_t i = 1; i < c->n; i++)
            fprintf(f, "H%.2fV%.2f", tly_h_fig_x(t_of(c, i), c->tmax), y_of(c, v(c, i, k, incl)));
        return;
    }
    fprintf(f, "L%.2f %.2f", tly_h_fig_x(t_of(c, c->n - 1), c->tmax), y_of(c, v(c, c->n - 1, k, incl)));
    for (size_t i = c->n - 1; i-- > 0;)
        fprintf(f, "V%.2fH%.2f", y_of(c, v(c, i, k, incl)), tly_h_fig_x(t_of(c, i), c->tmax));
}

static double own(const struct chart *c, size_t i, size_t k, bool incl)
{
    (void)incl;
    return val(c, i, k);
}

static double stacked(const struct chart *c, size_t i, size_t k, bool incl)
{
    return below(c, i, k, incl);
}

static const char *color_of(const struct chart *c, size_t k)
{
    const char *name = json_string_value(json_array_get(c->cols, k));
    return tly_h_series_color(name ? name : "", k - 2);
}

static void axes(FILE *f, const struct chart *c)
{
    double x0 = TLY_H_FIG_L, x1 = TLY_H_FIG_W - TLY_H_FIG_R, yb = H - BOTTOM;
    int ny, nx;
    double ys = tly_h_ticks(c->ymax / MIB, &ny), xs = tly_h_ticks(c->tmax, &nx);
    fprintf(f, "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' fill='#fcfcfc' stroke='#bbb'/>\n", x0, TOP, x1 - x0,
            yb - TOP);
    for (int i = 0; i <= ny; i++) {
        double y = y_of(c, i * ys * MIB);
        fprintf(f, "<line x1='%.1f' x2='%.1f' y1='%.1f' y2='%.1f' stroke='#e4e4e4'/>", x0, x1, y, y);
        fprintf(f, "<text x='%.1f' y='%.1f' font-size='10' text-anchor='end'>%g MiB</text>\n", x0 - 4, y + 3, i * ys);
    }
    fprintf(f,
            "<text x='10' y='%.1f' font-size='10' transform='rotate(-90 10 %.1f)' text-anchor='middle'>above "
            "the start</text>\n",
            (TOP + yb) / 2, (TOP + yb) / 2);
    for (int i = 0; i <= nx; i++) {
        double x = tly_h_fig_x(i * xs, c->tmax);
        char t[32];
        tly_h_time_text(t, sizeof t, i * xs, xs);
        fprintf(f, "<line x1='%.1f' x2='%.1f' y1='%.1f' y2='%.1f' stroke='#999'/>", x, x, yb, yb + 4);
        fprintf(f, "<text x='%.1f' y='%.1f' font-size='10' text-anchor='middle'>%s</text>\n", x, yb + 14, t);
    }
}

/* A horizontal labelled line at @p v (when in range), or its label at the top when it is off scale. */
static void level(FILE *f, const struct chart *c, double v, const char *label, const char *color, int slot)
{
    char b[32];
    double x1 = TLY_H_FIG_W - TLY_H_FIG_R;
    if (v <= c->ymax) {
        double y = y_of(c, v);
        fprintf(f, "<line x1='%.1f' x2='%.1f' y1='%.1f' y2='%.1f' stroke='%s' stroke-dasharray='6 3'/>", TLY_H_FIG_L,
                x1, y, y, color);
        fprintf(f, "<text x='%.1f' y='%.1f' font-size='10' fill='%s'>%s %s</text>\n", x1 + 4, y + 3, color, label,
                tly_h_bytes(b, sizeof b, v));
    } else {
        fprintf(f, "<text x='%.1f' y='%.1f' font-size='10' fill='%s'>%s %s: above the scale ↑</text>\n",
                TLY_H_FIG_L + 6, TOP + 11 + 12 * slot, color, label, tly_h_bytes(b, sizeof b, v));
    }
}

/* Copies from the trace, as marks under the time axis: one per pixel and stage at most. */
static void copy_marks(FILE *f, json_t *e, const struct chart *c)
{
    size_t i;
    json_t *ev;
    int last_x[TLY_NSTAGES];
    for (int s = 0; s < TLY_NSTAGES; s++)
        last_x[s] = -1;
    double yb = H - BOTTOM + 18;
    bool any = false;
    json_array_foreach(json_object_get(e, "trace"), i, ev)
    {
        if (strcmp(tly_h_str(ev, "cat"), "copy") != 0)
            continue;
        json_t *args = json_object_get(ev, "args");
        int s = tly_stage_from_name(tly_h_str(args, "stage"));
        double x = tly_h_fig_x(json_number_value(json_object_get(ev, "ts_ns")) / 1e9, c->tmax);
        if (s < 0 || (int)x == last_x[s])
            continue;
        last_x[s] = (int)x;
        any = true;
        fprintf(f,
                "<path class='copy' d='M%.1f %.1fl-3.5 7h7z' fill='%s' stroke='#222' stroke-width='0.4'><title>copy "
                "in %s (%lld bytes since the last mark)</title></path>",
                x, yb, tly_h_stage_color(s), tly_stage_name((enum tly_stage)s),
                json_integer_value(json_object_get(args, "bytes")));
    }
    if (any)
        fprintf(f, "<text x='%.1f' y='%.1f' font-size='9' text-anchor='end'>copies ▲</text>\n", TLY_H_FIG_L - 4,
                yb + 7);
}

static void legend(FILE *f, const struct chart *c)
{
    double x = TLY_H_FIG_W - TLY_H_FIG_R + 10, y = TOP + 44;
    for (size_t k = c->ncol; k-- > 2;) {
        double top = 0;
        for (size_t i = 0; i < c->n; i++)
            top = fmax(top, val(c, i, k));
        const char *name = json_string_value(json_array_get(c->cols, k));
        if (top <= 0 || (int)k == c->caller || !name)
            continue;
        char b[32];
        fprintf(f, "<g class='legend-item' data-series='");
        tly_h_html_text(f, name);
        fprintf(f,
                "'><rect x='%.1f' y='%.1f' width='11' height='11' fill='%s' stroke='#555' stroke-width='0.4'/>"
                "<text x='%.1f' y='%.1f' font-size='10'>",
                x, y, color_of(c, k), x + 15, y + 9);
        tly_h_html_text(f, name);
        fprintf(f, " %s</text></g>\n", tly_h_bytes(b, sizeof b, top));
        y += 15;
    }
}

/* The samples for the hover: {"t": [...], "cols": [...], "v": [[above the start, per column], ...]}. */
static void hover_data(FILE *f, const struct chart *c, size_t id)
{
    fprintf(f,
            "<script type='application/json' id='mem%zu'>{\"tmax\":%.9f,\"x0\":%.1f,\"x1\":%.1f,\"caller\":%d,"
            "\"cols\":[",
            id, c->tmax, TLY_H_FIG_L, TLY_H_FIG_W - TLY_H_FIG_R, c->caller >= 0 ? c->caller - 2 : -1);
    for (size_t k = 2; k < c->ncol; k++) {
        fprintf(f, "%s", k > 2 ? "," : "");
        tly_h_html_json(f, json_array_get(c->cols, k)); /* inside <script>: no name may end it */
    }
    fprintf(f, "],\"t\":[");
    for (size_t i = 0; i < c->n; i++)
        fprintf(f, "%s%.9f", i ? "," : "", t_of(c, i));
    fprintf(f, "],\"v\":[");
    for (size_t i = 0; i < c->n; i++) {
        fprintf(f, "%s[", i ? "," : "");
        for (size_t k = 2; k < c->ncol; k++)
            fprintf(f, "%s%.0f", k > 2 ? "," : "", val(c, i, k));
        fputc(']', f);
    }
    fprintf(f, "]}</script>\n");
}

void tly_h_html_memory(FILE *f, json_t *e, size_t id)
{
    json_t *tl = json_object_get(e, "timeline");
    struct chart c = {.cols = json_object_get(tl, "columns"), .rows = json_object_get(tl, "samples"), .caller = -1};
    c.n = json_array_size(c.rows);
    c.ncol = json_array_size(c.cols);
    if (c.n < 2 || c.ncol < 3) {
        fprintf(f, "<p>No timeline.</p>\n");
        return;
    }
    c.base = calloc(c.ncol, sizeof *c.base);
    for (size_t k = 2; k < c.ncol; k++) {
        c.base[k] = (double)json_integer_value(json_array_get(json_array_get(c.rows, 0), k));
        if (!strcmp(json_string_value(json_array_get(c.cols, k)) ? json_string_value(json_array_get(c.cols, k)) : "",
                    "caller"))
            c.caller = (int)k;
    }
    c.tmax = tly_h_cell_tmax(e);
    if (c.tmax <= 0)
        c.tmax = 1e-6;
    double top = 0, caller_top = 0, array = (double)json_integer_value(json_object_get(e, "array_bytes"));
    for (size_t i = 0; i < c.n; i++) {
        top = fmax(top, total(&c, i));
        if (c.caller >= 0)
            caller_top = fmax(caller_top, val(&c, i, (size_t)c.caller));
    }
    c.ymax = fmax(top * 1.08, MIB);
    if (array <= c.ymax * 1.6 && array > c.ymax)
        c.ymax = array * 1.04; /* the array's line fits: draw it */
    if (caller_top <= c.ymax * 1.6 && caller_top > c.ymax)
        c.ymax = caller_top * 1.04;
    fprintf(f,
            "<svg class='memory' data-chart='mem%zu' viewBox='0 0 %.0f %.0f' width='%.0f' height='%.0f' "
            "role='img'>\n",
            id, TLY_H_FIG_W, H, TLY_H_FIG_W, H);
    axes(f, &c);
    for (size_t k = 2; k < c.ncol; k++) {
        bool any = false;
        for (size_t i = 0; i < c.n && !any; i++)
            any = val(&c, i, k) > 0;
        if (!any || (int)k == c.caller)
            continue;
        fprintf(f, "<path class='area' fill='%s' stroke='%s' stroke-width='0.3' d='", color_of(&c, k), color_of(&c, k));
        steps(f, &c, stacked, k, true, false);
        steps(f, &c, stacked, k, false, true);
        fprintf(f, "Z'/>\n");
    }
    fprintf(f, "<path fill='none' stroke='#111' stroke-width='1.1' d='");
    steps(f, &c, stacked, c.ncol - 1, true, false);
    fprintf(f, "'/>\n");
    int slot = 0;
    if (c.caller >= 0 && caller_top > 0) {
        bool read = !strcmp(tly_h_str(e, "op"), "read");
        const char *label = read ? "output array" : "caller";
        if (caller_top <= c.ymax) {
            fprintf(f, "<path fill='none' stroke='%s' stroke-width='1.6' stroke-dasharray='2 2' d='",
                    tly_h_stage_color(TLY_CALLER));
            steps(f, &c, own, (size_t)c.caller, true, false);
            fprintf(f, "'/>\n");
        }
        level(f, &c, caller_top, label, tly_h_stage_color(TLY_CALLER), slot++);
    }
    if (array > 0)
        level(f, &c, array, "1 × array", "#555", slot++);
    json_t *pk = json_array_get(c.rows, (size_t)json_integer_value(json_object_get(tl, "peak_index")));
    if (pk) {
        size_t pi = (size_t)json_integer_value(json_object_get(tl, "peak_index"));
        double pt = json_number_value(json_array_get(pk, 0)), pv = total(&c, pi), px = tly_h_fig_x(pt, c.tmax);
        char b[32];
        fprintf(f, "<line x1='%.1f' x2='%.1f' y1='%.1f' y2='%.1f' stroke='#d00' stroke-dasharray='4 3'/>", px, px, TOP,
                H - BOTTOM);
        fprintf(f, "<text x='%.1f' y='%.1f' font-size='10' fill='#d00'%s>peak +%s</text>\n",
                px > TLY_H_FIG_W - TLY_H_FIG_R - 90 ? px - 4 : px + 4,
                y_of(&c, pv) > TOP + 24 ? y_of(&c, pv) - 4 : TOP + 24,
                px > TLY_H_FIG_W - TLY_H_FIG_R - 90 ? " text-anchor='end'" : "", tly_h_bytes(b, sizeof b, pv));
    }
    copy_marks(f, e, &c);
    legend(f, &c);
    fprintf(f,
            "<rect class='hover' x='%.1f' y='%.1f' width='%.1f' height='%.1f' fill='transparent'/>"
            "<line class='cursor' y1='%.1f' y2='%.1f' stroke='#000' stroke-width='0.6' visibility='hidden'/>",
            TLY_H_FIG_L, TOP, TLY_H_FIG_W - TLY_H_FIG_L - TLY_H_FIG_R, H - BOTTOM - TOP, TOP, H - BOTTOM);
    fprintf(f, "</svg>\n");
    hover_data(f, &c, id);
    free(c.base);
}
