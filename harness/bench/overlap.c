/*
 * The overlapped limit of tally bench's compressed reads, measured by bench-cell: a reader that
 * decodes each block as its bytes arrive can at best hide the shorter of reading the encoded chunks
 * and decoding them behind the longer, so no read beats bytes / max(read time, decode time).
 *
 *   overlap         the decode of the codec limit (the codec alone on each chunk, in memory)
 *   overlap_layout  the decode of the layout's codec limit (decoded aside, scattered into the runs)
 *
 * A write's is the same with the sides turned: the encode (the codec limit's) against storing the
 * encoded chunks, one object or file per chunk or, for a sharded row, per shard (its inner chunks'
 * encoded bytes as the pieces of one object: the spec's object_chunks), by the S3 client alone on the
 * engine's transfers or by pwrite on its threads.
 *
 * And, in the same process, the read of the encoded chunks as raw reads the decoded ones: one file
 * (or S3 object) per chunk, each split into ranges among the workers by the engine's rule, into
 * buffers allocated and touched before. Each pass is timed on its own under the memory policy
 * (untimed, then timed); the figure is the array's bytes over the longer of the two.
 *
 * The CPU-shared limit (cpu_gbps, the row's cpu or cpu_layout figure) takes the machine's CPUs into
 * account too: where moving bytes costs CPU (page-cache copies, HTTP), the two halves cannot both have
 * every CPU at once, so no operation beats bytes / max(either half's time, (CPU seconds of both halves)
 * / CPUs), CPU seconds being this process's over each timed pass (measure.c). It assumes the engine
 * cannot encode, decode or move the bytes with less CPU than the codec alone and the I/O alone do; a
 * ratio above the slack to it says it was mis-measured. An S3 server on the same machine takes CPU too:
 * against scripts/s3-server that CPU is counted (measure.c's server_busy_s: radosgw, ceph-osd and
 * ceph-mon from /proc); against any other server it is not, and on S3 the limit is then a loose one.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/measure.h"
#include "harness.h"

struct ov {
    const struct tly_h_bspec *s;
    struct tly_store *st; /* S3; NULL: local files */
    char **enc;           /* per chunk: its encoded bytes, then the buffer the timed read fills */
    size_t *enc_n;
    uint64_t ways;
    int workers;
};

static void name_of(const struct ov *x, uint64_t i, char *buf, size_t cap)
{
    if (x->st)
        snprintf(buf, cap, "enc/%llu", (unsigned long long)i);
    else
        snprintf(buf, cap, "%s/enc.%llu", x->s->dir, (unsigned long long)i);
}

/* Chunk @p i of @p data (gathered from its runs when strided) encoded into x->enc[i]. */
static int encode_chunk(struct ov *x, const struct tly_codec *c, const char *data, char *chunk, uint64_t i)
{
    const struct tly_h_bspec *s = x->s;
    size_t bound = tly_codec_bound(c, s->chunk_bytes);
    const char *src = data + i * s->chunk_bytes;
    if (s->layout) {
        struct tly_runs rs;
        struct tly_runs_iter it;
        uint64_t co, bo;
        tly_h_bench_runs(s, i, &rs);
        tly_runs_iter_init(&it, &rs);
        while (tly_runs_next(&it, &co, &bo))
            memcpy(chunk + co, data + bo, rs.run_bytes); /* the fixture's gather, untimed */
        src = chunk;
    }
    x->enc[i] = tly_h_bench_prefaulted(bound);
    if (x->enc[i] == NULL)
        return tly_fail(-ENOMEM, "out of memory for an encoded chunk");
    return tly_codec_encode(c, x->enc[i], bound, src, s->chunk_bytes, &x->enc_n[i]);
}

/* Store encoded chunk @p i (untimed). */
static int store_chunk(struct ov *x, uint64_t i)
{
    char name[TLY_H_PATH];
    name_of(x, i, name, sizeof name);
    if (x->st) {
        struct tly_writer *w = NULL;
        struct iovec iov = {x->enc[i], x->enc_n[i]};
        int err = tly_store_writer(x->st, name, &w);
        if (!err)
            err = tly_writer_add(w, &iov, 1);
        if (!err)
            return tly_writer_commit(w);
        if (w)
            tly_writer_abort(w);
        return err;
    }
    int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return tly_fail_errno("%s", name);
    ssize_t w = write(fd, x->enc[i], x->enc_n[i]);
    int err = w == (ssize_t)x->enc_n[i] ? 0 : tly_fail_errno("%s: short write", name);
    close(fd);
    return err;
}

