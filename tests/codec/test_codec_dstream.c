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
        struct tly_mem_snapshot s0, s1;
        tly_mem_snapshot(&s0);
        cr_assert_eq(tly_zstd_dstream_open(&c, dst, n, NULL, NULL, NULL, 0, &ds), 0);
        cr_assert_eq(feed_all(ds, enc, en, pieces[i] < en ? pieces[i] : en), 0, "%s", tly_errmsg());
        cr_assert_eq(tly_zstd_dstream_close(ds), 0, "%s", tly_errmsg());
        tly_mem_snapshot(&s1);
        cr_expect_eq(memcmp(src, dst, n), 0, "pieces of %zu bytes", pieces[i]);
        /* a compressed block split between pieces is stitched whole, counted; in one piece none is */
        uint64_t stitched = TLY_DELTA(s0, s1, TLY_DECODE, copy_bytes);
        if (pieces[i] >= en)
            cr_expect_eq(stitched, 0, "the frame in one piece: no copy");
        else
            cr_expect(stitched > 0 && stitched <= en, "pieces of %zu: %llu bytes stitched of %zu", pieces[i],
                      (unsigned long long)stitched, en);
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

/* Places for a placed decode: runs of @p run bytes every @p stride bytes of the chunk, the rest
 * unwanted; the runs land packed in @p out. */
struct places {
    unsigned char *out;
    size_t run, stride, asks, wrong_pos;
    uint64_t last, next; /* the last position asked for, and the end of the place given there */
    int fail_at;
};

static int place(void *arg, uint64_t pos, void **dst, size_t *len)
{
    struct places *p = arg;
    if (++p->asks == (size_t)p->fail_at)
        return TLY_EHTTP;
    /* the decoder may take less than a place (its scratch, the chunk's end), never skip or go back */
    p->wrong_pos += p->asks > 1 && (pos <= p->last || pos > p->next);
    p->last = pos;
    uint64_t k = pos / p->stride, in = pos % p->stride;
    if (in < p->run) {
        *dst = p->out + k * p->run + in;
        *len = p->run - in;
    } else {
        *dst = NULL;
        *len = p->stride - in;
    }
    p->next = pos + *len;
    return 0;
}

