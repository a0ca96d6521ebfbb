/*
 * Internal to src/engine. Its files by concern, each standing only on those listed before it (no file
 * circles):
 *
 *   workers.c     the thread pool (the one place that starts threads)
 *   op.c          an operation: options, region, chunk range, pool, counters (tly__op_*)
 *   gate.c        the codec gate: every codec call of an operation (tly__encode, tly__decode, ...)
 *   runs.c        the runs layer: fill, copy, segments, reads of runs and split reads
 *   read_blocks.c, write_blocks.c   chunks of a codec with block frames, block by block
 *   read.c, write.c                 regions of an array, a path per chunk by what its codec can do
 *   shard.c, shard_read.c, shard_write.c   Zarr v3 sharding
 *   array.c       arrays: create, open, commit, close
 */
#ifndef TLY__ENGINE_INTERNAL_H
#define TLY__ENGINE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "tally/engine.h"
#include "mem/pool.h"

#define TLY__FILL_PATTERN_BYTES ((size_t)64 * 1024)

struct tly_array {
    struct tly_store *store;
    bool remote; /* the store's latency is the network's: more workers than cores */
    struct tly_meta meta;
    struct tly_grid grid;
    struct tly_io_opts opts;
    char *zattrs;            /* v2 .zattrs text, or NULL */
    char *doc;               /* a created array's metadata, written when it is committed */
    bool staged;             /* created: its store writes a staged array (tly_store_stage) */
    bool committed;          /* ... which tly_array_commit() published */
    bool failed;             /* a write (or the commit) failed: the staged array is dropped */
    uint8_t *fill_pattern;   /* TLY__FILL_PATTERN_BYTES of the fill value repeated */
    pthread_mutex_t gate_mu; /* the codec gate */
    pthread_cond_t gate_cv;
    int gate_taken; /* of opts.threads places */
    /* sharded (meta.shard.on): */
    struct tly_grid inner;            /* the inner chunk grid over the whole array */
    uint64_t per_shard[TLY_MAX_RANK]; /* inner chunks per shard, per dimension */
    uint64_t shard_n;                 /* inner chunks per shard */
    uint64_t index_bytes;             /* a shard index's stored bytes */
};

/* Counters an operation's workers add to. */
struct tly__op_stats {
    _Atomic uint64_t chunks, missing, rmw, stored_bytes, needed_bytes, split_ranges;
    uint64_t workers; /* threads the chunks ran on */
    int threads;      /* codec work at once at most (--threads) */
    int io_concurrency;
    _Atomic int chunk_threads; /* threads one chunk's codec work ran on at most (tly__op_chunk_threads) */
};

/* What the workers of one operation share: the array, the region, its chunk range, the pool of
 * the array's memory budget, and the counters. Each operation's context embeds it. */
struct tly__op {
    struct tly_array *a;
    const struct tly_region *r;
    uint64_t lo[TLY_MAX_RANK], hi[TLY_MAX_RANK];
    struct tly_pool *pool;
    uint64_t nchunks;        /* chunks the operation touches */
    int codec_threads;       /* threads a chunk's decode may use: the threads' share when chunks are fewer */
    int read_ways;           /* ranges a chunk's read may be split into: the workers' share, likewise */
    bool overlap_io;         /* set before tly__op_run: a local operation whose chunks block in the store runs
                                half as many workers again as threads, its codec work behind the gate */
    int workers;             /* threads its chunks run on (tly__op_begin) */
    pthread_mutex_t turn_mu; /* a remote write's turns to encode (tly__turn_take) */
    pthread_cond_t turn_cv;
    int turns_taken;
    struct tly__op_stats stats;
    uint64_t traffic_read0, traffic_written0, requests0; /* the store's traffic when the operation began */
};

/* workers.c: the one place that starts threads. Runs fn(ctx, i) for i in [0, n) on @p threads
 * threads (the caller's among them); the first error stops the rest and is returned, with its
 * message, on the calling thread. */
typedef int (*tly__task_fn)(void *ctx, uint64_t i);
int tly__run_tasks(int threads, uint64_t n, tly__task_fn fn, void *ctx);

/* op.c: begin an operation: check region @p r of @p a, note where the store's traffic stands
 * (tly_store_traffic), make its pool, plan its chunk range (grid @p g) into @p op; and finish it: its
 * counters, its pool's and the store's traffic since it began (store_bytes_read/written) to @p stats
 * when not NULL, the pool destroyed. A read adds needed_bytes itself. */
