/*
 * Internal to src/codec (and its tests): blosc's frames read and written block by block, the
 * entries of its struct tly__block_ops (codec/blocks.h), which is how the engine reaches them.
 */
#ifndef TLY__CODEC_BLOSC_H
#define TLY__CODEC_BLOSC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec/blocks.h"

/* ---- blosc frames read block by block (src/codec/blosc_frame.c) ---- */

/** Bytes of a c-blosc 1.x frame header. */
#define TLY_BLOSC_HEADER 16

/** Bytes a reader leaves free before each block it holds: tly_blosc_block_frame() writes a frame
 *  header of one block there, so that the block decodes where it lies (no copy). */
#define TLY_BLOSC_BLOCK_PAD 20

/**
 * Read the header (the first 16 bytes) of a frame of @p size bytes that must decode to @p dst_n
 * bytes into @p f. Returns 0, or TLY_ECODEC when the header is corrupt or does not match the chunk
 * ("blosc: chunk holds 100 bytes, expected 400", "blosc: header corrupt (...)").
 */
int tly_blosc_frame_open(const void *header, uint64_t size, uint64_t dst_n, struct tly_block_frame *f);

/** Bytes of the offset table that follows the header (4 per block). */
uint64_t tly_blosc_frame_table_bytes(const struct tly_block_frame *f);

/** Decoded bytes of block @p j. */
uint64_t tly_blosc_block_size(const struct tly_block_frame *f, uint64_t j);

/** The most encoded bytes a valid block of @p bsize decoded bytes can take. */
uint64_t tly_blosc_max_extent(uint64_t bsize);

/**
 * Check the offset table @p table (tly_blosc_frame_table_bytes() bytes, as stored) and lay the
 * blocks out: block j's encoded bytes are @p extent[j] bytes at @p start[j] of the frame (arrays of
 * nblocks; @p scratch has room for nblocks uint64_t). Blocks may lie in any order (c-blosc's threaded
 * compressor writes them as its threads finish); the table is valid when every block starts after
 * it and inside the frame, no two at the same place, and each spans no more than a block of its size
 * can. Returns 0, or TLY_ECODEC naming the block.
 */
int tly_blosc_frame_blocks(const struct tly_block_frame *f, const void *table, uint32_t *start, uint32_t *extent,
                           uint64_t *scratch);

/**
 * Make block @p j, whose @p extent encoded bytes lie at @p at + TLY_BLOSC_BLOCK_PAD, a frame of its
 * own (writing TLY_BLOSC_BLOCK_PAD bytes at @p at): tly_codec_decode() of the frame at @p at, of the
 * length returned, gives the block's tly_blosc_block_size() bytes. A block that claims more bytes
 * than @p extent is corrupt, and that decode says so.
 */
size_t tly_blosc_block_frame(const struct tly_block_frame *f, uint64_t j, void *at, size_t extent);

/* ---- blosc frames written block by block (src/codec/blosc_write.c) ---- */

/**
 * Plan chunks of @p n bytes with @p c's settings (once per array: it compresses a probe of zeros).
 * Returns 0, TLY_EUSAGE for bad settings, or TLY_EUNSUPPORTED when c-blosc's choices cannot be
 * reproduced block by block (the chunk is then compressed whole). Runs in stage encode.
 */
int tly_blosc_plan(const struct tly_codec *c, uint64_t n, struct tly_block_plan *p);

/** Bytes of the output buffer tly_blosc_encode_block() needs for block @p j (a short last block's
 *  frame holds the block before it too: the most). */
size_t tly_blosc_block_cap(const struct tly_block_plan *p, uint64_t j);

/**
 * Compress block @p j: @p src holds its bytes, and for the last block when it is shorter, the full
 * block before it and then it (src points at the one before: c-blosc compresses a short last block as
 * the end of a frame). Output goes to @p out (tly_blosc_block_cap() bytes for @p j); the block's encoded bytes
 * are @p *len bytes at @p *at. Returns 0 or TLY_ECODEC. Runs in stage encode.
 */
int tly_blosc_encode_block(const struct tly_codec *c, const struct tly_block_plan *p, uint64_t j, const void *src,
                           void *out, const void **at, size_t *len);

/**
 * The frame's header and offset table (TLY_BLOSC_HEADER + 4 per block bytes, into @p head) for blocks
 * of @p sizes encoded bytes. False when the frame would be longer than the chunk and its header:
 * c-blosc stores such a chunk memcpyed instead (tly_blosc_stored_head).
 */
bool tly_blosc_frame_head(const struct tly_block_plan *p, const uint32_t *sizes, void *head);

/** The 16-byte header of the chunk's memcpyed frame (the chunk's bytes follow it as they are). */
void tly_blosc_stored_head(const struct tly_block_plan *p, void *head);

/** 0 when @p c's blosc settings are valid, else TLY_EUSAGE naming the bad one (blosc.c). */
int tly__blosc_check(const struct tly_codec *c);

/** blosc's block entries (blosc_frame.c reads, blosc_write.c writes; the table is in blosc_write.c). */
extern const struct tly__block_ops tly__blosc_blocks;

/* A blosc header's little-endian 32-bit fields. */
static inline uint32_t tly__le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void tly__put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

#endif
