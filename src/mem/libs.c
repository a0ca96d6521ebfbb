/*
 * The library dimension: per-slot counters beside the per-stage ones, for the preload's attribution
 * by shared object (see internal.h). Large blocks and mappings are rare next to small blocks, so
 * their updates are plain atomic adds on a slot of its own cache line.
 *
 * Copies are not rare: the preload counts every memcpy, most of them a few bytes, on every thread.
 * Each thread counts them in a copy block of its own (plain relaxed stores, as the stage blocks in
 * counters.c), by slot and size band. A block keeps its counts when its thread exits and is taken
 * by a later thread, which adds to them: the counts only grow, and a reader sums every block ever
 * taken, so nothing needs folding. A thread without a block (past COPY_BLOCKS, or exiting) adds to
 * the slot's shared band counters with atomic adds.
 */
#include <string.h>

#include "mem/internal.h"

#define COPY_BLOCKS 256

struct slot {
    _Atomic uint64_t allocs, frees, alloc_bytes;
    _Atomic uint64_t band_copies[TLY__COPY_BANDS], band_bytes[TLY__COPY_BANDS]; /* threads without a block */
    _Atomic int64_t live, peak;
} __attribute__((aligned(TLY__CACHELINE)));

struct tly__copy_block {
    _Atomic uint64_t n[TLY__LIB_MAX][TLY__COPY_BANDS], bytes[TLY__LIB_MAX][TLY__COPY_BANDS];
    _Atomic int in_use;
} __attribute__((aligned(TLY__CACHELINE)));

static struct slot slots[TLY__LIB_MAX];
static struct tly__copy_block copy_blocks[COPY_BLOCKS];
static _Atomic unsigned copy_blocks_taken; /* blocks ever taken: 0 .. taken-1 hold counts */

_Atomic(tly__lib_fn) tly__lib_of;
_Atomic unsigned tly__lib_count;

static void live_add(struct slot *sl, int64_t d)
{
    int64_t v = atomic_fetch_add_explicit(&sl->live, d, memory_order_relaxed) + d;
    int64_t cur = atomic_load_explicit(&sl->peak, memory_order_relaxed);
    while (v > cur &&
           !atomic_compare_exchange_weak_explicit(&sl->peak, &cur, v, memory_order_relaxed, memory_order_relaxed))
        ;
}

void tly__lib_alloc(unsigned lib, uint64_t usize, uint64_t req)
{
    if (lib >= TLY__LIB_MAX)
        return;
    struct slot *sl = &slots[lib];
    atomic_fetch_add_explicit(&sl->allocs, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&sl->alloc_bytes, usize, memory_order_relaxed);
    live_add(sl, (int64_t)req);
}

void tly__lib_free(unsigned lib, uint64_t req)
{
    if (lib >= TLY__LIB_MAX)
        return;
    atomic_fetch_add_explicit(&slots[lib].frees, 1, memory_order_relaxed);
    live_add(&slots[lib], -(int64_t)req);
}

void tly__lib_grow(unsigned lib, int64_t d_req, int64_t d_usize)
{
    if (lib >= TLY__LIB_MAX)
        return;
    if (d_usize > 0)
        atomic_fetch_add_explicit(&slots[lib].alloc_bytes, (uint64_t)d_usize, memory_order_relaxed);
    live_add(&slots[lib], d_req);
}

/* A free copy block for the calling thread, or NULL: it has none to give back at exit (no stage
 * block, so no exit destructor), is exiting, or every block is taken. */
