/*
 * The figures every result shares, derived in one place from what was counted (docs/design.md, "The
 * figures every report shares"): an engine cell, a foreign stack's cell and tally profile all call
 * tly_h_figures() on the counters they recorded, so the headline has one definition and one set of
 * edge cases.
 *
 * Three peaks, each with its extra over what was live when the window opened (and over the output,
 * or for a whole-process window over the program's own array), in bytes and x array:
 *
 *   requested  the bytes the program asked for (as heaptrack and memray count them; blocks under
 *              64 KiB at their size class): the headline, peak_bytes and peak_extra_* at the top level
 *   reserved   the same blocks at jemalloc's usable sizes (a size class can be 12% above its request)
 *   resident   anonymous resident memory (RssAnon), sampled every millisecond from outside the process
 */
#ifndef TLY_H_FIGURES_H
#define TLY_H_FIGURES_H

#include <jansson.h>
#include <stdbool.h>

/* Keys of the counters a result records for tly_h_figures() */
#define TLY_K_ARRAY "array_bytes"
#define TLY_K_OUTPUT "output_bytes"
#define TLY_K_BEFORE "before_bytes"
#define TLY_K_PEAK "peak_bytes"
#define TLY_K_RESERVED_BEFORE "reserved_before_bytes"
#define TLY_K_RESERVED_PEAK "reserved_peak_bytes"
#define TLY_K_RESIDENT_BEFORE "resident_before_bytes"
#define TLY_K_RESIDENT_PEAK "resident_peak_bytes"
/* ... and of what it derives */
#define TLY_K_EXTRA "peak_extra_bytes"
#define TLY_K_EXTRA_RATIO "peak_extra_ratio"
#define TLY_K_EXTRA_COPIES "extra_copies"
#define TLY_K_OVERHEAD_BOUND "overhead_bound"
#define TLY_K_EXTRA_NOTE "peak_extra_note"
#define TLY_K_PEAKS "peaks"
#define TLY_K_PEAKS_NOTE "peaks_note"

/** Requested and resident peak extras further apart than this (x array) are explained in peaks_note. */
#define TLY_H_PEAKS_APART 0.25

/**
 * Derive every peak figure of result @p r from its counters (the TLY_K_* inputs above; resident ones
 * may be absent: its figures are then null, with the reason in peaks.resident_about). When
 * @p program_array is true (a whole-process window) the program's own array is in the peak and is
 * taken off as a read's output would be; output_bytes is set to it. A peak extra is never negative:
 * one is clamped to 0 and peak_extra_note says why.
 */
void tly_h_figures(json_t *r, bool program_array);

#endif
