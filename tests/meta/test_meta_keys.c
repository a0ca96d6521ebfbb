/* meta: store keys of the metadata document and of chunks, for every key encoding and rank 0. */
#include <string.h>

#include "support.h"
#include "tally/meta.h"

TestSuite(meta);

static struct tly_meta meta(int format, int rank, char sep, bool v3_default)
{
    return (struct tly_meta){.zarr_format = format, .rank = rank, .separator = sep, .v3_default_keys = v3_default};
}

static void expect_key(struct tly_meta m, const uint64_t *idx, const char *want)
{
    char buf[64];
    int n = tly_meta_chunk_key(&m, idx, buf, sizeof buf);
    cr_expect_eq(n, (int)strlen(want), "length of '%s'", want);
    cr_expect_str_eq(buf, want);
}

TLY_TEST(meta, metadata_document_keys)
{
    cr_expect_str_eq(tly_meta_key(2), ".zarray");
    cr_expect_str_eq(tly_meta_key(3), "zarr.json");
    cr_expect_null(tly_meta_key(1));
}

TLY_TEST(meta, chunk_keys_for_every_encoding)
{
    const uint64_t idx[] = {0, 1, 12345678901234ull};
    expect_key(meta(2, 2, '.', false), idx, "0.1");
    expect_key(meta(2, 2, '/', false), idx, "0/1");
    expect_key(meta(2, 3, '.', false), idx, "0.1.12345678901234");
    expect_key(meta(3, 2, '/', true), idx, "c/0/1");
    expect_key(meta(3, 2, '.', true), idx, "c.0.1");
    expect_key(meta(3, 2, '.', false), idx, "0.1");
    expect_key(meta(3, 2, '/', false), idx, "0/1");
    expect_key(meta(2, 1, '.', false), idx + 2, "12345678901234");
    expect_key(meta(3, 1, '/', true), idx + 2, "c/12345678901234");
}

TLY_TEST(meta, chunk_keys_for_rank_0)
{
    expect_key(meta(2, 0, '.', false), NULL, "0");
    expect_key(meta(3, 0, '/', true), NULL, "c");
    expect_key(meta(3, 0, '.', false), NULL, "0");
}

TLY_TEST(meta, chunk_key_that_does_not_fit)
{
    const uint64_t idx[] = {10, 20};
    struct tly_meta m = meta(3, 2, '/', true);
    char buf[16];
    cr_expect_eq(tly_meta_chunk_key(&m, idx, buf, 8), 7, "c/10/20 and its NUL fit in 8");
    cr_expect_str_eq(buf, "c/10/20");
    cr_expect_eq(tly_meta_chunk_key(&m, idx, buf, 7), -1);
    cr_expect_eq(tly_meta_chunk_key(&m, idx, buf, 2), -1);
    cr_expect_eq(tly_meta_chunk_key(&m, idx, NULL, 0), -1);
    struct tly_meta r0 = meta(2, 0, '.', false);
    cr_expect_eq(tly_meta_chunk_key(&r0, NULL, buf, 1), -1);
}

TLY_TEST(meta, parsed_metadata_gives_its_keys)
{
    const char *v2 = "{\"chunks\": [2, 2], \"compressor\": null, \"dimension_separator\": \"/\", \"dtype\": \"<i2\", "
                     "\"fill_value\": 0, \"filters\": null, \"order\": \"C\", \"shape\": [4, 4], \"zarr_format\": 2}";
    struct tly_meta m;
    cr_assert_eq(tly_meta_parse_v2(v2, strlen(v2), &m), 0);
    expect_key(m, (uint64_t[]){1, 0}, "1/0");
    tly_meta_free(&m);
}
