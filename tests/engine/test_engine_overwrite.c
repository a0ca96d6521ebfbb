/*
 * engine: creating an array stages it, and committing publishes it (issue 15, D5): a reader sees
 * the old array until the new one is committed, a failed write leaves the old array whole and no
 * staging directory, a directory that is not an array is refused, close commits what succeeded.
 */
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>

#include "support.h"
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

TestSuite(overwrite, .init = setup, .fini = teardown);

#define N 64

static void make_meta(struct tly_meta *m, const char *codec)
{
    memset(m, 0, sizeof *m);
    m->zarr_format = 2;
    cr_assert_eq(tly_dtype_from_numpy("<i4", &m->dtype), 0);
    m->rank = 1;
    m->shape[0] = N;
    m->chunks[0] = 8;
    cr_assert_eq(tly_codec_parse(codec, &m->codec), 0);
    m->codec.blosc.typesize = 4;
    m->has_fill = true;
    m->separator = '.';
}

/* The whole array at path into v; its error. */
static int read_all(int32_t *v)
{
    struct tly_array *a;
    struct tly_region all;
    uint64_t shape[] = {N};
    tly_region_all(&all, 1, shape);
    int err = tly_array_open(path, NULL, &a);
    if (!err)
        err = tly_array_read(a, v, &all, NULL);
    tly_array_close(a);
    return err;
}

static void write_all(int32_t base, const char *codec, bool overwrite)
{
    struct tly_meta m;
    make_meta(&m, codec);
    int32_t v[N];
    for (int i = 0; i < N; i++)
        v[i] = base + i;
    struct tly_array *a;
    struct tly_region all;
    uint64_t shape[] = {N};
    tly_region_all(&all, 1, shape);
    cr_assert_eq(tly_array_create(path, &m, overwrite, NULL, &a), 0, "%s", tly_errmsg());
    cr_assert_eq(tly_array_write(a, v, &all, NULL), 0, "%s", tly_errmsg());
    cr_assert_eq(tly_array_commit(a), 0, "%s", tly_errmsg());
    tly_array_close(a);
}

TLY_TEST(overwrite, readers_see_the_old_array_until_the_new_one_is_committed)
{
    write_all(1000, "none", false);
    struct tly_meta m;
    make_meta(&m, "zstd");
    struct tly_array *a;
    cr_assert_eq(tly_array_create(path, &m, true, NULL, &a), 0, "%s", tly_errmsg());
    int32_t v[N], got[N];
    for (int i = 0; i < N; i++)
        v[i] = 2000 + i;
    struct tly_region half = {1, {0}, {N / 2}};
    cr_assert_eq(tly_array_write(a, v, &half, NULL), 0, "%s", tly_errmsg());
    cr_assert_eq(read_all(got), 0, "%s", tly_errmsg());
    cr_expect(got[0] == 1000 && got[N - 1] == 1000 + N - 1, "the old array, whole, while the new one is written");
    struct tly_region rest = {1, {N / 2}, {N}};
    cr_assert_eq(tly_array_write(a, v + N / 2, &rest, NULL), 0, "%s", tly_errmsg());
    cr_assert_eq(tly_array_commit(a), 0, "%s", tly_errmsg());
    cr_assert_eq(read_all(got), 0, "%s", tly_errmsg());
    cr_expect_eq(memcmp(got, v, sizeof v), 0, "the new array once committed");
    tly_array_close(a);
    cr_expect_eq(tly_test_count_entries(dir), 1, "nothing beside the array");
}

TLY_TEST(overwrite, a_failed_write_leaves_the_old_array_whole)
{
    write_all(1000, "none", false);
    struct tly_meta m;
    make_meta(&m, "blosc");
    struct tly_array *a;
    cr_assert_eq(tly_array_create(path, &m, true, NULL, &a), 0, "%s", tly_errmsg());
    int32_t v[N] = {0}, got[N];
    struct tly_region bad = {1, {0}, {N + 1}};
    cr_expect_eq(tly_array_write(a, v, &bad, NULL), TLY_EUSAGE, "a region outside the array");
    cr_expect_eq(tly_array_commit(a), TLY_EUSAGE, "nothing is published after a failed write");
    tly_array_close(a);
    cr_assert_eq(read_all(got), 0, "%s", tly_errmsg());
    for (int i = 0; i < N; i++)
        cr_expect_eq(got[i], 1000 + i);
    cr_expect_eq(tly_test_count_entries(dir), 1, "no staging directory left");
}

TLY_TEST(overwrite, close_commits_what_succeeded)
{
    write_all(1000, "none", false);
    struct tly_meta m;
    make_meta(&m, "none");
    struct tly_array *a;
    cr_assert_eq(tly_array_create(path, &m, true, NULL, &a), 0, "%s", tly_errmsg());
    int32_t v[N], got[N];
    for (int i = 0; i < N; i++)
        v[i] = -i;
    struct tly_region all = {1, {0}, {N}};
    cr_assert_eq(tly_array_write(a, v, &all, NULL), 0, "%s", tly_errmsg());
    tly_array_close(a);
    cr_assert_eq(read_all(got), 0, "%s", tly_errmsg());
    cr_expect_eq(memcmp(got, v, sizeof v), 0);
    cr_expect_eq(tly_test_count_entries(dir), 1);
}

TLY_TEST(overwrite, what_is_there_decides)
{
    struct tly_meta m;
    make_meta(&m, "none");
    struct tly_array *a;
    cr_assert_eq(mkdir(path, 0777), 0);
    cr_assert_eq(tly_array_create(path, &m, false, NULL, &a), 0, "an empty directory: %s", tly_errmsg());
    tly_array_close(a);
    cr_expect_eq(tly_test_count_entries(path), 1, "an array without chunks: its metadata");
    cr_expect_eq(tly_array_create(path, &m, false, NULL, &a), TLY_EEXISTS);
    char other[400];
    snprintf(other, sizeof other, "%s/notes", dir);
    cr_assert_eq(mkdir(other, 0777), 0);
    FILE *f = fopen(strcat(strcpy((char[420]){0}, other), "/keep.txt"), "w");
    cr_assert_not_null(f);
    fclose(f);
    cr_expect_eq(tly_array_create(other, &m, false, NULL, &a), TLY_EUSAGE, "a directory that is not an array");
    cr_expect(strstr(tly_errmsg(), "not a Zarr array") != NULL, "%s", tly_errmsg());
    cr_expect_eq(tly_array_create(other, &m, true, NULL, &a), TLY_EUSAGE, "not even with overwrite");
    cr_expect_eq(tly_test_count_entries(other), 1);
    cr_expect_eq(tly_test_count_entries(dir), 2);
}
