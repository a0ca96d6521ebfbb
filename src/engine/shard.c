/*
 * Zarr v3 sharding (sharding_indexed v1.0): each chunk of the grid is a shard, one stored object
 * holding inner chunks and an index of (offset, nbytes) pairs, one per inner chunk in C order,
 * 2^64-1 twice for an inner chunk not stored (all fill value), then the index's CRC-32C.
 *
 * Reading a region (shard_read.c):
 *   1. the index of every shard the region touches, in parallel (an index at the end by one request,
 *      tly_store_read_tail: a suffix range on S3; one at the start by its size, then a range), checked:
 *      checksum, every entry inside the shard's data, no two overlapping;
 *   2. the inner chunks the region touches, sorted by offset and coalesced into groups of adjacent
 *      byte ranges (gaps up to TLY__SHARD_GAP, groups up to a worker's share of the memory budget and
 *      at most TLY__RANGE_MIN, unless one inner chunk is larger), each group one read into a buffer,
 *      its inner chunks decoded straight into the output where they are contiguous there, else into
 *      an inner chunk's buffer scattered to the runs; uncompressed inner chunks without a checksum
 *      are read straight into the output's runs.
 *   Missing shards and inner chunks: the fill value written into the output.
 *
 * Writing (shard_write.c): a shard the region covers is written inner chunk by inner chunk, each a task of its own:
 * encoded by whichever worker takes it (from the caller's memory where the codec reads pieces in
 * place: none, zstd; else gathered first when strided), then appended to the shard's object under the
 * shard's lock as soon as it is ready (local: pwritev; S3: multipart parts cut from the appended
 * bytes), its place recorded in the index. An inner chunk that holds only the fill value is not
 * stored. The index goes last (index_location end), or is reserved first and patched in at the end
 * (start). The encoded shard is never held whole. A shard the region covers only partly is read
 * whole, patched and written again (a read-modify-write of the shard: stats.rmw counts them). On S3
 * the memory budget is split between the inner chunks in work and the open shard's part buffers, as
 * many parts uploading at once as fit (plan_parts in shard_write.c).
 */
#include <errno.h>
#include <stdlib.h>

#include "tally/error.h"
#include "engine/shard.h"
#include "mem/plant.h"

/* An index of more entries than this is refused (its 16 bytes per inner chunk are held whole). */
#define SHARD_N_MAX ((uint64_t)1 << 26)

int tly__shard_setup(struct tly_array *a)
{
    const struct tly_meta *m = &a->meta;
    uint64_t n = 1;
    if (m->rank == 0)
        return tly_fail(TLY_EUNSUPPORTED, "%s: a sharded array of rank 0", tly_store_url(a->store));
    int err = tly_grid_init(&a->inner, m->rank, m->shape, m->shard.inner);
    if (err)
        return err;
    for (int d = 0; d < m->rank; d++) {
        if (m->shard.inner[d] == 0 || m->chunks[d] % m->shard.inner[d] != 0)
            return tly_fail(TLY_EFORMAT, "%s: inner chunk %llu does not divide the shard's %llu (dimension %d)",
                            tly_store_url(a->store), (unsigned long long)m->shard.inner[d],
                            (unsigned long long)m->chunks[d], d);
        a->per_shard[d] = m->chunks[d] / m->shard.inner[d];
        if (a->per_shard[d] > SHARD_N_MAX || n * a->per_shard[d] > SHARD_N_MAX)
            return tly_fail(TLY_EUNSUPPORTED, "%s: more than %llu inner chunks in a shard", tly_store_url(a->store),
                            (unsigned long long)SHARD_N_MAX);
        n *= a->per_shard[d];
    }
    a->shard_n = n;
    a->index_bytes = 16 * n + (m->shard.index_crc ? 4 : 0);
    return 0;
}

bool tly__inner_at(const struct tly_array *a, const uint64_t *sidx, uint64_t local, uint64_t *g)
{
    bool inside = true;
    for (int d = a->meta.rank - 1; d >= 0; d--) {
        g[d] = sidx[d] * a->per_shard[d] + local % a->per_shard[d];
        local /= a->per_shard[d];
        inside = inside && g[d] < a->inner.nchunks[d];
    }
    return inside;
}

int tly__shard_list(struct tly__op *op, struct tly__shard **out)
{
    struct tly_array *a = op->a;
    struct tly__shard *sh = calloc(op->nchunks ? op->nchunks : 1, sizeof *sh);
    if (sh == NULL)
        return tly_fail(-ENOMEM, "out of memory planning a sharded operation");
    for (uint64_t i = 0; i < op->nchunks; i++) {
        tly__chunk_at(a->meta.rank, op->lo, op->hi, i, sh[i].idx);
        if (tly_meta_chunk_key(&a->meta, sh[i].idx, sh[i].key, sizeof sh[i].key) < 0) {
            free(sh);
            return tly_fail(TLY_EUSAGE, "shard key too long");
        }
    }
    *out = sh;
    return 0;
}

void tly__shard_list_free(struct tly__shard *sh, uint64_t n)
{
    for (uint64_t i = 0; sh && i < n; i++)
        free(sh[i].ent);
    free(sh);
}
