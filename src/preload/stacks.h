/*
 * Internal to src/preload: call stacks of the points that matter (docs/impl-protocol.md, "Stacks").
 *
 * Every block of TALLY_PROFILE_LARGE bytes or more and every copy of TALLY_PROFILE_COPY_MIN bytes or
 * more has its stack taken (libgcc's unwinder, STACK_DEPTH native frames at most; a Python 3.11
 * thread's frames joined in where the interpreter runs them) and interned: a stack seen again costs
 * a hash lookup. Each stack keeps its large blocks' live bytes (and what they were at the latest
 * peak) and the bytes copied from it. Frames are named when a window's result is written, never in
 * a hook.
 */
#ifndef TLY__PRELOAD_STACKS_H
#define TLY__PRELOAD_STACKS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define TLY__STACK_DEPTH 64  /* native frames kept; a deeper stack is marked truncated */
#define TLY__STACKS_MAX 4096 /* interned stacks; id 0 stands for any stack the table had no room for */
#define TLY__STACK_PY_TAG ((uintptr_t)1 << 63) /* a Python frame: (TAG | code object, instruction index) */

extern bool tly__stacks_on; /* TALLY_PROFILE_STACKS (not 0), set before the hooks go in */

/* stacks.c */
void tly__stacks_boot(void);
/* For a new large block (inside the hook): its stack interned into tly__tls.stack; returns its slot. */
unsigned tly__stacks_alloc_slot(void);
/* A copy of @p n bytes charged to @p slot: its stack interned, the bytes counted on it. */
void tly__stacks_copy(unsigned slot, uint64_t n);

/* One stack's figures, as a window sees them. */
struct tly__stack_counts {
    int64_t bytes[TLY__STACKS_MAX], blocks[TLY__STACKS_MAX]; /* live (or at the peak) */
    uint64_t copy_bytes[TLY__STACKS_MAX], copies[TLY__STACKS_MAX];
};
/* Live bytes and blocks now, and the copies so far, of every stack (a window opens). */
void tly__stacks_now(struct tly__stack_counts *out);
/* Bytes and blocks at the counters' latest peak (copies: as now). */
void tly__stacks_at_peak(struct tly__stack_counts *out);
unsigned tly__stacks_count(void);
uint64_t tly__stacks_dropped(void); /* captures the table had no room for (charged to id 0) */
/* Stacks taken so far, and the wall time spent taking them (all threads together). */
void tly__stacks_cost(uint64_t *n, uint64_t *ns);

/* A stack's frames, innermost first (Python frames as two words), its slot, whether it was cut and the
 * objects table's generation when it was taken. */
const uintptr_t *tly__stack_words(unsigned id, unsigned *n, unsigned *slot, bool *truncated, unsigned *gen);

/* stacks_py.c: the calling thread's Python 3.11 frames, for a stack being taken (inside a hook) */
bool tly__py_boot(void); /* false: not a CPython 3.11 process (or no headers at build time) */
bool tly__py_active(void);
/* Is @p ip inside the interpreter's frame evaluation (_PyEval_EvalFrameDefault)? */
bool tly__py_is_eval(uintptr_t ip);
struct tly__py_frame {
    uintptr_t code;
    uintptr_t lasti; /* the last instruction's index; above bit 32, what tells the code object from a later one */
    bool entry;      /* the first frame its _PyEval_EvalFrameDefault call ran */
};
/* The thread's Python frames, innermost first, into @p out; returns how many. No allocation. */
unsigned tly__py_frames(struct tly__py_frame *out, unsigned cap);
/* Name a Python frame as "file:line function" (a new stack is interned; the frame runs, so its code
 * object is alive); the text is kept for tly__py_text. */
void tly__py_remember(uintptr_t code, uintptr_t lasti);
const char *tly__py_text(uintptr_t code, uintptr_t lasti);

/* stacks_sym.c: native frames named at report time (dladdr, .symtab and DWARF lines with libdw) */
void tly__sym_begin(void);
void tly__sym_end(void);
/* "function (file.c:12)", "function [lib]" or "lib+0xOFFSET" for return address @p ip of a stack taken
 * at objects generation @p gen ("lib+0xOFFSET [unloaded]" when its object was unloaded since); @p runtime
 * says the frame lies in the interpreter (python3.x, libpython). */
void tly__sym_name(uintptr_t ip, unsigned gen, char *out, size_t cap, bool *runtime);

/* stacks_report.c: a window's "stacks" block */
struct tly__figures;
void tly__stacks_emit(FILE *f, const struct tly__figures *x);

#endif