/* Task t: part t % ways of encoded chunk t / ways, read into its buffer. */
static int read_part(void *ctx, int worker, uint64_t t)
{
    (void)worker;
    struct ov *x = ctx;
    uint64_t i = t / x->ways, part = t % x->ways;
    size_t lo = x->enc_n[i] * part / x->ways, hi = x->enc_n[i] * (part + 1) / x->ways;
    char name[TLY_H_PATH];
    name_of(x, i, name, sizeof name);
    if (x->st) {
        struct iovec iov = {x->enc[i] + lo, hi - lo};
        return tly_store_readv(x->st, name, lo, &iov, 1);
    }
    int fd = open(name, O_RDONLY);
    if (fd < 0)
        return tly_fail_errno("%s", name);
    int err = 0;
    while (!err && lo < hi) {
        ssize_t got = pread(fd, x->enc[i] + lo, hi - lo, (off_t)lo);
        if (got <= 0)
            err = got < 0 ? tly_fail_errno("%s", name) : tly_fail(TLY_EFORMAT, "%s: shorter than written", name);
        lo += got > 0 ? (size_t)got : 0;
    }
    close(fd);
    return err;
}

static int read_pass(void *ctx)
{
    struct ov *x = ctx;
    return tly_h_bench_par(x->workers, x->s->nchunks * x->ways, read_part, x);
}

/* What a read's and a write's other half both start with: @p s's codec, the encoded chunks' table
 * and, for a strided layout, a chunk to gather into. */
static int ov_begin(const struct tly_h_bspec *s, struct ov *x, struct tly_codec *c, char **chunk)
{
    int err = tly_codec_parse(s->cell->codec_spec, c);
    c->blosc.typesize = s->cell->dtype.size;
    x->enc = calloc(s->nchunks, sizeof *x->enc);
    x->enc_n = calloc(s->nchunks, sizeof *x->enc_n);
    *chunk = s->layout ? malloc(s->chunk_bytes) : NULL;
    if (!err && (x->enc == NULL || x->enc_n == NULL || (s->layout && *chunk == NULL)))
        err = tly_fail(-ENOMEM, "out of memory");
    return err;
}

/* The encoded chunks freed and the store closed. */
static void ov_end(struct ov *x)
{
    for (uint64_t i = 0; x->enc && i < x->s->nchunks; i++)
        free(x->enc[i]);
    free(x->enc);
    free(x->enc_n);
    if (x->st)
        tly_store_close(x->st);
}

/* The read of the encoded chunks: the figure's other half. Takes @p data. */
static int time_read(const struct tly_h_bspec *s, char *data, struct tly_h_bench_timing *t)
{
    struct ov x = {.s = s, .workers = s->s3 ? s->io : s->threads};
    struct tly_codec c;
    struct tly_store_opts so = {.io_concurrency = s->io};
    char *chunk;
    int err = ov_begin(s, &x, &c, &chunk);
    if (!err && s->s3)
        err = tly_store_open(s->dir, &so, &x.st);
    for (uint64_t i = 0; !err && i < s->nchunks; i++)
        if (!(err = encode_chunk(&x, &c, data, chunk, i)))
            err = store_chunk(&x, i);
    free(chunk);
    free(data);
    x.ways = tly_h_bench_read_ways(s, x.workers);
    struct tly_h_bench_pass p = {read_pass, NULL, &x, s->s3};
    if (!err)
        err = tly_h_bench_time(&p, t);
    for (uint64_t i = 0; x.enc && i < s->nchunks; i++) {
        char name[TLY_H_PATH];
        name_of(&x, i, name, sizeof name);
        if (x.st)
            tly_store_delete(x.st, name);
        else
            unlink(name);
    }
    ov_end(&x);
    return err;
}

/* ---- an S3 write's other half: the encoded chunks PUT by the S3 client alone ---- */

/* The object chunk @p i goes to: a sharded row's shard (the spec's object_chunks, the shard's shape),
 * else the chunk's own. */
static uint64_t object_of(const struct tly_h_bspec *s, uint64_t i, uint64_t *nobj)
{
    json_t *oc = json_object_get(s->cell->json, "object_chunks");
    const struct tly_grid *g = &s->grid;
    uint64_t idx[TLY_MAX_RANK], obj = 0, n = 1;
    for (int d = g->rank - 1; d >= 0; d--) {
        idx[d] = i % g->nchunks[d];
        i /= g->nchunks[d];
    }
    for (int d = 0; d < g->rank; d++) {
        uint64_t per = 1, span = (uint64_t)json_integer_value(json_array_get(oc, (size_t)d));
        if (span >= g->chunks[d])
            per = span / g->chunks[d];
        uint64_t nd = (g->nchunks[d] + per - 1) / per;
        obj = obj * nd + idx[d] / per;
        n *= nd;
    }
    *nobj = n;
    return obj;
}

struct wr {
    struct ov *x;
    uint64_t nobj;
    struct iovec **iov; /* per object: its chunks' encoded bytes, in chunk order */
    int *niov;
};

/* An object's encoded pieces into its file, one after another. */
static int write_file(const char *name, const struct iovec *iov, int niov)
{
    int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return tly_fail_errno("%s", name);
    int err = 0;
    off_t at = 0;
    for (int i = 0; !err && i < niov; i++)
        for (size_t done = 0; !err && done < iov[i].iov_len;) {
            ssize_t n = pwrite(fd, (const char *)iov[i].iov_base + done, iov[i].iov_len - done, at);
            if (n <= 0)
                err = tly_fail_errno("%s: write", name);
            done += n > 0 ? (size_t)n : 0;
            at += n > 0 ? n : 0;
        }
    close(fd);
    return err;
}

