/*
 * The library dimension: per-slot counters beside the per-stage ones, for the preload's attribution
 * by shared object (see internal.h). Large blocks, large copies and mappings are rare next to small
 * blocks, so every update is a plain atomic add on a slot of its own cache line.
 */
#include <string.h>

#include "mem/internal.h"

struct slot {
    _Atomic uint64_t allocs, frees, alloc_bytes, copies, copy_bytes;
    _Atomic int64_t live, peak;
} __attribute__((aligned(TLY__CACHELINE)));

static struct slot slots[TLY__LIB_MAX];

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

void tly__lib_copy(unsigned lib, uint64_t n)
{
    if (lib >= TLY__LIB_MAX)
        return;
    atomic_fetch_add_explicit(&slots[lib].copies, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&slots[lib].copy_bytes, n, memory_order_relaxed);
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
        out[i].copies = atomic_load_explicit(&sl->copies, memory_order_relaxed);
        out[i].copy_bytes = atomic_load_explicit(&sl->copy_bytes, memory_order_relaxed);
        out[i].live_bytes = atomic_load_explicit(&sl->live, memory_order_relaxed);
        out[i].peak_bytes = atomic_load_explicit(&sl->peak, memory_order_relaxed);
    }
}
