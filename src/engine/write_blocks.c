/*
 * Writing a chunk of a codec with block frames (codec/blocks.h: blosc's) block by block, to a store
 * that can patch what it wrote (the local one; S3 with tly_writer_keep_head, which keeps the first
 * part until the commit), so that the encoded chunk never exists whole:
 *
 *   1. a placeholder for the header and offset table (known only at the end), then each block,
 *      compressed as its own frame (the block entries' encode_block) straight from the caller's
 *      memory when the chunk is one piece there, else from a buffer of two blocks it is gathered
 *      into; the blocks are compressed on the chunk's share of threads (op->codec_threads: a lone
 *      chunk gets every thread), each into a slot of a window of a slot a lane and one more, and
 *      written in order as soon as the block before them is: whichever lane finds the next block
 *      ready writes it (and those after it that are), while the others compress;
 *   2. the header and offset table patched in at the end (tly_writer_patch), then the commit;
 *   3. a chunk the codec would store as it is (blosc's "memcpyed": clevel 0, under 128 bytes, or
 *      blocks that together outgrow the chunk) is written as the header and the caller's bytes as
 *      they are: no copy.
 *
 * blosc's frame is blosc_compress_ctx()'s, byte for byte (src/codec/blosc_write.c says where snappy's
 * may differ), whatever the threads: each block's bytes are its own, and they are written in order.
 * Memory: the table, the window's slots (a block's output each and, for a strided chunk, two blocks
 * of input), the codec's temporaries per lane and, on S3, the parts the writer holds (the first,
 * kept to be patched: 5 MiB where the frame may outgrow a part; one being filled and those
 * uploading: tly__parts_in_flight). On S3 the header and table must lie in the first part: a table
 * longer than the part size is refused (a larger --part-size takes it). On S3 a chunk encodes in its
 * turn (engine/gate.c), kept through its commit where its frame may outgrow a part.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tally/error.h"
#include "engine/internal.h"
#include "codec/blocks.h"
#include "tally/codec.h"
#include "tally/mem.h"
#include "mem/plant.h"

/* Lanes of a chunk's block writes, and the slots of its window. */
static int lanes_of(const struct tly__op *op, uint64_t nblocks)
{
    int lanes = op->codec_threads > 0 ? op->codec_threads : 1;
    return (uint64_t)lanes > nblocks && nblocks > 0 ? (int)nblocks : lanes;
}

/* A slot a lane, and one more: a lane that finds the next block ready writes it while the others
 * compress, and finds a free slot for its next block when it is done. */
static int window_of(int lanes)
{
    return lanes > 1 ? lanes + 1 : 1;
}

/* Slot @p k's output: a block's, or the last block's (the most) for the slot that holds it. */
static size_t slot_cap(const struct tly__block_ops *ops, const struct tly_block_plan *p, int window, int k)
{
    uint64_t last = p->nblocks ? p->nblocks - 1 : 0;
    return ops->block_cap(p, last % (uint64_t)window == (uint64_t)k ? last : 0);
}

uint64_t tly__blocks_write_bytes(const struct tly__op *op, const struct tly_block_plan *p, bool contiguous)
{
    const struct tly_array *a = op->a;
    const struct tly__block_ops *ops = tly__codec_blocks(&a->meta.codec);
    int lanes = lanes_of(op, p->nblocks);
    uint64_t table = ops->header + 8 * p->nblocks; /* the table, and each block's size */
    int window = window_of(lanes);
    uint64_t slots = (uint64_t)window * (contiguous ? 0 : 2 * p->blocksize);
    for (int k = 0; k < window; k++)
        slots += slot_cap(ops, p, window, k);
    /* S3: the parts the writer holds (the kept first, one filling, those uploading), or the frame when it
     * is smaller */
    uint64_t parts = (uint64_t)(tly__parts_in_flight(op, true) + 2) * a->opts.part_size;
    uint64_t frame = p->n + ops->header + 4 * p->nblocks;
    parts = a->remote ? (parts < frame ? parts : frame) : 0;
    return table + slots + parts +
           (uint64_t)lanes * ops->workspace(&a->meta.codec, p->blocksize, (size_t)(2 * p->blocksize), false);
}

/* A block in the window: its output (and a strided chunk's gathered input), ready once compressed. */
struct slot {
    void *out;
    char *in;
    const void *at;
    size_t len;
    bool ready;
};

/* One chunk's block writes. */
struct bw {
    struct tly__op *op;
    const struct tly__block_ops *ops;
    const struct tly_block_plan *p;
    struct tly_writer *w;
    const struct iovec *iov;
    const bool *pad;
    int niov;
    uint64_t *at; /* where each piece begins in the chunk (niov + 1), for a strided chunk */
    uint32_t *sizes;
    int window;
    struct slot *slots;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t written; /* blocks written, in order */
    uint64_t total;   /* bytes of the frame so far */
    bool writing;     /* a lane is writing blocks */
    bool outgrown;    /* the blocks outgrew the chunk: it is stored as it is */
    int err;          /* the first failure: the other lanes stop */
};