static int put_object(void *ctx, int worker, uint64_t o)
{
    (void)worker;
    struct wr *w = ctx;
    char name[TLY_H_PATH];
    name_of(w->x, o, name, sizeof name);
    if (w->x->st == NULL)
        return write_file(name, w->iov[o], w->niov[o]);
    struct tly_writer *wt = NULL;
    int err = tly_store_writer(w->x->st, name, &wt);
    if (!err)
        err = tly_writer_add(wt, w->iov[o], w->niov[o]);
    if (!err)
        return tly_writer_commit(wt);
    if (wt)
        tly_writer_abort(wt);
    return err;
}

static int write_pass(void *ctx)
{
    struct wr *w = ctx;
    return tly_h_bench_par(w->x->workers, w->nobj, put_object, w);
}

static void write_undo(void *ctx)
{
    struct wr *w = ctx;
    for (uint64_t o = 0; o < w->nobj; o++) {
        char name[TLY_H_PATH];
        name_of(w->x, o, name, sizeof name);
        if (w->x->st)
            tly_store_delete(w->x->st, name);
        else
            unlink(name);
    }
}

/* Storing the encoded chunks, one S3 object (on the engine's transfers) or file (on its threads) per
 * chunk, per shard when sharded: the figure's other half for a write. Takes @p data. */
static int time_write(const struct tly_h_bspec *s, char *data, struct tly_h_bench_timing *t)
{
    struct ov x = {.s = s, .workers = s->s3 ? s->io : s->threads};
    struct wr w = {.x = &x};
    struct tly_codec c;
    struct tly_store_opts so = {.io_concurrency = s->io};
    char *chunk;
    int err = ov_begin(s, &x, &c, &chunk);
    object_of(s, 0, &w.nobj);
    w.iov = calloc(w.nobj, sizeof *w.iov);
    w.niov = calloc(w.nobj, sizeof *w.niov);
    if (!err && (w.iov == NULL || w.niov == NULL))
        err = tly_fail(-ENOMEM, "out of memory");
    if (!err && s->s3)
        err = tly_store_open(s->dir, &so, &x.st);
    for (uint64_t i = 0; !err && i < s->nchunks; i++) {
        uint64_t n, o = object_of(s, i, &n);
        struct iovec *v = realloc(w.iov[o], (size_t)(w.niov[o] + 1) * sizeof *v);
        if (v == NULL)
            err = tly_fail(-ENOMEM, "out of memory");
        else if (!(err = encode_chunk(&x, &c, data, chunk, i))) {
            w.iov[o] = v;
            v[w.niov[o]++] = (struct iovec){x.enc[i], x.enc_n[i]};
        } else
            w.iov[o] = v;
    }
    free(chunk);
    free(data);
    struct tly_h_bench_pass p = {write_pass, write_undo, &w, s->s3};
    if (!err)
        err = tly_h_bench_time(&p, t);
    for (uint64_t o = 0; w.iov && o < w.nobj; o++)
        free(w.iov[o]);
    free(w.iov);
    free(w.niov);
    ov_end(&x);
    return err;
}

int tly_h_bench_overlap(const struct tly_h_bspec *s, char *data, struct tly_h_bench_timing *t)
{
    /* the decode (or encode), as the codec limit (or the layout's) measures it: it takes the array */
    struct tly_h_bench_timing dec = {0}, io = {0};
    struct tly_h_bspec cs = *s;
    cs.kind = s->layout ? "codec_layout" : "codec";
    int err = tly_h_bench_codec(&cs, data, &dec);
    /* the read (or store) of the encoded chunks, from the array made again */
    char *again = err ? NULL : tly_h_alloc_output(s->bytes);
    if (!err && again == NULL)
        err = tly_fail(-ENOMEM, "out of memory for the array");
    if (!err) {
        tly_h_gen_all(again, s->bytes, &s->cell->dtype);
        err = s->read ? time_read(s, again, &io) : time_write(s, again, &io);
    }
    t->secs = dec.secs > io.secs ? dec.secs : io.secs;
    t->peak_extra = 0;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    double shared = dec.busy_s >= 0 && io.busy_s >= 0 && cpus > 0 ? (dec.busy_s + io.busy_s) / (double)cpus : 0;
    t->cpu_secs = shared > t->secs ? shared : t->secs;
    if (!err)
        fprintf(stderr, "overlap: %s %.4f s (%.3f CPU s, of which the S3 server's %.3f), %s %.4f s (%.3f CPU s)\n",
                s->read ? "read" : "store", io.secs, io.busy_s, io.server_busy_s, s->read ? "decode" : "encode",
                dec.secs, dec.busy_s);
    return err;
}
