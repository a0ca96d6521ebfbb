/* codec: zstd frames decoded as their bytes arrive (tly_zstd_dstream_*). */
#include "codec_util.h"

struct collect {
    unsigned char *buf;
    size_t n, cap;
    int fail_after; /* return an error on this call (0: never) */
    int calls;
};

static int collect(void *arg, const void *data, size_t n)
{
    struct collect *c = arg;
    if (++c->calls == c->fail_after)
        return TLY_EHTTP;
    cr_assert_leq(c->n + n, c->cap);
    memcpy(c->buf + c->n, data, n);
    c->n += n;
    return 0;
}

/* Encode @p n bytes of test data with zstd; the frame into *enc. */
static size_t encode(const void *src, size_t n, void **enc)
{
    struct tly_codec c = cu_codec(TLY_CODEC_ZSTD);
    size_t cap = tly_codec_bound(&c, n), out = 0;
    *enc = cu_alloc(cap);
    cr_assert_eq(tly_codec_encode(&c, *enc, cap, src, n, &out), 0);
    return out;
}

/* Feed @p enc in pieces of @p piece bytes. */
static int feed_all(struct tly_zstd_dstream *ds, const unsigned char *enc, size_t n, size_t piece)
{
    for (size_t off = 0; off < n; off += piece) {
        int rc = tly_zstd_dstream_feed(ds, enc + off, n - off < piece ? n - off : piece);
        if (rc)
            return rc;
    }
    return 0;
}

TLY_TEST(codec, dstream_into_a_destination_any_piece_size)
{
    struct tly_codec c = cu_codec(TLY_CODEC_ZSTD);
    size_t n = 3 * MiB + 17;
    unsigned char *src = cu_alloc(n), *dst = cu_alloc(n);
    cu_fill(src, n, 4, 1);
    void *enc;
    size_t en = encode(src, n, &enc);
    static const size_t pieces[] = {1, 7, 4096, 1 << 20, SIZE_MAX};
    for (size_t i = 0; i < sizeof pieces / sizeof *pieces; i++) {
        memset(dst, 0, n);
        struct tly_zstd_dstream *ds;
        cr_assert_eq(tly_zstd_dstream_open(&c, dst, n, NULL, NULL, NULL, 0, &ds), 0);
        cr_assert_eq(feed_all(ds, enc, en, pieces[i] < en ? pieces[i] : en), 0, "%s", tly_errmsg());
        cr_assert_eq(tly_zstd_dstream_close(ds), 0, "%s", tly_errmsg());
        cr_expect_eq(memcmp(src, dst, n), 0, "pieces of %zu bytes", pieces[i]);
    }
    free(src);
    free(dst);
    free(enc);
}

TLY_TEST(codec, dstream_through_a_sink_in_small_blocks)
{
    struct tly_codec c = cu_codec(TLY_CODEC_ZSTD);
    size_t n = MiB + 3;
    unsigned char *src = cu_alloc(n), win[1000];
    cu_fill(src, n, 2, 2);
    void *enc;
    size_t en = encode(src, n, &enc);
    struct collect col = {cu_alloc(n), 0, n, 0, 0};
    struct tly_zstd_dstream *ds;
    cr_assert_eq(tly_zstd_dstream_open(&c, NULL, n, collect, &col, win, sizeof win, &ds), 0);
    cr_assert_eq(feed_all(ds, enc, en, 5000), 0, "%s", tly_errmsg());
    cr_assert_eq(tly_zstd_dstream_close(ds), 0, "%s", tly_errmsg());
    cr_expect_eq(col.n, n);
    cr_expect_eq(memcmp(src, col.buf, n), 0);
    cr_expect_geq(col.calls, (int)(n / sizeof win));
    /* A sink error stops decoding and comes back. */
    col = (struct collect){col.buf, 0, n, 3, 0};
    cr_assert_eq(tly_zstd_dstream_open(&c, NULL, n, collect, &col, win, sizeof win, &ds), 0);
    cr_expect_eq(feed_all(ds, enc, en, en), TLY_EHTTP);
    tly_zstd_dstream_close(ds);
    free(col.buf);
    free(src);
    free(enc);
}

