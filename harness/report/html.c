/*
 * index.html: a table of the cells, then for each measured cell its figures, its bottleneck, the
 * budgets it failed (named beside its chart), the memory chart (html_chart.c), the threads' lanes
 * and the stage-time bar (html_time.c), all on one time axis. Self-contained: it opens from disk,
 * with no server and no network; one small script gives the memory chart its hover.
 */
#include <stdio.h>
#include <string.h>

#include "cell/cell.h"
#include "cell/result.h"
#include "report/html.h"
#include "report/report.h"
#include "tally/tally.h"

/* Libraries (other stacks' timelines) take these, in column order; stages take the stage palette. */
static const char *const lib_palette[] = {"#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#edc948",
                                          "#76b7b2", "#e15759", "#9c755f", "#ff9da7", "#bab0ac"};
#define NLIB (sizeof lib_palette / sizeof lib_palette[0])

const char *tly_h_series_color(const char *name, size_t column)
{
    int s = tly_stage_from_name(name);
    return s >= 0 ? tly_h_stage_color(s) : lib_palette[column % NLIB];
}

static void cell_row(FILE *f, json_t *e, size_t i)
{
    bool ok = json_is_true(json_object_get(e, "ok"));
    char key[512];
    tly_h_cell_key(e, key, sizeof key);
    fprintf(f, "<tr><td><a href='#s%zu'>", i);
    tly_h_html_text(f, key);
    fprintf(f, "</a></td><td>");
    tly_h_html_text(f, tly_h_str(e, "status"));
    fprintf(f, "</td>");
    if (!strcmp(tly_h_str(e, "status"), "ok")) {
        char rd[32], wr[32], amp[32];
        tly_h_traffic_text(e, rd, wr, amp, sizeof rd);
        fprintf(f, "<td>%lld%s</td><td>%.3f</td><td>%s</td><td>%s</td><td>%s</td><td>%.2f</td><td class='l'>",
                json_integer_value(json_object_get(e, "extra_copies")),
                json_is_true(json_object_get(e, "overhead_bound")) ? " (overhead)" : "",
                json_number_value(json_object_get(e, "peak_extra_ratio")), rd, wr, amp,
                json_number_value(json_object_get(e, "throughput_bps")) / 1e9);
        tly_h_html_text(f, tly_h_str(json_object_get(e, "bottleneck"), "resource"));
        fprintf(f, "</td>");
    } else {
        fprintf(f, "<td colspan='7' class='l'>");
        tly_h_html_text(f, tly_h_str(e, "reason"));
        fprintf(f, "</td>");
    }
    fprintf(f, "<td class='%s'>%s</td></tr>\n", ok ? "" : "bad", ok ? "ok" : "failed");
}

/* The budgets the cell failed, beside its chart. */
static void failed_budgets(FILE *f, json_t *e)
{
    size_t n = 0;
    char line[256];
    for (size_t i = 0; tly_h_budget_next_failed(json_object_get(e, "budgets"), &i, line, sizeof line);) {
        fprintf(f, "%s<li>", n++ ? "" : "<div class='failed'><b>failed budgets</b><ul>");
        tly_h_html_text(f, line);
        fprintf(f, "</li>");
    }
    if (n)
        fprintf(f, "</ul></div>\n");
}

static void section(FILE *f, json_t *e, size_t i)
{
    char key[512];
    tly_h_cell_key(e, key, sizeof key);
    fprintf(f, "<section id='s%zu'><h3>", i);
    tly_h_html_text(f, key);
    fprintf(f,
            "</h3>\n<p>array %.1f MiB, before %.1f MiB, peak %.1f MiB: peak extra %.1f MiB (%.3f × array), "
            "%lld extra copies; %.2f GB/s in %.3f s</p>\n",
            (double)json_integer_value(json_object_get(e, "array_bytes")) / 1048576.0,
            (double)json_integer_value(json_object_get(e, "before_bytes")) / 1048576.0,
            (double)json_integer_value(json_object_get(e, "peak_bytes")) / 1048576.0,
            (double)json_integer_value(json_object_get(e, "peak_extra_bytes")) / 1048576.0,
            json_number_value(json_object_get(e, "peak_extra_ratio")),
            json_integer_value(json_object_get(e, "extra_copies")),
            json_number_value(json_object_get(e, "throughput_bps")) / 1e9,
            json_number_value(json_object_get(e, "wall_s")));
    char rd[32], wr[32], amp[32];
    tly_h_traffic_text(e, rd, wr, amp, sizeof rd);
    fprintf(f, "<p>store: read %s, written %s; read amplification %s</p>\n", rd, wr, amp);
    failed_budgets(f, e);
    tly_h_html_memory(f, e, i);
    tly_h_html_lanes(f, e);
    tly_h_html_stage_bar(f, e);
    tly_h_html_flames(f, e);
    fprintf(f, "</section>\n");
}

