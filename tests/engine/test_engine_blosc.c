/*
 * engine: blosc chunks read block by block (src/engine/read_blocks.c). Frames of every shape c-blosc
 * writes (blocks out of order from its threads, many small blocks, memcpyed) read back equal whole,
 * by strided and partial regions and on several threads; a frame that lies is TLY_ECODEC naming the
 * chunk and the block; the memory a read holds is a few blocks, counted in its ticket.
 */
#include <blosc.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support.h"
#include "tally/codec.h"
#include "tally/engine.h"
#include "tally/error.h"
#include "tmpdir.h"

static char dir[256];

static void setup(void)
{
    cr_assert_not_null(tly_test_mkdtemp(dir, sizeof dir));
}

static void teardown(void)
{
    tly_test_rmtree(dir);
}

TestSuite(engine, .init = setup, .fini = teardown);

/* A v2 blosc (lz4, byte shuffle) float32 array of @p shape in @p chunks at DIR/@p name, written from
 * smooth data (compressible) into @p src (allocated). */
static struct tly_array *make_array(const char *name, const uint64_t *shape, const uint64_t *chunks, int threads,
                                    float **src)
{
    struct tly_meta m;
    memset(&m, 0, sizeof m);
    m.zarr_format = 2;
    cr_assert_eq(tly_dtype_from_numpy("<f4", &m.dtype), 0);
    m.rank = 2;
    for (int d = 0; d < 2; d++) {
        m.shape[d] = shape[d];
        m.chunks[d] = chunks[d];
    }
    cr_assert_eq(tly_codec_parse("blosc:cname=lz4,clevel=5,shuffle=1", &m.codec), 0);
    m.codec.blosc.typesize = 4;
    m.has_fill = true;
    m.separator = '.';
    char path[320];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    struct tly_io_opts opts = {.threads = threads};
    struct tly_array *a;
    cr_assert_eq(tly_array_create(path, &m, true, &opts, &a), 0, "%s", tly_errmsg());
    size_t n = (size_t)(shape[0] * shape[1]);
    *src = malloc(n * sizeof **src);
    cr_assert_not_null(*src);
    for (size_t i = 0; i < n; i++)
        (*src)[i] = (float)(i % 9973) * 0.25f + (float)(i / 100000);
    struct tly_region all;
    tly_region_all(&all, 2, shape);
    cr_assert_eq(tly_array_write(a, *src, &all, NULL), 0, "%s", tly_errmsg());
    /* published: the tests read and rewrite its chunk files where they are */
    cr_assert_eq(tly_array_commit(a), 0, "%s", tly_errmsg());
    return a;
}

static unsigned char *slurp(const char *path, size_t *n)
{
    int fd = open(path, O_RDONLY);
    cr_assert_geq(fd, 0, "%s", path);
    struct stat sb;
    cr_assert_eq(fstat(fd, &sb), 0);
    unsigned char *b = malloc((size_t)sb.st_size + 1);
    cr_assert_not_null(b);
    cr_assert_eq(read(fd, b, (size_t)sb.st_size), sb.st_size);
    close(fd);
    *n = (size_t)sb.st_size;
    return b;
}

static void spit(const char *path, const void *b, size_t n)
{
    int fd = open(path, O_WRONLY | O_TRUNC | O_CREAT, 0644);
    cr_assert_geq(fd, 0, "%s", path);
    cr_assert_eq(write(fd, b, n), (ssize_t)n);
    close(fd);
}

/* Rewrite chunk file @p key of array DIR/@p name as c-blosc writes it with @p cname, @p blocksize
 * and @p threads compressor threads (more than one: its blocks out of order). */
static void recompress(const char *name, const char *key, const char *cname, int clevel, size_t blocksize, int threads)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s/%s", dir, name, key);
    size_t m;
    unsigned char *enc = slurp(path, &m);
    size_t nbytes, cbytes, bs;
    blosc_cbuffer_sizes(enc, &nbytes, &cbytes, &bs);
    unsigned char *raw = malloc(nbytes), *out = malloc(nbytes + BLOSC_MAX_OVERHEAD);
    cr_assert(raw && out);
    cr_assert_eq(blosc_decompress_ctx(enc, raw, nbytes, 1), (int)nbytes);
    int r = blosc_compress_ctx(clevel, 1, 4, nbytes, raw, out, nbytes + BLOSC_MAX_OVERHEAD, cname, blocksize, threads);
    cr_assert_gt(r, 0);
    spit(path, out, (size_t)r);
    free(enc);
    free(raw);
    free(out);
}

