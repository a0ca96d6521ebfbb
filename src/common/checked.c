/* Checked size arithmetic (tally/checked.h): every product of outside numbers goes through here. */
#include "tally/checked.h"

bool tly_mul_u64(uint64_t a, uint64_t b, uint64_t *out)
{
    uint64_t r;
    if (__builtin_mul_overflow(a, b, &r))
        return false;
    *out = r;
    return true;
}

bool tly_add_u64(uint64_t a, uint64_t b, uint64_t *out)
{
    uint64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return false;
    *out = r;
    return true;
}

bool tly_product_u64(uint64_t init, const uint64_t *v, int n, uint64_t max, uint64_t *out)
{
    /* A zero anywhere is an empty product: checked first, so the other factors cannot overflow it. */
    bool zero = init == 0;
    for (int i = 0; i < n && !zero; i++)
        zero = v[i] == 0;
    if (zero) {
        *out = 0;
        return true;
    }
    uint64_t p = init;
    if (p > max)
        return false;
    for (int i = 0; i < n; i++)
        if (!tly_mul_u64(p, v[i], &p) || p > max)
            return false;
    *out = p;
    return true;
}

uint64_t tly_div_ceil_u64(uint64_t a, uint64_t b)
{
    return b == 0 ? 0 : a / b + (a % b != 0);
}
