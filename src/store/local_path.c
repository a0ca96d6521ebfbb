/*
 * Where a key of the local store is, without leaving the root: the key's directory is walked from
 * the root's descriptor refusing every symbolic link (keys are already checked: no "..", no absolute
 * path), so a link planted in an array can neither show a file outside as a chunk nor receive the
 * chunks of a write. Only regular files are opened for reading, with O_NONBLOCK so a FIFO or a device
 * is refused at once instead of blocking the read forever.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "tally/error.h"
#include "store/local.h"

/* Cleared once openat2 answers ENOSYS (a kernel before 5.6): the walk one component at a time then. */
static atomic_bool have_openat2 = true;

static int symlink_refused(struct tly__local *st, const char *key)
{
    return tly_fail(TLY_EFORMAT, "%s/%s: a symbolic link is in the way (the store opens nothing outside its root)",
                    st->root, key);
}

/* One directory component @p comp under @p dir, made first with @p create: a new descriptor, or -errno
 * (-ELOOP for a symbolic link). */
static int open_component(int dir, const char *comp, bool create)
{
    if (create && mkdirat(dir, comp, 0777) != 0 && errno != EEXIST)
        return -errno;
    int fd = openat(dir, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0)
        return fd;
    int e = errno;
    struct stat sb;
    /* O_NOFOLLOW with O_DIRECTORY says ENOTDIR for a link: tell a link from a file */
    if (e == ENOTDIR && fstatat(dir, comp, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(sb.st_mode))
        e = ELOOP;
    return -e;
}

/* The directory path @p path (no trailing slash) under @p dir, one component at a time. */
static int walk(int dir, const char *path, bool create)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n >= sizeof buf)
        return -ENAMETOOLONG;
    memcpy(buf, path, n + 1); /* a key, not payload */
    int cur = dir;
    for (char *p = buf; p;) {
        char *slash = strchr(p, '/');
        if (slash)
            *slash = '\0';
        int fd = open_component(cur, p, create);
        if (cur != dir)
            close(cur);
        if (fd < 0)
            return fd;
        cur = fd;
        p = slash ? slash + 1 : NULL;
    }
    return cur;
}

/* The directory path @p path under @p dir in one call where the kernel has openat2, else walk(). */
static int open_beneath(int dir, const char *path)
{
    if (atomic_load(&have_openat2)) {
        struct open_how how = {
            .flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
            .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
        };
        long fd = syscall(SYS_openat2, dir, path, &how, sizeof how);
        if (fd >= 0)
            return (int)fd;
        if (errno != ENOSYS)
            return -errno;
        atomic_store(&have_openat2, false);
    }
    return walk(dir, path, false);
}

int tly__local_key_dir(struct tly__local *st, int dir, const char *key, bool create, int *pfd, const char **name)
{
    const char *slash = strrchr(key, '/');
    if (slash == NULL) {
        *pfd = dir;
        *name = key;
        return 0;
    }
    char path[4096];
    size_t n = (size_t)(slash - key);
    if (n >= sizeof path)
        return tly_fail(-ENAMETOOLONG, "%s/%s: key too long", st->root, key);
    memcpy(path, key, n); /* a key, not payload */
    path[n] = '\0';
    int fd = create ? walk(dir, path, true) : open_beneath(dir, path);
    if (fd == -ENOENT || fd == -ENOTDIR)
        return tly_fail(TLY_ENOTFOUND, "%s/%s: not found", st->root, key);
    if (fd == -ELOOP || fd == -EXDEV)
        return symlink_refused(st, key);
    if (fd < 0)
        return tly_fail(fd, "%s/%s: %s its directory: %s", st->root, key, create ? "cannot create" : "cannot open",
                        strerror(-fd));
    *pfd = fd;
    *name = slash + 1;
    return 0;
}

int tly__local_key_at(struct tly__local *st, const char *key, int *dir, int *pfd, const char **name)
{
    *dir = tly__local_dir(st, false);
    if (*dir == -ENOENT)
        return tly_fail(TLY_ENOTFOUND, "%s: no such directory", st->root);
    if (*dir < 0)
        return tly_fail(*dir, "%s: %s", st->root, strerror(-*dir));
    return tly__local_key_dir(st, *dir, key, false, pfd, name);
}

int tly__local_open_key(struct tly__local *st, const char *key, int *fd, uint64_t *size)
{
    int dir, pfd;
    const char *name;
    int err = tly__local_key_at(st, key, &dir, &pfd, &name);
    if (err)
        return err;
    *fd = openat(pfd, name, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
    int e = errno;
    if (pfd != dir)
        close(pfd);
    if (*fd < 0) {
        if (e == ENOENT || e == ENOTDIR)
            return tly_fail(TLY_ENOTFOUND, "%s/%s: not found", st->root, key);
        if (e == ELOOP)
            return symlink_refused(st, key);
        errno = e;
        return tly_fail_errno("%s/%s: open", st->root, key);
    }
    struct stat sb;
    if (fstat(*fd, &sb) != 0)
        err = tly_fail_errno("%s/%s: stat", st->root, key);
    else if (!S_ISREG(sb.st_mode))
        err = tly_fail(TLY_EFORMAT, "%s/%s: not a regular file", st->root, key);
    if (err) {
        close(*fd);
        return err;
    }
    if (size)
        *size = (uint64_t)sb.st_size;
    return 0;
}

int tly__local_rmtree(int dir, const char *name)
{
    int fd = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        if (errno != ENOTDIR && errno != ELOOP)
            return -errno;
        return unlinkat(dir, name, 0) == 0 || errno == ENOENT ? 0 : -errno; /* a file or a link */
    }
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        int e = errno;
        close(fd);
        return -e;
    }
    int err = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        int r = e->d_type == DT_DIR || e->d_type == DT_UNKNOWN ? tly__local_rmtree(fd, e->d_name)
                                                               : (unlinkat(fd, e->d_name, 0) == 0 ? 0 : -errno);
        if (r && r != -ENOENT && !err)
            err = r;
    }
    closedir(d);
    if (unlinkat(dir, name, AT_REMOVEDIR) != 0 && errno != ENOENT && !err)
        err = -errno;
    return err;
}
