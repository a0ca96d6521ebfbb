/*
 * The resident peak at the moment memory goes back to the kernel. tally samples a process's resident
 * memory from outside every millisecond (harness/cell/resident.c); a buffer freed the moment it is
 * full (jemalloc purges a huge extent at once with madvise) makes a spike that a sampler on a loaded
 * machine can miss by a good part of an array. So just before a release of 1 MiB or more (madvise
 * MADV_DONTNEED, MADV_FREE or MADV_REMOVE; munmap), the process reads its own anonymous resident
 * bytes (/proc/self/statm: resident less shared) and keeps them with the time; each window's result
 * carries the readings inside it ("resident_releases"), and the harness takes the highest of them
 * and of its samples.
 *
 * Reads run inside the allocator (jemalloc purges under its own locks): only system calls, static
 * storage and a spinlock of this file's; no allocation. At most READINGS kept: when full, each pair
 * of neighbours becomes the higher of the two (a peak is never lost, its time moves by a reading).
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "preload/preload.h"

#define RELEASE_MIN ((size_t)1 << 20)
#define READINGS 2048

static struct tly__release readings[READINGS];
static size_t nreadings;
static tly__spin mu = TLY__SPIN_INIT;
static long page_bytes;

typedef int (*madvise_fn)(void *, size_t, int);

static int fb_madvise(void *a, size_t len, int advice)
{
    return (int)syscall(SYS_madvise, a, len, advice);
}

static _Atomic(madvise_fn) real_madvise = fb_madvise;

/* Anonymous resident bytes now; -1 when /proc cannot say. */
static int64_t anon_now(void)
{
    int fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char buf[128];
    ssize_t k = (ssize_t)syscall(SYS_read, fd, buf, sizeof buf - 1);
    syscall(SYS_close, fd);
    if (k <= 0)
        return -1;
    buf[k] = '\0';
    char *p = buf, *end;
    strtoull(p, &end, 10); /* size */
    unsigned long long resident = strtoull(end, &p, 10), shared = strtoull(p, &end, 10);
    return (int64_t)(resident - (shared < resident ? shared : resident)) * page_bytes;
}

void tly__release_seen(size_t len)
{
    if (len < RELEASE_MIN || page_bytes == 0 || !tly_mem_tracking())
        return;
    int64_t b = anon_now();
    if (b < 0)
        return;
    uint64_t t = tly__now_ns();
    tly__spin_lock(&mu);
    if (nreadings == READINGS) { /* full: neighbours merged, each pair's higher reading kept */
        for (size_t i = 0; i < READINGS / 2; i++) {
            struct tly__release *x = &readings[2 * i], *y = &readings[2 * i + 1];
            readings[i] = x->bytes >= y->bytes ? *x : *y;
        }
        nreadings = READINGS / 2;
    }
    readings[nreadings++] = (struct tly__release){t, b};
    tly__spin_unlock(&mu);
}

size_t tly__release_window(uint64_t t0_ns, uint64_t t1_ns, struct tly__release *out, size_t cap)
{
    size_t k = 0;
    tly__spin_lock(&mu);
    for (size_t i = 0; i < nreadings && k < cap; i++)
        if (readings[i].t_ns >= t0_ns && readings[i].t_ns <= t1_ns)
            out[k++] = readings[i];
    tly__spin_unlock(&mu);
    return k;
}

int madvise(void *a, size_t len, int advice)
{
    if (advice == MADV_DONTNEED || advice == MADV_FREE || advice == MADV_REMOVE)
        tly__release_seen(len);
    return REAL(madvise)(a, len, advice);
}

void tly__release_boot(void)
{
    page_bytes = sysconf(_SC_PAGESIZE);
    RESOLVE(real_madvise, "madvise");
}
