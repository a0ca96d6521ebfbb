/*
 * codec: blosc frames read block by block (tally/codec.h, src/codec/blosc_frame.c). Every frame
 * c-blosc 1.x writes (each compressor this build has, shuffle none/byte/bit, typesizes 1-8,
 * automatic and forced block sizes, a shorter last block, memcpyed frames, blocks out of order from
 * its threaded compressor) decodes block by block to the bytes a whole-frame decode gives; a table
 * or header that lies is an error naming the block, never a read outside the buffers.
 */
#include <blosc.h>

#include "codec/codec_util.h"

TestSuite(codec);

/* Frame @p enc of @p m bytes decoded block by block into @p out (@p n bytes): each block copied into
 * an exactly sized buffer with the pad before it (a test fixture: the engine reads it there). */
static int decode_by_blocks(const unsigned char *enc, size_t m, unsigned char *out, size_t n)
{
    struct tly_block_frame f;
    int rc = tly_blosc_frame_open(enc, m, n, &f);
    if (rc || f.nbytes == 0)
        return rc;
    if (f.stored) {
        memcpy(out, enc + TLY_BLOSC_HEADER, n); /* test fixture */
        return 0;
    }
    uint32_t *start = cu_alloc(f.nblocks * 4), *extent = cu_alloc(f.nblocks * 4);
    uint64_t *scratch = cu_alloc(f.nblocks * 8);
    rc = tly_blosc_frame_blocks(&f, enc + TLY_BLOSC_HEADER, start, extent, scratch);
    struct tly_codec c = cu_codec(TLY_CODEC_BLOSC);
    for (uint64_t j = 0; rc == 0 && j < f.nblocks; j++) {
        unsigned char *at = cu_alloc(TLY_BLOSC_BLOCK_PAD + extent[j]);
        memcpy(at + TLY_BLOSC_BLOCK_PAD, enc + start[j], extent[j]); /* test fixture */
        size_t len = tly_blosc_block_frame(&f, j, at, extent[j]);
        rc = tly_codec_decode(&c, out + j * f.blocksize, tly_blosc_block_size(&f, j), at, len);
        free(at);
    }
    free(start);
    free(extent);
    free(scratch);
    return rc;
}

/* Compress @p n bytes of @p src as c-blosc does for numcodecs, on @p threads threads (more than one:
 * blocks land in the order the threads finish), then decode it whole and block by block. */
static void check_frame(const char *cname, int clevel, int shuffle, int typesize, size_t blocksize, int threads,
                        const unsigned char *src, size_t n, bool *saw_unordered, bool *saw_memcpyed)
{
    unsigned char *enc = cu_alloc(n + BLOSC_MAX_OVERHEAD), *whole = cu_alloc(n), *blocks = cu_alloc(n);
    int m = blosc_compress_ctx(clevel, shuffle, (size_t)typesize, n, src, enc, n + BLOSC_MAX_OVERHEAD, cname, blocksize,
                               threads);
    cr_assert_gt(m, 0, "%s: compression failed", cname);
    struct tly_codec c = cu_codec(TLY_CODEC_BLOSC);
    cr_assert_eq(tly_codec_decode(&c, whole, n, enc, (size_t)m), 0, "%s", tly_errmsg());
    memset(blocks, 0xA5, n);
    int rc = decode_by_blocks(enc, (size_t)m, blocks, n);
    cr_assert_eq(rc, 0, "%s clevel %d shuffle %d typesize %d blocksize %zu threads %d, %zu bytes: %s", cname, clevel,
                 shuffle, typesize, blocksize, threads, n, tly_errmsg());
    cr_assert_eq(memcmp(whole, blocks, n), 0, "%s shuffle %d typesize %d blocksize %zu: blocks decode differently",
                 cname, shuffle, typesize, blocksize);
    cr_assert_eq(memcmp(src, blocks, n), 0);
    struct tly_block_frame f;
    cr_assert_eq(tly_blosc_frame_open(enc, (size_t)m, n, &f), 0);
    *saw_memcpyed |= f.stored;
    for (uint64_t j = 1; !f.stored && j < f.nblocks; j++) {
        uint32_t a = enc[16 + 4 * (j - 1)] | enc[17 + 4 * (j - 1)] << 8 | enc[18 + 4 * (j - 1)] << 16;
        uint32_t b = enc[16 + 4 * j] | enc[17 + 4 * j] << 8 | enc[18 + 4 * j] << 16;
        *saw_unordered |= b < a;
    }
    free(enc);
    free(whole);
    free(blocks);
}

