/*
 * mem: time accounting (busy and waiting per stage, waits by reason, worker time, requests in
 * flight) and the event ring. Sleeps give lower bounds (a sleep lasts at least what it asks); upper
 * bounds are the test's own clock around the same code, never a fixed duration.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "support.h"
#include "tally/timing.h"

#define MS 1000000ull

static uint64_t mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* Run on the CPU until this thread has used @p ns of CPU time. */
static void spin_cpu(uint64_t ns)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    uint64_t end = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + ns;
    volatile uint64_t x = 0;
    for (;;) {
        for (int i = 0; i < 1000; i++)
            x = x + 1;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        if ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec >= end)
            break;
    }
}

#define D(a, b, f, s) ((b).f[s] - (a).f[s])

static void require_time(void)
{
    if (!tly_time_on())
        cr_skip_test("time accounting is off (TALLY_TRACK=0 or TALLY_TIME=0)");
}

TLY_TEST(time, wall_time_in_a_stage_is_busy)
{
    require_time();
    struct tly_time_snapshot a, b;
    tly_time_snapshot(&a);
    uint64_t t0 = mono();
    TLY_STAGE(TLY_ENCODE)
    {
        sleep_ns(20 * MS);
    }
    uint64_t wall = mono() - t0;
    tly_time_snapshot(&b);
    cr_expect_geq(D(a, b, busy_ns, TLY_ENCODE), 20 * MS);
    cr_expect_leq(D(a, b, busy_ns, TLY_ENCODE), wall);
    cr_expect_eq(D(a, b, waiting_ns, TLY_ENCODE), 0);
}

TLY_TEST(time, an_explicit_wait_is_waiting_not_busy)
{
    require_time();
    struct tly_time_snapshot a, b;
    tly_time_snapshot(&a);
    uint64_t t0 = mono();
    TLY_STAGE(TLY_POOL)
    {
        uint64_t w = tly_wait_begin();
        sleep_ns(20 * MS);
        tly_wait_end(w, TLY_WAIT_TICKET);
    }
    uint64_t wall = mono() - t0;
    tly_time_snapshot(&b);
    uint64_t busy = D(a, b, busy_ns, TLY_POOL), waiting = D(a, b, waiting_ns, TLY_POOL);
    cr_expect_geq(waiting, 20 * MS);
    cr_expect_geq(D(a, b, wait_ns, TLY_WAIT_TICKET), 20 * MS);
    cr_expect_eq(D(a, b, wait_ns, TLY_WAIT_TICKET), waiting);
    cr_expect_leq(busy + waiting, wall, "pool: busy %llu + waiting %llu > wall %llu", (unsigned long long)busy,
                  (unsigned long long)waiting, (unsigned long long)wall);
}

TLY_TEST(time, nested_scopes_charge_the_innermost_stage)
{
    require_time();
    struct tly_time_snapshot a, b;
    tly_time_snapshot(&a);
    uint64_t t0 = mono(), inner = 0;
    TLY_STAGE(TLY_SCATTER)
    {
        sleep_ns(10 * MS);
        uint64_t t1 = mono();
        TLY_STAGE(TLY_SIGN)
        {
            sleep_ns(10 * MS);
        }
        inner = mono() - t1;
        TLY_STAGE(TLY_SCATTER) /* the stage it is in: no transition */
        {
            sleep_ns(1 * MS);
        }
    }
    uint64_t wall = mono() - t0;
    tly_time_snapshot(&b);
    cr_expect_geq(D(a, b, busy_ns, TLY_SIGN), 10 * MS);
    cr_expect_leq(D(a, b, busy_ns, TLY_SIGN), inner);
    cr_expect_geq(D(a, b, busy_ns, TLY_SCATTER), 11 * MS);
    cr_expect_leq(D(a, b, busy_ns, TLY_SCATTER) + D(a, b, busy_ns, TLY_SIGN), wall);
}

struct worker_io {
    bool worker;
    uint64_t wall;
};

/* get: asleep (off-CPU); put: on the CPU. */
static void *io_thread(void *arg)
{
    struct worker_io *w = arg;
    uint64_t t0 = mono();
    if (w->worker)
        tly_time_worker(true);
    TLY_STAGE(TLY_GET)
    {
        sleep_ns(30 * MS);
    }
    TLY_STAGE(TLY_PUT)
    {
        spin_cpu(20 * MS);
    }
    if (w->worker)
        tly_time_worker(false);
    w->wall = mono() - t0;
    return NULL;
}

