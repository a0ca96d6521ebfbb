/*
 * gzip and zlib: deflate through zlib's streaming API, one stream (gzip: one member) per chunk,
 * compressed in one call or streamed from the chunk's runs in place; inflated as the bytes arrive,
 * straight into the destination or through the caller's block buffer to a sink. The one-shot
 * calls are the streaming ones with the whole chunk as their only piece. A z_stream per call, as
 * zstd.c has a context per call; zlib allocates with malloc (zalloc/zfree left NULL), so its state
 * and window land in the stage of the call, which the registry or these functions set.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "codec/ops.h"
#include "codec/stream.h"
#include "tally/error.h"
#include "tally/mem.h"

#define WBITS 15                 /* a 32 KiB window: what numcodecs (Python's zlib and gzip modules) writes */
#define GZIP_WRAP 16             /* windowBits + 16: a gzip wrapper instead of zlib's */
#define MEM_LEVEL 8              /* zlib's default, which deflateBound's tight bound assumes */
#define GZIP_EXTRA 12            /* a gzip header (10) and trailer (8) over zlib's header (2) and Adler-32 (4) */
#define Z_MAX ((size_t)UINT_MAX) /* avail_in and avail_out are uInt: larger buffers go in pieces */

static const char *fmt(enum tly_codec_id id)
{
    return id == TLY_CODEC_ZLIB ? "zlib" : "gzip";
}

static int wbits(enum tly_codec_id id)
{
    return id == TLY_CODEC_ZLIB ? WBITS : WBITS + GZIP_WRAP;
}

static size_t zmin(size_t a, size_t b)
{
    return a < b ? a : b;
}

static size_t bound(const struct tly_codec *c, size_t n)
{
    /* compressBound: zlib's bound for any level with the default window and memLevel (stored blocks
     * included), for the zlib wrapper; a gzip wrapper is 12 bytes longer. */
    if (n > (SIZE_MAX - 64) / 2)
        return SIZE_MAX;
    return (size_t)compressBound((uLong)n) + (c->id == TLY_CODEC_GZIP ? GZIP_EXTRA : 0);
}

static size_t workspace(const struct tly_codec *c, size_t n, bool decode, bool windowed)
{
    (void)c, (void)n, (void)windowed;
    /* zlib 1.2.13's inflate: its state (about 7 KiB) and the window it allocates on first output */
    if (decode)
        return 8192 + ((size_t)1 << WBITS);
    /* deflate: its state (about 6 KiB), the sliding window (2 x 32 KiB), prev (32 Ki x 2 bytes), head
     * (2^(memLevel + 7) x 2 bytes) and the pending buffer (2^(memLevel + 6) x 4 bytes; 5 in zlib 1.3) */
    return 8192 + ((size_t)2 << WBITS) + ((size_t)2 << WBITS) + ((size_t)2 << (MEM_LEVEL + 7)) +
           ((size_t)5 << (MEM_LEVEL + 6));
}

static int check(const struct tly_codec *c)
{
    if (c->gzip.level < -1 || c->gzip.level > 9)
        return tly_fail(TLY_EUSAGE, "%s: level %d is not -1..9", fmt(c->id), c->gzip.level);
    return 0;
}

static int set(struct tly_codec *c, const char *key, const char *val)
{
    long long v;
    int rc;
    if (strcmp(key, "level") == 0) {
        if ((rc = tly__codec_int(fmt(c->id), key, val, -1, 9, &v)) == 0)
            c->gzip.level = (int)v;
        return rc;
    }
    return tly_fail(TLY_EUSAGE, "%s: unknown option '%s' (level)", fmt(c->id), key);
}

static int decoded_size(const struct tly_codec *c, const void *src, size_t n, uint64_t *out)
{
    (void)src, (void)n, (void)out;
    if (c->id == TLY_CODEC_ZLIB)
        return tly_fail(TLY_EUNSUPPORTED, "zlib: a zlib stream records no decoded size");
    return tly_fail(TLY_EUNSUPPORTED, "gzip: the decoded size is recorded only mod 2^32, at the end of the stream");
}

static int zfail(const char *name, const z_stream *z, int r)
{
    if (r == Z_MEM_ERROR)
        return tly_fail(-ENOMEM, "%s: out of memory", name);
    return tly_fail(TLY_ECODEC, "%s: %s (zlib %d)", name, z->msg ? z->msg : zError(r), r);
}

/* ---- deflate ---- */

