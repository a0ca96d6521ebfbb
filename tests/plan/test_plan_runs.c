/* array: dtypes, regions, the chunk grid, and runs checked against a brute-force oracle. */
#include <stdlib.h>
#include <string.h>

#include "support.h"
#include "tally/plan.h"
#include "tally/error.h"

TLY_TEST(array, dtype_numpy_strings)
{
    struct tly_dtype dt;
    char buf[8];
    cr_assert_eq(tly_dtype_from_numpy("<f4", &dt), 0);
    cr_expect(dt.kind == 'f' && dt.size == 4 && dt.endian == '<');
    cr_assert_eq(tly_dtype_from_numpy(">i8", &dt), 0);
    cr_expect(dt.kind == 'i' && dt.size == 8 && dt.endian == '>');
    cr_expect_str_eq(tly_dtype_numpy(&dt, buf), ">i8");
    cr_assert_eq(tly_dtype_from_numpy("|b1", &dt), 0);
    cr_expect_str_eq(tly_dtype_v3_name(&dt), "bool");
    cr_assert_eq(tly_dtype_from_numpy("<u1", &dt), 0, "1-byte types take '|'");
    cr_expect_str_eq(tly_dtype_numpy(&dt, buf), "|u1");
    cr_expect_eq(tly_dtype_from_numpy("|O", &dt), TLY_EUNSUPPORTED);
    cr_expect(strstr(tly_errmsg(), "object") != NULL, "%s", tly_errmsg());
    cr_expect_eq(tly_dtype_from_numpy("<U10", &dt), TLY_EUNSUPPORTED);
    cr_expect(strstr(tly_errmsg(), "string") != NULL, "%s", tly_errmsg());
    cr_expect_eq(tly_dtype_from_numpy("<c8", &dt), TLY_EUNSUPPORTED);
    cr_expect_eq(tly_dtype_from_numpy("<f2", &dt), TLY_EUNSUPPORTED);
    cr_expect_eq(tly_dtype_from_numpy("", &dt), TLY_EFORMAT);
    cr_expect_eq(tly_dtype_from_v3("float64", &dt), 0);
    cr_expect(dt.size == 8 && dt.kind == 'f');
    cr_expect_eq(tly_dtype_from_v3("complex64", &dt), TLY_EUNSUPPORTED);
}

TLY_TEST(array, region_parse)
{
    uint64_t shape[] = {100, 50, 7};
    struct tly_region r;
    cr_assert_eq(tly_region_parse("0:10,5:20,3", 3, shape, &r), 0);
    cr_expect(r.start[0] == 0 && r.stop[0] == 10 && r.start[1] == 5 && r.stop[1] == 20);
    cr_expect(r.start[2] == 3 && r.stop[2] == 4);
    cr_assert_eq(tly_region_parse(":,10:,:3", 3, shape, &r), 0);
    cr_expect(r.stop[0] == 100 && r.start[1] == 10 && r.stop[1] == 50 && r.stop[2] == 3);
    cr_expect_eq(tly_region_count(&r), 100 * 40 * 3);
    cr_expect_eq(tly_region_parse("0:101,:,:", 3, shape, &r), TLY_EUSAGE);
    cr_expect(strstr(tly_errmsg(), "dimension 0") != NULL, "%s", tly_errmsg());
    cr_expect_eq(tly_region_parse("0:10,:", 3, shape, &r), TLY_EUSAGE);
    cr_expect_eq(tly_region_parse("0:10,:,:,:", 3, shape, &r), TLY_EUSAGE);
    cr_expect_eq(tly_region_parse("a:b,:,:", 3, shape, &r), TLY_EUSAGE);
    cr_expect_eq(tly_region_parse("5:2,:,:", 3, shape, &r), TLY_EUSAGE);
}

/* Oracle: for every element of the chunk's intersection with r, its offsets computed directly. */
static void check_runs(const struct tly_grid *g, const uint64_t *idx, const struct tly_region *r, size_t elem)
{
    struct tly_runs rs;
    tly_runs_plan(g, idx, r, elem, &rs);
    uint64_t celems = tly_grid_chunk_elems(g), relems = tly_region_count(r);
    /* map[chunk element] = buffer element + 1 (0: not in the intersection) */
    uint64_t *want = calloc(celems, sizeof *want), *got = calloc(celems, sizeof *got);
    uint64_t n_in = 0;
    bool covers = true;
    for (uint64_t e = 0; e < celems; e++) {
        uint64_t rem = e, pos[TLY_MAX_RANK];
        for (int d = g->rank - 1; d >= 0; d--) {
            pos[d] = rem % g->chunks[d];
            rem /= g->chunks[d];
        }
        bool in = true, valid = true;
        uint64_t bo = 0;
        for (int d = 0; d < g->rank; d++) {
            uint64_t a = idx[d] * g->chunks[d] + pos[d];
            valid &= a < g->shape[d];
            in &= a < g->shape[d] && a >= r->start[d] && a < r->stop[d];
            bo = bo * (r->stop[d] - r->start[d]) + (a - r->start[d]);
        }
        if (in) {
            want[e] = bo + 1;
            n_in++;
        } else if (valid) {
            covers = false;
        }
    }
    struct tly_runs_iter it;
    tly_runs_iter_init(&it, &rs);
    uint64_t co, bo, runs = 0;
    while (tly_runs_next(&it, &co, &bo)) {
        runs++;
        cr_assert_eq(co % elem, 0);
        for (uint64_t k = 0; k < rs.run_bytes / elem; k++) {
            cr_assert_lt(co / elem + k, celems);
            cr_assert_lt(bo / elem + k, relems);
            got[co / elem + k] = bo / elem + k + 1;
        }
    }
    cr_expect_eq(runs, rs.nruns);
    cr_expect_eq(memcmp(want, got, celems * sizeof *want), 0, "runs map the same elements as the oracle");
    cr_expect_eq(rs.nruns * rs.run_bytes, n_in * elem);
    if (n_in)
        cr_expect_eq(rs.covers_chunk, covers);
    cr_expect_eq(rs.chunk_bytes, celems * elem);
    free(want);
    free(got);
}