int tly_h_write_index_html(const char *dir, json_t *results)
{
    char path[TLY_H_PATH];
    snprintf(path, sizeof path, "%s/index.html", dir);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return tly_fail_errno("%s", path);
    fprintf(f, "<!doctype html>\n<html><head><meta charset='utf-8'><title>tally: memory and time</title>\n"
               "<style>body{font:14px sans-serif;margin:2em;color:#222;max-width:1000px}"
               "table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}"
               "td:first-child,td.l{text-align:left}.bad{color:#c00;font-weight:bold}section{margin:2em 0;"
               "position:relative}svg{display:block;max-width:100%%;height:auto}.verdict{margin:.3em 0}"
               ".key span{margin-right:10px;white-space:nowrap}.failed{float:right;border:2px solid "
               "#c00;color:#c00;padding:2px 10px;margin:0 0 4px 8px;"
               "max-width:330px;font-size:12px}.failed ul{margin:2px 0;padding-left:16px}"
               "#tip{position:absolute;pointer-events:none;background:#fff;border:1px solid #888;padding:4px 6px;"
               "font:11px monospace;white-space:pre;display:none;z-index:2}svg.flame text{font:11px monospace;"
               "pointer-events:none}svg.flame g{cursor:pointer}svg.flame rect{stroke:#fff;stroke-width:.5}"
               "</style></head><body>\n"
               "<svg width='0' height='0' style='position:absolute'><defs><pattern id='waiting' width='4' "
               "height='4' patternUnits='userSpaceOnUse' patternTransform='rotate(45)'><rect width='2' height='4' "
               "fill='#fff' fill-opacity='0.85'/></pattern></defs></svg>\n"
               "<h1>tally: memory and time</h1>\n<p>Each chart: memory above what was live when the operation "
               "began, stacked by stage (a read's output array and one array's size are lines); copies marked "
               "under the time axis; below it each thread's stage scopes (hatched: waiting) and S3 requests, and "
               "the time each stage was busy or waiting.</p>\n");
    fprintf(f, "<p class='key'>stages: ");
    for (int s = 0; s < TLY_NSTAGES; s++)
        fprintf(f,
                "<span class='stage-key' data-stage='%s'><svg width='12' height='12' style='display:inline'><rect "
                "width='12' height='12' fill='%s' stroke='#555' stroke-width='0.5'/></svg> %s</span> ",
                tly_stage_name((enum tly_stage)s), tly_h_stage_color(s), tly_stage_name((enum tly_stage)s));
    fprintf(f, "</p>\n");
    fprintf(f, "<table><tr><th>cell</th><th>status</th><th>extra copies</th><th>peak extra × array</th>"
               "<th>store read</th><th>store written</th><th>read amp.</th><th>GB/s</th><th>bound by</th>"
               "<th>budgets</th></tr>\n");
    size_t i;
    json_t *e;
    json_array_foreach(results, i, e) cell_row(f, e, i);
    fprintf(f, "</table>\n");
    json_array_foreach(results, i, e) if (!strcmp(tly_h_str(e, "status"), "ok")) section(f, e, i);
    fprintf(f, "<div id='tip'></div>\n");
    tly_h_html_script(f);
    tly_h_html_flame_script(f);
    fprintf(f, "</body></html>\n");
    return fclose(f) == 0 ? 0 : tly_fail_errno("%s", path);
}

void tly_h_html_script(FILE *f)
{
    /* Hover: the sample under the pointer; its time, each series' bytes above the start, the total. */
    fputs("<script>\n"
          "(function(){var tip=document.getElementById('tip');\n"
          "function mib(b){return (b/1048576).toFixed(b<10485760?2:1)+' MiB';}\n"
          "document.querySelectorAll('svg.memory').forEach(function(svg){\n"
          " var d=JSON.parse(document.getElementById(svg.dataset.chart).textContent);\n"
          " var cur=svg.querySelector('.cursor'),hov=svg.querySelector('.hover');\n"
          " hov.addEventListener('mousemove',function(ev){\n"
          "  var p=svg.createSVGPoint();p.x=ev.clientX;p.y=ev.clientY;\n"
          "  var q=p.matrixTransform(svg.getScreenCTM().inverse());\n"
          "  var t=(q.x-d.x0)/(d.x1-d.x0)*d.tmax,i=0;\n"
          "  while(i+1<d.t.length&&d.t[i+1]<=t)i++;\n"
          "  var lines=['t = '+(t*1e3).toFixed(2)+' ms'],sum=0;\n"
          "  d.cols.forEach(function(c,k){var v=d.v[i][k];if(k==d.caller){if(v>0)lines.push(c+' (line) '+mib(v));"
          "return;}sum+=v;if(v>0)lines.push(c+' '+mib(v));});\n"
          "  lines.push('total above the start '+mib(sum));\n"
          "  cur.setAttribute('x1',q.x);cur.setAttribute('x2',q.x);cur.setAttribute('visibility','visible');\n"
          "  tip.textContent=lines.join('\\n');tip.style.display='block';\n"
          "  tip.style.left=(ev.pageX+14)+'px';tip.style.top=(ev.pageY+10)+'px';});\n"
          " hov.addEventListener('mouseleave',function(){tip.style.display='none';"
          "cur.setAttribute('visibility','hidden');});});\n"
          /* #hover: show the first chart's hover at its middle (how tests/report/report.py sees it) */
          "if(location.hash=='#hover'){var h=document.querySelector('svg.memory .hover');if(h){"
          "var r=h.getBoundingClientRect();h.dispatchEvent(new MouseEvent('mousemove',{clientX:r.left+r.width/2,"
          "clientY:r.top+r.height/2,bubbles:true}));}}})();\n"
          "</script>\n",
          f);
}
