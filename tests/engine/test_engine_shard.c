/*
 * engine: Zarr v3 sharding (issue 12). Whole arrays and regions round-trip for every codec, both
 * index locations, with and without inner checksums; an inner chunk of nothing but the fill value is
 * not stored (its index entry is 2^64-1 twice), a shard of nothing but fill is not stored at all; a
 * write that covers part of a shard keeps the rest of it; and a damaged shard (index checksum, an
 * entry past the end, overlapping entries, a truncated object, an inner chunk's checksum) is an
 * error that names the shard.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support.h"
#include "tally/codec.h"
#include "tally/engine.h"
#include "tally/error.h"
#include "tmpdir.h"

static char dir[256], path[300];

static void setup(void)
{
    cr_assert_not_null(tly_test_mkdtemp(dir, sizeof dir));
    snprintf(path, sizeof path, "%s/a", dir);
}

static void teardown(void)
{
    tly_test_rmtree(dir);
}

TestSuite(shard, .init = setup, .fini = teardown);

/* 50 x 36 int32 in shards of 20 x 12 (edge shards in dimension 0) of inner chunks of 5 x 4. */
#define R 50
#define C 36

static void make_meta(struct tly_meta *m, const char *codec, bool start, bool crc)
{
    memset(m, 0, sizeof *m);
    m->zarr_format = 3;
    cr_assert_eq(tly_dtype_from_numpy("<i4", &m->dtype), 0);
    m->rank = 2;
    m->shape[0] = R;
    m->shape[1] = C;
    m->chunks[0] = 20;
    m->chunks[1] = 12;
    cr_assert_eq(tly_codec_parse(codec, &m->codec), 0);
    m->codec.blosc.typesize = 4;
    m->has_fill = true;
    int32_t fill = 7;
    memcpy(m->fill, &fill, 4);
    m->separator = '/';
    m->v3_default_keys = true;
    m->shard.on = true;
    m->shard.inner[0] = 5;
    m->shard.inner[1] = 4;
    m->shard.index_start = start;
    m->shard.index_crc = true;
    m->crc32c = crc;
}

/* Values, with the fill value (7) over rows 20..39 (shards (1, *) all fill) and in the inner chunk
 * at rows 0..4, columns 0..3 (one empty inner chunk in shard (0, 0)). */
static void make_data(int32_t *v)
{
    for (int i = 0; i < R; i++)
        for (int j = 0; j < C; j++)
            v[i * C + j] = (i >= 20 && i < 40) || (i < 5 && j < 4) ? 7 : i * 1000 + j;
}

static void write_array(const char *codec, bool start, bool crc, const int32_t *v)
{
    struct tly_meta m;
    struct tly_array *a;
    struct tly_region all;
    make_meta(&m, codec, start, crc);
    tly_region_all(&all, 2, m.shape);
    cr_assert_eq(tly_array_create(path, &m, true, NULL, &a), 0, "%s", tly_errmsg());
    cr_assert_eq(tly_array_write(a, v, &all, NULL), 0, "%s", tly_errmsg());
    cr_assert_eq(tly_array_commit(a), 0, "%s", tly_errmsg());
    tly_array_close(a);
}

static int read_region(int32_t *out, uint64_t r0, uint64_t r1, uint64_t c0, uint64_t c1, struct tly_io_stats *st)
{
    struct tly_array *a;
    struct tly_region r = {.rank = 2, .start = {r0, c0}, .stop = {r1, c1}};
    int err = tly_array_open(path, NULL, &a);
    if (!err)
        err = tly_array_read(a, out, &r, st);
    tly_array_close(a);
    return err;
}

static void expect_region(const int32_t *v, uint64_t r0, uint64_t r1, uint64_t c0, uint64_t c1)
{
    int32_t *out = calloc(R * C, sizeof *out);
    cr_assert_eq(read_region(out, r0, r1, c0, c1, NULL), 0, "%s", tly_errmsg());
    uint64_t w = c1 - c0;
    for (uint64_t i = r0; i < r1; i++)
        for (uint64_t j = c0; j < c1; j++)
            cr_assert_eq(out[(i - r0) * w + (j - c0)], v[i * C + j], "[%llu, %llu]", (unsigned long long)i,
                         (unsigned long long)j);
    free(out);
}

