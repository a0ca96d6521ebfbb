/* Cross-checks: jemalloc's own counters and the kernel's view of the process, read in one call. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jemalloc/jemalloc.h>

#include "mem/internal.h"
#include "tally/error.h"

/* The value in kB of "key:" in /proc/self/status, in bytes; 0 when absent. */
static uint64_t proc_status_bytes(const char *buf, const char *key)
{
    const char *p = strstr(buf, key);
    if (p == NULL)
        return 0;
    return strtoull(p + strlen(key), NULL, 10) * 1024u;
}

static uint64_t allocated_at_start;

/* jemalloc's stats.allocated now, with this thread's tcache handed back first; 0 when unreadable. */
static uint64_t je_allocated(void)
{
    /* Regions cached in this thread's tcache count as allocated in jemalloc's stats: hand them back
     * first, so that stats.allocated is what the application holds. */
    mallctl("thread.tcache.flush", NULL, NULL, NULL, 0);
    uint64_t epoch = 1;
    size_t len = sizeof epoch;
    if (mallctl("epoch", &epoch, &len, &epoch, sizeof epoch) != 0)
        return 0;
    size_t allocated = 0;
    len = sizeof allocated;
    if (mallctl("stats.allocated", &allocated, &len, NULL, 0) != 0)
        return 0;
    /* Other threads' tcaches hold freed regions that stats still counts as allocated (a program with
     * many threads, node's say, showed ~1% of "allocated" that nobody held): take them out too. */
    size_t cached = 0;
    len = sizeof cached;
    if (mallctl("stats.arenas.4096.tcache_bytes", &cached, &len, NULL, 0) == 0 && cached <= allocated)
        allocated -= cached;
    return allocated;
}

void tly__crosscheck_boot(void)
{
    allocated_at_start = je_allocated();
}

int tly_mem_crosscheck(struct tly_mem_crosscheck *out)
{
    memset(out, 0, sizeof *out);
    out->tracked_live_bytes = tly_mem_reserved_live_bytes();
    out->thread_tracked_bytes = tly__thread_tracked_bytes();

    char buf[4096];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t k = read(fd, buf, sizeof buf - 1);
        close(fd);
        buf[k > 0 ? k : 0] = '\0';
        out->rss_bytes = proc_status_bytes(buf, "VmRSS:");
        out->rss_peak_bytes = proc_status_bytes(buf, "VmHWM:");
    }

    out->jemalloc_allocated_bytes = je_allocated();
    out->jemalloc_allocated_at_start_bytes = allocated_at_start;
    if (out->jemalloc_allocated_bytes == 0)
        return TLY_EUNSUPPORTED;
    size_t len = sizeof out->thread_allocated_bytes;
    mallctl("thread.allocated", &out->thread_allocated_bytes, &len, NULL, 0);
    len = sizeof out->thread_peak_bytes;
    mallctl("thread.peak.read", &out->thread_peak_bytes, &len, NULL, 0);
    len = sizeof out->thread_deallocated_bytes;
    mallctl("thread.deallocated", &out->thread_deallocated_bytes, &len, NULL, 0);
    return 0;
}

void tly__crosscheck_window_open(void)
{
    mallctl("thread.peak.reset", NULL, NULL, NULL, 0);
}
