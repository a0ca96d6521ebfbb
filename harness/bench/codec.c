/*
 * The codec limits of tally bench, measured by bench-cell, in memory and without I/O: codec is the
 * codec alone on each chunk-sized slice of the array; codec_layout is the simplest code for a
 * strided chunk: gather its runs into a chunk buffer and encode it, or decode it into a chunk buffer
 * and scatter it into its runs. Both use the engine's threads, and give a lone chunk the idle
 * threads' share for blosc as the engine does. A write's encoded chunks go to one buffer per worker
 * (the limit is the codec's work, not keeping them); a codec that streams (zstd, gzip) encodes a
 * contiguous chunk as the engine does, streamed through one output block per worker, since that is
 * its fastest way (a lone zstd chunk on libzstd's workers: 1.44 GB/s streamed against 1.26-1.36 into
 * one buffer of the whole frame, 1 GiB on 2 CPUs), and gives a lone chunk's libzstd half as many
 * workers again as the engine's threads: the codec alone is fastest so (1.45 GB/s against 1.17 with
 * as many as threads, src/codec/zstd.c), and a limit is the codec at its best. A read decodes chunks
 * encoded before its passes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bench/measure.h"
#include "harness.h"

struct cx {
    const struct tly_h_bspec *s;
    struct tly_codec c;
    char *mem;     /* the array (write) or the output (read) */
    char **enc;    /* a read's chunks, encoded before its passes */
    size_t *enc_n; /* and their sizes */
    char **chunk;  /* per worker: a chunk buffer (codec_layout) */
    char **out;    /* per worker: where a write's chunk is encoded */
    size_t bound;
    size_t block; /* a streaming codec's output block, 0 when it does not stream */
    int workers;
};

/* Between chunk @p i's runs in the array and worker @p w's chunk buffer; the simplest code's own
 * gather or scatter (a baseline's copy, not the engine's: the ledger does not count it). */
static void move_runs(struct cx *x, int w, uint64_t i, bool gather)
{
    struct tly_runs rs;
    struct tly_runs_iter it;
    uint64_t chunk_off, buf_off;
    tly_h_bench_runs(x->s, i, &rs);
    tly_runs_iter_init(&it, &rs);
    while (tly_runs_next(&it, &chunk_off, &buf_off)) {
        if (gather)
            memcpy(x->chunk[w] + chunk_off, x->mem + buf_off, rs.run_bytes);
        else
            memcpy(x->mem + buf_off, x->chunk[w] + chunk_off, rs.run_bytes);
    }
}

/* Encode chunk @p i (worker @p w) into @p dst. */
static int encode_into(struct cx *x, int w, uint64_t i, char *dst, size_t *n)
{
    if (!x->s->layout) {
        struct tly_h_bench_slice sl = tly_h_bench_slice_of(x->s, i, 1);
        return tly_codec_encode(&x->c, dst, x->bound, x->mem + sl.off, sl.n, n);
    }
    move_runs(x, w, i, true);
    return tly_codec_encode(&x->c, dst, x->bound, x->chunk[w], x->s->chunk_bytes, n);
}

/* A streamed chunk's output: counted and dropped, as the block it came in is reused. */
static int discard(void *arg, const void *data, size_t n)
{
    (void)data;
    *(size_t *)arg += n;
    return 0;
}

static int encode_one(void *ctx, int w, uint64_t i)
{
    struct cx *x = ctx;
    size_t n = 0;
    if (x->block && !x->s->layout) {
        struct tly_h_bench_slice sl = tly_h_bench_slice_of(x->s, i, 1);
        struct iovec iov = {x->mem + sl.off, sl.n};
        return tly_codec_encode_stream(&x->c, &iov, 1, sl.n, x->out[w], x->block, discard, &n);
    }
    return encode_into(x, w, i, x->out[w], &n);
}

static int keep_one(void *ctx, int w, uint64_t i)
{
    struct cx *x = ctx;
    x->enc[i] = malloc(x->bound);
    return x->enc[i] ? encode_into(x, w, i, x->enc[i], &x->enc_n[i]) : tly_fail(-ENOMEM, "out of memory");
}

