/*
 * The allocation entry points where jemalloc and glibc disagree, answered as glibc (2.36, Debian
 * 12's) answers them: a program must run under the preload as it runs without it.
 *
 * - memalign and aligned_alloc take any alignment: one no larger than malloc's own is malloc, one
 *   that is not a power of two is rounded up to the next, one over SIZE_MAX / 2 + 1 is EINVAL
 *   (jemalloc answers NULL to 0, 3 or 24);
 * - valloc too, and each of them sets errno to ENOMEM when it fails (jemalloc's aligned paths leave
 *   errno as it was for a size too large);
 * - pvalloc, which jemalloc lacks: glibc's would hand out a block of glibc's own heap, which
 *   jemalloc's free cannot take back (a crash).
 *
 * posix_memalign (EINVAL for an alignment that is not a power-of-two multiple of a pointer), calloc
 * and reallocarray (overflow: ENOMEM, NULL) and malloc_usable_size already agree:
 * tests/preload/hostile_programs.py holds all of them to glibc's answers.
 *
 * memalign, aligned_alloc and valloc hold only when the preload comes before libjemalloc.so.2 in
 * LD_PRELOAD (as tally profile and tally run load it); after it, jemalloc's own answer first. They
 * forward to the next memalign in the lookup order (jemalloc's, or glibc's in a process without
 * jemalloc); pvalloc to the first (the preload's, or jemalloc's when it comes first). Neither is
 * found before the first call, by dlsym, which may allocate with malloc but never calls back into
 * these.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "preload/preload.h"

typedef void *(*memalign_fn)(size_t, size_t);

static _Atomic(memalign_fn) next_memalign, first_memalign;

static memalign_fn resolve(_Atomic(memalign_fn) *slot, void *handle)
{
    memalign_fn f = atomic_load_explicit(slot, memory_order_relaxed);
    if (f == NULL) {
        f = (memalign_fn)dlsym(handle, "memalign");
        atomic_store_explicit(slot, f, memory_order_relaxed);
    }
    return f;
}

/* glibc's _mid_memalign: what alignment it really gives, 0 for "malloc's own will do", or EINVAL. */
static int glibc_alignment(size_t align, size_t *out)
{
    if (align <= alignof(max_align_t)) { /* glibc's MALLOC_ALIGNMENT: 16 on x86-64 */
        *out = 0;
        return 0;
    }
    if (align > SIZE_MAX / 2 + 1)
        return EINVAL;
    size_t a = 2 * alignof(max_align_t);
    while (a < align)
        a <<= 1;
    *out = a;
    return 0;
}

static void *glibc_memalign(size_t align, size_t n)
{
    size_t a;
    int err = glibc_alignment(align, &a);
    if (err) {
        errno = err;
        return NULL;
    }
    if (a == 0)
        return malloc(n);
    memalign_fn f = resolve(&next_memalign, RTLD_NEXT);
    void *p = f ? f(a, n) : NULL;
    if (p == NULL)
        errno = ENOMEM;
    return p;
}

void *memalign(size_t align, size_t n)
{
    return glibc_memalign(align, n);
}

/* glibc 2.36's aligned_alloc is memalign under another name. */
void *aligned_alloc(size_t align, size_t n)
{
    return glibc_memalign(align, n);
}

void *valloc(size_t n)
{
    return glibc_memalign((size_t)getpagesize(), n);
}

void *pvalloc(size_t n)
{
    size_t page = (size_t)getpagesize(), rounded;
    if (__builtin_add_overflow(n, page - 1, &rounded)) {
        errno = ENOMEM;
        return NULL;
    }
    memalign_fn f = resolve(&first_memalign, RTLD_DEFAULT);
    void *p = f ? f(page, rounded & ~(page - 1)) : NULL;
    if (p == NULL)
        errno = ENOMEM;
    return p;
}
