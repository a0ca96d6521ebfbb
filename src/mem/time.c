/*
 * Time accounting: each thread's wall time per stage, charged at its stage transitions, split into
 * busy and waiting; waits by what was waited for; worker time; S3 requests in flight.
 *
 * Cost: one CLOCK_MONOTONIC read per transition (enter or leave to another stage), plain stores
 * into the thread's own block; on the engine's workers, one pread of the thread's schedstat at the
 * edges of get and put intervals (a few per chunk; about what a CLOCK_THREAD_CPUTIME_ID read costs,
 * and it also says how long the thread waited for a CPU). Nothing allocates. See tally/timing.h.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "mem/internal.h"

bool tly__time_enabled;

static _Atomic uint64_t http_requests, http_in_flight_ns;

static const char *const wait_names[TLY_NWAITS] = {[TLY_WAIT_TICKET] = "ticket",
                                                   [TLY_WAIT_GATE] = "gate",
                                                   [TLY_WAIT_IO] = "io",
                                                   [TLY_WAIT_POLL] = "poll",
                                                   [TLY_WAIT_CPU] = "cpu"};

const char *tly_wait_name(enum tly_wait w)
{
    return (unsigned)w < TLY_NWAITS ? wait_names[w] : "?";
}

bool tly_time_on(void)
{
    return tly__time_enabled;
}

/* A forked child is another thread: the schedstat it opened was its parent's. */
static void forked_child(void)
{
    struct tly__tls *t = &tly__tls;
    if (t->sched_fd1 > 0)
        close(t->sched_fd1 - 1);
    t->sched_fd1 = 0;
}

void tly__time_boot(void)
{
    pthread_atfork(NULL, NULL, forked_child);
    const char *track = tly__getenv("TALLY_TRACK"), *time_env = tly__getenv("TALLY_TIME");
    tly__time_enabled = !(track && strcmp(track, "0") == 0) && !(time_env && strcmp(time_env, "0") == 0);
    if (tly__time_enabled)
        tly__tls.since = tly__now_ns(); /* the main thread */
}

uint32_t tly__tid(struct tly__tls *t)
{
    if (TLY__UNLIKELY(t->tid == 0))
        t->tid = (uint32_t)syscall(SYS_gettid);
    return t->tid;
}

static uint64_t parse_u64(const char **p)
{
    uint64_t v = 0;
    while (**p == ' ')
        (*p)++;
    for (; **p >= '0' && **p <= '9'; (*p)++)
        v = v * 10 + (uint64_t)(**p - '0');
    return v;
}

