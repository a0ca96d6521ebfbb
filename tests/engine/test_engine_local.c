/* engine: round trips on the local store for every codec and format, regions, fill, zero-copy paths. */
#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support.h"
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

static void make_meta(struct tly_meta *m, int format, const char *codec, const char *dtype, int rank,
                      const uint64_t *shape, const uint64_t *chunks)
{
    memset(m, 0, sizeof *m);
    m->zarr_format = format;
    cr_assert_eq(tly_dtype_from_numpy(dtype, &m->dtype), 0);
    m->rank = rank;
    for (int d = 0; d < rank; d++) {
        m->shape[d] = shape[d];
        m->chunks[d] = chunks[d];
    }
    cr_assert_eq(tly_codec_parse(codec, &m->codec), 0, "%s", tly_errmsg());
    m->codec.blosc.typesize = m->dtype.size;
    m->has_fill = true;
    m->separator = format == 3 ? '/' : '.';
    m->v3_default_keys = true;
}

static uint64_t elems(int rank, const uint64_t *shape)
{
    uint64_t n = 1;
    for (int d = 0; d < rank; d++)
        n *= shape[d];
    return n;
}

static void pattern(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)((i * 2654435761u + seed) >> 13);
}

/* Write the whole array, read it back whole and by a region, compare. */
static void round_trip(int format, const char *codec, const char *dtype, int rank, const uint64_t *shape,
                       const uint64_t *chunks, int threads)
{
    struct tly_meta m;
    make_meta(&m, format, codec, dtype, rank, shape, chunks);
    size_t n = elems(rank, shape) * m.dtype.size;
    uint8_t *src = malloc(n + 1), *back = malloc(n + 1);
    pattern(src, n, 7);
    char path[300];
    snprintf(path, sizeof path, "%s/a-%d-%s-%s", dir, format, codec, dtype);
    struct tly_io_opts opts = {.threads = threads};
    struct tly_array *a;
    struct tly_region all;
    tly_region_all(&all, rank, shape);
    cr_assert_eq(tly_array_create(path, &m, true, &opts, &a), 0, "%s", tly_errmsg());
    struct tly_io_stats st;
    cr_assert_eq(tly_array_write(a, src, &all, &st), 0, "%s", tly_errmsg());
    tly_array_close(a);
    cr_assert_eq(tly_array_open(path, &opts, &a), 0, "%s", tly_errmsg());
    cr_expect_eq(tly_array_meta(a)->codec.id, m.codec.id);
    memset(back, 0xEE, n);
    cr_assert_eq(tly_array_read(a, back, &all, &st), 0, "%s", tly_errmsg());
    cr_expect_eq(memcmp(src, back, n), 0, "%s %s %s: whole array equal", format == 3 ? "v3" : "v2", codec, dtype);
    cr_expect_eq(st.missing, 0);
    /* A region off the chunk boundaries. */
    struct tly_region r = {.rank = rank};
    for (int d = 0; d < rank; d++) {
        r.start[d] = shape[d] / 3;
        r.stop[d] = shape[d] - shape[d] / 4;
    }
    uint64_t rn = tly_region_count(&r) * m.dtype.size;
    cr_assert_eq(tly_array_read(a, back, &r, NULL), 0, "%s", tly_errmsg());
    /* compare element by element against src */
    uint64_t pos[TLY_MAX_RANK] = {0};
    size_t es = m.dtype.size;
    for (uint64_t k = 0; k < rn / es; k++) {
        uint64_t off = 0;
        for (int d = 0; d < rank; d++)
            off = off * shape[d] + r.start[d] + pos[d];
        if (memcmp(back + k * es, src + off * es, es) != 0) {
            cr_expect_fail("region element %llu differs", (unsigned long long)k);
            break;
        }
        for (int d = rank - 1; d >= 0; d--) {
            if (++pos[d] < r.stop[d] - r.start[d])
                break;
            pos[d] = 0;
        }
    }
    tly_array_close(a);
    free(src);
    free(back);
}

