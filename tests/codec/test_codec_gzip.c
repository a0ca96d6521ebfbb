/*
 * codec: gzip and zlib — round trips of both formats checked against zlib's own decoder, streaming
 * encode (pieces in place, bounded blocks) against one-shot, the push decoder (any piece size, into
 * a destination or through a sink), headers and members other writers make, and every way a stream
 * can be wrong: corrupt, truncated, trailing bytes, another size.
 */
#include <errno.h>
#include <zlib.h>

#include "codec/codec_util.h"

TestSuite(codec);

static const enum tly_codec_id formats[] = {TLY_CODEC_GZIP, TLY_CODEC_ZLIB};

static const char *prefix(enum tly_codec_id id)
{
    return id == TLY_CODEC_GZIP ? "gzip:" : "zlib:";
}

/* zlib's own inflate of a whole stream (windowBits 15, +16 for gzip), independent of tally's loop. */
static void expect_zlib_inflates(enum tly_codec_id id, const unsigned char *enc, size_t m, const void *want, size_t n)
{
    unsigned char *back = cu_alloc(n + 1);
    z_stream z = {0};
    cr_assert_eq(inflateInit2(&z, id == TLY_CODEC_GZIP ? 31 : 15), Z_OK);
    z.next_in = (Bytef *)enc;
    z.avail_in = (uInt)m;
    z.next_out = back;
    z.avail_out = (uInt)n + 1;
    int r = inflate(&z, Z_FINISH);
    cr_expect_eq(r, Z_STREAM_END, "zlib's inflate: %d %s", r, z.msg ? z.msg : "");
    cr_expect_eq(z.total_out, n);
    cr_expect_eq(z.avail_in, 0, "nothing after the stream");
    cr_expect_eq(memcmp(back, want, n), 0);
    inflateEnd(&z);
    free(back);
}

TLY_TEST(codec, gzip_and_zlib_round_trip_sizes_and_levels)
{
    static const size_t sizes[] = {0, 1, 100, 65535, 65536, 1000003, 3 * MiB + 17};
    static const int levels[] = {-1, 0, 1, 6, 9};
    size_t max = 3 * MiB + 17;
    unsigned char *src = cu_alloc(max), *rnd = cu_alloc(max);
    cu_fill(src, max, 4, 7);
    cu_fill_random(rnd, max, 8);
    for (size_t f = 0; f < 2; f++)
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
            for (size_t l = 0; l < sizeof levels / sizeof levels[0]; l++) {
                if (TLY_UNDER_VALGRIND() && sizes[i] > MiB)
                    continue;
                struct tly_codec c = cu_codec(formats[f]);
                c.gzip.level = levels[l];
                unsigned char *enc;
                size_t m = cu_roundtrip_keep(&c, src, sizes[i], &enc);
                if (formats[f] == TLY_CODEC_GZIP)
                    cr_expect(m >= 18 && enc[0] == 0x1f && enc[1] == 0x8b, "a gzip member");
                else
                    cr_expect(m >= 6 && (enc[0] & 0x0f) == 8 && ((enc[0] << 8) | enc[1]) % 31 == 0, "a zlib header");
                expect_zlib_inflates(formats[f], enc, m, src, sizes[i]);
                free(enc);
                /* incompressible bytes stay under the bound (stored blocks at level 0) */
                cu_roundtrip(&c, rnd, sizes[i]);
            }
    free(src);
    free(rnd);
}

TLY_TEST(codec, gzip_level_changes_the_output)
{
    size_t n = MiB;
    unsigned char *src = cu_alloc(n);
    cu_fill(src, n, 4, 9);
    struct tly_codec c = cu_codec(TLY_CODEC_GZIP);
    c.gzip.level = 0;
    size_t stored = cu_roundtrip(&c, src, n);
    c.gzip.level = 9;
    size_t best = cu_roundtrip(&c, src, n);
    cr_expect_gt(stored, n, "level 0 stores");
    cr_expect_lt(best, n / 2, "level 9 compresses (%zu of %zu)", best, n);
    free(src);
}

/* A sink that appends to a fixed buffer, counting calls and the largest block. */
struct collect {
    unsigned char *buf;
    size_t cap, len, calls, max_block;
    size_t fail_at; /* return -EIO on this call (1-based); 0: never */
    enum tly_stage stage_seen;
};

