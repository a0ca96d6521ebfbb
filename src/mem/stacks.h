/*
 * Internal to src/mem and src/preload: call stacks of the points that matter (docs/impl-protocol.md,
 * "Stacks"), for both users of the tracker. The preload (src/preload/stacks.c) takes them for every
 * block of TALLY_PROFILE_LARGE bytes or more and every copy of TALLY_PROFILE_COPY_MIN bytes or more,
 * charged to a library; the engine (stacks_engine.c) for every block and every tly_copy of
 * TLY_MEM_LARGE bytes or more, with the thread's stage as the root frame.
 *
 * A stack is taken with libgcc's unwinder (STACK_DEPTH native frames at most; a Python 3.11 thread's
 * frames joined in where the interpreter runs them, when the user gives the Python hooks) and
 * interned: a stack seen again costs a hash lookup. Each stack keeps its large blocks' live bytes
 * (and what they were at the latest peak), the bytes allocated on it and the bytes copied from it.
 * Frames are named when a window's result is written (stacks_sym.c, stacks_report.c), never in a hook.
 *
 * What differs between the two users is in struct tly__stacks_ops, given once at start-up.
 */
#ifndef TLY__MEM_STACKS_H
#define TLY__MEM_STACKS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define TLY__STACK_DEPTH 64  /* native frames kept; a deeper stack is marked truncated */
#define TLY__STACKS_MAX 4096 /* interned stacks; id 0 stands for any stack the table had no room for */
#define TLY__STACK_PY_TAG ((uintptr_t)1 << 63)   /* a Python frame: (TAG | code object, instruction index) */
#define TLY__STACK_ROOT_TAG ((uintptr_t)1 << 62) /* the engine's root frame: TAG | stage (outermost word) */

struct tly__py_frame {
    uintptr_t code;
    uintptr_t lasti; /* the last instruction's index; above bit 32, what tells the code object from a later one */
    bool entry;      /* the first frame its _PyEval_EvalFrameDefault call ran */
};

/* What a user of the stacks gives them. Every function but the naming ones runs inside a hook. */
struct tly__stacks_ops {
    /* The leaf's frames left off a stack: the tracker's and the allocator's (@p ip inside the call). */
    bool (*in_allocator)(uintptr_t ip);
    bool (*in_jemalloc)(uintptr_t ip); /* the outermost of these is kept as the leaf (malloc) */
    /* A stack's slot (library) when the taker gives none; NULL: TLY__LIB_NONE. */
    unsigned (*frames_slot)(const uintptr_t *ips, unsigned n);
    unsigned (*gen)(void); /* the objects' generation a stack is taken at (NULL: 0) */
    /* Python frames; NULL where there are none */
    bool (*py_active)(void);
    unsigned (*py_frames)(struct tly__py_frame *out, unsigned cap);
    bool (*py_is_eval)(uintptr_t ip);
    void (*py_remember)(uintptr_t code, uintptr_t lasti);
    /* At report time (NULL: none): */
    const char *(*py_text)(uintptr_t code, uintptr_t lasti);
    void (*sync)(void); /* objects unloaded since are noted */
    const char *(*gone_find)(uintptr_t a, unsigned since, uintptr_t *base);
    const char *(*slot_name)(unsigned slot);
};

/* stacks.c */
extern bool tly__stacks_on; /* set by tly__stacks_start, before the hooks take any */
/* Stacks from now on, taken as @p ops says (kept: static storage); the unwinder warmed up here. */
void tly__stacks_start(const struct tly__stacks_ops *ops);
const struct tly__stacks_ops *tly__stacks_ops(void); /* the ops given (NULL before) */
/* Where a stack's leaf ends: frames are left off up to return address @p ra when it is not 0; then
 * while the ops' in_allocator holds; with @p through_allocator, also every frame before the first
 * of jemalloc (the tracker's own frames, inside a hook). */
struct tly__leaf {
    uintptr_t ra;
    bool through_allocator;
};
/* The calling thread's stack, interned: its id (0: no room). Its slot (@p slot_given, else the ops')
 * in @p slot; @p root not 0: the outermost word (TLY__STACK_ROOT_TAG | something). */
unsigned tly__stacks_take(const struct tly__leaf *leaf, unsigned slot_given, unsigned *slot, uintptr_t root);
/* @p count copies of @p n bytes in all counted on stack @p id. */
void tly__stacks_copied(unsigned id, uint64_t n, uint64_t count);
/* A large block's bytes move on stack @p id (the tly__stack_move of internal.h). */
void tly__stacks_move(uint32_t id, int64_t d, int64_t blocks);

/* One stack's figures, as a window sees them. */
struct tly__stack_counts {
    int64_t bytes[TLY__STACKS_MAX], blocks[TLY__STACKS_MAX]; /* live (or at the peak) */
    uint64_t copy_bytes[TLY__STACKS_MAX], copies[TLY__STACKS_MAX];
    uint64_t alloc_bytes[TLY__STACKS_MAX], allocs[TLY__STACKS_MAX];
};
/* Live bytes and blocks now, and the copies and allocations so far, of every stack (a window opens). */
void tly__stacks_now(struct tly__stack_counts *out);
/* Bytes and blocks at the counters' latest peak (copies and allocations: as now). */
void tly__stacks_at_peak(struct tly__stack_counts *out);
unsigned tly__stacks_count(void);
uint64_t tly__stacks_dropped(void); /* captures the table had no room for (charged to id 0) */
/* Stacks taken so far, and the wall time spent taking them (all threads together). */
void tly__stacks_cost(uint64_t *n, uint64_t *ns);

/* A stack's frames, innermost first (Python frames as two words), its slot, whether it was cut and the
 * objects table's generation when it was taken. */
const uintptr_t *tly__stack_words(unsigned id, unsigned *n, unsigned *slot, bool *truncated, unsigned *gen);

/* stacks_sym.c: native frames named at report time (dladdr, .symtab and DWARF lines with libdw) */
void tly__sym_begin(void);
void tly__sym_end(void);
/* "function (file.c:12)", "function [lib]" or "lib+0xOFFSET" for return address @p ip of a stack taken
 * at objects generation @p gen ("lib+0xOFFSET [unloaded]" when its object was unloaded since); @p runtime
 * says the frame lies in the interpreter (python3.x, libpython). */
void tly__sym_name(uintptr_t ip, unsigned gen, char *out, size_t cap, bool *runtime);

/* stacks_report.c: a window's "stacks" block */
struct tly__stacks_window {
    const struct tly__stack_counts *before, *peak, *now; /* at the window's start, its peak and its end */
    unsigned n;                                          /* stacks interned at its end */
    uint64_t dropped;
    uint64_t taken[2], taken_ns[2]; /* stacks taken and their time: at the start, at the close */
};
/* The "stacks" member, two spaces in (the caller writes what follows it); "enabled": false when @p w is NULL. */
void tly__stacks_emit(FILE *f, const struct tly__stacks_window *w);
/* The JSON string @p s, quoted and escaped (stacks_report.c; the preload's result uses it too). */
void tly__jstr(FILE *f, const char *s);

#endif