static __attribute__((noinline)) struct tly__copy_block *copy_block_take(struct tly__tls *t)
{
    if (t->state == TLY__TLS_EXITED || tly__block(t)->shared)
        return NULL;
    for (unsigned i = 0; i < COPY_BLOCKS; i++) {
        int expect = 0;
        if (atomic_load_explicit(&copy_blocks[i].in_use, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_strong(&copy_blocks[i].in_use, &expect, 1)) {
            unsigned taken = atomic_load_explicit(&copy_blocks_taken, memory_order_relaxed);
            while (taken < i + 1 && !atomic_compare_exchange_weak(&copy_blocks_taken, &taken, i + 1))
                ;
            return t->copy_block = &copy_blocks[i];
        }
    }
    return NULL;
}

void tly__lib_copy(unsigned lib, uint64_t n)
{
    if (lib >= TLY__LIB_MAX)
        return;
    unsigned band = tly__copy_band(n);
    struct tly__tls *t = &tly__tls;
    struct tly__copy_block *b = t->copy_block;
    if (TLY__UNLIKELY(b == NULL) && (b = copy_block_take(t)) == NULL) {
        atomic_fetch_add_explicit(&slots[lib].band_copies[band], 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&slots[lib].band_bytes[band], n, memory_order_relaxed);
        return;
    }
    _Atomic uint64_t *c = &b->n[lib][band], *bytes = &b->bytes[lib][band];
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1, memory_order_relaxed);
    atomic_store_explicit(bytes, atomic_load_explicit(bytes, memory_order_relaxed) + n, memory_order_relaxed);
}

void tly__lib_thread_exit(struct tly__tls *t)
{
    struct tly__copy_block *b = t->copy_block;
    t->copy_block = NULL; /* from here the thread's copies go to the shared counters */
    if (b)
        atomic_store_explicit(&b->in_use, 0, memory_order_release);
}

void tly__lib_live(int64_t out[TLY__LIB_MAX])
{
    for (unsigned i = 0; i < TLY__LIB_MAX; i++)
        out[i] = atomic_load_explicit(&slots[i].live, memory_order_relaxed);
}

void tly__lib_reset_peaks(void)
{
    for (unsigned i = 0; i < TLY__LIB_MAX; i++)
        atomic_store_explicit(&slots[i].peak, atomic_load_explicit(&slots[i].live, memory_order_relaxed),
                              memory_order_relaxed);
}

void tly__lib_read(struct tly__lib_counters out[TLY__LIB_MAX])
{
    memset(out, 0, sizeof(struct tly__lib_counters) * TLY__LIB_MAX);
    for (unsigned i = 0; i < TLY__LIB_MAX; i++) {
        struct slot *sl = &slots[i];
        out[i].allocs = atomic_load_explicit(&sl->allocs, memory_order_relaxed);
        out[i].frees = atomic_load_explicit(&sl->frees, memory_order_relaxed);
        out[i].alloc_bytes = atomic_load_explicit(&sl->alloc_bytes, memory_order_relaxed);
        for (unsigned k = 0; k < TLY__COPY_BANDS; k++) {
            out[i].band_copies[k] = atomic_load_explicit(&sl->band_copies[k], memory_order_relaxed);
            out[i].band_bytes[k] = atomic_load_explicit(&sl->band_bytes[k], memory_order_relaxed);
        }
        out[i].live_bytes = atomic_load_explicit(&sl->live, memory_order_relaxed);
        out[i].peak_bytes = atomic_load_explicit(&sl->peak, memory_order_relaxed);
    }
    unsigned taken = atomic_load_explicit(&copy_blocks_taken, memory_order_acquire);
    for (unsigned j = 0; j < taken; j++)
        for (unsigned i = 0; i < TLY__LIB_MAX; i++)
            for (unsigned k = 0; k < TLY__COPY_BANDS; k++) {
                out[i].band_copies[k] += atomic_load_explicit(&copy_blocks[j].n[i][k], memory_order_relaxed);
                out[i].band_bytes[k] += atomic_load_explicit(&copy_blocks[j].bytes[i][k], memory_order_relaxed);
            }
    for (unsigned i = 0; i < TLY__LIB_MAX; i++)
        for (unsigned k = 0; k < TLY__COPY_BANDS; k++) {
            out[i].copies += out[i].band_copies[k];
            out[i].copy_bytes += out[i].band_bytes[k];
        }
}
