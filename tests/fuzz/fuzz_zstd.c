/*
 * libFuzzer: a zstd chunk decoded whole (tly_codec_decode) and streamed in pieces of the input's
 * choosing (tly_zstd_dstream_*), straight into a destination, through a small window to a sink, and
 * placed into runs with gaps between them, as the engine reads a contiguous and a strided chunk
 * (and walk_feed stitches the blocks the pieces split). Whole and streamed must agree. Seeds:
 * tests/fuzz/corpus/zstd (numcodecs-written frames, and tally's own).
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/stream.h"
#include "tally/codec.h"

#define MAX_OUT ((size_t)4 << 20)

struct acc {
    unsigned char *buf;
    size_t n, cap;
};

static int sink(void *arg, const void *p, size_t n)
{
    struct acc *a = arg;
    assert(a->n + n <= a->cap);
    memcpy(a->buf + a->n, p, n);
    a->n += n;
    return 0;
}

/* Places: runs of @p run bytes every @p stride of the chunk, packed into @p out (place_run's shape). */
struct runs {
    unsigned char *out;
    size_t run, stride;
};

static int place(void *arg, uint64_t pos, void **dst, size_t *len)
{
    struct runs *r = arg;
    uint64_t k = pos / r->stride, in = pos % r->stride;
    *dst = in < r->run ? r->out + k * r->run + in : NULL;
    *len = in < r->run ? r->run - in : r->stride - in;
    return 0;
}

/* Feed @p src in pieces cycling through @p sizes; the stream's verdict. */
static int stream(struct tly_zstd_dstream *ds, const unsigned char *src, size_t n, const unsigned char *sizes)
{
    int rc = 0;
    for (size_t off = 0, i = 0; rc == 0 && off < n; i++) {
        size_t k = 1 + sizes[i % 4] * (sizes[i % 4] & 0x80 ? 64 : 1);
        k = k < n - off ? k : n - off;
        rc = tly_zstd_dstream_feed(ds, src + off, k);
        off += k;
    }
    if (rc) {
        tly_zstd_dstream_abort(ds);
        return rc;
    }
    return tly_zstd_dstream_close(ds);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t n)
{
    if (n < 4)
        return 0;
    unsigned char sizes[8]; /* the second stream starts one further: 4 + 4 */
    memcpy(sizes, data, 4);
    memcpy(sizes + 4, data, 4);
    data += 4;
    n -= 4;
    struct tly_codec c;
    tly_codec_defaults(&c, TLY_CODEC_ZSTD);
    unsigned char *src = malloc(n ? n : 1);
    memcpy(src, data, n);
    uint64_t size = 64; /* a frame that does not say its size is still fed to the streams */
    if (tly_codec_decoded_size(&c, src, n, &size) != 0 || size > MAX_OUT)
        size = size > MAX_OUT ? 64 : size;
    unsigned char *whole = malloc(size ? size : 1), *direct = malloc(size ? size : 1);
    int rw = tly_codec_decode(&c, whole, (size_t)size, src, n);
    struct tly_zstd_dstream *ds;
    int rd = tly_zstd_dstream_open(&c, direct, (size_t)size, NULL, NULL, NULL, 0, &ds);
    if (rd == 0)
        rd = stream(ds, src, n, sizes);
    struct acc a = {malloc(size ? size : 1), 0, (size_t)size};
    unsigned char window[257];
    int rs = tly_zstd_dstream_open(&c, NULL, (size_t)size, sink, &a, window, 1 + sizes[0], &ds);
    if (rs == 0)
        rs = stream(ds, src, n, sizes + 1);
    struct runs r = {NULL, 1 + sizes[2], 1 + sizes[2] + sizes[3]};
    r.out = malloc(((size_t)size / r.stride + 1) * r.run);
    unsigned char scratch[97];
    int rp = tly_zstd_dstream_open_placed(&c, (size_t)size, place, &r, scratch, 1 + sizes[1] % sizeof scratch, &ds);
    if (rp == 0)
        rp = stream(ds, src, n, sizes + 2);
    if (rw == 0 && rp == 0)
        for (size_t at = 0; at < size; at++)
            assert(at % r.stride >= r.run || r.out[at / r.stride * r.run + at % r.stride] == whole[at]);
    free(r.out);
    if (rw == 0 && rd == 0)
        assert(memcmp(whole, direct, size) == 0);
    if (rw == 0 && rs == 0)
        assert(a.n == size && memcmp(whole, a.buf, size) == 0);
    free(a.buf);
    free(whole);
    free(direct);
    free(src);
    return 0;
}
