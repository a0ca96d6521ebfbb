/* codec: "copy", the identity codec the tests add (src/codec/copy.c and one line in registry.c),
 * through the codec API and through the engine, which knows it only by what it can do: neither raw,
 * nor streaming, nor blocks, so its chunks take the whole-chunk paths of read.c and write.c. */
#include <stdlib.h>
#include <string.h>

#include "support.h"
#include "tally/codec.h"
#include "tally/engine.h"
#include "tally/error.h"
#include "tally/mem.h"
#include "tmpdir.h"

static char dir[256];

static void setup(void)
{
    cr_assert_not_null(tly_test_mkdtemp(dir, sizeof dir));
}

static void teardown(void)
{
    tly_test_rmtree(dir);
}

TestSuite(codec_copy, .init = setup, .fini = teardown);

TLY_TEST(codec_copy, parsed_but_not_listed)
{
    struct tly_codec c;
    cr_assert_eq(tly_codec_parse("copy", &c), 0, "%s", tly_errmsg());
    cr_assert_str_eq(tly_codec_name(c.id), "copy");
    for (const char *const *n = tly_codec_names(); *n; n++)
        cr_assert_str_neq(*n, "copy", "a test codec is not one the harness may offer");
    cr_assert(!tly_codec_stores_raw(&c) && !tly_codec_streams(&c) && !tly_codec_has_blocks(&c));
    cr_assert_eq(tly_codec_parse("copy:level=1", &c), TLY_EUSAGE);
    cr_assert_str_eq(tly_errmsg(), "copy: takes no options (got 'level')");
}

TLY_TEST(codec_copy, round_trip_through_the_ledger)
{
    struct tly_codec c;
    cr_assert_eq(tly_codec_parse("copy", &c), 0);
    char src[1000], enc[1000], back[1000];
    for (size_t i = 0; i < sizeof src; i++)
        src[i] = (char)(i * 7);
    cr_assert_eq(tly_codec_bound(&c, sizeof src), sizeof src);
    struct tly_mem_snapshot a, b;
    tly_mem_snapshot(&a);
    size_t n = 0;
    cr_assert_eq(tly_codec_encode(&c, enc, sizeof enc, src, sizeof src, &n), 0, "%s", tly_errmsg());
    cr_assert_eq(n, sizeof src);
    cr_assert_eq(tly_codec_decode(&c, back, sizeof back, enc, n), 0, "%s", tly_errmsg());
    tly_mem_snapshot(&b);
    cr_assert_eq(memcmp(src, back, sizeof src), 0);
    if (tly_mem_tracking()) {
        cr_expect_eq(TLY_DELTA(a, b, TLY_ENCODE, copy_bytes), sizeof src);
        cr_expect_eq(TLY_DELTA(a, b, TLY_DECODE, copy_bytes), sizeof src);
    }
    cr_assert_eq(tly_codec_decode(&c, back, sizeof back, enc, n - 1), TLY_ECODEC);
    uint64_t size;
    cr_assert_eq(tly_codec_decoded_size(&c, enc, n, &size), TLY_EUNSUPPORTED);
}

/* Write through the engine (whole chunks, and a partly covered one by read-modify-write), read
 * back whole and by a region strided in the output. copy has no Zarr metadata (writing it is
 * refused), so the array is created as none and its handle then runs copy, which the engine knows
 * only by what it can do; the array is not reopened. */
TLY_TEST(codec_copy, through_the_engine)
{
    struct tly_meta m;
    memset(&m, 0, sizeof m);
    m.zarr_format = 2;
    cr_assert_eq(tly_dtype_from_numpy("<u2", &m.dtype), 0);
    m.rank = 2;
    m.shape[0] = 30, m.shape[1] = 20;
    m.chunks[0] = 8, m.chunks[1] = 6;
    cr_assert_eq(tly_codec_parse("none", &m.codec), 0);
    m.has_fill = true;
    m.separator = '.';
    size_t n = 30 * 20 * 2;
    uint16_t *src = malloc(n), *back = malloc(n);
    for (size_t i = 0; i < n / 2; i++)
        src[i] = (uint16_t)(i * 31 + 5);
    char path[300];
    snprintf(path, sizeof path, "%s/copy", dir);
    struct tly_io_opts opts = {.threads = 2};
    struct tly_array *a;
    cr_assert_eq(tly_codec_parse("copy", &m.codec), 0);
    cr_assert_eq(tly_array_create(path, &m, true, &opts, &a), TLY_EUSAGE);
    cr_assert_str_eq(tly_errmsg(), "metadata: codec copy has no Zarr metadata");
    cr_assert_eq(tly_codec_parse("none", &m.codec), 0);
    cr_assert_eq(tly_array_create(path, &m, true, &opts, &a), 0, "%s", tly_errmsg());
    cr_assert_eq(tly_codec_parse("copy", &((struct tly_meta *)tly_array_meta(a))->codec), 0);
    struct tly_region all, part = {.rank = 2, .start = {3, 2}, .stop = {27, 17}};
    tly_region_all(&all, 2, m.shape);
    struct tly_io_stats st;
    cr_assert_eq(tly_array_write(a, src, &all, &st), 0, "%s", tly_errmsg());
    cr_expect_eq(st.stored_bytes, 32 * 24 * 2, "whole chunks, stored as they are");
    /* a partly covered write: chunks read, decoded, patched and encoded again */
    uint16_t *patch = malloc(24 * 15 * 2);
    for (size_t i = 0; i < 24 * 15; i++)
        patch[i] = (uint16_t)(60000 - i);
    cr_assert_eq(tly_array_write(a, patch, &part, &st), 0, "%s", tly_errmsg());
    cr_expect_gt(st.rmw, 0);
    for (size_t i = 0; i < 24; i++)
        for (size_t j = 0; j < 15; j++)
            src[(3 + i) * 20 + 2 + j] = patch[i * 15 + j];
    memset(back, 0xEE, n);
    cr_assert_eq(tly_array_read(a, back, &all, &st), 0, "%s", tly_errmsg());
    cr_expect_eq(memcmp(src, back, n), 0, "whole array equal");
    cr_assert_eq(tly_array_read(a, back, &part, &st), 0, "%s", tly_errmsg());
    for (size_t i = 0; i < 24 * 15; i++)
        if (back[i] != patch[i]) {
            cr_expect_fail("region element %zu differs", i);
            break;
        }
    tly_array_close(a);
    free(patch);
    free(src);
    free(back);
}
