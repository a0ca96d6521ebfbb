/*
 * libplanted: a shared library with a known defect, for the preload tracker's test: given the
 * array, it allocates a block of half the array's size and copies half the array into it with
 * memcpy, and holds the block until planted_release(). Under the preload both the copy and the
 * block must be charged to this library, each at 0.50 of the array.
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
