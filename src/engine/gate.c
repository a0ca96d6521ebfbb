/*
 * The codec gate: every codec call of an operation (encode, decode, a block, a streamed decoder's
 * feed) goes through here, so that at most `threads` workers run codec work at once (a remote store
 * runs more workers than cores to keep transfers in flight, a local compressed write half as many
 * again as threads so that one encodes while another is blocked in pwrite), the wait counts as a gate wait of the
 * stage, and while a trace is on each call is an event ("zstd decode" with its bytes in, then out).
 */
#include <pthread.h>
#include <stdio.h>

#include "codec/blocks.h"
#include "engine/internal.h"
#include "tally/codec.h"
#include "tally/error.h"
#include "tally/mem.h"
#include "tally/timing.h"

/* Whether @p op runs more workers than threads (a remote store's, or a local write's overlap_io). */
static bool gated(const struct tly__op *op)
{
    return op->a->remote || op->workers > op->a->opts.threads;
}

/* One of @p limit places (the gate's, a write's turns): wait while all are @p taken, the time spent
 * waiting a gate wait in stage @p s, then take one. */
static void place_take(pthread_mutex_t *mu, pthread_cond_t *cv, int *taken, int limit, enum tly_stage s)
{
    pthread_mutex_lock(mu);
    if (*taken >= limit)
        TLY_STAGE(s)
        {
            uint64_t t0 = tly_wait_begin();
            while (*taken >= limit)
                pthread_cond_wait(cv, mu);
            tly_wait_end(t0, TLY_WAIT_GATE);
        }
    (*taken)++;
    pthread_mutex_unlock(mu);
}

static void place_give(pthread_mutex_t *mu, pthread_cond_t *cv, int *taken)
{
    pthread_mutex_lock(mu);
    (*taken)--;
    pthread_cond_signal(cv);
    pthread_mutex_unlock(mu);
}

/* Through the gate for codec work of stage @p s; the time spent waiting there is a gate wait in s. */
static void codec_enter(const struct tly__op *op, enum tly_stage s)
{
    struct tly_array *a = op->a;
    if (!gated(op))
        return; /* workers == threads: the gate would never close */
    place_take(&a->gate_mu, &a->gate_cv, &a->gate_taken, a->opts.threads, s);
}

/* A codec call's events, while a trace is on: "blosc encode" with the bytes in, then out. */
static void codec_event(const struct tly_array *a, bool begin, const char *what, uint64_t bytes, int err)
{
    if (!tly_trace_on())
        return;
    char name[32];
    snprintf(name, sizeof name, "%s %s", tly_codec_name(a->meta.codec.id), what);
    tly_trace_note(begin ? TLY_EV_CODEC_BEGIN : TLY_EV_CODEC_END, bytes, 0, err != 0, name);
}

static void codec_leave(const struct tly__op *op)
{
    struct tly_array *a = op->a;
    if (!gated(op))
        return;
    place_give(&a->gate_mu, &a->gate_cv, &a->gate_taken);
}

/*
 * Turns: the gate bounds codec calls, not the chunks whose encodes are under way. A remote write runs
 * io_concurrency workers on `threads` cores, and every chunk the pool admitted began at once, its
 * codec calls taking the gate in turn with every other chunk's: as many encoded outputs growing at
 * once as tickets, each finished later than one encode at a time would. With a turn each, at most
 * threads / codec_threads chunks encode at once and the others wait holding nothing but their ticket:
 * write-s3-zstd-256x4MiB (bench-cell, 64 MiB, 3 runs alternating) peaked at 36.8 MiB extra instead of
 * 50.0-50.6, 0.25-0.29 GB/s instead of 0.23-0.27; write-s3-blosc-256x4MiB 38.2 instead of 43.9-47.5 MiB,
 * 0.30-0.34 GB/s either way.
 *
 * @p commit: a chunk whose frame outgrows an S3 part keeps its turn through its commit, and there is
 * one turn more (one chunk's uploads while the threads encode). Its first part waits for the table, so
 * such a frame is held whole until its last upload is answered (S3 takes no part under 5 MiB but the
 * last: an 11 MB frame is two parts, the second cut when the encode ends), and a chunk that gave its
 * turn back at the encode's end let another begin while its frame waited for the server:
 * write-s3-blosc-v2-strided (8 chunks of 12.5 MB, 2 threads, 64 MiB) held four such frames, 0.50-0.54
 * of its 100 MB array (0.55-0.58 before a first part of 5 MiB), rounded to an extra copy; with three
 * turns through the commit 0.40-0.44 (tally run, 3 runs alternating, 0.16-0.22 GB/s against
 * 0.17-0.26: the same within this machine's noise). A frame of one part (a chunk under the part size)
 * is one PUT at the commit: its turn goes back before it, as the transfers of small chunks are many
 * requests at once and a turn held through each would leave a latency-bound server with few.
 */
