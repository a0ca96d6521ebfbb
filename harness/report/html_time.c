/*
 * index.html's time views: the stage palette, the threads' lanes (each thread's stage scopes,
 * waits and S3 requests from the cell's trace, on the memory chart's time axis) and the stage-time
 * bar (busy and waiting seconds per stage, with the bottleneck verdict above it).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "report/html.h"
#include "report/report.h"
#include "tally/tally.h"

/*
 * One colour per stage, each at its own lightness (CIELAB L* 22-92, every pair at least 3.9 apart)
 * and hue: every pair is at least 29 apart in CIELAB (tests/report/report.py checks 20 on the
 * rendered page), so stages stay apart in colour and in greyscale.
 */
static const char *const stage_colors[TLY_NSTAGES] = {
    [TLY_PLAN] = "#c4f1ef",    /* L* 92 */
    [TLY_GATHER] = "#28459c",  /* L* 32 */
    [TLY_ENCODE] = "#bd8e30",  /* L* 62 */
    [TLY_PUT] = "#d6d76b",     /* L* 84 */
    [TLY_GET] = "#01d4ee",     /* L* 78 */
    [TLY_DECODE] = "#e05c76",  /* L* 57 */
    [TLY_SCATTER] = "#a0296c", /* L* 38 */
    [TLY_META] = "#fe9565",    /* L* 72 */
    [TLY_SIGN] = "#bd8fef",    /* L* 67 */
    [TLY_HTTP] = "#068950",    /* L* 50 */
    [TLY_POOL] = "#076b8e",    /* L* 42 */
    [TLY_CALLER] = "#313349",  /* L* 22 */
    [TLY_UNSTAGED] = "#fbd4cf" /* L* 88 */
};

const char *tly_h_stage_color(int stage)
{
    return stage >= 0 && stage < TLY_NSTAGES ? stage_colors[stage] : "#999999";
}

double tly_h_cell_tmax(json_t *e)
{
    json_t *rows = json_object_get(json_object_get(e, "timeline"), "samples");
    size_t n = json_array_size(rows);
    double t = n ? json_number_value(json_array_get(json_array_get(rows, n - 1), 0)) : 0;
    double wall = json_number_value(json_object_get(e, "wall_s"));
    return t > wall ? t : wall;
}

double tly_h_fig_x(double t, double tmax)
{
    double w = TLY_H_FIG_W - TLY_H_FIG_L - TLY_H_FIG_R;
    double at = tmax > 0 ? tly_h_finite(t / tmax) : 0;
    /* a time far outside the window (never measured, only written) is drawn at the figure's edges */
    return TLY_H_FIG_L + (at < -0.5 ? -0.5 : at > 1.5 ? 1.5 : at) * w;
}

double tly_h_ticks(double max, int *n)
{
    if (!(max > 0)) {
        *n = 1;
        return 1;
    }
    double raw = max / 5, p = pow(10, floor(log10(raw))), step = p;
    if (raw / p > 5)
        step = 10 * p;
    else if (raw / p > 2)
        step = 5 * p;
    else if (raw / p > 1)
        step = 2 * p;
    *n = (int)floor(max / step + 1e-9);
    if (*n > 8)
        *n = 8;
    return step;
}

void tly_h_time_text(char *buf, size_t cap, double s, double step)
{
    if (step < 1)
        snprintf(buf, cap, step < 0.001 ? "%.2f ms" : step < 0.01 ? "%.1f ms" : "%.0f ms", s * 1e3);
    else
        snprintf(buf, cap, "%.0f s", s);
}

/* ---- the lanes ---- */

#define ROW_H 13.0
#define ROW_GAP 3.0

struct track {
    json_int_t tid;
    int sort;
    const char *name;
};

static int by_sort(const void *a, const void *b)
{
    const struct track *x = a, *y = b;
    return (x->sort > y->sort) - (x->sort < y->sort);
}

static int by_length(const void *a, const void *b)
{
    double x = json_number_value(json_object_get(*(json_t *const *)a, "dur_ns"));
    double y = json_number_value(json_object_get(*(json_t *const *)b, "dur_ns"));
    return (x < y) - (x > y); /* longest first: nested scopes paint over their parents */
}

/* The threads of the trace, in their sort order. */
static size_t tracks_of(json_t *trace, struct track *out, size_t cap)
{
    size_t n = 0, i;
    json_t *ev;
    json_array_foreach(trace, i, ev)
    {
        if (strcmp(tly_h_str(ev, "ph"), "M") != 0)
            continue;
        json_int_t tid = json_integer_value(json_object_get(ev, "tid"));
        size_t k = 0;
        while (k < n && out[k].tid != tid)
            k++;
        if (k == n && n == cap)
            continue;
        if (k == n)
            out[n++] = (struct track){tid, 1 << 30, "?"};
        if (!strcmp(tly_h_str(ev, "name"), "thread_name"))
            out[k].name = tly_h_str(json_object_get(ev, "args"), "name");
        else
            out[k].sort = (int)json_integer_value(json_object_get(json_object_get(ev, "args"), "sort_index"));
    }
    qsort(out, n, sizeof *out, by_sort);
    return n;
}

