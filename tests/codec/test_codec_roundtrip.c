/*
 * codec: every codec round-trips chunks of each dtype size, from empty to 4 MiB, within its bound;
 * blosc frames carry the settings asked for; zstd frames carry their content size; codec none
 * copies through the ledger and the compressing codecs do not.
 */
#include <pthread.h>

#include <blosc.h>
#include <zstd.h>

#include "codec/codec_util.h"

TestSuite(codec);

/* Empty chunks round-trip too: blosc frames them as a bare header, zstd as a frame of size 0. */
static const size_t sizes[] = {0, 1, 3, 127, 128, 129, 4099, 65537, 4 * MiB};
static const int typesizes[] = {1, 2, 4, 8};
#define NSIZES (sizeof sizes / sizeof sizes[0])

static void roundtrip_sizes(struct tly_codec *c)
{
    unsigned char *src = cu_alloc(4 * MiB);
    for (size_t t = 0; t < sizeof typesizes / sizeof typesizes[0]; t++) {
        c->blosc.typesize = typesizes[t];
        cu_fill(src, 4 * MiB, typesizes[t], 7 + t);
        for (size_t i = 0; i < NSIZES; i++) {
            /* 4 MiB once per codec (dtype size 4) keeps the valgrind pass short */
            if (sizes[i] == 4 * MiB && typesizes[t] != 4)
                continue;
            cu_roundtrip(c, src, sizes[i]);
        }
    }
    free(src);
}

TLY_TEST(codec, none_roundtrip_sizes)
{
    struct tly_codec c = cu_codec(TLY_CODEC_NONE);
    roundtrip_sizes(&c);
    cr_expect_eq(tly_codec_bound(&c, 12345), 12345);
}

TLY_TEST(codec, blosc_roundtrip_sizes_and_typesizes)
{
    struct tly_codec c = cu_codec(TLY_CODEC_BLOSC);
    roundtrip_sizes(&c);
}

TLY_TEST(codec, zstd_roundtrip_sizes)
{
    struct tly_codec c = cu_codec(TLY_CODEC_ZSTD);
    roundtrip_sizes(&c);
}

TLY_TEST(codec, compression_pays_on_array_data)
{
    size_t n = MiB;
    unsigned char *src = cu_alloc(n);
    cu_fill(src, n, 4, 3);
    struct tly_codec b = cu_codec(TLY_CODEC_BLOSC), z = cu_codec(TLY_CODEC_ZSTD);
    b.blosc.typesize = 4;
    cr_expect_lt(cu_roundtrip(&b, src, n), n / 2);
    cr_expect_lt(cu_roundtrip(&z, src, n), n / 2);
    free(src);
}

TLY_TEST(codec, blosc_each_shuffle_is_in_the_header)
{
    size_t n = MiB + 13;
    unsigned char *src = cu_alloc(n), *enc;
    struct tly_codec c = cu_codec(TLY_CODEC_BLOSC);
    static const int want[] = {0, BLOSC_DOSHUFFLE, BLOSC_DOBITSHUFFLE};
    for (int ts = 2; ts <= 8; ts *= 2) {
        cu_fill(src, n, ts, (uint64_t)ts);
        for (int s = TLY_NOSHUFFLE; s <= TLY_BITSHUFFLE; s++) {
            c.blosc.typesize = ts;
            c.blosc.shuffle = s;
            cu_roundtrip_keep(&c, src, n, &enc);
            size_t typesize;
            int flags;
            blosc_cbuffer_metainfo(enc, &typesize, &flags);
            cr_expect_eq(typesize, (size_t)ts, "typesize %d recorded as %zu", ts, typesize);
            cr_expect_eq(flags & (BLOSC_DOSHUFFLE | BLOSC_DOBITSHUFFLE), want[s], "shuffle %d, typesize %d: flags %#x",
                         s, ts, flags);
            free(enc);
        }
    }
    free(src);
}

