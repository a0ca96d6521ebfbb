/*
 * A result's call stacks ("stacks": written by the preload for another stack's process, by the engine
 * for tally's own cells) as folded stacks files (peak.folded, copies.folded, allocated.folded:
 * "frame;frame;frame bytes" per line, outermost frame first, the format of flamegraph.pl and
 * speedscope) and as the top sites of a text summary (tally profile's, a failed cell of tally run).
 */
#ifndef TLY_H_REPORT_STACKS_H
#define TLY_H_REPORT_STACKS_H

#include <jansson.h>
#include <stdio.h>

/**
 * Write @p dir/peak.folded, @p dir/copies.folded and @p dir/allocated.folded from result @p r's
 * "stacks" (the sites past the listed ones as one "[other sites]" line, so a file's counts add up to
 * the block's total_bytes). Nothing is written when the result has no stacks (TALLY_PROFILE_STACKS=0),
 * nor a block the result lacks. Returns 0 or a negative error (with a message).
 */
int tly_h_stacks_folded(const char *dir, json_t *r);

/**
 * The folded files of every result of @p results that has stacks, each in @p dir/stacks/IMPL/SCENARIO/
 * (the cell's key, tly_h_cell_key, with any character but letters, digits, '.', '-' and '_' made '_').
 */
int tly_h_stacks_folded_cells(const char *dir, json_t *results);

/** The top 3 sites of the memory at the peak and of the copied bytes, as lines of a summary (each
 * line begins with @p indent). */
void tly_h_stacks_print(FILE *f, json_t *r, const char *indent);

#endif