/* Bytes [lo, lo + n) of the chunk gathered from its pieces into @p dst. */
static void gather(const struct bw *b, uint64_t lo, char *dst, size_t n)
{
    int a = 0, z = b->niov; /* the piece that holds lo: the last with at[i] <= lo */
    while (z - a > 1) {
        int m = a + (z - a) / 2;
        if (b->at[m] <= lo)
            a = m;
        else
            z = m;
    }
    for (int i = a; n > 0 && i < b->niov; i++) {
        size_t off = (size_t)(lo - b->at[i]), k = b->iov[i].iov_len - off;
        k = k < n ? k : n;
        if (b->pad[i])
            tly__fill(b->op->a, dst, k);
        else
            tly_copy(dst, (const char *)b->iov[i].iov_base + off, k);
        dst += k;
        lo += k;
        n -= k;
    }
}

/* Write the blocks that are ready, in order, while no other lane does (called and returning with mu
 * held); a failure of its own writes comes back. */
static int write_ready(struct bw *b)
{
    int err = 0;
    if (b->writing)
        return 0;
    b->writing = true;
    uint64_t table = b->ops->header + 4 * b->p->nblocks;
    while (!b->err && !b->outgrown && b->written < b->p->nblocks) {
        struct slot *s = &b->slots[b->written % (uint64_t)b->window];
        if (!s->ready)
            break;
        struct iovec bv = {(void *)s->at, s->len};
        pthread_mutex_unlock(&b->mu);
        TLY_STAGE(TLY_PUT)
        {
            err = tly_writer_writev(b->w, &bv, 1);
        }
        pthread_mutex_lock(&b->mu);
        if (err) {
            b->err = err;
            break;
        }
        b->sizes[b->written] = (uint32_t)s->len;
        b->total += s->len;
        b->outgrown = table + b->total > b->p->n + b->ops->header; /* c-blosc's rule: else stored as it is */
        s->ready = false;
        b->written++;
        pthread_cond_broadcast(&b->cv);
    }
    b->writing = false;
    return err;
}

/* Wait until block @p j's slot is free (the block that held it is written); false when the lanes stop. */
static bool slot_wait(struct bw *b, uint64_t j)
{
    uint64_t w = (uint64_t)b->window;
    pthread_mutex_lock(&b->mu);
    while (!b->err && !b->outgrown && j >= w && b->written <= j - w)
        pthread_cond_wait(&b->cv, &b->mu);
    bool go = !b->err && !b->outgrown;
    pthread_mutex_unlock(&b->mu);
    return go;
}

/* Compress block @p j from @p src into its slot, then write it in its turn. Only the lane that
 * failed returns the failure; the others stop with 0. */
static int one_block(struct bw *b, uint64_t j, const char *src)
{
    struct slot *s = &b->slots[j % (uint64_t)b->window];
    int err = tly__encode_block(b->op, b->p, j, src, s->out, &s->at, &s->len);
    pthread_mutex_lock(&b->mu);
    if (err && !b->err)
        b->err = err;
    else if (err)
        err = 0; /* another lane failed first */
    if (!err) {
        s->ready = true;
        err = write_ready(b);
    }
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    return err;
}

/* Block @p j, compressed once its slot is free. A short last block is compressed with the block
 * before it, as c-blosc does: from the caller's memory, or, for a strided chunk, by the lane of the
 * block before it, from the two it gathered at once (each byte gathered once). */
static int block_task(void *arg, uint64_t j)
{
    struct bw *b = arg;
    const struct tly_block_plan *p = b->p;
    uint64_t B = p->blocksize, nb = p->nblocks, left = p->n % B;
    bool paired = b->at != NULL && left && nb > 1; /* the last two blocks gathered together */
    if (paired && j + 1 == nb)
        return 0;
    if (!slot_wait(b, j))
        return 0;
    bool short_last = j + 1 == nb && left;
    const char *src;
    if (b->at == NULL) {
        src = (const char *)b->iov[0].iov_base + (short_last ? j - 1 : j) * B;
    } else {
        char *in = b->slots[j % (uint64_t)b->window].in;
        TLY_STAGE(TLY_GATHER)
        {
            tly__plant_point(TLY_GATHER);
            gather(b, j * B, in, (size_t)(paired && j + 2 == nb ? B + left : B));
        }
        src = in;
    }
    int err = one_block(b, j, src);
    if (!err && paired && j + 2 == nb && slot_wait(b, j + 1))
        err = one_block(b, j + 1, src); /* the short last block, with this one */
    return err;
}

