/**
 * tally/checked.h — sizes computed without wrapping: the one place where tally multiplies and adds
 * the numbers that come from outside (a shape from metadata or a .npy header, a chunk shape from
 * the command line) into byte counts and chunk counts. Metadata, the .npy reader, the chunk grid
 * and the command line all check through these, so a product that does not fit is refused the same
 * way everywhere instead of wrapping into a small, plausible number.
 */
#ifndef TALLY_CHECKED_H
#define TALLY_CHECKED_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * The most bytes (and the most elements, and the most chunks) an array may have: 2^63 - 1, so that
 * every size is also a valid signed 64-bit integer (JSON, off_t, the --json figures).
 */
#define TLY_MAX_ARRAY_BYTES ((uint64_t)INT64_MAX)

/** @p a × @p b into @p out; false (and @p out unchanged) when the product does not fit in 64 bits. */
bool tly_mul_u64(uint64_t a, uint64_t b, uint64_t *out);

/** @p a + @p b into @p out; false (and @p out unchanged) when the sum does not fit in 64 bits. */
bool tly_add_u64(uint64_t a, uint64_t b, uint64_t *out);

/**
 * @p init × v[0] × ... × v[n-1] into @p out; false (and @p out unchanged) when it is more than
 * @p max. A zero factor makes the product 0, whatever the others are (an empty array is empty).
 */
bool tly_product_u64(uint64_t init, const uint64_t *v, int n, uint64_t max, uint64_t *out);

/** ceil(@p a / @p b) for @p b > 0, without the wrap of (a + b - 1) / b; 0 when @p b is 0. */
uint64_t tly_div_ceil_u64(uint64_t a, uint64_t b);

#ifdef __cplusplus
}
#endif

#endif
