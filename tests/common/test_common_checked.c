/*
 * common: the checked size arithmetic every outside number goes through (tally/checked.h), and the
 * grid check built on it (tly_grid_check): products that would wrap are refused, never wrapped.
 */
#include <stdint.h>
#include <string.h>

#include "support.h"
#include "tally/checked.h"
#include "tally/error.h"
#include "tally/plan.h"

TLY_TEST(common, mul_add_refuse_what_does_not_fit)
{
    uint64_t r = 7;
    cr_expect(tly_mul_u64(1ull << 32, 1ull << 31, &r) && r == 1ull << 63);
    r = 7;
    cr_expect(!tly_mul_u64(1ull << 32, 1ull << 32, &r), "2^64 does not fit");
    cr_expect_eq(r, 7, "unchanged on overflow");
    cr_expect(tly_mul_u64(UINT64_MAX, 1, &r) && r == UINT64_MAX);
    cr_expect(tly_mul_u64(UINT64_MAX, 0, &r) && r == 0);
    cr_expect(tly_add_u64(UINT64_MAX - 1, 1, &r) && r == UINT64_MAX);
    cr_expect(!tly_add_u64(UINT64_MAX, 1, &r));
}

TLY_TEST(common, product_against_a_limit)
{
    uint64_t r = 0;
    uint64_t d2[] = {2305843009213693952ull, 8};
    cr_expect(!tly_product_u64(8, d2, 2, UINT64_MAX, &r), "8 x 2^61 x 8 = 2^67 wraps to 0 unchecked");
    uint64_t d1[] = {4611686018427387929ull};
    cr_expect(!tly_product_u64(4, d1, 1, TLY_MAX_ARRAY_BYTES, &r), "a .npy shape that wraps to 100 bytes");
    uint64_t big[] = {1ull << 40, 1ull << 40, 0};
    cr_expect(tly_product_u64(1, big, 3, TLY_MAX_ARRAY_BYTES, &r) && r == 0, "a zero dimension: empty, no overflow");
    uint64_t ok[] = {1ull << 31, 1ull << 31};
    cr_expect(tly_product_u64(1, ok, 2, TLY_MAX_ARRAY_BYTES, &r) && r == 1ull << 62);
    cr_expect(!tly_product_u64(2, ok, 2, (1ull << 63) - 1, &r), "2^63 is one over the limit");
    cr_expect(tly_product_u64(5, NULL, 0, 5, &r) && r == 5, "rank 0: the initial factor");
    cr_expect(!tly_product_u64(6, NULL, 0, 5, &r));
}

TLY_TEST(common, div_ceil_does_not_wrap)
{
    cr_expect_eq(tly_div_ceil_u64(UINT64_MAX, 2), (UINT64_MAX >> 1) + 1, "(a + b - 1) / b would wrap");
    cr_expect_eq(tly_div_ceil_u64(10, 5), 2);
    cr_expect_eq(tly_div_ceil_u64(11, 5), 3);
    cr_expect_eq(tly_div_ceil_u64(0, 5), 0);
    cr_expect_eq(tly_div_ceil_u64(5, 0), 0);
}

TLY_TEST(common, grid_check_names_what_is_too_large)
{
    uint64_t s1[] = {1ull << 32, 1ull << 32}, c1[] = {1ull << 30, 1ull << 30};
    cr_expect_eq(tly_grid_check(2, s1, c1, 1), TLY_EUNSUPPORTED, "2^64 bytes");
    cr_expect(strstr(tly_errmsg(), "[4294967296, 4294967296]") != NULL, "%s", tly_errmsg());
    uint64_t s2[] = {2305843009213693952ull, 8}, c2[] = {1, 1};
    cr_expect_eq(tly_grid_check(2, s2, c2, 8), TLY_EUNSUPPORTED, "2^67 bytes");
    uint64_t s3[] = {1ull << 40, 1ull << 40}, c3[] = {1, 1};
    cr_expect_eq(tly_grid_check(2, s3, c3, 1), TLY_EUNSUPPORTED, "2^80 bytes");
    uint64_t s4[] = {100, 100}, c4[] = {1ull << 32, 1ull << 32};
    cr_expect_eq(tly_grid_check(2, s4, c4, 4), TLY_EUNSUPPORTED, "a chunk of 2^66 bytes");
    cr_expect(strstr(tly_errmsg(), "chunk") != NULL, "%s", tly_errmsg());
    uint64_t s5[] = {UINT64_MAX >> 1}, c5[] = {1};
    cr_expect_eq(tly_grid_check(1, s5, c5, 1), 0, "2^63 - 1 bytes in 2^63 - 1 chunks is the limit");
    uint64_t s6[] = {1ull << 31, 1ull << 31}, c6[] = {1ull << 30, 1ull << 30};
    cr_expect_eq(tly_grid_check(2, s6, c6, 1), 0, "%s", tly_errmsg());
    uint64_t c7[] = {0, 1};
    cr_expect_eq(tly_grid_check(2, s6, c7, 1), TLY_EUSAGE);
    uint64_t s8[] = {0, 1ull << 62}, c8[] = {1, 1};
    cr_expect_eq(tly_grid_check(2, s8, c8, 8), 0, "an empty array is empty whatever its other dimensions");
}
