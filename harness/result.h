/* A measured operation: the window around it and the result object every report shares. */
#ifndef TLY_CALLER_RESULT_H
#define TLY_CALLER_RESULT_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "tally/engine.h"
#include "tally/mem.h"

/** The measurement window around one operation. */
struct tly_h_window {
    struct tly_mem_snapshot before, after;
    struct tly_mem_crosscheck xc; /**< read when the window closes */
    uint64_t t0_ns;
    double wall_s;
};

/** Open the window: peaks restart here; baseline_bytes is the live bytes now. */
void tly_h_window_open(struct tly_h_window *w);

/** Close the window: counters, cross-checks and wall time as of now. */
void tly_h_window_close(struct tly_h_window *w);

/** What was measured, and on what. */
struct tly_h_result {
    const char *op; /**< "write" | "read" */
    const struct tly_meta *meta;
    const char *store; /**< "local" | "s3" */
    uint64_t array_bytes;
    uint64_t output_bytes; /**< reads: heap bytes of the output allocated inside the window */
    struct tly_io_stats io;
    struct tly_h_window win;
};

/** The figures of ARCHITECTURE.md. */
double tly_h_peak_extra_ratio(const struct tly_h_result *r);

/** Tracked live bytes over what jemalloc says the process allocated since the hooks went in. */
double tly_h_coverage(const struct tly_mem_crosscheck *xc);

/** The result object (engine issue's schema); a new reference. */
json_t *tly_h_result_json(const struct tly_h_result *r);

/** The per-stage table and the figures, for --profile. */
void tly_h_result_print(FILE *f, const struct tly_h_result *r);

/** The codec's configuration as JSON (numcodecs names); a new reference. */
json_t *tly_h_codec_json(const struct tly_codec *c);

#endif
