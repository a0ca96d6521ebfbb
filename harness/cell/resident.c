/* The resident peak, sampled from outside the process (see resident.h). */
#include "cell/resident.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MAX_PROCS 256

struct point {
    uint64_t t_ns;
    int64_t bytes;
};

/* One process's series, in mmap'd memory: the sampler may run inside a measured window of tally's
 * own, and its memory must not be in the window's heap figures. */
struct series {
    pid_t pid;
    int fd; /* /proc/PID/statm, -1 once the process is gone */
    int64_t now, kept;
    struct point *pts;
    size_t n, cap;
};

struct tly_h_resident {
    pthread_t thread;
    _Atomic bool stop;
    long page;
    bool children;
    struct series procs[MAX_PROCS];
    size_t nprocs;
    int64_t tree_peak;
    uint64_t samples;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void keep(struct series *s, uint64_t t, int64_t bytes)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        void *m = s->pts ? mremap(s->pts, s->cap * sizeof *s->pts, cap * sizeof *s->pts, MREMAP_MAYMOVE)
                         : mmap(NULL, cap * sizeof *s->pts, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) {
            s->pts[s->n - 1] = (struct point){t, bytes > s->pts[s->n - 1].bytes ? bytes : s->pts[s->n - 1].bytes};
            return; /* no room: the last point keeps the maximum, later than it was */
        }
        s->pts = m;
        s->cap = cap;
    }
    s->pts[s->n++] = (struct point){t, bytes};
    s->kept = bytes;
}

static void watch(struct tly_h_resident *r, pid_t pid)
{
    if (r->nprocs == MAX_PROCS)
        return;
    for (size_t i = 0; i < r->nprocs; i++)
        if (r->procs[i].pid == pid)
            return;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    r->procs[r->nprocs++] = (struct series){.pid = pid, .fd = fd};
}

/* Anonymous resident bytes (statm: resident - shared); -1 when the process is gone (a zombie's are 0). */
static int64_t anon_bytes(struct tly_h_resident *r, struct series *s)
{
    char buf[256];
    ssize_t k = pread(s->fd, buf, sizeof buf - 1, 0);
    if (k <= 0)
        return -1;
    buf[k] = '\0';
    unsigned long long size, resident, shared;
    if (sscanf(buf, "%llu %llu %llu", &size, &resident, &shared) != 3 || resident == 0)
        return -1;
    return (int64_t)(resident - (shared < resident ? shared : resident)) * r->page;
}

/* The children of every live process, from each of its threads' /proc/PID/task/TID/children. */
static void find_children(struct tly_h_resident *r)
{
    for (size_t i = 0; i < r->nprocs; i++) {
        if (r->procs[i].fd < 0)
            continue;
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/task", (int)r->procs[i].pid);
        DIR *d = opendir(path);
        for (struct dirent *e; d && (e = readdir(d)) != NULL;) {
            if (e->d_name[0] == '.')
                continue;
            char cpath[384], buf[1024];
            snprintf(cpath, sizeof cpath, "%s/%s/children", path, e->d_name);
            int fd = open(cpath, O_RDONLY | O_CLOEXEC);
            ssize_t k = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
            if (fd >= 0)
                close(fd);
            buf[k > 0 ? k : 0] = '\0';
            for (char *p = buf, *end; *p;) {
                long pid = strtol(p, &end, 10);
                if (end == p)
                    break;
                if (pid > 0)
                    watch(r, (pid_t)pid);
                p = end;
            }
        }
        if (d)
            closedir(d);
    }
}

