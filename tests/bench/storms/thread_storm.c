/* An allocation storm (issue 25): ARG1 threads (default 200), each ARG2 malloc/free pairs of 16-528 B. */
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
static long per;
static void *run(void *a) {
    (void)a; void *k[64] = {0};
    for (long i = 0; i < per; i++) {
        int j = (int)(i & 63);
        free(k[j]);
        k[j] = malloc(16 + (size_t)(i % 512));
        ((char *)k[j])[0] = 1;
    }
    for (int j = 0; j < 64; j++) free(k[j]);
    return NULL;
}
int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 200;
    per = argc > 2 ? atol(argv[2]) : 50000;
    pthread_t t[1024];
    for (int i = 0; i < n; i++) pthread_create(&t[i], NULL, run, NULL);
    for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
    puts("done");
    return 0;
}
