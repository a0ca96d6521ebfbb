/* A realloc storm (issue 25): ARG reallocs of a block to sizes between 16 B and 8 KiB, freed every 1000. */
#include <stdlib.h>
#include <stdio.h>
int main(int argc, char **argv) {
    long iters = argc > 1 ? atol(argv[1]) : 2000000;
    void *p = NULL; size_t sz = 16;
    unsigned long sum = 0;
    for (long i = 0; i < iters; i++) {
        sz = 16 + (size_t)((i * 2654435761u) % 8192);
        p = realloc(p, sz);
        ((char *)p)[0] = (char)i; sum += ((unsigned char *)p)[0];
        if (i % 1000 == 999) { free(p); p = NULL; }
    }
    free(p);
    printf("%lu\n", sum);
    return 0;
}