TLY_TEST(time, a_workers_get_and_put_split_into_working_and_off_cpu)
{
    require_time();
    struct tly_time_snapshot a, b;
    struct worker_io w = {.worker = true};
    pthread_t th;
    tly_time_snapshot(&a);
    pthread_create(&th, NULL, io_thread, &w);
    pthread_join(th, NULL);
    tly_time_snapshot(&b);
    cr_expect_geq(D(a, b, waiting_ns, TLY_GET), 29 * MS, "get waiting %llu",
                  (unsigned long long)D(a, b, waiting_ns, TLY_GET));
    cr_expect_geq(D(a, b, busy_ns, TLY_PUT), 20 * MS);
    /* off the CPU: blocked (the sleep), or runnable while the CPUs ran other work. On a loaded
     * machine (or under valgrind, which runs one thread at a time) the woken thread may wait for a
     * CPU a while: that part is "cpu", but most of a 30 ms sleep is blocked */
    cr_expect_geq(D(a, b, wait_ns, TLY_WAIT_IO) + D(a, b, wait_ns, TLY_WAIT_CPU), 29 * MS);
    cr_expect_geq(D(a, b, wait_ns, TLY_WAIT_IO), 15 * MS, "asleep is blocked, not waiting for a CPU: io %llu cpu %llu",
                  (unsigned long long)D(a, b, wait_ns, TLY_WAIT_IO),
                  (unsigned long long)D(a, b, wait_ns, TLY_WAIT_CPU));
    cr_expect_eq(D(a, b, wait_ns, TLY_WAIT_IO) + D(a, b, wait_ns, TLY_WAIT_CPU),
                 D(a, b, waiting_ns, TLY_GET) + D(a, b, waiting_ns, TLY_PUT));
    cr_expect_geq(b.worker_ns - a.worker_ns, 50 * MS);
    cr_expect_leq(b.worker_ns - a.worker_ns, w.wall);
    uint64_t all = 0;
    for (int s = 0; s < TLY_NSTAGES; s++)
        all += D(a, b, busy_ns, s) + D(a, b, waiting_ns, s);
    cr_expect_geq(all, 50 * MS, "the thread's time is charged when it exits");
}

TLY_TEST(time, outside_a_worker_get_is_all_busy)
{
    require_time();
    struct tly_time_snapshot a, b;
    struct worker_io w = {.worker = false};
    pthread_t th;
    tly_time_snapshot(&a);
    pthread_create(&th, NULL, io_thread, &w);
    pthread_join(th, NULL);
    tly_time_snapshot(&b);
    cr_expect_eq(D(a, b, waiting_ns, TLY_GET), 0);
    cr_expect_geq(D(a, b, busy_ns, TLY_GET), 30 * MS);
    cr_expect_eq(b.worker_ns, a.worker_ns);
}

struct sleeper {
    _Atomic int in;
    _Atomic int out;
};

static void *born_in_get(void *arg)
{
    (void)arg;
    tly_time_worker(true); /* as a split read's helper: started inside get, a worker from here */
    TLY_STAGE(TLY_GET)     /* the stage it is in: no transition */
    {
        sleep_ns(30 * MS);
    }
    tly_time_worker(false);
    return NULL;
}

TLY_TEST(time, a_worker_started_inside_get_splits_it_from_then)
{
    require_time();
    struct tly_time_snapshot a, b;
    pthread_t th;
    tly_time_snapshot(&a);
    TLY_STAGE(TLY_GET)
    {
        pthread_create(&th, NULL, born_in_get, NULL);
    }
    pthread_join(th, NULL);
    tly_time_snapshot(&b);
    cr_expect_geq(D(a, b, wait_ns, TLY_WAIT_IO), 29 * MS, "its sleep is blocked I/O, not busy: io %llu busy %llu",
                  (unsigned long long)D(a, b, wait_ns, TLY_WAIT_IO), (unsigned long long)D(a, b, busy_ns, TLY_GET));
}

static void *sleeper(void *arg)
{
    struct sleeper *s = arg;
    TLY_STAGE(TLY_DECODE)
    {
        atomic_store(&s->in, 1);
        while (!atomic_load(&s->out))
            sleep_ns(1 * MS);
    }
    return NULL;
}