TLY_TEST(codec, blosc_frames_decode_block_by_block)
{
    char list[256];
    snprintf(list, sizeof list, "%s", blosc_list_compressors());
    size_t n = 100003 * 8;
    unsigned char *src = cu_alloc(n);
    static const size_t sizes[] = {1, 1000, 100003, 100003 * 8};
    static const size_t blocksizes[] = {0, 256, 1000, 65536};
    bool unordered = false, memcpyed = false;
    int frames = 0;
    for (char *cname = strtok(list, ","); cname; cname = strtok(NULL, ",")) {
        for (int shuffle = 0; shuffle <= 2; shuffle++) {
            for (int ts = 1; ts <= 8; ts++) {
                cu_fill(src, n, ts, (uint64_t)ts * 7 + (uint64_t)shuffle);
                for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
                    for (size_t b = 0; b < sizeof blocksizes / sizeof *blocksizes; b++) {
                        if (sizes[s] > 100003 && (b % 2 || ts % 2)) /* the large frames: fewer */
                            continue;
                        int threads = (int)(s + b) % 2 ? 4 : 1;
                        check_frame(cname, 5, shuffle, ts, blocksizes[b], threads, src, sizes[s], &unordered,
                                    &memcpyed);
                        frames++;
                    }
                }
            }
            /* memcpyed: clevel 0, and bytes that do not compress */
            check_frame(cname, 0, shuffle, 4, 0, 1, src, 100003, &unordered, &memcpyed);
            cu_fill_random(src, n, 9);
            check_frame(cname, 9, shuffle, 4, 4096, 2, src, 100003, &unordered, &memcpyed);
            frames += 2;
        }
    }
    cr_expect(unordered, "no frame had its blocks out of order: the threaded case was not tested");
    cr_expect(memcpyed, "no memcpyed frame was tested");
    cr_log_info("%d frames decoded block by block", frames);
    free(src);
}

/* A frame of @p n bytes of data, with 4096-byte blocks (so several of them, the last shorter):
 * zstd, which c-blosc never splits into streams (a splitting codec enlarges a forced block size to
 * 64 KiB or more). */
static unsigned char *frame_of(size_t n, int threads, size_t *m)
{
    unsigned char *src = cu_alloc(n), *enc = cu_alloc(n + BLOSC_MAX_OVERHEAD);
    cu_fill(src, n, 4, 3);
    int r = blosc_compress_ctx(5, 1, 4, n, src, enc, n + BLOSC_MAX_OVERHEAD, "zstd", 4096, threads);
    cr_assert_gt(r, 0);
    free(src);
    *m = (size_t)r;
    return enc;
}

static void set32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
    return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Expect frame @p enc (@p m bytes, @p n decoded) to fail block by block with a message that
 * contains @p what, and the whole-frame decode to fail too. */
static void expect_corrupt(const unsigned char *enc, size_t m, size_t n, const char *what)
{
    unsigned char *out = cu_alloc(n), *exact = cu_alloc(m);
    memcpy(exact, enc, m); /* test fixture: exactly sized */
    int rc = decode_by_blocks(exact, m, out, n);
    cr_expect_eq(rc, TLY_ECODEC, "%s: rc %d (%s)", what, rc, tly_errmsg());
    cr_expect(strstr(tly_errmsg(), what) != NULL, "message '%s' does not say '%s'", tly_errmsg(), what);
    cr_expect_eq(strncmp(tly_errmsg(), "blosc:", 6), 0, "%s", tly_errmsg());
    free(out);
    free(exact);
}

