/**
 * tally/mem.h — the tracking allocator: pipeline stages, per-stage allocation counters, the copy
 * ledger, the memory timeline and the cross-checks against jemalloc and the kernel.
 *
 * Every allocation in the process (libc, libcurl, OpenSSL, zstd, c-blosc, ours) is seen by
 * jemalloc's experimental alloc/dalloc/expand hooks and charged to the calling thread's innermost
 * stage. The hooks are installed by a constructor when the program starts, unless TALLY_TRACK=0,
 * the build is a sanitizer build, or malloc is not jemalloc's (valgrind, a missing -ljemalloc):
 * then tly_mem_tracking() is false and tly_mem_untracked_reason() says why. The copy ledger and
 * the stage scopes work either way.
 *
 * Units: jemalloc usable bytes (what it really reserves for the request); requested bytes are
 * kept beside them as alloc_req_bytes.
 *
 * Exactness:
 *  - process-wide live and peak bytes are exact for every size (from the moment the hooks were
 *    installed: a block allocated before that and freed after lowers live a little);
 *  - per-stage live bytes are exact for allocations of TLY_MEM_LARGE (64 KiB) and more: a pointer
 *    table remembers the stage that allocated them, and their free is charged there. A smaller
 *    free is charged to the *freeing* thread's current stage, so a stage that frees small blocks
 *    another stage allocated can show negative live bytes. Sums over stages stay exact.
 *  - allocs, frees, alloc_bytes and the copy ledger are exact per stage (no lost updates).
 */
#ifndef TALLY_MEM_H
#define TALLY_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * The stages of the data path (docs/design.md). Adding one: an entry here and its name.
 * TLY_CALLER is the program that calls libtally (its own buffers: the array it writes, the output
 * it reads into); reports show it, budgets never count it against the engine.
 */
enum tly_stage {
    TLY_PLAN,
    TLY_GATHER,
    TLY_ENCODE,
    TLY_PUT,
    TLY_GET,
    TLY_DECODE,
    TLY_SCATTER,
    TLY_META,
    TLY_SIGN,
    TLY_HTTP,
    TLY_POOL,
    TLY_CALLER,   /* the calling program's own work */
    TLY_UNSTAGED, /* a thread with no stage set */
    TLY_NSTAGES
};

/** Allocations of at least this many usable bytes are attributed exactly at free time. */
#define TLY_MEM_LARGE ((size_t)64 * 1024)

/** The stage's name ("plan", "gather", ...); "?" for a value out of range. */
const char *tly_stage_name(enum tly_stage s);

/** The stage named @p name, or -1 when there is none. */
int tly_stage_from_name(const char *name);

/** The calling thread's innermost stage (TLY_UNSTAGED when none is set). */
enum tly_stage tly_stage_current(void);

/** Make @p s the calling thread's stage; returns the previous one, to give to tly_stage_leave(). */
enum tly_stage tly_stage_enter(enum tly_stage s);

/** Restore the stage tly_stage_enter() returned. */
void tly_stage_leave(enum tly_stage prev);

struct tly__stage_scope {
    enum tly_stage prev;
    int once;
};
static inline void tly__stage_scope_end(struct tly__stage_scope *sc)
{
    tly_stage_leave(sc->prev);
}
static inline struct tly__stage_scope tly__stage_scope_begin(enum tly_stage s)
{
    struct tly__stage_scope sc = {tly_stage_enter(s), 1};
    return sc;
}

/**
 * Run the following statement or block with stage @p s, e.g. `TLY_STAGE(TLY_ENCODE) { ... }`.
 * Nestable; the innermost wins. The previous stage comes back however the block is left
 * (end, break, return, goto).
 */
#define TLY_STAGE(s) TLY__STAGE_SCOPE(s, TLY__CAT(tly__sc, __COUNTER__))
#define TLY__CAT(a, b) TLY__CAT_(a, b)
#define TLY__CAT_(a, b) a##b
#define TLY__STAGE_SCOPE(s, sc)                                                                                        \
    for (struct tly__stage_scope sc __attribute__((cleanup(tly__stage_scope_end))) = tly__stage_scope_begin(s);        \
         sc.once; sc.once = 0)

