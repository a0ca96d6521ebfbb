/*
 * What the preload interposes on libc: the copy functions (memcpy, memmove, mempcpy and their
 * fortified forms) and the anonymous mappings (mmap, mremap, munmap); the calls that can reach the
 * mark descriptor are markfd.c's, madvise release.c's.
 *
 * Each forwards to libc's own implementation, found with dlsym(RTLD_NEXT) in the constructor;
 * before that (other libraries' constructors may copy or map first) to a safe fallback. The cost
 * of a mapping or a write that is not counted: one compare and an indirect call; of a copy, a
 * per-thread cache lookup and two stores besides (every copy is counted).
 */
#undef _FORTIFY_SOURCE
#include <dlfcn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "preload/preload.h"
#include "preload/stacks.h"

typedef void *(*copy_fn)(void *, const void *, size_t);
typedef void *(*copy_chk_fn)(void *, const void *, size_t, size_t);

/* --- fallbacks, until the constructor has found libc's --- */

/* memmove's semantics with the string instructions (elsewhere, a loop of volatile bytes): nothing
 * the compiler could turn back into a call to memcpy. */
static void *fb_memmove(void *d, const void *s, size_t n)
{
#if defined(__x86_64__)
    unsigned char *dp = d;
    const unsigned char *sp = s;
    if (dp <= sp || dp >= sp + n) {
        __asm__ volatile("rep movsb" : "+D"(dp), "+S"(sp), "+c"(n) : : "memory");
    } else if (n) {
        dp += n - 1;
        sp += n - 1;
        __asm__ volatile("std\n\trep movsb\n\tcld" : "+D"(dp), "+S"(sp), "+c"(n) : : "memory");
    }
#else
    volatile unsigned char *dp = d;
    const volatile unsigned char *sp = s;
    if (dp <= sp || dp >= sp + n)
        for (size_t i = 0; i < n; i++)
            dp[i] = sp[i];
    else
        for (size_t i = n; i > 0; i--)
            dp[i - 1] = sp[i - 1];
#endif
    return d;
}

static void *fb_mempcpy(void *d, const void *s, size_t n)
{
    return (char *)fb_memmove(d, s, n) + n;
}

static void *fb_chk(void *d, const void *s, size_t n, size_t dlen)
{
    if (n > dlen)
        abort(); /* what __chk_fail does, less the message */
    return fb_memmove(d, s, n);
}

static void *fb_mempcpy_chk(void *d, const void *s, size_t n, size_t dlen)
{
    return (char *)fb_chk(d, s, n, dlen) + n;
}

static _Atomic(copy_fn) real_memcpy = fb_memmove, real_memmove = fb_memmove, real_mempcpy = fb_mempcpy;
static _Atomic(copy_chk_fn) real_memcpy_chk = fb_chk, real_memmove_chk = fb_chk, real_mempcpy_chk = fb_mempcpy_chk;

/* --- copies --- */

/*
 * Every copy is counted, by the library that called it, in its size band (src/mem/libs.c). One of
 * TALLY_PROFILE_COPY_MIN bytes or more is also charged past the plumbing (an unwind) and noted in
 * the calling thread's stage (tly_mark_push) and trace; a smaller one by its return address alone,
 * through a per-thread cache: no lock, no unwind, a few plain stores.
 */
static __attribute__((noinline)) void copy_large(size_t n, uintptr_t ra)
{
    unsigned slot = tly__obj_copy_slot(ra);
    if (slot == TLY__LIB_NONE)
        return; /* the preload's own */
    tly__lib_copy(slot, n);
    if (tly__stacks_on)
        tly__stacks_copy(slot, n);
    tly_copy_note(n);
}

static __attribute__((noinline)) void copy_small(size_t n, uintptr_t ra)
{
    unsigned slot = tly__obj_copy_slot_fast(ra);
    if (slot != TLY__LIB_NONE)
        tly__lib_copy(slot, n);
}

static inline void copy_seen(size_t n, uintptr_t ra)
{
    size_t min = atomic_load_explicit(&tly__pl_copy_min, memory_order_relaxed);
    if (TLY__UNLIKELY(tly__tls.in_hook))
        return; /* the tracker's own work on this thread (the hooks; frames named for a result) */
    if (TLY__UNLIKELY(n >= min))
        copy_large(n, ra);
    else if (TLY__LIKELY(min != SIZE_MAX)) /* SIZE_MAX: before the constructor, nothing counts */
        copy_small(n, ra);
}

