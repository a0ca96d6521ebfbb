/*
 * What a run leaves: results.json (the results and their provenance), the reports made from it
 * (copies.md, index.html with the memory timelines, trace.json for Perfetto, junit.xml), and the
 * gate that compares a run with the committed baseline (tally check).
 */
#ifndef TLY_H_REPORT_H
#define TLY_H_REPORT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "harness.h"

/** The schema of results.json; check and report refuse another. */
#define TLY_H_RESULTS_SCHEMA "tally-results/2"

/**
 * A new results document for a run of @p cells_total cells of @p matrix (@p filter and @p shard as
 * given, NULL when not): provenance filled (schema, tally version, git commit, date, host, jemalloc,
 * build type, tracking), an empty "results" list. A new reference.
 */
json_t *tly_h_results_new(const char *matrix, size_t cells_total, const char *filter, const char *shard);

/** The document's list of results (borrowed). */
json_t *tly_h_results_list(json_t *doc);

/**
 * Load the results of @p n runs (each a directory holding results.json, or the file), merged in
 * matrix order when there are several (the shards of one run: same matrix, tally and commit; each
 * cell once). NULL after saying on stderr (as `tally CMD`) why not.
 */
json_t *tly_h_results_load(char **paths, int n, const char *cmd);

/** Write copies.md, index.html and trace.json for the results document @p doc into @p dir. */
int tly_h_report(const char *dir, json_t *doc);

/** JUnit XML: a testcase per cell; failed budgets as <failure>, skipped cells as <skipped>. */
int tly_h_write_junit(const char *path, json_t *results);

/** @p s with XML's special characters escaped. */
void tly_h_xml_text(FILE *f, const char *s);

/* The report writers, and what they share. */
int tly_h_write_copies_md(const char *dir, json_t *doc);
int tly_h_write_index_html(const char *dir, json_t *results);
int tly_h_write_trace(const char *dir, json_t *results);
const char *tly_h_str(json_t *o, const char *k);
void tly_h_html_text(FILE *f, const char *s);
const char *tly_h_series_color(const char *name, size_t column);

/** An entry's cell name with its implementation: "tally/write-local-none-v2-one-chunk". */
void tly_h_cell_key(json_t *entry, char *buf, size_t cap);

#endif
