/*
 * Internal to src/mem: the tracker's state shared between its files.
 *
 * Nothing here may call malloc: this code runs inside jemalloc's hooks. Storage is static or
 * mmap'd; locks are spinlocks or pthread mutexes, which never allocate.
 */
#ifndef TLY__MEM_INTERNAL_H
#define TLY__MEM_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "tally/mem.h"
#include "tally/timing.h"

#define TLY__LIKELY(x) __builtin_expect(!!(x), 1)
#define TLY__UNLIKELY(x) __builtin_expect(!!(x), 0)
#define TLY__CACHELINE 64

/*
 * The environment as the kernel gave it (libc's __environ), not through getenv: a program may define
 * getenv itself (bash's answers from its shell variables, NULL before its main has made them), and
 * the tracker's settings must reach it under bash too.
 */
static inline const char *tly__getenv(const char *name)
{
    extern char **__environ;
    size_t n = strlen(name);
    for (char **e = __environ; e && *e; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
            return *e + n + 1;
    return NULL;
}

/* A spinlock that needs no initialisation and never allocates (held for a few loads and stores). */
typedef atomic_flag tly__spin;
#define TLY__SPIN_INIT ATOMIC_FLAG_INIT

static inline void tly__spin_lock(tly__spin *l)
{
    while (atomic_flag_test_and_set_explicit(l, memory_order_acquire)) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    }
}

static inline void tly__spin_unlock(tly__spin *l)
{
    atomic_flag_clear_explicit(l, memory_order_release);
}

/*
 * One thread's monotonic counters. Only the owning thread writes them (relaxed load + store: no
 * lock prefix), any thread may read them; counters of exited threads fold into a shared block that
 * is updated with atomic adds (`shared`).
 */
struct tly__tblock {
    _Atomic uint64_t allocs[TLY_NSTAGES];
    _Atomic uint64_t frees[TLY_NSTAGES];
    _Atomic uint64_t alloc_bytes[TLY_NSTAGES];
    _Atomic uint64_t alloc_req_bytes[TLY_NSTAGES];
    _Atomic uint64_t copies[TLY_NSTAGES];
    _Atomic uint64_t copy_bytes[TLY_NSTAGES];
    /* time (time.c): charged at each stage transition; the interval in progress published for
     * snapshots (open_since 0: none) */
    _Atomic uint64_t busy_ns[TLY_NSTAGES];
    _Atomic uint64_t waiting_ns[TLY_NSTAGES];
    _Atomic uint64_t wait_ns[TLY_NWAITS];
    _Atomic uint64_t worker_ns;
    _Atomic uint64_t open_since, open_waited;
    _Atomic int open_stage;
    _Atomic int in_use;
    bool shared;
} __attribute__((aligned(TLY__CACHELINE)));

enum { TLY__TLS_NEW, TLY__TLS_OWNED, TLY__TLS_EXITED };

/* The per-thread state. initial-exec TLS: reading it never allocates (no __tls_get_addr). */
struct tly__tls {
    uint8_t stage1;  /* current stage + 1; 0 means TLY_UNSTAGED */
    uint8_t in_hook; /* the hooks are running on this thread: do not re-enter */
    uint8_t state;   /* TLY__TLS_* */
    /* time.c: the interval in progress (since 0: not timing this thread yet) */
    uint8_t cpu_valid;    /* cpu_since was read at the interval's start (a worker's get or put) */
    uint8_t worker_depth; /* inside tly_time_worker(true) calls */
    uint32_t tid;         /* gettid(), once */
    struct tly__tblock *block;
    int32_t sched_fd1; /* /proc/thread-self/schedstat's descriptor + 1 (0: not opened; -1: none) */
    uint64_t since, cpu_since, runq_since, waited, worker_since;
    uint64_t copy_pending;              /* payload bytes copied since the last copy event (traces) */
    struct tly__copy_block *copy_block; /* libs.c: this thread's copy counters by library (NULL: none yet) */
    uint32_t stack;                     /* the stack id tly__lib_of gave the block it just charged */
    uint32_t small_copied[TLY_NSTAGES]; /* stacks_engine.c: bytes of small copies not yet on a stack */
    uint32_t small_copies[TLY_NSTAGES]; /* and how many copies they were */
};

extern __thread struct tly__tls tly__tls __attribute__((tls_model("initial-exec")));

static inline enum tly_stage tly__stage_of(const struct tly__tls *t)
{
    return t->stage1 ? (enum tly_stage)(t->stage1 - 1) : TLY_UNSTAGED;
}

