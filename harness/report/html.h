/*
 * Internal to index.html's writers (report room): the page (html.c), the memory chart
 * (html_chart.c) and the time views — the palette, the threads' lanes and the stage-time bar
 * (html_time.c). Every figure is hand-written SVG with one small script for hover; the page needs
 * no server and no network.
 */
#ifndef TLY_H_REPORT_HTML_H
#define TLY_H_REPORT_HTML_H

#include <jansson.h>
#include <stdio.h>

/* The plot area every figure of a cell shares, so that their time axes line up. */
#define TLY_H_FIG_W 960.0
#define TLY_H_FIG_L 104.0 /* left margin: the y axis's labels, the threads' names */
#define TLY_H_FIG_R 190.0 /* right margin: labels of lines */

/** A stage's colour (the palette: distinct hue and lightness, so that it stays apart in greyscale). */
const char *tly_h_stage_color(int stage);

/** The window's length in seconds (its timeline's last sample; 0 when it has none). */
double tly_h_cell_tmax(json_t *e);

/** x of time @p t (s) in a figure of @p tmax seconds. */
double tly_h_fig_x(double t, double tmax);

/** Nice ticks for [0, max]: their count into @p n (at most 8), their step returned. */
double tly_h_ticks(double max, int *n);

/** A time as text for an axis: "12 ms", "1.25 s". */
void tly_h_time_text(char *buf, size_t cap, double s, double step);

/** The memory chart of result @p e (html_chart.c), with its hover data; @p id names it in the page. */
void tly_h_html_memory(FILE *f, json_t *e, size_t id);

/** The threads' lanes of result @p e: each thread's stage scopes, waits and S3 requests over time. */
void tly_h_html_lanes(FILE *f, json_t *e);

/** The stage-time bar of result @p e: busy and waiting seconds per stage, and the verdict. */
void tly_h_html_stage_bar(FILE *f, json_t *e);

/** The page's script: the charts' hover. */
void tly_h_html_script(FILE *f);

/** A result's call stacks ("stacks", from the preload) as flame graphs: memory at the peak, copies
 * (html_flame.c). Nothing when the result has none. */
void tly_h_html_flames(FILE *f, json_t *e);

/** The flame graphs' click-to-zoom script. */
void tly_h_html_flame_script(FILE *f);

#endif
