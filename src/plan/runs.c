/*
 * Runs: how one chunk meets a region of a C-order buffer, as contiguous pieces (the plan stage).
 *
 * Dimensions are merged from the innermost outwards while a step of the outer one is exactly the
 * extent of the inner block in both the chunk and the buffer, so whole rows, planes and chunks
 * collapse into single runs; dimensions of extent 1 only move the base offsets.
 */
#include <string.h>

#include "tally/plan.h"

static void plan_scalar(size_t elem, struct tly_runs *out)
{
    out->rank = 1;
    out->count[0] = 1;
    out->chunk_stride[0] = out->buf_stride[0] = elem;
    out->run_bytes = elem;
    out->nruns = 1;
    out->chunk_bytes = elem;
    out->covers_chunk = out->whole_chunk = true;
}

void tly_runs_plan(const struct tly_grid *g, const uint64_t *idx, const struct tly_region *r, size_t elem,
                   struct tly_runs *out)
{
    memset(out, 0, sizeof *out);
    out->elem = elem;
    if (g->rank == 0) {
        plan_scalar(elem, out);
        return;
    }
    uint64_t cstride = elem, bstride = elem; /* bytes per step of dim d, in chunk and buffer */
    uint64_t count[TLY_MAX_RANK], cs[TLY_MAX_RANK], bs[TLY_MAX_RANK];
    int m = 0; /* merged dims, innermost first */
    out->covers_chunk = out->whole_chunk = true;
    out->chunk_bytes = elem;
    for (int d = g->rank - 1; d >= 0; d--) {
        uint64_t c0 = idx[d] * g->chunks[d];
        uint64_t c1 = c0 + g->chunks[d] < g->shape[d] ? c0 + g->chunks[d] : g->shape[d];
        uint64_t i0 = c0 > r->start[d] ? c0 : r->start[d];
        uint64_t i1 = c1 < r->stop[d] ? c1 : r->stop[d];
        if (i1 <= i0) {
            out->nruns = 0;
            out->covers_chunk = out->whole_chunk = false;
            return;
        }
        uint64_t n = i1 - i0;
        out->covers_chunk &= (i0 == c0 && i1 == c1);
        out->whole_chunk &= (c1 - c0 == g->chunks[d]);
        out->chunk_base += (i0 - c0) * cstride;
        out->buf_base += (i0 - r->start[d]) * bstride;
        if (m > 0 && n == 1) {
            /* extent 1: contributes only to the base offsets */
        } else if (m > 0 && cs[m - 1] * count[m - 1] == cstride && bs[m - 1] * count[m - 1] == bstride) {
            count[m - 1] *= n;
        } else {
            count[m] = n;
            cs[m] = cstride;
            bs[m] = bstride;
            m++;
        }
        cstride *= g->chunks[d];
        bstride *= r->stop[d] - r->start[d];
        out->chunk_bytes *= g->chunks[d];
    }
    out->whole_chunk &= out->covers_chunk;
    out->rank = m;
    out->nruns = 1;
    for (int k = 0; k < m; k++) {
        out->count[k] = count[m - 1 - k];
        out->chunk_stride[k] = cs[m - 1 - k];
        out->buf_stride[k] = bs[m - 1 - k];
        if (k < m - 1)
            out->nruns *= out->count[k];
    }
    out->run_bytes = (size_t)(out->count[m - 1] * out->chunk_stride[m - 1]);
}

void tly_runs_iter_init(struct tly_runs_iter *it, const struct tly_runs *rs)
{
    it->rs = rs;
    it->k = 0;
    memset(it->pos, 0, sizeof(it->pos[0]) * (size_t)(rs->rank > 0 ? rs->rank : 1));
}

bool tly_runs_next(struct tly_runs_iter *it, uint64_t *chunk_off, uint64_t *buf_off)
{
    const struct tly_runs *rs = it->rs;
    if (it->k >= rs->nruns)
        return false;
    uint64_t co = rs->chunk_base, bo = rs->buf_base;
    for (int d = 0; d < rs->rank - 1; d++) {
        co += it->pos[d] * rs->chunk_stride[d];
        bo += it->pos[d] * rs->buf_stride[d];
    }
    *chunk_off = co;
    *buf_off = bo;
    it->k++;
    for (int d = rs->rank - 2; d >= 0; d--) {
        if (++it->pos[d] < rs->count[d])
            break;
        it->pos[d] = 0;
    }
    return true;
}

void tly_runs_iter_seek(struct tly_runs_iter *it, const struct tly_runs *rs, uint64_t k)
{
    tly_runs_iter_init(it, rs);
    it->k = k < rs->nruns ? k : rs->nruns;
    for (int d = rs->rank - 2; d >= 0 && k > 0; d--) {
        it->pos[d] = k % rs->count[d];
        k /= rs->count[d];
    }
}