/* Read region [r0, r1) x [c0, c1) of @p a and compare it with @p src (@p width columns). */
static void expect_region(struct tly_array *a, const float *src, uint64_t width, uint64_t r0, uint64_t r1, uint64_t c0,
                          uint64_t c1, const char *what)
{
    struct tly_region r = {.rank = 2, .start = {r0, c0}, .stop = {r1, c1}};
    size_t w = (size_t)(c1 - c0);
    float *out = malloc((size_t)(r1 - r0) * w * sizeof *out);
    cr_assert_not_null(out);
    memset(out, 0xEE, (size_t)(r1 - r0) * w * sizeof *out);
    int err = tly_array_read(a, out, &r, NULL);
    cr_assert_eq(err, 0, "%s: %s", what, tly_errmsg());
    bool same = true;
    for (uint64_t i = r0; same && i < r1; i++)
        same = memcmp(out + (i - r0) * w, src + i * width + c0, w * sizeof *out) == 0;
    cr_expect(same, "%s: region %llu:%llu,%llu:%llu differs", what, (unsigned long long)r0, (unsigned long long)r1,
              (unsigned long long)c0, (unsigned long long)c1);
    free(out);
}

static void expect_all_ways(struct tly_array *a, const float *src, const uint64_t *shape, const char *what)
{
    uint64_t h = shape[0], w = shape[1];
    expect_region(a, src, w, 0, h, 0, w, what);                     /* whole: chunks strided */
    expect_region(a, src, w, 0, h, 0, 300, what);                   /* one column of chunks: contiguous */
    expect_region(a, src, w, 37, h - 41, 13, w - 7, what);          /* every chunk in part */
    expect_region(a, src, w, 300, 301, 0, w, what);                 /* one row: one block of each chunk */
    expect_region(a, src, w, h - 1, h, w - 1, w, what);             /* one element of the edge chunk */
    expect_region(a, src, w, 256 + 100, 256 + 120, 300, 600, what); /* inside one chunk */
}

/* Frames c-blosc writes on threads (blocks out of order) and with small blocks (many of them,
 * several per read group, the last shorter), mixed with memcpyed ones: every read path gives the
 * array back. */
TLY_TEST(engine, blosc_frames_of_every_shape_read_back)
{
    uint64_t shape[] = {600, 900}, chunks[] = {256, 300}; /* 3 x 3 chunks, the last row at the edge */
    float *src;
    for (int threads = 1; threads <= 4; threads += 3) {
        char name[32];
        snprintf(name, sizeof name, "shapes-%d", threads);
        struct tly_array *a = make_array(name, shape, chunks, threads, &src);
        expect_all_ways(a, src, shape, "as tally wrote it");
        recompress(name, "0.0", "lz4", 5, 0, 4);      /* out of order */
        recompress(name, "0.1", "zstd", 5, 4096, 4);  /* many small blocks, out of order */
        recompress(name, "0.2", "blosclz", 5, 0, 1);  /* in order */
        recompress(name, "1.0", "lz4", 0, 0, 1);      /* memcpyed */
        recompress(name, "1.1", "zlib", 5, 1000, 1);  /* small blocks, split into streams */
        recompress(name, "2.0", "zstd", 5, 65536, 2); /* the edge row: a shorter last block */
        recompress(name, "2.2", "lz4hc", 9, 2048, 4); /* the corner */
        expect_all_ways(a, src, shape, "recompressed");
        tly_array_close(a);
        free(src);
    }
}

