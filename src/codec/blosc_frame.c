/*
 * blosc frames read block by block, so that a reader holds a few blocks and never the frame.
 *
 * A c-blosc 1.x frame is a 16-byte header (version, versionlz, flags, typesize, then nbytes,
 * blocksize and cbytes, little-endian), a table of one int32 offset per block (bstarts), and the
 * blocks, each compressed on its own: a block is one stream, or typesize streams when c-blosc split
 * it (flag 0x10 says it did not; a last, shorter block is never split), each stream led by its
 * int32 compressed size. A "memcpyed" frame (flag 0x02: clevel 0, or data that did not compress)
 * has no table and no blocks: the decoded bytes follow the header as they are.
 *
 * Blocks may lie in any order: c-blosc's threaded compressor (numcodecs uses it from the main
 * thread) writes each block where the output stands when its thread finishes. So a block's extent
 * is the distance to the next block start in the frame, whatever its index, and the table is valid
 * when the blocks lie after it, inside the frame, at distinct starts, none longer than a block of
 * its size can compress to.
 *
 * A block is decoded by c-blosc itself, through a frame of one block written in the 20 bytes the
 * reader leaves before it: the original header's version, compressor, shuffle and typesize, nbytes
 * and blocksize of the block's size, and one offset. A full block keeps the original's split rule
 * (same typesize, blocksize and flags); the last, shorter block gets flag 0x10, as c-blosc never
 * splits it.
 */
#include <stdlib.h>
#include <string.h>

#include <blosc.h>

#include "codec/blosc.h"
#include "tally/error.h"

#define FLAG_NOSPLIT 0x10
#define FLAG_RESERVED 0x08
#define MAX_SPLITS 16

int tly_blosc_frame_open(const void *header, uint64_t size, uint64_t dst_n, struct tly_block_frame *f)
{
    const uint8_t *h = header;
    if (size < TLY_BLOSC_HEADER)
        return tly_fail(TLY_ECODEC, "blosc: chunk of %llu bytes is shorter than a blosc header (%d)",
                        (unsigned long long)size, TLY_BLOSC_HEADER);
    *f = (struct tly_block_frame){
        .nbytes = tly__le32(h + 4), .blocksize = tly__le32(h + 8), .cbytes = tly__le32(h + 12)};
    memcpy(f->header, h, TLY_BLOSC_HEADER); /* 16 header bytes, not payload */
    f->stored = (h[2] & BLOSC_MEMCPYED) != 0;
    if (h[0] == 0 || h[0] > BLOSC_VERSION_FORMAT)
        return tly_fail(TLY_ECODEC, "blosc: header corrupt (format version %d; this c-blosc reads 1..%d)", h[0],
                        BLOSC_VERSION_FORMAT);
    if (h[2] & FLAG_RESERVED)
        return tly_fail(TLY_ECODEC, "blosc: header corrupt (reserved flag 0x08 set)");
    if (h[3] == 0)
        return tly_fail(TLY_ECODEC, "blosc: header corrupt (typesize 0)");
    if (f->cbytes != size)
        return tly_fail(TLY_ECODEC, "blosc: header corrupt (records %llu compressed bytes, chunk has %llu)",
                        (unsigned long long)f->cbytes, (unsigned long long)size);
    if (f->nbytes > BLOSC_MAX_BUFFERSIZE)
        return tly_fail(TLY_ECODEC, "blosc: header corrupt (%llu decoded bytes, over c-blosc 1.x's limit)",
                        (unsigned long long)f->nbytes);
    if (f->nbytes != dst_n)
        return tly_fail(TLY_ECODEC, "blosc: chunk holds %llu bytes, expected %llu", (unsigned long long)f->nbytes,
                        (unsigned long long)dst_n);
    if (f->stored) {
        if (size - TLY_BLOSC_HEADER != f->nbytes)
            return tly_fail(TLY_ECODEC, "blosc: header corrupt (uncompressed frame of %llu bytes records %llu)",
                            (unsigned long long)size, (unsigned long long)f->nbytes);
        return 0;
    }
    if (f->nbytes == 0)
        return 0;
    if (f->blocksize == 0 || f->blocksize > f->nbytes)
        return tly_fail(TLY_ECODEC, "blosc: header corrupt (blocksize %llu for %llu bytes)",
                        (unsigned long long)f->blocksize, (unsigned long long)f->nbytes);
    f->nblocks = f->nbytes / f->blocksize + (f->nbytes % f->blocksize != 0);
    if (f->nblocks > (size - TLY_BLOSC_HEADER) / sizeof(int32_t))
        return tly_fail(TLY_ECODEC, "blosc: header corrupt (%llu blocks do not fit in %llu bytes)",
                        (unsigned long long)f->nblocks, (unsigned long long)size);
    return 0;
}

