/* Issue 21's acceptance in C: a static (non-exported) function copies 100 MB; built with -g, the copy's
 * site names it and its source line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static __attribute__((noinline)) void copy_quietly(char *dst, const char *src, size_t n)
{
    memcpy(dst, src, n); /* LINE copy_quietly */
    __asm__ volatile("" ::: "memory");
}

int main(void)
{
    size_t n = 100000000;
    char *a = malloc(n); /* LINE main */
    char *b = malloc(n / 2);
    memset(a, 1, n);
    copy_quietly(b, a, n / 2);
    copy_quietly(b, a + n / 2, n / 2);
    printf("%d\n", b[n / 2 - 1]);
    free(a);
    free(b);
    return 0;
}