/* A frame that lies is TLY_ECODEC, naming the chunk (and the block when one is at fault). */
static void expect_lie(const char *name, const char *key, size_t at, uint32_t value, const char *what)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s/%s", dir, name, key);
    size_t m;
    unsigned char *good = slurp(path, &m), *bad = malloc(m);
    cr_assert_not_null(bad);
    memcpy(bad, good, m); /* test fixture */
    for (int i = 0; i < 4; i++)
        bad[at + (size_t)i] = (unsigned char)(value >> (8 * i));
    spit(path, bad, m);
    char url[320];
    snprintf(url, sizeof url, "%s/%s", dir, name);
    struct tly_array *a;
    cr_assert_eq(tly_array_open(url, NULL, &a), 0, "%s", tly_errmsg());
    uint64_t shape[] = {600, 900};
    float *out = malloc(600 * 900 * sizeof *out);
    struct tly_region all;
    tly_region_all(&all, 2, shape);
    int err = tly_array_read(a, out, &all, NULL);
    char chunk[64];
    snprintf(chunk, sizeof chunk, "chunk %s", key);
    cr_expect_eq(err, TLY_ECODEC, "%s: %d (%s)", what, err, tly_errmsg());
    cr_expect(strstr(tly_errmsg(), chunk) != NULL, "%s: the message names the chunk: %s", what, tly_errmsg());
    cr_expect(strstr(tly_errmsg(), what) != NULL, "the message says '%s': %s", what, tly_errmsg());
    tly_array_close(a);
    spit(path, good, m);
    free(good);
    free(bad);
    free(out);
}

static uint32_t le32_at(const char *name, const char *key, size_t at)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s/%s", dir, name, key);
    size_t m;
    unsigned char *b = slurp(path, &m);
    uint32_t v = b[at] | b[at + 1] << 8 | b[at + 2] << 16 | (uint32_t)b[at + 3] << 24;
    free(b);
    return v;
}

TLY_TEST(engine, blosc_frame_that_lies_names_the_chunk)
{
    uint64_t shape[] = {600, 900}, chunks[] = {256, 300};
    float *src;
    struct tly_array *a = make_array("lies", shape, chunks, 2, &src);
    tly_array_close(a);
    free(src);
    recompress("lies", "1.1", "zstd", 5, 4096, 1); /* 75 blocks */
    uint32_t cbytes = le32_at("lies", "1.1", 12), b7 = le32_at("lies", "1.1", 16 + 4 * 7);
    expect_lie("lies", "1.1", 16 + 4 * 3, cbytes + 10, "offset table corrupt");          /* past the end */
    expect_lie("lies", "1.1", 16 + 4 * 8, b7, "both start at");                          /* overlapping */
    expect_lie("lies", "1.1", 16 + 4 * 8, b7 + 3, "spans 3 encoded bytes");              /* block 7 of 3 bytes */
    expect_lie("lies", "1.1", 16 + 4 * 8, b7 + 40, "block 7 of 75");                     /* block 7 cut short */
    expect_lie("lies", "1.1", b7, le32_at("lies", "1.1", b7) + 100000, "block 7 of 75"); /* longer than declared */
    expect_lie("lies", "1.1", 4, 256 * 300 * 4 + 4, "holds");                            /* nbytes lies */
    expect_lie("lies", "1.1", 12, cbytes - 1, "header corrupt");                         /* cbytes lies */
    /* truncated: the chunk file cut short */
    char path[400];
    snprintf(path, sizeof path, "%s/lies/1.1", dir);
    cr_assert_eq(truncate(path, cbytes / 2), 0);
    char url[320];
    snprintf(url, sizeof url, "%s/lies", dir);
    cr_assert_eq(tly_array_open(url, NULL, &a), 0);
    float *out = malloc(600 * 900 * sizeof *out);
    struct tly_region all;
    tly_region_all(&all, 2, shape);
    cr_expect_eq(tly_array_read(a, out, &all, NULL), TLY_ECODEC, "%s", tly_errmsg());
    cr_expect(strstr(tly_errmsg(), "chunk 1.1") != NULL, "%s", tly_errmsg());
    tly_array_close(a);
    free(out);
}

/* A lone 16 MiB chunk read on four threads: its blocks spread over the lanes, and what the read
 * holds beyond the output is a few blocks and their tables, within the ticket it took. */
