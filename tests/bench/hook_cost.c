/*
 * tally-hookbench: what the tracker costs per malloc+free pair, with and without the hooks.
 *
 * A benchmark, not a test: it prints figures and asserts nothing. It runs its loops in this
 * process (tracked, unless TALLY_TRACK=0) and again in a child started with TALLY_TRACK=0, so both
 * come from the same binary on the same machine in the same run.
 *
 * usage: tally-hookbench [ITERATIONS]      (default 10000000)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tally/mem.h"

#define REPS 5

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct loop {
    size_t size;
    long iters;
    double ns;
};

static void *pairs(void *arg)
{
    struct loop *l = arg;
    double best = 1e30;
    for (int r = 0; r < REPS; r++) {
        double t0 = now_s();
        TLY_STAGE(TLY_ENCODE)
        {
            for (long i = 0; i < l->iters; i++) {
                void *volatile p = malloc(l->size);
                free(p);
            }
        }
        double dt = now_s() - t0;
        if (dt < best)
            best = dt;
    }
    l->ns = best * 1e9 / (double)l->iters;
    return NULL;
}

static double run_threads(int nthreads, size_t size, long iters)
{
    pthread_t th[16];
    struct loop l[16];
    for (int i = 0; i < nthreads; i++) {
        l[i] = (struct loop){size, iters, 0};
        pthread_create(&th[i], NULL, pairs, &l[i]);
    }
    double worst = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(th[i], NULL);
        if (l[i].ns > worst)
            worst = l[i].ns;
    }
    return worst;
}

static double stage_scope_ns(long iters)
{
    volatile int sink = 0;
    double t0 = now_s();
    for (long i = 0; i < iters; i++)
        TLY_STAGE(TLY_DECODE)
        {
            sink = sink + 1;
        }
    return (now_s() - t0) * 1e9 / (double)iters;
}

/* One line per case: "name ns". Parsed back by the parent. */
static void measure(long iters, FILE *out)
{
    fprintf(out, "malloc64_free_1thread %.2f\n", run_threads(1, 64, iters));
    fprintf(out, "malloc4096_free_1thread %.2f\n", run_threads(1, 4096, iters));
    fprintf(out, "malloc1M_free_1thread %.2f\n", run_threads(1, 1 << 20, iters / 20));
    fprintf(out, "malloc64_free_2threads %.2f\n", run_threads(2, 64, iters));
    fprintf(out, "stage_enter_leave %.2f\n", stage_scope_ns(iters));
}

int main(int argc, char **argv)
{
    long iters = argc > 1 ? atol(argv[1]) : 10000000;
    if (getenv("TALLY_HOOKBENCH_CHILD")) {
        measure(iters, stdout);
        return 0;
    }
    int fd[2];
    if (pipe(fd) != 0)
        return 2;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        setenv("TALLY_TRACK", "0", 1);
        setenv("TALLY_HOOKBENCH_CHILD", "1", 1);
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    close(fd[1]);
    FILE *child = fdopen(fd[0], "r");
    char name[5][64];
    double off[5];
    for (int i = 0; i < 5; i++)
        if (fscanf(child, "%63s %lf", name[i], &off[i]) != 2)
            return 2;
    fclose(child);
    waitpid(pid, NULL, 0);

    char *buf;
    size_t len;
    FILE *mine = open_memstream(&buf, &len);
    measure(iters, mine);
    fclose(mine);
    printf("tally-hookbench: %ld iterations, best of %d; tracking %s\n", iters, REPS,
           tly_mem_tracking() ? "on" : tly_mem_untracked_reason());
    printf("%-26s %12s %12s %12s\n", "case (ns per op)", "untracked", "tracked", "hook cost");
    FILE *in = fmemopen(buf, len, "r");
    for (int i = 0; i < 5; i++) {
        char n[64];
        double on;
        if (fscanf(in, "%63s %lf", n, &on) != 2)
            break;
        printf("%-26s %12.1f %12.1f %12.1f\n", n, off[i], on, on - off[i]);
    }
    fclose(in);
    free(buf);
    return 0;
}
