/* The regular chunk grid: which chunks a region touches. */
#include "tally/error.h"
#include "tally/plan.h"

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
        g->nchunks[d] = (shape[d] + chunks[d] - 1) / chunks[d];
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
