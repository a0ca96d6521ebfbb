/*
 * Counters: per-thread blocks of monotonic counters, process-wide and per-stage live bytes with
 * their peaks, and the split of the peak by stage (and by library slot, when the preload has any).
 *
 * Cost on the hot path (one malloc + free): two atomic adds each side (stage live, process live),
 * plain stores into the thread's own block, and a load-compare for each peak. The peak lock is
 * taken only when the process-wide peak grows.
 */
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "mem/internal.h"

#define MAX_BLOCKS 1024

struct stage_live {
    _Atomic int64_t live;
    _Atomic int64_t peak;
} __attribute__((aligned(TLY__CACHELINE)));

static struct tly__tblock blocks[MAX_BLOCKS];
static struct tly__tblock retired = {.shared = true}; /* exited threads, and threads past MAX_BLOCKS */
static pthread_mutex_t blocks_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_key_t exit_key;
static bool exit_key_ok;

static struct stage_live stage_live[TLY_NSTAGES];
static _Atomic int64_t live __attribute__((aligned(TLY__CACHELINE)));
static _Atomic int64_t peak __attribute__((aligned(TLY__CACHELINE)));
/* The large blocks' usable bytes above their requests, and the peak of live + slack (reserved). */
static _Atomic int64_t slack __attribute__((aligned(TLY__CACHELINE)));
static _Atomic int64_t reserved_peak;

/* Guarded by peak_mu: the split of the peak, and when it happened. */
static tly__spin peak_mu = TLY__SPIN_INIT;
static int64_t at_peak[TLY_NSTAGES];
static int64_t at_peak_lib[TLY__LIB_MAX];
static uint64_t peak_time_ns;

_Atomic(tly__stack_move_fn) tly__stack_move;
_Atomic uint32_t tly__peak_epoch;

/* A large block's bytes move on its stack (the preload's; nothing in the engine). */
static inline void stack_move(uint32_t stack, int64_t d, int64_t nblocks)
{
    tly__stack_move_fn mv = atomic_load_explicit(&tly__stack_move, memory_order_relaxed);
    if (TLY__UNLIKELY(mv != NULL) && (d != 0 || nblocks != 0))
        mv(stack, d, nblocks);
}

uint64_t tly__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void fold(struct tly__tblock *dst, struct tly__tblock *src)
{
    for (int s = 0; s < TLY_NSTAGES; s++) {
        atomic_fetch_add(&dst->allocs[s], atomic_exchange(&src->allocs[s], 0));
        atomic_fetch_add(&dst->frees[s], atomic_exchange(&src->frees[s], 0));
        atomic_fetch_add(&dst->alloc_bytes[s], atomic_exchange(&src->alloc_bytes[s], 0));
        atomic_fetch_add(&dst->alloc_req_bytes[s], atomic_exchange(&src->alloc_req_bytes[s], 0));
        atomic_fetch_add(&dst->copies[s], atomic_exchange(&src->copies[s], 0));
        atomic_fetch_add(&dst->copy_bytes[s], atomic_exchange(&src->copy_bytes[s], 0));
    }
    tly__time_fold(dst, src);
}

/* Runs at thread exit (pthread key destructor): fold the thread's counters into `retired`. */
static void on_thread_exit(void *arg)
{
    struct tly__tblock *b = arg;
    struct tly__tls *t = &tly__tls;
    uint8_t in = t->in_hook;
    t->in_hook = 1;
    tly__time_thread_exit(t);
    tly__lib_thread_exit(t);
    pthread_mutex_lock(&blocks_mu);
    fold(&retired, b);
    atomic_store(&b->in_use, 0);
    pthread_mutex_unlock(&blocks_mu);
    t->block = &retired; /* anything freed later on this thread still counts */
    t->state = TLY__TLS_EXITED;
    t->in_hook = in;
}

