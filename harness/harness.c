/* The harness's shared helpers: paths, byte counts as text, child processes. */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tally/error.h"

extern char **environ;

int tly_h_pathf(char *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, TLY_H_PATH, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= TLY_H_PATH)
        return tly_fail(TLY_EUSAGE, "path too long: %.60s...", buf);
    return 0;
}

int tly_h_mkdirs(const char *dir)
{
    char buf[TLY_H_PATH];
    int err = tly_h_pathf(buf, "%s", dir);
    if (err)
        return err;
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(buf, 0777);
            *p = '/';
        }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return tly_fail_errno("%s", dir);
    return 0;
}

bool tly_h_word_in(const char *const *words, const char *word)
{
    for (int i = 0; words[i]; i++)
        if (strcmp(words[i], word) == 0)
            return true;
    return false;
}

const char *tly_h_bytes(char *buf, size_t cap, double bytes)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = bytes < 0 ? -bytes : bytes;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    snprintf(buf, cap, u ? "%s%.1f %s" : "%s%.0f %s", bytes < 0 ? "-" : "", v, units[u]);
    return buf;
}

const char *tly_h_self(void)
{
    static char self[TLY_H_PATH];
    if (self[0] == '\0') {
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        self[n > 0 ? n : 0] = '\0';
    }
    return self;
}

const char *tly_h_self_dir(void)
{
    static char dir[TLY_H_PATH];
    if (dir[0] == '\0') {
        snprintf(dir, sizeof dir, "%s", tly_h_self());
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = '\0';
        else
            snprintf(dir, sizeof dir, ".");
    }
    return dir;
}

void tly_h_project_file(const char *rel, char *out)
{
    if (access(rel, R_OK) == 0)
        snprintf(out, TLY_H_PATH, "%s", rel);
    else
        snprintf(out, TLY_H_PATH, "%s/%s", TALLY_SOURCE_DIR, rel);
}

double tly_h_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int tly_h_fail_cmd(const char *cmd, int err)
{
    const char *msg = tly_errmsg();
    fprintf(stderr, "tally %s: %s\n", cmd, msg[0] ? msg : tly_strerror(err));
    return TLY_EXIT_ERROR;
}

const char *tly_h_last_line(const char *s)
{
    static char buf[512];
    if (s == NULL || *s == '\0')
        return "no message";
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == '\n')
        n--;
    size_t start = n;
    while (start > 0 && s[start - 1] != '\n')
        start--;
    snprintf(buf, sizeof buf, "%.*s", (int)(n - start), s + start);
    return buf[0] ? buf : "no message";
}

/* The environment with @p env applied: a new array of pointers (into environ and env's own strings). */
static char **child_environ(const struct tly_h_env *env, int nenv, char ***owned)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **e = calloc(n + (size_t)nenv + 1, sizeof *e);
    char **own = calloc((size_t)nenv + 1, sizeof *own);
    if (e == NULL || own == NULL) {
        free(e);
        free(own);
        return NULL;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        bool replaced = false;
        for (int j = 0; j < nenv; j++) {
            size_t len = strlen(env[j].name);
            replaced |= strncmp(environ[i], env[j].name, len) == 0 && environ[i][len] == '=';
        }
        if (!replaced)
            e[k++] = environ[i];
    }
    for (int j = 0; j < nenv; j++)
        if (env[j].value && asprintf(&own[j], "%s=%s", env[j].name, env[j].value) >= 0)
            e[k++] = own[j];
    *owned = own;
    return e;
}

/*
 * posix_spawn(p) of @p path (a bare name is looked up on PATH) with @p env applied to our environment;
 * the child's pid into @p pid. Returns 0 or an errno.
 */
static int start(const char *path, char *const argv[], const struct tly_h_env *env, int nenv,
                 const posix_spawn_file_actions_t *fa, const posix_spawnattr_t *attr, pid_t *pid)
{
    char **owned = NULL, **envp = nenv ? child_environ(env, nenv, &owned) : environ;
    int rc = envp == NULL        ? ENOMEM
             : strchr(path, '/') ? posix_spawn(pid, path, fa, attr, argv, envp)
                                 : posix_spawnp(pid, path, fa, attr, argv, envp);
    if (nenv) {
        for (int j = 0; owned && j < nenv; j++)
            free(owned[j]);
        free(owned);
        if (envp != environ)
            free(envp);
    }
    return rc;
}

/* Append what @p fd has to @p mem; false at its end. */
static bool drain(int fd, FILE *mem)
{
    char buf[65536];
    ssize_t k = read(fd, buf, sizeof buf);
    if (k < 0 && errno == EINTR)
        return true;
    if (k <= 0)
        return false;
    fwrite(buf, 1, (size_t)k, mem);
    return true;
}