TLY_TEST(engine, blosc_lone_chunk_holds_a_few_blocks)
{
    uint64_t shape[] = {2048, 2048}, chunks[] = {2048, 2048};
    float *src;
    struct tly_array *a = make_array("lone", shape, chunks, 4, &src);
    size_t n = 2048 * 2048 * sizeof(float);
    float *out = malloc(n);
    memset(out, 0, n);
    struct tly_region all;
    tly_region_all(&all, 2, shape);
    struct tly_io_stats st;
    tly_mem_reset_peaks();
    struct tly_mem_snapshot before, after;
    tly_mem_snapshot(&before);
    cr_assert_eq(tly_array_read(a, out, &all, &st), 0, "%s", tly_errmsg());
    tly_mem_snapshot(&after);
    cr_expect_eq(memcmp(out, src, n), 0);
    /* the ticket: a table, and per lane (4) a slot, c-blosc's temporaries: no encoded chunk */
    cr_expect_gt(st.pool_peak, 0u);
    cr_expect_lt(st.pool_peak, (uint64_t)n / 2, "ticket of %llu bytes for a %zu-byte chunk",
                 (unsigned long long)st.pool_peak, n);
    if (tly_mem_tracking()) {
        int64_t held = after.peak_bytes - before.live_bytes;
        cr_expect_leq(held, (int64_t)st.pool_peak, "held %lld bytes beyond the ticket's %llu", (long long)held,
                      (unsigned long long)st.pool_peak);
    }
    expect_region(a, src, 2048, 100, 1900, 77, 2000, "lone, strided");
    tly_array_close(a);
    free(out);
    free(src);
}

/* Chunk file @p key of DIR/@p name is c-blosc's own frame for @p want (its decoded bytes), as
 * blosc_compress_ctx writes it on one thread with the array's settings. */
static void expect_ctx_frame(const char *name, const char *key, const char *cname, int clevel, const void *want,
                             size_t n)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s/%s", dir, name, key);
    size_t m;
    unsigned char *got = slurp(path, &m), *ref = malloc(n + BLOSC_MAX_OVERHEAD);
    int r = blosc_compress_ctx(clevel, 1, 4, n, want, ref, n + BLOSC_MAX_OVERHEAD, cname, 0, 1);
    cr_assert_gt(r, 0);
    cr_expect(m == (size_t)r && memcmp(got, ref, m) == 0, "%s %s: %zu bytes, blosc_compress_ctx %d", name, key, m, r);
    free(got);
    free(ref);
}

/* Writes go block by block: the frames are c-blosc's own, contiguous chunks and strided ones
 * (gathered two blocks at a time) alike, memcpyed ones included; what a write holds is a few blocks. */
