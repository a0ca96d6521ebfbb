/*
 * The codec registry: the list of codecs' tables (codec/ops.h), looked up by name and by id, and the
 * calls every codec shares. Dispatch is where the stage is set, so every codec's work (and its
 * library's allocations) lands in encode or decode, and where the arguments all codecs share are
 * checked. Adding a codec is its file and its line in CODECS below.
 */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/blocks.h"
#include "codec/ops.h"
#include "tally/error.h"
#include "tally/mem.h"

/* Every codec: X(name) for the table tly__codec_<name> (whose name field is the same word), in the
 * order tly_codec_names() lists them; TEST(name) for a codec the tests use, which tly_codec_parse()
 * knows but tly_codec_names() does not list (no Zarr reader has it). */
#define CODECS(X, TEST)                                                                                                \
    X(none)                                                                                                            \
    X(blosc)                                                                                                           \
    X(zstd)                                                                                                            \
    X(gzip)                                                                                                            \
    X(zlib)                                                                                                            \
    TEST(copy)                                                                                                         \
    /* (the list ends here: a codec added above is a line of its own) */

#define DECLARE(name) extern const struct tly__codec_ops tly__codec_##name;
CODECS(DECLARE, DECLARE)
#define ENTRY(name) &tly__codec_##name,
static const struct tly__codec_ops *const codecs[] = {CODECS(ENTRY, ENTRY)};
#define NCODECS ((int)(sizeof codecs / sizeof codecs[0]))

const struct tly__codec_ops *tly__codec_by_id(enum tly_codec_id id)
{
    for (int i = 0; i < NCODECS; i++)
        if (codecs[i]->id == id)
            return codecs[i];
    return NULL;
}

const struct tly__codec_ops *tly__codec_by_name(const char *name, size_t len)
{
    for (int i = 0; i < NCODECS; i++)
        if (strlen(codecs[i]->name) == len && strncmp(name, codecs[i]->name, len) == 0)
            return codecs[i];
    return NULL;
}

const char *const *tly_codec_names(void)
{
    /* a codec's name is its table's suffix (test_codec_table checks the two agree) */
#define NAME(name) #name,
#define UNLISTED(name)
    static const char *const names[] = {CODECS(NAME, UNLISTED) NULL};
    return names;
}

static int bad_id(const struct tly_codec *c)
{
    return tly_fail(TLY_EUSAGE, "codec: unknown codec id %d", (int)c->id);
}