TLY_TEST(codec, dstream_placed_into_runs_copies_once)
{
    struct tly_codec c = cu_codec(TLY_CODEC_ZSTD);
    size_t n = 2 * MiB + 100;
    unsigned char *src = cu_alloc(n), scratch[333];
    cu_fill(src, n, 4, 5);
    void *enc;
    size_t en = encode(src, n, &enc);
    static const size_t runs[][2] = {{1, 2}, {100, 100}, {4096, 10000}, {300000, 700000}};
    static const size_t pieces[] = {1, 4096, SIZE_MAX};
    for (size_t r = 0; r < sizeof runs / sizeof *runs; r++)
        for (size_t i = 0; i < sizeof pieces / sizeof *pieces; i++) {
            size_t run = runs[r][0], stride = runs[r][1], nruns = (n + stride - 1) / stride;
            if (pieces[i] == 1 && stride < 1000)
                continue; /* a byte at a time through a byte-sized place: minutes, nothing new */
            struct places p = {.out = cu_alloc(nruns * run), .run = run, .stride = stride};
            struct tly_zstd_dstream *ds;
            struct tly_mem_snapshot s0, s1;
            tly_mem_snapshot(&s0);
            cr_assert_eq(tly_zstd_dstream_open_placed(&c, n, place, &p, scratch, sizeof scratch, &ds), 0);
            cr_assert_eq(feed_all(ds, enc, en, pieces[i] < en ? pieces[i] : en), 0, "%s", tly_errmsg());
            cr_assert_eq(tly_zstd_dstream_close(ds), 0, "%s", tly_errmsg());
            tly_mem_snapshot(&s1);
            size_t bad = 0;
            for (size_t at = 0; at < n; at++)
                if (at % stride < run)
                    bad += p.out[at / stride * run + at % stride] != src[at];
            cr_expect_eq(bad, 0, "runs %zu/%zu, pieces %zu: %zu bytes differ", run, stride, pieces[i], bad);
            cr_expect_eq(p.wrong_pos, 0, "asked only forward, within the last place");
            size_t wanted = n / stride * run + (n % stride < run ? n % stride : run);
            cr_expect_eq(TLY_DELTA(s0, s1, TLY_SCATTER, copy_bytes), wanted, "libzstd's copy into the runs: scatter");
            /* and decode: the rest, and the compressed blocks that arrived split (stitched whole) */
            uint64_t rest = TLY_DELTA(s0, s1, TLY_DECODE, copy_bytes);
            if (pieces[i] >= en)
                cr_expect_eq(rest, n - wanted, "its copy of the rest: decode");
            else
                cr_expect(rest > n - wanted && rest <= n - wanted + en, "the rest and the stitched blocks: %llu",
                          (unsigned long long)rest);
            free(p.out);
        }
    /* a place's error stops decoding and comes back; a truncated frame is refused */
    struct places p = {.out = cu_alloc(n), .run = 10, .stride = 10, .fail_at = 3};
    struct tly_zstd_dstream *ds;
    cr_assert_eq(tly_zstd_dstream_open_placed(&c, n, place, &p, scratch, sizeof scratch, &ds), 0);
    cr_expect_eq(feed_all(ds, enc, en, en), TLY_EHTTP);
    tly_zstd_dstream_abort(ds);
    p = (struct places){.out = p.out, .run = n, .stride = n};
    cr_assert_eq(tly_zstd_dstream_open_placed(&c, n, place, &p, scratch, sizeof scratch, &ds), 0);
    cr_expect_eq(feed_all(ds, enc, en - 7, 1000), 0);
    cr_expect_eq(tly_zstd_dstream_close(ds), TLY_ECODEC, "truncated");
    cr_expect(strstr(tly_errmsg(), "truncated") != NULL, "%s", tly_errmsg());
    cu_expect_err(tly_zstd_dstream_open_placed(&c, n, NULL, &p, scratch, sizeof scratch, &ds), TLY_EUSAGE, "zstd:");
    struct tly_codec g = cu_codec(TLY_CODEC_GZIP);
    struct tly_dstream *gs;
    cr_expect_eq(tly_dstream_open_placed(&g, n, place, &p, scratch, sizeof scratch, &gs), TLY_EUNSUPPORTED,
                 "gzip cannot place: the caller takes a sink");
    free(p.out);
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

static int discard(void *arg, const void *data, size_t n)
{
    (void)arg, (void)data, (void)n;
    return 0;
}

/* The stage's highest live bytes over the window opened by tly_mem_reset_peaks(), above its start. */
static int64_t stage_peak(enum tly_stage s, const struct tly_mem_snapshot *start)
{
    struct tly_mem_snapshot now;
    tly_mem_snapshot(&now);
    return now.stage[s].peak_bytes - start->stage[s].live_bytes;
}

/* tly_codec_workspace() counts what the libraries allocate for themselves (memory budgets add it to
 * a chunk's ticket): never below what they take, and not far above it. */
TLY_TEST(codec, workspace_bounds_what_the_libraries_take)
{
    TLY_REQUIRE_TRACKING();
    size_t n = 4 * MiB;
    unsigned char *src = cu_alloc(n), *dst = cu_alloc(n), out[1 << 17];
    cu_fill(src, n, 4, 3);
    struct tly_mem_snapshot start;
    for (int level = 1; level <= 3; level += 2) {
        struct tly_codec c = cu_codec(TLY_CODEC_ZSTD);
        c.zstd.level = level;
        for (int gathered = 0; gathered <= 1; gathered++) { /* one run, read in place; two, gathered */
            struct iovec iov[2] = {{src, gathered ? n / 2 : n}, {src + n / 2, n / 2}};
            tly_mem_reset_peaks();
            tly_mem_snapshot(&start);
            int rc = tly_zstd_encode_stream(&c, iov, 1 + gathered, n, out, sizeof out, discard, NULL);
            int64_t took = stage_peak(TLY_ENCODE, &start);
            int64_t ws = (int64_t)tly_codec_workspace(&c, n, false, gathered);
            cr_assert_eq(rc, 0, "%s", tly_errmsg());
            cr_expect(took <= ws && took >= ws / 2, "zstd level %d encode (%s): took %lld, workspace %lld", level,
                      gathered ? "gathered" : "in place", (long long)took, (long long)ws);
        }
    }
    struct tly_codec c = cu_codec(TLY_CODEC_ZSTD);
    void *enc;
    size_t en = encode(src, n, &enc);
    for (int windowed = 0; windowed <= 1; windowed++) {
        struct tly_zstd_dstream *ds;
        tly_mem_reset_peaks();
        tly_mem_snapshot(&start);
        int rc = windowed ? tly_zstd_dstream_open(&c, NULL, n, discard, NULL, out, sizeof out, &ds)
                          : tly_zstd_dstream_open(&c, dst, n, NULL, NULL, NULL, 0, &ds);
        if (rc == 0)
            rc = feed_all(ds, enc, en, 1 << 20);
        int rc2 = tly_zstd_dstream_close(ds);
        int64_t took = stage_peak(TLY_DECODE, &start), ws = (int64_t)tly_codec_workspace(&c, n, true, windowed);
        cr_assert_eq(rc, 0, "%s", tly_errmsg());
        cr_assert_eq(rc2, 0, "%s", tly_errmsg());
        /* windowed: the bound allows any window up to 8 MiB; this 4 MiB frame's level-3 window is 2 MiB */
        cr_expect(took <= ws && took >= ws / (windowed ? 4 : 2), "zstd decode (%s): took %lld, workspace %lld",
                  windowed ? "windowed" : "in place", (long long)took, (long long)ws);
    }
    free(enc);
    /* blosc: one thread encodes; a decode on 4 threads takes their temporaries */
    struct tly_codec b = cu_codec(TLY_CODEC_BLOSC);
    b.blosc.typesize = 4;
    enc = cu_alloc(tly_codec_bound(&b, n));
    tly_mem_reset_peaks();
    tly_mem_snapshot(&start);
    cr_assert_eq(tly_codec_encode(&b, enc, tly_codec_bound(&b, n), src, n, &en), 0, "%s", tly_errmsg());
    int64_t took = stage_peak(TLY_ENCODE, &start), ws = (int64_t)tly_codec_workspace(&b, n, false, false);
    cr_expect(took <= ws, "blosc encode: took %lld, workspace %lld", (long long)took, (long long)ws);
    b.threads = 4;
    tly_mem_reset_peaks();
    tly_mem_snapshot(&start);
    cr_assert_eq(tly_codec_decode(&b, dst, n, enc, en), 0, "%s", tly_errmsg());
    took = stage_peak(TLY_DECODE, &start), ws = (int64_t)tly_codec_workspace(&b, n, true, false);
    cr_expect(took <= ws && took > 0, "blosc decode on 4 threads: took %lld, workspace %lld", (long long)took,
              (long long)ws);
    cr_expect_eq(memcmp(src, dst, n), 0);
    free(enc);
    free(src);
    free(dst);
}

/*
 * Issue 15, D10: every corrupt chunk read as "frame truncated" (close's verdict replaced the feed's
 * reason). Each frame's own reason now stands, fed whole or a byte at a time, and abort() keeps it.
 */
TLY_TEST(codec, dstream_bad_frames_keep_their_reason)
{
    unsigned char block[3 + 64] = {(64 << 3 | 1) & 0xff, (64 << 3) >> 8, 0}; /* the last block, raw */
    struct {
        const char *name, *reason;
        unsigned char head[16];
        size_t head_n;
    } frames[] = {
        {"bad magic", "Unknown frame descriptor", {0, 1, 2, 3}, 4},
        {"no content size", "content size", {0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x00}, 6},
        {"content size 2^62", "4611686018427387904", {0x28, 0xb5, 0x2f, 0xfd, 0xe0, 0, 0, 0, 0, 0, 0, 0, 0x40}, 13},
        {"window log 41", "memory", {0x28, 0xb5, 0x2f, 0xfd, 0x80, 0xf8, 64, 0, 0, 0}, 10},
    };
    struct tly_codec c = cu_codec(TLY_CODEC_ZSTD);
    unsigned char dst[64];
    for (size_t i = 0; i < sizeof frames / sizeof frames[0]; i++) {
        unsigned char frame[16 + sizeof block];
        memcpy(frame, frames[i].head, frames[i].head_n);
        memcpy(frame + frames[i].head_n, block, sizeof block);
        size_t n = frames[i].head_n + sizeof block;
        for (size_t piece = 1; piece <= n; piece = piece == 1 ? n : n + 1) {
            struct tly_zstd_dstream *ds;
            cr_assert_eq(tly_zstd_dstream_open(&c, dst, sizeof dst, NULL, NULL, NULL, 0, &ds), 0);
            int rc = feed_all(ds, frame, n, piece);
            cr_expect_eq(rc, TLY_ECODEC, "%s (pieces of %zu): %d", frames[i].name, piece, rc);
            tly_zstd_dstream_abort(ds);
            cr_expect(strstr(tly_errmsg(), frames[i].reason) != NULL, "%s (pieces of %zu): %s", frames[i].name, piece,
                      tly_errmsg());
        }
        cr_expect_neq(tly_codec_decode(&c, dst, sizeof dst, frame, n), 0, "%s decoded whole", frames[i].name);
        cr_expect(strstr(tly_errmsg(), frames[i].reason) != NULL, "%s whole: %s", frames[i].name, tly_errmsg());
    }
}