TLY_TEST(codec, blosc_each_cname)
{
    static const char *const cnames[] = {"lz4", "lz4hc", "blosclz", "zstd", "zlib", "snappy"};
    static const char *const libs[] = {"LZ4", "LZ4", "BloscLZ", "Zstd", "Zlib", "Snappy"};
    size_t n = 256 * 1024 + 5;
    unsigned char *src = cu_alloc(n), *enc;
    cu_fill(src, n, 8, 11);
    struct tly_codec c = cu_codec(TLY_CODEC_BLOSC);
    c.blosc.typesize = 8;
    for (size_t i = 0; i < sizeof cnames / sizeof cnames[0]; i++) {
        if (blosc_compname_to_compcode(cnames[i]) < 0) {
            cr_log_warn("c-blosc here has no %s; skipped", cnames[i]);
            continue;
        }
        strcpy(c.blosc.cname, cnames[i]);
        size_t m = cu_roundtrip_keep(&c, src, n, &enc);
        cr_expect_lt(m, n, "%s compresses array data", cnames[i]);
        cr_expect_str_eq(blosc_cbuffer_complib(enc), libs[i], "%s frame", cnames[i]);
        free(enc);
    }
    free(src);
}

TLY_TEST(codec, blosc_clevel0_still_frames)
{
    size_t n = 10000;
    unsigned char *src = cu_alloc(n), *enc;
    cu_fill(src, n, 4, 5);
    struct tly_codec c = cu_codec(TLY_CODEC_BLOSC);
    c.blosc.clevel = 0;
    size_t m = cu_roundtrip_keep(&c, src, n, &enc);
    cr_expect_eq(m, n + BLOSC_MAX_OVERHEAD);
    size_t typesize;
    int flags;
    blosc_cbuffer_metainfo(enc, &typesize, &flags);
    cr_expect(flags & BLOSC_MEMCPYED);
    free(enc);
    free(src);
}

TLY_TEST(codec, blosc_blocksize_is_used)
{
    size_t n = MiB;
    unsigned char *src = cu_alloc(n), *enc;
    cu_fill(src, n, 4, 9);
    struct tly_codec c = cu_codec(TLY_CODEC_BLOSC);
    c.blosc.typesize = 4;
    c.blosc.blocksize = 16384;
    size_t nbytes, cbytes, blocksize;
    /* c-blosc keeps a forced blocksize for codecs it does not split (zstd) ... */
    strcpy(c.blosc.cname, "zstd");
    cu_roundtrip_keep(&c, src, n, &enc);
    blosc_cbuffer_sizes(enc, &nbytes, &cbytes, &blocksize);
    cr_expect_eq(blocksize, 16384);
    cr_expect_eq(nbytes, n);
    free(enc);
    /* ... and multiplies it by the typesize for those it splits by byte plane (lz4, shuffled) */
    strcpy(c.blosc.cname, "lz4");
    cu_roundtrip_keep(&c, src, n, &enc);
    blosc_cbuffer_sizes(enc, &nbytes, &cbytes, &blocksize);
    cr_expect_eq(blocksize, 16384 * 4);
    free(enc);
    free(src);
}

TLY_TEST(codec, zstd_levels_and_checksum)
{
    static const int levels[] = {-5, 1, 3, 19};
    size_t n = 200 * 1000 + 1;
    unsigned char *src = cu_alloc(n), *enc;
    cu_fill(src, n, 2, 21);
    struct tly_codec c = cu_codec(TLY_CODEC_ZSTD);
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
        for (int ck = 0; ck <= 1; ck++) {
            c.zstd.level = levels[i];
            c.zstd.checksum = ck;
            size_t m = cu_roundtrip_keep(&c, src, n, &enc);
            cr_expect_eq(cu_zstd_checksum_flag(enc, m), ck, "level %d checksum %d", levels[i], ck);
            cr_expect_eq(ZSTD_getFrameContentSize(enc, m), n);
            free(enc);
        }
    }
    free(src);
}

