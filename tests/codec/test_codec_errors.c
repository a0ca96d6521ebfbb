/*
 * codec: corrupt, truncated or mis-sized chunks and bad settings give an error whose message names
 * the codec, never a crash or a read or write outside the buffers (the sanitizer and valgrind
 * passes check that part).
 */
#include <blosc.h>
#include <zstd.h>

#include "codec/codec_util.h"

TestSuite(codec);

/* An encoded chunk of @p n bytes of array data, in a buffer of exactly its size. */
static unsigned char *encoded(const struct tly_codec *c, size_t n, size_t *m)
{
    unsigned char *src = cu_alloc(n), *enc = cu_alloc(tly_codec_bound(c, n));
    cu_fill(src, n, 4, n);
    int rc = tly_codec_encode(c, enc, tly_codec_bound(c, n), src, n, m);
    cr_assert_eq(rc, 0, "%s", tly_errmsg());
    free(src);
    /* exactly sized, so a read past the end is a sanitizer error */
    unsigned char *exact = cu_alloc(*m);
    memcpy(exact, enc, *m); /* test fixture */
    free(enc);
    return exact;
}

/* Decode @p len bytes of @p enc (a copy of exactly that size) into @p dst_n bytes. */
static int decode_exact(const struct tly_codec *c, const unsigned char *enc, size_t len, size_t dst_n)
{
    unsigned char *in = cu_alloc(len), *out = cu_alloc(dst_n);
    memcpy(in, enc, len); /* test fixture */
    int rc = tly_codec_decode(c, out, dst_n, in, len);
    free(in);
    free(out);
    return rc;
}

static void truncated(enum tly_codec_id id, const char *prefix)
{
    struct tly_codec c = cu_codec(id);
    size_t n = 100000, m;
    unsigned char *enc = encoded(&c, n, &m);
    size_t cuts[] = {m - 1, m / 2, 17, 16, 15, 5, 4, 1, 0};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++)
        cu_expect_err(decode_exact(&c, enc, cuts[i], n), TLY_ECODEC, prefix);
    free(enc);
}

TLY_TEST(codec, blosc_truncated)
{
    truncated(TLY_CODEC_BLOSC, "blosc:");
}

TLY_TEST(codec, zstd_truncated)
{
    truncated(TLY_CODEC_ZSTD, "zstd:");
}

/* A blosc frame with one header field set to @p v (@p width bytes, little-endian, at @p at). */
static void expect_bad_header(const unsigned char *enc, size_t m, size_t n, int at, int width, uint32_t v)
{
    struct tly_codec c = cu_codec(TLY_CODEC_BLOSC);
    unsigned char *x = cu_alloc(m);
    memcpy(x, enc, m); /* test fixture */
    for (int i = 0; i < width; i++)
        x[at + i] = (unsigned char)(v >> (8 * i));
    cu_expect_err(decode_exact(&c, x, m, n), TLY_ECODEC, "blosc:");
    uint64_t ds;
    cu_expect_err(tly_codec_decoded_size(&c, x, m, &ds), TLY_ECODEC, "blosc:");
    free(x);
}

TLY_TEST(codec, blosc_corrupt_header)
{
    struct tly_codec c = cu_codec(TLY_CODEC_BLOSC);
    size_t n = 100000, m;
    unsigned char *enc = encoded(&c, n, &m);
    expect_bad_header(enc, m, n, 0, 1, 0xff);             /* a format version from the future */
    expect_bad_header(enc, m, n, 0, 1, 0);                /* no such version */
    expect_bad_header(enc, m, n, 3, 1, 0);                /* typesize 0 */
    expect_bad_header(enc, m, n, 4, 4, 0x7fffffff);       /* nbytes over c-blosc's limit */
    expect_bad_header(enc, m, n, 8, 4, 0);                /* blocksize 0 */
    expect_bad_header(enc, m, n, 8, 4, 1);                /* 100000 blocks: their offsets do not fit */
    expect_bad_header(enc, m, n, 12, 4, (uint32_t)m + 1); /* cbytes disagrees with the chunk */
    expect_bad_header(enc, m, n, 12, 4, (uint32_t)m - 1);
    free(enc);
}

/* A memcpy'ed frame whose header claims more bytes than follow it. */
TLY_TEST(codec, blosc_memcpyed_frame_that_lies)
{
    struct tly_codec c = cu_codec(TLY_CODEC_BLOSC);
    c.blosc.clevel = 0;
    size_t n = 1000, m;
    unsigned char *enc = encoded(&c, n, &m);
    cr_assert_eq(m, n + BLOSC_MAX_OVERHEAD);
    enc[5] = 0x10; /* nbytes 4328: more than the frame holds */
    cu_expect_err(decode_exact(&c, enc, m, 4328), TLY_ECODEC, "blosc:");
    free(enc);
}

