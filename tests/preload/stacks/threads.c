/* 8 threads at once, each 2000 times: a block of 100 kB allocated, copied into another and both freed,
 * from one of 4 call sites (so that threads intern and look up the same stacks concurrently). Prints
 * the copies' total. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 102400

static __attribute__((noinline)) void site(int k, char *dst, const char *src)
{
    switch (k) {
    case 0:
        memcpy(dst, src, N);
        break;
    case 1:
        memcpy(dst, src, N);
        break;
    case 2:
        memcpy(dst, src, N);
        break;
    default:
        memcpy(dst, src, N);
    }
    __asm__ volatile("" : : "r"(dst) : "memory");
}

static void *worker(void *arg)
{
    int id = (int)(long)arg;
    for (int i = 0; i < 2000; i++) {
        char *a = malloc(N), *b = malloc(N);
        memset(a, id, N);
        site((i + id) % 4, b, a);
        free(a);
        free(b);
    }
    return NULL;
}

int main(void)
{
    pthread_t t[8];
    for (long i = 0; i < 8; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)i) != 0)
            return 1;
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    printf("%d\n", 8 * 2000 * N);
    return 0;
}
