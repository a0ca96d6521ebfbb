/*
 * tally-planted: a program not built with tally, for the preload tracker's test. It fills an array
 * (before the window), marks a write window around libplanted's work (through the weak marks of
 * tally/marks.h: without the preload it runs unmarked), checks the copy, and exits with the status
 * it was asked for, so a test can see that the preload never changes it.
 *
 * Mode mmap: the window holds an anonymous mapping of the array's size instead, grown to twice that
 * with mremap and then unmapped: memory outside malloc that must not hide from the peak.
 *
 * Mode rows: the window copies the array into a second one (allocated before it) in 20,000-byte rows
 * through libplanted, which counts the bytes and calls it gave memcpy; they are printed, for the test
 * to hold the preload's figures to.
 *
 * usage: tally-planted [ARRAY_BYTES [EXIT_STATUS [copy|mmap|rows]]]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "tally/marks.h"

void *planted_work(const void *array, size_t n);
void planted_release(void);
size_t planted_rows(void *dst, const void *src, size_t n, size_t row, size_t *calls);

static int rows(size_t n)
{
    unsigned char *a = malloc(n), *b = malloc(n);
    if (a == NULL || b == NULL)
        return 0;
    for (size_t i = 0; i < n; i++)
        a[i] = (unsigned char)(i * 31 + 7);
    memset(b, 0, n);
    if (TLY_MARKS_AVAILABLE())
        tly_mark_begin("rows", n);
    size_t calls, bytes = planted_rows(b, a, n, 20000, &calls);
    if (TLY_MARKS_AVAILABLE())
        tly_mark_end(0);
    int ok = memcmp(a, b, n) == 0;
    printf("tally-planted: rows: %zu bytes in %zu memcpy calls\n", bytes, calls);
    free(a);
    free(b);
    return ok;
}

static int mapped(size_t n)
{
    if (TLY_MARKS_AVAILABLE())
        tly_mark_begin("mmap", n);
    char *m = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return 0;
    memset(m, 1, n);
    char *g = mremap(m, n, 2 * n, MREMAP_MAYMOVE);
    if (g == MAP_FAILED)
        return 0;
    memset(g + n, 2, n);
    int ok = g[0] == 1 && g[2 * n - 1] == 2;
    munmap(g, 2 * n);
    if (TLY_MARKS_AVAILABLE())
        tly_mark_end(0);
    return ok;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 100000000;
    int status = argc > 2 ? atoi(argv[2]) : 0;
    if (argc > 3 && strcmp(argv[3], "mmap") == 0) {
        int ok = mapped(n);
        printf("tally-planted: %zu bytes mapped, %s\n", n, ok ? "ok" : "WRONG");
        return ok ? status : 1;
    }
    if (argc > 3 && strcmp(argv[3], "rows") == 0) {
        int ok = rows(n);
        printf("tally-planted: %zu bytes copied in rows, %s\n", n, ok ? "ok" : "WRONG");
        return ok ? status : 1;
    }
    unsigned char *a = malloc(n);
    if (a == NULL)
        return 2;
    for (size_t i = 0; i < n; i++)
        a[i] = (unsigned char)(i * 31 + 7);
    if (TLY_MARKS_AVAILABLE())
        tly_mark_begin("write", n);
    void *held = planted_work(a, n);
    if (TLY_MARKS_AVAILABLE())
        tly_mark_end(0);
    int ok = held != NULL && memcmp(held, a, n / 2) == 0;
    planted_release();
    free(a);
    printf("tally-planted: %zu bytes, marks %s, copy %s\n", n, TLY_MARKS_AVAILABLE() ? "on" : "off",
           ok ? "ok" : "WRONG");
    return ok ? status : 1;
}