/* The window's slots and, for a strided chunk, where each piece begins. */
static int bw_alloc(struct bw *b, bool contiguous)
{
    b->slots = calloc((size_t)b->window, sizeof *b->slots);
    if (b->slots == NULL)
        return tly_fail(-ENOMEM, "out of memory for a window of %d blocks", b->window);
    for (int k = 0; k < b->window; k++) {
        b->slots[k].out = tly_pool_alloc(slot_cap(b->ops, b->p, b->window, k));
        b->slots[k].in = contiguous ? NULL : tly_pool_alloc((size_t)(2 * b->p->blocksize));
        if (b->slots[k].out == NULL || (!contiguous && b->slots[k].in == NULL))
            return tly_fail(-ENOMEM, "out of memory for a window of %d blocks", b->window);
    }
    if (contiguous)
        return 0;
    b->at = malloc(((size_t)b->niov + 1) * sizeof *b->at);
    if (b->at == NULL)
        return tly_fail(-ENOMEM, "out of memory for a chunk of %d pieces", b->niov);
    b->at[0] = 0;
    for (int i = 0; i < b->niov; i++)
        b->at[i + 1] = b->at[i] + b->iov[i].iov_len;
    return 0;
}

static void bw_free(struct bw *b)
{
    for (int k = 0; b->slots && k < b->window; k++) {
        tly_pool_free(b->slots[k].in);
        tly_pool_free(b->slots[k].out);
    }
    free(b->slots);
    free(b->at);
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

/* The blocks, written in order as they are compressed; false in *fits when they outgrow the chunk. */
static int put_blocks(struct tly__op *op, struct tly_writer *w, const struct tly_block_plan *p, const struct iovec *iov,
                      const bool *pad, int niov, uint8_t *head, uint64_t *stored, bool *fits)
{
    const struct tly__block_ops *ops = tly__codec_blocks(&op->a->meta.codec);
    uint64_t table = ops->header + 4 * p->nblocks;
    bool contiguous = niov == 1 && !pad[0];
    int lanes = lanes_of(op, p->nblocks);
    struct bw b = {.op = op,
                   .ops = ops,
                   .p = p,
                   .w = w,
                   .iov = iov,
                   .pad = pad,
                   .niov = niov,
                   .sizes = (uint32_t *)(void *)(head + table),
                   .window = window_of(lanes)};
    pthread_mutex_init(&b.mu, NULL);
    pthread_cond_init(&b.cv, NULL);
    struct iovec hv = {head, (size_t)table};
    memset(head, 0, (size_t)table); /* the placeholder, patched at the end */
    tly__op_chunk_threads(op, lanes);
    int err = bw_alloc(&b, contiguous);
    if (!err) {
        TLY_STAGE(TLY_PUT)
        {
            err = tly_writer_writev(w, &hv, 1);
        }
    }
    if (!err)
        err = tly__run_tasks(lanes, p->nblocks, block_task, &b);
    *fits = !b.outgrown;
    if (!err && *fits) {
        ops->frame_head(p, b.sizes, head);
        TLY_STAGE(TLY_PUT)
        {
            tly__plant_point(TLY_PUT);
            err = tly_writer_patch(w, 0, head, (size_t)table);
        }
    }
    bw_free(&b);
    pthread_cond_destroy(&b.cv);
    pthread_mutex_destroy(&b.mu);
    *stored = table + b.total;
    return err;
}

int tly__put_blocks(struct tly__op *op, const struct tly_block_plan *p, const char *key, const struct iovec *iov,
                    const bool *pad, int niov, uint64_t *stored)
{
    const struct tly__block_ops *ops = tly__codec_blocks(&op->a->meta.codec);
    struct tly_store *st = op->a->store;
    struct tly_writer *w = NULL;
    uint64_t table = ops->header + 4 * p->nblocks;
    int err = 0;
    uint64_t expect = p->n + table;                              /* the most the frame may hold */
    bool hold = op->a->remote && expect > op->a->opts.part_size; /* it may outgrow a part */
    TLY_STAGE(TLY_ENCODE)
    {
        tly__plant_point(TLY_ENCODE);
    }
    if (op->a->remote && !p->stored && table > op->a->opts.part_size)
        return tly_fail(TLY_EUNSUPPORTED,
                        "the header and offset table of %llu blocks (%llu bytes) do not fit in the first S3 part "
                        "(%zu bytes), where they are patched in at the end: a --part-size of at least %llu takes them",
                        (unsigned long long)p->nblocks, (unsigned long long)table, op->a->opts.part_size,
                        (unsigned long long)table);
    TLY_STAGE(TLY_PUT)
    {
        err = tly_store_writer(st, key, &w);
        if (!err && !p->stored) {
            /* S3: the first part waits for the table; a frame that may outgrow a part keeps 5 MiB of it */
            tly_writer_keep_head(w, (size_t)table, expect);
            tly_writer_parts_in_flight(w, tly__parts_in_flight(op, true));
        }
    }
    bool fits = false, kept = false; /* a turn kept through the commit */
    uint8_t *head = NULL;
    if (!err && !p->stored) {
        tly__turn_take(op, hold);
        head = tly_pool_alloc((size_t)(ops->header + 8 * p->nblocks));
        err = head ? put_blocks(op, w, p, iov, pad, niov, head, stored, &fits)
                   : tly_fail(-ENOMEM, "out of memory for a table of %llu blocks", (unsigned long long)p->nblocks);
        if (hold)
            kept = true;
        else
            tly__turn_give(op); /* the frame is with the writer: its uploads need no core */
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
    if (kept)
        tly__turn_give(op);
    tly_pool_free(head);
    return err;
}