static int collect(void *arg, const void *data, size_t n)
{
    struct collect *k = arg;
    k->calls++;
    k->stage_seen = tly_stage_current();
    if (k->fail_at && k->calls == k->fail_at)
        return -EIO;
    if (n > k->max_block)
        k->max_block = n;
    if (n > k->cap - k->len)
        return -ENOSPC;
    memcpy(k->buf + k->len, data, n); /* test fixture: collecting the output, not an engine copy */
    k->len += n;
    return 0;
}

TLY_TEST(codec, gzip_stream_encode_reads_pieces_in_place)
{
    size_t n = 2 * MiB + 5;
    unsigned char *src = cu_alloc(n), out[10000];
    cu_fill(src, n, 4, 3);
    struct iovec iov[64];
    int niov = cu_split(src, n, iov, 64);
    for (size_t f = 0; f < 2; f++) {
        struct tly_codec c = cu_codec(formats[f]);
        size_t bound = tly_codec_bound(&c, n), m = 0;
        unsigned char *one = cu_alloc(bound);
        cr_assert_eq(tly_codec_encode(&c, one, bound, src, n, &m), 0, "%s", tly_errmsg());
        struct collect k = {.buf = cu_alloc(bound), .cap = bound};
        int rc;
        TLY_STAGE(TLY_PUT)
        {
            rc = tly_gzip_encode_stream(&c, iov, niov, n, out, sizeof out, collect, &k);
        }
        cr_assert_eq(rc, 0, "%s", tly_errmsg());
        cr_expect_eq(k.stage_seen, TLY_PUT, "the sink runs in the caller's stage");
        cr_expect_leq(k.max_block, sizeof out);
        cr_expect_geq(k.calls, k.len / sizeof out);
        cr_expect_eq(k.len, m, "%s: streamed %zu bytes, one-shot %zu", prefix(c.id), k.len, m);
        cr_expect_eq(memcmp(k.buf, one, m < k.len ? m : k.len), 0, "the same stream as one-shot");
        expect_zlib_inflates(c.id, k.buf, k.len, src, n);
        /* pieces that do not add up: refused before any output */
        k = (struct collect){.buf = k.buf, .cap = bound};
        cu_expect_err(tly_gzip_encode_stream(&c, iov, niov, n + 1, out, sizeof out, collect, &k), TLY_EUSAGE,
                      prefix(c.id));
        cr_expect_eq(k.calls, 0);
        /* a sink's error stops the stream and comes back */
        k = (struct collect){.buf = k.buf, .cap = bound, .fail_at = 2};
        cr_expect_eq(tly_gzip_encode_stream(&c, iov, niov, n, out, sizeof out, collect, &k), -EIO);
        cr_expect_eq(k.calls, 2);
        free(k.buf);
        free(one);
    }
    struct tly_codec z = cu_codec(TLY_CODEC_ZSTD);
    cu_expect_err(tly_gzip_encode_stream(&z, iov, niov, n, out, sizeof out, collect, NULL), TLY_EUSAGE, "gzip:");
    free(src);
}

TLY_TEST(codec, gzip_encode_output_that_does_not_fit)
{
    size_t n = 100000;
    unsigned char *src = cu_alloc(n), *dst = cu_alloc(n);
    cu_fill_random(src, n, 5);
    for (size_t f = 0; f < 2; f++) {
        struct tly_codec c = cu_codec(formats[f]);
        size_t m;
        cu_expect_err(tly_codec_encode(&c, dst, n / 2, src, n, &m), TLY_ECODEC, prefix(c.id));
        cu_expect_err(tly_codec_encode(&c, NULL, 0, src, n, &m), TLY_ECODEC, prefix(c.id));
        c.gzip.level = 10;
        cu_expect_err(tly_codec_encode(&c, dst, n, src, n, &m), TLY_EUSAGE, prefix(c.id));
    }
    free(src);
    free(dst);
}

/* Encode with tally's one-shot call; the stream into *enc. */
static size_t encode(enum tly_codec_id id, const void *src, size_t n, unsigned char **enc)
{
    struct tly_codec c = cu_codec(id);
    size_t cap = tly_codec_bound(&c, n), m = 0;
    *enc = cu_alloc(cap);
    cr_assert_eq(tly_codec_encode(&c, *enc, cap, src, n, &m), 0, "%s", tly_errmsg());
    return m;
}