int tly__op_begin(struct tly__op *op, struct tly_array *a, const struct tly_grid *g, const struct tly_region *r);
void tly__op_end(struct tly__op *op, struct tly_io_stats *stats);

/* Threads each of @p chunks chunks may use: with fewer chunks than threads, the idle ones' share. */
int tly__share(int threads, uint64_t chunks);

/* The bytes of transfers a chunk of @p op holds when it has the S3 transfers to itself (fewer chunks
 * than workers: a lone chunk): its part of half the budget; 0 where the chunks share them (and locally).
 * Reads spend it on groups of blocks ahead of their lanes (read_blocks.c), writes on parts uploading. */
uint64_t tly__own_window(const struct tly__op *op);

/* Copied parts a chunk's S3 writer of @p op uploads at once (tly_writer_parts_in_flight), @p head when it
 * keeps its first part for the commit: 1 where the chunks share the transfers; where a chunk has them
 * to itself (fewer chunks than workers: a lone chunk), as many as half the budget holds over the
 * chunks, less the part being filled and the kept first. A chunk's ticket holds this many + 1 (+ 1). */
int tly__parts_in_flight(const struct tly__op *op, bool head);

/* Note that a chunk's codec work of @p op ran on @p n threads (the operation reports the most). */
void tly__op_chunk_threads(struct tly__op *op, int n);

/* gate.c: a remote write's turns to encode. A chunk of a remote write (more workers than threads, to
 * keep transfers in flight) takes a turn before it holds any of its encode's buffers and gives it
 * back once its encoded bytes are all with its writer, before the commit's uploads: at most threads /
 * codec_threads of its chunks encode at once, the others wait (a gate wait in encode) holding nothing
 * but their ticket. With @p commit (a frame that outgrows an S3 part, held whole until its commit is
 * answered) the turn is given back after the commit, and there is one turn more. No-ops for a local
 * operation. */
void tly__turn_take(struct tly__op *op, bool commit);
void tly__turn_give(struct tly__op *op);

/* Zarr v3 sharding: the array's inner grid and index size set up at open and create (shard.c); regions
 * of a sharded array read (shard_read.c) and written (shard_write.c). */
int tly__shard_setup(struct tly_array *a);
int tly__shard_read(struct tly_array *a, void *buf, const struct tly_region *r, struct tly_io_stats *stats);
int tly__shard_write(struct tly_array *a, const void *buf, const struct tly_region *r, struct tly_io_stats *stats);

/* Run an operation: check region @p r of @p a, plan its chunk range into @p op, and run fn(ctx, i)
 * for each of its chunks on the array's workers under a pool of its memory budget (@p ctx embeds
 * @p op); the counters go to @p stats when not NULL. */
int tly__op_run(struct tly__op *op, struct tly_array *a, const struct tly_region *r, tly__task_fn fn, void *ctx,
                struct tly_io_stats *stats);

/* Workers for an operation on @p a: `threads` locally; for a remote store, enough to keep
 * io_concurrency transfers in flight (codec work is then limited to `threads` by tly__codec_*). */
int tly__workers(const struct tly_array *a);

/* gate.c: the array's codec for one chunk of @p op, behind the codec gate: at most `threads` workers
 * run codec work at once (a remote store runs more workers than cores to keep transfers in flight).
 * A decode may use op->codec_threads threads inside the chunk. */
/* The array's codec as @p op runs it: decodes and streamed encodes on op->codec_threads threads. */
struct tly_codec tly__op_codec(const struct tly__op *op);
int tly__encode(struct tly__op *op, void *dst, size_t cap, const void *src, size_t n, size_t *out_n);
int tly__decode(struct tly__op *op, void *dst, size_t dst_n, const void *src, size_t n);
/* A streamed encode of @p total bytes of runs (tly_codec_encode_stream) through the gate, as
 * tly__encode a chunk; @p sink runs outside it. */
int tly__encode_stream(struct tly__op *op, const struct tly_codec *c, const struct iovec *iov, int niov, uint64_t total,
                       void *out, size_t cap, tly_sink_fn sink, void *arg);
/* Block @p j of a frame written block by block (the block entries' encode_block), as tly__encode does a chunk. */
struct tly_block_plan;
int tly__encode_block(struct tly__op *op, const struct tly_block_plan *p, uint64_t j, const void *src, void *out,
                      const void **at, size_t *len);
/* tly_dstream_feed as codec work of @p op (behind the codec gate, traced as a decode). */
struct tly_dstream;
int tly__feed(struct tly__op *op, struct tly_dstream *ds, const void *in, size_t n);

