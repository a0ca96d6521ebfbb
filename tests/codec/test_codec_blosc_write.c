/*
 * codec: blosc frames written block by block (tally/codec.h, src/codec/blosc_write.c). For every
 * compressor this c-blosc has, each shuffle, typesizes 1-8, automatic and forced block sizes, chunk
 * sizes with and without a shorter last block, and bytes that compress, do not, or partly do, the
 * frame stitched from blocks decodes to the chunk (c-blosc's whole-frame decode) and is
 * blosc_compress_ctx()'s frame byte for byte, but for snappy, which c-blosc leaves uncompressed where
 * its destination has not room for snappy's worst case.
 */
#include <blosc.h>

#include "codec/codec_util.h"

TestSuite(codec);

/* The frame of @p n bytes at @p src, block by block as the engine writes it; its size. */
static size_t stitch(const struct tly_codec *c, const unsigned char *src, size_t n, unsigned char *frame)
{
    struct tly_block_plan p;
    cr_assert_eq(tly_blosc_plan(c, n, &p), 0, "%s clevel %d shuffle %d typesize %d blocksize %zu, %zu bytes: %s",
                 c->blosc.cname, c->blosc.clevel, c->blosc.shuffle, c->blosc.typesize, c->blosc.blocksize, n,
                 tly_errmsg());
    if (p.stored) {
        tly_blosc_stored_head(&p, frame);
        memcpy(frame + TLY_BLOSC_HEADER, src, n); /* test fixture */
        return n + TLY_BLOSC_HEADER;
    }
    size_t table = TLY_BLOSC_HEADER + 4 * p.nblocks, pos = table;
    unsigned char *out = cu_alloc(tly_blosc_block_cap(&p, p.nblocks ? p.nblocks - 1 : 0) /* the most */);
    uint32_t *sizes = cu_alloc(4 * p.nblocks);
    for (uint64_t j = 0; j < p.nblocks; j++) {
        bool short_last = j + 1 == p.nblocks && n % p.blocksize;
        const void *at;
        size_t len;
        int rc = tly_blosc_encode_block(c, &p, j, src + (short_last ? j - 1 : j) * p.blocksize, out, &at, &len);
        cr_assert_eq(rc, 0, "block %llu: %s", (unsigned long long)j, tly_errmsg());
        memcpy(frame + pos, at, len); /* test fixture */
        pos += len;
        sizes[j] = (uint32_t)len;
    }
    size_t m = pos;
    if (!tly_blosc_frame_head(&p, sizes, frame)) { /* longer than the chunk: stored as it is */
        tly_blosc_stored_head(&p, frame);
        memcpy(frame + TLY_BLOSC_HEADER, src, n); /* test fixture */
        m = n + TLY_BLOSC_HEADER;
    }
    free(out);
    free(sizes);
    return m;
}

static int equal_frames, snappy_other;

static void check(const char *cname, int clevel, int shuffle, int typesize, size_t blocksize, const unsigned char *src,
                  size_t n)
{
    struct tly_codec c = cu_codec(TLY_CODEC_BLOSC);
    snprintf(c.blosc.cname, sizeof c.blosc.cname, "%s", cname);
    c.blosc.clevel = clevel;
    c.blosc.shuffle = shuffle;
    c.blosc.typesize = typesize;
    c.blosc.blocksize = blocksize;
    size_t cap = n + 2 * TLY_BLOSC_HEADER + 96 * (n / 128 + 1); /* 16 streams of 4 + 4 per block of 128 */
    unsigned char *frame = cu_alloc(cap), *whole = cu_alloc(n + BLOSC_MAX_OVERHEAD), *back = cu_alloc(n);
    size_t m = stitch(&c, src, n, frame);
    int w = blosc_compress_ctx(clevel, shuffle, (size_t)typesize, n, src, whole, n + BLOSC_MAX_OVERHEAD, cname,
                               blocksize, 1);
    cr_assert_gt(w, 0);
    cr_assert_eq(tly_codec_decode(&c, back, n, frame, m), 0, "%s shuffle %d typesize %d blocksize %zu n %zu: %s", cname,
                 shuffle, typesize, blocksize, n, tly_errmsg());
    cr_assert_eq(memcmp(back, src, n), 0);
    bool same = (size_t)w == m && memcmp(whole, frame, m) == 0;
    if (strcmp(cname, "snappy") != 0)
        cr_assert(same, "%s clevel %d shuffle %d typesize %d blocksize %zu, %zu bytes: %zu stitched, %d whole", cname,
                  clevel, shuffle, typesize, blocksize, n, m, w);
    equal_frames += same;
    snappy_other += !same;
    free(frame);
    free(whole);
    free(back);
}

TLY_TEST(codec, blosc_frames_written_block_by_block)
{
    char list[256];
    snprintf(list, sizeof list, "%s", blosc_list_compressors());
    bool vg = TLY_UNDER_VALGRIND();
    size_t big = ((size_t)1 << 20) + 12345;
    unsigned char *src[3] = {cu_alloc(big), cu_alloc(big), cu_alloc(big)};
    static const size_t sizes[] = {100, 40000, 262147, ((size_t)1 << 20) + 12345};
    static const size_t blocksizes[] = {0, 4096, 300000};
    for (char *cname = strtok(list, ","); cname; cname = strtok(NULL, ",")) {
        for (int ts = 1; ts <= 8; ts++) {
            cu_fill(src[0], big, ts, (uint64_t)ts);    /* compresses */
            cu_fill_random(src[1], big, (uint64_t)ts); /* does not */
            memcpy(src[2], src[0], big);               /* partly: stripes of noise */
            for (size_t i = 0; i < big; i += 16384)
                cu_fill_random(src[2] + i, i + 8192 < big ? 8192 : big - i, i);
            for (int shuffle = 0; shuffle <= 2; shuffle++) {
                for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
                    for (size_t b = 0; b < sizeof blocksizes / sizeof *blocksizes; b++) {
                        int kind = (int)(s + b + (size_t)shuffle) % 3, clevel = (int)(s + b) % 3 == 2 ? 9 : 5;
                        if ((s == 3 && (ts % 2 || b == 2)) || (ts % 2 && ts > 1 && s != 2)) /* fewer */
                            continue;
                        if (vg && (s == 3 || (ts != 1 && ts != 4))) /* under valgrind: a sample */
                            continue;
                        check(cname, clevel, shuffle, ts, blocksizes[b], src[kind], sizes[s]);
                    }
                }
                check(cname, 0, shuffle, ts, 0, src[0], 40000); /* clevel 0: memcpyed */
            }
        }
    }
    cr_log_info("%d frames equal to blosc_compress_ctx's, %d snappy frames not", equal_frames, snappy_other);
    cr_expect_gt(equal_frames, vg ? 100 : 1000);
    for (int i = 0; i < 3; i++)
        free(src[i]);
}
