/* The regular chunk grid: which chunks a region touches, and the sizes a grid may have. */
#include <stdio.h>

#include "tally/checked.h"
#include "tally/error.h"
#include "tally/plan.h"

/* "[4294967296, 8]" into @p buf (at most @p cap bytes, "..." when it does not fit). */
static const char *dims_text(const uint64_t *v, int rank, char *buf, size_t cap)
{
    size_t n = 0;
    int k = snprintf(buf, cap, "[");
    for (int d = 0; k >= 0 && d < rank; d++) {
        n += (size_t)k;
        if (n >= cap)
            break;
        k = snprintf(buf + n, cap - n, "%s%llu", d ? ", " : "", (unsigned long long)v[d]);
    }
    n += k > 0 ? (size_t)k : 0;
    if (n + 2 <= cap)
        snprintf(buf + n, cap - n, "]");
    else if (cap > 4)
        snprintf(buf + cap - 5, 5, "...]");
    return buf;
}

int tly_grid_check(int rank, const uint64_t *shape, const uint64_t *chunks, size_t elem)
{
    char s[160], c[160];
    if (rank < 0 || rank > TLY_MAX_RANK)
        return tly_fail(TLY_EUSAGE, "rank %d is outside 0..%d", rank, TLY_MAX_RANK);
    if (elem == 0)
        return tly_fail(TLY_EUSAGE, "elements of 0 bytes");
    uint64_t nchunks[TLY_MAX_RANK], n;
    for (int d = 0; d < rank; d++) {
        if (chunks[d] == 0)
            return tly_fail(TLY_EUSAGE, "chunk dimension %d is 0", d);
        nchunks[d] = tly_div_ceil_u64(shape[d], chunks[d]);
    }
    if (!tly_product_u64(elem, shape, rank, TLY_MAX_ARRAY_BYTES, &n))
        return tly_fail(TLY_EUNSUPPORTED, "shape %s of %zu-byte elements is more than 2^63-1 bytes",
                        dims_text(shape, rank, s, sizeof s), elem);
    if (!tly_product_u64(1, nchunks, rank, TLY_MAX_ARRAY_BYTES, &n))
        return tly_fail(TLY_EUNSUPPORTED, "shape %s in chunks of %s is more than 2^63-1 chunks",
                        dims_text(shape, rank, s, sizeof s), dims_text(chunks, rank, c, sizeof c));
    /* The engine holds a whole chunk in memory: it must be a size one object can have. */
    if (!tly_product_u64(elem, chunks, rank, PTRDIFF_MAX, &n))
        return tly_fail(TLY_EUNSUPPORTED, "a chunk of %s %zu-byte elements is too large to hold in memory",
                        dims_text(chunks, rank, c, sizeof c), elem);
    return 0;
}

int tly_grid_init(struct tly_grid *g, int rank, const uint64_t *shape, const uint64_t *chunks)
{
    if (rank < 0 || rank > TLY_MAX_RANK)
        return tly_fail(TLY_EUSAGE, "rank %d is outside 0..%d", rank, TLY_MAX_RANK);
    g->rank = rank;
    for (int d = 0; d < rank; d++) {
        if (chunks[d] == 0)
            return tly_fail(TLY_EUSAGE, "chunk dimension %d is 0", d);
        g->shape[d] = shape[d];
        g->chunks[d] = chunks[d];
        g->nchunks[d] = tly_div_ceil_u64(shape[d], chunks[d]);
    }
    return 0;
}

uint64_t tly_grid_chunk_elems(const struct tly_grid *g)
{
    uint64_t n = 1;
    for (int d = 0; d < g->rank; d++)
        n *= g->chunks[d];
    return n;
}

uint64_t tly_grid_chunks_in(const struct tly_grid *g, const struct tly_region *r, uint64_t *lo, uint64_t *hi)
{
    uint64_t n = 1;
    for (int d = 0; d < g->rank; d++) {
        if (r->stop[d] <= r->start[d]) {
            lo[d] = hi[d] = 0;
            n = 0;
            continue;
        }
        lo[d] = r->start[d] / g->chunks[d];
        hi[d] = (r->stop[d] - 1) / g->chunks[d] + 1;
        n *= hi[d] - lo[d];
    }
    return n;
}
