/*
 * tally check, the gate: a run's figures against the committed baseline. Every verdict is a line
 * {kind, cell, figure, owner, old, new, tolerance, reason}, printed, and written as JUnit and as a
 * Markdown summary for CI (check_out.c).
 */
#ifndef TLY_H_CHECK_H
#define TLY_H_CHECK_H

#include <jansson.h>
#include <stdbool.h>

/** The schema of baseline.json. */
#define TLY_H_BASELINE_SCHEMA "tally-baseline/2"

/** Kinds of verdict lines; the first four fail the check. */
#define TLY_H_REGRESSION "REGRESSION"
#define TLY_H_MISSING "MISSING"
#define TLY_H_FAILED "FAILED"
#define TLY_H_SLOWER "SLOWER" /* fails only with --fail-on-throughput */
#define TLY_H_IMPROVED "improved"
#define TLY_H_FASTER "faster"
#define TLY_H_NEW "new"
#define TLY_H_ALLOWED "missing (allowed)"
#define TLY_H_NOTE "note"
#define TLY_H_NEW_FIGURE "new figure" /* the run has a figure its baseline cell has not: shown, never failed */

/** True when a line of @p kind fails the check. */
bool tly_h_check_fails(const char *kind, bool fail_on_throughput);

/** A REGRESSION line of @p lines from @p from on whose owner is a library gets the site where run entry
 *  @p e copied most for it ("site" and its reason), when @p e has call stacks (check_sites.c). */
void tly_h_check_name_sites(json_t *lines, size_t from, json_t *e);

/** The line as one line of text (no newline). */
void tly_h_check_line_text(json_t *line, char *buf, size_t cap);

/** JUnit XML of the check: a testcase per baseline cell, a failure per failing line. */
int tly_h_check_junit(const char *path, json_t *lines, json_t *cells, bool fail_on_throughput);

/** A Markdown summary of the check (for $GITHUB_STEP_SUMMARY), appended to @p path. */
int tly_h_check_summary(const char *path, json_t *lines, int compared, bool fail_on_throughput);

#endif
