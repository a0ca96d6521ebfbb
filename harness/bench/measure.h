/*
 * The child side of tally bench (`tally bench-cell SPEC`), shared by its files: one measurement of
 * one kind; the memory policy every kind follows (tly_h_bench_time, in measure.c); the parallel loop
 * and the chunk geometry the baselines share (raw I/O in limits.c, the codec alone in codec.c).
 */
#ifndef TLY_H_BENCH_MEASURE_H
#define TLY_H_BENCH_MEASURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cell/cell.h"

/** One measurement: the cell, the kind, and the array's geometry. */
struct tly_h_bspec {
    const struct tly_h_cell *cell;
    const char *kind; /**< tally | raw | raw_layout | codec | codec_layout | overlap | overlap_layout */
    const char *dir;  /**< a scratch directory, or an s3:// URL */
    bool read, s3;
    bool layout; /**< the kind moves each chunk to or from its strided places in the array */
    int threads, io;
    struct tly_grid grid;
    uint64_t bytes, nchunks, chunk_bytes;
};

/** A kind's operation, as tly_h_bench_time() runs it. */
struct tly_h_bench_pass {
    int (*run)(void *ctx);
    void (*undo)(void *ctx); /**< after a write's pass: remove what it wrote (NULL: nothing to undo) */
    void *ctx;
    bool server; /**< count the CPU of the project's S3 server on this machine too (busy_s) */
};

/** What a timed pass took. */
struct tly_h_bench_timing {
    double secs;
    double busy_s;        /**< this process's CPU seconds (every thread, user and system) in the pass, and the S3
                           *   server's when the pass asks (server_busy_s); < 0: unknown */
    double server_busy_s; /**< of which the S3 server's (scripts/s3-server's daemons); < 0: not counted */
    double cpu_secs;      /**< overlap kinds: the CPU-shared limit's time (overlap.c); 0 elsewhere */
    int64_t peak_extra;   /**< tracked peak above what was live when the pass began */
    struct tly_time_snapshot time_before, time_after; /**< where its time went (tally/timing.h) */
};

/**
 * The memory policy ("prefaulted"): the caller has every buffer the pass touches allocated and
 * touched; one untimed pass (undone), then the timed pass (undone). See measure.c.
 */
int tly_h_bench_time(const struct tly_h_bench_pass *p, struct tly_h_bench_timing *t);

/**
 * A read's output in place of the array: frees @p *data (NULL after) and allocates the output,
 * every page touched, into @p *out. 0 or -ENOMEM.
 */
int tly_h_bench_output(const struct tly_h_bspec *s, char **data, char **out);

/** tly_h_bench_time(), and for a read a check that @p out holds the array afterwards. */
int tly_h_bench_time_read(const struct tly_h_bspec *s, const struct tly_h_bench_pass *p, const char *out,
                          struct tly_h_bench_timing *t);

/** fn(ctx, worker, i) for i in [0, n) on min(threads, n) threads (worker in [0, that)). */
int tly_h_bench_par(int threads, uint64_t n, int (*fn)(void *ctx, int worker, uint64_t i), void *ctx);

/** Workers tly_h_bench_par() uses for @p n tasks on @p threads. */
int tly_h_bench_workers(int threads, uint64_t n);

/** @p n bytes (huge pages asked for, as for a read's output), every page touched; NULL when out of memory. */
void *tly_h_bench_prefaulted(size_t n);

/** The engine's rule for fewer chunks than workers: each chunk gets the idle ones' share. */
uint64_t tly_h_bench_share(const struct tly_h_bspec *s, int workers);

/** Ranges per chunk of a read with @p workers at once (>= 8 MiB each, as the engine splits a lone chunk). */
uint64_t tly_h_bench_read_ways(const struct tly_h_bspec *s, int workers);

/** Task t of a contiguous kind: chunk t / ways, the chunk-sized slice at byte off of the array (n
 * bytes), its part [lo, hi) of ways. */
struct tly_h_bench_slice {
    uint64_t chunk, off;
    size_t n, lo, hi;
};

struct tly_h_bench_slice tly_h_bench_slice_of(const struct tly_h_bspec *s, uint64_t t, uint64_t ways);

/** The runs of chunk @p i (C order over the grid) in the whole array. */
void tly_h_bench_runs(const struct tly_h_bspec *s, uint64_t i, struct tly_runs *rs);

/** raw and raw_layout, local files or S3 objects (limits.c). Takes @p data. */
int tly_h_bench_raw(const struct tly_h_bspec *s, char *data, struct tly_h_bench_timing *t);

/** codec and codec_layout (codec.c). Takes @p data. */
int tly_h_bench_codec(const struct tly_h_bspec *s, char *data, struct tly_h_bench_timing *t);

/** overlap and overlap_layout: a read's bytes over the longer of reading the encoded chunks and
 * decoding them (overlap.c). Takes @p data. */
int tly_h_bench_overlap(const struct tly_h_bspec *s, char *data, struct tly_h_bench_timing *t);

#endif
