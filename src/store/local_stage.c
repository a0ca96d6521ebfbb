/*
 * A whole array written beside the local store's root and swapped in, so that an overwrite never
 * shows a mix of old and new chunks: the new array is built in ".NAME.tally-new-PID-N" next to the
 * root, and published with one renameat2(RENAME_EXCHANGE) (readers see the old array or the new one),
 * after which the old one, now under the staging name, is removed. Where the filesystem has no
 * exchange, the old array is renamed aside to ".NAME.tally-old-PID-N" first and the new one renamed
 * into place: an interruption between the two leaves no array at the root, which the probe reports
 * as incomplete and gc repairs by putting the old one back. A new array (nothing at the root) is one
 * plain rename, which also replaces an empty directory and never a full one.
 *
 * gc removes what interrupted writes left, but only of processes that no longer run: temporary files
 * under the root, staging directories beside it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tally/error.h"
#include "store/local.h"

bool tly__local_no_exchange;

static atomic_uint stage_seq;

/* A staging name keeps at most this much of the root's name, so that it stays under NAME_MAX. */
#define NAME_KEPT 100

/* Whether the process @p pid runs (so its leftovers are no leftovers yet). */
static bool alive(long pid)
{
    return pid > 0 && pid <= INT_MAX && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

/* The PID in "<digits>-..." at @p s, or -1. */
static long pid_at(const char *s)
{
    char *end;
    if (*s < '0' || *s > '9')
        return -1;
    long pid = strtol(s, &end, 10);
    return *end == '-' ? pid : -1;
}

/*
 * The root's parent directory (parent_fd) and its last component (name), from the real path of the
 * root or, when it does not exist yet, of its parent (made first with @p create). 1 when there is no
 * parent to look in (the root's parent is missing and not to be made).
 */
static int resolve(struct tly__local *st, bool create)
{
    if (st->parent_fd >= 0)
        return 0;
    char *path = realpath(st->root, NULL), *parent = NULL;
    const char *name = NULL;
    if (path == NULL && errno != ENOENT)
        return tly_fail_errno("%s: resolving its path", st->root);
    if (path == NULL) {
        /* the root does not exist: its parent's real path, and its own last component */
        char *given = strdup(st->root);
        if (given == NULL)
            return tly_fail(-ENOMEM, "out of memory");
        char *slash = strrchr(given, '/');
        const char *last = slash ? slash + 1 : given;
        if (slash == given)
            parent = strdup("/");
        else if (slash)
            *slash = '\0', parent = strdup(given);
        else
            parent = strdup(".");
        int err = parent ? 0 : -ENOMEM;
        if (!err && create)
            err = tly__local_mkdirs(parent);
        char *real = err ? NULL : realpath(parent, NULL);
        if (!err && real == NULL)
            err = errno == ENOENT && !create ? 1 : -errno;
        if (!err && asprintf(&path, "%s%s%s", real, strcmp(real, "/") ? "/" : "", last) < 0)
            path = NULL, err = -ENOMEM;
        free(real);
        free(given);
        free(parent);
        if (err == 1)
            return 1;
        if (err)
            return tly_fail(err, "%s: cannot make or resolve its parent directory: %s", st->root, strerror(-err));
    }
    char *slash = strrchr(path, '/');
    name = slash + 1;
    if (*name == '\0' || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
        free(path);
        return tly_fail(TLY_EUSAGE, "%s: an array needs a directory of its own, not the filesystem's root", st->root);
    }
    st->name = strdup(name);
    *(slash == path ? slash + 1 : slash) = '\0';
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int e = errno;
    free(path);
    if (st->name == NULL || fd < 0) {
        e = st->name == NULL ? ENOMEM : e;
        if (fd >= 0)
            close(fd);
        free(st->name);
        st->name = NULL;
        errno = e;
        return tly_fail_errno("%s: opening its parent directory", st->root);
    }
    st->parent_fd = fd;
    return 0;
}

/* A leftover of ours beside the root: ".NAME.tally-new-PID-N" or ".NAME.tally-old-PID-N". 'n' or 'o'
 * for which, with its PID; 0 for any other entry. */
static char leftover(const struct tly__local *st, const char *entry, long *pid)
{
    size_t k = strlen(st->name) < NAME_KEPT ? strlen(st->name) : NAME_KEPT;
    if (entry[0] != '.' || strncmp(entry + 1, st->name, k) != 0 || strncmp(entry + 1 + k, ".tally-", 7) != 0)
        return 0;
    const char *kind = entry + 1 + k + 7;
    if (strncmp(kind, "new-", 4) != 0 && strncmp(kind, "old-", 4) != 0)
        return 0;
    *pid = pid_at(kind + 4);
    return *pid > 0 ? kind[0] : 0;
}

/* Whether an old array set aside by an interrupted two-step swap lies beside the (missing) root. */
static bool set_aside(struct tly__local *st)
{
    int fd = openat(st->parent_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    bool found = false;
    long pid;
    for (struct dirent *e; d && !found && (e = readdir(d)) != NULL;)
        found = leftover(st, e->d_name, &pid) == 'o';
    if (d)
        closedir(d);
    else if (fd >= 0)
        close(fd);
    return found;
}

/* 1 when @p key is a regular file under @p dir, 0 when it is absent, or an error naming it. */
static int meta_there(struct tly__local *st, int dir, const char *key)
{
    struct stat sb;
    if (fstatat(dir, key, &sb, AT_SYMLINK_NOFOLLOW) != 0)
        return errno == ENOENT ? 0 : tly_fail_errno("%s/%s: stat", st->root, key);
    if (S_ISLNK(sb.st_mode))
        return tly_fail(TLY_EFORMAT, "%s/%s: a symbolic link (the store opens nothing outside its root)", st->root,
                        key);
    if (!S_ISREG(sb.st_mode))
        return tly_fail(TLY_EFORMAT, "%s/%s: not a regular file", st->root, key);
    return 1;
}

int tly__local_probe(struct tly_store *base, enum tly_store_state *out)
{
    struct tly__local *st = tly__local_of(base);
    int dir = tly__local_root(st, false);
    if (dir == -ENOENT) {
        int err = resolve(st, false);
        if (err < 0)
            return err;
        *out = err == 0 && set_aside(st) ? TLY_STORE_INCOMPLETE : TLY_STORE_ABSENT;
        tly_errclear();
        return 0;
    }
    if (dir < 0)
        return tly_fail(dir, "%s: %s", st->root, strerror(-dir));
    int r = meta_there(st, dir, "zarr.json");
    if (r == 0)
        r = meta_there(st, dir, ".zarray");
    if (r < 0)
        return r;
    if (r == 1) {
        *out = TLY_STORE_ARRAY;
        return 0;
    }
    int fd = openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        int err = tly_fail_errno("%s: listing it", st->root);
        if (fd >= 0)
            close(fd);
        return err;
    }
    bool empty = true;
    for (struct dirent *e; empty && (e = readdir(d)) != NULL;)
        empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
    closedir(d);
    *out = empty ? TLY_STORE_ABSENT : TLY_STORE_OTHER;
    return 0;
}

int tly__local_stage(struct tly_store *base, bool replace)
{
    struct tly__local *st = tly__local_of(base);
    if (st->stage_fd >= 0)
        return tly_fail(TLY_EUSAGE, "%s: an array is already being staged", st->root);
    int err = resolve(st, true);
    if (err)
        return err;
    if (asprintf(&st->stage_name, ".%.*s.tally-new-%d-%u", NAME_KEPT, st->name, (int)getpid(),
                 atomic_fetch_add(&stage_seq, 1)) < 0) {
        st->stage_name = NULL;
        return tly_fail(-ENOMEM, "out of memory");
    }
    if (mkdirat(st->parent_fd, st->stage_name, 0777) != 0 ||
        (st->stage_fd = openat(st->parent_fd, st->stage_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
        err = tly_fail_errno("%s: cannot make the directory the new array is written in, %s", st->root, st->stage_name);
        unlinkat(st->parent_fd, st->stage_name, AT_REMOVEDIR);
        free(st->stage_name);
        st->stage_name = NULL;
        return err;
    }
    st->replace = replace;
    return 0;
}

/* The old array aside, the new one into its place; if the second rename fails, the old one back. */
static int two_step(struct tly__local *st, char *old, size_t cap)
{
    snprintf(old, cap, ".%.*s.tally-old-%d-%u", NAME_KEPT, st->name, (int)getpid(), atomic_fetch_add(&stage_seq, 1));
    if (renameat(st->parent_fd, st->name, st->parent_fd, old) != 0)
        return -1;
    if (renameat(st->parent_fd, st->stage_name, st->parent_fd, st->name) == 0)
        return 0;
    int e = errno;
    renameat(st->parent_fd, old, st->parent_fd, st->name);
    errno = e;
    return -1;
}

int tly__local_publish(struct tly_store *base)
{
    struct tly__local *st = tly__local_of(base);
    if (st->stage_fd < 0)
        return 0;
    if (st->base.opts.fsync && fsync(st->stage_fd) != 0)
        return tly_fail_errno("%s: fsync the new array's directory", st->root);
    char old[NAME_MAX + 1];
    const char *gone = NULL; /* where the old array is once the new one is in place */
    int r;
    if (!st->replace) {
        r = renameat(st->parent_fd, st->stage_name, st->parent_fd, st->name);
    } else {
        r = tly__local_no_exchange ? (errno = EINVAL, -1)
                                   : renameat2(st->parent_fd, st->stage_name, st->parent_fd, st->name, RENAME_EXCHANGE);
        if (r == 0)
            gone = st->stage_name;
        else if (errno == ENOENT) /* the old array went meanwhile: nothing to swap with */
            r = renameat(st->parent_fd, st->stage_name, st->parent_fd, st->name);
        else if (errno == EINVAL || errno == ENOSYS || errno == ENOTSUP)
            gone = (r = two_step(st, old, sizeof old)) == 0 ? old : NULL;
    }
    if (r != 0)
        return errno == EEXIST || errno == ENOTEMPTY
                   ? tly_fail(TLY_EEXISTS, "%s: something was written there meanwhile: the new array is not published",
                              st->root)
                   : tly_fail_errno("%s: publishing the new array (rename from %s)", st->root, st->stage_name);
    if (st->base.opts.fsync && fsync(st->parent_fd) != 0)
        return tly_fail_errno("%s: fsync its parent directory", st->root);
    pthread_mutex_lock(&st->mu);
    if (st->root_fd >= 0)
        close(st->root_fd);
    st->root_fd = st->stage_fd;
    st->stage_fd = -1;
    pthread_mutex_unlock(&st->mu);
    if (gone)
        tly__local_rmtree(st->parent_fd, gone); /* what fails here is gc's */
    free(st->stage_name);
    st->stage_name = NULL;
    return 0;
}

void tly__local_discard(struct tly_store *base)
{
    struct tly__local *st = tly__local_of(base);
    if (st->stage_fd < 0)
        return;
    close(st->stage_fd);
    st->stage_fd = -1;
    tly__local_rmtree(st->parent_fd, st->stage_name);
    free(st->stage_name);
    st->stage_name = NULL;
}

/* Temporary files of writers that no longer run (".<name>.tmp-<pid>-<n>") under @p dir, at any depth. */
static void gc_tmp(int dir, uint64_t *removed)
{
    int fd = openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        return;
    }
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        const char *tmp = e->d_name[0] == '.' ? strstr(e->d_name, ".tmp-") : NULL;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (e->d_type == DT_DIR || e->d_type == DT_UNKNOWN) {
            int sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0) {
                gc_tmp(sub, removed);
                close(sub);
                continue;
            }
        }
        if (tmp && !alive(pid_at(tmp + 5)) && unlinkat(dirfd(d), e->d_name, 0) == 0)
            (*removed)++;
    }
    closedir(d);
}

int tly__local_gc(struct tly_store *base, uint64_t *removed)
{
    struct tly__local *st = tly__local_of(base);
    int err = resolve(st, false);
    if (err)
        return err < 0 ? err : 0;
    int fd = openat(st->parent_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        err = tly_fail_errno("%s: listing its parent directory", st->root);
        if (fd >= 0)
            close(fd);
        return err;
    }
    long pid;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        char kind = leftover(st, e->d_name, &pid);
        if (kind == 0 || alive(pid) || (st->stage_name && strcmp(e->d_name, st->stage_name) == 0))
            continue;
        struct stat sb;
        /* the old array of an interrupted two-step swap goes back where it was */
        if (kind == 'o' && fstatat(st->parent_fd, st->name, &sb, AT_SYMLINK_NOFOLLOW) != 0 && errno == ENOENT &&
            renameat(st->parent_fd, e->d_name, st->parent_fd, st->name) == 0)
            (*removed)++;
        else if (tly__local_rmtree(st->parent_fd, e->d_name) == 0)
            (*removed)++;
    }
    closedir(d);
    int root = tly__local_root(st, false);
    if (root >= 0)
        gc_tmp(root, removed);
    tly_errclear();
    return 0;
}
