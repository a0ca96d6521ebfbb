/*
 * The buffer pool: tickets against a byte budget. A ticket that does not fit waits on a condition
 * variable (the time is counted as the thread's ticket wait); one larger than the budget waits for
 * an idle pool and then runs alone.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "mem/internal.h"
#include "mem/pool.h"

struct tly_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t budget, in_use;
    bool forced_running;
    struct tly_pool_stats st;
};

struct tly_pool *tly_pool_create(uint64_t budget)
{
    struct tly_pool *p;
    TLY_STAGE(TLY_POOL)
    {
        p = calloc(1, sizeof *p);
    }
    if (p == NULL)
        return NULL;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->budget = budget;
    p->st.budget = budget;
    return p;
}

void tly_pool_destroy(struct tly_pool *p)
{
    if (p == NULL)
        return;
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    TLY_STAGE(TLY_POOL)
    {
        free(p);
    }
}

/* Wait for a ticket of @p n bytes; called with mu held. The time it waits is the thread's waiting
 * (tally/timing.h: TLY_WAIT_TICKET), in its stage (the engine takes tickets in stage pool). */
static void take_ticket(struct tly_pool *p, uint64_t n)
{
    bool waited = false;
    uint64_t t0 = 0;
    if (p->budget == 0) {
        /* no limit */
    } else if (n > p->budget) {
        while (p->in_use > 0 || p->forced_running) {
            if (!waited)
                t0 = tly_wait_begin();
            pthread_cond_wait(&p->cv, &p->mu);
            waited = true;
        }
        p->forced_running = true;
        p->st.forced++;
    } else {
        while (p->forced_running || p->in_use + n > p->budget) {
            if (!waited)
                t0 = tly_wait_begin();
            pthread_cond_wait(&p->cv, &p->mu);
            waited = true;
        }
    }
    p->in_use += n;
    if (p->in_use > p->st.peak_in_use)
        p->st.peak_in_use = p->in_use;
    p->st.tickets++;
    p->st.waits += waited;
    if (waited)
        tly_wait_end(t0, TLY_WAIT_TICKET);
}

static void give_ticket(struct tly_pool *p, uint64_t n)
{
    pthread_mutex_lock(&p->mu);
    p->in_use -= n;
    if (p->in_use == 0) /* a forced ticket runs alone: all of it given back, in one release or in parts */
        p->forced_running = false;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void tly_pool_acquire(struct tly_pool *p, uint64_t n)
{
    pthread_mutex_lock(&p->mu);
    take_ticket(p, n);
    pthread_mutex_unlock(&p->mu);
}

void tly_pool_release(struct tly_pool *p, uint64_t n)
{
    give_ticket(p, n);
}

/* Not on huge pages: on a 1 GiB blosc chunk they made the write 0.91 s or 1.6-2.6 s from run to run
 * (compaction in the page fault, THP defrag "madvise") where 4 KiB pages gave a steady 1.23-1.58 s. */
void *tly_pool_alloc(size_t n)
{
    void *b;
    TLY_STAGE(TLY_POOL)
    {
        b = malloc(n ? n : 1);
    }
    return b;
}

void tly_pool_free(void *buf)
{
    TLY_STAGE(TLY_POOL)
    {
        free(buf);
    }
}

void tly_pool_stats(struct tly_pool *p, struct tly_pool_stats *out)
{
    pthread_mutex_lock(&p->mu);
    *out = p->st;
    pthread_mutex_unlock(&p->mu);
}