TLY_TEST(engine, round_trip_every_codec_and_format)
{
    static const char *codecs[] = {"none", "zstd", "zstd:level=1", "blosc", "blosc:cname=zstd,clevel=3,shuffle=2"};
    uint64_t shape[] = {37, 23, 5}, chunks[] = {10, 7, 5};
    for (int f = 2; f <= 3; f++)
        for (size_t c = 0; c < sizeof codecs / sizeof *codecs; c++)
            round_trip(f, codecs[c], "<f4", 3, shape, chunks, 2);
}

/* gzip and zlib (v2 compressors): chunks strided in the output (scattered through a window) and
 * chunks of whole rows (inflated straight into the output), levels 0, 1 and 9. */
TLY_TEST(engine, round_trip_gzip_and_zlib)
{
    static const char *codecs[] = {"gzip", "zlib", "gzip:level=9", "zlib:level=0"};
    uint64_t shape[] = {37, 23, 5}, tiles[] = {10, 7, 5}, rows[] = {4, 23, 5};
    for (size_t c = 0; c < sizeof codecs / sizeof *codecs; c++) {
        round_trip(2, codecs[c], "<f4", 3, shape, tiles, 2);
        round_trip(2, codecs[c], ">i8", 3, shape, rows, 1);
    }
    uint64_t s0[1] = {0};
    round_trip(2, "gzip", "<f8", 0, s0, s0, 1);
}

TLY_TEST(engine, round_trip_dtypes_and_ranks)
{
    static const char *dtypes[] = {"|b1", "|i1", "<i2", ">i4", "<i8", "|u1", ">u2", "<u4", ">u8", "<f4", ">f8"};
    uint64_t s1[] = {1001}, c1[] = {100};
    uint64_t s4[] = {3, 4, 5, 6}, c4[] = {2, 3, 2, 4};
    for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++) {
        round_trip(2, "zstd", dtypes[i], 1, s1, c1, 1);
        round_trip(3, "blosc", dtypes[i], 4, s4, c4, 3);
    }
    uint64_t s0[1] = {0};
    round_trip(2, "none", "<f8", 0, s0, s0, 1);
    round_trip(3, "zstd", "<f8", 0, s0, s0, 1);
}

TLY_TEST(engine, partial_writes_read_modify_write)
{
    uint64_t shape[] = {20, 30}, chunks[] = {8, 8};
    static const char *codecs[] = {"none", "zstd", "blosc", "gzip", "zlib"};
    for (size_t c = 0; c < sizeof codecs / sizeof *codecs; c++) {
        struct tly_meta m;
        make_meta(&m, c == 1 ? 3 : 2, codecs[c], "<i4", 2, shape, chunks);
        m.fill[0] = 0xFF, m.fill[1] = 0xFF, m.fill[2] = 0xFF, m.fill[3] = 0xFF; /* -1 */
        struct tly_array *a;
        char path[300];
        snprintf(path, sizeof path, "%s/rmw-%s", dir, codecs[c]);
        cr_assert_eq(tly_array_create(path, &m, false, NULL, &a), 0, "%s", tly_errmsg());
        int32_t block[5 * 7];
        for (int i = 0; i < 35; i++)
            block[i] = 1000 + i;
        struct tly_region r = {2, {6, 5}, {11, 12}};
        struct tly_io_stats st;
        cr_assert_eq(tly_array_write(a, block, &r, &st), 0, "%s", tly_errmsg());
        cr_expect_gt(st.rmw, 0);
        int32_t all[20 * 30];
        struct tly_region whole;
        tly_region_all(&whole, 2, shape);
        cr_assert_eq(tly_array_read(a, all, &whole, &st), 0, "%s", tly_errmsg());
        cr_expect_gt(st.missing, 0, "chunks never written read as the fill value");
        int bad = 0;
        for (int y = 0; y < 20; y++)
            for (int x = 0; x < 30; x++) {
                bool in = y >= 6 && y < 11 && x >= 5 && x < 12;
                int32_t want = in ? 1000 + (y - 6) * 7 + (x - 5) : -1;
                bad += all[y * 30 + x] != want;
            }
        cr_expect_eq(bad, 0, "%s: %d elements differ after a partial write", codecs[c], bad);
        tly_array_close(a);
    }
}