/*
 * libs.c: the library dimension, beside the stages. The preload (src/preload) charges every block
 * of TLY_MEM_LARGE bytes or more, every large copy and every large anonymous mapping to a slot it
 * names (a shared library, or "mmap"); the engine sets tly__lib_of only for its call stacks
 * (stacks_engine.c: it charges no slot), so without them it stays empty and costs the engine one load
 * on its large-block path.
 */
#define TLY__LIB_MAX 64
#define TLY__LIB_NONE 0xffu

/* Copies by size band: small under 4 KiB, mid 4 KiB up to 64 KiB, large 64 KiB and more. */
enum { TLY__COPY_SMALL, TLY__COPY_MID, TLY__COPY_LARGE, TLY__COPY_BANDS };
#define TLY__COPY_MID_MIN 4096u
#define TLY__COPY_LARGE_MIN 65536u

static inline unsigned tly__copy_band(uint64_t n)
{
    return n < TLY__COPY_MID_MIN ? TLY__COPY_SMALL : n < TLY__COPY_LARGE_MIN ? TLY__COPY_MID : TLY__COPY_LARGE;
}

/* One slot's counters; live, peak and at_peak are absolute (not relative to a window). copies and
 * copy_bytes are the sums of the bands'. */
struct tly__lib_counters {
    uint64_t allocs, frees, alloc_bytes, copies, copy_bytes;
    uint64_t band_copies[TLY__COPY_BANDS], band_bytes[TLY__COPY_BANDS];
    int64_t live_bytes, peak_bytes, at_peak_bytes;
};

/* The slot to charge a new block of @p usize bytes to (TLY__LIB_NONE: none); called inside the hooks. */
typedef unsigned (*tly__lib_fn)(size_t usize);
extern _Atomic(tly__lib_fn) tly__lib_of;
extern _Atomic unsigned tly__lib_count; /* slots in use: 0 .. count-1 */

/* live and peak count requested bytes (the units of the process's live bytes), alloc_bytes usable
 * ones (as the stages' alloc_bytes do) */
void tly__lib_alloc(unsigned lib, uint64_t usize, uint64_t req);
void tly__lib_free(unsigned lib, uint64_t req);
void tly__lib_grow(unsigned lib, int64_t d_req, int64_t d_usize);
/* A copy of @p n bytes charged to @p lib, in the calling thread's own counters (no lock, no atomic
 * read-modify-write: cheap enough for every copy); a thread without a block of its own, or one that
 * is exiting, adds to the slot's shared counters instead. */
void tly__lib_copy(unsigned lib, uint64_t n);
/* The thread ends: its copy block goes back for another thread (its counts stay in it). */
void tly__lib_thread_exit(struct tly__tls *t);
void tly__lib_live(int64_t out[TLY__LIB_MAX]);
void tly__lib_reset_peaks(void);
void tly__lib_read(struct tly__lib_counters out[TLY__LIB_MAX]);

/*
 * Call stacks of large blocks (stacks.c, for the preload and the engine): tly__lib_of leaves the new block's
 * stack id in tly__tls.stack (TLY__STACK_NONE: none), the pointer table keeps it, and every change of the
 * block's live bytes is handed to tly__stack_move (NULL while no stacks are taken). tly__peak_epoch counts the peaks
 * (and their restarts): a stack whose bytes move after the latest one keeps its bytes at that peak.
 */
#define TLY__STACK_NONE UINT32_MAX /* no stack taken (stacks off, under the threshold) */
typedef void (*tly__stack_move_fn)(uint32_t stack, int64_t d_bytes, int64_t d_blocks);
extern _Atomic(tly__stack_move_fn) tly__stack_move;
extern _Atomic uint32_t tly__peak_epoch;

/* stacks_engine.c: the engine's stacks are on (tly_stacks_start); a copy of @p n bytes made for the
 * caller at return address @p ra has its stack taken (a small one: sampled, see there). */
extern bool tly__stacks_engine;
void tly__stacks_engine_copy(size_t n, uintptr_t ra);

/* counters.c */
struct tly__tblock *tly__block_slow(struct tly__tls *t);

static inline struct tly__tblock *tly__block(struct tly__tls *t)
{
    return TLY__LIKELY(t->block != NULL) ? t->block : tly__block_slow(t);
}

