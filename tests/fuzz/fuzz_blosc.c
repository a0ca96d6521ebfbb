/*
 * libFuzzer: a blosc chunk decoded whole (tly_codec_decode), into the size its header says (when
 * small) and into a size of the input's choosing, on one and on two threads; and block by block as
 * the engine's streamed reads decode it (src/engine/read_blosc.c: the header, the offset table, then
 * each block alone in a slot with TLY_BLOSC_BLOCK_PAD bytes before it). Where both ways decode,
 * they agree byte for byte. Seeds: tests/fuzz/corpus/blosc (numcodecs-written chunks).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/blosc.h"
#include "tally/codec.h"

/* The streamed path: fills @p out (nbytes) block by block; 0, or an error as the engine gets it. */
static int block_by_block(const struct tly_codec *c, const unsigned char *src, size_t n, unsigned char *out,
                          uint64_t nbytes)
{
    struct tly_block_frame f;
    int err = tly_blosc_frame_open(src, n, nbytes, &f);
    if (err || f.stored || f.nblocks == 0)
        return err ? err : (f.stored ? (memcpy(out, src + TLY_BLOSC_HEADER, nbytes), 0) : 0);
    uint64_t tb = tly_blosc_frame_table_bytes(&f);
    if (TLY_BLOSC_HEADER + tb > n)
        return -1;
    uint32_t *start = malloc(f.nblocks * sizeof *start), *extent = malloc(f.nblocks * sizeof *extent);
    uint64_t *scratch = malloc(f.nblocks * sizeof *scratch);
    err = tly_blosc_frame_blocks(&f, src + TLY_BLOSC_HEADER, start, extent, scratch);
    for (uint64_t j = 0; !err && j < f.nblocks; j++) {
        unsigned char *slot = malloc(TLY_BLOSC_BLOCK_PAD + extent[j]);
        memcpy(slot + TLY_BLOSC_BLOCK_PAD, src + start[j], extent[j]);
        size_t len = tly_blosc_block_frame(&f, j, slot, extent[j]);
        uint64_t bsize = tly_blosc_block_size(&f, j);
        err = tly_codec_decode(c, out + j * f.blocksize, (size_t)bsize, slot, len);
        free(slot);
    }
    free(start);
    free(extent);
    free(scratch);
    return err;
}

#define MAX_OUT ((size_t)4 << 20)

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t n)
{
    if (n < 2)
        return 0;
    size_t want = (size_t)data[0] << 8 | data[1]; /* a size of the input's choosing */
    int threads = 1 + (data[0] & 1);
    data += 2;
    n -= 2;
    struct tly_codec c;
    tly_codec_defaults(&c, TLY_CODEC_BLOSC);
    c.threads = threads;
    unsigned char *src = malloc(n ? n : 1);
    memcpy(src, data, n);
    uint64_t size = 0;
    if (tly_codec_decoded_size(&c, src, n, &size) == 0 && size <= MAX_OUT) {
        unsigned char *dst = malloc(size ? size : 1);
        unsigned char *blk = malloc(size ? size : 1);
        int whole = tly_codec_decode(&c, dst, (size_t)size, src, n);
        int streamed = block_by_block(&c, src, n, blk, size);
        if (whole == 0 && streamed == 0 && memcmp(dst, blk, (size_t)size) != 0)
            abort(); /* the two paths decode one frame differently */
        free(blk);
        free(dst);
    }
    unsigned char *dst = malloc(want ? want : 1);
    tly_codec_decode(&c, dst, want, src, n);
    free(dst);
    free(src);
    return 0;
}