static void slice_rect(FILE *f, json_t *ev, double tmax, double y, double min_w)
{
    double ts = json_number_value(json_object_get(ev, "ts_ns")) / 1e9,
           dur = json_number_value(json_object_get(ev, "dur_ns")) / 1e9;
    double x0 = tly_h_fig_x(ts, tmax), x1 = tly_h_fig_x(ts + dur, tmax);
    if (x1 - x0 < min_w)
        return;
    const char *cat = tly_h_str(ev, "cat"), *name = tly_h_str(ev, "name");
    if (!strcmp(cat, "stage") && x1 - x0 < 2)
        x1 = x0 + 2; /* a short scope (a request signed) stays visible: at least two pixels */
    json_t *args = json_object_get(ev, "args");
    char tip[200];
    if (!strcmp(cat, "stage")) {
        fprintf(f, "<rect x='%.2f' y='%.1f' width='%.2f' height='%.1f' fill='%s'>", x0, y, x1 - x0, ROW_H,
                tly_h_stage_color(tly_stage_from_name(name)));
        snprintf(tip, sizeof tip, "%s: %.3f ms", name, dur * 1e3);
    } else if (!strcmp(cat, "wait")) {
        fprintf(f, "<rect x='%.2f' y='%.1f' width='%.2f' height='%.1f' fill='url(#waiting)'>", x0, y + 2, x1 - x0,
                ROW_H - 4);
        snprintf(tip, sizeof tip, "%s: %.3f ms", name, dur * 1e3);
    } else { /* an S3 request: the row's lower half, under the scope it nests in */
        fprintf(f,
                "<rect class='request' x='%.2f' y='%.1f' width='%.2f' height='%.1f' fill='%s' fill-opacity='0.55' "
                "stroke='%s' stroke-width='0.6'>",
                x0, y + ROW_H / 2, x1 - x0, ROW_H / 2, tly_h_stage_color(TLY_HTTP), tly_h_stage_color(TLY_HTTP));
        snprintf(tip, sizeof tip, "%s %s: HTTP %lld, %lld bytes, %lld retries, %.3f ms", tly_h_str(args, "method"),
                 tly_h_str(args, "key"), json_integer_value(json_object_get(args, "status")),
                 json_integer_value(json_object_get(args, "bytes")),
                 json_integer_value(json_object_get(args, "retries")), dur * 1e3);
    }
    fprintf(f, "<title>");
    tly_h_html_text(f, tip);
    fprintf(f, "</title></rect>");
}

void tly_h_html_lanes(FILE *f, json_t *e)
{
    json_t *trace = json_object_get(e, "trace");
    struct track tr[64];
    size_t n = tracks_of(trace, tr, 64);
    double tmax = tly_h_cell_tmax(e);
    if (n == 0 || tmax <= 0)
        return;
    /* the slices to draw, longest first; with very many, those under a third of a pixel are left out */
    json_t **sl = calloc(json_array_size(trace) + 1, sizeof *sl);
    size_t ns = 0, i;
    json_t *ev;
    json_array_foreach(trace, i, ev) if (!strcmp(tly_h_str(ev, "ph"), "X") && strcmp(tly_h_str(ev, "cat"), "chunk") &&
                                         strcmp(tly_h_str(ev, "cat"), "codec")) sl[ns++] = ev;
    qsort(sl, ns, sizeof *sl, by_length);
    double min_w = ns > 4000 ? 0.33 : 0;
    double h = 18 + (double)n * (ROW_H + ROW_GAP);
    fprintf(f, "<svg class='lanes' viewBox='0 0 %.0f %.0f' width='%.0f' height='%.0f' role='img'>\n", TLY_H_FIG_W, h,
            TLY_H_FIG_W, h);
    fprintf(f, "<text x='4' y='11' font-size='11' font-weight='bold'>threads</text>\n");
    for (size_t k = 0; k < n; k++) {
        double y = 16 + (double)k * (ROW_H + ROW_GAP);
        fprintf(f, "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' fill='#f4f4f4'/>", TLY_H_FIG_L, y,
                TLY_H_FIG_W - TLY_H_FIG_L - TLY_H_FIG_R, ROW_H);
        fprintf(f, "<text x='%.1f' y='%.1f' font-size='10' text-anchor='end'>", TLY_H_FIG_L - 4, y + ROW_H - 3);
        char name[40];
        const char *lane = strstr(tr[k].name, " · ");
        snprintf(name, sizeof name, "%s%.30s", lane ? "↳ " : "", lane ? lane + strlen(" · ") : tr[k].name);
        tly_h_html_text(f, name);
        fprintf(f, "</text>\n");
        for (size_t j = 0; j < ns; j++)
            if (json_integer_value(json_object_get(sl[j], "tid")) == tr[k].tid)
                slice_rect(f, sl[j], tmax, y, min_w);
        fputc('\n', f);
    }
    fprintf(f, "</svg>\n");
    free(sl);
}