/* The thread's time on the CPU, and waiting to run (0 without schedstat: the CPU clock alone). */
static void sched_now(struct tly__tls *t, uint64_t *run, uint64_t *runq)
{
    if (t->sched_fd1 == 0) {
        int fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
        t->sched_fd1 = fd >= 0 ? fd + 1 : -1;
    }
    char buf[96];
    ssize_t n = t->sched_fd1 > 0 ? pread(t->sched_fd1 - 1, buf, sizeof buf - 1, 0) : -1;
    if (n > 0) {
        buf[n] = '\0';
        const char *p = buf;
        *run = parse_u64(&p);
        *runq = parse_u64(&p);
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    *run = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    *runq = 0;
}

static inline bool io_stage(enum tly_stage s)
{
    return s == TLY_GET || s == TLY_PUT;
}

static void add_wait(struct tly__tblock *b, enum tly_stage s, enum tly_wait why, uint64_t d)
{
    if (d == 0)
        return;
    tly__bump(b, &b->waiting_ns[s], d);
    tly__bump(b, &b->wait_ns[why], d);
}

/* Charge the interval [t->since, now) to stage @p s; its explicit waits were charged as they
 * ended. A worker's get or put: the part off the CPU is waiting (for a CPU, as schedstat says,
 * else blocked: the I/O's own), beyond the waits already recorded. */
static void charge(struct tly__tls *t, struct tly__tblock *b, enum tly_stage s, uint64_t now, uint64_t run,
                   uint64_t runq)
{
    uint64_t d = now > t->since ? now - t->since : 0, w = t->waited;
    if (t->cpu_valid) {
        uint64_t on = run > t->cpu_since ? run - t->cpu_since : 0;
        uint64_t off = d > on ? d - on : 0, queued = runq > t->runq_since ? runq - t->runq_since : 0;
        if (queued > off)
            queued = off;
        if (off > w) {
            uint64_t more = off - w, cpu = queued < more ? queued : more;
            add_wait(b, s, TLY_WAIT_CPU, cpu);
            add_wait(b, s, TLY_WAIT_IO, more - cpu);
            w = off;
        }
    }
    tly__bump(b, &b->busy_ns[s], d > w ? d - w : 0);
}

static void publish(struct tly__tblock *b, struct tly__tls *t, enum tly_stage s)
{
    atomic_store_explicit(&b->open_stage, (int)s, memory_order_relaxed);
    atomic_store_explicit(&b->open_waited, 0, memory_order_relaxed);
    atomic_store_explicit(&b->open_since, t->since, memory_order_release);
}

/* Close the thread's interval at now (spent in @p from) and open one in @p to. */
static void turn(struct tly__tls *t, enum tly_stage from, enum tly_stage to)
{
    uint64_t now = tly__now_ns(), run = 0, runq = 0;
    struct tly__tblock *b = tly__block(t);
    bool cpu_next = t->worker_depth && io_stage(to);
    if (t->cpu_valid || cpu_next)
        sched_now(t, &run, &runq);
    if (t->since && !b->shared)
        charge(t, b, from, now, run, runq);
    t->since = now;
    t->waited = 0;
    t->cpu_valid = cpu_next;
    t->cpu_since = run;
    t->runq_since = runq;
    if (!b->shared)
        publish(b, t, to);
}

void tly__time_switch(struct tly__tls *t, enum tly_stage from, enum tly_stage to, bool enter)
{
    turn(t, from, to);
    if (atomic_load_explicit(&tly__trace_on, memory_order_relaxed)) {
        tly__trace_copies_flush(t);
        tly__trace_put(t, enter ? TLY_EV_STAGE_BEGIN : TLY_EV_STAGE_END, (uint8_t)(enter ? to : from), 0, 0,
                       enter ? (unsigned)from : (unsigned)to, NULL);
    }
}

void tly__time_thread_start(struct tly__tls *t)
{
    if (!tly__time_enabled)
        return;
    t->since = tly__now_ns();
    if (atomic_load_explicit(&tly__trace_on, memory_order_relaxed))
        tly__trace_put(t, TLY_EV_THREAD_START, (uint8_t)tly__stage_of(t), 0, 0, 0, NULL);
}

void tly__time_thread_exit(struct tly__tls *t)
{
    if (!tly__time_enabled || t->block == NULL || t->block->shared)
        return;
    uint64_t now = tly__now_ns();
    struct tly__tblock *b = t->block;
    uint64_t run = 0, runq = 0;
    if (t->cpu_valid)
        sched_now(t, &run, &runq);
    if (t->since)
        charge(t, b, tly__stage_of(t), now, run, runq);
    if (t->sched_fd1 > 0)
        close(t->sched_fd1 - 1);
    t->sched_fd1 = -1;
    if (t->worker_depth && t->worker_since)
        tly__bump(b, &b->worker_ns, now - t->worker_since);
    t->since = 0;
    t->worker_depth = 0;
    t->cpu_valid = 0;
    atomic_store_explicit(&b->open_since, 0, memory_order_release);
    if (atomic_load_explicit(&tly__trace_on, memory_order_relaxed)) {
        tly__trace_copies_flush(t);
        tly__trace_put(t, TLY_EV_THREAD_EXIT, (uint8_t)tly__stage_of(t), 0, 0, 0, NULL);
    }
}

uint64_t tly_wait_begin(void)
{
    return tly__time_enabled ? tly__now_ns() : 0;
}

void tly_wait_end(uint64_t t0, enum tly_wait why)
{
    if (t0 == 0 || (unsigned)why >= TLY_NWAITS)
        return;
    struct tly__tls *t = &tly__tls;
    uint64_t d = tly__now_ns() - t0;
    struct tly__tblock *b = tly__block(t);
    if (b->shared)
        return;
    enum tly_stage s = tly__stage_of(t);
    tly__bump(b, &b->waiting_ns[s], d);
    tly__bump(b, &b->wait_ns[why], d);
    t->waited += d;
    atomic_store_explicit(&b->open_waited, t->waited, memory_order_relaxed);
    if (d >= 20000 && atomic_load_explicit(&tly__trace_on, memory_order_relaxed))
        tly__trace_put(t, TLY_EV_WAIT, (uint8_t)s, d, 0, (unsigned)why, NULL);
}

void tly_time_worker(bool on)
{
    if (!tly__time_enabled)
        return;
    struct tly__tls *t = &tly__tls;
    enum tly_stage s = tly__stage_of(t);
    if (on && t->worker_depth++ == 0) {
        if (io_stage(s)) /* a thread started inside get (a split read's): its get is split from now */
            turn(t, s, s);
        t->worker_since = tly__now_ns();
        if (atomic_load_explicit(&tly__trace_on, memory_order_relaxed))
            tly__trace_put(t, TLY_EV_WORKER, (uint8_t)tly__stage_of(t), 0, 0, 1, NULL);
    } else if (!on && t->worker_depth > 0 && --t->worker_depth == 0) {
        if (t->cpu_valid)
            turn(t, s, s);
        struct tly__tblock *b = tly__block(t);
        if (!b->shared)
            tly__bump(b, &b->worker_ns, tly__now_ns() - t->worker_since);
        t->worker_since = 0;
        if (atomic_load_explicit(&tly__trace_on, memory_order_relaxed))
            tly__trace_put(t, TLY_EV_WORKER, (uint8_t)tly__stage_of(t), 0, 0, 0, NULL);
    }
}

/* Requests in flight, summed: each adds (end - begin), as -begin when queued and +end when answered. */
void tly_io_request_begin(const void *id, const char *method, const char *what, uint64_t body_bytes)
{
    if (!tly__time_enabled)
        return;
    atomic_fetch_sub_explicit(&http_in_flight_ns, tly__now_ns(), memory_order_relaxed);
    if (atomic_load_explicit(&tly__trace_on, memory_order_relaxed)) {
        /* "PUT " and as much of the URL's end as fits: the key's end tells requests apart */
        char text[sizeof((struct tly_event *)0)->text];
        const char *m = method ? method : "?", *w = what ? what : "";
        size_t mn = strnlen(m, 8), wn = strlen(w), room = sizeof text - 2 - mn;
        memcpy(text, m, mn); /* a label, not payload */
        text[mn] = ' ';
        if (wn > room)
            w += wn - room;
        memcpy(text + mn + 1, w, strlen(w) + 1); /* a label, not payload */
        struct tly__tls *t = &tly__tls;
        tly__trace_put(t, TLY_EV_HTTP_BEGIN, (uint8_t)tly__stage_of(t), (uint64_t)(uintptr_t)id, body_bytes, 0, text);
    }
}

void tly_io_request_end(const void *id, long status, uint64_t bytes, int attempts)
{
    if (!tly__time_enabled)
        return;
    atomic_fetch_add_explicit(&http_in_flight_ns, tly__now_ns(), memory_order_relaxed);
    atomic_fetch_add_explicit(&http_requests, 1, memory_order_relaxed);
    if (atomic_load_explicit(&tly__trace_on, memory_order_relaxed))
        tly__trace_put(&tly__tls, TLY_EV_HTTP_END, (uint8_t)(attempts < 255 ? attempts : 255), (uint64_t)(uintptr_t)id,
                       bytes, status > 0 && status < 65536 ? (unsigned)status : 0, NULL);
}

void tly__time_add_block(struct tly_time_snapshot *out, struct tly__tblock *b, uint64_t now)
{
    for (int s = 0; s < TLY_NSTAGES; s++) {
        out->busy_ns[s] += atomic_load_explicit(&b->busy_ns[s], memory_order_relaxed);
        out->waiting_ns[s] += atomic_load_explicit(&b->waiting_ns[s], memory_order_relaxed);
    }
    for (int w = 0; w < TLY_NWAITS; w++)
        out->wait_ns[w] += atomic_load_explicit(&b->wait_ns[w], memory_order_relaxed);
    out->worker_ns += atomic_load_explicit(&b->worker_ns, memory_order_relaxed);
    uint64_t since = atomic_load_explicit(&b->open_since, memory_order_acquire);
    if (since && now > since && !b->shared) { /* the interval in progress, as busy */
        int s = atomic_load_explicit(&b->open_stage, memory_order_relaxed);
        uint64_t d = now - since, w = atomic_load_explicit(&b->open_waited, memory_order_relaxed);
        if ((unsigned)s < TLY_NSTAGES)
            out->busy_ns[s] += d > w ? d - w : 0;
    }
}

void tly__time_fold(struct tly__tblock *dst, struct tly__tblock *src)
{
    for (int s = 0; s < TLY_NSTAGES; s++) {
        atomic_fetch_add(&dst->busy_ns[s], atomic_exchange(&src->busy_ns[s], 0));
        atomic_fetch_add(&dst->waiting_ns[s], atomic_exchange(&src->waiting_ns[s], 0));
    }
    for (int w = 0; w < TLY_NWAITS; w++)
        atomic_fetch_add(&dst->wait_ns[w], atomic_exchange(&src->wait_ns[w], 0));
    atomic_fetch_add(&dst->worker_ns, atomic_exchange(&src->worker_ns, 0));
    atomic_store(&src->open_since, 0);
}

void tly__time_http(struct tly_time_snapshot *out)
{
    out->http_requests = atomic_load_explicit(&http_requests, memory_order_relaxed);
    out->http_in_flight_ns = atomic_load_explicit(&http_in_flight_ns, memory_order_relaxed);
}
