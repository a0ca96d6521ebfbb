/*
 * A measured operation: the window around it, and the result object every report shares (the
 * figures are defined in docs/design.md, "The figures every report shares").
 */
#ifndef TLY_H_RESULT_H
#define TLY_H_RESULT_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "cell/cell.h"
#include "tally/tally.h"

/** The measurement window around one operation. */
struct tly_h_window {
    struct tly_mem_snapshot before, after;
    struct tly_time_snapshot time_before, time_after;
    struct tly_mem_crosscheck xc; /**< read when the window closes */
    uint64_t t0_ns, t1_ns;
    double wall_s;
    bool traced;               /**< the event ring recorded the window */
    struct tly_h_resident *rs; /**< the resident sampler while the window is open (tly_h_window_resident) */
    bool resident_ok;          /**< resident_before and resident_peak were sampled */
    int64_t resident_before, resident_peak; /**< anonymous resident bytes (cell/resident.h) */
};

/**
 * Open the window: peaks restart here; before_bytes is the live bytes now. While tly_h_window_trace
 * is on, the event ring records it (mapped before the peaks restart: in no figure).
 */
void tly_h_window_open(struct tly_h_window *w);

/** Close the window: counters, cross-checks, time, wall time and the timeline as of now. */
void tly_h_window_close(struct tly_h_window *w);

/** Record the next windows' events for a trace (tally run's cells do; the bench does not). */
void tly_h_window_trace(bool on);

/** Sample the next windows' resident memory (tally run's cells do; the bench does not). */
void tly_h_window_resident(bool on);

/**
 * The last closed window's events as Chrome trace events (pid 0: the report sets it), times from
 * @p t0_ns (the window's start on the timeline's clock) to @p t1_ns; the events the ring dropped in
 * @p dropped (cell/events.c).
 */
json_t *tly_h_trace_events(uint64_t t0_ns, uint64_t t1_ns, uint64_t *dropped);

/**
 * The window's time (cell/timing.c): per stage {busy_s, waiting_s, busy_fraction (of the workers'
 * capacity: wall x workers), busy_threads (busy over wall)} into @p stage_time, and the operation's
 * {wall_s, workers, threads, io_concurrency, chunks, remote, worker_s, waits {ticket_s, gate_s,
 * io_s, poll_s}, http_requests, http_in_flight} as the return value. New references.
 */
json_t *tly_h_time_json(const struct tly_time_snapshot *a, const struct tly_time_snapshot *b, double wall_s,
                        const struct tly_io_stats *io, bool remote, json_t **stage_time);

/**
 * The bottleneck verdict of a stage-time table and its operation's time (README, "Where the time
 * goes"): {resource, sentence, inputs}; a new reference.
 */
json_t *tly_h_bottleneck(json_t *stage_time, json_t *time);

/** "stage_time", "time" and "bottleneck" of window @p w into result @p o (null when time is off). */
void tly_h_time_into(json_t *o, const struct tly_h_window *w, const struct tly_io_stats *io, bool remote);

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

/**
 * A peak extra below this is the engine's (or a stack's) fixed working set — codec contexts, pool
 * blocks, libcurl, thread state: measured at 0.2-2.3 MiB for one 400 KiB chunk here — not copies of
 * the array, however small the array. A cell whose rounding such an extra drives reports 0 extra
 * copies and says it is overhead-bound, with the bytes beside it.
 */
#define TLY_H_FIXED_OVERHEAD ((int64_t)16 << 20)

/** peak - before - output, in bytes (before: tracked live bytes when the window opened). */
int64_t tly_h_peak_extra_bytes(const struct tly_h_result *r);

/** (peak - before - output) / array: memray-array's figure before rounding. */
double tly_h_peak_extra_ratio(const struct tly_h_result *r);

/**
 * memray-array's extra copies, round(extra / array), except that an extra under the fixed overhead
 * counts as 0 (and sets @p overhead_bound when that changed the count).
 */
long long tly_h_extra_copies(int64_t extra_bytes, uint64_t array_bytes, bool *overhead_bound);

/** "peak extra 95.4 MiB (1.000 x array) => 1 extra copies", or the overhead-bound wording. */
void tly_h_extra_text(int64_t extra_bytes, uint64_t array_bytes, char *buf, size_t cap);

/**
 * A read's store_bytes_read / needed_bytes (the bytes it read from the store over the encoded bytes
 * of the chunks its region touches); -1 for a write or when it needed no stored byte (every chunk
 * missing), which results write as null.
 */
double tly_h_read_amplification(const char *op, const struct tly_io_stats *io);

/**
 * A result object's store traffic as text for the reports (@p cap bytes each): store_bytes_read and
 * store_bytes_written ("95.4 MiB") and read_amplification ("1.0001"), each "—" where the result has
 * none (another stack's; a write's amplification).
 */
void tly_h_traffic_text(json_t *result, char *read, char *written, char *amp, size_t cap);

/** Tracked live bytes over what jemalloc says the process allocated since the hooks went in. */
double tly_h_coverage(const struct tly_mem_crosscheck *xc);

/** The result object; a new reference. With @p timeline, the last closed window's timeline too. */
json_t *tly_h_result_json(const struct tly_h_result *r, bool timeline);

/** The per-stage table and the figures, for --profile. */
void tly_h_result_print(FILE *f, const struct tly_h_result *r);

/**
 * Print the per-stage table of a window (the difference between @p before and @p after): allocs,
 * alloc bytes, own peak, at-peak split, copied bytes as a multiple of @p array_bytes.
 */
void tly_h_print_profile(FILE *f, const struct tly_mem_snapshot *before, const struct tly_mem_snapshot *after,
                         uint64_t array_bytes);

/**
 * Run cell @p c's operation through the engine at @p url inside the window of @p r (whose op, meta
 * and store the caller set). A write writes @p *data (the caller keeps it). A read first writes the
 * fixture from @p *data outside the window and frees it (*data becomes NULL), so that the process
 * holds what a read holds; its output is allocated inside the window and returned in @p *out.
 */
int tly_h_measure_engine(const struct tly_h_cell *c, const char *url, void **data, struct tly_h_result *r, void **out);

#endif