TLY_TEST(engine, existing_array_needs_overwrite)
{
    uint64_t shape[] = {4}, chunks[] = {2};
    struct tly_meta m;
    make_meta(&m, 2, "none", "<f4", 1, shape, chunks);
    struct tly_array *a;
    cr_assert_eq(tly_array_create(dir, &m, false, NULL, &a), 0);
    tly_array_close(a);
    cr_expect_eq(tly_array_create(dir, &m, false, NULL, &a), TLY_EEXISTS);
    cr_expect(strstr(tly_errmsg(), "overwrite") != NULL, "%s", tly_errmsg());
    cr_expect_eq(tly_array_create(dir, &m, true, NULL, &a), 0);
    tly_array_close(a);
    char path[300];
    snprintf(path, sizeof path, "%s/none-here", dir);
    cr_expect_eq(tly_array_open(path, NULL, &a), TLY_ENOTFOUND);
}

/* Chunk @p key's file under the array at @p path: its name into @p chunk, and its size. */
static long chunk_file(const char *path, const char *key, char *chunk, size_t cap)
{
    snprintf(chunk, cap, "%s/%s", path, key);
    struct stat st;
    cr_assert_eq(stat(chunk, &st), 0, "%s", chunk);
    return (long)st.st_size;
}

TLY_TEST(engine, corrupt_chunks_are_named)
{
    uint64_t shape[] = {100}, chunks[] = {50};
    static const char *codecs[] = {"none", "zstd", "blosc", "gzip", "zlib"};
    for (size_t c = 0; c < sizeof codecs / sizeof *codecs; c++) {
        struct tly_meta m;
        make_meta(&m, 2, codecs[c], "<f8", 1, shape, chunks);
        char path[300];
        snprintf(path, sizeof path, "%s/corrupt-%s", dir, codecs[c]);
        struct tly_array *a;
        cr_assert_eq(tly_array_create(path, &m, false, NULL, &a), 0);
        double v[100];
        for (int i = 0; i < 100; i++)
            v[i] = i;
        struct tly_region all;
        tly_region_all(&all, 1, shape);
        cr_assert_eq(tly_array_write(a, v, &all, NULL), 0);
        cr_assert_eq(tly_array_commit(a), 0, "%s", tly_errmsg()); /* the array is at path from here on */
        char chunk[350];
        long len = chunk_file(path, "1", chunk, sizeof chunk);
        cr_assert_eq(truncate(chunk, len / 2), 0);
        int err = tly_array_read(a, v, &all, NULL);
        cr_expect(err == TLY_EFORMAT || err == TLY_ECODEC, "%s: %d %s", codecs[c], err, tly_errmsg());
        cr_expect(strstr(tly_errmsg(), "chunk 1") != NULL, "the message names the chunk: %s", tly_errmsg());
        tly_array_close(a);
    }
}

/* The zero-copy paths: what the copy ledger sees, per stage, for each path. */
static void ledger(const char *codec, const uint64_t *chunks, bool smooth, double want_gather, double want_encode,
                   double want_scatter)
{
    uint64_t shape[] = {64, 64};
    struct tly_meta m;
    make_meta(&m, 2, codec, "<f4", 2, shape, chunks);
    size_t n = 64 * 64 * 4;
    uint8_t *src = malloc(n), *back = malloc(n);
    pattern(src, n, 3);
    for (size_t i = 0; smooth && i < n; i++) /* compressible: small integers as floats */
        ((float *)(void *)src)[i / 4] = (float)(i / 64);
    char path[300];
    snprintf(path, sizeof path, "%s/ledger-%s-%llu%s", dir, codec, (unsigned long long)chunks[1],
             smooth ? "-smooth" : "");
    struct tly_array *a;
    struct tly_region all;
    tly_region_all(&all, 2, shape);
    struct tly_mem_snapshot s0, s1, s2;
    cr_assert_eq(tly_array_create(path, &m, false, NULL, &a), 0);
    tly_mem_snapshot(&s0);
    cr_assert_eq(tly_array_write(a, src, &all, NULL), 0, "%s", tly_errmsg());
    tly_mem_snapshot(&s1);
    cr_assert_eq(tly_array_read(a, back, &all, NULL), 0, "%s", tly_errmsg());
    tly_mem_snapshot(&s2);
    cr_expect_eq(memcmp(src, back, n), 0);
    uint64_t total_w = 0, total_r = 0;
    for (int s = 0; s < TLY_NSTAGES; s++) {
        total_w += TLY_DELTA(s0, s1, s, copy_bytes);
        total_r += TLY_DELTA(s1, s2, s, copy_bytes);
    }
    cr_expect_eq(TLY_DELTA(s0, s1, TLY_GATHER, copy_bytes), (uint64_t)(want_gather * n), "%s write gather", codec);
    cr_expect_eq(TLY_DELTA(s0, s1, TLY_ENCODE, copy_bytes), (uint64_t)(want_encode * n), "%s write encode", codec);
    cr_expect_eq(total_w, TLY_DELTA(s0, s1, TLY_GATHER, copy_bytes) + TLY_DELTA(s0, s1, TLY_ENCODE, copy_bytes),
                 "%s write: no other copies", codec);
    cr_expect_eq(TLY_DELTA(s1, s2, TLY_SCATTER, copy_bytes), (uint64_t)(want_scatter * n), "%s read scatter", codec);
    cr_expect_eq(total_r, TLY_DELTA(s1, s2, TLY_SCATTER, copy_bytes), "%s read: no other copies", codec);
    tly_array_close(a);
    free(src);
    free(back);
}

