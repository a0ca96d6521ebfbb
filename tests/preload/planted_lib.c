/*
 * libplanted: a shared library with a known defect, for the preload tracker's test: given the
 * array, it allocates a block of half the array's size and copies half the array into it with
 * memcpy, and holds the block until planted_release(). Under the preload both the copy and the
 * block must be charged to this library, each at 0.50 of the array.
 *
 * planted_rows copies an array into another a row at a time, as GDAL moves a chunk between its block
 * cache and the caller's buffer: many copies of a few KiB, each under the 64 KiB that was once the
 * preload's threshold. It counts what it asked memcpy to copy, an independent count to check the
 * preload's against.
 */
#include <stdlib.h>
#include <string.h>

static void *held;

void *planted_work(const void *array, size_t n)
{
    held = malloc(n / 2);
    if (held)
        memcpy(held, array, n / 2);
    return held;
}

void planted_release(void)
{
    free(held);
    held = NULL;
}

size_t planted_rows(void *dst, const void *src, size_t n, size_t row, size_t *calls)
{
    size_t done = 0;
    *calls = 0;
    for (size_t at = 0; at < n; at += row) {
        size_t k = n - at < row ? n - at : row;
        memcpy((char *)dst + at, (const char *)src + at, k);
        done += k;
        ++*calls;
    }
    return done;
}