/* Where deflate's output goes: into buf[pos..cap), and to sink (when set) each time buf fills. */
struct zout {
    unsigned char *buf;
    size_t cap, pos;
    tly_sink_fn sink; /* NULL: one-shot into the caller's dst, which must hold it all */
    void *arg;
    enum tly_stage caller; /* the sink does the caller's work (a put), so it runs in the caller's stage */
    const char *name;
};

static int zout_drain(struct zout *o)
{
    if (o->pos == 0)
        return 0;
    int rc;
    TLY_STAGE(o->caller)
    {
        rc = o->sink(o->arg, o->buf, o->pos);
    }
    o->pos = 0;
    if (rc > 0)
        return tly_fail(TLY_EUSAGE, "%s: stream sink returned %d, not 0 or a negative code", o->name, rc);
    return rc;
}

static unsigned char empty[1]; /* zlib refuses a NULL next_out even with no room: this stands for none */

/* Deflate @p n bytes at @p in (with @p finish, then end the stream), draining @p o as it fills. */
static int deflate_piece(z_stream *z, struct zout *o, const unsigned char *in, size_t n, bool finish)
{
    if (n == 0 && !finish)
        return 0;
    for (;;) {
        size_t take = zmin(n, Z_MAX), room = zmin(o->cap - o->pos, Z_MAX);
        int flush = finish && take == n ? Z_FINISH : Z_NO_FLUSH;
        z->next_in = (Bytef *)(n ? in : empty); /* zlib does not write through next_in */
        z->avail_in = (uInt)take;
        z->next_out = room ? o->buf + o->pos : empty;
        z->avail_out = (uInt)room;
        int r = deflate(z, flush);
        size_t used = take - z->avail_in, made = room - z->avail_out;
        if (used) /* (in may be NULL when there is nothing to take) */
            in += used;
        n -= used;
        o->pos += made;
        if (r == Z_STREAM_ERROR)
            return zfail(o->name, z, r);
        bool done = flush == Z_FINISH ? r == Z_STREAM_END : n == 0;
        if (o->pos == o->cap || (done && finish)) {
            if (o->sink) {
                int rc = zout_drain(o);
                if (rc)
                    return rc;
            } else if (!done) {
                return tly_fail(TLY_ECODEC, "%s: the output does not fit in %zu bytes", o->name, o->cap);
            }
        }
        if (done)
            return 0;
        if (used == 0 && made == 0 && o->pos < o->cap) /* Z_BUF_ERROR with room and input: cannot happen */
            return tly_fail(TLY_EINTERNAL, "%s: deflate made no progress", o->name);
    }
}

static int deflater_new(const struct tly_codec *c, z_stream *z)
{
    int rc = check(c);
    if (rc)
        return rc;
    *z = (z_stream){0};
    int r = deflateInit2(z, c->gzip.level, Z_DEFLATED, wbits(c->id), MEM_LEVEL, Z_DEFAULT_STRATEGY);
    return r == Z_OK ? 0 : zfail(fmt(c->id), z, r);
}

static int deflate_all(const struct tly_codec *c, struct zout *o, const struct iovec *iov, int niov)
{
    z_stream z;
    int rc = deflater_new(c, &z);
    for (int i = 0; rc == 0 && i < niov; i++)
        rc = deflate_piece(&z, o, iov[i].iov_base, iov[i].iov_len, false);
    if (rc == 0)
        rc = deflate_piece(&z, o, NULL, 0, true);
    deflateEnd(&z);
    return rc;
}

static int encode(const struct tly_codec *c, void *dst, size_t cap, const void *src, size_t n, size_t *out_n)
{
    struct iovec iov = {(void *)src, n};
    struct zout o = {.buf = dst, .cap = cap, .name = fmt(c->id)};
    int rc = deflate_all(c, &o, &iov, 1);
    if (rc == 0)
        *out_n = o.pos;
    return rc;
}

static int stream_args(const struct tly_codec *c, const struct iovec *iov, int niov, uint64_t total, const void *out,
                       size_t out_cap, tly_sink_fn sink)
{
    if (c == NULL || (c->id != TLY_CODEC_GZIP && c->id != TLY_CODEC_ZLIB))
        return tly_fail(TLY_EUSAGE, "gzip: stream encoding needs a gzip or zlib codec");
    return tly__stream_args(fmt(c->id), iov, niov, total, out, out_cap, sink);
}

int tly_gzip_encode_stream(const struct tly_codec *c, const struct iovec *iov, int niov, uint64_t total, void *out,
                           size_t out_cap, tly_sink_fn sink, void *arg)
{
    int rc = stream_args(c, iov, niov, total, out, out_cap, sink);
    if (rc)
        return rc;
    struct zout o = {out, out_cap, 0, sink, arg, tly_stage_current(), fmt(c->id)};
    TLY_STAGE(TLY_ENCODE)
    {
        rc = deflate_all(c, &o, iov, niov);
    }
    return rc;
}