static double spawn_limit_s;

void tly_h_spawn_timeout(double seconds)
{
    spawn_limit_s = seconds > 0 ? seconds : 0;
}

static const struct tly_h_spawn_watch *next_watch;

void tly_h_spawn_watch_next(const struct tly_h_spawn_watch *watch)
{
    next_watch = watch;
}

/* The watch told the child started, and (ended) that it ended, not yet reaped: its pid is still its
 * own while the watcher stops. */
static void watch_start(const struct tly_h_spawn_watch *w, pid_t pid)
{
    if (w)
        w->started(pid, w->arg);
}

static void watch_end(const struct tly_h_spawn_watch *w, pid_t pid)
{
    if (w == NULL)
        return;
    siginfo_t si;
    while (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) < 0 && errno == EINTR)
        ;
    w->ended(w->arg);
}

/* Collect the child's pipes (both at once: a child that fills one must not stall) and wait for it;
 * past the limit (tly_h_spawn_timeout) its process group is killed and collected as it ends. */
static void collect(pid_t pid, int po, int pe, const struct tly_h_spawn_watch *w, struct tly_h_child *out)
{
    size_t on = 0, en = 0;
    FILE *om = open_memstream(&out->out, &on), *em = pe >= 0 ? open_memstream(&out->err, &en) : NULL;
    struct pollfd fds[2] = {{po, POLLIN, 0}, {pe, POLLIN, 0}};
    double deadline = spawn_limit_s > 0 ? tly_h_now_s() + spawn_limit_s : 0;
    for (int open_fds = pe >= 0 ? 2 : 1; open_fds > 0;) {
        int wait_ms = -1;
        if (deadline > 0) {
            double left = deadline - tly_h_now_s();
            if (left <= 0 && out->timed_out)
                break; /* killed 10 s ago and its pipes still open: what holds them left its group */
            if (left <= 0) {
                out->timed_out = true;
                kill(-pid, SIGKILL); /* the child and what it started: its own process group */
                kill(pid, SIGKILL);
                deadline = tly_h_now_s() + 10;
                left = 10;
            }
            wait_ms = left > 1e6 ? 1000000000 : (int)(left * 1000) + 1;
        }
        if (poll(fds, pe >= 0 ? 2 : 1, wait_ms) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd >= 0 && (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) && !drain(fds[i].fd, i ? em : om)) {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_fds--;
            }
        }
    }
    for (int i = 0; i < 2; i++)
        if (fds[i].fd >= 0)
            close(fds[i].fd);
    fclose(om);
    if (em)
        fclose(em);
    watch_end(w, pid);
    while (waitpid(pid, &out->status, 0) < 0 && errno == EINTR)
        ;
}

/*
 * The signals that ask a program to stop, passed on to the child tally waits for: tally must not die
 * and leave it running. For tly_h_spawn_inherit()'s program, one from a terminal (^C, a hangup:
 * si_code SI_KERNEL) has reached it already, as the whole foreground process group gets it, and is
 * not sent twice; a child under a time limit runs in a process group of its own, which a terminal's
 * signal does not reach, so it gets every one (sent to the group), and tally takes the signal itself
 * once the child is reaped.
 */
static const int forwarded[] = {SIGTERM, SIGINT, SIGHUP};
static volatile sig_atomic_t forward_to, forward_terminal, forward_got; /* forward_to: a kill() target */

static void forward(int sig, siginfo_t *si, void *uctx)
{
    (void)uctx;
    int saved = errno;
    if (forward_to != 0 && (forward_terminal || si->si_code != SI_KERNEL))
        kill((pid_t)forward_to, sig);
    forward_got = sig;
    errno = saved;
}

/* The forwarded signals blocked (until the child's pid is known, so none arrives with nowhere to go;
 * the mask as it was into @p mask, the child's) and caught (not one we ignore: the child inherits
 * that); the old actions into @p old. */
static void forward_begin(struct sigaction old[3], sigset_t *mask, bool terminal)
{
    sigset_t block;
    sigemptyset(&block);
    for (int i = 0; i < 3; i++)
        sigaddset(&block, forwarded[i]);
    sigprocmask(SIG_BLOCK, &block, mask);
    forward_terminal = terminal;
    forward_got = 0;
    struct sigaction sa = {.sa_sigaction = forward, .sa_flags = SA_SIGINFO | SA_RESTART};
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < 3; i++)
        if (sigaction(forwarded[i], NULL, &old[i]) == 0 && old[i].sa_handler != SIG_IGN)
            sigaction(forwarded[i], &sa, NULL);
}

/* The child started (@p target: its pid, or minus its process group; 0: it did not): signals unblocked. */
static void forward_started(pid_t target, const sigset_t *mask)
{
    forward_to = target;
    sigprocmask(SIG_SETMASK, mask, NULL);
}

