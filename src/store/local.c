/*
 * The local filesystem store.
 *
 * Everything is opened relative to the root directory's descriptor, and keys are checked before
 * use, so no key reaches outside the array. A write goes to a temporary file beside its target
 * (".<name>.tmp-<pid>-<n>") and is renamed over it on commit, so an error or a crash never leaves a
 * torn chunk visible; with fsync the file and then its directory are synced. Data moves with
 * pwritev/preadv straight between the file and the caller's memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tally/error.h"
#include "store/internal.h"

#define IOV_BATCH 1024 /* IOV_MAX on Linux */

struct local {
    struct tly_store base;
    char *root;
    int root_fd; /* -1 until the root exists */
    pthread_mutex_t mu;
};

struct local_writer {
    struct tly_writer base;
    struct local *st;
    int fd;
    uint64_t off;
    char *key;
    char *tmp;
};

static atomic_uint tmp_seq;

static struct local *L(struct tly_store *st)
{
    return (struct local *)st;
}

/* mkdir -p for an absolute or relative path. */
static int mkdirs(const char *path)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return -ENAMETOOLONG;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/* The root's descriptor; with @p create, make the directory first. -ENOENT when it is missing. */
static int root_fd(struct local *st, bool create)
{
    pthread_mutex_lock(&st->mu);
    int fd = st->root_fd;
    if (fd < 0) {
        int err = create ? mkdirs(st->root) : 0;
        if (err == 0) {
            fd = open(st->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            err = fd < 0 ? -errno : 0;
        }
        if (err)
            fd = err;
        else
            st->root_fd = fd;
    }
    pthread_mutex_unlock(&st->mu);
    return fd;
}

/* Create the directories of @p key below the root (for "c/0/1": "c" and "c/0"). */
static int make_parents(int dirfd, const char *key)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", key) >= (int)sizeof buf)
        return -ENAMETOOLONG;
    for (char *p = strchr(buf, '/'); p; p = strchr(p + 1, '/')) {
        *p = '\0';
        if (mkdirat(dirfd, buf, 0777) != 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    return 0;
}

static int open_key(struct local *st, const char *key, int *fd)
{
    int dir = root_fd(st, false);
    if (dir == -ENOENT)
        return tly_fail(TLY_ENOTFOUND, "%s: no such directory", st->root);
    if (dir < 0)
        return tly_fail(dir, "%s: %s", st->root, strerror(-dir));
    *fd = openat(dir, key, O_RDONLY | O_CLOEXEC);
    if (*fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return tly_fail(TLY_ENOTFOUND, "%s/%s: not found", st->root, key);
        return tly_fail_errno("%s/%s: open", st->root, key);
    }
    return 0;
}

static int local_size(struct tly_store *base, const char *key, uint64_t *out)
{
    struct local *st = L(base);
    int dir = root_fd(st, false);
    if (dir == -ENOENT)
        return tly_fail(TLY_ENOTFOUND, "%s: no such directory", st->root);
    if (dir < 0)
        return tly_fail(dir, "%s: %s", st->root, strerror(-dir));
    struct stat sb;
    if (fstatat(dir, key, &sb, 0) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return tly_fail(TLY_ENOTFOUND, "%s/%s: not found", st->root, key);
        return tly_fail_errno("%s/%s: stat", st->root, key);
    }
    if (!S_ISREG(sb.st_mode))
        return tly_fail(TLY_EFORMAT, "%s/%s: not a regular file", st->root, key);
    *out = (uint64_t)sb.st_size;
    return 0;
}

/* Up to IOV_BATCH pieces from position (i, done) of @p iov, into @p batch; returns how many. */
static int iov_batch(const struct iovec *iov, int niov, int i, size_t done, struct iovec *batch)
{
    int k = 0;
    for (; k < IOV_BATCH && i + k < niov; k++)
        batch[k] = iov[i + k];
    batch[0].iov_base = (char *)batch[0].iov_base + done;
    batch[0].iov_len -= done;
    return k;
}

/* Move position (i, done) on by @p n bytes, past any empty pieces. */
static void iov_advance(const struct iovec *iov, int niov, int *i, size_t *done, size_t n)
{
    while (*i < niov) {
        size_t room = iov[*i].iov_len - *done;
        if (n < room) {
            *done += n;
            return;
        }
        n -= room;
        *done = 0;
        (*i)++;
    }
}

/* Fill every iovec from @p fd at @p off: preadv in batches, resuming after short reads. */
static int read_all(int fd, uint64_t off, const struct iovec *iov, int niov, const char *root, const char *key)
{
    struct iovec batch[IOV_BATCH];
    int i = 0;
    size_t done = 0;
    iov_advance(iov, niov, &i, &done, 0);
    while (i < niov) {
        ssize_t n = preadv(fd, batch, iov_batch(iov, niov, i, done, batch), (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return tly_fail_errno("%s/%s: read at %llu", root, key, (unsigned long long)off);
        if (n == 0)
            return tly_fail(TLY_EFORMAT, "%s/%s: ends at byte %llu, before the data expected (truncated)", root, key,
                            (unsigned long long)off);
        off += (uint64_t)n;
        iov_advance(iov, niov, &i, &done, (size_t)n);
    }
    return 0;
}

static int local_readv(struct tly_store *base, const char *key, uint64_t offset, const struct iovec *iov, int niov)
{
    struct local *st = L(base);
    int fd, err = open_key(st, key, &fd);
    if (err)
        return err;
    err = read_all(fd, offset, iov, niov, st->root, key);
    close(fd);
    return err;
}

static int local_read_stream(struct tly_store *base, const char *key, void *buf, size_t cap, tly_store_sink_fn sink,
                             void *arg)
{
    struct local *st = L(base);
    int fd, err = open_key(st, key, &fd);
    if (err)
        return err;
    for (uint64_t off = 0; !err;) {
        ssize_t n = pread(fd, buf, cap, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            err = tly_fail_errno("%s/%s: read at %llu", st->root, key, (unsigned long long)off);
        else if (n == 0)
            break;
        else
            err = sink(arg, buf, (size_t)n);
        off += n > 0 ? (uint64_t)n : 0;
    }
    close(fd);
    return err;
}

static int local_get(struct tly_store *base, const char *key, char **data, size_t *n)
{
    struct local *st = L(base);
    int fd, err = open_key(st, key, &fd);
    if (err)
        return err;
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        err = tly_fail_errno("%s/%s: stat", st->root, key);
        close(fd);
        return err;
    }
    char *buf = malloc((size_t)sb.st_size + 1);
    if (buf == NULL) {
        close(fd);
        return tly_fail(-ENOMEM, "%s/%s: out of memory for %lld bytes", st->root, key, (long long)sb.st_size);
    }
    struct iovec iov = {buf, (size_t)sb.st_size};
    err = read_all(fd, 0, &iov, 1, st->root, key);
    close(fd);
    if (err) {
        free(buf);
        return err;
    }
    buf[sb.st_size] = '\0';
    *data = buf;
    *n = (size_t)sb.st_size;
    return 0;
}

static int writer_writev(struct tly_writer *base, const struct iovec *iov, int niov)
{
    struct local_writer *w = (struct local_writer *)base;
    struct iovec batch[IOV_BATCH];
    int i = 0;
    size_t done = 0;
    iov_advance(iov, niov, &i, &done, 0);
    while (i < niov) {
        ssize_t n = pwritev(w->fd, batch, iov_batch(iov, niov, i, done, batch), (off_t)w->off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return tly_fail_errno("%s/%s: write at %llu", w->st->root, w->key, (unsigned long long)w->off);
        w->off += (uint64_t)n;
        iov_advance(iov, niov, &i, &done, (size_t)n);
    }
    return 0;
}

static int writer_patch(struct tly_writer *base, uint64_t offset, const void *data, size_t n)
{
    struct local_writer *w = (struct local_writer *)base;
    if (offset > w->off || n > w->off - offset)
        return tly_fail(TLY_EUSAGE, "%s/%s: patch of bytes %llu..%llu past the %llu written", w->st->root, w->key,
                        (unsigned long long)offset, (unsigned long long)(offset + n), (unsigned long long)w->off);
    for (size_t done = 0; done < n;) {
        ssize_t k = pwrite(w->fd, (const char *)data + done, n - done, (off_t)(offset + done));
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return tly_fail_errno("%s/%s: write at %llu", w->st->root, w->key, (unsigned long long)(offset + done));
        done += (size_t)k;
    }
    return 0;
}

static void writer_free(struct local_writer *w)
{
    free(w->key);
    free(w->tmp);
    free(w);
}

static void writer_abort(struct tly_writer *base)
{
    struct local_writer *w = (struct local_writer *)base;
    if (w->fd >= 0)
        close(w->fd);
    unlinkat(w->st->root_fd, w->tmp, 0);
    writer_free(w);
}

static int sync_parent(struct local *st, const char *key)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", key);
    char *slash = strrchr(buf, '/');
    int fd = slash ? (*slash = '\0', openat(st->root_fd, buf, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) : dup(st->root_fd);
    if (fd < 0)
        return tly_fail_errno("%s/%s: open directory for fsync", st->root, key);
    int err = fsync(fd) != 0 ? tly_fail_errno("%s/%s: fsync directory", st->root, key) : 0;
    close(fd);
    return err;
}

static int writer_commit(struct tly_writer *base)
{
    struct local_writer *w = (struct local_writer *)base;
    struct local *st = w->st;
    int err = 0;
    if (st->base.opts.fsync && fsync(w->fd) != 0)
        err = tly_fail_errno("%s/%s: fsync", st->root, w->key);
    if (close(w->fd) != 0 && !err)
        err = tly_fail_errno("%s/%s: close", st->root, w->key);
    w->fd = -1;
    if (!err && renameat(st->root_fd, w->tmp, st->root_fd, w->key) != 0)
        err = tly_fail_errno("%s/%s: rename into place", st->root, w->key);
    if (!err && st->base.opts.fsync)
        err = sync_parent(st, w->key);
    if (err) {
        writer_abort(base);
        return err;
    }
    writer_free(w);
    return 0;
}

/* Local files take stable and reused pieces alike: both are written before the call returns. */
static const struct tly_writer_ops local_writer_ops = {writer_writev, writer_writev, writer_commit, writer_abort,
                                                       writer_patch};

static int local_writer(struct tly_store *base, const char *key, struct tly_writer **out)
{
    struct local *st = L(base);
    int dir = root_fd(st, true);
    if (dir < 0)
        return tly_fail(dir, "%s: cannot create the array directory: %s", st->root, strerror(-dir));
    int err = make_parents(dir, key);
    if (err)
        return tly_fail(err, "%s/%s: cannot create its directory: %s", st->root, key, strerror(-err));
    struct local_writer *w = calloc(1, sizeof *w);
    if (w == NULL)
        return tly_fail(-ENOMEM, "%s/%s: out of memory", st->root, key);
    const char *slash = strrchr(key, '/');
    int dirlen = slash ? (int)(slash - key + 1) : 0;
    if (asprintf(&w->tmp, "%.*s.%s.tmp-%d-%u", dirlen, key, key + dirlen, (int)getpid(),
                 atomic_fetch_add(&tmp_seq, 1)) < 0 ||
        (w->key = strdup(key)) == NULL) {
        free(w->tmp);
        free(w);
        return tly_fail(-ENOMEM, "%s/%s: out of memory", st->root, key);
    }
    w->base.ops = &local_writer_ops;
    w->st = st;
    w->fd = openat(dir, w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (w->fd < 0) {
        err = tly_fail_errno("%s/%s: create", st->root, w->tmp);
        writer_free(w);
        return err;
    }
    *out = &w->base;
    return 0;
}

static int local_put(struct tly_store *base, const char *key, const void *data, size_t n)
{
    struct tly_writer *w;
    int err = local_writer(base, key, &w);
    if (err)
        return err;
    struct iovec iov = {(void *)data, n};
    err = writer_writev(w, &iov, 1);
    if (err) {
        writer_abort(w);
        return err;
    }
    return writer_commit(w);
}

static int local_del(struct tly_store *base, const char *key)
{
    struct local *st = L(base);
    int dir = root_fd(st, false);
    if (dir == -ENOENT)
        return 0;
    if (dir < 0)
        return tly_fail(dir, "%s: %s", st->root, strerror(-dir));
    if (unlinkat(dir, key, 0) != 0 && errno != ENOENT)
        return tly_fail_errno("%s/%s: delete", st->root, key);
    return 0;
}

/* nftw has no user argument: clear_errno and gc_removed are guarded by clear_mu. */
static pthread_mutex_t clear_mu = PTHREAD_MUTEX_INITIALIZER;
static int clear_errno;

static int clear_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    if (ftw->level == 0)
        return 0; /* the root itself stays */
    int r = (type == FTW_DP) ? rmdir(path) : unlink(path);
    if (r != 0 && errno != ENOENT) {
        clear_errno = errno;
        return 1;
    }
    return 0;
}

static int local_clear(struct tly_store *base)
{
    struct local *st = L(base);
    int dir = root_fd(st, false);
    if (dir == -ENOENT)
        return 0;
    if (dir < 0)
        return tly_fail(dir, "%s: %s", st->root, strerror(-dir));
    if (faccessat(dir, ".zarray", F_OK, 0) != 0 && faccessat(dir, "zarr.json", F_OK, 0) != 0)
        return tly_fail(TLY_EUSAGE, "%s: not a Zarr array (no .zarray or zarr.json): refusing to delete its contents",
                        st->root);
    pthread_mutex_lock(&clear_mu);
    clear_errno = 0;
    int r = nftw(st->root, clear_one, 16, FTW_DEPTH | FTW_PHYS);
    int e = clear_errno;
    pthread_mutex_unlock(&clear_mu);
    if (r != 0)
        return tly_fail(e ? -e : -EIO, "%s: cannot clear the old array: %s", st->root, strerror(e ? e : EIO));
    return 0;
}

/* Temporary files of writes that never committed (a crash): ".<name>.tmp-<pid>-<n>". */
static _Atomic uint64_t gc_removed;

static int gc_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    const char *name = path + ftw->base;
    if (type == FTW_F && name[0] == '.' && strstr(name, ".tmp-") != NULL && unlink(path) == 0)
        atomic_fetch_add(&gc_removed, 1);
    return 0;
}

static int local_gc(struct tly_store *base, uint64_t *removed)
{
    struct local *st = L(base);
    if (root_fd(st, false) < 0)
        return 0;
    pthread_mutex_lock(&clear_mu);
    atomic_store(&gc_removed, 0);
    int r = nftw(st->root, gc_one, 16, FTW_PHYS);
    *removed = atomic_load(&gc_removed);
    pthread_mutex_unlock(&clear_mu);
    return r == 0 ? 0 : tly_fail_errno("%s: walking the array for stale temporary files", st->root);
}

static void local_close(struct tly_store *base)
{
    struct local *st = L(base);
    if (st->root_fd >= 0)
        close(st->root_fd);
    pthread_mutex_destroy(&st->mu);
    free(st->root);
    free(st->base.url);
    free(st);
}

static const struct tly_store_ops local_ops = {
    .kind = "local",
    .size = local_size,
    .readv = local_readv,
    .read_stream = local_read_stream,
    .get = local_get,
    .put = local_put,
    .writer = local_writer,
    .del = local_del,
    .clear = local_clear,
    .gc = local_gc,
    .close = local_close,
};

int tly__local_open(const char *path, const struct tly_store_opts *opts, struct tly_store **out)
{
    if (path[0] == '\0')
        return tly_fail(TLY_EUSAGE, "empty directory path");
    struct local *st = calloc(1, sizeof *st);
    if (st == NULL || (st->root = strdup(path)) == NULL || (st->base.url = strdup(path)) == NULL) {
        if (st)
            free(st->root);
        free(st);
        return tly_fail(-ENOMEM, "out of memory");
    }
    size_t len = strlen(st->root);
    while (len > 1 && st->root[len - 1] == '/')
        st->root[--len] = '\0';
    st->base.ops = &local_ops;
    st->base.opts = *opts;
    st->root_fd = -1;
    pthread_mutex_init(&st->mu, NULL);
    *out = &st->base;
    return 0;
}