/** True when the allocation hooks are installed and seen to run. */
bool tly_mem_tracking(void);

/** Why tracking is off (e.g. "TALLY_TRACK=0", "sanitizer build ..."); NULL when it is on. */
const char *tly_mem_untracked_reason(void);

/** The allocator's version as jemalloc reports it ("5.3.0-0-g54eaed1d..."), or NULL when unknown. */
const char *tly_mem_allocator_version(void);

/** One stage's counters. Monotonic ones grow for the life of the process; subtract two snapshots. */
struct tly_stage_counters {
    uint64_t allocs;          /**< allocation calls (malloc, calloc, realloc that moved, ...) */
    uint64_t frees;           /**< deallocation calls charged to this stage */
    uint64_t alloc_bytes;     /**< usable bytes allocated (in-place growth included) */
    uint64_t alloc_req_bytes; /**< requested bytes allocated */
    int64_t live_bytes;       /**< usable bytes live now (see the exactness note above) */
    int64_t peak_bytes;       /**< this stage's own highest live_bytes since the last peak reset */
    int64_t at_peak_bytes;    /**< this stage's live bytes at the moment of the process-wide peak */
    uint64_t copies;          /**< payload copies made through tly_copy() in this stage */
    uint64_t copy_bytes;      /**< payload bytes copied through tly_copy() in this stage */
};

/** Everything the tracker knows, at one moment. */
struct tly_mem_snapshot {
    struct tly_stage_counters stage[TLY_NSTAGES];
    int64_t live_bytes;          /**< process-wide tracked live bytes (requested: see tly_mem_live_bytes) */
    int64_t peak_bytes;          /**< process-wide peak of live_bytes since the last peak reset */
    int64_t reserved_live_bytes; /**< the same blocks at jemalloc's usable sizes */
    int64_t reserved_peak_bytes; /**< the peak of reserved_live_bytes since the last peak reset */
    uint64_t peak_time_ns;       /**< CLOCK_MONOTONIC time of that peak */
};

/** Fill @p out with the current counters (safe from any thread, at any time). */
void tly_mem_snapshot(struct tly_mem_snapshot *out);

/**
 * Process-wide tracked live bytes now (cheap), in requested bytes: a block of TLY_MEM_LARGE bytes or
 * more counts what was asked for (as heaptrack and memray count), a smaller one its usable size (its
 * request is not known at its free; jemalloc's small size classes are at most 25% above it).
 */
int64_t tly_mem_live_bytes(void);

/** The same live blocks at jemalloc's usable sizes (what jemalloc's stats.allocated counts). */
int64_t tly_mem_reserved_live_bytes(void);

/**
 * Open a new measurement window: every peak (process and stages) restarts from the current live
 * bytes, at_peak_bytes from the current split, and the timeline restarts empty.
 */
void tly_mem_reset_peaks(void);

/**
 * The copy ledger: copy @p n payload bytes from @p src to @p dst (as memcpy; no overlap) and
 * count them in the calling thread's stage. Every payload copy the engine makes goes through here.
 */
void tly_copy(void *dst, const void *src, size_t n);

/**
 * Count @p n payload bytes copied by code that cannot call tly_copy() (a library's own copy that
 * tally asked for), in the calling thread's stage.
 */
void tly_copy_note(size_t n);

/**
 * Call stacks of tally's own cells: from tly_stacks_start() on, every block of TLY_MEM_LARGE bytes or
 * more and every tly_copy() / tly_copy_note() of TLY_MEM_LARGE bytes or more has its native call stack
 * taken (libgcc's unwinder, interned: a stack seen again costs a hash lookup), with the calling
 * thread's stage as its root frame ("stage encode"). Frames are named only by tly_stacks_json(), after
 * the window, never in the hot path. The same code as the preload's call stacks (docs/impl-protocol.md,
 * "Stacks"), so the result has the same shape.
 *
 * Returns true when stacks are on: TALLY_PROFILE_STACKS is not 0 (with tracking off, under a sanitizer,
 * only the copies have stacks). Call it once, before the window, on one thread; it cannot be turned off
 * again.
 */