TLY_TEST(engine, zero_copy_paths_in_the_ledger)
{
    uint64_t rows[] = {16, 64};  /* chunks of whole rows: contiguous in the array */
    uint64_t tiles[] = {16, 16}; /* tiles: strided */
    ledger("none", rows, false, 0, 0, 0);
    ledger("none", tiles, false, 0, 0, 0);
    ledger("zstd", rows, false, 0, 0, 0); /* one run each: read in place */
    /* a tile's rows are gathered by libzstd into its window; reading, libzstd copies each byte out
     * of its window straight into the runs (the scatter) */
    ledger("zstd", tiles, false, 0, 1, 1);
    ledger("gzip", rows, false, 0, 0, 0);
    ledger("gzip", tiles, false, 0, 0, 1);
    ledger("zlib", rows, true, 0, 0, 0);
    ledger("zlib", tiles, true, 0, 0, 1);
    ledger("blosc", rows, true, 0, 0, 0);
    /* blosc needs contiguous input: strided chunks are gathered; reading, each block is decoded
     * into a block buffer and scattered */
    ledger("blosc", tiles, true, 1, 0, 1);
    /* bytes blosc cannot shrink are stored as they are ("memcpyed"): read straight into the runs */
    ledger("blosc", tiles, false, 1, 0, 0);
}

/* A lone chunk larger than two ranges is read by all the workers at once (split ranges), and a
 * blosc chunk is decoded with their threads; whole reads, strided regions and read-modify-write
 * still give the array's bytes. */
