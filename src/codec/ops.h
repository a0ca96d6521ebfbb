/*
 * Internal to libtally: a codec is one table, as a store is one tly_store_ops. Each codec file
 * exports its table (none.c, blosc.c, zstd.c, gzip.c: gzip and zlib); registry.c lists them and
 * finds one by name or id. The registry sets the stage and checks the arguments every codec shares
 * before it calls an entry; an entry does the codec's own work and reports failures through
 * tly_fail() with the codec's name first.
 *
 * Adding a codec: a file that defines its table, and its line in registry.c's list. The engine asks
 * the table what the codec can do (tly_codec_streams, tly_codec_stores_raw, tly__codec_blocks),
 * never which codec it is.
 */
#ifndef TLY__CODEC_OPS_H
#define TLY__CODEC_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tally/codec.h"

struct tly__block_ops;

struct tly__codec_ops {
    const char *name;     /**< the spec's and the reports' name: "zstd" */
    enum tly_codec_id id; /**< its id in struct tly_codec (a test codec may take any unused value) */
    /** The chunk is stored as it is (none): the engine reads and writes its bytes in place, and
     *  encode/decode are a copy through the ledger. */
    bool raw;

    /** Set option @p key from @p val (the spec's "k=v"); NULL: the codec takes no options. */
    int (*set)(struct tly_codec *c, const char *key, const char *val);
    /** tly_codec_bound(). */
    size_t (*bound)(const struct tly_codec *c, size_t n);
    /** tly_codec_workspace(), before the registry's allowance for jemalloc's size classes; NULL: 0. */
    size_t (*workspace)(const struct tly_codec *c, size_t n, bool decode, bool windowed);
    /** tly_codec_encode(), in stage encode. */
    int (*encode)(const struct tly_codec *c, void *dst, size_t cap, const void *src, size_t n, size_t *out_n);
    /** tly_codec_decode(), in stage decode. */
    int (*decode)(const struct tly_codec *c, void *dst, size_t dst_n, const void *src, size_t n);
    /** tly_codec_decoded_size(); NULL: TLY_EUNSUPPORTED. */
    int (*decoded_size)(const struct tly_codec *c, const void *src, size_t n, uint64_t *out);
    /** tly_codec_threads(); NULL: one. */
    int (*threads)(const struct tly_codec *c, size_t n, bool decode);

    /* ---- optional: streaming (all NULL, or all set) ---- */

    /** The output block of a streaming encode (@p decode false) or of a streamed decode's window. */
    size_t (*stream_block)(bool decode);
    /** tly_codec_encode_stream(). */
    int (*encode_stream)(const struct tly_codec *c, const struct iovec *iov, int niov, uint64_t total, void *out,
                         size_t out_cap, tly_sink_fn sink, void *arg);
    /** tly_dstream_open(): the decoder's state begins with a struct tly_dstream (the registry sets its ops). */
    int (*dstream_open)(const struct tly_codec *c, void *dst, size_t dst_n, tly_sink_fn sink, void *arg, void *out,
                        size_t out_cap, struct tly_dstream **out_ds);
    /** tly_dstream_open_placed(); NULL: TLY_EUNSUPPORTED (a sink then). */
    int (*dstream_open_placed)(const struct tly_codec *c, size_t dst_n, tly_place_fn place, void *arg, void *scratch,
                               size_t scratch_cap, struct tly_dstream **out_ds);
    int (*dstream_feed)(struct tly_dstream *ds, const void *in, size_t n);
    int (*dstream_close)(struct tly_dstream *ds);
    void (*dstream_abort)(struct tly_dstream *ds);

    /* ---- optional: frames read and written block by block (codec/blocks.h) ---- */
    const struct tly__block_ops *blocks;
};

/** The head of every streaming decoder's state: which codec's entries feed and close it. */
struct tly_dstream {
    const struct tly__codec_ops *ops;
};

/** The table of codec @p id; NULL when no codec has it. */
const struct tly__codec_ops *tly__codec_by_id(enum tly_codec_id id);

/** The table of the codec named by the first @p len bytes of @p name; NULL when none is. */
const struct tly__codec_ops *tly__codec_by_name(const char *name, size_t len);

/**
 * Parse @p val as a whole decimal integer in [@p lo, @p hi] into @p out. Returns 0, or TLY_EUSAGE
 * with "<codec>: <key> '<val>' ..." as the message.
 */
int tly__codec_int(const char *codec, const char *key, const char *val, long long lo, long long hi, long long *out);

/**
 * The arguments every streaming encoder shares: pieces, an output buffer and a sink, and pieces that
 * add up to @p total. 0, or TLY_EUSAGE "<codec>: ...".
 */
int tly__stream_args(const char *codec, const struct iovec *iov, int niov, uint64_t total, const void *out,
                     size_t out_cap, tly_sink_fn sink);

#endif