static inline void tly__bump(struct tly__tblock *b, _Atomic uint64_t *c, uint64_t n)
{
    if (TLY__LIKELY(!b->shared))
        atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_relaxed);
    else
        atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

void tly__counters_boot(void);
/*
 * The live bytes count what was asked for: a block of TLY_MEM_LARGE bytes or more its requested
 * bytes (kept in the pointer table until its free), a smaller one its usable size (its request is
 * not known at its free; jemalloc's small classes are at most 25% above it). The reserved live bytes
 * (jemalloc's usable sizes, what tally reported before) are the live bytes plus the large blocks'
 * slack, with a peak of their own.
 */
void tly__account_alloc(struct tly__tls *t, void *ptr, size_t usize, size_t req);
void tly__account_free(struct tly__tls *t, void *ptr, size_t usize);
void tly__account_resize(struct tly__tls *t, void *ptr, size_t old_usize, size_t new_usize, size_t new_req);
void tly__live_stages(int64_t out[TLY_NSTAGES]);
/* Memory the hooks cannot see (an anonymous mmap): @p d bytes into stage @p s, slot @p lib and the
 * process's live bytes, so a large mapping counts in the peak. */
void tly__account_outside(enum tly_stage s, unsigned lib, int64_t d);
/* tly_mem_snapshot() and, when @p libs is not NULL, every library slot (at_peak_bytes taken at the
 * same process-wide peak as the snapshot's). */
void tly__snapshot_libs(struct tly_mem_snapshot *out, struct tly__lib_counters libs[TLY__LIB_MAX]);
uint64_t tly__now_ns(void);
uint64_t tly__thread_tracked_bytes(void);

/* ptrtable.c: the stage (and library) that allocated each live block of TLY_MEM_LARGE bytes or more */
void tly__ptab_put(uintptr_t p, size_t usize, size_t req, enum tly_stage s, unsigned lib, uint32_t stack);
bool tly__ptab_take(uintptr_t p, size_t *usize, size_t *req, enum tly_stage *s, unsigned *lib, uint32_t *stack);
/* the old usable and requested sizes into @p old_usize and @p old_req */
bool tly__ptab_resize(uintptr_t p, size_t new_usize, size_t new_req, size_t *old_usize, size_t *old_req,
                      enum tly_stage *s, unsigned *lib, uint32_t *stack);
size_t tly__ptab_count(void);

/* timeline.c */
extern _Atomic int64_t tly__tl_last;
extern _Atomic int64_t tly__tl_gran;
void tly__timeline_sample(int64_t live);
/* lib_live: every library slot's live bytes, or NULL while there are no slots */
void tly__timeline_peak(uint64_t t_ns, int64_t live, const int64_t stage_live[TLY_NSTAGES], const int64_t *lib_live);
void tly__timeline_reset(uint64_t t0_ns, int64_t live, const int64_t stage_live[TLY_NSTAGES], const int64_t *lib_live);
/* tly_mem_timeline(), and each sample's library slots into @p lib_out when it is not NULL */
size_t tly__timeline_read(struct tly_mem_sample *out, int64_t (*lib_out)[TLY__LIB_MAX], size_t cap);

/* time.c */
extern bool tly__time_enabled;
void tly__time_boot(void);
/* the calling thread moves from stage @p from to @p to (they differ) */
void tly__time_switch(struct tly__tls *t, enum tly_stage from, enum tly_stage to, bool enter);
void tly__time_thread_start(struct tly__tls *t);
/* the thread ends: its interval in progress is charged (before its block is folded) */
void tly__time_thread_exit(struct tly__tls *t);
void tly__time_add_block(struct tly_time_snapshot *out, struct tly__tblock *b, uint64_t now);
void tly__time_fold(struct tly__tblock *dst, struct tly__tblock *src);
void tly__time_http(struct tly_time_snapshot *out);
uint32_t tly__tid(struct tly__tls *t);

/* trace.c */
extern _Atomic bool tly__trace_on;
void tly__trace_put(struct tly__tls *t, enum tly_event_kind kind, uint8_t stage, uint64_t a, uint64_t b, unsigned c,
                    const char *text);
void tly__trace_copies_flush(struct tly__tls *t);
void tly__trace_copy(struct tly__tls *t, size_t n);

/* crosscheck.c */
void tly__crosscheck_boot(void);
void tly__crosscheck_window_open(void);

/* plant.c */
void tly__plant_boot(void);

/* hooks.c */
void tly__hooks_boot(void);

#endif