TLY_TEST(time, an_interval_in_progress_counts_up_to_the_snapshot)
{
    require_time();
    struct tly_time_snapshot a, b;
    struct sleeper sl = {0};
    pthread_t th;
    tly_time_snapshot(&a);
    pthread_create(&th, NULL, sleeper, &sl);
    while (!atomic_load(&sl.in))
        sleep_ns(1 * MS);
    sleep_ns(30 * MS); /* the thread is in decode all along */
    tly_time_snapshot(&b);
    atomic_store(&sl.out, 1);
    pthread_join(th, NULL);
    cr_expect_geq(D(a, b, busy_ns, TLY_DECODE), 30 * MS, "decode so far: %llu",
                  (unsigned long long)D(a, b, busy_ns, TLY_DECODE));
    cr_expect_leq(D(a, b, busy_ns, TLY_DECODE), b.t_ns - a.t_ns);
}

TLY_TEST(time, requests_in_flight_sum_their_durations)
{
    require_time();
    struct tly_time_snapshot a, b;
    int ids[2];
    tly_time_snapshot(&a);
    uint64_t t0 = mono();
    tly_io_request_begin(&ids[0], "PUT", "s3://b/k/0", 100);
    tly_io_request_begin(&ids[1], "GET", "s3://b/k/1", 0);
    sleep_ns(10 * MS);
    tly_io_request_end(&ids[0], 200, 100, 1);
    tly_io_request_end(&ids[1], 404, 0, 2);
    uint64_t wall = mono() - t0;
    tly_time_snapshot(&b);
    cr_expect_eq(b.http_requests - a.http_requests, 2);
    cr_expect_geq(b.http_in_flight_ns - a.http_in_flight_ns, 20 * MS);
    cr_expect_leq(b.http_in_flight_ns - a.http_in_flight_ns, 2 * wall);
}

TLY_TEST(time, wait_names)
{
    cr_expect_str_eq(tly_wait_name(TLY_WAIT_TICKET), "ticket");
    cr_expect_str_eq(tly_wait_name(TLY_WAIT_GATE), "gate");
    cr_expect_str_eq(tly_wait_name(TLY_WAIT_IO), "io");
    cr_expect_str_eq(tly_wait_name(TLY_WAIT_POLL), "poll");
    cr_expect_str_eq(tly_wait_name(TLY_WAIT_CPU), "cpu");
    cr_expect_str_eq(tly_wait_name(TLY_NWAITS), "?");
}

/* ---- the ring ---- */

TLY_TEST(trace, scopes_become_begin_and_end_events_on_their_thread)
{
    require_time();
    cr_assert_eq(tly_trace_start(256), 0);
    enum tly_stage outer = tly_stage_current();
    TLY_STAGE(TLY_ENCODE)
    {
        TLY_STAGE(TLY_PUT)
        {
            tly_trace_note(TLY_EV_CHUNK_BEGIN, 4096, 7, 0, "a-very-long-prefix-that-is-cut/0.0.1");
        }
    }
    tly_trace_stop();
    TLY_STAGE(TLY_DECODE) /* not recorded: stopped */ {}
    uint64_t dropped = 1;
    size_t n = tly_trace_count(&dropped);
    cr_assert_eq(n, 5);
    cr_expect_eq(dropped, 0);
    const struct tly_event *e[5];
    for (size_t i = 0; i < n; i++)
        e[i] = tly_trace_event_at(i);
    cr_expect_eq(e[0]->kind, TLY_EV_STAGE_BEGIN);
    cr_expect_eq(e[0]->stage, TLY_ENCODE);
    cr_expect_eq(e[0]->c, outer);
    cr_expect_eq(e[1]->kind, TLY_EV_STAGE_BEGIN);
    cr_expect_eq(e[1]->stage, TLY_PUT);
    cr_expect_eq(e[2]->kind, TLY_EV_CHUNK_BEGIN);
    cr_expect_eq(e[2]->stage, TLY_PUT);
    cr_expect_eq(e[2]->a, 4096);
    cr_expect_eq(e[2]->b, 7);
    cr_expect_eq(strlen(e[2]->text), sizeof e[2]->text - 1);
    cr_expect(strstr("a-very-long-prefix-that-is-cut/0.0.1", e[2]->text) != NULL, "the end kept: %s", e[2]->text);
    cr_expect_eq(e[3]->kind, TLY_EV_STAGE_END);
    cr_expect_eq(e[3]->stage, TLY_PUT);
    cr_expect_eq(e[3]->c, TLY_ENCODE);
    cr_expect_eq(e[4]->kind, TLY_EV_STAGE_END);
    cr_expect_eq(e[4]->stage, TLY_ENCODE);
    for (size_t i = 1; i < n; i++) {
        cr_expect_geq(e[i]->t_ns, e[i - 1]->t_ns);
        cr_expect_eq(e[i]->tid, e[0]->tid);
    }
    cr_expect_null(tly_trace_event_at(n));
}