static void wrong_size(enum tly_codec_id id, const char *prefix)
{
    struct tly_codec c = cu_codec(id);
    size_t n = 4096, m;
    unsigned char *enc = encoded(&c, n, &m);
    cu_expect_err(decode_exact(&c, enc, m, n - 1), TLY_ECODEC, prefix);
    cr_expect_neq(strstr(tly_errmsg(), "expected 4095"), NULL, "%s", tly_errmsg());
    cu_expect_err(decode_exact(&c, enc, m, n + 1), TLY_ECODEC, prefix);
    cu_expect_err(decode_exact(&c, enc, m, 4 * n), TLY_ECODEC, prefix);
    cr_expect_eq(decode_exact(&c, enc, m, n), 0, "%s", tly_errmsg());
    free(enc);
}

TLY_TEST(codec, blosc_wrong_expected_size)
{
    wrong_size(TLY_CODEC_BLOSC, "blosc:");
}

TLY_TEST(codec, zstd_wrong_expected_size)
{
    wrong_size(TLY_CODEC_ZSTD, "zstd:");
    struct tly_codec c = cu_codec(TLY_CODEC_ZSTD);
    size_t m;
    unsigned char *enc = encoded(&c, 100, &m);
    decode_exact(&c, enc, m, 400);
    cr_expect_str_eq(tly_errmsg(), "zstd: frame content size 100 != expected 400");
    free(enc);
}

TLY_TEST(codec, none_wrong_expected_size)
{
    struct tly_codec c = cu_codec(TLY_CODEC_NONE);
    unsigned char buf[10] = {0};
    cu_expect_err(decode_exact(&c, buf, sizeof buf, 11), TLY_ECODEC, "none:");
    cu_expect_err(decode_exact(&c, buf, sizeof buf, 9), TLY_ECODEC, "none:");
}

TLY_TEST(codec, zstd_bad_magic_and_garbage)
{
    struct tly_codec c = cu_codec(TLY_CODEC_ZSTD);
    size_t n = 10000, m;
    unsigned char *enc = encoded(&c, n, &m);
    enc[0] ^= 0xff;
    cu_expect_err(decode_exact(&c, enc, m, n), TLY_ECODEC, "zstd:");
    uint64_t ds;
    cu_expect_err(tly_codec_decoded_size(&c, enc, m, &ds), TLY_ECODEC, "zstd:");
    cu_fill_random(enc, m, 1);
    cu_expect_err(decode_exact(&c, enc, m, n), TLY_ECODEC, "zstd:");
    free(enc);
}

TLY_TEST(codec, blosc_garbage)
{
    struct tly_codec c = cu_codec(TLY_CODEC_BLOSC);
    unsigned char junk[5000];
    for (uint64_t seed = 1; seed <= 50; seed++) {
        cu_fill_random(junk, sizeof junk, seed);
        cu_expect_err(decode_exact(&c, junk, sizeof junk, 100000), TLY_ECODEC, "blosc:");
    }
}

TLY_TEST(codec, zstd_checksum_catches_a_flipped_byte)
{
    struct tly_codec c = cu_codec(TLY_CODEC_ZSTD);
    c.zstd.checksum = 1;
    size_t n = 100000, m;
    unsigned char *enc = encoded(&c, n, &m);
    enc[m / 2] ^= 0x01;
    cu_expect_err(decode_exact(&c, enc, m, n), TLY_ECODEC, "zstd:");
    free(enc);
}

TLY_TEST(codec, zstd_frame_without_content_size_is_refused)
{
    size_t n = 5000;
    unsigned char *src = cu_alloc(n), *enc = cu_alloc(ZSTD_compressBound(n)), *back = cu_alloc(n);
    cu_fill(src, n, 2, 2);
    ZSTD_CCtx *z = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(z, ZSTD_c_contentSizeFlag, 0);
    size_t m = ZSTD_compress2(z, enc, ZSTD_compressBound(n), src, n);
    ZSTD_freeCCtx(z);
    cr_assert(!ZSTD_isError(m));
    cr_assert_eq(ZSTD_getFrameContentSize(enc, m), ZSTD_CONTENTSIZE_UNKNOWN);
    struct tly_codec c = cu_codec(TLY_CODEC_ZSTD);
    cu_expect_err(tly_codec_decode(&c, back, n, enc, m), TLY_ECODEC, "zstd:");
    uint64_t ds;
    cu_expect_err(tly_codec_decoded_size(&c, enc, m, &ds), TLY_EUNSUPPORTED, "zstd:");
    free(src);
    free(enc);
    free(back);
}