#define RA ((uintptr_t)__builtin_return_address(0))

void *memcpy(void *d, const void *s, size_t n)
{
    copy_seen(n, RA);
    return REAL(memcpy)(d, s, n);
}

void *memmove(void *d, const void *s, size_t n)
{
    copy_seen(n, RA);
    return REAL(memmove)(d, s, n);
}

void *mempcpy(void *d, const void *s, size_t n)
{
    copy_seen(n, RA);
    return REAL(mempcpy)(d, s, n);
}

void *__memcpy_chk(void *d, const void *s, size_t n, size_t dlen)
{
    copy_seen(n, RA);
    return REAL(memcpy_chk)(d, s, n, dlen);
}

void *__memmove_chk(void *d, const void *s, size_t n, size_t dlen)
{
    copy_seen(n, RA);
    return REAL(memmove_chk)(d, s, n, dlen);
}

void *__mempcpy_chk(void *d, const void *s, size_t n, size_t dlen)
{
    copy_seen(n, RA);
    return REAL(mempcpy_chk)(d, s, n, dlen);
}

/* --- anonymous mappings --- */

#define MAX_MAPS 4096

/* The mappings counted and not yet unmapped; rare (a megabyte or more, outside jemalloc). */
struct map {
    uintptr_t lo, hi;
    uint8_t stage;
};
static struct map maps[MAX_MAPS];
static _Atomic size_t nmaps;
static tly__spin maps_mu = TLY__SPIN_INIT;

/* Uncount [lo, hi) wherever it overlaps a counted mapping (under maps_mu). Returns the stage of
 * the first overlap, or -1 when nothing was counted there. */
static int uncount_locked(uintptr_t lo, uintptr_t hi)
{
    int stage = -1;
    size_t n = atomic_load_explicit(&nmaps, memory_order_relaxed);
    for (size_t i = 0; i < n;) {
        struct map *m = &maps[i];
        uintptr_t a = lo > m->lo ? lo : m->lo, b = hi < m->hi ? hi : m->hi;
        if (a >= b) {
            i++;
            continue;
        }
        if (stage < 0)
            stage = m->stage;
        tly__account_outside((enum tly_stage)m->stage, TLY__SLOT_MMAP, -(int64_t)(b - a));
        if (a == m->lo && b == m->hi) {
            maps[i] = maps[--n];
            continue;
        }
        if (a == m->lo) {
            m->lo = b;
        } else if (b == m->hi) {
            m->hi = a;
        } else if (n < MAX_MAPS) { /* a hole in the middle: two mappings now */
            maps[n++] = (struct map){b, m->hi, m->stage};
            m->hi = a;
        } else { /* no room to remember the tail: uncount it now */
            tly__account_outside((enum tly_stage)m->stage, TLY__SLOT_MMAP, -(int64_t)(m->hi - b));
            m->hi = a;
        }
        i++;
    }
    atomic_store_explicit(&nmaps, n, memory_order_relaxed);
    return stage;
}

static void count_map(uintptr_t lo, size_t len, enum tly_stage s)
{
    size_t n = atomic_load_explicit(&nmaps, memory_order_relaxed);
    if (n == MAX_MAPS)
        return; /* not remembered, so not counted either: its munmap will find nothing */
    maps[n] = (struct map){lo, lo + len, (uint8_t)s};
    atomic_store_explicit(&nmaps, n + 1, memory_order_relaxed);
    tly__account_outside(s, TLY__SLOT_MMAP, (int64_t)len);
}

static void map_seen(void *p, size_t len, int prot, int flags, uintptr_t ra)
{
    if (tly__obj_in_allocator(ra) || tly__tls.in_hook)
        return; /* jemalloc's own mappings hold the blocks the hooks count; the tracker's own */
    bool counted = (flags & MAP_ANONYMOUS) && prot != PROT_NONE &&
                   len >= atomic_load_explicit(&tly__pl_mmap_min, memory_order_relaxed);
    if (!counted && !((flags & MAP_FIXED) && atomic_load_explicit(&nmaps, memory_order_relaxed)))
        return;
    tly__spin_lock(&maps_mu);
    if (flags & MAP_FIXED) /* replaces whatever was mapped there */
        uncount_locked((uintptr_t)p, (uintptr_t)p + len);
    if (counted)
        count_map((uintptr_t)p, len, tly_stage_current());
    tly__spin_unlock(&maps_mu);
}

