/* The library deep.c loads and unloads: a block it allocated is live at the peak, after dlclose. */
#include <stdlib.h>
#include <string.h>

char *stacks_lib_hold(size_t n)
{
    char *p = malloc(n);
    memset(p, 4, n);
    char *q = malloc(n);
    memcpy(q, p, n);
    __asm__ volatile("" : : "r"(q) : "memory"); /* the copy is kept */
    free(q);
    return p;
}
