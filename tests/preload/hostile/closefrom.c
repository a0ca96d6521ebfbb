/* N3: a program that closes every descriptor above 2 (glibc's closefrom, a close_range system call
 * the preload cannot see) and then opens 1000 files in DIR writes to the one at descriptor 1000: its
 * bytes must reach that file. Prints what it wrote and read back; exit 1 when they differ. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    closefrom(3);
    int at1000 = -1;
    for (int i = 0; i < 1000; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/f%04d", argv[1], i);
        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) {
            perror(path);
            return 2;
        }
        if (fd == 1000)
            at1000 = i;
    }
    if (at1000 < 0) {
        printf("no file at descriptor 1000\n");
        return 2;
    }
    static const char text[] = "the program's own bytes\n";
    ssize_t w = write(1000, text, sizeof text - 1);
    struct stat st;
    fstat(1000, &st);
    printf("f%04d at descriptor 1000: write returned %zd, the file holds %lld bytes\n", at1000, w,
           (long long)st.st_size);
    return w == (ssize_t)(sizeof text - 1) && st.st_size == w ? 0 : 1;
}
