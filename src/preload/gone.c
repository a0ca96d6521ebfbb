/*
 * Objects the loader unloaded (dlclose), as the objects table found them at a rebuild: their code
 * ranges, paths and the table generation that no longer had them. A stack interned before that
 * generation names a frame in such a range by the unloaded object (path+0xOFFSET): the loader may
 * have put another object at the same addresses since. Static storage; written by the one thread that
 * rebuilds the table (objects.c), read at report time.
 */
#include <string.h>

#include "preload/preload.h"

#define GONE_MAX 256
#define GONE_PATH 192

struct gone {
    uintptr_t lo, hi, base;
    unsigned gen;
    char path[GONE_PATH];
};

static struct gone log_[GONE_MAX];
static _Atomic unsigned n_gone;

void tly__gone_add(uintptr_t lo, uintptr_t hi, uintptr_t base, const char *path, unsigned gen)
{
    unsigned n = atomic_load_explicit(&n_gone, memory_order_relaxed);
    if (n >= GONE_MAX)
        return; /* its frames are named by whatever lies there at the report */
    struct gone *g = &log_[n];
    g->lo = lo;
    g->hi = hi;
    g->base = base;
    g->gen = gen;
    size_t len = strlen(path);
    if (len >= GONE_PATH)
        len = GONE_PATH - 1;
    memcpy(g->path, path, len); /* a name, not payload */
    g->path[len] = '\0';
    atomic_store_explicit(&n_gone, n + 1, memory_order_release);
}

const char *tly__gone_find(uintptr_t a, unsigned since, uintptr_t *base)
{
    unsigned n = atomic_load_explicit(&n_gone, memory_order_acquire);
    for (unsigned i = 0; i < n; i++) /* the first unload after the stack was taken */
        if (log_[i].gen > since && a >= log_[i].lo && a < log_[i].hi) {
            *base = log_[i].base;
            return log_[i].path;
        }
    return NULL;
}
