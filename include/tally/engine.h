/**
 * tally/engine.h — write and read regions of Zarr arrays, chunk by chunk, on worker threads, by
 * the zero-copy path wherever one exists (docs/design.md):
 *
 *   write, none   pwritev straight from the caller's memory (one iovec per contiguous run)
 *   write, zstd   streaming compression reading the runs in place, output in bounded blocks
 *   write, blosc  local: block by block, each block compressed from the caller's memory (gathered
 *                 two blocks at a time when the chunk is strided there) and written as it comes,
 *                 the header and offset table patched in at the end; S3: the whole chunk compressed
 *                 into one buffer (gathered first when strided)
 *   read, none    preadv straight into the output's runs
 *   read, zstd    the encoded chunk streamed into the decoder, straight into the output when the
 *                 chunk is contiguous there, else through a small window scattered to the runs
 *   read, blosc   block by block: header and offset table, then the blocks read a few at a time and
 *                 each decoded as it arrives, straight into the output (or a block buffer scattered
 *                 to the runs when strided)
 *   missing chunk the fill value written into the output
 *
 * The caller's buffer holds exactly the region, in C order, in the array's dtype (byte order
 * included: the engine never swaps bytes). A region that covers only part of a chunk is written by
 * read-modify-write of that chunk. Every phase runs in its stage; every payload copy goes through
 * the copy ledger.
 */
#ifndef TALLY_ENGINE_H
#define TALLY_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "tally/plan.h"
#include "tally/meta.h"
#include "tally/opts.h"
#include "tally/store.h"

#ifdef __cplusplus
extern "C" {
#endif

struct tly_array;

/** How an operation runs. Zero values mean the defaults, read from the environment when set. */
struct tly_io_opts {
    int threads;           /**< worker threads (TALLY_THREADS; default: the number of online CPUs) */
    int io_concurrency;    /**< S3 transfers in flight (TALLY_IO_CONCURRENCY; default 32) */
    uint64_t memory_limit; /**< in-flight buffer budget in bytes (TALLY_MEMORY_LIMIT; default 1 GiB) */
    size_t part_size;      /**< S3 multipart part size (TALLY_PART_SIZE; default 8 MiB) */
    bool fsync;            /**< make each chunk durable before the operation returns (off, like zarr-python) */
};

/**
 * @p opts (NULL: all defaults) into @p out, every zero filled from the environment or the default,
 * every value checked against its range. Returns 0 or TLY_EUSAGE naming the option or variable.
 */
int tly_io_opts_resolve(const struct tly_io_opts *opts, struct tly_io_opts *out);

/** What an operation did. */
struct tly_io_stats {
    uint64_t chunks;       /**< chunks written or read */
    uint64_t missing;      /**< chunks read that did not exist (filled) */
    uint64_t rmw;          /**< chunks written by read-modify-write (region covered part of them) */
    uint64_t stored_bytes; /**< encoded bytes written or read */
    uint64_t needed_bytes; /**< read: encoded bytes of the chunks the region touches (sharded: of its
                                inner chunks, indexes not included); the store's bytes read over this
                                is the read amplification */
    uint64_t pool_peak;    /**< most bytes of in-flight buffer tickets at once */
    uint64_t pool_waits;   /**< chunks that waited for the memory budget */
    uint64_t pool_forced;  /**< chunks larger than the budget, run alone */
    uint64_t split_ranges; /**< ranges read at once by reads split across idle workers (0: none split) */
    uint64_t workers;      /**< threads the chunks ran on (remote stores: up to the I/O concurrency) */
    int threads;           /**< codec work running at once at most (the threads option) */
    int io_concurrency;    /**< S3 transfers in flight at most (the io_concurrency option) */
    /** Threads one chunk's codec work ran on at most: a lone chunk's share of the idle threads where
     *  its codec can use them (blosc's blocks, zstd's encode workers), 1 where it cannot (a zstd frame
     *  decodes on one thread: the format's limit). */
    int chunk_threads;
    /** Payload bytes read from the array's store during the operation (tly_store_traffic): index and
     * header reads, a read-modify-write's read, bytes read twice and retries included. */
    uint64_t store_bytes_read;
    /** Payload bytes written to the store during the operation (a patched blosc table counts again). */
    uint64_t store_bytes_written;
    /** Requests that read objects during the operation (tly_store_read_requests: S3 GETs and HEADs,
     * index reads included; a sharded read makes one per shard for its index and one per group of
     * inner chunks). */
    uint64_t store_read_requests;
};

/**
 * Create the array described by @p m at @p url. An existing array there (or an incomplete one, an
 * interrupted write's) is refused with TLY_EEXISTS unless @p overwrite; a local directory that holds
 * something but no Zarr metadata is refused either way (TLY_EUSAGE). A check that fails for any
 * reason but "not found" is an error. @p m is copied.
 *
 * The new array is staged (tly_store_stage): its writes are not visible at @p url until
 * tly_array_commit() writes its metadata (last) and publishes it. An overwrite therefore never
 * shows a mix: locally the old array stays whole until the new one is swapped in by one rename;
 * on S3 the prefix is the old array, then an incomplete one (reads say "run tally gc"), then the new
 * one. The old array's v2 .zattrs / v3 attributes are kept.
 */
int tly_array_create(const char *url, const struct tly_meta *m, bool overwrite, const struct tly_io_opts *opts,
                     struct tly_array **out);

/**
 * Publish a created array: its metadata written, then the staged array made the one at its URL.
 * Returns 0 (also for an array that was opened, or already committed), TLY_EUSAGE when a write
 * failed (the staged array is then dropped at close), or the store's error. tly_array_close()
 * commits a created array whose writes all succeeded when the caller did not (its error is then
 * lost: commit first to see it).
 */
int tly_array_commit(struct tly_array *a);

/** Open the array at @p url (v3 zarr.json, else v2 .zarray). TLY_ENOTFOUND when there is none. */
int tly_array_open(const char *url, const struct tly_io_opts *opts, struct tly_array **out);

/** The array's metadata. */
const struct tly_meta *tly_array_meta(const struct tly_array *a);

/** The array's store (for its kind and URL). */
struct tly_store *tly_array_store(struct tly_array *a);

/** v2 .zattrs text of the array (NULL when it has none). */
const char *tly_array_zattrs(const struct tly_array *a);

/** Write region @p r of the array from @p buf. Stats into @p stats when not NULL. */
int tly_array_write(struct tly_array *a, const void *buf, const struct tly_region *r, struct tly_io_stats *stats);

/** Read region @p r of the array into @p buf. Stats into @p stats when not NULL. */
int tly_array_read(struct tly_array *a, void *buf, const struct tly_region *r, struct tly_io_stats *stats);

/** Close and free @p a (NULL is fine). */
void tly_array_close(struct tly_array *a);

#ifdef __cplusplus
}
#endif

#endif