/*
 * Random damage to valid frames: each decode returns 0 (damage a codec cannot see without a
 * checksum) or TLY_ECODEC, and never reads or writes outside the buffers.
 */
static void damage(struct tly_codec *c, int iterations)
{
    size_t n = 50000, m;
    unsigned char *enc = encoded(c, n, &m), *x = cu_alloc(m), *out = cu_alloc(n);
    uint64_t s = 12345;
    int failures = 0, others = 0;
    for (int i = 0; i < iterations; i++) {
        memcpy(x, enc, m); /* test fixture */
        int flips = 1 + (int)(cu_rand(&s) % 4);
        for (int f = 0; f < flips; f++)
            x[cu_rand(&s) % m] ^= (unsigned char)(1 + cu_rand(&s) % 255);
        int rc = tly_codec_decode(c, out, n, x, m);
        if (rc == TLY_ECODEC)
            failures++;
        else if (rc != 0)
            others++;
    }
    cr_expect_eq(others, 0, "%s: %d results other than 0 or TLY_ECODEC", tly_codec_name(c->id), others);
    cr_expect_gt(failures, 0, "%s: damage is noticed", tly_codec_name(c->id));
    free(out);
    free(x);
    free(enc);
}

TLY_TEST(codec, blosc_damaged_frames)
{
    static const char *const cnames[] = {"lz4", "blosclz", "zstd", "zlib", "snappy", "lz4hc"};
    struct tly_codec c = cu_codec(TLY_CODEC_BLOSC);
    c.blosc.typesize = 4;
    for (size_t i = 0; i < sizeof cnames / sizeof cnames[0]; i++) {
        if (blosc_compname_to_compcode(cnames[i]) < 0)
            continue;
        strcpy(c.blosc.cname, cnames[i]);
        damage(&c, 150);
    }
}

TLY_TEST(codec, zstd_damaged_frames)
{
    struct tly_codec c = cu_codec(TLY_CODEC_ZSTD);
    damage(&c, 300);
    c.zstd.checksum = 1;
    damage(&c, 100);
}

TLY_TEST(codec, bad_settings_are_usage_errors)
{
    unsigned char src[100] = {0}, dst[200];
    size_t m;
    struct tly_codec c = cu_codec(TLY_CODEC_BLOSC);
    strcpy(c.blosc.cname, "brotli");
    cu_expect_err(tly_codec_encode(&c, dst, sizeof dst, src, sizeof src, &m), TLY_EUSAGE, "blosc:");
    cr_expect_neq(strstr(tly_errmsg(), "brotli"), NULL, "%s", tly_errmsg());
    memset(c.blosc.cname, 'x', sizeof c.blosc.cname); /* unterminated */
    cu_expect_err(tly_codec_encode(&c, dst, sizeof dst, src, sizeof src, &m), TLY_EUSAGE, "blosc:");
    c = cu_codec(TLY_CODEC_BLOSC);
    c.blosc.clevel = 10;
    cu_expect_err(tly_codec_encode(&c, dst, sizeof dst, src, sizeof src, &m), TLY_EUSAGE, "blosc:");
    c = cu_codec(TLY_CODEC_BLOSC);
    c.blosc.shuffle = 3;
    cu_expect_err(tly_codec_encode(&c, dst, sizeof dst, src, sizeof src, &m), TLY_EUSAGE, "blosc:");
    c = cu_codec(TLY_CODEC_BLOSC);
    c.blosc.typesize = 0;
    cu_expect_err(tly_codec_encode(&c, dst, sizeof dst, src, sizeof src, &m), TLY_EUSAGE, "blosc:");
    c = cu_codec(TLY_CODEC_ZSTD);
    c.zstd.level = 23;
    cu_expect_err(tly_codec_encode(&c, dst, sizeof dst, src, sizeof src, &m), TLY_EUSAGE, "zstd:");
    c = cu_codec(TLY_CODEC_ZSTD);
    c.zstd.checksum = 2;
    cu_expect_err(tly_codec_encode(&c, dst, sizeof dst, src, sizeof src, &m), TLY_EUSAGE, "zstd:");
    c.id = (enum tly_codec_id)42;
    cu_expect_err(tly_codec_encode(&c, dst, sizeof dst, src, sizeof src, &m), TLY_EUSAGE, "codec:");
    cu_expect_err(tly_codec_decode(&c, dst, sizeof dst, src, sizeof src), TLY_EUSAGE, "codec:");
    cr_expect_eq(tly_codec_bound(&c, 10), SIZE_MAX);
    cr_expect_eq(tly_stage_current(), TLY_UNSTAGED, "the stage comes back after an error");
}
