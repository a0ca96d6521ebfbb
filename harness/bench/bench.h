/*
 * The parent side of tally bench, shared by the files of the bench room: the run's settings, the
 * statistics that turn repetitions into figures and a row into a verdict (stats.c), the rows run
 * as children (row.c), bench.md (md.c) and the comparison of two bench documents (compare.c).
 */
#ifndef TLY_H_BENCH_H
#define TLY_H_BENCH_H

#include <jansson.h>
#include <regex.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "harness.h"

/** The document's schema word. */
#define TLY_H_BENCH_SCHEMA "tally-bench/2"

/** Repetitions: at least 5 (a median needs them), at most this. */
#define TLY_H_BENCH_MIN_REPS 5
#define TLY_H_BENCH_MAX_REPS 99

/** A ratio to a physical limit above this marks its row invalid: the limit was mis-measured. */
#define TLY_H_BENCH_LIMIT_SLACK 1.05

/** The memory policy every kind follows (bench-cell's measure.c says how). */
#define TLY_H_BENCH_MEMORY_POLICY "prefaulted"

/** A run of tally bench. */
struct tly_h_bench {
    bool quick, json;
    const char *out;
    int reps;
    double max_spread; /**< a figure whose (max - min) / median exceeds this is unstable */
    const char *filter_text;
    regex_t filter;
    bool has_filter;
    json_t *plan;           /**< scenarios/bench.json */
    char dir[TLY_H_PATH];   /**< local scratch */
    char s3url[TLY_H_PATH]; /**< s3://bucket/tally-bench-PID, or "" */
    int failures;           /**< measurements of tally or of a limit that did not run */
};

/** One row of the matrix: op x store x codec x layout. */
struct tly_h_bench_case {
    const char *op, *store, *codec, *codec_spec, *layout_key;
    char name[128], key[128];
    uint64_t shape[2], chunks[2];
    uint64_t inner[2]; /**< sharded: the inner chunks' shape (chunks is the shards'); 0: not sharded */
    int threads, io;
    uint64_t mem;
};

/* ---- stats.c: pure functions of numbers and JSON (tests/bench/bench_stats.c tests them) ---- */

/** One figure from its repetitions. */
struct tly_h_bench_fig {
    int n;                /**< repetitions measured (0: none) */
    double med, min, max; /**< GB/s */
    double spread;        /**< (max - min) / median; 0 with fewer than two */
};

/** The median, range and spread of @p v[0..n) (not reordered). */
void tly_h_bench_fig_of(const double *v, int n, struct tly_h_bench_fig *f);

/** The median of @p v[0..n) of whole numbers (peaks), 0 when n is 0. */
int64_t tly_h_bench_median_i(const int64_t *v, int n);

/**
 * A figure as JSON: {"gbps", "gbps_min", "gbps_max", "spread", "unstable", "reps": [...]}, the
 * numbers null when nothing was measured. Unstable: spread above @p max_spread.
 */
json_t *tly_h_bench_fig_json(const double *v, int n, double max_spread);

/**
 * The verdict on a row that holds "figures" (name -> figure JSON: "tally", "untracked", the limit
 * named by "limit", the layout's named by "layout_limit", "zarr_python"): sets the row's own figures
 * (gbps, gbps_min, gbps_max, spread, the baselines' medians), every ratio with its range
 * (ratio_to_X, ratio_to_X_min, ratio_to_X_max; null where it does not apply, or where a figure it
 * needs is unstable or missing, or where it is above TLY_H_BENCH_LIMIT_SLACK to a physical limit),
 * "withheld" (ratio -> why it is null though it applies: unstable | invalid | not measured),
 * "overlap_reachable" (with _min, _max: the CPU-shared limit over the overlapped one, repetition by
 * repetition: the most of the overlapped limit the machine's CPUs allow; null without both), and
 * "unstable", "invalid", "status" (ok | unstable | invalid | error) and "reasons" (words).
 */
void tly_h_bench_judge(json_t *row);

/** Whether @p doc is a bench document of this schema with rows; else false after a message naming
 *  @p option (--compare, --judge) and @p which document. */
bool tly_h_bench_is_doc(json_t *doc, const char *option, const char *which);

/** The ratio keys a bench row may carry, NULL-terminated (compare.c and md.c walk them). */
extern const char *const tly_h_bench_ratio_keys[];

/**
 * Compare bench documents @p old and @p new row by row (matched by "key"): per figure (every ratio;
 * GB/s when both measured the same array), a change is significant only when the two [min, max]
 * ranges do not overlap and the medians differ by more than @p tolerance of the old one. A ratio
 * that drops so is a regression; GB/s that does is shown ("slower") but moves with the machine and
 * is none. Prints one line per figure apart and a summary on @p f. Returns the number of
 * regressions, or -1 (with a message on stderr) when a document is not a bench document.
 */
int tly_h_bench_compare(json_t *old, json_t *new, double tolerance, FILE *f);

/* ---- row.c ---- */

/** Measure one row: every kind interleaved, rep by rep, each in a child; the judged row. */
json_t *tly_h_bench_row(struct tly_h_bench *b, const struct tly_h_bench_case *c);

/** Measure one scaling row (tally's write and read of @p c), interleaved; the row. */
json_t *tly_h_bench_scaling_row(struct tly_h_bench *b, const struct tly_h_bench_case *c, uint64_t per_dim);

/* ---- md.c ---- */

/** bench.md of the document @p doc. */
void tly_h_bench_write_md(FILE *f, json_t *doc);

/* ---- compare.c ---- */

/** tally bench --compare OLD NEW: 0, 1 on a regression, 2 on an error. */
int tly_h_bench_compare_files(const char *old_path, const char *new_path, double tolerance);

#endif