static int feed_all(struct tly_gzip_dstream *ds, const unsigned char *enc, size_t n, size_t piece)
{
    for (size_t off = 0; off < n; off += piece) {
        int rc = tly_gzip_dstream_feed(ds, enc + off, n - off < piece ? n - off : piece);
        if (rc)
            return rc;
    }
    return 0;
}

/* Decode @p enc whole (tly_codec_decode) and pushed in pieces of 1, 7 and all its bytes, into @p dst_n
 * bytes; the first result that is not 0, or 0. The message is the failing call's. */
static int decode_every_way(enum tly_codec_id id, const unsigned char *enc, size_t m, size_t dst_n)
{
    struct tly_codec c = cu_codec(id);
    unsigned char *dst = cu_alloc(dst_n);
    int rc = tly_codec_decode(&c, dst, dst_n, enc, m);
    static const size_t pieces[] = {1, 7, SIZE_MAX};
    for (size_t i = 0; rc == 0 && i < sizeof pieces / sizeof pieces[0]; i++) {
        struct tly_gzip_dstream *ds;
        cr_assert_eq(tly_gzip_dstream_open(&c, dst, dst_n, NULL, NULL, NULL, 0, &ds), 0);
        rc = feed_all(ds, enc, m, pieces[i] < m ? pieces[i] : (m ? m : 1));
        if (rc)
            tly_gzip_dstream_abort(ds);
        else
            rc = tly_gzip_dstream_close(ds);
    }
    free(dst);
    return rc;
}

TLY_TEST(codec, gzip_dstream_into_a_destination_any_piece_size)
{
    size_t n = 3 * MiB + 17;
    unsigned char *src = cu_alloc(n), *dst = cu_alloc(n);
    cu_fill(src, n, 4, 1);
    static const size_t pieces[] = {1, 7, 4096, 1 << 20, SIZE_MAX};
    for (size_t f = 0; f < 2; f++) {
        struct tly_codec c = cu_codec(formats[f]);
        unsigned char *enc;
        size_t en = encode(c.id, src, n, &enc);
        for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++) {
            if (TLY_UNDER_VALGRIND() && pieces[i] < 4096)
                continue;
            memset(dst, 0, n);
            struct tly_gzip_dstream *ds;
            cr_assert_eq(tly_gzip_dstream_open(&c, dst, n, NULL, NULL, NULL, 0, &ds), 0);
            cr_assert_eq(feed_all(ds, enc, en, pieces[i] < en ? pieces[i] : en), 0, "%s", tly_errmsg());
            cr_assert_eq(tly_gzip_dstream_close(ds), 0, "%s", tly_errmsg());
            cr_expect_eq(memcmp(src, dst, n), 0, "%s pieces of %zu bytes", prefix(c.id), pieces[i]);
        }
        free(enc);
    }
    free(src);
    free(dst);
}

TLY_TEST(codec, gzip_dstream_through_a_sink_in_small_blocks)
{
    size_t n = MiB + 3;
    unsigned char *src = cu_alloc(n), win[1000];
    cu_fill(src, n, 2, 2);
    for (size_t f = 0; f < 2; f++) {
        struct tly_codec c = cu_codec(formats[f]);
        unsigned char *enc;
        size_t en = encode(c.id, src, n, &enc);
        struct collect k = {.buf = cu_alloc(n), .cap = n};
        struct tly_gzip_dstream *ds;
        int rc;
        TLY_STAGE(TLY_SCATTER) /* (nothing asserted inside a stage scope: Criterion's assertions allocate) */
        {
            rc = tly_gzip_dstream_open(&c, NULL, n, collect, &k, win, sizeof win, &ds);
            if (rc == 0)
                rc = feed_all(ds, enc, en, 5000);
            int rc2 = tly_gzip_dstream_close(ds);
            rc = rc ? rc : rc2;
        }
        cr_assert_eq(rc, 0, "%s", tly_errmsg());
        cr_expect_eq(k.stage_seen, TLY_SCATTER, "the sink runs in the caller's stage");
        cr_expect_eq(k.len, n);
        cr_expect_eq(memcmp(src, k.buf, n), 0);
        cr_expect_leq(k.max_block, sizeof win);
        cr_expect_geq(k.calls, n / sizeof win);
        /* a sink error stops decoding and comes back */
        k = (struct collect){.buf = k.buf, .cap = n, .fail_at = 3};
        cr_assert_eq(tly_gzip_dstream_open(&c, NULL, n, collect, &k, win, sizeof win, &ds), 0);
        cr_expect_eq(feed_all(ds, enc, en, en), -EIO);
        tly_gzip_dstream_abort(ds);
        /* a stream longer than expected, through the sink too */
        k = (struct collect){.buf = k.buf, .cap = n};
        cr_assert_eq(tly_gzip_dstream_open(&c, NULL, n - 1, collect, &k, win, sizeof win, &ds), 0);
        cu_expect_err(feed_all(ds, enc, en, 4096), TLY_ECODEC, prefix(c.id));
        cr_expect(strstr(tly_errmsg(), "more than") != NULL, "%s", tly_errmsg());
        tly_gzip_dstream_abort(ds);
        free(k.buf);
        free(enc);
    }
    free(src);
}

