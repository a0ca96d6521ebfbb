/*
 * The worst case for counting every copy: COUNT memcpys of SIZE bytes (100 by default), on THREADS
 * threads each, through the PLT (the size comes from the command line, so the compiler cannot
 * inline the copy). Prints a checksum, so the copies are not optimised away.
 *
 * usage: memcpy_storm COUNT [SIZE [THREADS]]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t count, size;

static void *storm(void *arg)
{
    unsigned char src[4096], dst[4096];
    unsigned long sum = (unsigned long)(size_t)arg;
    memset(src, 7, sizeof src);
    for (size_t i = 0; i < count; i++) {
        src[i % size] = (unsigned char)i;
        memcpy(dst + (i & 7), src, size);
        sum += dst[(i & 7) + i % size];
    }
    return (void *)sum;
}

int main(int argc, char **argv)
{
    count = argc > 1 ? strtoull(argv[1], NULL, 10) : 10000000;
    size = argc > 2 ? strtoull(argv[2], NULL, 10) : 100;
    int threads = argc > 3 ? atoi(argv[3]) : 1;
    if (size == 0 || size > 4000 || threads < 1 || threads > 64)
        return 2;
    pthread_t t[64];
    unsigned long sum = 0;
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, storm, (void *)(size_t)i);
    for (int i = 0; i < threads; i++) {
        void *r;
        pthread_join(t[i], &r);
        sum += (unsigned long)r;
    }
    printf("%lu\n", sum);
    return 0;
}
