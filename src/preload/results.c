/*
 * Where a window's result goes, and whose it is: the process block of every result (pid, parent,
 * executable, argv from /proc/self/cmdline, when this image started), and the results directory
 * (TALLY_PROFILE_DIR), where each window of each process is a file of its own:
 *
 *     DIR/PID.START_NS.SEQ.json    START_NS: CLOCK_MONOTONIC when the image (or the fork's child) began
 *
 * written when the window opens as a provisional object ("incomplete": true, no figures: what is
 * left of a process killed by a signal, or one that exec'd), replaced through PATH.tmp and a rename
 * by the full result when the window closes. TALLY_PROFILE_OUT keeps its one-file meaning.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "preload/preload.h"

#define ARGV_CAP 4096

static char dir[PATH_MAX - 64];
static char argv_buf[ARGV_CAP];
static size_t argv_len;
static bool argv_cut, forked;
static pid_t pid, ppid;
static uint64_t start_ns;

static void read_cmdline(void)
{
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    ssize_t k = fd >= 0 ? read(fd, argv_buf, sizeof argv_buf - 1) : -1;
    char more;
    argv_cut = k == (ssize_t)sizeof argv_buf - 1 && read(fd, &more, 1) == 1;
    if (fd >= 0)
        close(fd);
    argv_len = k > 0 ? (size_t)k : 0;
    argv_buf[argv_len] = '\0';
}

static void find_dir(void)
{
    const char *d = tly__getenv("TALLY_PROFILE_DIR");
    if (d == NULL || *d == '\0')
        return;
    size_t at = 0;
    if (d[0] != '/' && getcwd(dir, sizeof dir) && strlen(dir) + strlen(d) + 2 < sizeof dir) {
        at = strlen(dir);
        dir[at++] = '/';
    }
    if (at + strlen(d) >= sizeof dir) {
        fprintf(stderr, "tally-preload: TALLY_PROFILE_DIR is too long; no result will be written there\n");
        dir[0] = '\0';
        return;
    }
    snprintf(dir + at, sizeof dir - at, "%s", d);
}

void tly__proc_boot(void)
{
    pid = getpid();
    ppid = getppid();
    start_ns = tly__now_ns();
    read_cmdline();
    find_dir();
}

void tly__proc_forked(void)
{
    pid = getpid();
    ppid = getppid();
    start_ns = tly__now_ns();
    forked = true;
}

static void jstr(FILE *f, const char *s)
{
    tly__jstr(f, s);
}

/* The process and window blocks, shared by the provisional object and the result. */
static void header(FILE *f, const char *name, const char *op, bool marked, unsigned depth, unsigned seq, uint64_t t0_ns,
                   const struct tly__figures *x)
{
    fprintf(f, "  \"process\": {\"pid\": %d, \"ppid\": %d, \"exe\": ", (int)pid, (int)ppid);
    jstr(f, tly__pl_exe);
    fputs(", \"argv\": [", f);
    for (size_t i = 0; i < argv_len; i += strlen(argv_buf + i) + 1) {
        fputs(i ? ", " : "", f);
        jstr(f, argv_buf + i);
    }
    fprintf(f, "], \"argv_truncated\": %s, \"start_ns\": %llu, \"forked\": %s},\n", argv_cut ? "true" : "false",
            (unsigned long long)start_ns, forked ? "true" : "false");
    fputs("  \"window\": {\"name\": ", f);
    jstr(f, name);
    fputs(", \"op\": ", f);
    if (marked)
        jstr(f, op);
    else
        fputs("null", f);
    fprintf(f, ", \"marked\": %s, \"seq\": %u, \"depth\": %u, \"t0_ns\": %llu, ", marked ? "true" : "false", seq, depth,
            (unsigned long long)t0_ns);
    if (x) {
        fprintf(f, "\"t1_ns\": %llu, \"timeline_t0_ns\": %llu, \"ended\": ", (unsigned long long)x->t1_ns,
                (unsigned long long)x->tl_t0_ns);
        jstr(f, x->ended);
        fputs(", \"incomplete\": false},\n", f);
    } else {
        fputs("\"t1_ns\": null, \"timeline_t0_ns\": null, \"ended\": null, \"incomplete\": true},\n", f);
    }
}

void tly__emit_header(FILE *f, const struct tly__figures *x)
{
    header(f, x->name, x->op, x->marked, x->depth, x->seq, x->t0_ns, x);
}

static int path_of(char *out, size_t cap, unsigned seq)
{
    if ((size_t)snprintf(out, cap, "%s/%d.%llu.%u.json", dir, (int)pid, (unsigned long long)start_ns, seq) >= cap)
        return -ENAMETOOLONG;
    return 0;
}

static void said(const char *what, const char *path, int err)
{
    fprintf(stderr, "tally-preload: cannot write %s%s: %s\n", what, path, strerror(-err));
}

void tly__result_provisional(const char *name, const char *op, bool marked, unsigned depth, unsigned seq,
                             uint64_t t0_ns)
{
    char path[PATH_MAX], tmp[PATH_MAX + 8];
    if (dir[0] == '\0' || path_of(path, sizeof path, seq) != 0)
        return;
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    sigset_t old;
    bool was_pending = tly__xfsz_hold(&old);
    int err = 0;
    FILE *f = fopen(tmp, "we");
    if (f == NULL) {
        err = -errno;
    } else {
        errno = 0;
        fputs("{\n", f);
        header(f, name, op, marked, depth, seq, t0_ns, NULL);
        fputs("  \"incomplete\": true\n}\n", f);
        err = ferror(f) ? -(errno ? errno : EIO) : 0;
        if (fclose(f) != 0 && err == 0)
            err = -errno;
        if (err == 0 && rename(tmp, path) != 0)
            err = -errno;
        if (err)
            unlink(tmp);
    }
    if (err)
        said("the provisional result ", path, err);
    tly__xfsz_release(&old, was_pending);
}

static void write_to(const char *what, const char *path, const struct tly__figures *x)
{
    sigset_t old;
    bool was_pending = tly__xfsz_hold(&old);
    int err = tly__report_write(path, x);
    if (err)
        said(what, path, err);
    tly__xfsz_release(&old, was_pending);
}

bool tly__result_dir_set(void)
{
    return dir[0] != '\0';
}

bool tly__result_anywhere(void)
{
    return dir[0] != '\0' || tly__pl_out() != NULL;
}

void tly__result_write_dir(const struct tly__figures *x)
{
    char path[PATH_MAX];
    if (dir[0] != '\0' && path_of(path, sizeof path, x->seq) == 0)
        write_to("the result to TALLY_PROFILE_DIR: ", path, x);
}

void tly__result_write_out(const struct tly__figures *x)
{
    const char *out = tly__pl_out();
    if (out)
        write_to("the result to TALLY_PROFILE_OUT=", out, x);
}