/* ---- inflate ---- */

struct tly_gzip_dstream {
    struct tly_dstream base; /* first: the registry's view of it */
    z_stream z;
    const char *name;
    bool gzip; /* members may follow one another */
    unsigned char *out;
    size_t cap, pos;  /* the destination (cap dst_n), or the caller's block buffer and what it holds */
    tly_sink_fn sink; /* NULL: inflating straight into the destination */
    void *arg;
    enum tly_stage caller;  /* the sink runs in the caller's stage */
    size_t dst_n, produced; /* produced: decoded so far, pos included */
    bool done;              /* at the end of a stream (member) */
    unsigned members;       /* members ended before the current one */
};

int tly_gzip_dstream_open(const struct tly_codec *c, void *dst, size_t dst_n, tly_sink_fn sink, void *arg, void *out,
                          size_t out_cap, struct tly_gzip_dstream **out_ds)
{
    if (c == NULL || (c->id != TLY_CODEC_GZIP && c->id != TLY_CODEC_ZLIB) || out_ds == NULL ||
        (sink == NULL && dst_n > 0 && dst == NULL) || (sink != NULL && (out == NULL || out_cap == 0)))
        return tly_fail(TLY_EUSAGE, "gzip: stream decoding needs a gzip or zlib codec and a destination or a sink");
    enum tly_stage caller = tly_stage_current();
    int rc = 0;
    TLY_STAGE(TLY_DECODE)
    {
        struct tly_gzip_dstream *ds = calloc(1, sizeof *ds);
        int r = ds ? inflateInit2(&ds->z, wbits(c->id)) : Z_MEM_ERROR;
        if (r != Z_OK) {
            rc = ds ? zfail(fmt(c->id), &ds->z, r) : tly_fail(-ENOMEM, "%s: out of memory", fmt(c->id));
            free(ds);
        } else {
            ds->name = fmt(c->id);
            ds->gzip = c->id == TLY_CODEC_GZIP;
            ds->out = sink ? out : dst;
            ds->cap = sink ? out_cap : dst_n;
            ds->sink = sink;
            ds->arg = arg;
            ds->caller = caller;
            ds->dst_n = dst_n;
            *out_ds = ds;
        }
    }
    return rc;
}

static int dstream_drain(struct tly_gzip_dstream *ds)
{
    if (ds->sink == NULL || ds->pos == 0)
        return 0;
    int rc;
    TLY_STAGE(ds->caller)
    {
        rc = ds->sink(ds->arg, ds->out, ds->pos);
    }
    ds->pos = 0;
    return rc > 0 ? tly_fail(TLY_EUSAGE, "%s: stream sink returned %d", ds->name, rc) : rc;
}

/* The verdict on one inflate() call, which had input. */
static int inflate_result(struct tly_gzip_dstream *ds, int r)
{
    switch (r) {
    case Z_OK:
        return 0;
    case Z_STREAM_END:
        ds->done = true;
        return 0;
    case Z_BUF_ERROR: /* input left and no room: the stream holds more than expected */
        return tly_fail(TLY_ECODEC, "%s: stream decodes to more than the %zu bytes expected", ds->name, ds->dst_n);
    case Z_NEED_DICT:
        return tly_fail(TLY_ECODEC, "%s: stream needs a preset dictionary", ds->name);
    case Z_DATA_ERROR:
        if (ds->members > 0 && ds->z.total_in <= 2) /* not even a gzip magic after the last member */
            return tly_fail(TLY_ECODEC, "gzip: trailing bytes after the stream are not another gzip member");
        return tly_fail(TLY_ECODEC, "%s: corrupt stream (%s)", ds->name, ds->z.msg ? ds->z.msg : "invalid data");
    default:
        return zfail(ds->name, &ds->z, r);
    }
}

/* The next bytes after the end of a stream: gzip, another member; zlib, trailing bytes. */
static int next_member(struct tly_gzip_dstream *ds, size_t n)
{
    if (!ds->gzip)
        return tly_fail(TLY_ECODEC, "zlib: %zu trailing bytes after the stream", n);
    int r = inflateReset(&ds->z);
    if (r != Z_OK)
        return zfail(ds->name, &ds->z, r);
    ds->done = false;
    ds->members++;
    return 0;
}

