/* N12: a program that sleeps until a signal. It writes its pid to PIDFILE at start and, on SIGTERM,
 * SIGINT or SIGHUP, the signal's number to GOTFILE; then dies of the signal, as a program with no
 * handler would. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

static const char *got;

static void on_signal(int sig)
{
    int fd = open(got, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    char num[8] = {(char)('0' + sig / 10), (char)('0' + sig % 10), '\n'};
    if (fd >= 0) {
        write(fd, num, 3);
        close(fd);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    got = argv[2];
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGHUP, on_signal);
    FILE *f = fopen(argv[1], "w");
    if (f == NULL)
        return 2;
    fprintf(f, "%d\n", (int)getpid());
    fclose(f);
    for (int i = 0; i < 600; i++)
        sleep(1);
    return 0;
}
