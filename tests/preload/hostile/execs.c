/* N11: a program that execs itself 200 times must not gather descriptors on the way. Prints how many
 * descriptors were open at the first exec and at the last, and the difference. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n - 1; /* less the directory's own */
}

int main(int argc, char **argv)
{
    int left = argc > 1 ? atoi(argv[1]) : 200;
    int first = argc > 2 ? atoi(argv[2]) : open_fds();
    if (left > 0) {
        char a[16], b[16];
        snprintf(a, sizeof a, "%d", left - 1);
        snprintf(b, sizeof b, "%d", first);
        execl("/proc/self/exe", argv[0], a, b, (char *)NULL);
        perror("execl");
        return 2;
    }
    int last = open_fds();
    printf("descriptors gained over 200 execs: %d\n", last - first);
    return last == first ? 0 : 1;
}
