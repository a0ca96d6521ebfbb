/*
 * The local filesystem store: its operations (local.h maps its files).
 *
 * Everything is opened relative to the root directory's descriptor (or a staged array's, while one
 * is written: local_stage.c), keys are checked before use, and no symbolic link is followed on the
 * way (local_path.c), so no key reaches outside the array. A write goes to a temporary file beside
 * its target (".<name>.tmp-<pid>-<n>") and is renamed over it on commit, so an error or a crash
 * never leaves a torn chunk visible; with fsync the file and then its directory are synced. Data
 * moves with pwritev/preadv straight between the file and the caller's memory. Metadata is read
 * whole only up to TALLY_META_LIMIT bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tally/error.h"
#include "common/opts.h"
#include "store/local.h"

#define IOV_BATCH 1024 /* IOV_MAX on Linux */

struct local_writer {
    struct tly_writer base;
    struct tly__local *st;
    int fd;
    int dir;      /* the key's directory: the tmp file and the key are both in it */
    bool own_dir; /* dir is the writer's to close */
    uint64_t off;
    char *key;
    const char *name; /* the key's last component */
    char *tmp;        /* the tmp file's name in dir */
};

static atomic_uint tmp_seq;

#define L tly__local_of

int tly__local_mkdirs(const char *path)
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

int tly__local_root(struct tly__local *st, bool create)
{
    pthread_mutex_lock(&st->mu);
    int fd = st->root_fd;
    if (fd < 0) {
        int err = create ? tly__local_mkdirs(st->root) : 0;
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

int tly__local_dir(struct tly__local *st, bool create)
{
    return st->stage_fd >= 0 ? st->stage_fd : tly__local_root(st, create);
}

/*
 * After a key was not found: when the root the store opened is no longer the directory at its path
 * (an overwrite swapped a new array in and is removing the old one), a reader would take the old
 * array's chunks for missing ones and fill them: say so instead.
 */
static int not_found(struct tly__local *st, const char *key)
{
    struct stat now, opened;
    if (st->stage_fd < 0 && st->root_fd >= 0 && fstat(st->root_fd, &opened) == 0 &&
        (stat(st->root, &now) != 0 || now.st_ino != opened.st_ino || now.st_dev != opened.st_dev))
        return tly_fail(-ESTALE, "%s/%s: the array was replaced while it was read (read it again)", st->root, key);
    return tly_fail(TLY_ENOTFOUND, "%s/%s: not found", st->root, key);
}

static int local_size(struct tly_store *base, const char *key, uint64_t *out)
{
    struct tly__local *st = L(base);
    int dir, pfd;
    const char *name;
    tly__traffic_request(&st->base.traffic);
    int err = tly__local_key_at(st, key, &dir, &pfd, &name);
    if (err == TLY_ENOTFOUND && dir >= 0) /* the key's directory, not the array's, is missing */
        return not_found(st, key);
    if (err)
        return err;
    struct stat sb;
    int r = fstatat(pfd, name, &sb, AT_SYMLINK_NOFOLLOW), e = errno;
    if (pfd != dir)
        close(pfd);
    if (r != 0) {
        if (e == ENOENT || e == ENOTDIR)
            return not_found(st, key);
        errno = e;
        return tly_fail_errno("%s/%s: stat", st->root, key);
    }
    if (S_ISLNK(sb.st_mode))
        return tly_fail(TLY_EFORMAT, "%s/%s: a symbolic link (the store opens nothing outside its root)", st->root,
                        key);
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

/* Fill every iovec from @p fd at @p off: preadv in batches, resuming after short reads (every byte
 * read counted in the store's traffic). */
static int read_all(struct tly__local *st, int fd, uint64_t off, const struct iovec *iov, int niov, const char *key)
{
    const char *root = st->root;
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
        tly__traffic_add(&st->base.traffic, (uint64_t)n, 0);
        off += (uint64_t)n;
        iov_advance(iov, niov, &i, &done, (size_t)n);
    }
    return 0;
}

/* A read's open of @p key: the request counted, a missing key the read's error (not_found). */
static int open_read(struct tly__local *st, const char *key, int *fd, uint64_t *size)
{
    tly__traffic_request(&st->base.traffic);
    int err = tly__local_open_key(st, key, fd, size);
    return err == TLY_ENOTFOUND ? not_found(st, key) : err;
}

static int local_readv(struct tly_store *base, const char *key, uint64_t offset, const struct iovec *iov, int niov)
{
    struct tly__local *st = L(base);
    int fd, err = open_read(st, key, &fd, NULL);
    if (err)
        return err;
    err = read_all(st, fd, offset, iov, niov, key);
    close(fd);
    return err;
}

/* The object's first or last bytes: the open's fstat gives the size, one pread (more only if it comes short) the bytes.
 */
static int read_edge(struct tly_store *base, const char *key, void *buf, size_t n, uint64_t *size, bool tail)
{
    struct tly__local *st = L(base);
    int fd, err = open_read(st, key, &fd, size);
    if (err)
        return err;
    size_t want = *size < n ? (size_t)*size : n;
    struct iovec iov = {buf, want};
    err = read_all(st, fd, tail ? *size - want : 0, &iov, 1, key);
    close(fd);
    return err;
}

static int local_read_head(struct tly_store *base, const char *key, void *buf, size_t n, uint64_t *size)
{
    return read_edge(base, key, buf, n, size, false);
}

static int local_read_tail(struct tly_store *base, const char *key, void *buf, size_t n, uint64_t *size)
{
    return read_edge(base, key, buf, n, size, true);
}

static int local_read_stream(struct tly_store *base, const char *key, void *buf, size_t cap, tly_store_sink_fn sink,
                             void *arg)
{
    struct tly__local *st = L(base);
    int fd, err = open_read(st, key, &fd, NULL);
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
        else {
            tly__traffic_add(&st->base.traffic, (uint64_t)n, 0);
            err = sink(arg, buf, (size_t)n);
        }
        off += n > 0 ? (uint64_t)n : 0;
    }
    close(fd);
    return err;
}

static int local_get(struct tly_store *base, const char *key, char **data, size_t *n)
{
    struct tly__local *st = L(base);
    tly__traffic_request(&st->base.traffic);
    uint64_t size;
    int fd, err = tly__local_open_key(st, key, &fd, &size);
    if (err)
        return err;
    /* Checked before anything is read: a 64 GiB .zarray was read whole. */
    if (size > st->meta_limit) {
        close(fd);
        return tly_fail(TLY_EFORMAT, "%s/%s: %llu bytes is more than the limit for metadata, %llu bytes (%s)", st->root,
                        key, (unsigned long long)size, (unsigned long long)st->meta_limit,
                        tly__opt_env(TLY_OPT_META_LIMIT));
    }
    char *buf = malloc((size_t)size + 1);
    if (buf == NULL) {
        close(fd);
        return tly_fail(-ENOMEM, "%s/%s: out of memory for %llu bytes", st->root, key, (unsigned long long)size);
    }
    struct iovec iov = {buf, (size_t)size};
    err = read_all(st, fd, 0, &iov, 1, key);
    close(fd);
    if (err) {
        free(buf);
        return err;
    }
    buf[size] = '\0';
    *data = buf;
    *n = (size_t)size;
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
        tly__traffic_add(&w->st->base.traffic, 0, (uint64_t)n);
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
        tly__traffic_add(&w->st->base.traffic, 0, (uint64_t)k);
        done += (size_t)k;
    }
    return 0;
}