TLY_TEST(codec, blosc_frame_that_lies)
{
    size_t n = 50000, m;
    unsigned char *enc = frame_of(n, 1, &m), *x = cu_alloc(m);
    uint32_t nblocks = (uint32_t)((n + 4095) / 4096), table_end = 16 + 4 * nblocks;
#define FRESH() memcpy(x, enc, m) /* test fixture */
    FRESH();
    set32(x + 16 + 4 * 3, (uint32_t)m + 100); /* an offset past the end */
    expect_corrupt(x, m, n, "offset table corrupt");
    FRESH();
    set32(x + 16 + 4 * 3, (uint32_t)m); /* an offset at the end */
    expect_corrupt(x, m, n, "offset table corrupt");
    FRESH();
    set32(x + 16 + 4 * 2, 16); /* an offset inside the header and table */
    expect_corrupt(x, m, n, "outside bytes");
    FRESH();
    set32(x + 16 + 4 * 5, get32(x + 16 + 4 * 4)); /* two blocks at one place: they overlap */
    expect_corrupt(x, m, n, "both start at");
    FRESH();
    /* block 4 starts inside block 3: block 3 is shorter than its streams say (c-blosc reads past
     * its end into block 4, and the block-by-block decode refuses) */
    set32(x + 16 + 4 * 4, get32(x + 16 + 4 * 4) - 40);
    expect_corrupt(x, m, n, "decompression failed");
    FRESH();
    /* a block's first stream claims more bytes than the block has */
    uint32_t s2 = get32(x + 16 + 4 * 2);
    set32(x + s2, get32(x + s2) + 5000);
    expect_corrupt(x, m, n, "decompression failed");
    FRESH();
    set32(x + 4, (uint32_t)n - 4); /* nbytes lies (so the block count would too) */
    expect_corrupt(x, m, n, "holds");
    FRESH();
    set32(x + 4, (uint32_t)n * 10);
    expect_corrupt(x, m, n, "holds");
    FRESH();
    set32(x + 12, (uint32_t)m - 1); /* cbytes lies */
    expect_corrupt(x, m, n, "header corrupt");
    FRESH();
    set32(x + 8, 0); /* blocksize 0 */
    expect_corrupt(x, m, n, "blocksize");
    FRESH();
    set32(x + 8, (uint32_t)n + 1); /* a block larger than the chunk */
    expect_corrupt(x, m, n, "blocksize");
    FRESH();
    set32(x + 8, 1); /* 50000 blocks: no room for their table */
    expect_corrupt(x, m, n, "do not fit");
    FRESH();
    x[2] |= 0x08; /* a reserved flag */
    expect_corrupt(x, m, n, "reserved");
    FRESH();
    x[3] = 0; /* typesize 0 */
    expect_corrupt(x, m, n, "typesize");
    FRESH();
    x[2] |= BLOSC_MEMCPYED; /* memcpyed, but the frame is not nbytes long */
    expect_corrupt(x, m, n, "uncompressed frame");
    /* a block spanning more than any block of its size can: the table's last offset early, so the
     * last block would run from there to the end */
    size_t big_n = 4096 * 4, big_m;
    unsigned char *big = frame_of(big_n, 1, &big_m);
    unsigned char *y = cu_alloc(big_m + 8192);
    memcpy(y, big, big_m); /* test fixture */
    memset(y + big_m, 0, 8192);
    set32(y + 12, (uint32_t)big_m + 8192);
    expect_corrupt(y, big_m + 8192, big_n, "spans");
    /* truncated: every cut of the frame */
    size_t cuts[] = {m - 1, m / 2, table_end + 3, table_end, 17, 16, 15, 0};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++)
        expect_corrupt(enc, cuts[i], n, "blosc:");
#undef FRESH
    free(big);
    free(y);
    free(x);
    free(enc);
}

TLY_TEST(codec, blosc_frame_layout)
{
    size_t n = 50000, m;
    unsigned char *enc = frame_of(n, 1, &m);
    struct tly_block_frame f;
    cr_assert_eq(tly_blosc_frame_open(enc, m, n, &f), 0, "%s", tly_errmsg());
    cr_expect_eq(f.nbytes, n);
    cr_expect_eq(f.cbytes, m);
    cr_expect_eq(f.blocksize, 4096u);
    cr_expect_eq(f.nblocks, 13u);
    cr_expect_not(f.stored);
    cr_expect_eq(tly_blosc_frame_table_bytes(&f), 13u * 4);
    cr_expect_eq(tly_blosc_block_size(&f, 0), 4096u);
    cr_expect_eq(tly_blosc_block_size(&f, 12), n - 12 * 4096);
    uint32_t start[13], extent[13];
    uint64_t scratch[13];
    cr_assert_eq(tly_blosc_frame_blocks(&f, enc + 16, start, extent, scratch), 0, "%s", tly_errmsg());
    uint64_t sum = 0;
    for (int j = 0; j < 13; j++) {
        sum += extent[j];
        cr_expect_leq(extent[j], tly_blosc_max_extent(tly_blosc_block_size(&f, j)));
    }
    cr_expect_eq(sum, m - 16 - 13 * 4, "the blocks tile the frame after the table");
    /* the block frame: the original's version, flags and typesize; the last block never split */
    unsigned char at[TLY_BLOSC_BLOCK_PAD];
    cr_expect_eq(tly_blosc_block_frame(&f, 0, at, extent[0]), TLY_BLOSC_BLOCK_PAD + extent[0]);
    cr_expect_eq(at[0], enc[0]);
    cr_expect_eq(at[2], enc[2]);
    cr_expect_eq(at[3], enc[3]);
    cr_expect_eq(get32(at + 4), 4096u);
    cr_expect_eq(get32(at + 12), TLY_BLOSC_BLOCK_PAD + extent[0]);
    cr_expect_eq(get32(at + 16), TLY_BLOSC_BLOCK_PAD);
    tly_blosc_block_frame(&f, 12, at, extent[12]);
    cr_expect_eq(at[2], enc[2] | 0x10);
    cr_expect_eq(get32(at + 4), n - 12 * 4096);
    cr_expect_eq(get32(at + 8), n - 12 * 4096);
    /* an empty chunk: a frame of nbytes 0 has no blocks */
    unsigned char empty[BLOSC_MAX_OVERHEAD];
    int r = blosc_compress_ctx(5, 1, 4, 0, "", empty, sizeof empty, "lz4", 0, 1);
    cr_assert_gt(r, 0);
    cr_expect_eq(tly_blosc_frame_open(empty, (size_t)r, 0, &f), 0, "%s", tly_errmsg());
    cr_expect_eq(f.nblocks, 0u);
    free(enc);
}