static int decode_one(void *ctx, int w, uint64_t i)
{
    struct cx *x = ctx;
    if (!x->s->layout) {
        struct tly_h_bench_slice sl = tly_h_bench_slice_of(x->s, i, 1);
        return tly_codec_decode(&x->c, x->mem + sl.off, sl.n, x->enc[i], x->enc_n[i]);
    }
    int err = tly_codec_decode(&x->c, x->chunk[w], x->s->chunk_bytes, x->enc[i], x->enc_n[i]);
    if (!err)
        move_runs(x, w, i, false);
    return err;
}

static int encode_pass(void *ctx)
{
    struct cx *x = ctx;
    return tly_h_bench_par(x->s->threads, x->s->nchunks, encode_one, x);
}

static int decode_pass(void *ctx)
{
    struct cx *x = ctx;
    return tly_h_bench_par(x->s->threads, x->s->nchunks, decode_one, x);
}

/* Per worker, @p n bytes touched (NULL entries when @p n is 0); false when out of memory. */
static bool per_worker(char ***bufs, int workers, size_t n)
{
    *bufs = calloc((size_t)workers, sizeof **bufs);
    for (int w = 0; *bufs && n && w < workers; w++)
        if (((*bufs)[w] = tly_h_bench_prefaulted(n)) == NULL)
            return false;
    return *bufs != NULL;
}

static void cx_free(struct cx *x)
{
    for (uint64_t i = 0; x->enc && i < x->s->nchunks; i++)
        free(x->enc[i]);
    for (int w = 0; w < x->workers; w++) {
        free(x->chunk ? x->chunk[w] : NULL);
        free(x->out ? x->out[w] : NULL);
    }
    free(x->enc);
    free(x->enc_n);
    free(x->chunk);
    free(x->out);
}

int tly_h_bench_codec(const struct tly_h_bspec *s, char *data, struct tly_h_bench_timing *t)
{
    struct cx x = {.s = s, .mem = data, .workers = tly_h_bench_workers(s->threads, s->nchunks)};
    int err = tly_codec_parse(s->cell->codec_spec, &x.c);
    x.c.blosc.typesize = s->cell->dtype.size;
    x.c.threads = (int)tly_h_bench_share(s, s->threads);
    if (x.c.threads > 1 && tly_codec_streams(&x.c) && !s->read) /* its best (the header comment) */
        x.c.threads += (x.c.threads + 1) / 2;
    x.bound = err ? 0 : tly_codec_bound(&x.c, s->chunk_bytes);
    x.block = !err && !s->layout && !s->read ? tly_codec_stream_block(&x.c, false) : 0;
    if (!err && x.bound == SIZE_MAX)
        err = tly_fail(TLY_EUNSUPPORTED, "the codec cannot take a chunk of %llu bytes",
                       (unsigned long long)s->chunk_bytes);
    size_t out_n = s->read ? 0 : x.block ? x.block : x.bound; /* where a write's chunk is encoded */
    if (!err &&
        (!per_worker(&x.chunk, x.workers, s->layout ? s->chunk_bytes : 0) || !per_worker(&x.out, x.workers, out_n)))
        err = tly_fail(-ENOMEM, "out of memory for the workers' buffers");
    struct tly_h_bench_pass p = {encode_pass, NULL, &x};
    if (!err && s->read) {
        x.enc = calloc(s->nchunks, sizeof *x.enc);
        x.enc_n = calloc(s->nchunks, sizeof *x.enc_n);
        err = x.enc && x.enc_n ? tly_h_bench_par(s->threads, s->nchunks, keep_one, &x) : -ENOMEM;
        x.mem = NULL;
        if (!err)
            err = tly_h_bench_output(s, &data, &x.mem);
        p.run = decode_pass;
    }
    if (!err)
        err = tly_h_bench_time_read(s, &p, x.mem, t);
    if (s->read)
        free(x.mem);
    free(data);
    cx_free(&x);
    return err;
}
