/*
 * exec*: the process's image is about to go, and its destructors will not run. Its open windows are
 * written first (windows.c, "ended": "exec"); then the exec is libc's. The new image loads the
 * preload again (LD_PRELOAD is in the environment it is given, unless the program took it out) and
 * opens a whole-process window of its own, a new file (same pid, a new start time).
 *
 * The functions are found at start-up: an exec in a vfork's child (it shares its parent's memory)
 * must not be the first to call dlsym, which may allocate. posix_spawn, system and popen exec inside
 * libc, out of reach: their child has not run the preload's code, so has no windows to write.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <unistd.h>

#include "preload/preload.h"

typedef int (*execve_fn)(const char *, char *const[], char *const[]);
typedef int (*execv_fn)(const char *, char *const[]);
typedef int (*fexecve_fn)(int, char *const[], char *const[]);
typedef int (*execveat_fn)(int, const char *, char *const[], char *const[], int);

static execve_fn real_execve, real_execvpe;
static execv_fn real_execv, real_execvp;
static fexecve_fn real_fexecve;
static execveat_fn real_execveat;

void tly__exec_boot(void)
{
    real_execve = (execve_fn)dlsym(RTLD_NEXT, "execve");
    real_execvpe = (execve_fn)dlsym(RTLD_NEXT, "execvpe");
    real_execv = (execv_fn)dlsym(RTLD_NEXT, "execv");
    real_execvp = (execv_fn)dlsym(RTLD_NEXT, "execvp");
    real_fexecve = (fexecve_fn)dlsym(RTLD_NEXT, "fexecve");
    real_execveat = (execveat_fn)dlsym(RTLD_NEXT, "execveat");
}

static int missing(void)
{
    errno = ENOSYS; /* only before the constructor, or a libc without the function */
    return -1;
}

int execve(const char *path, char *const argv[], char *const envp[])
{
    tly__win_exec();
    return real_execve ? real_execve(path, argv, envp) : missing();
}

int execvpe(const char *file, char *const argv[], char *const envp[])
{
    tly__win_exec();
    return real_execvpe ? real_execvpe(file, argv, envp) : missing();
}

int execv(const char *path, char *const argv[])
{
    tly__win_exec();
    return real_execv ? real_execv(path, argv) : missing();
}

int execvp(const char *file, char *const argv[])
{
    tly__win_exec();
    return real_execvp ? real_execvp(file, argv) : missing();
}

int fexecve(int fd, char *const argv[], char *const envp[])
{
    tly__win_exec();
    return real_fexecve ? real_fexecve(fd, argv, envp) : missing();
}

int execveat(int dirfd, const char *path, char *const argv[], char *const envp[], int flags)
{
    tly__win_exec();
    return real_execveat ? real_execveat(dirfd, path, argv, envp, flags) : missing();
}

/* The execl family's arguments after @p arg, up to their NULL: how many (arg and the NULL included). */
static size_t count(const char *arg, va_list ap)
{
    size_t n = 2;
    if (arg == NULL)
        return 1;
    while (va_arg(ap, const char *) != NULL)
        n++;
    return n;
}

/* argv of @p n entries (the last NULL) from @p arg and @p ap. */
static void fill(const char **argv, size_t n, const char *arg, va_list ap)
{
    argv[0] = arg;
    for (size_t i = 1; i < n; i++)
        argv[i] = va_arg(ap, const char *);
}

int execl(const char *path, const char *arg, ...)
{
    va_list ap;
    va_start(ap, arg);
    size_t n = count(arg, ap);
    va_end(ap);
    const char *argv[n];
    va_start(ap, arg);
    fill(argv, n, arg, ap);
    va_end(ap);
    tly__win_exec();
    return real_execv ? real_execv(path, (char *const *)argv) : missing();
}

int execlp(const char *file, const char *arg, ...)
{
    va_list ap;
    va_start(ap, arg);
    size_t n = count(arg, ap);
    va_end(ap);
    const char *argv[n];
    va_start(ap, arg);
    fill(argv, n, arg, ap);
    va_end(ap);
    tly__win_exec();
    return real_execvp ? real_execvp(file, (char *const *)argv) : missing();
}

int execle(const char *path, const char *arg, ...)
{
    va_list ap;
    va_start(ap, arg);
    size_t n = count(arg, ap);
    va_end(ap);
    const char *argv[n];
    va_start(ap, arg);
    fill(argv, n, arg, ap);
    char *const *envp = va_arg(ap, char *const *); /* after the NULL */
    va_end(ap);
    tly__win_exec();
    return real_execve ? real_execve(path, (char *const *)argv, envp) : missing();
}
