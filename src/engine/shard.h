/* Internal to src/engine: what the sharded reads (shard_read.c) and writes (shard_write.c) share. */
#ifndef TLY__ENGINE_SHARD_H
#define TLY__ENGINE_SHARD_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/internal.h"

/* An index entry's offset and size of an inner chunk not stored (all fill value). */
#define TLY__SHARD_EMPTY UINT64_MAX

static inline uint64_t tly__shard_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static inline void tly__shard_put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++, v >>= 8)
        p[i] = (uint8_t)v;
}

static inline uint32_t tly__shard_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void tly__shard_put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++, v >>= 8)
        p[i] = (uint8_t)v;
}

/* The bytes of one (full-size) inner chunk. */
static inline uint64_t tly__inner_bytes(const struct tly_array *a)
{
    return tly_grid_chunk_elems(&a->inner) * a->meta.dtype.size;
}

/* Inner chunk @p local (C order in the shard) of shard @p sidx, as global inner grid coordinates;
 * false when it lies wholly outside the array (an edge shard's padding). */
bool tly__inner_at(const struct tly_array *a, const uint64_t *sidx, uint64_t local, uint64_t *g);

/* A shard an operation touches: its grid coordinates and key; reads add its object's size and index. */
struct tly__shard {
    uint64_t idx[TLY_MAX_RANK];
    char key[256];
    uint64_t size; /* the object's bytes */
    bool missing;  /* no object: every inner chunk is the fill value */
    uint64_t *ent; /* 2 per inner chunk: offset, nbytes */
};

/* The shards @p op's region touches (op->nchunks of them), with their keys; and their release. */
int tly__shard_list(struct tly__op *op, struct tly__shard **out);
void tly__shard_list_free(struct tly__shard *sh, uint64_t n);

#endif
