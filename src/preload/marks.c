/*
 * Marks: the measured windows, from C (tly_mark_*, include/tally/marks.h) or from any language
 * through the TALLY_MARK_FD line protocol, and the threads' stages (push/pop). The windows
 * themselves are windows.c's; without marks there is only the whole-process one.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TLY__MARKS_IMPL
#include "preload/preload.h"
#include "tally/marks.h"

#define STACK_CAP 32

/* The mark descriptor's tag: F_SETSIG's signal, kept by its open file description (dup, fork), not
 * by a number or a file. A /dev/null the program opens has 0 there. The signal is only ever sent for
 * a descriptor in O_ASYNC mode, which this one never is. */
#define MARK_TAG 63

_Atomic int tly__mark_fd = -1;
pid_t tly__mark_pid;
static struct stat mark_st; /* the mark descriptor's /dev/null, as it was opened */
static bool mark_tagged;    /* F_SETSIG took (a kernel, or a sandbox, may refuse it) */

static __thread uint8_t stage_stack[STACK_CAP] __attribute__((tls_model("initial-exec")));
static __thread unsigned stage_depth __attribute__((tls_model("initial-exec")));

void tly_mark_begin(const char *op, unsigned long long array_bytes)
{
    tly__win_begin(NULL, op, array_bytes);
}

void tly_mark_begin_named(const char *name, const char *op, unsigned long long array_bytes)
{
    tly__win_begin(name, op, array_bytes);
}

void tly_mark_end(unsigned long long output_bytes)
{
    tly__win_end(NULL, output_bytes);
}

void tly_mark_end_named(const char *name, unsigned long long output_bytes)
{
    tly__win_end(name, output_bytes);
}

void tly_mark_push(const char *stage)
{
    int s = stage ? tly_stage_from_name(stage) : -1;
    if (s < 0) {
        fprintf(stderr, "tally-preload: tly_mark_push: '%s' is not a stage of tally's; counted as unstaged\n",
                stage ? stage : "(null)");
        s = TLY_UNSTAGED;
    }
    enum tly_stage prev = tly_stage_enter((enum tly_stage)s);
    if (stage_depth < STACK_CAP)
        stage_stack[stage_depth] = (uint8_t)prev;
    stage_depth++;
}

void tly_mark_pop(void)
{
    if (stage_depth == 0)
        return;
    stage_depth--;
    tly_stage_leave(stage_depth < STACK_CAP ? (enum tly_stage)stage_stack[stage_depth] : tly_stage_current());
}

/* The last word of @p s as a whole number (0 when there is none); cuts it off @p s. */
static unsigned long long take_number(char *s)
{
    size_t n = strlen(s);
    while (n && s[n - 1] == ' ')
        s[--n] = '\0';
    size_t i = n;
    while (i && s[i - 1] >= '0' && s[i - 1] <= '9')
        i--;
    if (i == n || (i && s[i - 1] != ' '))
        return 0;
    unsigned long long v = strtoull(s + i, NULL, 10);
    s[i] = '\0';
    while (i && s[i - 1] == ' ')
        s[--i] = '\0';
    return v;
}

/* The last word of @p s when there are two or more (its first character); NULL when fewer. */
static char *last_word(char *s)
{
    char *sp = strrchr(s, ' ');
    return sp && sp > s ? sp + 1 : NULL;
}

/* One line of the protocol: "begin [NAME] OP N", "end [NAME] N", "push STAGE", "pop". */
static void mark_line(char *line)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\r' || line[n - 1] == ' '))
        line[--n] = '\0';
    if (n == 0)
        return;
    char *arg = line + strcspn(line, " ");
    if (*arg)
        *arg++ = '\0';
    arg += strspn(arg, " ");
    if (strcmp(line, "begin") == 0) {
        unsigned long long bytes = take_number(arg);
        char *op = last_word(arg);
        /* "begin NAME write N": a name before an op of the protocol's; else the words are the op */
        if (op && (strcmp(op, "write") == 0 || strcmp(op, "read") == 0)) {
            for (char *e = op - 1; e > arg && e[-1] == ' ';)
                *--e = '\0';
            op[-1] = '\0';
            tly__win_begin(arg, op, bytes);
        } else {
            tly__win_begin(NULL, arg, bytes);
        }
    } else if (strcmp(line, "end") == 0) {
        unsigned long long bytes = take_number(arg);
        tly__win_end(arg, bytes); /* "end N" or "end NAME N" */
    } else if (strcmp(line, "push") == 0) {
        tly_mark_push(arg);
    } else if (strcmp(line, "pop") == 0) {
        tly_mark_pop();
    } else {
        fprintf(stderr,
                "tally-preload: TALLY_MARK_FD: '%s' is not a mark (begin [NAME] OP N, end [NAME] N, push STAGE, pop)\n",
                line);
    }
}

ssize_t tly__marks_write(const void *buf, size_t n)
{
    const char *p = buf, *end = p + n;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = (size_t)((nl ? nl : end) - p);
        char line[512];
        size_t k = len < sizeof line - 1 ? len : sizeof line - 1;
        memcpy(line, p, k); /* a mark line, not payload */
        line[k] = '\0';
        mark_line(line);
        p += len + 1;
    }
    return (ssize_t)n;
}

static void forked(void)
{
    tly__mark_pid = getpid();
}

/* /dev/null at 1000 or above, out of the way of programs that dup2 onto low ones, closed on exec:
 * every preloaded process opens its own, and none gathers across execs (a child without the preload
 * that inherits TALLY_MARK_FD finds the number closed, or a descriptor of its own there). Tagged, so
 * that tly__marks_fd_ours() knows it from a descriptor the program opened at the same number. */
static int mark_fd_open(void)
{
    int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int high = fcntl(fd, F_DUPFD_CLOEXEC, 1000);
    if (high >= 0) {
        close(fd);
        fd = high;
    }
    if (fstat(fd, &mark_st) != 0) {
        close(fd);
        return -1;
    }
    mark_tagged = fcntl(fd, F_SETSIG, MARK_TAG) == 0;
    return fd;
}

/* Async-signal-safe: a write from a signal handler may ask. Untagged, a /dev/null of the program's
 * at the number would pass; its bytes go nowhere either way. */
bool tly__marks_fd_ours(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && st.st_dev == mark_st.st_dev && st.st_ino == mark_st.st_ino &&
           st.st_rdev == mark_st.st_rdev && (!mark_tagged || fcntl(fd, F_GETSIG) == MARK_TAG);
}

void tly__marks_boot(void)
{
    int fd = mark_fd_open();
    if (fd >= 0) {
        char num[16];
        snprintf(num, sizeof num, "%d", fd);
        setenv("TALLY_MARK_FD", num, 1);
        tly__mark_pid = getpid();
        pthread_atfork(NULL, NULL, forked);
        atomic_store_explicit(&tly__mark_fd, fd, memory_order_relaxed);
    }
    tly__win_boot();
}
