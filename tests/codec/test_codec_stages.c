/*
 * codec: the codecs set their own stages, so zstd's and c-blosc's allocations land in encode and
 * decode, are all freed there, and nothing of theirs is left in the caller's stage. Nothing is
 * asserted inside a stage scope (Criterion's assertions allocate).
 */
#include <zstd.h>

#include "codec/codec_util.h"

TestSuite(codec);

struct split {
    struct tly_mem_snapshot before, encoded, decoded;
};

/* Encode and decode @p n bytes with @p c from stage @p caller, snapshotting between the steps. */
static void measure(const struct tly_codec *c, size_t n, enum tly_stage caller, struct split *s)
{
    unsigned char *src = cu_alloc(n), *enc = cu_alloc(tly_codec_bound(c, n)), *back = cu_alloc(n);
    cu_fill(src, n, 4, 1);
    size_t m = 0;
    int rc1 = -1, rc2 = -1;
    tly_mem_snapshot(&s->before);
    TLY_STAGE(caller)
    {
        rc1 = tly_codec_encode(c, enc, tly_codec_bound(c, n), src, n, &m);
    }
    tly_mem_snapshot(&s->encoded);
    TLY_STAGE(caller)
    {
        rc2 = tly_codec_decode(c, back, n, enc, m);
    }
    tly_mem_snapshot(&s->decoded);
    cr_assert_eq(rc1, 0, "%s", tly_errmsg());
    cr_assert_eq(rc2, 0, "%s", tly_errmsg());
    cr_assert_eq(memcmp(src, back, n), 0);
    free(src);
    free(enc);
    free(back);
}

static void expect_split(const struct split *s, enum tly_stage caller, uint64_t enc_min, uint64_t dec_min)
{
    cr_expect_geq(TLY_DELTA(s->before, s->encoded, TLY_ENCODE, alloc_bytes), enc_min);
    cr_expect_geq(TLY_DELTA(s->encoded, s->decoded, TLY_DECODE, alloc_bytes), dec_min);
    cr_expect_eq(TLY_DELTA(s->before, s->encoded, TLY_ENCODE, live_bytes), 0, "encode frees what it allocates");
    cr_expect_eq(TLY_DELTA(s->encoded, s->decoded, TLY_DECODE, live_bytes), 0, "decode frees what it allocates");
    cr_expect_eq(TLY_DELTA(s->before, s->encoded, TLY_DECODE, allocs), 0, "encoding allocates nothing in decode");
    cr_expect_eq(TLY_DELTA(s->encoded, s->decoded, TLY_ENCODE, allocs), 0, "decoding allocates nothing in encode");
    cr_expect_eq(TLY_DELTA(s->before, s->decoded, caller, allocs), 0, "nothing lands in the caller's stage %s",
                 tly_stage_name(caller));
}

TLY_TEST(codec, zstd_allocations_land_in_encode_and_decode)
{
    TLY_REQUIRE_TRACKING();
    struct tly_codec c = cu_codec(TLY_CODEC_ZSTD);
    struct split s;
    measure(&c, MiB, TLY_PUT, &s);
    /* a level-3 CCtx's workspace is hundreds of KiB; a DCtx holds a 128 KiB block buffer */
    expect_split(&s, TLY_PUT, 256 << 10, 64 << 10);
}

TLY_TEST(codec, blosc_allocations_land_in_encode_and_decode)
{
    TLY_REQUIRE_TRACKING();
    struct tly_codec c = cu_codec(TLY_CODEC_BLOSC);
    c.blosc.typesize = 4;
    struct split s;
    measure(&c, 4 * MiB, TLY_GET, &s);
    /* c-blosc 1.21 allocates its per-call temporaries (blocksize-sized) with posix_memalign */
    expect_split(&s, TLY_GET, 16 << 10, 16 << 10);
}

TLY_TEST(codec, none_allocates_nothing)
{
    TLY_REQUIRE_TRACKING();
    struct tly_codec c = cu_codec(TLY_CODEC_NONE);
    struct split s;
    measure(&c, MiB, TLY_SCATTER, &s);
    cr_expect_eq(TLY_DELTA(s.before, s.decoded, TLY_ENCODE, allocs), 0);
    cr_expect_eq(TLY_DELTA(s.before, s.decoded, TLY_DECODE, allocs), 0);
}

/* A sink that allocates, as a put would: its block is charged to the caller's stage, not encode. */
static int allocating_sink(void *arg, const void *data, size_t n)
{
    size_t *total = arg;
    void *p = malloc(128 * 1024);
    if (p == NULL)
        return -1;
    ((unsigned char *)p)[0] = n ? ((const unsigned char *)data)[0] : 0;
    free(p);
    *total += n;
    return 0;
}

TLY_TEST(codec, stream_allocations_split_between_encode_and_the_sink)
{
    TLY_REQUIRE_TRACKING();
    size_t n = MiB, total = 0;
    unsigned char *src = cu_alloc(n), *out = cu_alloc(ZSTD_CStreamOutSize());
    cu_fill(src, n, 4, 3);
    struct iovec iov[2] = {{src, n / 3}, {src + n / 3, n - n / 3}};
    struct tly_codec c = cu_codec(TLY_CODEC_ZSTD);
    struct tly_mem_snapshot a, b;
    int rc = -1;
    tly_mem_snapshot(&a);
    TLY_STAGE(TLY_PUT)
    {
        rc = tly_zstd_encode_stream(&c, iov, 2, n, out, ZSTD_CStreamOutSize(), allocating_sink, &total);
    }
    tly_mem_snapshot(&b);
    cr_assert_eq(rc, 0, "%s", tly_errmsg());
    cr_expect_gt(total, 0);
    cr_expect_geq(TLY_DELTA(a, b, TLY_ENCODE, alloc_bytes), 256 << 10, "the CCtx is encode's");
    cr_expect_eq(TLY_DELTA(a, b, TLY_ENCODE, live_bytes), 0);
    cr_expect_geq(TLY_DELTA(a, b, TLY_PUT, allocs), 1, "the sink's blocks are the caller's");
    cr_expect_geq(TLY_DELTA(a, b, TLY_PUT, alloc_bytes), 128 << 10);
    cr_expect_eq(TLY_DELTA(a, b, TLY_PUT, live_bytes), 0);
    free(src);
    free(out);
}
