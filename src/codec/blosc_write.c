/*
 * blosc frames written block by block, so that a writer holds a block and never the encoded chunk.
 *
 * c-blosc 1.x compresses each block of a frame on its own (shuffle, then one stream, or typesize
 * streams when it splits the block), so a frame can be stitched from blocks compressed one at a time
 * with the same compressor, level, shuffle, typesize and block size: header, offset table, blocks.
 * The pieces come from c-blosc itself:
 *
 *   - the plan: a probe of zeros compressed with the chunk's settings gives the header c-blosc
 *     writes (version, flags, the split rule's bit) and the block size it picks for the chunk
 *     (which depends on the settings and the size, never the bytes);
 *   - a full block: a frame of that one block (forcing its size, which c-blosc keeps for a frame
 *     exactly one block long), whose block follows its 20-byte head;
 *   - the last, shorter block, which c-blosc never splits: the second block of a frame of the block
 *     before it and the last one, with a forced size that c-blosc turns into the frame's block size
 *     (it enlarges a forced size for splitting codecs: the plan finds one that gives the size back).
 *
 * Every block's frame is checked against the plan (block size, flags); one that differs is an
 * error, and the engine writes the chunk whole instead. As c-blosc does, a frame that would be longer
 * than the chunk and its header is stored "memcpyed" (the header and the bytes as they are), and so
 * is every frame of clevel 0 or under 128 bytes.
 *
 * The bytes are blosc_compress_ctx()'s (one thread, destination of the chunk plus its header),
 * block for block, with one exception: c-blosc gives snappy room for its worst case (more than the
 * input) and, when the destination has not that much left, stores the stream as it is, or the whole
 * frame memcpyed; a block compressed on its own always has the room, so snappy frames may be smaller
 * than c-blosc's own (and decode the same).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <blosc.h>

#include "codec/blosc.h"
#include "tally/error.h"
#include "tally/mem.h"

#define PROBE ((size_t)2 << 20) /* twice the largest block size c-blosc picks on its own (1 MiB) */

/* The probe's zeros: static, so that planning takes no memory beyond its small output (c-blosc only
 * reads them; a forced block size over 1 MiB takes a buffer of its own). */
static uint8_t zeros[PROBE];

/* Compress @p n bytes at @p src with @p c's settings, blocksize @p force, into @p out. */
static int compress(const struct tly_codec *c, const void *src, size_t n, size_t force, uint8_t *out, size_t cap)
{
    return blosc_compress_ctx(c->blosc.clevel, c->blosc.shuffle, (size_t)c->blosc.typesize, n, src, out, cap,
                              c->blosc.cname, force, 1);
}

/* Compress @p n zeros into a buffer of its own: a small one first (compressed zeros are small,
 * snappy's the largest at a 21st), then one with room for any stream when c-blosc asks for it
 * (snappy wants room for its worst case). Returns the size and the buffer (the caller frees it). */
static int compress_zeros(const struct tly_codec *c, const uint8_t *z, size_t n, size_t force, uint8_t **out)
{
    size_t caps[] = {c->blosc.clevel == 0 ? n + BLOSC_MAX_OVERHEAD : n / 16 + ((size_t)64 << 10),
                     n + n / 6 + ((size_t)64 << 10)};
    int r = -1;
    for (int i = 0; i < 2 && r <= 0; i++) {
        free(*out);
        *out = malloc(caps[i]);
        r = *out ? compress(c, z, n, force, *out, caps[i]) : -1;
    }
    return r;
}

