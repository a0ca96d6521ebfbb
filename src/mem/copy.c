/* The copy ledger: every payload copy the engine makes, counted in the stage that made it (and, with the
 * engine's stacks on, a large one on the call stack of the function that asked for it: its return address). */
#include <string.h>

#include "mem/internal.h"

static inline void note(size_t n, uintptr_t ra)
{
    struct tly__tls *t = &tly__tls;
    enum tly_stage s = tly__stage_of(t);
    struct tly__tblock *b = tly__block(t);
    tly__bump(b, &b->copies[s], 1);
    tly__bump(b, &b->copy_bytes[s], n);
    if (atomic_load_explicit(&tly__trace_on, memory_order_relaxed))
        tly__trace_copy(t, n);
    if (TLY__UNLIKELY(tly__stacks_engine))
        tly__stacks_engine_copy(n, ra);
}

void tly_copy(void *dst, const void *src, size_t n)
{
    memcpy(dst, src, n);
    note(n, (uintptr_t)__builtin_return_address(0));
}

void tly_copy_note(size_t n)
{
    note(n, (uintptr_t)__builtin_return_address(0));
}