TLY_TEST(codec, zstd_frames_carry_content_size)
{
    unsigned char *src = cu_alloc(4 * MiB), *enc;
    cu_fill(src, 4 * MiB, 4, 1);
    struct tly_codec c = cu_codec(TLY_CODEC_ZSTD);
    for (size_t i = 0; i < NSIZES; i++) {
        size_t m = cu_roundtrip_keep(&c, src, sizes[i], &enc);
        cr_expect_eq(ZSTD_getFrameContentSize(enc, m), (unsigned long long)sizes[i]);
        uint64_t ds = 99;
        cr_expect_eq(tly_codec_decoded_size(&c, enc, m, &ds), 0, "%s", tly_errmsg());
        cr_expect_eq(ds, sizes[i]);
        free(enc);
    }
    free(src);
}

TLY_TEST(codec, decoded_size_from_headers)
{
    size_t n = 7777;
    unsigned char *src = cu_alloc(n), *enc;
    cu_fill(src, n, 1, 2);
    struct tly_codec b = cu_codec(TLY_CODEC_BLOSC), none = cu_codec(TLY_CODEC_NONE);
    size_t m = cu_roundtrip_keep(&b, src, n, &enc);
    uint64_t ds = 0;
    cr_expect_eq(tly_codec_decoded_size(&b, enc, m, &ds), 0, "%s", tly_errmsg());
    cr_expect_eq(ds, n);
    cu_expect_err(tly_codec_decoded_size(&none, src, n, &ds), TLY_EUNSUPPORTED, "none:");
    free(enc);
    free(src);
}

/* Incompressible data is the worst case: the bound must still hold, and exactly the bound must do. */
TLY_TEST(codec, bound_holds_for_incompressible_data)
{
    static const size_t ns[] = {0, 1, 100, 65536 + 7, 2 * MiB};
    unsigned char *src = cu_alloc(2 * MiB);
    cu_fill_random(src, 2 * MiB, 77);
    for (int id = TLY_CODEC_NONE; id <= TLY_CODEC_ZSTD; id++) {
        struct tly_codec c = cu_codec((enum tly_codec_id)id);
        for (int s = 0; s <= 2; s++) {
            c.blosc.shuffle = s;
            c.blosc.typesize = 4;
            for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
                cu_roundtrip(&c, src, ns[i]);
        }
    }
    cr_expect_eq(tly_codec_bound(&(struct tly_codec){.id = TLY_CODEC_BLOSC}, 1000), 1000 + BLOSC_MAX_OVERHEAD);
    cr_expect_eq(tly_codec_bound(&(struct tly_codec){.id = TLY_CODEC_ZSTD}, 1000), ZSTD_compressBound(1000));
    cr_expect_eq(tly_codec_bound(&(struct tly_codec){.id = TLY_CODEC_BLOSC}, SIZE_MAX - 3), SIZE_MAX);
    cr_expect_eq(tly_codec_bound(&(struct tly_codec){.id = TLY_CODEC_ZSTD}, SIZE_MAX - 3), SIZE_MAX);
    free(src);
}

TLY_TEST(codec, output_too_small_is_an_error_not_an_overrun)
{
    size_t n = 65536;
    unsigned char *src = cu_alloc(n);
    cu_fill_random(src, n, 5);
    size_t cap = n / 2, m = 123;
    unsigned char *dst = cu_alloc(cap);
    struct tly_codec b = cu_codec(TLY_CODEC_BLOSC), z = cu_codec(TLY_CODEC_ZSTD), none = cu_codec(TLY_CODEC_NONE);
    cu_expect_err(tly_codec_encode(&b, dst, cap, src, n, &m), TLY_ECODEC, "blosc:");
    cu_expect_err(tly_codec_encode(&z, dst, cap, src, n, &m), TLY_ECODEC, "zstd:");
    cu_expect_err(tly_codec_encode(&none, dst, cap, src, n, &m), TLY_EUSAGE, "none:");
    cr_expect_eq(m, 0, "no size on an error");
    free(dst);
    free(src);
}

