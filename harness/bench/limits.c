/*
 * The I/O limits of tally bench, measured by bench-cell: raw moves each chunk-sized slice of the
 * array whole (pwrite/pread of one file per chunk, or a PUT/GET of one object per chunk by the S3
 * client alone); raw_layout moves each chunk's runs straight from or into their strided places in
 * the array (pwritev/preadv of the runs, or one PUT/GET per chunk with the runs as its pieces): the
 * least any code can do to move the same bytes to or from the same places. Local kinds use the
 * engine's threads, S3 kinds its transfers in flight; a read with fewer chunks than workers splits
 * each chunk among them as the engine does (by bytes, or by runs for raw_layout).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <unistd.h>

#include "bench/measure.h"
#include "harness.h"

struct io {
    const struct tly_h_bspec *s;
    struct tly_store *st; /* S3; NULL: local files */
    char *mem;            /* the array (write) or the output (read) */
    bool write;
    uint64_t ways; /* tasks per chunk */
    int workers;
};

/* Task t: memory pieces, and where they begin in chunk's file or object (raw_layout's holds the
 * chunk's runs back to back, as a chunk holds them). */
struct task {
    uint64_t chunk, off;
    struct iovec one, *iov;
    int n;
};

static int task_of(const struct io *x, uint64_t t, struct task *k)
{
    const struct tly_h_bspec *s = x->s;
    if (!s->layout) {
        struct tly_h_bench_slice sl = tly_h_bench_slice_of(s, t, x->ways);
        *k = (struct task){.chunk = sl.chunk, .off = sl.lo, .one = {x->mem + sl.off + sl.lo, sl.hi - sl.lo}, .n = 1};
        k->iov = &k->one;
        return 0;
    }
    struct tly_runs rs;
    tly_h_bench_runs(s, t / x->ways, &rs);
    uint64_t part = t % x->ways, r0 = rs.nruns * part / x->ways, r1 = rs.nruns * (part + 1) / x->ways;
    *k = (struct task){.chunk = t / x->ways, .off = r0 * rs.run_bytes, .n = (int)(r1 - r0)};
    k->iov = malloc((size_t)(r1 > r0 ? r1 - r0 : 1) * sizeof *k->iov);
    if (k->iov == NULL)
        return tly_fail(-ENOMEM, "out of memory for a chunk's runs");
    struct tly_runs_iter it;
    uint64_t chunk_off, buf_off;
    tly_runs_iter_init(&it, &rs);
    for (uint64_t r = 0; r < r1 && tly_runs_next(&it, &chunk_off, &buf_off); r++)
        if (r >= r0)
            k->iov[r - r0] = (struct iovec){x->mem + buf_off, rs.run_bytes};
    return 0;
}

/* pwritev/preadv of the task's pieces, IOV_MAX at a time, until all are moved. */
static int file_io(const struct io *x, struct task *k)
{
    char path[TLY_H_PATH];
    snprintf(path, sizeof path, "%s/raw.%llu", x->s->dir, (unsigned long long)k->chunk);
    int fd = open(path, x->write ? O_WRONLY | O_CREAT | O_TRUNC : O_RDONLY, 0644);
    if (fd < 0)
        return tly_fail_errno("%s", path);
    struct iovec *iov = k->iov;
    int n = k->n, err = 0;
    off_t off = (off_t)k->off;
    while (n > 0 && iov->iov_len == 0)
        iov++, n--;
    while (n > 0) {
        ssize_t got = x->write ? pwritev(fd, iov, n < IOV_MAX ? n : IOV_MAX, off)
                               : preadv(fd, iov, n < IOV_MAX ? n : IOV_MAX, off);
        if (got <= 0) {
            err = got < 0 ? tly_fail_errno("%s", path) : tly_fail(TLY_EFORMAT, "%s: shorter than written", path);
            break;
        }
        off += got;
        for (; n > 0 && (size_t)got >= iov->iov_len; iov++, n--) /* the pieces done */
            got -= (ssize_t)iov->iov_len;
        if (n > 0) { /* one done in part goes again from where it stopped */
            iov->iov_base = (char *)iov->iov_base + got;
            iov->iov_len -= (size_t)got;
        }
    }
    close(fd);
    return err;
}

static int s3_io(const struct io *x, struct task *k)
{
    char key[64];
    snprintf(key, sizeof key, "raw/%llu", (unsigned long long)k->chunk);
    if (!x->write)
        return tly_store_readv(x->st, key, k->off, k->iov, k->n);
    struct tly_writer *w = NULL;
    int err = tly_store_writer(x->st, key, &w);
    if (!err)
        err = tly_writer_add(w, k->iov, k->n);
    if (!err)
        return tly_writer_commit(w);
    if (w)
        tly_writer_abort(w);
    return err;
}

static int io_one(void *ctx, int worker, uint64_t t)
{
    (void)worker;
    struct io *x = ctx;
    struct task k = {.iov = NULL};
    int err = task_of(x, t, &k);
    if (!err)
        err = x->st ? s3_io(x, &k) : file_io(x, &k);
    if (k.iov != &k.one)
        free(k.iov);
    return err;
}

static int io_pass(void *ctx)
{
    struct io *x = ctx;
    return tly_h_bench_par(x->workers, x->s->nchunks * x->ways, io_one, x);
}

/* Remove every chunk's file or object. */
static void io_undo(void *ctx)
{
    struct io *x = ctx;
    for (uint64_t i = 0; i < x->s->nchunks; i++) {
        char name[TLY_H_PATH];
        if (x->st) {
            snprintf(name, sizeof name, "raw/%llu", (unsigned long long)i);
            tly_store_delete(x->st, name);
        } else {
            snprintf(name, sizeof name, "%s/raw.%llu", x->s->dir, (unsigned long long)i);
            unlink(name);
        }
    }
}

int tly_h_bench_raw(const struct tly_h_bspec *s, char *data, struct tly_h_bench_timing *t)
{
    struct io x = {.s = s, .mem = data, .write = true, .ways = 1, .workers = s->s3 ? s->io : s->threads};
    struct tly_store_opts so = {.io_concurrency = s->io};
    int err = s->s3 ? tly_store_open(s->dir, &so, &x.st) : 0;
    struct tly_h_bench_pass p = {io_pass, io_undo, &x};
    if (!err && s->read) {
        err = io_pass(&x); /* the stored chunks, untimed */
        x.mem = NULL;
        if (!err)
            err = tly_h_bench_output(s, &data, &x.mem);
        x.write = false;
        x.ways = tly_h_bench_read_ways(s, x.workers);
        p.undo = NULL;
    }
    if (!err)
        err = tly_h_bench_time_read(s, &p, x.mem, t);
    if (s->read) {
        io_undo(&x);
        free(x.mem);
    }
    free(data);
    if (x.st)
        tly_store_close(x.st);
    return err;
}