TLY_TEST(codec, gzip_refuses_truncated_corrupt_trailing_and_wrong_sizes)
{
    size_t n = 200000;
    unsigned char *src = cu_alloc(n);
    cu_fill(src, n, 4, 3);
    for (size_t f = 0; f < 2; f++) {
        enum tly_codec_id id = formats[f];
        const char *p = prefix(id);
        unsigned char *enc;
        size_t en = encode(id, src, n, &enc);
        cr_expect_eq(decode_every_way(id, enc, en, n), 0, "%s", tly_errmsg());
        /* truncated anywhere, the trailer included */
        static const size_t cuts[] = {0, 1, 2, 9, 100, 1000, 4, 1};
        for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
            size_t keep = i < 6 ? cuts[i] : en - cuts[i];
            cu_expect_err(decode_every_way(id, enc, keep, n), TLY_ECODEC, p);
            cr_expect(strstr(tly_errmsg(), "truncated") != NULL, "%s of %zu bytes: %s", p, keep, tly_errmsg());
        }
        /* sizes other than the stream's */
        cu_expect_err(decode_every_way(id, enc, en, n + 1), TLY_ECODEC, p);
        cr_expect(strstr(tly_errmsg(), "decoded to 200000 bytes, expected 200001") != NULL, "%s", tly_errmsg());
        cu_expect_err(decode_every_way(id, enc, en, n - 1), TLY_ECODEC, p);
        cr_expect(strstr(tly_errmsg(), "more than the 199999 bytes") != NULL, "%s", tly_errmsg());
        /* a flipped byte in the data, and in the trailer (CRC-32 or Adler-32, ISIZE) */
        unsigned char *bad = cu_alloc(en + 64);
        static const size_t flips[] = {20, 1000, 2}; /* from the end for the last */
        for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
            memcpy(bad, enc, en);
            bad[i < 2 ? flips[i] : en - flips[i]] ^= 0x40;
            cu_expect_err(decode_every_way(id, bad, en, n), TLY_ECODEC, p);
            cr_expect(strstr(tly_errmsg(), "corrupt") != NULL || strstr(tly_errmsg(), "more than") != NULL ||
                          strstr(tly_errmsg(), "decoded to") != NULL || strstr(tly_errmsg(), "truncated") != NULL,
                      "%s flip at %zu: %s", p, flips[i], tly_errmsg());
        }
        /* trailing bytes: zeros, garbage, a byte */
        memcpy(bad, enc, en);
        memset(bad + en, 0, 64);
        cu_expect_err(decode_every_way(id, bad, en + 64, n), TLY_ECODEC, p);
        cr_expect(strstr(tly_errmsg(), "trailing") != NULL, "%s: %s", p, tly_errmsg());
        cu_expect_err(decode_every_way(id, bad, en + 1, n), TLY_ECODEC, p);
        cr_expect(strstr(tly_errmsg(), "trailing") != NULL, "%s: %s", p, tly_errmsg());
        /* not a stream at all */
        memset(bad, 0x5A, 64);
        cu_expect_err(decode_every_way(id, bad, 64, n), TLY_ECODEC, p);
        cr_expect(strstr(tly_errmsg(), "corrupt") != NULL, "%s: %s", p, tly_errmsg());
        free(bad);
        /* the other format's stream */
        unsigned char *other;
        size_t on = encode(id == TLY_CODEC_GZIP ? TLY_CODEC_ZLIB : TLY_CODEC_GZIP, src, n, &other);
        cu_expect_err(decode_every_way(id, other, on, n), TLY_ECODEC, p);
        free(other);
        /* no decoded size in the header of either */
        struct tly_codec c = cu_codec(id);
        uint64_t ds;
        cu_expect_err(tly_codec_decoded_size(&c, enc, en, &ds), TLY_EUNSUPPORTED, p);
        free(enc);
    }
    free(src);
}