static void writer_free(struct local_writer *w)
{
    if (w->own_dir)
        close(w->dir);
    free(w->key);
    free(w->tmp);
    free(w);
}

static void writer_abort(struct tly_writer *base)
{
    struct local_writer *w = (struct local_writer *)base;
    if (w->fd >= 0)
        close(w->fd);
    unlinkat(w->dir, w->tmp, 0);
    writer_free(w);
}

static int writer_commit(struct tly_writer *base)
{
    struct local_writer *w = (struct local_writer *)base;
    struct tly__local *st = w->st;
    int err = 0;
    if (st->base.opts.fsync && fsync(w->fd) != 0)
        err = tly_fail_errno("%s/%s: fsync", st->root, w->key);
    if (close(w->fd) != 0 && !err)
        err = tly_fail_errno("%s/%s: close", st->root, w->key);
    w->fd = -1;
    if (!err && renameat(w->dir, w->tmp, w->dir, w->name) != 0)
        err = tly_fail_errno("%s/%s: rename into place", st->root, w->key);
    if (!err && st->base.opts.fsync && fsync(w->dir) != 0)
        err = tly_fail_errno("%s/%s: fsync its directory", st->root, w->key);
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
    struct tly__local *st = L(base);
    int dir = tly__local_dir(st, true);
    if (dir < 0)
        return tly_fail(dir, "%s: cannot create the array directory: %s", st->root, strerror(-dir));
    struct local_writer *w = calloc(1, sizeof *w);
    if (w == NULL)
        return tly_fail(-ENOMEM, "%s/%s: out of memory", st->root, key);
    w->base.ops = &local_writer_ops;
    w->st = st;
    w->fd = -1;
    int err = tly__local_key_dir(st, dir, key, true, &w->dir, &w->name);
    if (err) {
        free(w);
        return err;
    }
    w->own_dir = w->dir != dir;
    if ((w->key = strdup(key)) == NULL ||
        asprintf(&w->tmp, ".%s.tmp-%d-%u", w->name, (int)getpid(), atomic_fetch_add(&tmp_seq, 1)) < 0) {
        w->tmp = NULL;
        writer_free(w);
        return tly_fail(-ENOMEM, "%s/%s: out of memory", st->root, key);
    }
    w->name = w->key + (w->name - key);
    w->fd = openat(w->dir, w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (w->fd < 0) {
        err = tly_fail_errno("%s/%s: create its temporary file", st->root, key);
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
    struct tly__local *st = L(base);
    int dir = tly__local_dir(st, false);
    if (dir == -ENOENT)
        return 0;
    if (dir < 0)
        return tly_fail(dir, "%s: %s", st->root, strerror(-dir));
    int pfd;
    const char *name;
    int err = tly__local_key_dir(st, dir, key, false, &pfd, &name);
    if (err == TLY_ENOTFOUND) {
        tly_errclear();
        return 0;
    }
    if (err)
        return err;
    if (unlinkat(pfd, name, 0) != 0 && errno != ENOENT)
        err = tly_fail_errno("%s/%s: delete", st->root, key);
    if (pfd != dir)
        close(pfd);
    return err;
}

static int local_clear(struct tly_store *base)
{
    struct tly__local *st = L(base);
    int dir = tly__local_root(st, false);
    if (dir == -ENOENT)
        return 0;
    if (dir < 0)
        return tly_fail(dir, "%s: %s", st->root, strerror(-dir));
    if (faccessat(dir, ".zarray", F_OK, AT_SYMLINK_NOFOLLOW) != 0 &&
        faccessat(dir, "zarr.json", F_OK, AT_SYMLINK_NOFOLLOW) != 0)
        return tly_fail(TLY_EUSAGE, "%s: not a Zarr array (no .zarray or zarr.json): refusing to delete its contents",
                        st->root);
    int fd = openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        int err = tly_fail_errno("%s: cannot list the old array", st->root);
        if (fd >= 0)
            close(fd);
        return err;
    }
    int e = 0;
    for (struct dirent *ent; e == 0 && (ent = readdir(d)) != NULL;)
        if (strcmp(ent->d_name, ".") != 0 && strcmp(ent->d_name, "..") != 0)
            e = tly__local_rmtree(dir, ent->d_name);
    closedir(d);
    if (e)
        return tly_fail(e, "%s: cannot clear the old array: %s", st->root, strerror(-e));
    return 0;
}

static void local_close(struct tly_store *base)
{
    struct tly__local *st = L(base);
    tly__local_discard(base); /* a staged array never published */
    if (st->root_fd >= 0)
        close(st->root_fd);
    if (st->parent_fd >= 0)
        close(st->parent_fd);
    free(st->name);
    pthread_mutex_destroy(&st->mu);
    free(st->root);
    free(st->base.url);
    free(st);
}

static const struct tly_store_ops local_ops = {
    .kind = "local",
    .size = local_size,
    .readv = local_readv,
    .read_head = local_read_head,
    .read_tail = local_read_tail,
    .read_stream = local_read_stream,
    .get = local_get,
    .put = local_put,
    .writer = local_writer,
    .del = local_del,
    .clear = local_clear,
    .gc = tly__local_gc,
    .probe = tly__local_probe,
    .stage = tly__local_stage,
    .publish = tly__local_publish,
    .discard = tly__local_discard,
    .close = local_close,
};

int tly__local_open(const char *path, const struct tly_store_opts *opts, struct tly_store **out)
{
    if (path[0] == '\0')
        return tly_fail(TLY_EUSAGE, "empty directory path");
    uint64_t limit;
    int err = tly__opt_resolve(TLY_OPT_META_LIMIT, 0, &limit);
    if (err)
        return err;
    struct tly__local *st = calloc(1, sizeof *st);
    if (st == NULL || (st->root = strdup(path)) == NULL || (st->base.url = strdup(path)) == NULL) {
        if (st)
            free(st->root);
        free(st);
        return tly_fail(-ENOMEM, "out of memory");
    }
    st->meta_limit = limit;
    st->stage_fd = st->parent_fd = -1;
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