TLY_TEST(engine, lone_chunk_reads_split_across_workers)
{
    static const char *codecs[] = {"none", "blosc", "zstd"};
    uint64_t shape[] = {2048, 3072}; /* float32: 24 MiB, one chunk */
    size_t n = (size_t)shape[0] * shape[1] * 4;
    uint8_t *src = malloc(n), *back = malloc(n);
    cr_assert(src && back);
    uint64_t x = 88172645463325252u; /* xorshift: bytes no codec shrinks, so blosc's chunk stays 24 MiB */
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        src[i] = (uint8_t)x;
    }
    for (size_t c = 0; c < sizeof codecs / sizeof *codecs; c++) {
        struct tly_meta m;
        make_meta(&m, 2, codecs[c], "<f4", 2, shape, shape);
        char path[300];
        snprintf(path, sizeof path, "%s/lone-%s", dir, codecs[c]);
        struct tly_io_opts opts = {.threads = 4};
        struct tly_array *a;
        struct tly_region all, r = {.rank = 2, .start = {100, 10}, .stop = {2000, 3000}};
        tly_region_all(&all, 2, shape);
        cr_assert_eq(tly_array_create(path, &m, true, &opts, &a), 0, "%s", tly_errmsg());
        cr_assert_eq(tly_array_write(a, src, &all, NULL), 0, "%s", tly_errmsg());
        struct tly_io_stats whole, part;
        memset(back, 0xEE, n);
        cr_assert_eq(tly_array_read(a, back, &all, &whole), 0, "%s", tly_errmsg());
        cr_expect_eq(memcmp(src, back, n), 0, "%s: whole array equal", codecs[c]);
        cr_assert_eq(tly_array_read(a, back, &r, &part), 0, "%s", tly_errmsg());
        size_t row = (r.stop[1] - r.start[1]) * 4;
        bool same = true;
        for (uint64_t i = r.start[0]; same && i < r.stop[0]; i++)
            same = memcmp(back + (i - r.start[0]) * row, src + (i * shape[1] + r.start[1]) * 4, row) == 0;
        cr_expect(same, "%s: region equal", codecs[c]);
        struct tly_io_stats rows_st;
        struct tly_region rows = {.rank = 2, .start = {100, 0}, .stop = {2000, 3072}};
        cr_assert_eq(tly_array_read(a, back, &rows, &rows_st), 0, "%s", tly_errmsg());
        cr_expect_eq(memcmp(back, src + 100 * shape[1] * 4, 1900 * shape[1] * 4), 0, "%s: rows equal", codecs[c]);
        /* Ranges: the whole 24 MiB chunk is read in 3 (the workers' share is 4, the 8 MiB floor
         * allows 3), blosc's too (these bytes do not compress: a "memcpyed" frame, read as the
         * uncompressed chunk is); zstd streams it through its decoder and is never split; a strided
         * region is read run by run, and whole rows (adjacent in the chunk and the output: one
         * 22 MiB read) in 2. */
        bool raw = strcmp(codecs[c], "zstd") != 0;
        cr_expect_eq(whole.split_ranges, raw ? 3u : 0u, "%s: whole read in %llu ranges", codecs[c],
                     (unsigned long long)whole.split_ranges);
        cr_expect_eq(part.split_ranges, 0u, "%s: strided region in %llu ranges", codecs[c],
                     (unsigned long long)part.split_ranges);
        cr_expect_eq(rows_st.split_ranges, raw ? 2u : 0u, "%s: rows in %llu ranges", codecs[c],
                     (unsigned long long)rows_st.split_ranges);
        /* read-modify-write of a strided patch: the chunk is loaded by split reads too */
        struct tly_region patch = {.rank = 2, .start = {1, 1}, .stop = {3, 5}};
        float p[8] = {1, 2, 3, 4, 5, 6, 7, 8}, q[8] = {0};
        struct tly_io_stats w;
        cr_assert_eq(tly_array_write(a, p, &patch, &w), 0, "%s", tly_errmsg());
        cr_expect_eq(w.rmw, 1u);
        cr_assert_eq(tly_array_read(a, q, &patch, NULL), 0, "%s", tly_errmsg());
        cr_expect_eq(memcmp(p, q, sizeof p), 0, "%s: patch read back", codecs[c]);
        cr_assert_eq(tly_array_read(a, back, &all, NULL), 0, "%s", tly_errmsg());
        cr_expect_eq(memcmp(back + 4 * shape[1] * 4, src + 4 * shape[1] * 4, n - 4 * shape[1] * 4), 0,
                     "%s: rows after the patch unchanged", codecs[c]);
        if (strcmp(codecs[c], "zstd") == 0) {
            /* the lone zstd chunk is read ahead (24 MiB: 1 MiB blocks, a worker reading while one
             * decodes): a chunk cut short, or with a block's bytes flipped, fails on whichever
             * worker meets it, and the message it gives names the chunk */
            cr_assert_eq(tly_array_commit(a), 0, "%s", tly_errmsg());
            char chunk[350];
            long len = chunk_file(path, "0.0", chunk, sizeof chunk);
            unsigned char junk[4096];
            memset(junk, 0xA5, sizeof junk);
            int fd = open(chunk, O_WRONLY);
            cr_assert_eq(pwrite(fd, junk, sizeof junk, len / 2), (ssize_t)sizeof junk);
            close(fd);
            int err = tly_array_read(a, back, &all, NULL);
            cr_expect_eq(err, TLY_ECODEC, "flipped bytes: %d %s", err, tly_errmsg());
            cr_expect(strstr(tly_errmsg(), "chunk 0.0") != NULL, "the message names the chunk: %s", tly_errmsg());
            cr_assert_eq(truncate(chunk, len / 2 - 3 * 4096), 0); /* before the flipped bytes */
            err = tly_array_read(a, back, &all, NULL);
            cr_expect_eq(err, TLY_ECODEC, "cut short: %d %s", err, tly_errmsg());
            cr_expect(strstr(tly_errmsg(), "chunk 0.0") != NULL && strstr(tly_errmsg(), "truncated") != NULL,
                      "the message names the chunk and what is wrong: %s", tly_errmsg());
        }
        tly_array_close(a);
    }
    free(src);
    free(back);
}

