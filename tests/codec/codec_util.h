/* Helpers shared by the codec suites: test data, buffers and a round trip with its checks. */
#ifndef TLY_TESTS_CODEC_UTIL_H
#define TLY_TESTS_CODEC_UTIL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "support.h"
#include "codec/blosc.h"
#include "codec/stream.h"
#include "tally/codec.h"
#include "tally/error.h"

#define MiB ((size_t)1 << 20)

static inline uint64_t cu_rand(uint64_t *s)
{
    /* xorshift64*: reproducible data without libc's rand state */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

/* Array-like data: a slow ramp of @p typesize-byte little-endian elements with a little noise. */
static inline void cu_fill(void *p, size_t n, int typesize, uint64_t seed)
{
    unsigned char *b = p;
    uint64_t s = seed | 1;
    size_t i = 0;
    for (uint64_t k = 0; i + (size_t)typesize <= n; k++) {
        uint64_t v = k / 3 + (cu_rand(&s) & 3);
        for (int j = 0; j < typesize; j++)
            b[i++] = (unsigned char)(v >> (8 * (j % 8)));
    }
    while (i < n)
        b[i++] = (unsigned char)cu_rand(&s);
}

/* Incompressible bytes. */
static inline void cu_fill_random(void *p, size_t n, uint64_t seed)
{
    unsigned char *b = p;
    uint64_t s = seed | 1;
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(cu_rand(&s) >> 56);
}

static inline void *cu_alloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    cr_assert_not_null(p);
    return p;
}

static inline struct tly_codec cu_codec(enum tly_codec_id id)
{
    struct tly_codec c;
    tly_codec_defaults(&c, id);
    return c;
}

/*
 * Encode @p n bytes of @p src with @p c into a buffer of exactly the bound (so an overrun is a
 * sanitizer error), check the size against the bound, decode and compare. Returns the encoded
 * size; the encoded bytes go to @p enc_out when it is not NULL (the caller frees them).
 */
static inline size_t cu_roundtrip_keep(const struct tly_codec *c, const void *src, size_t n, unsigned char **enc_out)
{
    size_t bound = tly_codec_bound(c, n);
    cr_assert_lt(bound, SIZE_MAX);
    unsigned char *enc = cu_alloc(bound), *back = cu_alloc(n);
    size_t m = 0;
    int rc = tly_codec_encode(c, enc, bound, src, n, &m);
    cr_assert_eq(rc, 0, "%s encode of %zu bytes: %s", tly_codec_name(c->id), n, tly_errmsg());
    cr_assert_leq(m, bound, "%s: %zu encoded bytes over the bound %zu", tly_codec_name(c->id), m, bound);
    rc = tly_codec_decode(c, back, n, enc, m);
    cr_assert_eq(rc, 0, "%s decode of %zu bytes: %s", tly_codec_name(c->id), n, tly_errmsg());
    cr_assert_eq(memcmp(back, src, n), 0, "%s: %zu bytes differ after the round trip", tly_codec_name(c->id), n);
    free(back);
    if (enc_out)
        *enc_out = enc;
    else
        free(enc);
    return m;
}

static inline size_t cu_roundtrip(const struct tly_codec *c, const void *src, size_t n)
{
    return cu_roundtrip_keep(c, src, n, NULL);
}

/* Split @p n bytes at @p p into at most @p max pieces of varied sizes (empty ones included), as a
 * chunk's runs and fill segments come to a streaming encoder; returns how many. */
static inline int cu_split(unsigned char *p, size_t n, struct iovec *iov, int max)
{
    static const size_t lens[] = {1, 0, 4095, 17, 65536, 0, 3, 300000, 128 * 1024 + 1};
    int k = 0;
    size_t at = 0;
    while (at < n && k < max - 1) {
        size_t len = lens[k % (int)(sizeof lens / sizeof lens[0])];
        len = len < n - at ? len : n - at;
        iov[k++] = (struct iovec){p + at, len};
        at += len;
    }
    iov[k++] = (struct iovec){p + at, n - at};
    return k;
}

/* The Content_Checksum_flag of a zstd frame (RFC 8878: bit 2 of the descriptor after the magic). */
static inline int cu_zstd_checksum_flag(const unsigned char *frame, size_t n)
{
    cr_assert_geq(n, 5);
    return (frame[4] >> 2) & 1;
}

/* Expect @p rc to be @p want with a message that begins with @p prefix (the codec's name). */
#define cu_expect_err(rc, want, prefix)                                                                                \
    do {                                                                                                               \
        int cu_rc_ = (rc);                                                                                             \
        cr_expect_eq(cu_rc_, (want), "rc %d (%s), want %d; message: %s", cu_rc_, tly_strerror(cu_rc_), (want),         \
                     tly_errmsg());                                                                                    \
        cr_expect_eq(strncmp(tly_errmsg(), (prefix), strlen(prefix)), 0, "message '%s' does not begin '%s'",           \
                     tly_errmsg(), (prefix));                                                                          \
    } while (0)

#endif