TLY_TEST(array, runs_match_oracle_on_random_grids)
{
    srand(12345);
    for (int trial = 0; trial < 400; trial++) {
        int rank = 1 + rand() % 4;
        uint64_t shape[4], chunks[4];
        struct tly_region r = {.rank = rank};
        for (int d = 0; d < rank; d++) {
            shape[d] = 1 + (uint64_t)(rand() % 9);
            chunks[d] = 1 + (uint64_t)(rand() % 5);
            r.start[d] = (uint64_t)rand() % shape[d];
            r.stop[d] = r.start[d] + 1 + (uint64_t)rand() % (shape[d] - r.start[d]);
            if (rand() % 3 == 0) {
                r.start[d] = 0;
                r.stop[d] = shape[d];
            }
        }
        struct tly_grid g;
        cr_assert_eq(tly_grid_init(&g, rank, shape, chunks), 0);
        uint64_t lo[4], hi[4], idx[4];
        uint64_t n = tly_grid_chunks_in(&g, &r, lo, hi);
        uint64_t seen = 0;
        for (uint64_t k = 0; k < n; k++) {
            uint64_t rem = k;
            for (int d = rank - 1; d >= 0; d--) {
                idx[d] = lo[d] + rem % (hi[d] - lo[d]);
                rem /= hi[d] - lo[d];
            }
            check_runs(&g, idx, &r, 1 + (size_t)(trial % 4) * 2);
            seen++;
        }
        cr_assert_eq(seen, n);
    }
}

TLY_TEST(array, contiguous_chunks_are_one_run)
{
    uint64_t shape[] = {100, 1000, 1000}, chunks[] = {10, 1000, 1000};
    struct tly_grid g;
    struct tly_region r;
    struct tly_runs rs;
    tly_grid_init(&g, 3, shape, chunks);
    tly_region_all(&r, 3, shape);
    tly_runs_plan(&g, (uint64_t[]){3, 0, 0}, &r, 4, &rs);
    cr_expect(tly_runs_contiguous(&rs));
    cr_expect_eq(rs.run_bytes, 40000000u);
    cr_expect_eq(rs.buf_base, 3u * 40000000u);

    uint64_t s2[] = {5000, 5000}, c2[] = {2500, 1250};
    tly_grid_init(&g, 2, s2, c2);
    tly_region_all(&r, 2, s2);
    tly_runs_plan(&g, (uint64_t[]){1, 2}, &r, 4, &rs);
    cr_expect(!tly_runs_contiguous(&rs), "strided layout: no chunk is contiguous");
    cr_expect_eq(rs.nruns, 2500);
    cr_expect_eq(rs.run_bytes, 1250 * 4);
    cr_expect(rs.covers_chunk && rs.whole_chunk);
}

TLY_TEST(array, rank_zero_is_one_element)
{
    struct tly_grid g;
    struct tly_region r;
    struct tly_runs rs;
    cr_assert_eq(tly_grid_init(&g, 0, NULL, NULL), 0);
    tly_region_all(&r, 0, NULL);
    cr_expect_eq(tly_region_count(&r), 1);
    uint64_t lo[1], hi[1];
    cr_expect_eq(tly_grid_chunks_in(&g, &r, lo, hi), 1);
    tly_runs_plan(&g, NULL, &r, 8, &rs);
    cr_expect(tly_runs_contiguous(&rs) && rs.run_bytes == 8);
}

/* Issue 15, D13: a dtype tally refuses is named as what it is ("<f16" is no float16), digits only. */
TLY_TEST(array, dtype_refusals_name_the_type)
{
    struct tly_dtype dt;
    cr_expect_eq(tly_dtype_from_numpy("<f16", &dt), TLY_EUNSUPPORTED);
    cr_expect(strstr(tly_errmsg(), "float128") != NULL && strstr(tly_errmsg(), "float16") == NULL, "%s", tly_errmsg());
    cr_expect_eq(tly_dtype_from_numpy("<f3", &dt), TLY_EFORMAT);
    cr_expect(strstr(tly_errmsg(), "no 3-byte float") != NULL, "%s", tly_errmsg());
    cr_expect_eq(tly_dtype_from_numpy("<i3", &dt), TLY_EFORMAT);
    cr_expect(strstr(tly_errmsg(), "no 3-byte integer") != NULL, "%s", tly_errmsg());
    cr_expect_eq(tly_dtype_from_numpy("<f2", &dt), TLY_EUNSUPPORTED);
    cr_expect(strstr(tly_errmsg(), "float16") != NULL, "%s", tly_errmsg());
    cr_expect_eq(tly_dtype_from_numpy("<f 4", &dt), TLY_EFORMAT, "strtoul would skip the space");
    cr_expect_eq(tly_dtype_from_numpy("<f+4", &dt), TLY_EFORMAT);
    cr_expect_eq(tly_dtype_from_numpy("<f-4", &dt), TLY_EFORMAT);
    cr_expect_eq(tly_dtype_from_numpy("<f4 ", &dt), TLY_EFORMAT);
}
