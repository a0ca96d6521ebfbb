/*
 * tally report: the reports of a run (or of its merged shards) from results.json: copies.md
 * (copies.c), index.html (html.c), trace.json (trace.c), and each cell's call stacks as folded files
 * (stacks.c: peak.folded, copies.folded and allocated.folded in stacks/IMPL/SCENARIO/).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"
#include "harness.h"
#include "report/report.h"
#include "report/stacks.h"
#include "tally/tally.h"

int tly_h_report(const char *dir, json_t *doc)
{
    json_t *results = tly_h_results_list(doc);
    int err = tly_h_write_copies_md(dir, doc);
    if (!err)
        err = tly_h_write_index_html(dir, results);
    if (!err)
        err = tly_h_write_trace(dir, results);
    if (!err)
        err = tly_h_stacks_folded_cells(dir, results);
    return err;
}

void tly_h_cell_key(json_t *entry, char *buf, size_t cap)
{
    const char *impl = json_string_value(json_object_get(entry, "impl"));
    snprintf(buf, cap, "%s/%s", impl ? impl : "tally", tly_h_str(entry, "scenario"));
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
