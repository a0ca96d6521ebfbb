/**
 * tally/plan.h — dtypes, shapes, regions and chunk grids, and the runs that map a chunk onto a
 * region of a C-order buffer (the plan stage).
 */
#ifndef TALLY_PLAN_H
#define TALLY_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Highest rank tally handles (Zarr sets no limit; numpy's is 32 and so is ours). */
#define TLY_MAX_RANK 32

/** A fixed-size numeric element type. */
struct tly_dtype {
    char kind;    /**< 'b' bool, 'i' signed int, 'u' unsigned int, 'f' float */
    uint8_t size; /**< bytes per element: 1, 2, 4 or 8 */
    char endian;  /**< '<' little, '>' big, '|' not applicable (size 1) */
};

/**
 * Parse a numpy type string ("<f4", ">i8", "|u1", "|b1", "<u2", ...) into @p out.
 * Returns 0, TLY_EUNSUPPORTED (names the type: object, string, complex, datetime, ...) or
 * TLY_EFORMAT.
 */
int tly_dtype_from_numpy(const char *s, struct tly_dtype *out);

/** Write the numpy type string of @p dt into @p buf (at least 8 bytes): "<f4". */
const char *tly_dtype_numpy(const struct tly_dtype *dt, char *buf);

/** Parse a Zarr v3 data type name ("float32", "uint8", "bool", ...); endian is set to '<'. */
int tly_dtype_from_v3(const char *name, struct tly_dtype *out);

/** The Zarr v3 data type name of @p dt ("float32"). */
const char *tly_dtype_v3_name(const struct tly_dtype *dt);

/** True when elements of @p dt are stored in the opposite byte order to this machine's. */
bool tly_dtype_swapped(const struct tly_dtype *dt);

/** A hyper-rectangle [start, stop) in element coordinates. */
struct tly_region {
    int rank;
    uint64_t start[TLY_MAX_RANK];
    uint64_t stop[TLY_MAX_RANK];
};

/** The whole of an array of @p rank dims of @p shape. */
void tly_region_all(struct tly_region *r, int rank, const uint64_t *shape);

/** Elements in @p r. */
uint64_t tly_region_count(const struct tly_region *r);

/**
 * Parse "0:10,5:20" (numpy-like; an empty bound is the array's edge, a single index i means i:i+1)
 * against @p shape into @p out. Returns 0 or TLY_EUSAGE (message names the bad dimension).
 */
int tly_region_parse(const char *s, int rank, const uint64_t *shape, struct tly_region *out);

/** A regular chunk grid over an array. */
struct tly_grid {
    int rank;
    uint64_t shape[TLY_MAX_RANK];   /**< the array's shape */
    uint64_t chunks[TLY_MAX_RANK];  /**< the chunk shape (edge chunks are stored full size) */
    uint64_t nchunks[TLY_MAX_RANK]; /**< chunks per dimension */
};

/**
 * Check the sizes of an array of @p rank dimensions of @p shape, in chunks of @p chunks, of
 * @p elem-byte elements, before anything is allocated or written for it: its bytes and its number
 * of chunks at most TLY_MAX_ARRAY_BYTES (2^63 - 1, tally/checked.h), a chunk's bytes at most
 * PTRDIFF_MAX (the engine holds a chunk whole), every chunk dimension at least 1. Returns 0,
 * TLY_EUSAGE (a chunk dimension of 0, a bad rank) or TLY_EUNSUPPORTED naming the shape; the caller
 * puts the document or option in front.
 */
int tly_grid_check(int rank, const uint64_t *shape, const uint64_t *chunks, size_t elem);

/** Set up @p g (its sizes checked by tly_grid_check() first); TLY_EUSAGE when a chunk dimension is 0. */
int tly_grid_init(struct tly_grid *g, int rank, const uint64_t *shape, const uint64_t *chunks);

/** Elements in one (full-size) chunk. */
uint64_t tly_grid_chunk_elems(const struct tly_grid *g);

/**
 * The chunks that @p r touches: per dimension [lo, hi) of chunk indices, into @p lo and @p hi.
 * Returns how many chunks that is (0 when @p r is empty).
 */
uint64_t tly_grid_chunks_in(const struct tly_grid *g, const struct tly_region *r, uint64_t *lo, uint64_t *hi);

/**
 * How chunk @p idx of @p g meets region @p r of a C-order buffer that holds exactly @p r.
 *
 * Runs are the contiguous pieces they share: run k copies run_bytes bytes between chunk byte
 * offset chunk_off(k) and buffer byte offset buf_off(k). Trailing dimensions are merged while they
 * are whole in both the chunk and the buffer, so a chunk that lies contiguously in the buffer is a
 * single run.
 */
struct tly_runs {
    int rank;                            /**< dimensions after merging (>= 1) */
    size_t elem;                         /**< bytes per element */
    uint64_t count[TLY_MAX_RANK];        /**< extent of the intersection per merged dim (elements) */
    uint64_t chunk_stride[TLY_MAX_RANK]; /**< bytes between steps of each merged dim in the chunk */
    uint64_t buf_stride[TLY_MAX_RANK];   /**< ... and in the buffer */
    uint64_t chunk_base;                 /**< chunk byte offset of the first run */
    uint64_t buf_base;                   /**< buffer byte offset of the first run */
    size_t run_bytes;                    /**< bytes per run (count of the last merged dim x its stride) */
    uint64_t nruns;                      /**< number of runs */
    uint64_t chunk_bytes;                /**< bytes of the full-size chunk */
    bool covers_chunk;                   /**< the runs cover every valid element of the chunk */
    bool whole_chunk;                    /**< the runs cover the full-size chunk (no edge padding) */
};

/** Plan how chunk @p idx (grid coordinates) meets region @p r; elements of @p elem bytes. */
void tly_runs_plan(const struct tly_grid *g, const uint64_t *idx, const struct tly_region *r, size_t elem,
                   struct tly_runs *out);

/** True when the chunk is one contiguous piece of the buffer: the zero-copy case. */
static inline bool tly_runs_contiguous(const struct tly_runs *rs)
{
    return rs->nruns == 1 && rs->whole_chunk;
}

/** Iterate runs: an odometer over all but the last merged dim. */
struct tly_runs_iter {
    const struct tly_runs *rs;
    uint64_t pos[TLY_MAX_RANK];
    uint64_t k;
};

void tly_runs_iter_init(struct tly_runs_iter *it, const struct tly_runs *rs);

/** The next run's offsets; false when there are no more. */
bool tly_runs_next(struct tly_runs_iter *it, uint64_t *chunk_off, uint64_t *buf_off);

/** Set @p it at run @p k of @p rs (nruns or more: at the end), so that tly_runs_next() gives run k. */
void tly_runs_iter_seek(struct tly_runs_iter *it, const struct tly_runs *rs, uint64_t k);

#ifdef __cplusplus
}
#endif

#endif
