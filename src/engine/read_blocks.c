/*
 * Reading a chunk of a codec with block frames (codec/blocks.h: blosc's) block by block, so that
 * the encoded chunk never exists whole:
 *
 *   1. the first range: the header and, for all but huge tables, the offset table, in one read
 *      that also says the chunk's size (tly_store_read_head: no request for the size alone); a
 *      table that does not fit is a second read;
 *   2. the blocks the region needs, in groups of blocks adjacent in the frame (one read each, of up
 *      to GROUP_BYTES or one block), each group read into a slot with the codec's pad of bytes
 *      free before every block (preadv / a range GET straight into the pieces), and each block
 *      decoded where it lies (the block entries' block_frame): straight into the output when the
 *      chunk lies contiguously there (or the block within one run), else into a block-sized buffer
 *      scattered to the runs from cache;
 *   3. the chunk's groups run on its share of threads (op->codec_threads), each lane reading one
 *      group and then decoding it, so that one lane reads while another decodes. On a remote store
 *      a chunk's group is read before its task takes a lane, and holds it only to decode: a lane
 *      bounds the CPU, and holding one through a GET kept as few requests in flight as there are
 *      threads (2 on a 2-CPU machine, for all of an operation's chunks). Strided chunks kept that
 *      way until 2026-12-07, for their peak (a strided S3 read's went from 0.04 to 0.10 of its
 *      array's bytes, within their tickets): read-s3-blosc-256x4MiB, whose chunks are strided,
 *      had 2.3 requests in flight, 0.28 GB/s against its CPU-shared limit's 1.01; then 25 in flight,
 *      0.52 GB/s. The chunk's ticket counts every slot its tasks hold. Remote groups are larger
 *      (plan_window()), since every request costs a round trip and the server's work: a 4 MiB
 *      chunk of 256 KiB blocks took 17 requests; a contiguous chunk with transfers to itself (a
 *      lone one) reads larger groups still, some of them ahead of its lanes.
 *
 * A remote chunk among others that is wanted whole and whose frame can be no larger than a group
 * is one request (one_range()): the whole frame from byte 0, its size in the reply, its blocks
 * decoded where they lie in it, each block's pad written over bytes already decoded.
 *
 * A stored frame (blosc's "memcpyed": the bytes as they are after the header) is read like an uncompressed chunk:
 * straight into the output's runs.
 *
 * Memory: a chunk holds its offset table (and the arrays made from it) and, per lane, a slot, the
 * block buffer of a strided chunk and the codec's temporaries for one block; its ticket counts them
 * all before any is taken, the slots as no more than the frame's blocks (a chunk that is one group
 * holds one slot, not one per lane). The lanes of the whole operation are bounded by `lanes` (the threads):
 * a remote store runs more chunks than threads to keep transfers in flight, and without that bound
 * each would hold a slot of blocks waiting for a thread to decode them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tally/error.h"
#include "engine/internal.h"
#include "codec/blocks.h"
#include "tally/codec.h"
#include "tally/mem.h"
#include "tally/timing.h"
#include "mem/plant.h"

#define GROUP_BYTES ((size_t)256 << 10)      /* a read of adjacent blocks: up to this, or one block */
#define REMOTE_GROUP_BYTES ((size_t)1 << 20) /* on a remote store (the header comment) */
#define GROUP_BLOCKS 64                      /* and up to this many blocks (its pieces are on the stack) */
#define FIRST_MAX 4096                       /* the first range: the header and the table of 1020 blocks */
#define MIN_BLOCK ((uint64_t)32 << 10)       /* the first range guesses blocks no smaller than this */

void tly__lanes_init(struct tly__lanes *l, int n)
{
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    l->free = n > 0 ? n : 1;
}

void tly__lanes_destroy(struct tly__lanes *l)
{
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
}

/* A lane, to decode a group: the lanes are block reads' codec gate (their decodes, at most `threads`,
 * never wait at the gate itself), so the time waited for one counts as a gate wait in decode. */
static void lane_take(struct tly__lanes *l)
{
    pthread_mutex_lock(&l->mu);
    if (l->free == 0)
        TLY_STAGE(TLY_DECODE)
        {
            uint64_t t0 = tly_wait_begin();
            while (l->free == 0)
                pthread_cond_wait(&l->cv, &l->mu);
            tly_wait_end(t0, TLY_WAIT_GATE);
        }
    l->free--;
    pthread_mutex_unlock(&l->mu);
}

