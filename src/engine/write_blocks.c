/*
 * Writing a chunk of a codec with block frames (codec/blocks.h: blosc's) block by block (a store
 * that can patch what it wrote: the local one), so that the encoded chunk never exists whole:
 *
 *   1. a placeholder for the header and offset table (known only at the end), then each block,
 *      compressed as its own frame (the block entries' encode_block) straight from the caller's
 *      memory when the chunk is one piece there, else from a buffer of two blocks it is gathered
 *      into, block by block; each block written as it is produced;
 *   2. the header and offset table patched in at the end (tly_writer_patch), then the commit;
 *   3. a chunk the codec would store as it is (blosc's "memcpyed": clevel 0, under 128 bytes, or
 *      blocks that together outgrow the chunk) is written as the header and the caller's bytes as
 *      they are: no copy.
 *
 * blosc's frame is blosc_compress_ctx()'s, byte for byte (src/codec/blosc_write.c says where snappy's
 * may differ). Memory: the table, one block's output and, for a strided chunk, two blocks of input.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tally/error.h"
#include "engine/internal.h"
#include "codec/blocks.h"
#include "tally/codec.h"
#include "tally/mem.h"
#include "mem/plant.h"

uint64_t tly__blocks_write_bytes(const struct tly_array *a, const struct tly_block_plan *p, bool contiguous)
{
    const struct tly__block_ops *ops = tly__codec_blocks(&a->meta.codec);
    uint64_t table = ops->header + 8 * p->nblocks; /* the table, and each block's size */
    return table + ops->block_cap(p) + (contiguous ? 0 : 2 * p->blocksize) +
           ops->workspace(&a->meta.codec, p->blocksize, (size_t)(2 * p->blocksize), false);
}

/* The chunk's pieces, read in order: bytes [lo, lo + n) of the chunk gathered into @p dst. */
struct cursor {
    const struct iovec *iov;
    const bool *pad;
    int n, i;
    size_t off; /* into piece i */
};

static void gather(const struct tly_array *a, struct cursor *cu, char *dst, size_t n)
{
    while (n > 0 && cu->i < cu->n) {
        size_t k = cu->iov[cu->i].iov_len - cu->off;
        k = k < n ? k : n;
        if (cu->pad[cu->i])
            tly__fill(a, dst, k);
        else
            tly_copy(dst, (const char *)cu->iov[cu->i].iov_base + cu->off, k);
        dst += k;
        n -= k;
        cu->off += k;
        if (cu->off == cu->iov[cu->i].iov_len) {
            cu->i++;
            cu->off = 0;
        }
    }
}

/* The chunk as the codec stores what it cannot shrink: the header, then the caller's bytes. */
static int put_stored(const struct tly__block_ops *ops, struct tly_writer *w, const struct tly_block_plan *p,
                      const struct iovec *iov, int niov, uint64_t *stored)
{
    uint8_t head[TLY__BLOCK_HEADER_MAX];
    struct iovec h = {head, ops->header};
    ops->stored_head(p, head);
    int err;
    TLY_STAGE(TLY_PUT)
    {
        tly__plant_point(TLY_PUT);
        err = tly_writer_writev(w, &h, 1);
        if (!err)
            err = tly_writer_add(w, iov, niov); /* the caller's memory and the fill pattern: stable */
    }
    *stored = p->n + ops->header;
    return err;
}

/* The blocks, each written as it is compressed; false in *fits when they outgrow the chunk. */
static int put_blocks(struct tly__op *op, struct tly_writer *w, const struct tly_block_plan *p, const struct iovec *iov,
                      const bool *pad, int niov, uint8_t *head, uint64_t *stored, bool *fits)
{
    const struct tly_array *a = op->a;
    const struct tly__block_ops *ops = tly__codec_blocks(&a->meta.codec);
    uint64_t nb = p->nblocks, B = p->blocksize, table = ops->header + 4 * nb, total = table;
    uint32_t *sizes = (uint32_t *)(void *)(head + table);
    bool contiguous = niov == 1 && !pad[0];
    void *out = tly_pool_alloc(ops->block_cap(p));
    char *in = contiguous ? NULL : tly_pool_alloc((size_t)(2 * B));
    struct cursor cu = {iov, pad, niov, 0, 0};
    struct iovec hv = {head, (size_t)table};
    int err = out && (contiguous || in) ? 0 : tly_fail(-ENOMEM, "out of memory for a block's buffers");
    memset(head, 0, (size_t)table); /* the placeholder, patched at the end */
    if (!err) {
        TLY_STAGE(TLY_PUT)
        {
            err = tly_writer_writev(w, &hv, 1);
        }
    }
    *fits = true;
    for (uint64_t j = 0; !err && *fits && j < nb; j++) {
        bool short_last = j + 1 == nb && p->n % B;
        const char *src;
        if (contiguous) {
            src = (const char *)iov[0].iov_base + (short_last ? j - 1 : j) * B;
        } else { /* a short last block follows the block before it, still in the buffer's first half */
            TLY_STAGE(TLY_GATHER)
            {
                tly__plant_point(TLY_GATHER);
                gather(a, &cu, in + (short_last ? B : 0), (size_t)(short_last ? p->n % B : B));
            }
            src = in;
        }
        const void *at;
        size_t len;
        err = tly__encode_block(op, p, j, src, out, &at, &len);
        if (!err) {
            struct iovec bv = {(void *)at, len};
            TLY_STAGE(TLY_PUT)
            {
                err = tly_writer_writev(w, &bv, 1);
            }
            sizes[j] = (uint32_t)len;
            total += len;
            *fits = total <= p->n + ops->header; /* c-blosc's rule: else stored as it is */
        }
    }
    if (!err && *fits) {
        ops->frame_head(p, sizes, head);
        TLY_STAGE(TLY_PUT)
        {
            tly__plant_point(TLY_PUT);
            err = tly_writer_patch(w, 0, head, (size_t)table);
        }
    }
    tly_pool_free(in);
    tly_pool_free(out);
    *stored = total;
    return err;
}

int tly__put_blocks(struct tly__op *op, const struct tly_block_plan *p, const char *key, const struct iovec *iov,
                    const bool *pad, int niov, uint64_t *stored)
{
    const struct tly__block_ops *ops = tly__codec_blocks(&op->a->meta.codec);
    struct tly_store *st = op->a->store;
    struct tly_writer *w = NULL;
    int err;
    TLY_STAGE(TLY_ENCODE)
    {
        tly__plant_point(TLY_ENCODE);
    }
    TLY_STAGE(TLY_PUT)
    {
        err = tly_store_writer(st, key, &w);
    }
    bool fits = false;
    uint8_t *head = NULL;
    if (!err && !p->stored) {
        head = tly_pool_alloc((size_t)(ops->header + 8 * p->nblocks));
        err = head ? put_blocks(op, w, p, iov, pad, niov, head, stored, &fits)
                   : tly_fail(-ENOMEM, "out of memory for a table of %llu blocks", (unsigned long long)p->nblocks);
    }
    if (!err && !fits) { /* stored: by the settings, or blocks that outgrew the chunk (start again) */
        if (!p->stored) {
            TLY_STAGE(TLY_PUT)
            {
                tly_writer_abort(w);
                w = NULL;
                err = tly_store_writer(st, key, &w);
            }
        }
        if (!err)
            err = put_stored(ops, w, p, iov, niov, stored);
    }
    TLY_STAGE(TLY_PUT)
    {
        if (err)
            tly_writer_abort(w);
        else
            err = tly_writer_commit(w);
    }
    tly_pool_free(head);
    return err;
}