/* The block size and header c-blosc picks for @p n bytes, from a probe of zeros. */
static int probe_header(const struct tly_codec *c, uint64_t n, const uint8_t *z, size_t zn, struct tly_block_plan *p)
{
    size_t pn = n < zn ? (size_t)n : zn;
    uint8_t *out = NULL;
    int r = compress_zeros(c, z, pn, c->blosc.blocksize, &out);
    if (r >= BLOSC_MIN_HEADER_LENGTH) {
        memcpy(p->header, out, TLY_BLOSC_HEADER); /* c-blosc's header, not payload */
        p->blocksize = tly__le32(out + 8);
        p->stored = (out[2] & BLOSC_MEMCPYED) || n == 0;
    }
    free(out);
    if (r < BLOSC_MIN_HEADER_LENGTH)
        return tly_fail(TLY_EUNSUPPORTED, "blosc: a probe of the settings failed (%d)", r);
    if (!p->stored && (p->blocksize == 0 || (pn < n && p->blocksize >= pn)))
        return tly_fail(TLY_EUNSUPPORTED, "blosc: block size %llu not found by a probe of %zu bytes",
                        (unsigned long long)p->blocksize, pn);
    return 0;
}

/* A forced size that c-blosc turns into the block size for a frame of a block and the last one. */
static int last_force(const struct tly_codec *c, const uint8_t *z, size_t zn, struct tly_block_plan *p)
{
    size_t n = (size_t)(p->blocksize + p->n % p->blocksize);
    size_t tries[] = {(size_t)p->blocksize, (size_t)p->blocksize / (size_t)c->blosc.typesize};
    for (int i = 0; n <= zn && i < 2 && !p->last_force; i++) {
        uint8_t *out = NULL;
        int r = compress_zeros(c, z, n, tries[i], &out);
        if (r >= BLOSC_MIN_HEADER_LENGTH && tly__le32(out + 8) == p->blocksize && out[2] == p->header[2])
            p->last_force = tries[i];
        free(out);
    }
    return p->last_force ? 0
                         : tly_fail(TLY_EUNSUPPORTED, "blosc: no forced block size keeps %llu for the last block",
                                    (unsigned long long)p->blocksize);
}

static int plan(const struct tly_codec *c, uint64_t n, struct tly_block_plan *p)
{
    int rc = tly__blosc_check(c);
    if (rc)
        return rc;
    if (n > BLOSC_MAX_BUFFERSIZE)
        return tly_fail(TLY_ECODEC, "blosc: a %llu-byte chunk is over c-blosc 1.x's limit of %d bytes",
                        (unsigned long long)n, BLOSC_MAX_BUFFERSIZE);
    *p = (struct tly_block_plan){.n = n};
    size_t zn = c->blosc.blocksize * 2 > PROBE ? c->blosc.blocksize * 2 : PROBE;
    uint8_t *z = zn > PROBE ? calloc(1, zn) : zeros;
    rc = z ? probe_header(c, n, z, zn, p) : tly_fail(-ENOMEM, "blosc: out of memory for a probe");
    if (!rc && !p->stored) {
        p->nblocks = n / p->blocksize + (n % p->blocksize != 0);
        if (n % p->blocksize && p->nblocks > 1)
            rc = last_force(c, z, zn, p);
    }
    if (z != zeros)
        free(z);
    return rc;
}

int tly_blosc_plan(const struct tly_codec *c, uint64_t n, struct tly_block_plan *p)
{
    if (c == NULL || p == NULL || c->id != TLY_CODEC_BLOSC)
        return tly_fail(TLY_EUSAGE, "blosc: a plan needs a blosc codec");
    int rc = 0;
    TLY_STAGE(TLY_ENCODE)
    {
        rc = plan(c, n, p);
    }
    return rc;
}

size_t tly_blosc_block_cap(const struct tly_block_plan *p, uint64_t j)
{
    /* a short last block is compressed in a frame of two (with the block before it) */
    size_t blocks = p->n % p->blocksize && j + 1 == p->nblocks && p->nblocks > 1 ? 2 : 1;
    return blocks * ((size_t)tly_blosc_max_extent(p->blocksize) + TLY_BLOSC_BLOCK_PAD);
}

