/*
 * Marks: the measured window, from C (tly_mark_*, include/tally/marks.h) or from any language
 * through the TALLY_MARK_FD line protocol. Without marks the window is the whole process.
 *
 * Closing a window takes every figure first (counters, cross-checks, the timeline, into static
 * storage) and only then writes the result, whose allocations would otherwise be in the figures.
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

#define TL_CAP (TLY_TIMELINE_CAP + 2)
#define STACK_CAP 32

/* The mark descriptor's tag: F_SETSIG's signal, kept by its open file description (dup, fork), not
 * by a number or a file. A /dev/null the program opens has 0 there. The signal is only ever sent for
 * a descriptor in O_ASYNC mode, which this one never is. */
#define MARK_TAG 63

_Atomic int tly__mark_fd = -1;
pid_t tly__mark_pid;
static struct stat mark_st; /* the mark descriptor's /dev/null, as it was opened */
static bool mark_tagged;    /* F_SETSIG took (a kernel, or a sandbox, may refuse it) */

enum { W_NONE, W_PROCESS, W_MARKED, W_DONE };

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int state;
static pid_t window_pid; /* a fork inherits the window, not the right to close it */
static unsigned ignored; /* marks after the first window, or out of order */
static struct tly__figures fig;
static struct tly_mem_sample tl[TL_CAP];
static int64_t tl_lib[TL_CAP][TLY__LIB_MAX];

static __thread uint8_t stage_stack[STACK_CAP] __attribute__((tls_model("initial-exec")));
static __thread unsigned stage_depth __attribute__((tls_model("initial-exec")));

static void open_window(bool marked, const char *op, uint64_t array_bytes)
{
    memset(&fig, 0, sizeof fig);
    fig.marked = marked;
    snprintf(fig.op, sizeof fig.op, "%s", op ? op : "");
    fig.array_bytes = array_bytes;
    tly_mem_reset_peaks();
    tly__snapshot_libs(&fig.before, fig.lb);
    tly_time_snapshot(&fig.time_before);
    fig.t0_ns = tly__now_ns();
    window_pid = getpid();
    state = marked ? W_MARKED : W_PROCESS;
}

static void close_window(uint64_t output_bytes, bool end_missing)
{
    fig.t1_ns = tly__now_ns();
    tly_time_snapshot(&fig.time_after);
    tly__snapshot_libs(&fig.after, fig.la);
    fig.nslots = atomic_load_explicit(&tly__lib_count, memory_order_acquire);
    fig.xc_ok = tly_mem_crosscheck(&fig.xc) == 0;
    size_t n = tly__timeline_read(tl, tl_lib, TL_CAP);
    fig.tl_n = n < TL_CAP ? n : TL_CAP;
    fig.tl = tl;
    fig.tl_lib = tl_lib;
    fig.output_bytes = output_bytes;
    fig.end_missing = end_missing;
    fig.marks_ignored = ignored;
    state = W_DONE;
}

static void write_result(void)
{
    const char *out = tly__pl_out();
    if (out == NULL)
        return;
    sigset_t old;
    bool was_pending = tly__xfsz_hold(&old);
    int err = tly__report_write(out, &fig);
    if (err)
        fprintf(stderr, "tally-preload: cannot write the result to TALLY_PROFILE_OUT=%s: %s\n", out, strerror(-err));
    tly__xfsz_release(&old, was_pending);
}

void tly_mark_begin(const char *op, unsigned long long array_bytes)
{
    pthread_mutex_lock(&mu);
    if (state == W_PROCESS)
        open_window(true, op, array_bytes);
    else
        ignored++;
    pthread_mutex_unlock(&mu);
}

void tly_mark_end(unsigned long long output_bytes)
{
    pthread_mutex_lock(&mu);
    if (state == W_MARKED && window_pid == getpid()) {
        close_window(output_bytes, false);
        write_result();
    } else {
        ignored++;
    }
    pthread_mutex_unlock(&mu);
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

/* One line of the protocol: "begin OP N", "end N", "push STAGE", "pop". */
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
        tly_mark_begin(arg, bytes);
    } else if (strcmp(line, "end") == 0) {
        tly_mark_end(take_number(arg));
    } else if (strcmp(line, "push") == 0) {
        tly_mark_push(arg);
    } else if (strcmp(line, "pop") == 0) {
        tly_mark_pop();
    } else {
        fprintf(stderr, "tally-preload: TALLY_MARK_FD: '%s' is not a mark (begin OP N, end N, push STAGE, pop)\n",
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
    pthread_mutex_lock(&mu);
    open_window(false, NULL, tly__pl_array_bytes);
    pthread_mutex_unlock(&mu);
}

void tly__marks_exit(void)
{
    pthread_mutex_lock(&mu);
    if (window_pid == getpid()) {
        if (state == W_MARKED) { /* begin without end: the window closes at exit, and says so */
            close_window(0, true);
            write_result();
        } else if (state == W_PROCESS && tly__pl_may_write_unmarked()) {
            close_window(0, false);
            write_result();
        }
    }
    pthread_mutex_unlock(&mu);
}
