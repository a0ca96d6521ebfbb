/* Hostile stacks: a stack far deeper than the cap (300 frames), a library dlclose'd before the report,
 * and a thread that allocates, copies and exits mid-window. Prints "ok". */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *held[4];

static __attribute__((noinline)) int down(int n, char **out)
{
    if (n == 0) {
        *out = malloc(3 << 20);
        memset(*out, 2, 3 << 20);
        char *tmp = malloc(3 << 20);
        memcpy(tmp, *out, 3 << 20);
        __asm__ volatile("" : : "r"(tmp) : "memory"); /* the copy is kept */
        free(tmp);
        return 1;
    }
    int r = down(n - 1, out) + 1;
    __asm__ volatile("" ::: "memory");
    return r;
}

static void *worker(void *arg)
{
    (void)arg;
    held[1] = malloc(5 << 20);
    memset(held[1], 3, 5 << 20);
    char *tmp = malloc(5 << 20);
    memcpy(tmp, held[1], 5 << 20);
    __asm__ volatile("" : : "r"(tmp) : "memory"); /* the copy is kept */
    free(tmp);
    return NULL;
}

int main(int argc, char **argv)
{
    if (down(300, &held[0]) != 301)
        return 1;
    pthread_t t;
    if (pthread_create(&t, NULL, worker, NULL) != 0 || pthread_join(t, NULL) != 0)
        return 1;
    if (argc > 1) { /* the library: allocates 7 MB and keeps it, copies it; then it is unloaded */
        void *h = dlopen(argv[1], RTLD_NOW);
        char *(*fn)(size_t) = h ? (char *(*)(size_t))dlsym(h, "stacks_lib_hold") : NULL;
        if (fn == NULL)
            return 1;
        held[2] = fn(7 << 20);
        dlclose(h);
    }
    printf("ok\n");
    return 0;
}
