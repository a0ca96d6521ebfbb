/*
 * tally-planted: a program not built with tally, for the preload tracker's test. It fills an array
 * (before the window), marks a write window around libplanted's work (through the weak marks of
 * tally/marks.h: without the preload it runs unmarked), checks the copy, and exits with the status
 * it was asked for, so a test can see that the preload never changes it.
 *
 * usage: tally-planted [ARRAY_BYTES [EXIT_STATUS]]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tally/marks.h"

void *planted_work(const void *array, size_t n);
void planted_release(void);

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 100000000;
    int status = argc > 2 ? atoi(argv[2]) : 0;
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
