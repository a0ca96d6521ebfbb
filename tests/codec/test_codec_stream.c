/*
 * codec: streaming zstd compression reads a chunk's runs in place and hands its output to a sink
 * through the caller's bounded buffer; the frame records the total, and decodes with
 * tly_codec_decode to the concatenation of the runs.
 */
#include <errno.h>

#include <zstd.h>

#include "codec/codec_util.h"

TestSuite(codec);

/* A sink that appends to a fixed buffer (no allocation: it may run inside a stage under test). */
struct collect {
    unsigned char *buf;
    size_t cap, len;
    size_t calls, short_calls; /* short: a block smaller than the output buffer */
    size_t block_cap, max_block;
    int fail_at; /* return -EIO on this call (1-based); 0: never */
    enum tly_stage stage_seen;
};

static int collect_sink(void *arg, const void *data, size_t n)
{
    struct collect *k = arg;
    k->calls++;
    k->stage_seen = tly_stage_current();
    if (k->fail_at > 0 && k->calls == (size_t)k->fail_at)
        return -EIO;
    if (n > k->max_block)
        k->max_block = n;
    if (n < k->block_cap)
        k->short_calls++;
    if (n > k->cap - k->len)
        return -ENOSPC;
    memcpy(k->buf + k->len, data, n); /* test fixture: collecting the output, not an engine copy */
    k->len += n;
    return 0;
}

static struct collect collect_new(size_t cap, size_t block_cap)
{
    return (struct collect){.buf = cu_alloc(cap), .cap = cap, .block_cap = block_cap};
}

/* Decode the collected frame with the codec and compare it with @p want. */
static void expect_frame(const struct tly_codec *c, const struct collect *k, const void *want, size_t n)
{
    cr_expect_eq(ZSTD_getFrameContentSize(k->buf, k->len), (unsigned long long)n, "frame records the total");
    unsigned char *back = cu_alloc(n);
    int rc = tly_codec_decode(c, back, n, k->buf, k->len);
    cr_assert_eq(rc, 0, "%s", tly_errmsg());
    cr_expect_eq(memcmp(back, want, n), 0, "stream decodes to the concatenation");
    free(back);
}

static void stream_case(size_t n, size_t out_cap, int checksum)
{
    unsigned char *src = cu_alloc(n), *out = cu_alloc(out_cap);
    cu_fill(src, n, 4, n + out_cap);
    struct iovec iov[64];
    int niov = cu_split(src, n, iov, 64);
    struct tly_codec c = cu_codec(TLY_CODEC_ZSTD);
    c.zstd.checksum = checksum;
    struct collect k = collect_new(ZSTD_compressBound(n) + 1024, out_cap);
    int rc = tly_zstd_encode_stream(&c, iov, niov, n, out, out_cap, collect_sink, &k);
    cr_assert_eq(rc, 0, "%s", tly_errmsg());
    expect_frame(&c, &k, src, n);
    cr_expect_leq(k.max_block, out_cap);
    if (out_cap >= ZSTD_CStreamOutSize()) /* each block compressed straight into the output, then drained */
        cr_expect_leq(k.calls, n / ZSTD_BLOCKSIZE_MAX + 2, "a sink call per block of zstd's (%zu calls)", k.calls);
    else /* smaller: libzstd's own buffer fills it */
        cr_expect_leq(k.short_calls, 1, "only the last block may be short (%zu were)", k.short_calls);
    cr_expect_eq(cu_zstd_checksum_flag(k.buf, k.len), checksum);
    free(k.buf);
    free(out);
    free(src);
}

TLY_TEST(codec, stream_equals_concatenation)
{
    stream_case(MiB + 333, ZSTD_CStreamOutSize(), 0);
}

TLY_TEST(codec, stream_with_checksum)
{
    stream_case(500000, ZSTD_CStreamOutSize(), 1);
}

TLY_TEST(codec, stream_tiny_out_buffer_goes_through_the_sink)
{
    size_t n = 4 * MiB;
    unsigned char *src = cu_alloc(n), *out = cu_alloc(1024);
    cu_fill_random(src, n, 3); /* incompressible: about 4096 full blocks */
    struct iovec iov[1] = {{src, n}};
    struct tly_codec c = cu_codec(TLY_CODEC_ZSTD);
    struct collect k = collect_new(ZSTD_compressBound(n), 1024);
    int rc = tly_zstd_encode_stream(&c, iov, 1, n, out, 1024, collect_sink, &k);
    cr_assert_eq(rc, 0, "%s", tly_errmsg());
    cr_expect_geq(k.calls, n / 1024);
    cr_expect_eq(k.max_block, 1024);
    cr_expect_leq(k.short_calls, 1);
    expect_frame(&c, &k, src, n);
    free(k.buf);
    free(out);
    free(src);
}

TLY_TEST(codec, stream_one_byte_out_buffer)
{
    stream_case(5000, 1, 1);
}

