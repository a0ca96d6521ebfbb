/*
 * Internal to libtally: frames read and written block by block, for a codec whose chunk is a header,
 * an offset table and independently decodable blocks (blosc's, src/codec/blosc_frame.c and
 * blosc_write.c). The engine reads only the blocks a region needs, each decoded where it lies, and
 * writes a chunk block by block from the caller's memory, through these entries: it never names the
 * codec. A codec without them is read and written whole (or streamed).
 */
#ifndef TLY__CODEC_BLOCKS_H
#define TLY__CODEC_BLOCKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tally/codec.h"

/** Bytes a frame header may take (blosc: 16). */
#define TLY__BLOCK_HEADER_MAX 16

/** A frame's layout, from its header. */
struct tly_block_frame {
    uint64_t nbytes;    /**< decoded bytes */
    uint64_t cbytes;    /**< bytes of the whole frame (the chunk) */
    uint64_t blocksize; /**< decoded bytes per block (the last may be shorter) */
    uint64_t nblocks;   /**< blocks; 0 when stored or empty */
    bool stored;        /**< the decoded bytes follow the header as they are: no table, no blocks */
    uint8_t header[TLY__BLOCK_HEADER_MAX];
};

/** How a chunk becomes a frame block by block. */
struct tly_block_plan {
    uint64_t n;                            /**< decoded bytes */
    uint64_t blocksize;                    /**< the frame's block size */
    uint64_t nblocks;                      /**< 0 when stored */
    size_t last_force;                     /**< the codec's own setting for the last, shorter block (internal) */
    bool stored;                           /**< the frame is the header and the bytes as they are */
    uint8_t header[TLY__BLOCK_HEADER_MAX]; /**< the frame's header for these settings */
};

struct tly__block_ops {
    size_t header; /**< bytes of the frame header (the stored bytes of a stored frame follow it) */
    size_t pad;    /**< bytes a reader leaves free before each block it holds (block_frame writes there) */

    /** The codec's workspace (tly_codec_workspace) for @p n bytes of a frame whose blocks are of
     *  @p blocksize bytes: the temporaries of one block's call, not the chunk's. */
    size_t (*workspace)(const struct tly_codec *c, uint64_t blocksize, size_t n, bool decode);

    /* ---- reading ---- */

    /** Read the header (the first `header` bytes) of a frame of @p size bytes that must decode to
     *  @p dst_n bytes. 0, or TLY_ECODEC when it is corrupt or does not match the chunk. */
    int (*frame_open)(const void *header, uint64_t size, uint64_t dst_n, struct tly_block_frame *f);
    /** Bytes of the offset table that follows the header. */
    uint64_t (*table_bytes)(const struct tly_block_frame *f);
    /** Decoded bytes of block @p j. */
    uint64_t (*block_size)(const struct tly_block_frame *f, uint64_t j);
    /** The most encoded bytes a valid block of @p bsize decoded bytes can take. */
    uint64_t (*max_extent)(uint64_t bsize);
    /** Check the offset table and lay the blocks out: block j's @p extent[j] encoded bytes lie at
     *  @p start[j] of the frame (@p scratch: room for nblocks uint64_t; when the starts do not rise
     *  with j, it is left holding start[j] << 32 | j for every block in order of start). 0, or
     *  TLY_ECODEC. */
    int (*frame_blocks)(const struct tly_block_frame *f, const void *table, uint32_t *start, uint32_t *extent,
                        uint64_t *scratch);
    /** Make block @p j, whose @p extent encoded bytes lie at @p at + pad, a frame of its own (writing
     *  pad bytes at @p at): tly_codec_decode() of the returned length at @p at gives the block. */
    size_t (*block_frame)(const struct tly_block_frame *f, uint64_t j, void *at, size_t extent);

    /* ---- writing ---- */

    /** Plan chunks of @p n bytes (once per array). 0, TLY_EUSAGE, or TLY_EUNSUPPORTED when the chunk
     *  is to be encoded whole instead. In stage encode. */
    int (*plan)(const struct tly_codec *c, uint64_t n, struct tly_block_plan *p);
    /** Bytes of the output buffer encode_block needs for block @p j (the most: the last block's). */
    size_t (*block_cap)(const struct tly_block_plan *p, uint64_t j);
    /** Encode block @p j (see tly_blosc_encode_block) into @p out; its bytes are @p *len at @p *at. */
    int (*encode_block)(const struct tly_codec *c, const struct tly_block_plan *p, uint64_t j, const void *src,
                        void *out, const void **at, size_t *len);
    /** The header and offset table (header + 4 per block bytes) for blocks of @p sizes encoded bytes;
     *  false when the frame would be longer than the chunk: it is then stored (stored_head). */
    bool (*frame_head)(const struct tly_block_plan *p, const uint32_t *sizes, void *head);
    /** The header of the chunk's stored frame (its bytes follow as they are). */
    void (*stored_head)(const struct tly_block_plan *p, void *head);
};

/** @p c's block entries; NULL when its frames are not read and written block by block. */
const struct tly__block_ops *tly__codec_blocks(const struct tly_codec *c);

#endif