static void unmap_seen(void *p, size_t len, uintptr_t ra)
{
    if (atomic_load_explicit(&nmaps, memory_order_relaxed) == 0 || tly__obj_in_allocator(ra))
        return;
    tly__spin_lock(&maps_mu);
    uncount_locked((uintptr_t)p, (uintptr_t)p + len);
    tly__spin_unlock(&maps_mu);
}

typedef void *(*mmap_fn)(void *, size_t, int, int, int, off_t);
typedef int (*munmap_fn)(void *, size_t);
typedef void *(*mremap_fn)(void *, size_t, size_t, int, ...);

static void *fb_mmap(void *a, size_t len, int prot, int flags, int fd, off_t off)
{
    return (void *)syscall(SYS_mmap, a, len, prot, flags, fd, off);
}

static int fb_munmap(void *a, size_t len)
{
    return (int)syscall(SYS_munmap, a, len);
}

static void *fb_mremap(void *a, size_t old, size_t len, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    void *na = (flags & MREMAP_FIXED) ? va_arg(ap, void *) : NULL;
    va_end(ap);
    return (void *)syscall(SYS_mremap, a, old, len, flags, na);
}

static _Atomic(mmap_fn) real_mmap = fb_mmap;
static _Atomic(munmap_fn) real_munmap = fb_munmap;
static _Atomic(mremap_fn) real_mremap = fb_mremap;

static inline void *do_mmap(void *a, size_t len, int prot, int flags, int fd, off_t off, uintptr_t ra)
{
    void *p = REAL(mmap)(a, len, prot, flags, fd, off);
    if (p != MAP_FAILED && (len >= atomic_load_explicit(&tly__pl_mmap_min, memory_order_relaxed) ||
                            ((flags & MAP_FIXED) && atomic_load_explicit(&nmaps, memory_order_relaxed))))
        map_seen(p, len, prot, flags, ra);
    return p;
}

void *mmap(void *a, size_t len, int prot, int flags, int fd, off_t off)
{
    return do_mmap(a, len, prot, flags, fd, off, RA);
}

void *mmap64(void *a, size_t len, int prot, int flags, int fd, off_t off)
{
    return do_mmap(a, len, prot, flags, fd, off, RA);
}

int munmap(void *a, size_t len)
{
    tly__release_seen(len); /* the resident bytes just before they go (release.c) */
    int rc = REAL(munmap)(a, len);
    if (rc == 0)
        unmap_seen(a, len, RA);
    return rc;
}

void *mremap(void *a, size_t old, size_t len, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    void *na = (flags & MREMAP_FIXED) ? va_arg(ap, void *) : NULL;
    va_end(ap);
    void *p = REAL(mremap)(a, old, len, flags, na);
    if (p == MAP_FAILED || atomic_load_explicit(&nmaps, memory_order_relaxed) == 0 || tly__obj_in_allocator(RA))
        return p;
    /* A counted mapping keeps being counted, at its new size and place, in the same stage. */
    tly__spin_lock(&maps_mu);
    int stage = uncount_locked((uintptr_t)a, (uintptr_t)a + old);
    if (stage >= 0) {
        uncount_locked((uintptr_t)p, (uintptr_t)p + len); /* MREMAP_FIXED may replace a mapping */
        count_map((uintptr_t)p, len, (enum tly_stage)stage);
    }
    tly__spin_unlock(&maps_mu);
    return p;
}

/* --- start-up --- */

void tly__interpose_boot(void)
{
    RESOLVE(real_memcpy, "memcpy");
    RESOLVE(real_memmove, "memmove");
    RESOLVE(real_mempcpy, "mempcpy");
    RESOLVE(real_memcpy_chk, "__memcpy_chk");
    RESOLVE(real_memmove_chk, "__memmove_chk");
    RESOLVE(real_mempcpy_chk, "__mempcpy_chk");
    RESOLVE(real_mmap, "mmap");
    RESOLVE(real_munmap, "munmap");
    RESOLVE(real_mremap, "mremap");
}