TLY_TEST(codec, none_copies_through_the_ledger)
{
    size_t n = 300000;
    unsigned char *src = cu_alloc(n), *enc = cu_alloc(n), *back = cu_alloc(n);
    cu_fill(src, n, 4, 8);
    struct tly_codec c = cu_codec(TLY_CODEC_NONE);
    struct tly_mem_snapshot a, b, d;
    size_t m = 0;
    tly_mem_snapshot(&a);
    int rc1 = tly_codec_encode(&c, enc, n, src, n, &m);
    tly_mem_snapshot(&b);
    int rc2 = tly_codec_decode(&c, back, n, enc, m);
    tly_mem_snapshot(&d);
    cr_assert_eq(rc1, 0, "%s", tly_errmsg());
    cr_assert_eq(rc2, 0, "%s", tly_errmsg());
    cr_expect_eq(m, n);
    cr_expect_eq(memcmp(back, src, n), 0);
    cr_expect_eq(TLY_DELTA(a, b, TLY_ENCODE, copies), 1);
    cr_expect_eq(TLY_DELTA(a, b, TLY_ENCODE, copy_bytes), n);
    cr_expect_eq(TLY_DELTA(b, d, TLY_DECODE, copies), 1);
    cr_expect_eq(TLY_DELTA(b, d, TLY_DECODE, copy_bytes), n);
    cr_expect_eq(TLY_DELTA(a, d, TLY_UNSTAGED, copy_bytes), 0, "the copies are the codec's, not the caller's");
    free(src);
    free(enc);
    free(back);
}

TLY_TEST(codec, compressing_codecs_make_no_ledger_copies)
{
    size_t n = MiB;
    unsigned char *src = cu_alloc(n);
    cu_fill(src, n, 4, 4);
    for (int id = TLY_CODEC_BLOSC; id <= TLY_CODEC_ZSTD; id++) {
        struct tly_codec c = cu_codec((enum tly_codec_id)id);
        struct tly_mem_snapshot a, b;
        tly_mem_snapshot(&a);
        cu_roundtrip(&c, src, n);
        tly_mem_snapshot(&b);
        for (int s = 0; s < TLY_NSTAGES; s++)
            cr_expect_eq(TLY_DELTA(a, b, s, copies), 0, "%s copied in stage %s", tly_codec_name(c.id),
                         tly_stage_name((enum tly_stage)s));
    }
    free(src);
}

/* Worker threads round-trip at once with different settings; results are checked on the main thread. */
struct worker {
    struct tly_codec c;
    size_t n;
    int failures;
};

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    unsigned char *src = malloc(w->n), *enc = malloc(tly_codec_bound(&w->c, w->n)), *back = malloc(w->n);
    if (!src || !enc || !back) {
        w->failures = -1;
    } else {
        cu_fill(src, w->n, w->c.blosc.typesize, w->n);
        for (int i = 0; i < 20; i++) {
            size_t m = 0;
            if (tly_codec_encode(&w->c, enc, tly_codec_bound(&w->c, w->n), src, w->n, &m) != 0 ||
                tly_codec_decode(&w->c, back, w->n, enc, m) != 0 || memcmp(src, back, w->n) != 0)
                w->failures++;
        }
    }
    free(src);
    free(enc);
    free(back);
    return NULL;
}

TLY_TEST(codec, concurrent_roundtrips)
{
    enum { N = 6 };
    struct worker w[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        w[i] = (struct worker){.c = cu_codec(i % 2 ? TLY_CODEC_ZSTD : TLY_CODEC_BLOSC), .n = 100000 + 999 * i};
        w[i].c.blosc.typesize = 1 << (i % 4);
        w[i].c.blosc.shuffle = i % 3;
        strcpy(w[i].c.blosc.cname, i % 4 ? "lz4" : "zstd");
        w[i].c.zstd.level = i;
        cr_assert_eq(pthread_create(&t[i], NULL, worker_run, &w[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        cr_expect_eq(w[i].failures, 0, "worker %d (%s)", i, tly_codec_name(w[i].c.id));
    }
}