struct tly__tblock *tly__block_slow(struct tly__tls *t)
{
    if (t->state != TLY__TLS_NEW)
        return t->block ? t->block : &retired;
    t->state = TLY__TLS_OWNED;
    t->block = &retired;
    for (int i = 0; i < MAX_BLOCKS; i++) {
        int expect = 0;
        if (atomic_load_explicit(&blocks[i].in_use, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_strong(&blocks[i].in_use, &expect, 1)) {
            t->block = &blocks[i];
            break;
        }
    }
    /* A thread timed before it had a block: its interval in progress shows in snapshots from now. */
    if (t->since && t->block != &retired) {
        atomic_store_explicit(&t->block->open_stage, (int)tly__stage_of(t), memory_order_relaxed);
        atomic_store_explicit(&t->block->open_waited, t->waited, memory_order_relaxed);
        atomic_store_explicit(&t->block->open_since, t->since, memory_order_release);
    }
    /* The key was made first thing at start-up, so its slot is static: this does not allocate. */
    if (t->block != &retired && exit_key_ok) {
        uint8_t in = t->in_hook;
        t->in_hook = 1;
        pthread_setspecific(exit_key, t->block);
        t->in_hook = in;
    }
    return t->block;
}

void tly__counters_boot(void)
{
    exit_key_ok = pthread_key_create(&exit_key, on_thread_exit) == 0;
}

static void max_into(_Atomic int64_t *p, int64_t v)
{
    int64_t cur = atomic_load_explicit(p, memory_order_relaxed);
    while (v > cur && !atomic_compare_exchange_weak_explicit(p, &cur, v, memory_order_relaxed, memory_order_relaxed))
        ;
}

void tly__live_stages(int64_t out[TLY_NSTAGES])
{
    for (int s = 0; s < TLY_NSTAGES; s++)
        out[s] = atomic_load_explicit(&stage_live[s].live, memory_order_relaxed);
}

/* The library slots' live bytes into at_peak_lib, when there are slots; NULL when there are none. */
static const int64_t *libs_at_peak(void)
{
    if (TLY__LIKELY(atomic_load_explicit(&tly__lib_count, memory_order_relaxed) == 0))
        return NULL;
    tly__lib_live(at_peak_lib);
    return at_peak_lib;
}

static void new_peak(int64_t l)
{
    tly__spin_lock(&peak_mu);
    if (l > atomic_load_explicit(&peak, memory_order_relaxed)) {
        atomic_store_explicit(&peak, l, memory_order_relaxed);
        atomic_fetch_add_explicit(&tly__peak_epoch, 1, memory_order_relaxed);
        tly__live_stages(at_peak);
        peak_time_ns = tly__now_ns();
        tly__timeline_peak(peak_time_ns, l, at_peak, libs_at_peak());
    }
    tly__spin_unlock(&peak_mu);
}

static inline void live_add(enum tly_stage s, int64_t d)
{
    struct stage_live *sl = &stage_live[s];
    int64_t v = atomic_fetch_add_explicit(&sl->live, d, memory_order_relaxed) + d;
    if (d > 0 && v > atomic_load_explicit(&sl->peak, memory_order_relaxed))
        max_into(&sl->peak, v);
    int64_t l = atomic_fetch_add_explicit(&live, d, memory_order_relaxed) + d;
    if (d > 0 && l > atomic_load_explicit(&peak, memory_order_relaxed))
        new_peak(l);
    if (d > 0) {
        int64_t r = l + atomic_load_explicit(&slack, memory_order_relaxed);
        if (r > atomic_load_explicit(&reserved_peak, memory_order_relaxed))
            max_into(&reserved_peak, r);
    }
    int64_t gap = l - atomic_load_explicit(&tly__tl_last, memory_order_relaxed);
    if (TLY__UNLIKELY((gap < 0 ? -gap : gap) >= atomic_load_explicit(&tly__tl_gran, memory_order_relaxed)))
        tly__timeline_sample(l);
}

void tly__account_outside(enum tly_stage s, unsigned lib, int64_t d)
{
    if (d > 0)
        tly__lib_alloc(lib, (uint64_t)d, (uint64_t)d);
    else
        tly__lib_free(lib, (uint64_t)-d);
    live_add(s, d);
}

/* What a block counts in the live bytes: a large one what was asked for, a small one its usable
 * size (see internal.h). A request jemalloc does not report (0) or one above the usable size counts
 * the usable size. */
static size_t charged(size_t usize, size_t req)
{
    return usize >= TLY_MEM_LARGE && req > 0 && req < usize ? req : usize;
}

static void slack_add(int64_t d)
{
    if (d != 0)
        atomic_fetch_add_explicit(&slack, d, memory_order_relaxed);
}

/* The library slot a new large block is charged to (none unless the preload attributes them), and
 * its stack into @p stack. Both are charged before the process's live bytes move, so that a peak
 * this block makes sees it. */
static unsigned lib_charge(struct tly__tls *t, size_t usize, size_t req, uint32_t *stack)
{
    tly__lib_fn of = atomic_load_explicit(&tly__lib_of, memory_order_relaxed);
    *stack = TLY__STACK_NONE;
    if (TLY__LIKELY(of == NULL))
        return TLY__LIB_NONE;
    t->stack = TLY__STACK_NONE;
    unsigned lib = of(usize);
    *stack = t->stack;
    tly__lib_alloc(lib, usize, req);
    stack_move(*stack, (int64_t)req, 1);
    return lib;
}

void tly__account_alloc(struct tly__tls *t, void *ptr, size_t usize, size_t req)
{
    enum tly_stage s = tly__stage_of(t);
    struct tly__tblock *b = tly__block(t);
    size_t c = charged(usize, req);
    tly__bump(b, &b->allocs[s], 1);
    tly__bump(b, &b->alloc_bytes[s], usize);
    tly__bump(b, &b->alloc_req_bytes[s], req);
    if (usize >= TLY_MEM_LARGE) {
        uint32_t stack;
        unsigned lib = lib_charge(t, usize, c, &stack);
        tly__ptab_put((uintptr_t)ptr, usize, c, s, lib, stack);
        slack_add((int64_t)(usize - c));
    }
    live_add(s, (int64_t)c);
}

void tly__account_free(struct tly__tls *t, void *ptr, size_t usize)
{
    enum tly_stage s = tly__stage_of(t);
    size_t c = usize;
    if (usize >= TLY_MEM_LARGE) {
        size_t recorded;
        unsigned lib;
        uint32_t stack;
        /* A large block missing from the table was allocated before tracking began: never counted. */
        if (!tly__ptab_take((uintptr_t)ptr, &recorded, &c, &s, &lib, &stack))
            return;
        tly__lib_free(lib, c);
        stack_move(stack, -(int64_t)c, -1);
        slack_add(-(int64_t)(recorded - c));
    }
    struct tly__tblock *b = tly__block(t);
    tly__bump(b, &b->frees[s], 1);
    live_add(s, -(int64_t)c);
}

void tly__account_resize(struct tly__tls *t, void *ptr, size_t old_usize, size_t new_usize, size_t new_req)
{
    enum tly_stage s = tly__stage_of(t);
    unsigned lib = TLY__LIB_NONE;
    uint32_t stack = TLY__STACK_NONE;
    size_t old_c = old_usize, new_c = charged(new_usize, new_req);
    if (old_usize >= TLY_MEM_LARGE) {
        size_t rec_usize;
        if (new_usize >= TLY_MEM_LARGE) {
            if (!tly__ptab_resize((uintptr_t)ptr, new_usize, new_c, &rec_usize, &old_c, &s, &lib, &stack))
                return; /* allocated before tracking began */
            tly__lib_grow(lib, (int64_t)new_c - (int64_t)old_c, (int64_t)new_usize - (int64_t)rec_usize);
            stack_move(stack, (int64_t)new_c - (int64_t)old_c, 0);
        } else {
            if (!tly__ptab_take((uintptr_t)ptr, &rec_usize, &old_c, &s, &lib, &stack))
                return;
            tly__lib_grow(lib, -(int64_t)old_c, 0); /* the rest is a small block now */
            stack_move(stack, -(int64_t)old_c, -1);
        }
        slack_add(-(int64_t)(rec_usize - old_c));
    } else if (new_usize >= TLY_MEM_LARGE) {
        /* A small block grown in place into a large one: the whole block is the library's now (its
         * allocation was counted as small; the library counts the bytes, not a new allocation). */
        tly__lib_fn of = atomic_load_explicit(&tly__lib_of, memory_order_relaxed);
        if (TLY__UNLIKELY(of != NULL)) {
            t->stack = TLY__STACK_NONE;
            lib = of(new_usize);
            stack = t->stack;
            tly__lib_grow(lib, (int64_t)new_c, (int64_t)new_usize);
            stack_move(stack, (int64_t)new_c, 1);
        }
        tly__ptab_put((uintptr_t)ptr, new_usize, new_c, s, lib, stack);
    }
    if (new_usize >= TLY_MEM_LARGE)
        slack_add((int64_t)(new_usize - new_c));
    if (new_usize > old_usize) {
        struct tly__tblock *b = tly__block(t);
        tly__bump(b, &b->alloc_bytes[s], (uint64_t)(new_usize - old_usize));
    }
    int64_t d = (int64_t)new_c - (int64_t)old_c;
    if (d != 0)
        live_add(s, d);
}

uint64_t tly__thread_tracked_bytes(void)
{
    struct tly__tls *t = &tly__tls;
    uint64_t sum = 0;
    if (t->block == NULL || t->block->shared)
        return 0;
    for (int s = 0; s < TLY_NSTAGES; s++)
        sum += atomic_load_explicit(&t->block->alloc_bytes[s], memory_order_relaxed);
    return sum;
}

int64_t tly_mem_live_bytes(void)
{
    return atomic_load_explicit(&live, memory_order_relaxed);
}

int64_t tly_mem_reserved_live_bytes(void)
{
    return atomic_load_explicit(&live, memory_order_relaxed) + atomic_load_explicit(&slack, memory_order_relaxed);
}

static void add_block(struct tly_mem_snapshot *out, struct tly__tblock *b)
{
    for (int s = 0; s < TLY_NSTAGES; s++) {
        struct tly_stage_counters *c = &out->stage[s];
        c->allocs += atomic_load_explicit(&b->allocs[s], memory_order_relaxed);
        c->frees += atomic_load_explicit(&b->frees[s], memory_order_relaxed);
        c->alloc_bytes += atomic_load_explicit(&b->alloc_bytes[s], memory_order_relaxed);
        c->alloc_req_bytes += atomic_load_explicit(&b->alloc_req_bytes[s], memory_order_relaxed);
        c->copies += atomic_load_explicit(&b->copies[s], memory_order_relaxed);
        c->copy_bytes += atomic_load_explicit(&b->copy_bytes[s], memory_order_relaxed);
    }
}

void tly__snapshot_libs(struct tly_mem_snapshot *out, struct tly__lib_counters libs[TLY__LIB_MAX])
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&blocks_mu);
    for (int i = 0; i < MAX_BLOCKS; i++)
        if (atomic_load_explicit(&blocks[i].in_use, memory_order_acquire))
            add_block(out, &blocks[i]);
    add_block(out, &retired);
    pthread_mutex_unlock(&blocks_mu);

    tly__spin_lock(&peak_mu);
    for (int s = 0; s < TLY_NSTAGES; s++) {
        out->stage[s].live_bytes = atomic_load_explicit(&stage_live[s].live, memory_order_relaxed);
        out->stage[s].peak_bytes = atomic_load_explicit(&stage_live[s].peak, memory_order_relaxed);
        out->stage[s].at_peak_bytes = at_peak[s];
    }
    out->live_bytes = atomic_load_explicit(&live, memory_order_relaxed);
    out->peak_bytes = atomic_load_explicit(&peak, memory_order_relaxed);
    out->reserved_live_bytes = out->live_bytes + atomic_load_explicit(&slack, memory_order_relaxed);
    out->reserved_peak_bytes = atomic_load_explicit(&reserved_peak, memory_order_relaxed);
    out->peak_time_ns = peak_time_ns;
    if (libs) {
        tly__lib_read(libs);
        for (unsigned i = 0; i < TLY__LIB_MAX; i++)
            libs[i].at_peak_bytes = at_peak_lib[i];
    }
    tly__spin_unlock(&peak_mu);
}

