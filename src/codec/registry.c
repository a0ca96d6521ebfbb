/*
 * The codec registry: names, defaults, the command-line spec, and dispatch to none.c, blosc.c,
 * zstd.c and gzip.c (gzip and zlib). Dispatch is where the stage is set, so every codec's work (and
 * its library's allocations) lands in encode or decode.
 */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/internal.h"
#include "tally/error.h"
#include "tally/mem.h"

static const char *const names[] = {
    [TLY_CODEC_NONE] = "none", [TLY_CODEC_BLOSC] = "blosc", [TLY_CODEC_ZSTD] = "zstd",
    [TLY_CODEC_GZIP] = "gzip", [TLY_CODEC_ZLIB] = "zlib",
};

#define NCODECS ((int)(sizeof names / sizeof names[0]))

static int bad_id(const struct tly_codec *c)
{
    return tly_fail(TLY_EUSAGE, "codec: unknown codec id %d", (int)c->id);
}

void tly_codec_defaults(struct tly_codec *c, enum tly_codec_id id)
{
    /* Every library's settings are filled whatever the id, so switching id later is safe. */
    *c = (struct tly_codec){
        .id = id,
        .blosc = {.cname = "lz4", .clevel = 5, .shuffle = TLY_SHUFFLE, .blocksize = 0, .typesize = 1},
        .zstd = {.level = 3, .checksum = 0},
        .gzip = {.level = 1},
    };
}

const char *tly_codec_name(enum tly_codec_id id)
{
    return (int)id >= 0 && (int)id < NCODECS ? names[id] : "?";
}

int tly__codec_int(const char *codec, const char *key, const char *val, long long lo, long long hi, long long *out)
{
    /* strtoll alone would take "", " 5" and "5x". */
    const char *digits = (val[0] == '-' || val[0] == '+') ? val + 1 : val;
    if (!isdigit((unsigned char)digits[0]))
        return tly_fail(TLY_EUSAGE, "%s: %s '%s' is not an integer", codec, key, val);
    char *end;
    errno = 0;
    long long v = strtoll(val, &end, 10);
    if (*end != '\0')
        return tly_fail(TLY_EUSAGE, "%s: %s '%s' is not an integer", codec, key, val);
    if (errno == ERANGE || v < lo || v > hi)
        return tly_fail(TLY_EUSAGE, "%s: %s '%s' is not %lld..%lld", codec, key, val, lo, hi);
    *out = v;
    return 0;
}

int tly__stream_args(const char *codec, const struct iovec *iov, int niov, uint64_t total, const void *out,
                     size_t out_cap, tly_sink_fn sink)
{
    if (niov < 0 || (niov > 0 && iov == NULL) || out == NULL || out_cap == 0 || sink == NULL)
        return tly_fail(TLY_EUSAGE, "%s: stream encoding needs pieces, an output buffer and a sink", codec);
    uint64_t sum = 0;
    for (int i = 0; i < niov; i++) {
        if (iov[i].iov_len > UINT64_MAX - sum)
            return tly_fail(TLY_EUSAGE, "%s: stream pieces overflow a 64-bit size", codec);
        sum += iov[i].iov_len;
    }
    /* Checked before any output, so a sink never sees part of a stream that would then fail. */
    if (sum != total)
        return tly_fail(TLY_EUSAGE, "%s: stream pieces hold %llu bytes, not the %llu given as total", codec,
                        (unsigned long long)sum, (unsigned long long)total);
    return 0;
}

static int set_option(struct tly_codec *c, const char *key, const char *val)
{
    switch (c->id) {
    case TLY_CODEC_BLOSC:
        return tly__blosc_set(c, key, val);
    case TLY_CODEC_ZSTD:
        return tly__zstd_set(c, key, val);
    case TLY_CODEC_GZIP:
    case TLY_CODEC_ZLIB:
        return tly__gzip_set(c, key, val);
    default:
        return tly_fail(TLY_EUSAGE, "%s: takes no options (got '%s')", tly_codec_name(c->id), key);
    }
}

/* "k=v,k=v" into @p c. */
static int parse_options(struct tly_codec *c, const char *opts)
{
    char buf[256];
    if ((size_t)snprintf(buf, sizeof buf, "%s", opts) >= sizeof buf)
        return tly_fail(TLY_EUSAGE, "%s: options '%s' are too long", tly_codec_name(c->id), opts);
    char *item = buf;
    for (;;) {
        char *next = strchr(item, ',');
        if (next)
            *next = '\0';
        char *eq = strchr(item, '=');
        if (eq == NULL || eq == item || eq[1] == '\0')
            return tly_fail(TLY_EUSAGE, "%s: option '%s' is not key=value", tly_codec_name(c->id), item);
        *eq = '\0';
        int rc = set_option(c, item, eq + 1);
        if (rc)
            return rc;
        if (next == NULL)
            return 0;
        item = next + 1;
    }
}