/* An operation's store traffic: its chunks' bytes, never the metadata an open or a create moves. */
static void traffic(const char *codec, double max_amp)
{
    struct tly_meta m;
    uint64_t shape[] = {512, 512}, chunks[] = {256, 256};
    make_meta(&m, 2, codec, "<f4", 2, shape, chunks);
    size_t n = elems(2, shape) * 4;
    uint8_t *src = malloc(n), *back = malloc(n);
    pattern(src, n, 3);
    char path[300];
    snprintf(path, sizeof path, "%s/traffic-%s", dir, codec);
    struct tly_array *a;
    struct tly_region all, corner = {.rank = 2, .start = {0, 0}, .stop = {100, 100}};
    tly_region_all(&all, 2, shape);
    struct tly_io_stats st;
    cr_assert_eq(tly_array_create(path, &m, true, NULL, &a), 0, "%s", tly_errmsg());
    cr_assert_eq(tly_array_write(a, src, &all, &st), 0, "%s", tly_errmsg());
    tly_array_close(a);
    uint64_t stored = st.stored_bytes;
    /* blosc written block by block patches its header and table in: those bytes cross twice */
    cr_expect(st.store_bytes_written >= stored && st.store_bytes_written <= stored + 4 * 4096,
              "%s write: %llu written for %llu stored", codec, (unsigned long long)st.store_bytes_written,
              (unsigned long long)stored);
    cr_expect_eq(st.store_bytes_read, 0, "%s write: a whole-chunk write reads nothing", codec);
    cr_assert_eq(tly_array_open(path, NULL, &a), 0, "%s", tly_errmsg());
    cr_assert_eq(tly_array_read(a, back, &all, &st), 0, "%s", tly_errmsg());
    cr_expect_eq(st.needed_bytes, stored, "%s read: needed_bytes is the chunks' stored bytes", codec);
    cr_expect(st.store_bytes_read >= stored && (double)st.store_bytes_read <= (double)stored * max_amp,
              "%s read: %llu read for %llu needed (amplification %.5f, at most %.5f)", codec,
              (unsigned long long)st.store_bytes_read, (unsigned long long)stored,
              (double)st.store_bytes_read / (double)stored, max_amp);
    cr_expect_eq(st.store_bytes_written, 0, "%s read: writes nothing", codec);
    /* a region of one chunk: uncompressed, only its rows are read (less than the chunk) */
    cr_assert_eq(tly_array_read(a, back, &corner, &st), 0, "%s", tly_errmsg());
    if (strcmp(codec, "none") == 0)
        cr_expect_eq(st.store_bytes_read, 100 * 100 * 4, "none region: its runs only, %llu",
                     (unsigned long long)st.store_bytes_read);
    else
        cr_expect(st.store_bytes_read > 0 && st.store_bytes_read <= st.needed_bytes * max_amp,
                  "%s region: %llu read for %llu needed", codec, (unsigned long long)st.store_bytes_read,
                  (unsigned long long)st.needed_bytes);
    tly_array_close(a);
    /* a partial write reads its chunk first (read-modify-write): that read is the write's traffic */
    cr_assert_eq(tly_array_open(path, NULL, &a), 0, "%s", tly_errmsg());
    cr_assert_eq(tly_array_write(a, src, &corner, &st), 0, "%s", tly_errmsg());
    cr_expect_eq(st.rmw, 1);
    cr_expect(st.store_bytes_read > 0 && st.store_bytes_written >= st.stored_bytes, "%s rmw: %llu read, %llu written",
              codec, (unsigned long long)st.store_bytes_read, (unsigned long long)st.store_bytes_written);
    tly_array_close(a);
    free(src);
    free(back);
}

TLY_TEST(engine, an_operations_store_traffic)
{
    traffic("none", 1.0);
    traffic("zstd", 1.0);
    traffic("blosc:cname=lz4,clevel=5,shuffle=1", 1.01);
}
