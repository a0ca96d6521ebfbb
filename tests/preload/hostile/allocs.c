/* N4, N14: every allocation entry point behaves as glibc's does (values that do not depend on the
 * allocator: NULL or not, errno, alignment, usable size at least what was asked). */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uintptr_t page;
/* sizes the compiler cannot see (it warns of a constant too large, and may answer for the call) */
static volatile size_t huge = SIZE_MAX - 100, half = SIZE_MAX / 2, half1 = SIZE_MAX / 2 + 1;

/* One line: what came back, its alignment to @p align, and that its bytes can be written. */
static void said(const char *what, void *p, size_t align, size_t n, int err)
{
    if (p == NULL) {
        printf("%-28s NULL errno %s\n", what, strerror(err));
        return;
    }
    memset(p, 0xab, n);
    size_t u = malloc_usable_size(p);
    printf("%-28s ok aligned %d usable>=%zu %d\n", what, align ? (uintptr_t)p % align == 0 : 1, n, u >= n);
    free(p);
}

#define TRY(expr, align, n)                                                                                            \
    do {                                                                                                               \
        errno = 0;                                                                                                     \
        void *p_ = (expr);                                                                                             \
        said(#expr, p_, align, n, errno);                                                                              \
    } while (0)

static void posix(size_t align, size_t n)
{
    void *p = (void *)1;
    int rc = posix_memalign(&p, align, n);
    char what[64];
    snprintf(what, sizeof what, "posix_memalign(%zu, %zu)", align, n);
    if (rc != 0)
        printf("%-28s rc %s, pointer %s\n", what, strerror(rc), p == (void *)1 ? "untouched" : "changed");
    else
        said(what, p, align, n, 0);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* each line out before the next call: a crash shows where */
    page = (uintptr_t)sysconf(_SC_PAGESIZE);
    TRY(pvalloc(100), page, 100);
    TRY(pvalloc(0), page, 0);
    TRY(valloc(100), page, 100);
    TRY(valloc(0), page, 0);
    TRY(memalign(3, 100), 4, 100);
    TRY(memalign(0, 100), 1, 100);
    TRY(memalign(24, 100), 32, 100);
    TRY(memalign(4096, 10), 4096, 10);
    TRY(aligned_alloc(3, 9), 4, 9);
    TRY(aligned_alloc(64, 100), 64, 100);
    TRY(aligned_alloc(8, 3), 8, 3);
    TRY(memalign(1, huge), 0, 0);
    TRY(aligned_alloc(64, half1), 0, 0);
    TRY(pvalloc(huge), 0, 0);
    TRY(valloc(huge), 0, 0);
    posix(3, 100);
    posix(0, 100);
    posix(4, 100);
    posix(8, 100);
    posix(24, 100);
    posix(64, 100);
    posix(64, huge);
    TRY(reallocarray(NULL, half, 3), 0, 0);
    TRY(reallocarray(NULL, 10, 10), 0, 100);
    TRY(calloc(half, 3), 0, 0);
    TRY(calloc(10, 10), 0, 100);
    TRY(malloc(huge), 0, 0);
    printf("%-28s %zu\n", "malloc_usable_size(NULL)", malloc_usable_size(NULL));
    void *q = malloc(10);
    void *r = reallocarray(q, half, 3);
    printf("%-28s %s errno %s\n", "reallocarray(q, overflow)", r ? "ok" : "NULL", strerror(errno));
    free(r ? r : q); /* q is still the program's when reallocarray failed */
    return 0;
}
