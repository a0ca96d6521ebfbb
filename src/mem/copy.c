/* The copy ledger: every payload copy the engine makes, counted in the stage that made it. */
#include <string.h>

#include "mem/internal.h"

void tly_copy(void *dst, const void *src, size_t n)
{
    memcpy(dst, src, n);
    tly_copy_note(n);
}

void tly_copy_note(size_t n)
{
    struct tly__tls *t = &tly__tls;
    enum tly_stage s = tly__stage_of(t);
    struct tly__tblock *b = tly__block(t);
    tly__bump(b, &b->copies[s], 1);
    tly__bump(b, &b->copy_bytes[s], n);
    if (atomic_load_explicit(&tly__trace_on, memory_order_relaxed))
        tly__trace_copy(t, n);
}
