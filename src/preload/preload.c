/*
 * libtally-preload.so: start-up and shut-down of the tracker in a process not built with tally
 * (docs/impl-protocol.md). src/mem's constructor has installed the hooks (priority 101); this one
 * reads the settings, learns the process's shared objects, and opens the whole-process window;
 * the destructor closes every window still open (windows.c).
 *
 * Whatever goes wrong here (a bad setting, an output directory that does not exist, a process whose
 * malloc is not jemalloc's) is said on stderr or in the result, never in the program's behaviour
 * or exit status.
 */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "preload/preload.h"
#include "preload/stacks.h"
#include "tally/error.h"
#include "tally/opts.h"

_Atomic size_t tly__pl_large = SIZE_MAX;
_Atomic size_t tly__pl_copy_min = SIZE_MAX;
_Atomic size_t tly__pl_mmap_min = SIZE_MAX;
size_t tly__pl_settings[3];
uint64_t tly__pl_array_bytes;
char tly__pl_exe[PATH_MAX];

static char out_path[PATH_MAX];
static pid_t root_pid;
static bool out_existed;
static struct stat out_at_start;
static char reason[256];

const char *tly__pl_out(void)
{
    return out_path[0] ? out_path : NULL;
}

const char *tly__pl_untracked_reason(void)
{
    return tly_mem_tracking() ? NULL : reason;
}

/*
 * Who writes an unmarked (whole-process) result: only the run's first process (TALLY_PROFILE_ROOT,
 * set by the first preload, survives exec in place), and only when no other process (a child that
 * ran the marks) has written the file since this one started. A child, or a fork, writes only the
 * result of marks it sent itself.
 */
bool tly__pl_may_write_unmarked(void)
{
    if (getpid() != root_pid || out_path[0] == '\0')
        return false;
    struct stat st;
    if (stat(out_path, &st) != 0)
        return true;
    return out_existed && st.st_dev == out_at_start.st_dev && st.st_ino == out_at_start.st_ino &&
           st.st_mtim.tv_sec == out_at_start.st_mtim.tv_sec && st.st_mtim.tv_nsec == out_at_start.st_mtim.tv_nsec;
}

static uint64_t setting(const char *env, uint64_t lo, uint64_t hi, uint64_t dflt)
{
    const char *v = tly__getenv(env);
    uint64_t x;
    if (v == NULL || *v == '\0')
        return dflt;
    if (tly_size_parse_range(v, lo, hi, &x) == 0)
        return x;
    fprintf(stderr, "tally-preload: %s: %s; using %llu\n", env, tly_errmsg(), (unsigned long long)dflt);
    return dflt;
}

static void find_root(void)
{
    const char *r = tly__getenv("TALLY_PROFILE_ROOT");
    long long pid = r ? strtoll(r, NULL, 10) : 0;
    if (pid > 0) {
        root_pid = (pid_t)pid;
        return;
    }
    char num[24];
    root_pid = getpid();
    snprintf(num, sizeof num, "%d", (int)root_pid);
    setenv("TALLY_PROFILE_ROOT", num, 1);
}

static void find_out(void)
{
    const char *out = tly__getenv("TALLY_PROFILE_OUT");
    if (out == NULL || *out == '\0')
        return;
    if (strlen(out) >= sizeof out_path - 8) {
        fprintf(stderr, "tally-preload: TALLY_PROFILE_OUT is longer than %zu bytes; no result will be written\n",
                sizeof out_path - 8);
        return;
    }
    /* absolute, in case the program changes directory before the window closes */
    size_t at = 0;
    if (out[0] != '/' && getcwd(out_path, sizeof out_path) &&
        strlen(out_path) + strlen(out) + 2 < sizeof out_path - 8) {
        at = strlen(out_path);
        out_path[at++] = '/';
    }
    snprintf(out_path + at, sizeof out_path - at, "%s", out);
    out_existed = stat(out_path, &out_at_start) == 0;
    if (getpid() != root_pid)
        return; /* the first process has said what there is to say */
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", out);
    const char *d = dirname(dir);
    if (access(d, W_OK | X_OK) != 0)
        fprintf(stderr,
                "tally-preload: TALLY_PROFILE_OUT=%s: cannot write in directory %s: %s; the result will not be "
                "written (the program runs as usual)\n",
                out, d, strerror(errno));
}

__attribute__((constructor(102))) static void tly__preload_ctor(void)
{
    find_root();
    ssize_t k = readlink("/proc/self/exe", tly__pl_exe, sizeof tly__pl_exe - 1);
    tly__pl_exe[k > 0 ? k : 0] = '\0';
    tly__interpose_boot();
    tly__markfd_boot();
    tly__release_boot();
    tly__exec_boot();

    tly__pl_settings[0] = setting("TALLY_PROFILE_LARGE", TLY_MEM_LARGE, (uint64_t)1 << 40, TLY_MEM_LARGE);
    tly__pl_settings[1] = setting("TALLY_PROFILE_COPY_MIN", 1, (uint64_t)1 << 40, 64 * 1024);
    tly__pl_settings[2] = setting("TALLY_PROFILE_MMAP_MIN", 4096, (uint64_t)1 << 40, 1024 * 1024);
    tly__pl_array_bytes = setting("TALLY_PROFILE_ARRAY_BYTES", 0, (uint64_t)1 << 50, 0);
    find_out();
    tly__proc_boot();

    tly__stacks_boot(); /* before the library slots: a large block's slot comes with its stack */
    bool found_jemalloc = tly__obj_boot() == 0;
    if (!tly_mem_tracking()) {
        /* src/mem's probe says the hooks never ran: here that means malloc is someone else's */
        const char *why = tly_mem_untracked_reason();
        if (!found_jemalloc || strstr(why, "never ran"))
            snprintf(reason, sizeof reason,
                     "malloc is not jemalloc's: LD_PRELOAD must name libjemalloc.so.2 too, before libc "
                     "(tally profile gives libtally-preload.so, then libjemalloc.so.2; a program with an "
                     "allocator of its own cannot be tracked)");
        else
            snprintf(reason, sizeof reason, "%s", why);
    }
    atomic_store(&tly__pl_large, tly__pl_settings[0]);
    atomic_store(&tly__pl_copy_min, tly__pl_settings[1]);
    if (tly_mem_tracking()) /* a mapping counts in the live bytes, which only mean something tracked */
        atomic_store(&tly__pl_mmap_min, tly__pl_settings[2]);
    tly__marks_boot();
}

__attribute__((destructor)) static void tly__preload_dtor(void)
{
    tly__win_exit("exit", true);
}