static void roundtrip(const char *codec, bool start, bool crc)
{
    int32_t v[R * C];
    make_data(v);
    write_array(codec, start, crc, v);
    expect_region(v, 0, R, 0, C);
    expect_region(v, 3, 27, 5, 30); /* across shards, parts of inner chunks */
    expect_region(v, 45, 50, 32, 36);
}

TLY_TEST(shard, roundtrip_none_end)
{
    roundtrip("none", false, false);
}
TLY_TEST(shard, roundtrip_none_start_crc)
{
    roundtrip("none", true, true);
}
TLY_TEST(shard, roundtrip_zstd_end_crc)
{
    roundtrip("zstd", false, true);
}
TLY_TEST(shard, roundtrip_zstd_start)
{
    roundtrip("zstd", true, false);
}
TLY_TEST(shard, roundtrip_blosc_end)
{
    roundtrip("blosc", false, false);
}
TLY_TEST(shard, roundtrip_blosc_start_crc)
{
    roundtrip("blosc:cname=zstd,clevel=3,shuffle=2", true, true);
}

static char *shard_path(const char *key)
{
    static char p[400];
    snprintf(p, sizeof p, "%s/%s", path, key);
    return p;
}

static uint8_t *slurp(const char *key, size_t *n)
{
    struct stat sb;
    if (stat(shard_path(key), &sb) != 0)
        return NULL;
    uint8_t *b = malloc((size_t)sb.st_size + 1);
    FILE *f = fopen(shard_path(key), "rb");
    cr_assert_not_null(f);
    cr_assert_eq(fread(b, 1, (size_t)sb.st_size, f), (size_t)sb.st_size);
    fclose(f);
    *n = (size_t)sb.st_size;
    return b;
}

static void spill(const char *key, const uint8_t *b, size_t n)
{
    FILE *f = fopen(shard_path(key), "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(b, 1, n, f), n);
    fclose(f);
}

static uint64_t rd64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void wr64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++, v >>= 8)
        p[i] = (uint8_t)v;
}

/* 4 x 3 inner chunks per shard: 48 bytes of entries and the checksum. */
#define NINNER 12
#define INDEX (16 * NINNER + 4)

TLY_TEST(shard, fill_is_not_stored)
{
    int32_t v[R * C];
    make_data(v);
    write_array("zstd", false, false, v);
    size_t n;
    uint8_t *b = slurp("c/0/0", &n);
    cr_assert_not_null(b);
    const uint8_t *idx = b + n - INDEX;
    cr_expect_eq(rd64(idx), UINT64_MAX, "inner chunk (0, 0) holds only the fill value");
    cr_expect_eq(rd64(idx + 8), UINT64_MAX);
    cr_expect_neq(rd64(idx + 16), UINT64_MAX, "inner chunk (0, 1) holds data");
    uint32_t crc = (uint32_t)idx[16 * NINNER] | (uint32_t)idx[16 * NINNER + 1] << 8 |
                   (uint32_t)idx[16 * NINNER + 2] << 16 | (uint32_t)idx[16 * NINNER + 3] << 24;
    cr_expect_eq(crc, tly_crc32c(0, idx, 16 * NINNER), "the index's CRC-32C follows it");
    free(b);
    cr_expect_null(slurp("c/1/0", &n), "a shard of nothing but fill is not stored");
    cr_expect_null(slurp("c/1/2", &n));
}