static void sample(struct tly_h_resident *r)
{
    uint64_t t = now_ns();
    int64_t sum = 0;
    for (size_t i = 0; i < r->nprocs; i++) {
        struct series *s = &r->procs[i];
        if (s->fd < 0)
            continue;
        int64_t b = anon_bytes(r, s);
        if (b < 0) {
            close(s->fd);
            s->fd = -1;
            if (s->n && s->now != s->kept)
                keep(s, t, s->now);
            continue;
        }
        if (s->n == 0 || llabs(b - s->kept) >= TLY_H_RESIDENT_GRAIN)
            keep(s, t, b);
        s->now = b;
        sum += b;
    }
    if (sum > r->tree_peak)
        r->tree_peak = sum;
    r->samples++;
}

static void *run(void *arg)
{
    struct tly_h_resident *r = arg;
    for (unsigned tick = 0; !atomic_load(&r->stop); tick++) {
        if (r->children && tick % TLY_H_RESIDENT_CHILDREN_EVERY == 0)
            find_children(r);
        sample(r);
        struct timespec ts = {0, TLY_H_RESIDENT_PERIOD_NS};
        nanosleep(&ts, NULL);
    }
    sample(r);
    return NULL;
}

struct tly_h_resident *tly_h_resident_start(pid_t pid, bool children)
{
    struct tly_h_resident *r = mmap(NULL, sizeof *r, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (r == MAP_FAILED)
        return NULL;
    r->page = sysconf(_SC_PAGESIZE);
    r->children = children;
    watch(r, pid);
    sample(r); /* before the program gets far */
    if (pthread_create(&r->thread, NULL, run, r) != 0) {
        atomic_store(&r->stop, true); /* no thread to join */
        tly_h_resident_free(r);
        return NULL;
    }
    return r;
}

void tly_h_resident_stop(struct tly_h_resident *r)
{
    if (r == NULL || atomic_exchange(&r->stop, true))
        return;
    pthread_join(r->thread, NULL);
    for (size_t i = 0; i < r->nprocs; i++) {
        struct series *s = &r->procs[i];
        if (s->n && s->now != s->kept)
            keep(s, now_ns(), s->now); /* the last value, whatever its distance from the kept one */
        if (s->fd >= 0)
            close(s->fd);
        s->fd = -1;
    }
}

bool tly_h_resident_window(const struct tly_h_resident *r, pid_t pid, uint64_t t0_ns, uint64_t t1_ns, int64_t *before,
                           int64_t *peak)
{
    const struct series *s = NULL;
    for (size_t i = 0; r && i < r->nprocs && s == NULL; i++)
        if (r->procs[i].pid == pid)
            s = &r->procs[i];
    if (s == NULL || s->n == 0 || t1_ns < s->pts[0].t_ns)
        return false;
    size_t i = 0;
    while (i + 1 < s->n && s->pts[i + 1].t_ns <= t0_ns)
        i++; /* the last point at or before the window's start (or the first there is) */
    *before = *peak = s->pts[i].bytes;
    for (i++; i < s->n && s->pts[i].t_ns <= t1_ns; i++)
        if (s->pts[i].bytes > *peak)
            *peak = s->pts[i].bytes;
    return true;
}

int64_t tly_h_resident_tree_peak(const struct tly_h_resident *r, uint64_t *samples)
{
    *samples = r ? r->samples : 0;
    return r ? r->tree_peak : 0;
}

void tly_h_resident_free(struct tly_h_resident *r)
{
    if (r == NULL)
        return;
    tly_h_resident_stop(r);
    for (size_t i = 0; i < r->nprocs; i++)
        if (r->procs[i].pts)
            munmap(r->procs[i].pts, r->procs[i].cap * sizeof(struct point));
    munmap(r, sizeof *r);
}

static void watch_started(pid_t pid, void *arg)
{
    *(struct tly_h_resident **)arg = tly_h_resident_start(pid, true);
}

static void watch_ended(void *arg)
{
    tly_h_resident_stop(*(struct tly_h_resident **)arg);
}

struct tly_h_spawn_watch tly_h_resident_watch(struct tly_h_resident **out)
{
    *out = NULL;
    return (struct tly_h_spawn_watch){watch_started, watch_ended, out};
}