TLY_TEST(codec, stream_empty)
{
    unsigned char out[64];
    struct tly_codec c = cu_codec(TLY_CODEC_ZSTD);
    struct collect k = collect_new(256, sizeof out);
    int rc = tly_zstd_encode_stream(&c, NULL, 0, 0, out, sizeof out, collect_sink, &k);
    cr_assert_eq(rc, 0, "%s", tly_errmsg());
    cr_expect_eq(k.calls, 1);
    cr_expect_eq(ZSTD_getFrameContentSize(k.buf, k.len), 0);
    unsigned char none[1];
    cr_expect_eq(tly_codec_decode(&c, none, 0, k.buf, k.len), 0, "%s", tly_errmsg());
    free(k.buf);
}

TLY_TEST(codec, stream_total_mismatch_is_refused)
{
    unsigned char src[1000], out[256];
    cu_fill(src, sizeof src, 1, 1);
    struct iovec iov[2] = {{src, 600}, {src + 600, 400}};
    struct tly_codec c = cu_codec(TLY_CODEC_ZSTD);
    struct collect k = collect_new(4096, sizeof out);
    cu_expect_err(tly_zstd_encode_stream(&c, iov, 2, 999, out, sizeof out, collect_sink, &k), TLY_EUSAGE, "zstd:");
    cu_expect_err(tly_zstd_encode_stream(&c, iov, 2, 1001, out, sizeof out, collect_sink, &k), TLY_EUSAGE, "zstd:");
    cr_expect_eq(k.calls, 0, "nothing reaches the sink");
    cr_expect_eq(tly_zstd_encode_stream(&c, iov, 2, 1000, out, sizeof out, collect_sink, &k), 0, "%s", tly_errmsg());
    free(k.buf);
}

TLY_TEST(codec, stream_sink_error_propagates)
{
    size_t n = 200000;
    unsigned char *src = cu_alloc(n), out[1024];
    cu_fill_random(src, n, 9);
    struct iovec iov[1] = {{src, n}};
    struct tly_codec c = cu_codec(TLY_CODEC_ZSTD);
    for (int at = 1; at <= 3; at++) {
        struct collect k = collect_new(ZSTD_compressBound(n), sizeof out);
        k.fail_at = at;
        int rc = tly_zstd_encode_stream(&c, iov, 1, n, out, sizeof out, collect_sink, &k);
        cr_expect_eq(rc, -EIO, "sink error on call %d: rc %d", at, rc);
        cr_expect_eq(k.calls, (size_t)at, "no call after the error");
        free(k.buf);
    }
    free(src);
}

static int positive_sink(void *arg, const void *data, size_t n)
{
    (void)arg, (void)data, (void)n;
    return 1;
}

TLY_TEST(codec, stream_bad_arguments)
{
    unsigned char src[100] = {0}, out[64];
    struct iovec iov[1] = {{src, sizeof src}};
    struct tly_codec z = cu_codec(TLY_CODEC_ZSTD), b = cu_codec(TLY_CODEC_BLOSC);
    struct collect k = collect_new(1024, sizeof out);
    cu_expect_err(tly_zstd_encode_stream(&b, iov, 1, 100, out, sizeof out, collect_sink, &k), TLY_EUSAGE, "zstd:");
    cu_expect_err(tly_zstd_encode_stream(&z, iov, 1, 100, out, 0, collect_sink, &k), TLY_EUSAGE, "zstd:");
    cu_expect_err(tly_zstd_encode_stream(&z, iov, 1, 100, out, sizeof out, NULL, &k), TLY_EUSAGE, "zstd:");
    cu_expect_err(tly_zstd_encode_stream(&z, iov, -1, 100, out, sizeof out, collect_sink, &k), TLY_EUSAGE, "zstd:");
    z.zstd.level = 99;
    cu_expect_err(tly_zstd_encode_stream(&z, iov, 1, 100, out, sizeof out, collect_sink, &k), TLY_EUSAGE, "zstd:");
    z.zstd.level = 3;
    cu_expect_err(tly_zstd_encode_stream(&z, iov, 1, 100, out, sizeof out, positive_sink, NULL), TLY_EUSAGE, "zstd:");
    cr_expect_eq(k.calls, 0);
    free(k.buf);
}

/* The sink does the caller's work (a put), so its allocations are the caller's, not encode's. */
TLY_TEST(codec, stream_sink_runs_in_the_callers_stage)
{
    size_t n = 100000;
    unsigned char *src = cu_alloc(n), out[4096];
    cu_fill(src, n, 4, 6);
    struct iovec iov[1] = {{src, n}};
    struct tly_codec c = cu_codec(TLY_CODEC_ZSTD);
    struct collect k = collect_new(ZSTD_compressBound(n), sizeof out);
    int rc = -1;
    enum tly_stage after = TLY_NSTAGES;
    TLY_STAGE(TLY_PUT)
    {
        rc = tly_zstd_encode_stream(&c, iov, 1, n, out, sizeof out, collect_sink, &k);
        after = tly_stage_current();
    }
    cr_assert_eq(rc, 0, "%s", tly_errmsg());
    cr_expect_eq(k.stage_seen, TLY_PUT, "sink ran in %s", tly_stage_name(k.stage_seen));
    cr_expect_eq(after, TLY_PUT, "the caller's stage comes back");
    cr_expect_eq(tly_stage_current(), TLY_UNSTAGED);
    free(k.buf);
    free(src);
}