/* A gzip member made by zlib with every optional header field (name, comment, extra, header CRC). */
static size_t gzip_with_header(const void *src, size_t n, unsigned char *out, size_t cap, int level)
{
    z_stream z = {0};
    cr_assert_eq(deflateInit2(&z, level, Z_DEFLATED, 31, 9, Z_FILTERED), Z_OK);
    static unsigned char extra[] = "XYtally extra";
    gz_header h = {.text = 0,
                   .time = 1700000000,
                   .os = 255,
                   .extra = extra,
                   .extra_len = sizeof extra - 1,
                   .name = (Bytef *)"chunk.0.0",
                   .comment = (Bytef *)"made by the test",
                   .hcrc = 1};
    cr_assert_eq(deflateSetHeader(&z, &h), Z_OK);
    z.next_in = (Bytef *)src;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    cr_assert_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
    size_t m = z.total_out;
    deflateEnd(&z);
    return m;
}

TLY_TEST(codec, gzip_reads_any_header_and_concatenated_members)
{
    size_t n = 300000, cap = 2 * n + 1000;
    unsigned char *src = cu_alloc(n), *enc = cu_alloc(cap);
    cu_fill(src, n, 8, 11);
    size_t m = gzip_with_header(src, n, enc, cap, 9);
    cr_expect_eq(enc[3], 0x1e, "FHCRC, FEXTRA, FNAME, FCOMMENT set");
    cr_expect_eq(decode_every_way(TLY_CODEC_GZIP, enc, m, n), 0, "%s", tly_errmsg());
    /* three members, as `cat a.gz b.gz c.gz` or a parallel compressor make: one chunk */
    size_t a = gzip_with_header(src, n / 3, enc, cap, 1);
    size_t b = gzip_with_header(src + n / 3, n / 3, enc + a, cap - a, 0);
    size_t c = gzip_with_header(src + 2 * (n / 3), n - 2 * (n / 3), enc + a + b, cap - a - b, 6);
    cr_expect_eq(decode_every_way(TLY_CODEC_GZIP, enc, a + b + c, n), 0, "%s", tly_errmsg());
    cu_expect_err(decode_every_way(TLY_CODEC_GZIP, enc, a + b + c - 3, n), TLY_ECODEC, "gzip:");
    cr_expect(strstr(tly_errmsg(), "truncated") != NULL, "%s", tly_errmsg());
    cu_expect_err(decode_every_way(TLY_CODEC_GZIP, enc, a + b + c, n + 5), TLY_ECODEC, "gzip:");
    /* a corrupt header CRC */
    m = gzip_with_header(src, n, enc, cap, 9);
    size_t hcrc_at = 10 + 2 + 13 + sizeof "chunk.0.0" + sizeof "made by the test";
    enc[hcrc_at] ^= 1;
    cu_expect_err(decode_every_way(TLY_CODEC_GZIP, enc, m, n), TLY_ECODEC, "gzip:");
    cr_expect(strstr(tly_errmsg(), "header crc") != NULL, "%s", tly_errmsg());
    free(src);
    free(enc);
}

TLY_TEST(codec, zlib_refuses_a_preset_dictionary)
{
    unsigned char src[1000], enc[1200];
    cu_fill(src, sizeof src, 1, 2);
    z_stream z = {0};
    cr_assert_eq(deflateInit(&z, 6), Z_OK);
    cr_assert_eq(deflateSetDictionary(&z, src, 100), Z_OK);
    z.next_in = src;
    z.avail_in = sizeof src;
    z.next_out = enc;
    z.avail_out = sizeof enc;
    cr_assert_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
    size_t m = z.total_out;
    deflateEnd(&z);
    cu_expect_err(decode_every_way(TLY_CODEC_ZLIB, enc, m, sizeof src), TLY_ECODEC, "zlib:");
    cr_expect(strstr(tly_errmsg(), "dictionary") != NULL, "%s", tly_errmsg());
}