bool tly_stacks_start(void);

/** The stacks' counters now, as a window's start (after tly_mem_reset_peaks()). Nothing when they are off. */
void tly_stacks_window_open(void);

/** The stacks' counters at the window's peak and now, as its end (before anything else allocates). */
void tly_stacks_window_close(void);

/**
 * The last closed window's call stacks as JSON text, {"stacks": {...}}: the sites of the memory at its
 * peak ("peak"), of its copied bytes ("copies") and of its allocated bytes ("allocated"), heaviest
 * first, each {bytes, blocks or count, library, stage, truncated, frames (outermost first)}; "enabled":
 * false when stacks are off. Frames are named now. A new string for free(), or NULL without memory.
 */
char *tly_stacks_json(void);

/** Counters to cross-check the tracker with, read in one call. */
struct tly_mem_crosscheck {
    int64_t tracked_live_bytes;        /**< tly_mem_reserved_live_bytes(): jemalloc's units */
    uint64_t jemalloc_allocated_bytes; /**< jemalloc stats.allocated, after an epoch refresh */
    /** stats.allocated when the hooks were installed: blocks the libraries' own start-up code
     * allocated before tally could see them (tracked coverage compares against the rest) */
    uint64_t jemalloc_allocated_at_start_bytes;
    uint64_t thread_allocated_bytes;   /**< jemalloc thread.allocated of the calling thread */
    uint64_t thread_deallocated_bytes; /**< jemalloc thread.deallocated of the calling thread */
    uint64_t thread_tracked_bytes;     /**< usable bytes the tracker saw this thread allocate */
    /** jemalloc thread.peak.read: the calling thread's highest (allocated - deallocated) since the
     * last tly_mem_reset_peaks() on this thread (jemalloc's own peak, to check the tracker's) */
    uint64_t thread_peak_bytes;
    uint64_t rss_bytes;      /**< VmRSS */
    uint64_t rss_peak_bytes; /**< VmHWM: the process's peak resident set */
};

/**
 * Read the cross-checks. Returns 0, or a negative TLY_E* code when jemalloc's counters cannot be
 * read (malloc is not jemalloc's); /proc figures are 0 where /proc is missing.
 */
int tly_mem_crosscheck(struct tly_mem_crosscheck *out);

/** One timeline sample: live bytes by stage at a moment. */
struct tly_mem_sample {
    uint64_t t_ns; /**< nanoseconds since the window opened (tly_mem_reset_peaks) */
    int64_t live_bytes;
    int64_t stage_live[TLY_NSTAGES];
    bool is_peak; /**< this is the window's process-wide peak */
};

/**
 * The next windows' timelines sample every change of live bytes of 1% of @p array_bytes, when that
 * is finer than the default 64 KiB (at least 4 KiB; 0: the default).
 */
void tly_mem_timeline_grain(uint64_t array_bytes);

/** Most samples a timeline holds (it thins itself by halves past this, never losing the peak). */
#define TLY_TIMELINE_CAP 2048

/**
 * Copy the window's timeline into @p out (at most @p cap samples, in time order): the samples
 * recorded, the peak and a closing sample for now. Returns how many there are in all (which may
 * exceed @p cap; then only the first @p cap were written).
 */
size_t tly_mem_timeline(struct tly_mem_sample *out, size_t cap);

/**
 * Write the window's timeline as JSON to @p f:
 * {"columns":["t_s","live",<stages>...],"peak_index":K,"samples":[[t,live,...],...]}.
 * Returns 0 or a negative errno.
 */
int tly_mem_timeline_write_json(FILE *f);

#ifdef __cplusplus
}
#endif

#endif
