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

/* Through the gate for codec work of stage @p s; the time spent waiting there is a gate wait in s. */
static void codec_enter(const struct tly__op *op, enum tly_stage s)
{
    struct tly_array *a = op->a;
    if (!gated(op))
        return; /* workers == threads: the gate would never close */
    pthread_mutex_lock(&a->gate_mu);
    if (a->gate_free == 0)
        TLY_STAGE(s)
        {
            uint64_t t0 = tly_wait_begin();
            while (a->gate_free == 0)
                pthread_cond_wait(&a->gate_cv, &a->gate_mu);
            tly_wait_end(t0, TLY_WAIT_GATE);
        }
    a->gate_free--;
    pthread_mutex_unlock(&a->gate_mu);
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
    pthread_mutex_lock(&a->gate_mu);
    a->gate_free++;
    pthread_cond_signal(&a->gate_cv);
    pthread_mutex_unlock(&a->gate_mu);
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
