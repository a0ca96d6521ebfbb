/* N5: a program that runs with RLIMIT_FSIZE 0 (it writes nothing) must end as it would: the
 * preload's result, too big for the limit, must never raise SIGXFSZ in it. */
#include <stdio.h>
#include <sys/resource.h>

int main(void)
{
    printf("RLIMIT_FSIZE 0 from here on\n");
    fflush(stdout);
    struct rlimit rl = {0, 0};
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0) {
        perror("setrlimit");
        return 2;
    }
    return 0;
}