TLY_TEST(trace, a_full_ring_keeps_the_newest_and_counts_the_rest)
{
    require_time();
    cr_assert_eq(tly_trace_start(64), 0);
    for (uint64_t i = 0; i < 100; i++)
        tly_trace_note(TLY_EV_CHUNK_END, 0, i, 0, NULL);
    tly_trace_stop();
    uint64_t dropped = 0;
    cr_assert_eq(tly_trace_count(&dropped), 64);
    cr_expect_eq(dropped, 36);
    cr_expect_eq(tly_trace_event_at(0)->b, 36);
    cr_expect_eq(tly_trace_event_at(63)->b, 99);
}

TLY_TEST(trace, recording_allocates_nothing)
{
    TLY_REQUIRE_TRACKING();
    require_time();
    cr_assert_eq(tly_trace_start(1024), 0);
    int64_t before = tly_mem_live_bytes();
    struct tly_mem_snapshot a, b;
    tly_mem_snapshot(&a);
    for (int i = 0; i < 300; i++)
        TLY_STAGE(TLY_GATHER)
        {
            tly_trace_note(TLY_EV_CODEC_BEGIN, (uint64_t)i, 0, 0, "zstd encode");
        }
    tly_mem_snapshot(&b);
    tly_trace_stop();
    cr_expect_eq(tly_mem_live_bytes(), before);
    uint64_t allocs = 0;
    for (int s = 0; s < TLY_NSTAGES; s++)
        allocs += TLY_DELTA(a, b, s, allocs);
    cr_expect_eq(allocs, 0);
}

static void *copier(void *arg)
{
    char *buf = arg;
    TLY_STAGE(TLY_SCATTER)
    {
        for (int i = 0; i < 3; i++)
            tly_copy(buf + (1 << 20), buf, 1 << 19); /* 1.5 MiB in all: one event at 1 MiB, one at the end */
    }
    return NULL;
}

TLY_TEST(trace, copies_add_up_per_thread_into_events)
{
    require_time();
    char *buf;
    TLY_STAGE(TLY_CALLER)
    {
        buf = calloc(1, 2 << 20);
    }
    cr_assert_eq(tly_trace_start(256), 0);
    pthread_t th;
    pthread_create(&th, NULL, copier, buf);
    pthread_join(th, NULL);
    tly_trace_stop();
    TLY_STAGE(TLY_CALLER)
    {
        free(buf);
    }
    uint64_t bytes = 0;
    int copies = 0, starts = 0, exits = 0;
    for (size_t i = 0; i < tly_trace_count(NULL); i++) {
        const struct tly_event *e = tly_trace_event_at(i);
        if (e->kind == TLY_EV_COPY) {
            copies++;
            bytes += e->a;
            cr_expect_eq(e->stage, TLY_SCATTER);
        }
        starts += e->kind == TLY_EV_THREAD_START;
        exits += e->kind == TLY_EV_THREAD_EXIT;
    }
    cr_expect_eq(copies, 2);
    cr_expect_eq(bytes, 3 << 19);
    cr_expect_eq(starts, 1);
    cr_expect_eq(exits, 1);
}

TLY_TEST(timeline, a_small_array_samples_every_percent_of_it)
{
    TLY_REQUIRE_TRACKING();
    static struct tly_mem_sample tl[64];
    void *p[6];
    size_t n[2];
    for (int pass = 0; pass < 2; pass++) {
        tly_mem_timeline_grain(pass == 0 ? (uint64_t)1 << 20 : 0); /* 1% of 1 MiB; then the default */
        tly_mem_reset_peaks();
        TLY_STAGE(TLY_GATHER)
        {
            for (int i = 0; i < 6; i++)
                p[i] = malloc(12 * 1024);
            for (int i = 0; i < 6; i++)
                free(p[i]);
        }
        n[pass] = tly_mem_timeline(tl, 64);
    }
    cr_expect_geq(n[0], 12, "12 KiB steps of a 1 MiB array: a sample each (%zu)", n[0]);
    cr_expect_lt(n[1], n[0], "the 64 KiB default takes fewer (%zu)", n[1]);
}
