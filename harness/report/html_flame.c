/*
 * index.html's flame graphs: a result's call stacks ("stacks", written by the preload or, for tally's
 * own cells, by the engine) drawn as icicles, outermost frame on top, a frame's width its bytes (at the
 * peak, or copied). Drawn here in SVG, without a library: a <title> on each frame says its name and
 * bytes, and a click on a frame zooms to it (a click on the top bar zooms out). The result may come
 * from a profiled process: every member is checked for its type, and what is not as the preload or
 * the engine writes it is left out.
 *
 * Why not d3-flame-graph (issue 21 asks for it, or the reason): evaluated on 2026-12-06 with
 * d3-flame-graph 5.0.0 (Apache-2.0) and d3 7.9.2 from npm. It works offline from one inlined file:
 * its UMD bundle (flamegraph.default(), not flamegraph.flamegraph()) over d3's modules as globals drew
 * a strided read's copy sites in headless Chromium, every frame a <g> with its label. But:
 *  - it is drawn by script when the page is viewed, from JavaScript the report must carry: the 13 d3
 *    modules it needs (UMD, minified) are 118,891 bytes, itself 12,768 and its CSS 584: 132,285 bytes
 *    in every index.html (294,003 with d3.min.js whole); the own SVG's script is about 1 KB, and its
 *    frames are in the page as written (a DOM dump, a screenshot and a reader without script see them);
 *  - that JavaScript must be found when `tally report` (or `tally run`, `tally profile`) writes the
 *    page: harness/impl/node_modules exists only where scripts/deps ran npm ci, not where tally's
 *    binary is used or where a CI job only merges results; the page would need a second renderer for
 *    when it is missing (or a report that fails), where the own SVG needs nothing (this file reads no
 *    file: index.html is the same with or without node_modules);
 *  - its frames are <foreignObject> with HTML <div> labels inside the SVG: an element the rest of
 *    index.html (every figure hand-written SVG, html.h) does not use, and that the writers' elements
 *    tests/report/hostile_results.py allows do not include;
 *  - what it adds over this file (search, animated zoom, a details bar) the flame graphs here do not
 *    need for two charts of at most 200 sites a cell; its tooltip counts "samples", which bytes are not.
 * So the flame graphs stay tally's own SVG (this file, about 170 lines).
 */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "report/html.h"
#include "report/report.h"

#define WIDTH 960.0
#define ROW 17
#define MIN_PX 0.4
#define DEPTH_MAX 200

struct node {
    const char *name; /* borrowed from the result */
    long long bytes;
    struct node *child, *next;
};

static struct node *child_of(struct node *n, const char *name)
{
    for (struct node *c = n->child; c; c = c->next)
        if (strcmp(c->name, name) == 0)
            return c;
    struct node *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->name = name;
    c->next = n->child;
    n->child = c;
    return c;
}

static void add(struct node *root, json_t *frames, long long bytes)
{
    struct node *n = root;
    size_t i;
    json_t *fr;
    root->bytes += bytes;
    json_array_foreach(frames, i, fr)
    {
        if (i >= DEPTH_MAX || !json_is_string(fr) || (n = child_of(n, json_string_value(fr))) == NULL)
            return;
        n->bytes += bytes;
    }
}

static void drop(struct node *n)
{
    while (n) {
        struct node *next = n->next;
        drop(n->child);
        free(n);
        n = next;
    }
}

/* Python frames one hue, frames with a source line another, the rest (library symbols, addresses) grey. */
static const char *color(const char *name, int depth)
{
    static const char *const py[] = {"#f2b45a", "#f0c27b"}, *const src[] = {"#e8745a", "#ec8f75"},
                             *const lib[] = {"#b9b9c4", "#cacad3"};
    bool is_py = strstr(name, ".py:") != NULL || strstr(name, "<frozen") != NULL;
    bool has_src = strstr(name, ".c:") || strstr(name, ".cc:") || strstr(name, ".cpp:") || strstr(name, ".h:") ||
                   (strchr(name, '[') == NULL && strstr(name, "+0x") == NULL);
    return (is_py ? py : has_src ? src : lib)[depth & 1];
}

