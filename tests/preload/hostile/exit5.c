/* N13: a program that ends with _exit(5): exit status 5 under the preload too, and a message that
 * says so (no atexit, no result). */
#include <stdio.h>
#include <unistd.h>

int main(void)
{
    printf("leaving with _exit(5)\n");
    fflush(stdout);
    _exit(5);
}