TLY_TEST(shard, partial_write_keeps_the_rest)
{
    int32_t v[R * C];
    make_data(v);
    write_array("zstd", true, true, v);
    /* rows 10..30, columns 6..20: parts of shards (0,0), (0,1), (1,0), (1,1) */
    int32_t patch[20 * 14];
    for (int i = 0; i < 20; i++)
        for (int j = 0; j < 14; j++) {
            patch[i * 14 + j] = -(i * 100 + j);
            v[(10 + i) * C + 6 + j] = patch[i * 14 + j];
        }
    struct tly_array *a;
    struct tly_io_stats st;
    struct tly_region r = {.rank = 2, .start = {10, 6}, .stop = {30, 20}};
    cr_assert_eq(tly_array_open(path, NULL, &a), 0);
    cr_assert_eq(tly_array_write(a, patch, &r, &st), 0, "%s", tly_errmsg());
    tly_array_close(a);
    cr_expect_eq(st.rmw, 4, "four shards written by read-modify-write, not %llu", (unsigned long long)st.rmw);
    expect_region(v, 0, R, 0, C);
}

/* Damage shard c/0/1 (index at the end) with @p fn; a read must fail naming the shard and @p what. */
static void expect_damage(void (*fn)(uint8_t *b, size_t *n), const char *what)
{
    int32_t v[R * C];
    make_data(v);
    write_array("zstd", false, true, v);
    size_t n;
    uint8_t *b = slurp("c/0/1", &n);
    cr_assert_not_null(b);
    fn(b, &n);
    spill("c/0/1", b, n);
    free(b);
    int32_t *out = calloc(R * C, sizeof *out);
    int err = read_region(out, 0, R, 0, C, NULL);
    cr_expect_eq(err, TLY_EFORMAT, "err %d: %s", err, tly_errmsg());
    cr_expect_not_null(strstr(tly_errmsg(), "shard c/0/1"), "'%s' names the shard", tly_errmsg());
    cr_expect_not_null(strstr(tly_errmsg(), what), "'%s' says '%s'", tly_errmsg(), what);
    if (getenv("SHARD_VERBOSE"))
        fprintf(stderr, "%s\n", tly_errmsg());
    free(out);
}

static void flip_index_byte(uint8_t *b, size_t *n)
{
    b[*n - INDEX + 3] ^= 0x40;
}
static void past_end(uint8_t *b, size_t *n)
{
    uint8_t *idx = b + *n - INDEX;
    wr64(idx + 16, *n); /* inner chunk 1's offset: the object's end */
    uint32_t c = tly_crc32c(0, idx, 16 * NINNER);
    for (int i = 0; i < 4; i++)
        idx[16 * NINNER + i] = (uint8_t)(c >> (8 * i));
}
static void overlap(uint8_t *b, size_t *n)
{
    uint8_t *idx = b + *n - INDEX;
    wr64(idx + 32, rd64(idx + 16) + 1); /* inner chunk 2 starts inside inner chunk 1 */
    wr64(idx + 40, 10);
    uint32_t c = tly_crc32c(0, idx, 16 * NINNER);
    for (int i = 0; i < 4; i++)
        idx[16 * NINNER + i] = (uint8_t)(c >> (8 * i));
}
static void truncate_it(uint8_t *b, size_t *n)
{
    (void)b;
    *n = INDEX - 10;
}
static void truncate_middle(uint8_t *b, size_t *n)
{
    memmove(b + 50, b + 150, *n - 150); /* 100 bytes of inner chunks gone, the index whole */
    *n -= 100;
}
static void flip_data_byte(uint8_t *b, size_t *n)
{
    uint8_t *idx = b + *n - INDEX;
    uint64_t off = rd64(idx + 16);
    b[off + 20] ^= 0x01; /* inner chunk 1's data: its crc32c no longer matches */
}

TLY_TEST(shard, corrupt_index_checksum)
{
    expect_damage(flip_index_byte, "index checksum mismatch");
}
TLY_TEST(shard, entry_past_the_end)
{
    expect_damage(past_end, "outside the shard's data");
}
TLY_TEST(shard, overlapping_entries)
{
    expect_damage(overlap, "overlap");
}
TLY_TEST(shard, truncated_below_its_index)
{
    expect_damage(truncate_it, "fewer than its index");
}
TLY_TEST(shard, truncated_in_the_middle)
{
    expect_damage(truncate_middle, "outside the shard's data");
}
TLY_TEST(shard, inner_chunk_checksum)
{
    expect_damage(flip_data_byte, "checksum mismatch");
}