static const struct tly__codec_ops *ops_of(const struct tly_codec *c)
{
    return c ? tly__codec_by_id(c->id) : NULL;
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
    const struct tly__codec_ops *ops = tly__codec_by_id(id);
    return ops ? ops->name : "?";
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
    const struct tly__codec_ops *ops = ops_of(c);
    if (ops && ops->set)
        return ops->set(c, key, val);
    return tly_fail(TLY_EUSAGE, "%s: takes no options (got '%s')", tly_codec_name(c->id), key);
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

/* "none, blosc, zstd, gzip, zlib", for the message that names them. */
static void list_names(char *buf, size_t cap)
{
    size_t at = 0;
    buf[0] = '\0';
    for (const char *const *n = tly_codec_names(); *n && at < cap; n++)
        at += (size_t)snprintf(buf + at, cap - at, "%s%s", at ? ", " : "", *n);
}

int tly_codec_parse(const char *spec, struct tly_codec *out)
{
    if (spec == NULL)
        return tly_fail(TLY_EUSAGE, "codec: no codec spec given");
    const char *colon = strchr(spec, ':');
    size_t len = colon ? (size_t)(colon - spec) : strlen(spec);
    const struct tly__codec_ops *ops = tly__codec_by_name(spec, len);
    if (ops == NULL) {
        char names[256];
        list_names(names, sizeof names);
        return tly_fail(TLY_EUSAGE, "codec '%.*s' is unknown (%s)", (int)len, spec, names);
    }
    struct tly_codec c;
    tly_codec_defaults(&c, ops->id);
    int rc = colon ? parse_options(&c, colon + 1) : 0;
    if (rc == 0)
        *out = c; /* @p out is left as it was on an error */
    return rc;
}

size_t tly_codec_bound(const struct tly_codec *c, size_t n)
{
    const struct tly__codec_ops *ops = ops_of(c);
    return ops ? ops->bound(c, n) : SIZE_MAX;
}

int tly_codec_threads(const struct tly_codec *c, size_t n, bool decode)
{
    const struct tly__codec_ops *ops = ops_of(c);
    int t = ops && ops->threads ? ops->threads(c, n, decode) : 1;
    return t > 1 ? t : 1;
}

size_t tly_codec_workspace(const struct tly_codec *c, size_t n, bool decode, bool windowed)
{
    const struct tly__codec_ops *ops = ops_of(c);
    if (ops == NULL || ops->workspace == NULL)
        return 0;
    size_t asked = ops->workspace(c, n, decode, windowed);
    /* the libraries' estimates are requested bytes; jemalloc's size classes round each block up by
     * at most a quarter, and the budget counts what is really taken */
    return asked + asked / 4 + 16384;
}

int tly_codec_encode(const struct tly_codec *c, void *dst, size_t cap, const void *src, size_t n, size_t *out_n)
{
    if (c == NULL || out_n == NULL || (n > 0 && src == NULL) || (cap > 0 && dst == NULL))
        return tly_fail(TLY_EUSAGE, "codec: encode: missing codec, buffer or size pointer");
    *out_n = 0;
    const struct tly__codec_ops *ops = ops_of(c);
    if (ops == NULL)
        return bad_id(c);
    int rc = TLY_EINTERNAL; /* set by the stage's body, which always runs once */
    TLY_STAGE(TLY_ENCODE)
    {
        rc = ops->encode(c, dst, cap, src, n, out_n);
    }
    return rc;
}

int tly_codec_decode(const struct tly_codec *c, void *dst, size_t dst_n, const void *src, size_t n)
{
    if (c == NULL || (n > 0 && src == NULL) || (dst_n > 0 && dst == NULL))
        return tly_fail(TLY_EUSAGE, "codec: decode: missing codec or buffer");
    const struct tly__codec_ops *ops = ops_of(c);
    if (ops == NULL)
        return bad_id(c);
    int rc = TLY_EINTERNAL; /* set by the stage's body, which always runs once */
    TLY_STAGE(TLY_DECODE)
    {
        rc = ops->decode(c, dst, dst_n, src, n);
    }
    return rc;
}

int tly_codec_decoded_size(const struct tly_codec *c, const void *src, size_t n, uint64_t *out)
{
    if (c == NULL || out == NULL || (n > 0 && src == NULL))
        return tly_fail(TLY_EUSAGE, "codec: decoded size: missing codec, buffer or result pointer");
    const struct tly__codec_ops *ops = ops_of(c);
    if (ops == NULL)
        return bad_id(c);
    if (ops->decoded_size == NULL)
        return tly_fail(TLY_EUNSUPPORTED, "%s: the chunk records no decoded size", ops->name);
    return ops->decoded_size(c, src, n, out);
}

/* ---- capabilities ---- */

bool tly_codec_stores_raw(const struct tly_codec *c)
{
    const struct tly__codec_ops *ops = ops_of(c);
    return ops && ops->raw;
}

bool tly_codec_streams(const struct tly_codec *c)
{
    const struct tly__codec_ops *ops = ops_of(c);
    return ops && ops->encode_stream;
}

size_t tly_codec_stream_block(const struct tly_codec *c, bool decode)
{
    return tly_codec_streams(c) ? ops_of(c)->stream_block(decode) : 0;
}

bool tly_codec_has_blocks(const struct tly_codec *c)
{
    return tly__codec_blocks(c) != NULL;
}

const struct tly__block_ops *tly__codec_blocks(const struct tly_codec *c)
{
    const struct tly__codec_ops *ops = ops_of(c);
    return ops ? ops->blocks : NULL;
}

/* ---- streaming ---- */

static const struct tly__codec_ops *streaming(const struct tly_codec *c, const char *what)
{
    const struct tly__codec_ops *ops = ops_of(c);
    if (ops && ops->encode_stream)
        return ops;
    tly_fail(TLY_EUSAGE, "%s: stream %s needs a codec that streams", ops ? ops->name : "codec", what);
    return NULL;
}

int tly_codec_encode_stream(const struct tly_codec *c, const struct iovec *iov, int niov, uint64_t total, void *out,
                            size_t out_cap, tly_sink_fn sink, void *arg)
{
    const struct tly__codec_ops *ops = streaming(c, "encoding");
    return ops ? ops->encode_stream(c, iov, niov, total, out, out_cap, sink, arg) : TLY_EUSAGE;
}

int tly_dstream_open(const struct tly_codec *c, void *dst, size_t dst_n, tly_sink_fn sink, void *arg, void *out,
                     size_t out_cap, struct tly_dstream **out_ds)
{
    const struct tly__codec_ops *ops = streaming(c, "decoding");
    if (ops == NULL)
        return TLY_EUSAGE;
    int rc = ops->dstream_open(c, dst, dst_n, sink, arg, out, out_cap, out_ds);
    if (rc == 0)
        (*out_ds)->ops = ops;
    return rc;
}

int tly_dstream_open_placed(const struct tly_codec *c, size_t dst_n, tly_place_fn place, void *arg, void *scratch,
                            size_t scratch_cap, struct tly_dstream **out_ds)
{
    const struct tly__codec_ops *ops = streaming(c, "decoding");
    if (ops == NULL)
        return TLY_EUSAGE;
    if (ops->dstream_open_placed == NULL)
        return TLY_EUNSUPPORTED; /* no message: the caller takes a sink instead */
    int rc = ops->dstream_open_placed(c, dst_n, place, arg, scratch, scratch_cap, out_ds);
    if (rc == 0)
        (*out_ds)->ops = ops;
    return rc;
}

int tly_dstream_feed(struct tly_dstream *ds, const void *in, size_t n)
{
    return ds->ops->dstream_feed(ds, in, n);
}

int tly_dstream_close(struct tly_dstream *ds)
{
    return ds ? ds->ops->dstream_close(ds) : 0;
}

void tly_dstream_abort(struct tly_dstream *ds)
{
    if (ds)
        ds->ops->dstream_abort(ds);
}