static int encode_block(const struct tly_codec *c, const struct tly_block_plan *p, uint64_t j, const void *src,
                        uint8_t *out, const void **at, size_t *len)
{
    uint64_t left = p->n % p->blocksize;
    bool last = left && j + 1 == p->nblocks;
    size_t n = (size_t)(last ? p->blocksize + left : p->blocksize);
    int r = compress(c, src, n, last ? p->last_force : (size_t)p->blocksize, out, tly_blosc_block_cap(p, j));
    if (r < BLOSC_MIN_HEADER_LENGTH)
        return tly_fail(TLY_ECODEC, "blosc: compression of block %llu with %s failed (%d)", (unsigned long long)j,
                        c->blosc.cname, r);
    uint32_t start = tly__le32(out + 16 + (last ? 4 : 0));
    if (tly__le32(out + 8) != p->blocksize || out[2] != p->header[2] || start >= (uint32_t)r ||
        start < TLY_BLOSC_BLOCK_PAD)
        return tly_fail(TLY_ECODEC, "blosc: block %llu came out as another frame (block size %u, flags 0x%02x)",
                        (unsigned long long)j, tly__le32(out + 8), out[2]);
    *at = out + start;
    *len = (size_t)r - start;
    return 0;
}

int tly_blosc_encode_block(const struct tly_codec *c, const struct tly_block_plan *p, uint64_t j, const void *src,
                           void *out, const void **at, size_t *len)
{
    if (p->stored || j >= p->nblocks)
        return tly_fail(TLY_EUSAGE, "blosc: no block %llu to compress", (unsigned long long)j);
    int rc = 0;
    TLY_STAGE(TLY_ENCODE)
    {
        rc = encode_block(c, p, j, src, out, at, len);
    }
    return rc;
}

bool tly_blosc_frame_head(const struct tly_block_plan *p, const uint32_t *sizes, void *head)
{
    uint8_t *h = head;
    uint64_t pos = TLY_BLOSC_HEADER + p->nblocks * sizeof(int32_t);
    for (uint64_t j = 0; j < p->nblocks; j++) {
        tly__put_le32(h + TLY_BLOSC_HEADER + j * sizeof(int32_t), (uint32_t)pos);
        pos += sizes[j];
    }
    memcpy(h, p->header, TLY_BLOSC_HEADER); /* the header's bytes, not payload */
    tly__put_le32(h + 4, (uint32_t)p->n);
    tly__put_le32(h + 8, (uint32_t)p->blocksize);
    tly__put_le32(h + 12, (uint32_t)pos);
    return pos <= p->n + TLY_BLOSC_HEADER;
}

void tly_blosc_stored_head(const struct tly_block_plan *p, void *head)
{
    uint8_t *h = head;
    memcpy(h, p->header, TLY_BLOSC_HEADER); /* the header's bytes, not payload */
    h[2] |= BLOSC_MEMCPYED;
    tly__put_le32(h + 4, (uint32_t)p->n);
    tly__put_le32(h + 12, (uint32_t)(p->n + TLY_BLOSC_HEADER));
}

/* c-blosc's temporaries are a function of its block size: a block's, not the settings'. */
static size_t block_workspace(const struct tly_codec *c, uint64_t blocksize, size_t n, bool decode)
{
    struct tly_codec b = *c;
    b.blosc.blocksize = (size_t)blocksize;
    return tly_codec_workspace(&b, n, decode, false);
}

const struct tly__block_ops tly__blosc_blocks = {
    .header = TLY_BLOSC_HEADER,
    .pad = TLY_BLOSC_BLOCK_PAD,
    .workspace = block_workspace,
    .frame_open = tly_blosc_frame_open,
    .table_bytes = tly_blosc_frame_table_bytes,
    .block_size = tly_blosc_block_size,
    .max_extent = tly_blosc_max_extent,
    .frame_blocks = tly_blosc_frame_blocks,
    .block_frame = tly_blosc_block_frame,
    .plan = tly_blosc_plan,
    .block_cap = tly_blosc_block_cap,
    .encode_block = tly_blosc_encode_block,
    .frame_head = tly_blosc_frame_head,
    .stored_head = tly_blosc_stored_head,
};