static void frame(FILE *f, const struct node *n, double x, int depth, double scale, long long total)
{
    double w = (double)n->bytes * scale;
    if (w < MIN_PX)
        return;
    char b[32];
    fprintf(f, "<g data-x='%.2f' data-w='%.2f'><rect x='%.2f' y='%d' width='%.2f' height='%d' fill='%s'/><title>", x, w,
            x, depth * ROW, w, ROW - 1, color(n->name, depth));
    tly_h_html_text(f, n->name);
    fprintf(f, "\n%s (%.1f%%)</title>", tly_h_bytes(b, sizeof b, (double)n->bytes),
            total ? 100.0 * (double)n->bytes / (double)total : 0.0);
    fprintf(f, "<text x='%.2f' y='%d'>", x + 3, depth * ROW + ROW - 5);
    size_t fit = w > 24 ? (size_t)((w - 6) / 6.5) : 0, len = strlen(n->name);
    if (fit > 0) {
        char shown[256];
        size_t k = len <= fit ? len : fit > 2 ? fit - 2 : 0;
        snprintf(shown, sizeof shown, "%.*s%s", (int)(k < sizeof shown - 3 ? k : sizeof shown - 3), n->name,
                 k < len ? ".." : "");
        tly_h_html_text(f, shown);
    }
    fputs("</text></g>\n", f);
    for (const struct node *c = n->child; c; c = c->next) {
        frame(f, c, x, depth + 1, scale, total);
        x += (double)c->bytes * scale;
    }
}

static int depth_of(const struct node *n)
{
    int d = 0;
    for (const struct node *c = n->child; c; c = c->next) {
        int k = depth_of(c);
        d = k > d ? k : d;
    }
    return d + 1;
}

static void flame(FILE *f, json_t *b, const char *title)
{
    json_t *sites = json_object_get(b, "sites"), *other = json_object_get(b, "other_bytes");
    struct node root = {"all", 0, NULL, NULL};
    size_t i;
    json_t *s;
    json_array_foreach(sites, i, s)
    {
        json_t *bytes = json_object_get(s, "bytes"), *frames = json_object_get(s, "frames");
        if (json_is_integer(bytes) && json_integer_value(bytes) > 0 && json_is_array(frames))
            add(&root, frames, (long long)json_integer_value(bytes));
    }
    if (json_is_integer(other) && json_integer_value(other) > 0) {
        struct node *o = child_of(&root, "[other sites]");
        if (o) {
            o->bytes += (long long)json_integer_value(other);
            root.bytes += o->bytes;
        }
    }
    if (root.bytes > 0) {
        char tb[32];
        fprintf(f, "<h4>%s: %s</h4>\n<svg class='flame' viewBox='0 0 %.0f %d' width='%.0f'>\n", title,
                tly_h_bytes(tb, sizeof tb, (double)root.bytes), WIDTH, depth_of(&root) * ROW, WIDTH);
        frame(f, &root, 0, 0, WIDTH / (double)root.bytes, root.bytes);
        fputs("</svg>\n", f);
    }
    drop(root.child);
}

void tly_h_html_flames(FILE *f, json_t *e)
{
    json_t *st = json_object_get(e, "stacks");
    if (!json_is_object(st) || !json_is_true(json_object_get(st, "enabled")))
        return;
    json_t *p = json_object_get(st, "peak"), *c = json_object_get(st, "copies");
    if (json_is_object(p) && json_is_array(json_object_get(p, "sites")))
        flame(f, p, "where the memory at the peak was allocated (call stacks, outermost on top)");
    if (json_is_object(c) && json_is_array(json_object_get(c, "sites")))
        flame(f, c, "where the bytes were copied (call stacks, outermost on top)");
}

void tly_h_html_flame_script(FILE *f)
{
    /* A click on a frame zooms to it: every frame's x and width scaled to the clicked one's span. */
    fputs("<script>\n"
          "document.querySelectorAll('svg.flame').forEach(function(svg){\n"
          " var W=svg.viewBox.baseVal.width,gs=svg.querySelectorAll('g');\n"
          " gs.forEach(function(g){g.addEventListener('click',function(){\n"
          "  var zx=+g.dataset.x,zw=+g.dataset.w;\n"
          "  gs.forEach(function(h){var x=(+h.dataset.x-zx)*W/zw,w=+h.dataset.w*W/zw,r=h.querySelector('rect'),"
          "t=h.querySelector('text');\n"
          "   var out=x+w<=0.01||x>=W-0.01;h.style.display=out?'none':'';if(out)return;\n"
          "   r.setAttribute('x',x);r.setAttribute('width',w);t.setAttribute('x',x+3);\n"
          "   var name=h.querySelector('title').textContent.split('\\n')[0],fit=w>24?Math.floor((w-6)/6.5):0;\n"
          "   t.textContent=fit<=0?'':name.length<=fit?name:name.slice(0,Math.max(fit-2,0))+'..';});});});});\n"
          "</script>\n",
          f);
}
