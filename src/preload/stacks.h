/*
 * Internal to src/preload: the preload's call stacks (docs/impl-protocol.md, "Stacks"), taken and
 * interned by src/mem/stacks.c (mem/stacks.h), for every block of TALLY_PROFILE_LARGE bytes or more
 * and every copy of TALLY_PROFILE_COPY_MIN bytes or more, each charged to its library; a Python 3.11
 * thread's frames joined in where the interpreter runs them.
 */
#ifndef TLY__PRELOAD_STACKS_H
#define TLY__PRELOAD_STACKS_H

#include "mem/stacks.h"

/* stacks.c: TALLY_PROFILE_STACKS (not 0) turns them on (tly__stacks_on), before the hooks go in */
void tly__stacks_boot(void);
/* For a new large block (inside the hook): its stack interned into tly__tls.stack; returns its slot. */
unsigned tly__stacks_alloc_slot(void);
/* A copy of @p n bytes charged to @p slot: its stack interned, the bytes counted on it. */
void tly__stacks_copy(unsigned slot, uint64_t n);

/* stacks_py.c: the calling thread's Python 3.11 frames, for a stack being taken (inside a hook) */
bool tly__py_boot(void); /* false: not a CPython 3.11 process (or no headers at build time) */
bool tly__py_active(void);
/* Is @p ip inside the interpreter's frame evaluation (_PyEval_EvalFrameDefault)? */
bool tly__py_is_eval(uintptr_t ip);
/* The thread's Python frames, innermost first, into @p out; returns how many. No allocation. */
unsigned tly__py_frames(struct tly__py_frame *out, unsigned cap);
/* Name a Python frame as "file:line function" (a new stack is interned; the frame runs, so its code
 * object is alive); the text is kept for tly__py_text. */
void tly__py_remember(uintptr_t code, uintptr_t lasti);
const char *tly__py_text(uintptr_t code, uintptr_t lasti);

#endif