static void lane_give(struct tly__lanes *l)
{
    pthread_mutex_lock(&l->mu);
    l->free++;
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

/* One chunk's read. */
struct bread {
    struct tly__op *op;
    struct tly__lanes *lanes;
    const char *key;
    const struct tly_runs *rs;
    char *out;
    bool contiguous;
    const struct tly__block_ops *ops; /* the codec's block entries */
    struct tly_block_frame f;
    uint32_t *start, *extent;  /* per block, in the frame */
    uint32_t *gfirst, *gcount; /* per group: its first block and how many */
    uint64_t ngroups;
    size_t group;   /* the bytes a group reads at most (at least one block): plan_window() */
    uint64_t ahead; /* groups read ahead of the lanes: plan_window() */
    uint64_t size;  /* the stored chunk's bytes */
};

/* Chunk offset and output offset of run @p k. */
static void run_at(const struct tly_runs *rs, uint64_t k, uint64_t *co, uint64_t *bo)
{
    struct tly_runs_iter it;
    tly_runs_iter_seek(&it, rs, k);
    tly_runs_next(&it, co, bo);
}

/* The first run that ends after chunk offset @p lo (nruns when none does). */
static uint64_t run_after(const struct tly_runs *rs, uint64_t lo)
{
    uint64_t a = 0, b = rs->nruns, co, bo;
    while (a < b) {
        uint64_t m = a + (b - a) / 2;
        run_at(rs, m, &co, &bo);
        if (co + rs->run_bytes <= lo)
            a = m + 1;
        else
            b = m;
    }
    return a;
}

/* Whether the region wants any byte of chunk bytes [lo, hi). */
static bool wanted(const struct tly_runs *rs, uint64_t lo, uint64_t hi)
{
    uint64_t k = run_after(rs, lo), co, bo;
    if (k >= rs->nruns)
        return false;
    run_at(rs, k, &co, &bo);
    return co < hi;
}

/* Where block bytes [lo, hi) of the chunk can be decoded in the output itself: the contiguous
 * chunk's place, or the one run that holds them all; NULL when they must be scattered. */
static char *direct(const struct bread *b, uint64_t lo, uint64_t hi)
{
    const struct tly_runs *rs = b->rs;
    if (b->contiguous)
        return b->out + rs->buf_base + lo;
    uint64_t k = run_after(rs, lo), co, bo;
    if (k >= rs->nruns)
        return NULL;
    run_at(rs, k, &co, &bo);
    return co <= lo && hi <= co + rs->run_bytes ? b->out + bo + (lo - co) : NULL;
}

/* Block bytes [lo, hi) of the chunk, decoded at @p buf, to the runs that want them. */
static void scatter(const struct bread *b, const char *buf, uint64_t lo, uint64_t hi)
{
    const struct tly_runs *rs = b->rs;
    struct tly_runs_iter it;
    uint64_t co, bo;
    tly_runs_iter_seek(&it, rs, run_after(rs, lo));
    TLY_STAGE(TLY_SCATTER)
    {
        tly__plant_point(TLY_SCATTER);
        while (tly_runs_next(&it, &co, &bo) && co < hi) {
            uint64_t a = co > lo ? co : lo, e = co + rs->run_bytes < hi ? co + rs->run_bytes : hi;
            tly_copy(b->out + bo + (a - co), buf + (a - lo), (size_t)(e - a));
        }
    }
}

/* Decode block @p j, whose frame of @p len bytes is at @p at, into the output (through @p aside
 * when it must be scattered). */
static int decode_block(struct bread *b, uint64_t j, char *at, size_t len, char *aside)
{
    uint64_t lo = j * b->f.blocksize, bsize = b->ops->block_size(&b->f, j);
    char *dst = direct(b, lo, lo + bsize);
    int err = tly__decode(b->op, dst ? dst : aside, (size_t)bsize, at, len);
    if (!err && !dst)
        scatter(b, aside, lo, lo + bsize);
    if (err)
        tly_err_prefix("block %llu of %llu", (unsigned long long)j, (unsigned long long)b->f.nblocks);
    return err;
}

/* Group @p g: read its blocks into a slot, each after TLY_BLOSC_BLOCK_PAD free bytes, and decode them. */
static int read_group(void *arg, uint64_t g)
{
    struct bread *b = arg;
    uint32_t j0 = b->gfirst[g], n = b->gcount[g];
    struct iovec iov[GROUP_BLOCKS];
    size_t bytes = 0;
    for (uint32_t i = 0; i < n; i++)
        bytes += b->ops->pad + b->extent[j0 + i];
    bool remote = b->op->a->remote; /* read before taking a lane (the header comment) */
    if (!remote)
        lane_take(b->lanes);
    char *slot = tly_pool_alloc(bytes), *aside = NULL;
    int err = slot ? 0 : tly_fail(-ENOMEM, "out of memory for %zu bytes of blocks", bytes);
    for (uint32_t i = 0, pos = 0; !err && i < n; pos += b->ops->pad + b->extent[j0 + i], i++)
        iov[i] = (struct iovec){slot + pos + b->ops->pad, b->extent[j0 + i]};
    if (!err) {
        TLY_STAGE(TLY_GET)
        {
            err = tly_store_readv(b->op->a->store, b->key, b->start[j0], iov, (int)n);
        }
    }
    if (remote)
        lane_take(b->lanes);
    if (!err && !b->contiguous && (aside = tly_pool_alloc((size_t)b->f.blocksize)) == NULL)
        err = tly_fail(-ENOMEM, "out of memory for a block of %llu bytes", (unsigned long long)b->f.blocksize);
    for (uint32_t i = 0, pos = 0; !err && i < n; pos += b->ops->pad + b->extent[j0 + i], i++) {
        size_t len = b->ops->block_frame(&b->f, j0 + i, slot + pos, b->extent[j0 + i]);
        err = decode_block(b, j0 + i, slot + pos, len, aside);
    }
    tly_pool_free(aside);
    tly_pool_free(slot);
    lane_give(b->lanes);
    return err;
}

/*
 * A chunk's window: the bytes a group reads at most (b->group) and the groups read ahead of the
 * lanes (b->ahead). Locally GROUP_BYTES and none: a lane holds its group from read to decode. A
 * remote chunk reads groups as large as let the budget hold the lanes' groups of SHARED_CHUNKS chunks
 * at once, from REMOTE_GROUP_BYTES to REMOTE_GROUP_SHARED, and none ahead where many chunks share the
 * transfers: read-s3-blosc-256x4MiB (chunks of 8 blocks of 512 KiB) at 64 MiB, 1 MiB groups: 1284
 * requests, 0.62-0.69 GB/s, 24 MiB held; 4 MiB groups (the chunk is one): 516 requests, 0.80-0.87
 * GB/s, 46 MiB held (bench-cell, 2 runs each, 2026-12-07). Where a
 * contiguous chunk has transfers to itself (fewer chunks than workers: a lone chunk), its requests in
 * flight were only its lanes, each a round trip for 1 MiB: a lone 1 GiB chunk on 2 threads had 1.7
 * requests in flight on average, 1031 requests, read-s3-blosc-one-chunk 0.56 GB/s. Such a chunk
 * gets its part of half the budget instead (tly__own_window), in lanes + AHEAD groups of up to
 * REMOTE_GROUP_MAX: on the bench's 64 MiB, 4 groups of 8 MiB, 121 requests, 3.2 in flight,
 * 0.80-1.15 GB/s with 34 MiB held (a quarter of the budget, groups of 4 MiB: 0.74-0.79). It is the
 * request's size that counts, on a server that does work per request (radosgw): more 1 MiB groups in
 * flight gained little (29 in flight: 0.71-0.75 GB/s).
 */
#define SHARED_CHUNKS 8                       /* chunks whose lanes' groups the budget holds at once */
#define REMOTE_GROUP_SHARED ((size_t)4 << 20) /* the most a group of a chunk sharing the transfers reads */
#define AHEAD 2                               /* groups a lone chunk reads ahead of its lanes */
#define REMOTE_GROUP_MAX ((size_t)8 << 20)    /* and the most a group of it reads */
static void plan_window(struct bread *b, int lanes)
{
    const struct tly__op *op = b->op;
    b->group = GROUP_BYTES;
    b->ahead = 0;
    if (!op->a->remote)
        return;
    uint64_t budget = op->a->opts.memory_limit, shared = budget ? budget / (SHARED_CHUNKS * (uint64_t)lanes) : 0;
    b->group = budget == 0 || shared > REMOTE_GROUP_SHARED ? REMOTE_GROUP_SHARED
               : shared < REMOTE_GROUP_BYTES               ? REMOTE_GROUP_BYTES
                                                           : (size_t)shared;
    if (!b->contiguous || op->read_ways <= lanes)
        return;
    uint64_t group = tly__own_window(op) / (uint64_t)(lanes + AHEAD);
    if (group < 2 * REMOTE_GROUP_BYTES || group <= b->group) /* no gain: ten 40 MB chunks on 32 transfers */
        return;
    b->group = group < REMOTE_GROUP_MAX ? (size_t)group : REMOTE_GROUP_MAX;
    b->ahead = (uint64_t)(op->read_ways - lanes) < AHEAD ? (uint64_t)(op->read_ways - lanes) : AHEAD;
}

/* The most bytes a group's slot holds: b->group, or one block where that is larger. */
static uint64_t slot_bytes(const struct bread *b)
{
    uint64_t one = b->ops->pad + b->ops->max_extent(b->f.blocksize);
    return one > b->group ? one : b->group;
}

/* The groups: the wanted blocks in order, a group growing while its next block follows it in the
 * frame and the group stays within b->group (a group holds at least one block). */
static void plan_groups(struct bread *b)
{
    uint64_t n = b->f.nblocks;
    size_t bytes = 0, most = b->group;
    b->ngroups = 0;
    for (uint64_t j = 0, last = UINT64_MAX; j < n; j++) {
        uint64_t lo = j * b->f.blocksize;
        if (!b->contiguous && !wanted(b->rs, lo, lo + b->ops->block_size(&b->f, j)))
            continue;
        size_t need = b->ops->pad + b->extent[j];
        uint64_t g = b->ngroups - 1;
        if (b->ngroups > 0 && last == j - 1 && b->start[j] == b->start[last] + b->extent[last] &&
            b->gcount[g] < GROUP_BLOCKS && bytes + need <= most) {
            b->gcount[g]++;
            bytes += need;
        } else {
            b->gfirst[b->ngroups] = (uint32_t)j;
            b->gcount[b->ngroups++] = 1;
            bytes = need;
        }
        last = j;
    }
}

/* The most bytes a lane holds: its slot, a strided chunk's block buffer, the codec's temporaries. */
static uint64_t lane_bytes(const struct bread *b, bool contiguous)
{
    const struct tly_block_frame *f = &b->f;
    struct tly_codec c = b->op->a->meta.codec;
    c.threads = 1;
    return slot_bytes(b) + (contiguous ? 0 : f->blocksize) +
           b->ops->workspace(&c, f->blocksize, (size_t)f->blocksize, true);
}

/* The table's bytes and the arrays made from it: sort scratch, start, extent, groups. */
static uint64_t table_bytes(const struct bread *b)
{
    return b->ops->table_bytes(&b->f) + b->f.nblocks * (8 + 4 + 4 + 4 + 4);
}

/* The compressed frame: the table (@p first holds @p nfirst bytes of the frame), the groups. */
static int read_blocks(struct bread *b, const uint8_t *first, size_t nfirst)
{
    struct tly__op *op = b->op;
    uint64_t n = b->f.nblocks, tb = b->ops->table_bytes(&b->f);
    int lanes = op->codec_threads > 0 ? op->codec_threads : 1;
    plan_window(b, lanes);
    /* the slots held at once: lanes + ahead groups, and never more than the frame's blocks with their
     * pads (the groups are disjoint: a chunk that is one group holds one slot, not one per lane) */
    uint64_t slots = ((uint64_t)lanes + b->ahead) * slot_bytes(b), frame = b->size + n * b->ops->pad;
    uint64_t ticket = table_bytes(b) + (slots < frame ? slots : frame) +
                      (uint64_t)lanes * (lane_bytes(b, b->contiguous) - slot_bytes(b));
    int err = 0;
    TLY_STAGE(TLY_POOL)
    {
        tly__plant_point(TLY_POOL);
        tly_pool_acquire(op->pool, ticket);
    }
    /* sort scratch, start, extent, gfirst, gcount, and the table when it is read on its own */
    uint64_t *scratch = tly_pool_alloc((size_t)table_bytes(b));
    if (scratch == NULL)
        err = tly_fail(-ENOMEM, "out of memory for a table of %llu blocks", (unsigned long long)n);
    const void *table = first + b->ops->header;
    if (!err) {
        b->start = (uint32_t *)(scratch + n);
        b->extent = b->start + n;
        b->gfirst = b->extent + n;
        b->gcount = b->gfirst + n;
    }
    if (!err && b->ops->header + tb > nfirst) { /* the table goes on past the first range */
        struct iovec iov = {b->gcount + n, (size_t)tb};
        table = iov.iov_base;
        TLY_STAGE(TLY_GET)
        {
            err = tly_store_readv(op->a->store, b->key, b->ops->header, &iov, 1);
        }
    }
    if (!err)
        err = b->ops->frame_blocks(&b->f, table, b->start, b->extent, scratch);
    if (!err) {
        TLY_STAGE(TLY_PLAN)
        {
            plan_groups(b);
        }
        TLY_STAGE(TLY_DECODE)
        {
            tly__plant_point(TLY_DECODE);
        }
        uint64_t ways = (uint64_t)lanes + b->ahead, decoding = (uint64_t)lanes;
        ways = ways < b->ngroups ? ways : b->ngroups;
        tly__op_chunk_threads(op, (int)(ways < decoding ? ways : decoding));
        err = b->ngroups ? tly__run_tasks((int)ways, b->ngroups, read_group, b) : 0;
    }
    tly_pool_free(scratch);
    tly_pool_release(op->pool, ticket);
    return err;
}

/*
 * One range for the whole chunk: a remote chunk wanted whole whose frame can be no larger than a
 * group (plan_window()) and its table, unless it has transfers to itself (a lone chunk's groups run
 * ahead of its lanes). Its first request asks for all of it from byte
 * 0 (tly_store_read_head: the reply says its size), so it costs one request, not the header's range
 * and then its group's: read-s3-blosc-256x4MiB made 516 requests for 256 chunks, and radosgw spent
 * 1.19-1.28 CPU-s on them where the S3 client alone's 256 GETs of the same objects cost it 0.81-0.89
 * (bench-cell, 2026-12-07), on a machine whose 2 CPUs it shares. @p cap: the most the frame can be.
 */
static bool one_range(struct bread *b, int lanes, uint64_t *cap)
{
    const struct tly__op *op = b->op;
    if (!op->a->remote || !b->rs->covers_chunk)
        return false;
    plan_window(b, lanes);
    *cap = tly_codec_bound(&op->a->meta.codec, b->rs->chunk_bytes);
    return b->ahead == 0 && *cap <= b->group + FIRST_MAX; /* not a lone chunk's own transfers */
}

/*
 * The frame's blocks decoded where they lie in @p frame, in the order of their place in it, on one
 * lane: block_frame() writes the codec's pad of bytes before each block, which are its predecessor's
 * last bytes (already decoded) or, for the first, the header and table (already read into start and
 * extent). So the frame read whole needs no slot with a pad before every block, and no copy.
 */
static int decode_frame(struct bread *b, char *frame)
{
    struct tly__op *op = b->op;
    uint64_t n = b->f.nblocks;
    uint64_t *scratch = tly_pool_alloc((size_t)table_bytes(b));
    char *aside = NULL;
    int err = scratch ? 0 : tly_fail(-ENOMEM, "out of memory for a table of %llu blocks", (unsigned long long)n);
    if (!err) {
        b->start = (uint32_t *)(scratch + n);
        b->extent = b->start + n;
        err = b->ops->frame_blocks(&b->f, frame + b->ops->header, b->start, b->extent, scratch);
    }
    bool ordered = true; /* else (blocks written by threads) frame_blocks left their places in order in scratch */
    for (uint64_t j = 1; !err && j < n; j++)
        ordered &= b->start[j] > b->start[j - 1];
    if (!err && !b->contiguous && (aside = tly_pool_alloc((size_t)b->f.blocksize)) == NULL)
        err = tly_fail(-ENOMEM, "out of memory for a block of %llu bytes", (unsigned long long)b->f.blocksize);
    if (!err) {
        tly__op_chunk_threads(op, 1);
        lane_take(b->lanes);
        TLY_STAGE(TLY_DECODE)
        {
            tly__plant_point(TLY_DECODE);
        }
        for (uint64_t k = 0; !err && k < n; k++) {
            uint64_t j = ordered ? k : scratch[k] & 0xffffffffu;
            char *at = frame + b->start[j] - b->ops->pad;
            size_t len = b->ops->block_frame(&b->f, j, at, b->extent[j]);
            err = decode_block(b, j, at, len, aside);
        }
        lane_give(b->lanes);
    }
    tly_pool_free(aside);
    tly_pool_free(scratch);
    return err;
}

/*
 * one_range()'s read: the ticket taken before the frame is known counts a frame of @p cap, a table of
 * blocks of MIN_BLOCK and a lane's block buffer and codec temporaries for the codec's largest block
 * (its workspace for the chunk); once the header says what the frame holds, what is left over goes
 * back. A frame that does not fit them (its size, its blocks, a stored frame) sets *done false, with
 * its header and table (or their first FIRST_MAX bytes) in @p first for the ordinary read: the blocks
 * it read are read again, the header is not.
 */
static int read_one_range(struct bread *b, uint64_t cap, uint8_t *first, size_t *nfirst, uint64_t *size, bool *missing,
                          bool *done)
{
    struct tly__op *op = b->op;
    const struct tly_runs *rs = b->rs;
    struct tly_codec c = op->a->meta.codec;
    c.threads = 1;
    uint64_t lane = tly_codec_workspace(&c, rs->chunk_bytes, true, false);
    uint64_t est = cap + b->ops->header + 28 * (rs->chunk_bytes / MIN_BLOCK + 1) + (b->contiguous ? 1 : 2) * lane;
    *done = false;
    TLY_STAGE(TLY_POOL)
    {
        tly__plant_point(TLY_POOL);
        tly_pool_acquire(op->pool, est);
    }
    char *frame = tly_pool_alloc((size_t)cap);
    int err = frame ? 0 : tly_fail(-ENOMEM, "out of memory for a frame of %llu bytes", (unsigned long long)cap);
    if (!err)
        TLY_STAGE(TLY_GET)
        {
            err = tly_store_read_head(op->a->store, b->key, frame, (size_t)cap, size);
        }
    *missing = err == TLY_ENOTFOUND;
    uint64_t got = !err && *size < cap ? *size : cap;
    if (!err) {
        b->size = *size;
        err = b->ops->frame_open(frame, *size, rs->chunk_bytes, &b->f);
    }
    bool blocks = !err && b->f.nblocks > 0 && !b->f.stored;
    uint64_t need = 0, meta = b->ops->header + (blocks ? b->ops->table_bytes(&b->f) : 0);
    if (blocks) {
        need = cap + table_bytes(b) + lane_bytes(b, b->contiguous) - slot_bytes(b);
        *done = *size <= got && meta >= b->ops->pad && need <= est;
    }
    if (*done) {
        tly_pool_release(op->pool, est - need);
        err = decode_frame(b, frame);
        est = need;
    } else if (!err) { /* the header and table (metadata, not the payload) for the ordinary read */
        *nfirst = (size_t)(meta < got ? meta : got);
        *nfirst = *nfirst < FIRST_MAX ? *nfirst : FIRST_MAX;
        memcpy(first, frame, *nfirst);
    }
    tly_pool_free(frame);
    tly_pool_release(op->pool, est);
    return err;
}

int tly__read_blocks(struct tly__op *op, struct tly__lanes *lanes, const char *key, const struct tly_runs *rs,
                     char *out, uint64_t *size, bool *missing)
{
    struct bread b = {.op = op,
                      .lanes = lanes,
                      .key = key,
                      .rs = rs,
                      .out = out,
                      .contiguous = tly_runs_contiguous(rs),
                      .ops = tly__codec_blocks(&op->a->meta.codec)};
    /* the first range, which says the object's size: the header and a table of blocks of at least MIN_BLOCK */
    uint8_t first[FIRST_MAX];
    uint64_t guess = b.ops->header + 4 * (rs->chunk_bytes / MIN_BLOCK + 1);
    size_t nfirst = (size_t)(guess < FIRST_MAX ? guess : FIRST_MAX);
    uint64_t cap;
    bool done = false;
    int err;
    if (one_range(&b, op->codec_threads > 0 ? op->codec_threads : 1, &cap)) {
        err = read_one_range(&b, cap, first, &nfirst, size, missing, &done);
    } else {
        TLY_STAGE(TLY_GET)
        {
            err = tly_store_read_head(op->a->store, key, first, nfirst, size);
        }
        *missing = err == TLY_ENOTFOUND; /* the caller fills the chunk (a chunk gone later is an error) */
    }
    if (err || done)
        return err;
    b.size = *size;
    if (nfirst > *size)
        nfirst = (size_t)*size;
    err = b.ops->frame_open(first, *size, rs->chunk_bytes, &b.f);
    if (err || b.f.nbytes == 0)
        return err;
    if (b.f.stored) {
        TLY_STAGE(TLY_GET)
        {
            err = tly__read_runs(op, key, b.ops->header, rs, out);
        }
        return err;
    }
    return read_blocks(&b, first, nfirst);
}
