/*
 * Workers, the one place that starts threads: run a task per index on a few threads. The first
 * failure wins: the others stop taking tasks, and its code and message come back on the calling
 * thread. Each runs as one of the engine's workers for time accounting (tally/timing.h). What the
 * tasks are (chunks, a split read's ranges, a chunk's groups of blocks) is the caller's.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "engine/internal.h"
#include "tally/error.h"
#include "tally/timing.h"

#define MAX_THREADS 256

struct job {
    tly__task_fn fn;
    void *ctx;
    uint64_t n;
    _Atomic uint64_t next;
    _Atomic int err;
    pthread_mutex_t mu;
    char msg[1024];
};

static void *work(void *arg)
{
    struct job *j = arg;
    tly_time_worker(true);
    for (;;) {
        if (atomic_load_explicit(&j->err, memory_order_relaxed))
            break;
        uint64_t i = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (i >= j->n)
            break;
        int err = j->fn(j->ctx, i);
        if (err) {
            pthread_mutex_lock(&j->mu);
            if (atomic_load(&j->err) == 0) {
                snprintf(j->msg, sizeof j->msg, "%s", tly_errmsg());
                atomic_store(&j->err, err);
            }
            pthread_mutex_unlock(&j->mu);
            break;
        }
    }
    tly_time_worker(false);
    return NULL;
}

int tly__run_tasks(int threads, uint64_t n, tly__task_fn fn, void *ctx)
{
    if (threads <= 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cpus > 0 ? (int)cpus : 1;
    }
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    if ((uint64_t)threads > n)
        threads = (int)n;
    struct job j = {.fn = fn, .ctx = ctx, .n = n};
    pthread_mutex_init(&j.mu, NULL);
    pthread_t th[MAX_THREADS];
    int started = 0;
    for (; started < threads - 1; started++)
        if (pthread_create(&th[started], NULL, work, &j) != 0)
            break; /* fewer threads is slower, not wrong */
    work(&j);
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    pthread_mutex_destroy(&j.mu);
    int err = atomic_load(&j.err);
    if (err)
        tly_fail(err, "%s", j.msg);
    return err;
}