/* runs.c: tly_store_readv for one chunk of @p op: a large read is split into op->read_ways ranges of at
 * least TLY__RANGE_MIN bytes read at once (parallel range GETs on S3, parallel preads locally),
 * each straight into its part of @p iov. */
#define TLY__RANGE_MIN ((uint64_t)8 << 20)
int tly__readv(struct tly__op *op, const char *key, uint64_t offset, const struct iovec *iov, int niov);

/* runs.c: the runs of @p rs, stored as they are from byte @p base of object @p key, read straight
 * into the output @p out (preadv / range GETs of stretches of adjacent runs). */
int tly__read_runs(struct tly__op *op, const char *key, uint64_t base, const struct tly_runs *rs, char *out);

/* read_blocks.c: the lanes of an operation's block-by-block reads (a lane reads a group of blocks, then
 * decodes them), at most `free` at once over all its chunks. */
struct tly__lanes {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int free;
};
void tly__lanes_init(struct tly__lanes *l, int n);
void tly__lanes_destroy(struct tly__lanes *l);

/* Read a chunk of a codec with block frames (tly__codec_blocks), block by block, into the output
 * @p out (its ticket taken here, once the header says what the chunk holds); its stored size into
 * @p size, from the read of its header; @p missing set when that read found no such chunk
 * (TLY_ENOTFOUND, and nothing written to @p out). */
int tly__read_blocks(struct tly__op *op, struct tly__lanes *lanes, const char *key, const struct tly_runs *rs,
                     char *out, uint64_t *size, bool *missing);

/* write_blocks.c: write a chunk block by block, as planned by @p p (the block entries' plan), from its
 * pieces @p iov (in chunk order; @p pad marks fill-value pieces) under @p key, its blocks compressed
 * on op->codec_threads threads and written in order; the stored size into @p stored. */
int tly__put_blocks(struct tly__op *op, const struct tly_block_plan *p, const char *key, const struct iovec *iov,
                    const bool *pad, int niov, uint64_t *stored);

/* The most bytes tly__put_blocks() holds for one chunk of @p op (its ticket's share): the table, the
 * window's slots (a block's output and, when the chunk is not one piece, two blocks of input), the
 * codec's temporaries per lane, and on S3 the writer's parts. */
uint64_t tly__blocks_write_bytes(const struct tly__op *op, const struct tly_block_plan *p, bool contiguous);

/* runs.c: a chunk's content as pieces of memory, in chunk order; `pad` marks fill-value pieces
 * (the array's fill pattern: stable memory). */
struct tly__segs {
    struct iovec *iov;
    bool *pad;
    int n, cap;
};
/* The segments of a chunk the region covers: its runs from @p src (the region's buffer), fill value
 * between and after them. */
int tly__plan_segments(const struct tly_array *a, const struct tly_runs *rs, const char *src, struct tly__segs *s);
/* One piece, @p len bytes at @p p. */
int tly__segs_one(struct tly__segs *s, const void *p, size_t len);
void tly__segs_free(struct tly__segs *s);
/* The @p n bytes of @p s in one piece: the piece itself when there is one (no copy), else gathered
 * into a new pool buffer (*gathered, which the caller frees; a copy in stage gather). NULL when out
 * of memory. */
const void *tly__segs_contiguous(const struct tly_array *a, const struct tly__segs *s, uint64_t n, void **gathered);

/* op.c: 0, or TLY_EUSAGE when @p r does not fit the array. */
int tly__check_region(const struct tly_array *a, const struct tly_region *r);

/* The i-th chunk (row-major over [lo, hi)) of a region's chunk range, into idx. */
void tly__chunk_at(int rank, const uint64_t *lo, const uint64_t *hi, uint64_t i, uint64_t *idx);

/* runs.c: fill @p n bytes at @p dst with the array's fill value (the pattern repeated). Not a copy. */
void tly__fill(const struct tly_array *a, void *dst, size_t n);

/* Fill the runs of @p rs in @p buf (the output region) with the fill value. */
void tly__fill_runs(const struct tly_array *a, const struct tly_runs *rs, void *buf);

/* Copy the runs of @p rs between a whole chunk at @p chunk and the region's buffer @p buf (to the
 * buffer when @p to_buf), through the copy ledger, in the caller's stage (scatter or gather). */
void tly__copy_runs(const struct tly_runs *rs, char *chunk, char *buf, bool to_buf);

#endif
