/*
 * tally profile's call stacks: the primary result's "stacks" (written by the preload) as folded
 * stacks files (peak.folded, copies.folded: "frame;frame;frame bytes" per line, outermost frame
 * first, the format of flamegraph.pl and speedscope) and as the top sites of the text summary.
 */
#ifndef TLY_H_PROFILE_STACKS_H
#define TLY_H_PROFILE_STACKS_H

#include <jansson.h>
#include <stdio.h>

/**
 * Write @p dir/peak.folded and @p dir/copies.folded from result @p r's "stacks" (the sites past the
 * listed ones as one "[other sites]" line, so a file's counts add up to the block's total_bytes).
 * Nothing is written when the result has no stacks (TALLY_PROFILE_STACKS=0). Returns 0 or a
 * negative error (with a message).
 */
int tly_h_stacks_folded(const char *dir, json_t *r);

/** The top 3 sites of the memory at the peak and of the copied bytes, as lines of the summary. */
void tly_h_stacks_print(FILE *f, json_t *r);

#endif
