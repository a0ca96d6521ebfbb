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

/*
 * The escaping of each output format (escape.c): every string from a results file reaches its sink
 * through one of these. Each replaces a byte that is not valid UTF-8.
 */
/** XML text or attribute value (junit.xml, check.xml): & < > " ' as references, \t \n \r as
 *  character references, other control characters, U+FFFE and U+FFFF as '?'. */
void tly_h_xml_text(FILE *f, const char *s);
/** HTML text or attribute value (index.html and its SVG): & < > " ' as references, control
 *  characters but \t and \n as U+FFFD. */
void tly_h_html_text(FILE *f, const char *s);
/** JSON inside an HTML <script> element: jansson's text with <, > and & as \u escapes, so that no
 *  string can end the element. */
void tly_h_html_json(FILE *f, json_t *v);
/** Markdown table cells and code spans (copies.md, the check's summary): control characters as '?',
 *  | escaped, ` as ', & < > as references. */
void tly_h_md_text(FILE *f, const char *s);
/** The terminal: control characters (C0, DEL, C1) and invalid bytes as \xNN, \ doubled. */
void tly_h_term_text(FILE *f, const char *s);
/** tly_h_term_text into @p buf (@p cap bytes, cut only between characters); returns @p buf. */
const char *tly_h_term(char *buf, size_t cap, const char *s);
/** True when @p s holds a control character (C0, DEL, C1) or is not valid UTF-8. */
bool tly_h_text_has_controls(const char *s);
/** @p v, or 0 when it is not finite: what a writer prints is never inf or nan. */
double tly_h_finite(double v);

/**
 * Check a results document against its schema (docs/design.md, "The figures every report shares"):
 * every figure of the type and range it is documented with (counts non-negative integers; bytes
 * non-negative integers; ratios and seconds finite and non-negative, within bounds that keep every
 * sum and product a report makes finite), names of cells, stages and libraries without control
 * characters, each cell (impl/scenario) once. 0, or an error (TLY_EFORMAT) naming @p file, the cell
 * and the key. report, check and check --update load through it (tly_h_results_load); tally profile
 * checks what it writes.
 */
int tly_h_results_validate(json_t *doc, const char *file);

/**
 * One result object (@p e, of a results document or the preload's) against the schema; 0, or an error
 * naming @p file, the cell (@p e's impl/scenario, or "(unnamed)") and the key.
 */
int tly_h_result_validate(json_t *e, const char *file);

/** A baseline's cells (tally check --baseline FILE): their figures as tly_h_result_validate's. */
int tly_h_baseline_validate(json_t *baseline, const char *file);

/* The report writers, and what they share. */
int tly_h_write_copies_md(const char *dir, json_t *doc);
int tly_h_write_index_html(const char *dir, json_t *results);
int tly_h_write_trace(const char *dir, json_t *results);
const char *tly_h_str(json_t *o, const char *k);
const char *tly_h_series_color(const char *name, size_t column);

/** An entry's cell name with its implementation: "tally/write-local-none-v2-one-chunk". */
void tly_h_cell_key(json_t *entry, char *buf, size_t cap);

#endif