TLY_TEST(engine, blosc_writes_block_by_block)
{
    uint64_t shape[] = {1024, 1536}, chunks[] = {1024, 768}; /* 2 chunks of 3 MiB, strided */
    float *src;
    struct tly_io_stats st;
    tly_mem_reset_peaks();
    struct tly_mem_snapshot before, after;
    tly_mem_snapshot(&before);
    struct tly_array *a = make_array("w", shape, chunks, 2, &src);
    tly_mem_snapshot(&after);
    /* the chunks' bytes, in chunk order */
    size_t n = 1024 * 768;
    float *c0 = malloc(n * sizeof *c0), *c1 = malloc(n * sizeof *c1);
    for (size_t i = 0; i < 1024; i++) {
        memcpy(c0 + i * 768, src + i * 1536, 768 * sizeof *c0);
        memcpy(c1 + i * 768, src + i * 1536 + 768, 768 * sizeof *c1);
    }
    expect_ctx_frame("w", "0.0", "lz4", 5, c0, n * 4);
    expect_ctx_frame("w", "0.1", "lz4", 5, c1, n * 4);
    if (tly_mem_tracking())
        cr_expect_lt(after.peak_bytes - before.live_bytes, (int64_t)(2 * n * 4 + (8 << 20)),
                     "the write held %lld bytes beyond the array", (long long)(after.peak_bytes - before.live_bytes));
    /* a contiguous chunk (one column of chunks, whole rows of them in one call) */
    uint64_t shape1[] = {1024, 768};
    float *src1;
    struct tly_array *b = make_array("w1", shape1, shape1, 2, &src1);
    expect_ctx_frame("w1", "0.0", "lz4", 5, src1, n * 4);
    expect_region(b, src1, 768, 0, 1024, 0, 768, "w1");
    /* bytes that do not compress: the blocks outgrow the chunk, and the frame is stored memcpyed */
    uint64_t x = 88172645463325252u;
    for (size_t i = 0; i < 1024 * 1536; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        memcpy(src + i, &x, sizeof *src);
    }
    struct tly_region all;
    tly_region_all(&all, 2, shape);
    cr_assert_eq(tly_array_write(a, src, &all, &st), 0, "%s", tly_errmsg());
    char path[400];
    snprintf(path, sizeof path, "%s/w/0.1", dir);
    size_t m;
    unsigned char *f = slurp(path, &m);
    cr_expect(f[2] & BLOSC_MEMCPYED, "flags 0x%02x", f[2]);
    cr_expect_eq(m, n * 4 + 16);
    free(f);
    expect_all_ways(a, src, shape, "memcpyed");
    /* the tickets: per chunk in flight (2) a few 512 KiB blocks, whatever the chunk's size */
    cr_expect_lt(st.pool_peak, (uint64_t)2 * (4 << 20), "tickets of %llu bytes", (unsigned long long)st.pool_peak);
    /* read-modify-write of a patch: the chunk written back block by block */
    float p[6] = {1, 2, 3, 4, 5, 6};
    struct tly_region patch = {.rank = 2, .start = {500, 766}, .stop = {502, 769}};
    cr_assert_eq(tly_array_write(a, p, &patch, &st), 0, "%s", tly_errmsg());
    cr_expect_eq(st.rmw, 2u);
    for (int i = 0; i < 2; i++)
        memcpy(src + (500 + i) * 1536 + 766, p + 3 * i, 3 * sizeof *p);
    expect_all_ways(a, src, shape, "patched");
    tly_array_close(a);
    tly_array_close(b);
    free(src);
    free(src1);
    free(c0);
    free(c1);
}

/* A chunk's blocks compressed on several lanes (a lone chunk, or two chunks on four threads) come
 * out in order: c-blosc's own one-thread frame byte for byte, strided chunks (gathered block by
 * block, each lane from where its block begins) and a short last block (with the block before it)
 * included. */
TLY_TEST(engine, blosc_writes_blocks_on_lanes)
{
    uint64_t shape[] = {1000, 1536}, chunks[] = {1000, 768}; /* 2 strided chunks of 3,072,000 bytes */
    float *src;
    struct tly_array *a = make_array("lanes", shape, chunks, 4, &src);
    size_t n = 1000 * 768;
    float *c0 = malloc(n * sizeof *c0), *c1 = malloc(n * sizeof *c1);
    cr_assert(c0 && c1);
    for (size_t i = 0; i < 1000; i++) {
        memcpy(c0 + i * 768, src + i * 1536, 768 * sizeof *c0);
        memcpy(c1 + i * 768, src + i * 1536 + 768, 768 * sizeof *c1);
    }
    char path[400];
    snprintf(path, sizeof path, "%s/lanes/0.0", dir);
    size_t m;
    unsigned char *f = slurp(path, &m);
    uint32_t bs;
    memcpy(&bs, f + 8, 4);
    cr_expect(bs > 0 && (n * 4) % bs != 0 && (n * 4) / bs >= 4, "block size %u: want a short last block of many", bs);
    free(f);
    expect_ctx_frame("lanes", "0.0", "lz4", 5, c0, n * 4);
    expect_ctx_frame("lanes", "0.1", "lz4", 5, c1, n * 4);
    expect_region(a, src, 1536, 0, 1000, 0, 1536, "lanes");
    /* a lone contiguous chunk on eight lanes */
    uint64_t shape1[] = {1000, 768};
    float *src1;
    struct tly_array *b = make_array("lanes1", shape1, shape1, 8, &src1);
    expect_ctx_frame("lanes1", "0.0", "lz4", 5, src1, n * 4);
    tly_array_close(a);
    tly_array_close(b);
    free(src);
    free(src1);
    free(c0);
    free(c1);
}