/* ---- the stage-time bar ---- */

/* A stage's seconds as the bar draws them: what is not a finite, non-negative number counts as none. */
static double seconds(json_t *v, const char *key)
{
    double s = tly_h_finite(json_number_value(json_object_get(v, key)));
    return s > 0 ? s : 0;
}

void tly_h_html_stage_bar(FILE *f, json_t *e)
{
    json_t *st = json_object_get(e, "stage_time"), *bn = json_object_get(e, "bottleneck");
    if (bn) {
        fprintf(f, "<p class='verdict'><b>bound by ");
        tly_h_html_text(f, tly_h_str(bn, "resource"));
        fprintf(f, "</b>: ");
        tly_h_html_text(f, tly_h_str(bn, "sentence"));
        fprintf(f, "</p>\n");
    }
    if (!json_is_object(st))
        return;
    /* each stage at least 12 px wide (a stage that takes a millisecond still shows), the rest of the
     * bar in proportion to its busy and waiting time */
    double total = 0;
    int shown = 0;
    const char *k;
    json_t *v;
    json_object_foreach(st, k, v)
    {
        int s = tly_stage_from_name(k);
        if (s != TLY_UNSTAGED && s != TLY_CALLER) {
            total += seconds(v, "busy_s") + seconds(v, "waiting_s");
            shown++;
        }
    }
    if (!(total > 0 && isfinite(total)))
        return;
    double w = TLY_H_FIG_W - TLY_H_FIG_L - TLY_H_FIG_R - 12.0 * shown, x = TLY_H_FIG_L;
    int rows = (shown + 5) / 6;
    double h = 30 + 15.0 * rows;
    fprintf(f, "<svg class='stagebar' viewBox='0 0 %.0f %.0f' width='%.0f' height='%.0f' role='img'>", TLY_H_FIG_W, h,
            TLY_H_FIG_W, h);
    fprintf(f, "<text x='4' y='13' font-size='11' font-weight='bold'>stage time</text>"
               "<text x='4' y='25' font-size='9'>busy | waiting</text>");
    int item = 0;
    json_object_foreach(st, k, v)
    {
        int s = tly_stage_from_name(k);
        if (s == TLY_UNSTAGED || s == TLY_CALLER)
            continue;
        double busy = seconds(v, "busy_s"), wait = seconds(v, "waiting_s");
        double seg = 12 + (busy + wait) / total * w;
        double bw = busy + wait > 0 ? seg * busy / (busy + wait) : seg, ww = seg - bw;
        char tip[200];
        snprintf(tip, sizeof tip, "%s: busy %.4f s (%.2f threads), waiting %.4f s", k, busy,
                 json_number_value(json_object_get(v, "busy_threads")), wait);
        fprintf(f, "<g class='stage-time' data-stage='");
        tly_h_html_text(f, k);
        fprintf(f, "'><title>");
        tly_h_html_text(f, tip);
        fprintf(f, "</title>");
        fprintf(f, "<rect x='%.2f' y='4' width='%.2f' height='18' fill='%s'/>", x, bw, tly_h_stage_color(s));
        fprintf(f,
                "<rect x='%.2f' y='4' width='%.2f' height='18' fill='%s'/><rect x='%.2f' y='4' width='%.2f' "
                "height='18' fill='url(#waiting)'/>",
                x, bw + ww, tly_h_stage_color(s), x + bw, ww);
        double lx = TLY_H_FIG_L + (item % 6) * 128.0, ly = 30 + (item / 6) * 15.0;
        fprintf(f,
                "<rect x='%.1f' y='%.1f' width='10' height='10' fill='%s' stroke='#555' stroke-width='0.4'/>"
                "<text x='%.1f' y='%.1f' font-size='9.5'>",
                lx, ly, tly_h_stage_color(s), lx + 13, ly + 8.5);
        tly_h_html_text(f, k);
        fprintf(f, " %.3f s%s</text></g>", busy + wait, wait > busy ? " (waiting)" : "");
        x += bw + ww;
        item++;
    }
    fprintf(f, "</svg>\n");
}
