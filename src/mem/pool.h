/**
 * The buffer pool (internal to libtally; the engine's workers use it): every in-flight chunk buffer (gathered chunks, encoded bytes,
 * decode space, stream windows) comes from here, within a byte budget.
 *
 * A chunk waits for a ticket rather than exceed the budget (aws-c-s3's ticketed buffer pool is the
 * model). A ticket larger than the whole budget waits until the pool is idle and then runs alone
 * (forced; counted in the stats, and said in reports). Buffers are allocated in stage pool, so the
 * pool's share of every peak is visible.
 */
#ifndef TLY__MEM_POOL_H
#define TLY__MEM_POOL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct tly_pool;

/** What a pool did. */
struct tly_pool_stats {
    uint64_t budget;      /**< bytes */
    uint64_t peak_in_use; /**< most bytes of tickets out at once */
    uint64_t tickets;     /**< tickets handed out */
    uint64_t waits;       /**< tickets that had to wait */
    uint64_t forced;      /**< tickets larger than the budget, run alone */
};

/** A pool of @p budget bytes (0: no limit). Returns NULL when out of memory. */
struct tly_pool *tly_pool_create(uint64_t budget);

/** Free @p p (NULL is fine); every buffer must have been put back. */
void tly_pool_destroy(struct tly_pool *p);

/**
 * Take a ticket for @p n bytes: the most a chunk will hold in buffers at once. Waits while the
 * budget is taken; a ticket larger than the budget waits for an idle pool and runs alone. A chunk
 * takes one ticket for all its buffers, so two workers can never each hold half of what they need.
 */
void tly_pool_acquire(struct tly_pool *p, uint64_t n);

/** Give back a ticket of @p n bytes. */
void tly_pool_release(struct tly_pool *p, uint64_t n);

/**
 * A buffer of @p n bytes, allocated in stage pool (under a ticket the caller holds), on 4 KiB pages
 * (see pool.c for why not huge pages).
 */
void *tly_pool_alloc(size_t n);

/** Free a buffer from tly_pool_alloc() (NULL is fine), in stage pool. */
void tly_pool_free(void *buf);

/** The pool's counters so far. */
void tly_pool_stats(struct tly_pool *p, struct tly_pool_stats *out);

#ifdef __cplusplus
}
#endif

#endif