/* The stage's highest live bytes over the window opened by tly_mem_reset_peaks(), above its start. */
static int64_t stage_peak(enum tly_stage s, const struct tly_mem_snapshot *start)
{
    struct tly_mem_snapshot now;
    tly_mem_snapshot(&now);
    return now.stage[s].peak_bytes - start->stage[s].live_bytes;
}

static int discard(void *arg, const void *data, size_t n)
{
    (void)arg, (void)data, (void)n;
    return 0;
}

/* zlib's allocations land in encode and decode, all freed there; tly_codec_workspace() bounds them
 * (budgets add it to a chunk's ticket) and is not far above them; inflating into place holds no
 * window beyond zlib's own 32 KiB. */
TLY_TEST(codec, gzip_workspace_bounds_what_zlib_takes)
{
    TLY_REQUIRE_TRACKING();
    size_t n = 4 * MiB;
    unsigned char *src = cu_alloc(n), *dst = cu_alloc(n), out[1 << 17];
    cu_fill(src, n, 4, 3);
    struct tly_mem_snapshot start, end;
    for (size_t f = 0; f < 2; f++) {
        struct tly_codec c = cu_codec(formats[f]);
        struct iovec iov = {src, n};
        tly_mem_reset_peaks();
        tly_mem_snapshot(&start);
        int rc;
        TLY_STAGE(TLY_PUT)
        {
            rc = tly_gzip_encode_stream(&c, &iov, 1, n, out, sizeof out, discard, NULL);
        }
        int64_t took = stage_peak(TLY_ENCODE, &start), ws = (int64_t)tly_codec_workspace(&c, n, false, false);
        tly_mem_snapshot(&end);
        cr_assert_eq(rc, 0, "%s", tly_errmsg());
        cr_expect(took <= ws && took >= ws / 2, "%s encode: took %lld, workspace %lld", prefix(c.id), (long long)took,
                  (long long)ws);
        cr_expect_eq(TLY_DELTA(start, end, TLY_ENCODE, live_bytes), 0, "encode frees what it allocates");
        cr_expect_eq(TLY_DELTA(start, end, TLY_PUT, allocs), 0, "nothing lands in the caller's stage");
        unsigned char *enc;
        size_t en = encode(c.id, src, n, &enc);
        for (int windowed = 0; windowed <= 1; windowed++) {
            struct tly_gzip_dstream *ds;
            tly_mem_reset_peaks();
            tly_mem_snapshot(&start);
            TLY_STAGE(TLY_GET)
            {
                rc = windowed ? tly_gzip_dstream_open(&c, NULL, n, discard, NULL, out, sizeof out, &ds)
                              : tly_gzip_dstream_open(&c, dst, n, NULL, NULL, NULL, 0, &ds);
                if (rc == 0)
                    rc = feed_all(ds, enc, en, 1 << 20);
                int rc2 = tly_gzip_dstream_close(ds);
                rc = rc ? rc : rc2;
            }
            took = stage_peak(TLY_DECODE, &start), ws = (int64_t)tly_codec_workspace(&c, n, true, windowed);
            tly_mem_snapshot(&end);
            cr_assert_eq(rc, 0, "%s", tly_errmsg());
            cr_expect(took <= ws && took >= ws / 2, "%s decode (%s): took %lld, workspace %lld", prefix(c.id),
                      windowed ? "windowed" : "in place", (long long)took, (long long)ws);
            cr_expect_lt(took, 64 << 10, "no window beyond zlib's 32 KiB");
            cr_expect_eq(TLY_DELTA(start, end, TLY_DECODE, live_bytes), 0, "decode frees what it allocates");
            cr_expect_eq(TLY_DELTA(start, end, TLY_GET, allocs), 0, "nothing lands in the caller's stage");
        }
        cr_expect_eq(memcmp(src, dst, n), 0);
        free(enc);
    }
    free(src);
    free(dst);
}
