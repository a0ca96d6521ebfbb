/*
 * The event ring: stage scopes, chunks, codec calls, S3 requests, waits and copies, recorded while
 * a trace is on and read by the harness after its window closes.
 *
 * One ring for the process, mapped once with mmap (outside jemalloc, so no figure sees it) and
 * written lock-free: a writer claims a slot with one atomic add and fills it; when the ring is full
 * the oldest events are overwritten (the reader says how many). Nothing here allocates, and the
 * allocation hooks never come here.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "mem/internal.h"

_Atomic bool tly__trace_on;

static struct tly_event *ring;
static size_t ring_cap;
static _Atomic uint64_t head; /* events claimed since the start */

/* Copies add up per thread and become one event per MiB (and at the thread's next stage change). */
#define COPY_EVENT_BYTES ((uint64_t)1 << 20)

int tly_trace_start(size_t cap)
{
    if (cap == 0)
        cap = TLY_TRACE_CAP;
    atomic_store(&tly__trace_on, false);
    if (ring == NULL || ring_cap != cap) {
        if (ring)
            munmap(ring, ring_cap * sizeof *ring);
        void *p = mmap(NULL, cap * sizeof *ring, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            ring = NULL;
            ring_cap = 0;
            return -errno;
        }
        ring = p;
        ring_cap = cap;
    }
    atomic_store(&head, 0);
    atomic_store(&tly__trace_on, true);
    return 0;
}

void tly_trace_stop(void)
{
    if (atomic_load(&tly__trace_on))
        tly__trace_copies_flush(&tly__tls);
    atomic_store(&tly__trace_on, false);
}

bool tly_trace_on(void)
{
    return atomic_load_explicit(&tly__trace_on, memory_order_relaxed);
}

size_t tly_trace_count(uint64_t *dropped)
{
    uint64_t h = atomic_load(&head);
    uint64_t n = h < ring_cap ? h : ring_cap;
    if (dropped)
        *dropped = h - n;
    return (size_t)n;
}

const struct tly_event *tly_trace_event_at(size_t i)
{
    uint64_t h = atomic_load(&head);
    uint64_t first = h > ring_cap ? h - ring_cap : 0;
    return ring && i < h - first ? &ring[(first + i) % ring_cap] : NULL;
}

void tly__trace_put(struct tly__tls *t, enum tly_event_kind kind, uint8_t stage, uint64_t a, uint64_t b, unsigned c,
                    const char *text)
{
    if (ring == NULL)
        return;
    uint64_t i = atomic_fetch_add_explicit(&head, 1, memory_order_relaxed);
    struct tly_event *e = &ring[i % ring_cap];
    e->t_ns = tly__now_ns();
    e->a = a;
    e->b = b;
    e->tid = tly__tid(t);
    e->kind = (uint8_t)kind;
    e->stage = stage;
    e->c = (uint16_t)c;
    if (text) { /* a long text keeps its end: a key's end tells chunks apart */
        size_t n = strlen(text);
        if (n >= sizeof e->text)
            text += n - (sizeof e->text - 1);
        memcpy(e->text, text, strlen(text) + 1); /* a label, not payload */
    } else {
        e->text[0] = '\0';
    }
}

void tly_trace_note(enum tly_event_kind kind, uint64_t a, uint64_t b, unsigned c, const char *text)
{
    if (!atomic_load_explicit(&tly__trace_on, memory_order_relaxed))
        return;
    struct tly__tls *t = &tly__tls;
    tly__trace_put(t, kind, (uint8_t)tly__stage_of(t), a, b, c, text);
}

void tly__trace_copies_flush(struct tly__tls *t)
{
    if (t->copy_pending == 0)
        return;
    tly__trace_put(t, TLY_EV_COPY, (uint8_t)tly__stage_of(t), t->copy_pending, 0, 0, NULL);
    t->copy_pending = 0;
}

/* A payload copy of @p n bytes on this thread (copy.c), while a trace is on. */
void tly__trace_copy(struct tly__tls *t, size_t n)
{
    t->copy_pending += n;
    if (t->copy_pending >= COPY_EVENT_BYTES)
        tly__trace_copies_flush(t);
}