static int turns(const struct tly__op *op, bool commit)
{
    int per = op->codec_threads > 0 ? op->codec_threads : 1, n = op->a->opts.threads / per;
    return (n > 0 ? n : 1) + (commit ? 1 : 0);
}

void tly__turn_take(struct tly__op *op, bool commit)
{
    if (op->a->remote)
        place_take(&op->turn_mu, &op->turn_cv, &op->turns_taken, turns(op, commit), TLY_ENCODE);
}

void tly__turn_give(struct tly__op *op)
{
    if (op->a->remote)
        place_give(&op->turn_mu, &op->turn_cv, &op->turns_taken);
}

int tly__encode(struct tly__op *op, void *dst, size_t cap, const void *src, size_t n, size_t *out_n)
{
    codec_enter(op, TLY_ENCODE);
    codec_event(op->a, true, "encode", n, 0);
    int err = tly_codec_encode(&op->a->meta.codec, dst, cap, src, n, out_n);
    codec_event(op->a, false, "encode", *out_n, err);
    codec_leave(op);
    return err;
}

/* A stream encoder's sink, called outside the gate: a worker blocked writing a block of output
 * (pwrite, a part's upload) leaves its place to another chunk's codec work. */
struct gate_sink {
    struct tly__op *op;
    tly_sink_fn sink;
    void *arg;
};

static int gate_sink(void *arg, const void *data, size_t n)
{
    struct gate_sink *g = arg;
    codec_leave(g->op);
    int err = g->sink(g->arg, data, n);
    codec_enter(g->op, TLY_ENCODE);
    return err;
}

int tly__encode_stream(struct tly__op *op, const struct tly_codec *c, const struct iovec *iov, int niov, uint64_t total,
                       void *out, size_t cap, tly_sink_fn sink, void *arg)
{
    struct gate_sink g = {op, sink, arg};
    codec_enter(op, TLY_ENCODE);
    codec_event(op->a, true, "encode", total, 0);
    int err = tly_codec_encode_stream(c, iov, niov, total, out, cap, gate_sink, &g);
    codec_event(op->a, false, "encode", 0, err);
    codec_leave(op);
    return err;
}

int tly__encode_block(struct tly__op *op, const struct tly_block_plan *p, uint64_t j, const void *src, void *out,
                      const void **at, size_t *len)
{
    uint64_t lo = j * p->blocksize, n = p->n - lo < p->blocksize ? p->n - lo : p->blocksize;
    codec_enter(op, TLY_ENCODE);
    codec_event(op->a, true, "encode", n, 0);
    *len = 0;
    int err = tly__codec_blocks(&op->a->meta.codec)->encode_block(&op->a->meta.codec, p, j, src, out, at, len);
    codec_event(op->a, false, "encode", *len, err);
    codec_leave(op);
    return err;
}

struct tly_codec tly__op_codec(const struct tly__op *op)
{
    struct tly_codec c = op->a->meta.codec;
    c.threads = op->codec_threads;
    return c;
}

int tly__decode(struct tly__op *op, void *dst, size_t dst_n, const void *src, size_t n)
{
    struct tly_codec c = tly__op_codec(op);
    tly__op_chunk_threads(op, tly_codec_threads(&c, dst_n, true));
    codec_enter(op, TLY_DECODE);
    codec_event(op->a, true, "decode", n, 0);
    int err = tly_codec_decode(&c, dst, dst_n, src, n);
    codec_event(op->a, false, "decode", dst_n, err);
    codec_leave(op);
    return err;
}

int tly__feed(struct tly__op *op, struct tly_dstream *ds, const void *in, size_t n)
{
    codec_enter(op, TLY_DECODE);
    codec_event(op->a, true, "decode", n, 0);
    int err = tly_dstream_feed(ds, in, n);
    codec_event(op->a, false, "decode", 0, err);
    codec_leave(op);
    return err;
}
