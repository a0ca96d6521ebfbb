/*
 * libFuzzer: a gzip or zlib chunk decoded whole (tly_codec_decode) and pushed in pieces of the
 * input's choosing (tly_gzip_dstream_*), straight into a destination and through a small window to
 * a sink, as the engine reads a contiguous and a strided chunk. Whole and streamed must agree, and
 * what decodes must encode again to the same bytes. Input: 4 piece sizes, a byte whose low bit picks
 * zlib, a 24-bit decoded size for zlib (gzip takes its ISIZE trailer), then the stream. Seeds:
 * tests/fuzz/corpus/gzip (numcodecs-written chunks).
 */
#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/stream.h"
#include "tally/codec.h"

#define MAX_OUT ((size_t)4 << 20)
#define HEAD 8

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

/* Feed @p src in pieces cycling through @p sizes; the stream's verdict. */
static int stream(struct tly_gzip_dstream *ds, const unsigned char *src, size_t n, const unsigned char *sizes)
{
    int rc = 0;
    for (size_t off = 0, i = 0; rc == 0 && off < n; i++) {
        size_t k = 1 + sizes[i % 4] * (sizes[i % 4] & 0x80 ? 64 : 1);
        k = k < n - off ? k : n - off;
        rc = tly_gzip_dstream_feed(ds, src + off, k);
        off += k;
    }
    if (rc) {
        tly_gzip_dstream_abort(ds);
        return rc;
    }
    return tly_gzip_dstream_close(ds);
}

/* The decoded size to ask for: zlib's from the input's head, gzip's from its ISIZE trailer. */
static size_t wanted(const unsigned char *head, const unsigned char *src, size_t n, bool zlib)
{
    size_t size = zlib || n < 4 ? (size_t)head[5] | (size_t)head[6] << 8 | (size_t)head[7] << 16
                                : (size_t)src[n - 4] | (size_t)src[n - 3] << 8 | (size_t)src[n - 2] << 16 |
                                      (size_t)src[n - 1] << 24;
    return size > MAX_OUT ? 64 : size;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t n)
{
    if (n < HEAD)
        return 0;
    unsigned char head[HEAD + 4]; /* the second stream's sizes start one further */
    memcpy(head, data, HEAD);
    memcpy(head + HEAD, data, 4);
    bool zlib = head[4] & 1;
    data += HEAD;
    n -= HEAD;
    struct tly_codec c;
    tly_codec_defaults(&c, zlib ? TLY_CODEC_ZLIB : TLY_CODEC_GZIP);
    unsigned char *src = malloc(n ? n : 1);
    memcpy(src, data, n);
    size_t size = wanted(head, src, n, zlib);
    unsigned char *whole = malloc(size ? size : 1), *direct = malloc(size ? size : 1);
    int rw = tly_codec_decode(&c, whole, size, src, n);
    struct tly_gzip_dstream *ds;
    int rd = tly_gzip_dstream_open(&c, direct, size, NULL, NULL, NULL, 0, &ds);
    if (rd == 0)
        rd = stream(ds, src, n, head);
    struct acc a = {malloc(size ? size : 1), 0, size};
    unsigned char window[257];
    int rs = tly_gzip_dstream_open(&c, NULL, size, sink, &a, window, 1 + head[0], &ds);
    if (rs == 0)
        rs = stream(ds, src, n, head + 1);
    assert((rw == 0) == (rd == 0) && (rw == 0) == (rs == 0));
    if (rw == 0) {
        assert(memcmp(whole, direct, size) == 0);
        assert(a.n == size && memcmp(whole, a.buf, size) == 0);
        size_t cap = tly_codec_bound(&c, size), m = 0;
        unsigned char *enc = malloc(cap), *back = malloc(size ? size : 1);
        assert(tly_codec_encode(&c, enc, cap, whole, size, &m) == 0);
        assert(tly_codec_decode(&c, back, size, enc, m) == 0 && memcmp(back, whole, size) == 0);
        free(enc);
        free(back);
    }
    free(a.buf);
    free(whole);
    free(direct);
    free(src);
    return 0;
}
