/*
 * What a run leaves: results.json, and the reports made from it (copies.md, index.html with the
 * memory timelines, trace.json for Perfetto, junit.xml), and the gate that compares a run with the
 * committed baseline (tally check).
 */
#ifndef TLY_H_REPORT_H
#define TLY_H_REPORT_H

#include <jansson.h>

/** DIR/results.json as a list, or NULL after saying on stderr (as `tally CMD`) why not. */
json_t *tly_h_load_results(const char *dir, const char *cmd);

/** Write copies.md, index.html and trace.json for @p results into @p dir. */
int tly_h_report(const char *dir, json_t *results);

/** JUnit XML: a testcase per cell; failed budgets as <failure>, skipped cells as <skipped>. */
int tly_h_write_junit(const char *path, json_t *results);

#endif
