/*
 * mem: the ticket pool (src/mem/pool.c). A ticket within the budget waits for room; a ticket larger
 * than the budget waits for an idle pool and runs alone, and the pool opens again once all of it is
 * given back, in one release or in parts (read_blocks.c's one-range read gives back what a frame does
 * not need before the rest: a forced ticket given back in two parts left every later ticket waiting
 * for good).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include "mem/pool.h"
#include "support.h"

struct taker {
    struct tly_pool *p;
    uint64_t n;
    atomic_bool done;
    pthread_t th;
};

static void *take(void *arg)
{
    struct taker *t = arg;
    tly_pool_acquire(t->p, t->n);
    atomic_store(&t->done, true);
    return NULL;
}

static void start(struct taker *t, struct tly_pool *p, uint64_t n)
{
    t->p = p;
    t->n = n;
    atomic_store(&t->done, false);
    cr_assert_eq(pthread_create(&t->th, NULL, take, t), 0);
}

/* Whether the taker has its ticket within @p ms (a taker that must wait is given 100 ms to show it
 * does not: a wrong pool that lets it through does so at once). */
static bool has_it_within(struct taker *t, int ms)
{
    for (int i = 0; i < ms && !atomic_load(&t->done); i++)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    return atomic_load(&t->done);
}

/* Give back @p n bytes: the waiting taker gets its ticket (@p why), and is done. */
static void let_through(struct tly_pool *p, uint64_t n, struct taker *t, const char *why)
{
    tly_pool_release(p, n);
    cr_expect(has_it_within(t, 30000), "%s", why);
    pthread_join(t->th, NULL);
}

TLY_TEST(pool, a_ticket_waits_for_room_in_the_budget)
{
    struct tly_pool *p = tly_pool_create(100);
    struct taker t;
    tly_pool_acquire(p, 60);
    start(&t, p, 60);
    cr_expect(!has_it_within(&t, 100), "60 + 60 bytes of tickets in a budget of 100");
    let_through(p, 60, &t, "the room given back lets the waiting ticket through");
    tly_pool_release(p, 60);
    struct tly_pool_stats st;
    tly_pool_stats(p, &st);
    cr_expect(st.tickets == 2 && st.waits == 1 && st.peak_in_use == 60 && st.forced == 0,
              "tickets %llu waits %llu peak %llu forced %llu", (unsigned long long)st.tickets,
              (unsigned long long)st.waits, (unsigned long long)st.peak_in_use, (unsigned long long)st.forced);
    tly_pool_destroy(p);
}

TLY_TEST(pool, a_ticket_over_the_budget_waits_for_an_idle_pool_and_runs_alone)
{
    struct tly_pool *p = tly_pool_create(100);
    struct taker big, small;
    tly_pool_acquire(p, 10);
    start(&big, p, 250);
    cr_expect(!has_it_within(&big, 100), "a forced ticket waits while another is out");
    let_through(p, 10, &big, "and runs once the pool is idle");
    start(&small, p, 1);
    cr_expect(!has_it_within(&small, 100), "nothing runs beside a forced ticket");
    let_through(p, 250, &small, "its release opens the pool");
    tly_pool_release(p, 1);
    struct tly_pool_stats st;
    tly_pool_stats(p, &st);
    cr_expect(st.forced == 1, "forced %llu", (unsigned long long)st.forced);
    tly_pool_destroy(p);
}

TLY_TEST(pool, a_forced_ticket_given_back_in_parts_opens_the_pool_with_its_last_part, .timeout = 120)
{
    struct tly_pool *p = tly_pool_create(100);
    struct taker small;
    tly_pool_acquire(p, 250); /* forced: more than the budget */
    tly_pool_release(p, 180); /* a part, itself more than the budget */
    start(&small, p, 1);
    cr_expect(!has_it_within(&small, 100), "70 bytes of the forced ticket are still out: it still runs alone");
    let_through(p, 70, &small, "the forced ticket given back whole, in parts, opens the pool"); /* the rest */
    tly_pool_release(p, 1);
    tly_pool_acquire(p, 150); /* forced again, given back in two parts each within the budget */
    tly_pool_release(p, 90);
    tly_pool_release(p, 60);
    start(&small, p, 100);
    cr_expect(has_it_within(&small, 30000), "parts within the budget open it too");
    pthread_join(small.th, NULL);
    tly_pool_release(p, 100);
    tly_pool_destroy(p);
}