/* The child reaped: the old actions back; the signal passed on meanwhile (0: none). */
static int forward_end(const struct sigaction old[3])
{
    forward_to = 0; /* first: the pid is reaped, and may be another process's soon */
    for (int i = 0; i < 3; i++)
        sigaction(forwarded[i], &old[i], NULL);
    return forward_got;
}

int tly_h_spawn(const char *path, char *const argv[], const struct tly_h_env *env, int nenv, bool keep_err,
                struct tly_h_child *out)
{
    memset(out, 0, sizeof *out);
    const struct tly_h_spawn_watch *w = next_watch;
    next_watch = NULL;
    int po[2], pe[2] = {-1, -1};
    if (pipe2(po, O_CLOEXEC) != 0)
        return -errno;
    if (keep_err && pipe2(pe, O_CLOEXEC) != 0) {
        int e = -errno;
        close(po[0]);
        close(po[1]);
        return e;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, po[1], 1);
    if (keep_err)
        posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
    pid_t pid;
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    bool group = spawn_limit_s > 0; /* a group of its own, so that a timeout kills what it started too */
    struct sigaction old[3];
    sigset_t mask;
    if (group) {
        forward_begin(old, &mask, true);
        posix_spawnattr_setsigmask(&attr, &mask);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK);
        posix_spawnattr_setpgroup(&attr, 0);
    }
    int rc = start(path, argv, env, nenv, &fa, &attr, &pid);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    if (group)
        forward_started(rc == 0 ? -pid : 0, &mask);
    close(po[1]);
    if (keep_err)
        close(pe[1]);
    if (rc == 0) {
        watch_start(w, pid);
        collect(pid, po[0], keep_err ? pe[0] : -1, w, out);
    }
    int sig = group ? forward_end(old) : 0;
    if (sig)
        raise(sig); /* what it would have done to us, now that the child is gone */
    if (rc != 0) {
        close(po[0]);
        if (keep_err)
            close(pe[0]);
        return -rc;
    }
    return 0;
}

int tly_h_spawn_inherit(const char *path, char *const argv[], const struct tly_h_env *env, int nenv, int *status,
                        const struct tly_h_spawn_watch *watch)
{
    struct sigaction old[3];
    sigset_t mask;
    forward_begin(old, &mask, false); /* the program starts with our mask as it was */
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setsigmask(&attr, &mask);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
    pid_t pid;
    int rc = start(path, argv, env, nenv, NULL, &attr, &pid);
    posix_spawnattr_destroy(&attr);
    forward_started(rc == 0 ? pid : 0, &mask);
    if (rc == 0) {
        watch_start(watch, pid);
        watch_end(watch, pid);
    }
    if (rc == 0)
        while (waitpid(pid, status, 0) < 0 && errno == EINTR)
            ;
    forward_end(old);
    return -rc;
}

void tly_h_child_free(struct tly_h_child *c)
{
    free(c->out);
    free(c->err);
    c->out = c->err = NULL;
}

json_t *tly_h_host_json(void)
{
    struct utsname u;
    uname(&u);
    char model[256] = "unknown", line[512];
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
            snprintf(model, sizeof model, "%s", strchr(line, ':') + 2);
            model[strcspn(model, "\n")] = '\0';
            break;
        }
    if (f)
        fclose(f);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    uint64_t mem = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
    return json_pack("{s:i, s:I, s:s, s:s}", "cpus", (int)cpus, "mem_bytes", (json_int_t)mem, "cpu_model", model,
                     "kernel", u.release);
}

void tly_h_utc_date(time_t t, char buf[32])
{
    strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
}

/* The source tree's commit and whether it has changes, when git can say. */
void tly_h_git_state(json_t *doc)
{
    char *rev[] = {"git", "-C", TALLY_SOURCE_DIR, "rev-parse", "HEAD", NULL};
    char *st[] = {"git", "-C", TALLY_SOURCE_DIR, "status", "--porcelain", "--untracked-files=no", NULL};
    struct tly_h_child c;
    json_t *commit = json_null(), *dirty = json_null();
    if (tly_h_spawn("git", rev, NULL, 0, true, &c) == 0 && WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0 && c.out) {
        c.out[strcspn(c.out, "\n")] = '\0';
        commit = json_string(c.out);
        struct tly_h_child d;
        if (tly_h_spawn("git", st, NULL, 0, true, &d) == 0 && WIFEXITED(d.status) && WEXITSTATUS(d.status) == 0)
            dirty = json_boolean(d.out && d.out[0]);
        tly_h_child_free(&d);
    }
    tly_h_child_free(&c);
    json_object_set_new(doc, "git_commit", commit);
    json_object_set_new(doc, "git_dirty", dirty);
}
