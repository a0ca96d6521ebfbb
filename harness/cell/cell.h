/*
 * The cell: one operation on one array with one implementation — what `tally run`, `tally bench`,
 * `tally selftest`, the scenario programs and the adapters of other stacks all run. A cell is
 * described by a JSON object (a line of the expanded matrix); it is parsed and validated here, in
 * one place: an unknown key, a wrong type or a value out of range is an error naming where it was.
 */
#ifndef TLY_H_CELL_H
#define TLY_H_CELL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "tally/tally.h"

/** A parsed cell. Strings point into the cell's JSON, which the cell holds a reference to. */
struct tly_h_cell {
    json_t *json;
    const char *scenario;   /**< its name (unique in a matrix) */
    const char *impl;       /**< "tally" (the engine, in process) or an adapter's name */
    const char *op;         /**< "write" | "read" */
    const char *store;      /**< "local" | "s3" */
    const char *codec;      /**< the axis word: "none" | "blosc" | "zstd" */
    const char *codec_spec; /**< tally's codec option ("blosc:cname=lz4,clevel=5,shuffle=1") */
    const char *format;     /**< "v2" | "v3" */
    const char *layout;     /**< the layout's name ("one-chunk", ...) */
    const char *program;    /**< a custom scenario program's path, or NULL */
    const char *dir;        /**< where the array goes (bench: a scratch directory or s3:// URL), or NULL */
    struct tly_dtype dtype;
    int rank; /**< 0 for a custom program that brings its own array */
    uint64_t shape[TLY_MAX_RANK], chunks[TLY_MAX_RANK];
    bool sharded; /**< v3 sharding: chunks is the shard shape, inner the inner chunks' */
    uint64_t inner[TLY_MAX_RANK];
    bool index_start; /**< the shard index at the start (default the end) */
    bool has_region;  /**< a read of this region only (else the whole array) */
    struct tly_region region;
    struct tly_io_opts opts; /**< threads, io_concurrency, memory_limit, part_size (0: defaults) */
    bool verify;             /**< check the data after the window (default true) */
    bool baseline;           /**< compared with the baseline (default true) */
    long long index;         /**< its position in the expanded matrix (-1: none) */
    json_t *budgets;         /**< the limits that apply to it (an object; may be empty) */
};

/**
 * Parse and validate @p j into @p c (which takes a reference to @p j). @p where names the cell's
 * origin for messages ("scenarios/matrix.json: scenarios[0]"). Returns 0 or TLY_EFORMAT/TLY_EUSAGE.
 */
int tly_h_cell_parse(json_t *j, const char *where, struct tly_h_cell *c);

/** Drop the cell's reference to its JSON. */
void tly_h_cell_release(struct tly_h_cell *c);

/** Bytes of the cell's array. */
uint64_t tly_h_cell_bytes(const struct tly_h_cell *c);

/** Bytes the cell's operation moves: its region's, or the whole array's. */
uint64_t tly_h_cell_op_bytes(const struct tly_h_cell *c);

/** Metadata for the cell's array (fill 0; default separators; sharded when the cell says so). */
int tly_h_cell_meta(const struct tly_h_cell *c, struct tly_meta *m);

/** Metadata for a new array (chunks NULL: one chunk; fill 0; default separators). */
int tly_h_build_meta(const char *format, const struct tly_dtype *dt, int rank, const uint64_t *shape,
                     const uint64_t *chunks, const char *codec, const char *separator, struct tly_meta *m);

/**
 * Make @p m (a v3 array's, its chunks the shard shape) sharded: inner chunks of @p inner (each dividing
 * the shard), the index at the start or the end, the spec's index codecs (bytes, crc32c), and a crc32c
 * after each inner chunk when @p crc32c. Returns 0 or TLY_EUSAGE naming what does not fit.
 */
int tly_h_meta_shard(struct tly_meta *m, const uint64_t *inner, bool index_start, bool crc32c);

/**
 * Validate a budgets object (figure -> limit, "stages" -> stage -> figure -> limit, "libraries" ->
 * name -> figure -> limit): an unknown figure or stage, or a limit that is not a number, is an
 * error naming @p where and the key.
 */
int tly_h_budgets_validate(json_t *budgets, const char *where);

/** budgets.sites (budgets_sites.c): frame text -> {at_peak_bytes, copied_bytes} limits, checked. */
int tly_h_budgets_sites_validate(json_t *sites, const char *where);

/** The site budgets' lines ({name, site, limit, actual, ok}) of @p result into @p lines. */
void tly_h_budgets_sites_check(json_t *sites, json_t *result, json_t *lines, bool *all_ok);

/**
 * Check @p result against @p budgets: a list of {name, stage, library, limit, actual, ok} lines;
 * @p all_ok false when any failed (a figure missing from the result fails).
 */
json_t *tly_h_check_budgets(json_t *budgets, json_t *result, bool *all_ok);

/** One budget line as text: "stage gather copies = 1, limit 0". */
void tly_h_budget_line_text(json_t *line, char *buf, size_t cap);

/**
 * The next failed line of @p lines (tly_h_check_budgets' list) at or after index @p *i, as text into
 * @p buf; @p *i moves past it. False when none is left:
 *     for (size_t i = 0; tly_h_budget_next_failed(lines, &i, buf, sizeof buf);) ...
 */
bool tly_h_budget_next_failed(json_t *lines, size_t *i, char *buf, size_t cap);

/** Bytes [off, off + n) of the test data stream (off a multiple of 8): uniform float32 in [0, 1). */
void tly_h_gen(void *dst, uint64_t off, size_t n, const struct tly_dtype *dt);

/** The first @p n bytes of the test data stream. */
void tly_h_gen_all(void *dst, uint64_t n, const struct tly_dtype *dt);

/** True when @p got holds the first @p n bytes of the test data stream. */
bool tly_h_gen_verify(const void *got, uint64_t n, const struct tly_dtype *dt);

/** True when @p got holds region @p r of an array of @p shape made of the test data stream. */
bool tly_h_gen_verify_region(const void *got, const struct tly_region *r, const uint64_t *shape,
                             const struct tly_dtype *dt);

/** malloc() for a read's output (or a benchmark's buffer): large ones on transparent huge pages. */
void *tly_h_alloc_output(size_t n);

/** The codec's configuration as JSON (numcodecs names); a new reference. */
json_t *tly_h_codec_json(const struct tly_codec *c);

#endif