static int inflate_piece(struct tly_gzip_dstream *ds, const unsigned char *in, size_t n)
{
    int rc = 0;
    while (rc == 0 && n > 0) {
        if (ds->done && (rc = next_member(ds, n)) != 0)
            break;
        size_t take = zmin(n, Z_MAX), room = zmin(zmin(ds->cap - ds->pos, ds->dst_n - ds->produced), Z_MAX);
        ds->z.next_in = (Bytef *)in; /* zlib does not write through next_in */
        ds->z.avail_in = (uInt)take;
        ds->z.next_out = room ? ds->out + ds->pos : empty;
        ds->z.avail_out = (uInt)room;
        int r = inflate(&ds->z, Z_NO_FLUSH);
        size_t used = take - ds->z.avail_in, made = room - ds->z.avail_out;
        in += used;
        n -= used;
        ds->pos += made;
        ds->produced += made;
        rc = inflate_result(ds, r);
        if (rc == 0 && ds->sink && (ds->pos == ds->cap || ds->done))
            rc = dstream_drain(ds);
    }
    return rc;
}

int tly_gzip_dstream_feed(struct tly_gzip_dstream *ds, const void *in, size_t n)
{
    int rc;
    TLY_STAGE(TLY_DECODE)
    {
        rc = inflate_piece(ds, in, n);
    }
    return rc;
}

void tly_gzip_dstream_abort(struct tly_gzip_dstream *ds)
{
    if (ds == NULL)
        return;
    TLY_STAGE(TLY_DECODE)
    {
        inflateEnd(&ds->z);
        free(ds);
    }
}

int tly_gzip_dstream_close(struct tly_gzip_dstream *ds)
{
    if (ds == NULL)
        return 0;
    int rc = 0;
    if (!ds->done && ds->members > 0 && ds->z.total_in < 10) /* under a gzip header: no member */
        rc = tly_fail(TLY_ECODEC, "gzip: %lu trailing bytes after the stream", (unsigned long)ds->z.total_in);
    else if (!ds->done)
        rc = tly_fail(TLY_ECODEC, "%s: stream truncated (ends before its end%s)", ds->name,
                      ds->gzip ? " and trailer" : " and Adler-32");
    else if (ds->produced != ds->dst_n)
        rc = tly_fail(TLY_ECODEC, "%s: stream decoded to %zu bytes, expected %zu", ds->name, ds->produced, ds->dst_n);
    tly_gzip_dstream_abort(ds);
    return rc;
}

static int decode(const struct tly_codec *c, void *dst, size_t dst_n, const void *src, size_t n)
{
    struct tly_gzip_dstream *ds;
    int rc = tly_gzip_dstream_open(c, dst, dst_n, NULL, NULL, NULL, 0, &ds);
    if (rc)
        return rc;
    rc = tly_gzip_dstream_feed(ds, src, n);
    if (rc) {
        tly_gzip_dstream_abort(ds);
        return rc;
    }
    return tly_gzip_dstream_close(ds);
}

/* ---- the tables: gzip and zlib, one deflate ---- */

static size_t stream_block(bool decode)
{
    (void)decode;
    return TLY_GZIP_STREAM_BLOCK;
}

static int ds_open(const struct tly_codec *c, void *dst, size_t dst_n, tly_sink_fn sink, void *arg, void *out,
                   size_t out_cap, struct tly_dstream **out_ds)
{
    struct tly_gzip_dstream *ds;
    int rc = tly_gzip_dstream_open(c, dst, dst_n, sink, arg, out, out_cap, &ds);
    if (rc == 0)
        *out_ds = &ds->base;
    return rc;
}

static int ds_feed(struct tly_dstream *ds, const void *in, size_t n)
{
    return tly_gzip_dstream_feed((struct tly_gzip_dstream *)ds, in, n);
}

static int ds_close(struct tly_dstream *ds)
{
    return tly_gzip_dstream_close((struct tly_gzip_dstream *)ds);
}

static void ds_abort(struct tly_dstream *ds)
{
    tly_gzip_dstream_abort((struct tly_gzip_dstream *)ds);
}

#define DEFLATE_OPS                                                                                                    \
    .set = set, .bound = bound, .workspace = workspace, .encode = encode, .decode = decode,                            \
    .decoded_size = decoded_size, .stream_block = stream_block, .encode_stream = tly_gzip_encode_stream,               \
    .dstream_open = ds_open, .dstream_feed = ds_feed, .dstream_close = ds_close, .dstream_abort = ds_abort

const struct tly__codec_ops tly__codec_gzip = {.name = "gzip", .id = TLY_CODEC_GZIP, DEFLATE_OPS};
const struct tly__codec_ops tly__codec_zlib = {.name = "zlib", .id = TLY_CODEC_ZLIB, DEFLATE_OPS};
