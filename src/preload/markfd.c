/*
 * The calls that can reach the mark descriptor (docs/impl-protocol.md): write and its kin, answered
 * by the marks when the descriptor is the preload's own; close, dup2, dup3 and close_range, which may
 * take its number away. Each forwards to libc's own, found with dlsym(RTLD_NEXT) at start-up, and to
 * a system call before that. The cost of a write that is not a mark: one compare and an indirect call.
 */
#include <dlfcn.h>
#include <limits.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "preload/preload.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* --- the mark descriptor --- */

typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*writev_fn)(int, const struct iovec *, int);
typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);
typedef ssize_t (*pwritev_fn)(int, const struct iovec *, int, off_t);
typedef int (*close_fn)(int);
typedef int (*dup2_fn)(int, int);
typedef int (*dup3_fn)(int, int, int);
typedef int (*close_range_fn)(unsigned, unsigned, int);

static ssize_t fb_write(int fd, const void *b, size_t n)
{
    return syscall(SYS_write, fd, b, n);
}
static ssize_t fb_writev(int fd, const struct iovec *v, int k)
{
    return syscall(SYS_writev, fd, v, k);
}
static ssize_t fb_pwrite(int fd, const void *b, size_t n, off_t o)
{
    return syscall(SYS_pwrite64, fd, b, n, o);
}
static ssize_t fb_pwritev(int fd, const struct iovec *v, int k, off_t o)
{
    return syscall(SYS_pwritev, fd, v, k, (unsigned long)o, (unsigned long)((uint64_t)o >> 32));
}
static int fb_close(int fd)
{
    return (int)syscall(SYS_close, fd);
}
static int fb_dup2(int a, int b)
{
    return (int)syscall(SYS_dup2, a, b);
}
static int fb_dup3(int a, int b, int f)
{
    return (int)syscall(SYS_dup3, a, b, f);
}
static int fb_close_range(unsigned a, unsigned b, int f)
{
    return (int)syscall(SYS_close_range, a, b, f);
}

static _Atomic(write_fn) real_write = fb_write;
static _Atomic(writev_fn) real_writev = fb_writev;
static _Atomic(pwrite_fn) real_pwrite = fb_pwrite, real_pwrite64 = fb_pwrite;
static _Atomic(pwritev_fn) real_pwritev = fb_pwritev, real_pwritev64 = fb_pwritev;
static _Atomic(close_fn) real_close = fb_close;
static _Atomic(dup2_fn) real_dup2 = fb_dup2;
static _Atomic(dup3_fn) real_dup3 = fb_dup3;
static _Atomic(close_range_fn) real_close_range = fb_close_range;

/*
 * The program gives the descriptor's number away: marks stop, its writes go where it says. Not from
 * a vfork child (Python's subprocess closes every descriptor there): it shares the parent's memory,
 * and the parent keeps its descriptor. Its pid is not the one tly__mark_pid holds (a fork child's
 * is, set by an atfork handler).
 */
static inline void mark_fd_lost(int lo, int hi)
{
    int fd = atomic_load_explicit(&tly__mark_fd, memory_order_relaxed);
    if (TLY__UNLIKELY(fd >= lo && fd <= hi && fd >= 0) && getpid() == tly__mark_pid)
        atomic_store_explicit(&tly__mark_fd, -1, memory_order_relaxed);
}

/*
 * A write to the mark descriptor's number is a mark only while the descriptor there is still the
 * preload's: the program may have closed it where the preload cannot see (glibc's closefrom is a
 * close_range system call made inside libc) and opened a file of its own at that number, whose
 * bytes must reach it. Checked on every such write (an fstat and an fcntl), never taken on trust.
 */
static __attribute__((noinline)) bool mark_fd_checked(int fd)
{
    if (tly__marks_fd_ours(fd))
        return true;
    mark_fd_lost(fd, fd);
    return false;
}

static inline bool is_mark_fd(int fd)
{
    return TLY__UNLIKELY(fd >= 0 && fd == atomic_load_explicit(&tly__mark_fd, memory_order_relaxed)) &&
           mark_fd_checked(fd);
}

static ssize_t marks_writev(const struct iovec *v, int k)
{
    char buf[4096];
    size_t n = 0, total = 0;
    for (int i = 0; i < k; i++) {
        size_t m = v[i].iov_len < sizeof buf - n ? v[i].iov_len : sizeof buf - n;
        memcpy(buf + n, v[i].iov_base, m); /* a mark line, not payload */
        n += m;
        total += v[i].iov_len;
    }
    tly__marks_write(buf, n);
    return (ssize_t)total;
}

ssize_t write(int fd, const void *b, size_t n)
{
    return is_mark_fd(fd) ? tly__marks_write(b, n) : REAL(write)(fd, b, n);
}

ssize_t writev(int fd, const struct iovec *v, int k)
{
    return is_mark_fd(fd) ? marks_writev(v, k) : REAL(writev)(fd, v, k);
}

ssize_t pwrite(int fd, const void *b, size_t n, off_t o)
{
    return is_mark_fd(fd) ? tly__marks_write(b, n) : REAL(pwrite)(fd, b, n, o);
}

ssize_t pwrite64(int fd, const void *b, size_t n, off_t o)
{
    return is_mark_fd(fd) ? tly__marks_write(b, n) : REAL(pwrite64)(fd, b, n, o);
}

ssize_t pwritev(int fd, const struct iovec *v, int k, off_t o)
{
    return is_mark_fd(fd) ? marks_writev(v, k) : REAL(pwritev)(fd, v, k, o);
}

ssize_t pwritev64(int fd, const struct iovec *v, int k, off_t o)
{
    return is_mark_fd(fd) ? marks_writev(v, k) : REAL(pwritev64)(fd, v, k, o);
}

int close(int fd)
{
    mark_fd_lost(fd, fd);
    return REAL(close)(fd);
}

int dup2(int a, int b)
{
    if (a != b)
        mark_fd_lost(b, b);
    return REAL(dup2)(a, b);
}

int dup3(int a, int b, int flags)
{
    mark_fd_lost(b, b);
    return REAL(dup3)(a, b, flags);
}

int close_range(unsigned lo, unsigned hi, int flags)
{
    if (!(flags & CLOSE_RANGE_CLOEXEC))
        mark_fd_lost((int)(lo > INT_MAX ? INT_MAX : lo), (int)(hi > INT_MAX ? INT_MAX : hi));
    return REAL(close_range)(lo, hi, flags);
}

void tly__markfd_boot(void)
{
    RESOLVE(real_write, "write");
    RESOLVE(real_writev, "writev");
    RESOLVE(real_pwrite, "pwrite");
    RESOLVE(real_pwrite64, "pwrite64");
    RESOLVE(real_pwritev, "pwritev");
    RESOLVE(real_pwritev64, "pwritev64");
    RESOLVE(real_close, "close");
    RESOLVE(real_dup2, "dup2");
    RESOLVE(real_dup3, "dup3");
    RESOLVE(real_close_range, "close_range");
}