uint64_t tly_blosc_frame_table_bytes(const struct tly_block_frame *f)
{
    return f->nblocks * sizeof(int32_t);
}

uint64_t tly_blosc_block_size(const struct tly_block_frame *f, uint64_t j)
{
    if (j + 1 < f->nblocks)
        return f->blocksize;
    uint64_t left = f->nbytes % f->blocksize;
    return left ? left : f->blocksize;
}

uint64_t tly_blosc_max_extent(uint64_t bsize)
{
    /* each of at most 16 streams: its 4-byte size and at most what c-blosc lets a codec produce
     * (snappy's bound, the largest: 32 + n + n / 6) */
    return bsize + bsize / 6 + MAX_SPLITS * (sizeof(int32_t) + 32);
}

static int by_start(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int tly_blosc_frame_blocks(const struct tly_block_frame *f, const void *table, uint32_t *start, uint32_t *extent,
                           uint64_t *scratch)
{
    const uint8_t *t = table;
    uint64_t n = f->nblocks, first = TLY_BLOSC_HEADER + tly_blosc_frame_table_bytes(f);
    bool ordered = true;
    for (uint64_t j = 0; j < n; j++) {
        start[j] = tly__le32(t + j * sizeof(int32_t));
        if (start[j] < first || start[j] >= f->cbytes)
            return tly_fail(TLY_ECODEC,
                            "blosc: offset table corrupt (block %llu starts at %u, outside bytes %llu..%llu)",
                            (unsigned long long)j, start[j], (unsigned long long)first, (unsigned long long)f->cbytes);
        ordered &= j == 0 || start[j] > start[j - 1];
    }
    if (ordered) {
        for (uint64_t j = 0; j < n; j++)
            extent[j] = (uint32_t)((j + 1 < n ? start[j + 1] : f->cbytes) - start[j]);
    } else { /* written by threads: find each block's end by sorting the starts */
        for (uint64_t j = 0; j < n; j++)
            scratch[j] = (uint64_t)start[j] << 32 | j;
        qsort(scratch, n, sizeof *scratch, by_start);
        for (uint64_t k = 0; k < n; k++) {
            uint64_t j = scratch[k] & 0xffffffffu, end = k + 1 < n ? scratch[k + 1] >> 32 : f->cbytes;
            if (end == start[j])
                return tly_fail(TLY_ECODEC, "blosc: offset table corrupt (blocks %llu and %llu both start at %u)",
                                (unsigned long long)j, (unsigned long long)(scratch[k + 1] & 0xffffffffu), start[j]);
            extent[j] = (uint32_t)(end - start[j]);
        }
    }
    for (uint64_t j = 0; j < n; j++) {
        uint64_t bsize = tly_blosc_block_size(f, j);
        if (extent[j] < sizeof(int32_t) || extent[j] > tly_blosc_max_extent(bsize))
            return tly_fail(TLY_ECODEC,
                            "blosc: offset table corrupt (block %llu of %llu bytes spans %u encoded bytes at %u)",
                            (unsigned long long)j, (unsigned long long)bsize, extent[j], start[j]);
    }
    return 0;
}

size_t tly_blosc_block_frame(const struct tly_block_frame *f, uint64_t j, void *at, size_t extent)
{
    uint8_t *h = at;
    uint32_t bsize = (uint32_t)tly_blosc_block_size(f, j);
    h[0] = f->header[0];
    h[1] = f->header[1];
    h[2] = (uint8_t)(f->header[2] | (bsize != f->blocksize ? FLAG_NOSPLIT : 0));
    h[3] = f->header[3];
    tly__put_le32(h + 4, bsize);
    tly__put_le32(h + 8, bsize);
    tly__put_le32(h + 12, (uint32_t)(TLY_BLOSC_BLOCK_PAD + extent));
    tly__put_le32(h + 16, TLY_BLOSC_BLOCK_PAD);
    return TLY_BLOSC_BLOCK_PAD + extent;
}