TLY_TEST(codec, dstream_refuses_bad_frames)
{
    struct tly_codec c = cu_codec(TLY_CODEC_ZSTD);
    size_t n = 200000;
    unsigned char *src = cu_alloc(n), *dst = cu_alloc(n + 10);
    cu_fill(src, n, 4, 3);
    void *enc;
    size_t en = encode(src, n, &enc);
    struct tly_zstd_dstream *ds;

    cr_assert_eq(tly_zstd_dstream_open(&c, dst, n, NULL, NULL, NULL, 0, &ds), 0);
    cr_expect_eq(feed_all(ds, enc, en - 10, 333), 0);
    cr_expect_eq(tly_zstd_dstream_close(ds), TLY_ECODEC, "truncated");
    cr_expect(strstr(tly_errmsg(), "truncated") != NULL, "%s", tly_errmsg());

    cr_assert_eq(tly_zstd_dstream_open(&c, dst, n + 10, NULL, NULL, NULL, 0, &ds), 0);
    cr_expect_eq(feed_all(ds, enc, en, 3), TLY_ECODEC, "content size");
    cr_expect(strstr(tly_errmsg(), "content size") != NULL, "%s", tly_errmsg());
    tly_zstd_dstream_close(ds);

    unsigned char *twice = cu_alloc(2 * en);
    memcpy(twice, enc, en);
    memcpy(twice + en, enc, en);
    cr_assert_eq(tly_zstd_dstream_open(&c, dst, n, NULL, NULL, NULL, 0, &ds), 0);
    cr_expect_eq(feed_all(ds, twice, 2 * en, 4096), TLY_ECODEC, "trailing bytes");
    cr_expect(strstr(tly_errmsg(), "trailing") != NULL, "%s", tly_errmsg());
    tly_zstd_dstream_close(ds);

    memset(twice, 0x5A, 64);
    cr_assert_eq(tly_zstd_dstream_open(&c, dst, n, NULL, NULL, NULL, 0, &ds), 0);
    cr_expect_eq(feed_all(ds, twice, 64, 64), TLY_ECODEC, "not a frame");
    tly_zstd_dstream_close(ds);
    free(twice);
    free(src);
    free(dst);
    free(enc);
}

TLY_TEST(codec, dstream_into_a_destination_needs_no_window)
{
    TLY_REQUIRE_TRACKING();
    struct tly_codec c = cu_codec(TLY_CODEC_ZSTD);
    size_t n = 32 * MiB;
    unsigned char *src = cu_alloc(n), *dst = cu_alloc(n);
    cu_fill(src, n, 4, 4);
    void *enc;
    size_t en = encode(src, n, &enc);
    struct tly_mem_snapshot a, b;
    tly_mem_reset_peaks();
    tly_mem_snapshot(&a);
    struct tly_zstd_dstream *ds;
    int rc = tly_zstd_dstream_open(&c, dst, n, NULL, NULL, NULL, 0, &ds);
    if (rc == 0)
        rc = feed_all(ds, enc, en, 1 << 20);
    int rc2 = tly_zstd_dstream_close(ds);
    tly_mem_snapshot(&b);
    cr_assert_eq(rc, 0);
    cr_assert_eq(rc2, 0);
    cr_expect_eq(memcmp(src, dst, n), 0);
    int64_t peak = b.stage[TLY_DECODE].peak_bytes - a.stage[TLY_DECODE].live_bytes;
    cr_expect_lt(peak, 1 << 20, "decoding 32 MiB into place holds %lld bytes in decode (no window)", (long long)peak);
    free(src);
    free(dst);
    free(enc);
}