void tly_time_snapshot(struct tly_time_snapshot *out)
{
    memset(out, 0, sizeof *out);
    out->t_ns = tly__now_ns();
    pthread_mutex_lock(&blocks_mu);
    for (int i = 0; i < MAX_BLOCKS; i++)
        if (atomic_load_explicit(&blocks[i].in_use, memory_order_acquire))
            tly__time_add_block(out, &blocks[i], out->t_ns);
    tly__time_add_block(out, &retired, out->t_ns);
    pthread_mutex_unlock(&blocks_mu);
    tly__time_http(out);
}

void tly_mem_snapshot(struct tly_mem_snapshot *out)
{
    tly__snapshot_libs(out, NULL);
}

void tly_mem_reset_peaks(void)
{
    tly__crosscheck_window_open();
    tly__spin_lock(&peak_mu);
    for (int s = 0; s < TLY_NSTAGES; s++) {
        int64_t v = atomic_load_explicit(&stage_live[s].live, memory_order_relaxed);
        atomic_store_explicit(&stage_live[s].peak, v, memory_order_relaxed);
    }
    int64_t l = atomic_load_explicit(&live, memory_order_relaxed);
    atomic_store_explicit(&peak, l, memory_order_relaxed);
    atomic_fetch_add_explicit(&tly__peak_epoch, 1, memory_order_relaxed);
    atomic_store_explicit(&reserved_peak, l + atomic_load_explicit(&slack, memory_order_relaxed), memory_order_relaxed);
    tly__live_stages(at_peak);
    tly__lib_reset_peaks();
    tly__lib_live(at_peak_lib);
    peak_time_ns = tly__now_ns();
    tly__timeline_reset(peak_time_ns, l, at_peak,
                        atomic_load_explicit(&tly__lib_count, memory_order_relaxed) ? at_peak_lib : NULL);
    tly__spin_unlock(&peak_mu);
}