int tly_codec_parse(const char *spec, struct tly_codec *out)
{
    if (spec == NULL)
        return tly_fail(TLY_EUSAGE, "codec: no codec spec given");
    const char *colon = strchr(spec, ':');
    size_t len = colon ? (size_t)(colon - spec) : strlen(spec);
    for (int id = 0; id < NCODECS; id++) {
        if (strlen(names[id]) != len || strncmp(spec, names[id], len) != 0)
            continue;
        struct tly_codec c;
        tly_codec_defaults(&c, (enum tly_codec_id)id);
        int rc = colon ? parse_options(&c, colon + 1) : 0;
        if (rc == 0)
            *out = c; /* @p out is left as it was on an error */
        return rc;
    }
    return tly_fail(TLY_EUSAGE, "codec '%.*s' is unknown (none, blosc, zstd, gzip, zlib)", (int)len, spec);
}

size_t tly_codec_bound(const struct tly_codec *c, size_t n)
{
    if (c == NULL)
        return SIZE_MAX;
    switch (c->id) {
    case TLY_CODEC_NONE:
        return tly__none_bound(n);
    case TLY_CODEC_BLOSC:
        return tly__blosc_bound(n);
    case TLY_CODEC_ZSTD:
        return tly__zstd_bound(n);
    case TLY_CODEC_GZIP:
    case TLY_CODEC_ZLIB:
        return tly__gzip_bound(c, n);
    default:
        return SIZE_MAX;
    }
}

size_t tly_codec_workspace(const struct tly_codec *c, size_t n, bool decode, bool windowed)
{
    size_t asked;
    switch (c ? c->id : TLY_CODEC_NONE) {
    case TLY_CODEC_BLOSC:
        asked = tly__blosc_workspace(c, n, decode);
        break;
    case TLY_CODEC_ZSTD:
        asked = tly__zstd_workspace(c, n, decode, windowed);
        break;
    case TLY_CODEC_GZIP:
    case TLY_CODEC_ZLIB:
        asked = tly__gzip_workspace(c, n, decode);
        break;
    default:
        return 0;
    }
    /* the libraries' estimates are requested bytes; jemalloc's size classes round each block up by
     * at most a quarter, and the budget counts what is really taken */
    return asked + asked / 4 + 16384;
}

static int encode(const struct tly_codec *c, void *dst, size_t cap, const void *src, size_t n, size_t *out_n)
{
    switch (c->id) {
    case TLY_CODEC_NONE:
        return tly__none_encode(dst, cap, src, n, out_n);
    case TLY_CODEC_BLOSC:
        return tly__blosc_encode(c, dst, cap, src, n, out_n);
    case TLY_CODEC_ZSTD:
        return tly__zstd_encode(c, dst, cap, src, n, out_n);
    case TLY_CODEC_GZIP:
    case TLY_CODEC_ZLIB:
        return tly__gzip_encode(c, dst, cap, src, n, out_n);
    default:
        return bad_id(c);
    }
}

int tly_codec_encode(const struct tly_codec *c, void *dst, size_t cap, const void *src, size_t n, size_t *out_n)
{
    if (c == NULL || out_n == NULL || (n > 0 && src == NULL) || (cap > 0 && dst == NULL))
        return tly_fail(TLY_EUSAGE, "codec: encode: missing codec, buffer or size pointer");
    *out_n = 0;
    int rc = TLY_EINTERNAL; /* set by the stage's body, which always runs once */
    TLY_STAGE(TLY_ENCODE)
    {
        rc = encode(c, dst, cap, src, n, out_n);
    }
    return rc;
}

static int decode(const struct tly_codec *c, void *dst, size_t dst_n, const void *src, size_t n)
{
    switch (c->id) {
    case TLY_CODEC_NONE:
        return tly__none_decode(dst, dst_n, src, n);
    case TLY_CODEC_BLOSC:
        return tly__blosc_decode(c->threads, dst, dst_n, src, n);
    case TLY_CODEC_ZSTD:
        return tly__zstd_decode(dst, dst_n, src, n);
    case TLY_CODEC_GZIP:
    case TLY_CODEC_ZLIB:
        return tly__gzip_decode(c, dst, dst_n, src, n);
    default:
        return bad_id(c);
    }
}

int tly_codec_decode(const struct tly_codec *c, void *dst, size_t dst_n, const void *src, size_t n)
{
    if (c == NULL || (n > 0 && src == NULL) || (dst_n > 0 && dst == NULL))
        return tly_fail(TLY_EUSAGE, "codec: decode: missing codec or buffer");
    int rc = TLY_EINTERNAL; /* set by the stage's body, which always runs once */
    TLY_STAGE(TLY_DECODE)
    {
        rc = decode(c, dst, dst_n, src, n);
    }
    return rc;
}

int tly_codec_decoded_size(const struct tly_codec *c, const void *src, size_t n, uint64_t *out)
{
    if (c == NULL || out == NULL || (n > 0 && src == NULL))
        return tly_fail(TLY_EUSAGE, "codec: decoded size: missing codec, buffer or result pointer");
    switch (c->id) {
    case TLY_CODEC_NONE:
        return tly_fail(TLY_EUNSUPPORTED, "none: an unencoded chunk records no decoded size");
    case TLY_CODEC_BLOSC:
        return tly__blosc_decoded_size(src, n, out);
    case TLY_CODEC_ZSTD:
        return tly__zstd_decoded_size(src, n, out);
    case TLY_CODEC_GZIP:
    case TLY_CODEC_ZLIB:
        return tly__gzip_decoded_size(c);
    default:
        return bad_id(c);
    }
}
