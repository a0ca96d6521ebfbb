/**
 * tally/codec.h — chunk codecs (none, blosc, zstd, gzip, zlib) that encode and decode into buffers
 * the caller owns, with bounds from the codec (as zstd's ZSTD_compressBound + dst/dstCapacity).
 *
 * Encoding runs in stage encode, decoding in stage decode: the codec functions set the stage
 * themselves, so the libraries' own allocations land there. All functions are thread-safe (blosc
 * through its _ctx calls, zstd and zlib with a context per call or per caller).
 */
#ifndef TALLY_CODEC_H
#define TALLY_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

/** GZIP: the gzip format (numcodecs GZip, Zarr v3 "gzip"); ZLIB: the zlib format (numcodecs Zlib, v2 only). */
enum tly_codec_id { TLY_CODEC_NONE, TLY_CODEC_BLOSC, TLY_CODEC_ZSTD, TLY_CODEC_GZIP, TLY_CODEC_ZLIB };

/** Blosc shuffle modes, as numcodecs numbers them. */
enum { TLY_NOSHUFFLE = 0, TLY_SHUFFLE = 1, TLY_BITSHUFFLE = 2 };

/** A codec and its settings. Defaults (tly_codec_defaults) follow numcodecs. */
struct tly_codec {
    enum tly_codec_id id;
    struct {
        char cname[16];   /**< "lz4" (default), "lz4hc", "blosclz", "zstd", "zlib", "snappy" */
        int clevel;       /**< 0..9, default 5 */
        int shuffle;      /**< TLY_NOSHUFFLE, TLY_SHUFFLE (default), TLY_BITSHUFFLE */
        size_t blocksize; /**< 0 = automatic (default) */
        int typesize;     /**< element size, for shuffle (set from the dtype) */
    } blosc;
    struct {
        int level;    /**< -131072..22, default 3 */
        int checksum; /**< write a content checksum (v3 option), default 0 */
    } zstd;
    struct {
        int level; /**< 0..9 (gzip and zlib), default 1 as numcodecs; -1: zlib's default (6) */
    } gzip;
    /** Not metadata: threads a codec call may run inside one chunk. Decode: blosc splits the chunk's
     *  blocks among them (a zstd frame decodes on one thread). Encode: zstd's workers (the same
     *  frame for any count from one on, not the one-thread frame); blosc's threads (its blocks then
     *  lie in the order they finished: valid, not the same bytes twice). 0 or 1: the calling thread
     *  alone. The engine lends a chunk the threads that have no chunk of their own. */
    int threads;
};

/** Reset @p c to codec @p id with its defaults (typesize 1). */
void tly_codec_defaults(struct tly_codec *c, enum tly_codec_id id);

/** "none", "blosc", "zstd", "gzip" or "zlib". */
const char *tly_codec_name(enum tly_codec_id id);

/**
 * Parse a command-line codec spec: "none", "blosc", "blosc:cname=lz4,clevel=5,shuffle=1,blocksize=0",
 * "zstd", "zstd:level=3,checksum=0", "gzip", "gzip:level=5", "zlib:level=5". Unnamed settings keep
 * their defaults; shuffle also takes the Zarr v3 names (noshuffle, shuffle, bitshuffle); typesize is
 * not a key (it comes from the dtype). Returns 0, or TLY_EUSAGE naming the bad key or value (and
 * @p out is left as it was).
 */
int tly_codec_parse(const char *spec, struct tly_codec *out);

/** Most bytes tly_codec_encode() can produce from @p n input bytes; SIZE_MAX when the codec cannot take @p n. */
size_t tly_codec_bound(const struct tly_codec *c, size_t n);

/**
 * Encode @p n bytes at @p src into @p dst (capacity @p cap >= tly_codec_bound(c, n)); the encoded
 * size goes to @p out_n. Returns 0, TLY_EUSAGE for invalid settings (the message names them), or
 * TLY_ECODEC with the library's message (also when the output does not fit in @p cap). For zstd the
 * frame carries its content size (numcodecs 0.11 needs it); gzip writes one member with zlib's
 * default header. TLY_CODEC_NONE copies through the ledger.
 */
int tly_codec_encode(const struct tly_codec *c, void *dst, size_t cap, const void *src, size_t n, size_t *out_n);

/**
 * Decode @p n encoded bytes at @p src into @p dst, which must receive exactly @p dst_n bytes.
 * Returns 0, or TLY_ECODEC when the input is corrupt, truncated, followed by other bytes, or decodes
 * to another size (the message says which: "zstd: frame content size 100 != expected 400", "blosc:
 * header corrupt", "gzip: stream truncated", ...).
 */
int tly_codec_decode(const struct tly_codec *c, void *dst, size_t dst_n, const void *src, size_t n);

/**
 * The decoded size recorded in an encoded chunk's header, when the format has one (zstd frame
 * content size, blosc nbytes). Returns 0 and sets @p out, TLY_ECODEC when the header is corrupt,
 * TLY_EUNSUPPORTED when the chunk records none (codec none; a zstd frame written without it; zlib;
 * gzip, whose ISIZE trailer is the size mod 2^32 and sits at the end of the last member).
 */
int tly_codec_decoded_size(const struct tly_codec *c, const void *src, size_t n, uint64_t *out);

/**
 * The bytes the codec's library allocates for itself (contexts, its own buffers) to encode, or to
 * decode, one chunk of @p n bytes: what a memory budget must count beside the chunk's buffers.
 * zstd: the context for the level and size (encode), plus its window buffer when @p windowed (runs
 * that are not one, which libzstd gathers there; one run is read in place); the decoder context,
 * plus its window when @p windowed (a chunk decoded through a window rather than straight into the
 * output: frames with windows up to 8 MiB, which levels up to 19 write). blosc: its per-call temporaries.
 * gzip and zlib: deflate's state and buffers (encode), inflate's state and 32 KiB window (decode).
 * none: 0. In allocated bytes: the estimates plus jemalloc's size-class rounding.
 */
size_t tly_codec_workspace(const struct tly_codec *c, size_t n, bool decode, bool windowed);

/**
 * The threads one encode (or decode, @p decode) of a chunk of @p n bytes runs on, of @p c->threads:
 * blosc all of them (its blocks); zstd its workers to encode (none for a chunk of one job, or a
 * libzstd without them) and one to decode (a frame decodes on one thread: the format's limit);
 * gzip, zlib and none one.
 */
int tly_codec_threads(const struct tly_codec *c, size_t n, bool decode);

/** Where streaming encode sends each block of output as it is produced; returns 0 or an error. */
typedef int (*tly_sink_fn)(void *arg, const void *data, size_t n);

/* ---- what a codec can do (the engine chooses its path by these, never by the codec's id) ---- */

/** True when @p c's chunks are stored as they are (none): read and written in place, no codec call. */
bool tly_codec_stores_raw(const struct tly_codec *c);

/** True when @p c encodes from pieces read in place and decodes as its bytes arrive
 *  (tly_codec_encode_stream, tly_dstream_open): zstd, gzip, zlib. */
bool tly_codec_streams(const struct tly_codec *c);

/**
 * The output block @p c streams through: of a streaming encode (@p decode false: zstd's
 * ZSTD_CStreamOutSize(), deflate's 128 KiB), or the window of a streamed decode that goes through a
 * sink (ZSTD_DStreamOutSize(), 128 KiB). 0 when @p c does not stream.
 */
size_t tly_codec_stream_block(const struct tly_codec *c, bool decode);

/** True when @p c's chunks are frames of blocks that the engine reads and writes block by block
 *  (blosc; the plan itself is made once per array, for the chunk size). */
bool tly_codec_has_blocks(const struct tly_codec *c);

/**
 * For a codec that streams: encode the concatenation of @p niov pieces (read in place: no gather)
 * whose total is @p total bytes, passing output to @p sink in blocks of at most @p out_cap bytes from
 * @p out (a buffer the caller owns, ideally tly_codec_stream_block(c, false) bytes): a full buffer
 * each time it fills, and what is left at the end. zstd's frame records @p total as its content size;
 * gzip writes one member (zlib's default header), zlib one stream. Encoding runs in stage encode;
 * @p sink runs in the caller's stage (it does the caller's work, e.g. a put). Returns 0, TLY_EUSAGE
 * when the codec does not stream or the pieces do not add up to @p total (checked before any output),
 * TLY_ECODEC, or the sink's (negative) error.
 */
int tly_codec_encode_stream(const struct tly_codec *c, const struct iovec *iov, int niov, uint64_t total, void *out,
                            size_t out_cap, tly_sink_fn sink, void *arg);

/**
 * A chunk decoded as its bytes arrive (pushed: from file blocks, or from an HTTP body as it lands),
 * so that the encoded chunk is never held whole: straight into one contiguous destination (no
 * window buffer), or in blocks of at most out_cap bytes through a sink (for a chunk that lies
 * strided in the output). One type for every codec that streams.
 */
struct tly_dstream;

/**
 * Start decoding a chunk of exactly @p dst_n decoded bytes with @p c (a codec that streams). Give
 * either @p dst (contiguous destination) or @p sink with @p out / @p out_cap (a buffer the caller
 * owns, ideally tly_codec_stream_block(c, true) bytes). Returns 0 and sets @p out_ds, TLY_EUSAGE when
 * the codec does not stream, or another error. Runs in stage decode.
 */
int tly_dstream_open(const struct tly_codec *c, void *dst, size_t dst_n, tly_sink_fn sink, void *arg, void *out,
                     size_t out_cap, struct tly_dstream **out_ds);

/**
 * Where a placed decoder (tly_dstream_open_placed) puts the chunk's decoded bytes from offset @p pos
 * on: up to @p *len of them at @p *dst, or, with @p *dst NULL, @p *len bytes nobody wants (into the
 * decoder's scratch). Asked again only once that place is full. Returns 0 or a negative error.
 */
typedef int (*tly_place_fn)(void *arg, uint64_t pos, void **dst, size_t *len);

/**
 * As tly_dstream_open with a sink, for a chunk strided in the output, but the decoder copies its
 * output straight into the places @p place names, and that copy is counted in stage scatter: one
 * copy where a sink takes two (the codec's own copy out of its window into a block, then the
 * sink's scatter). @p scratch (@p scratch_cap bytes) takes the bytes no place wants (that copy is
 * counted in stage decode: the decoder cannot skip them). TLY_EUNSUPPORTED,
 * with no message, when the codec cannot (take a sink then).
 */
int tly_dstream_open_placed(const struct tly_codec *c, size_t dst_n, tly_place_fn place, void *arg, void *scratch,
                            size_t scratch_cap, struct tly_dstream **out_ds);

/** Feed the next @p n encoded bytes. TLY_ECODEC when they are not the chunk expected. */
int tly_dstream_feed(struct tly_dstream *ds, const void *in, size_t n);

/** Finish: 0 when exactly one whole chunk of dst_n bytes was decoded, else TLY_ECODEC ("truncated",
 *  "trailing bytes", ...). Frees @p ds (NULL is fine) either way. */
int tly_dstream_close(struct tly_dstream *ds);

/** Free @p ds (NULL is fine) without a verdict, after a feed (or the reading that fed it) failed: the
 *  thread's error message keeps that failure's reason instead of close()'s "truncated". */
void tly_dstream_abort(struct tly_dstream *ds);

/**
 * The names of the codecs tly_codec_parse() knows, in registry order, NULL-terminated: the one list
 * the harness, its adapters and reports take codec names from.
 */
const char *const *tly_codec_names(void);

/**
 * CRC-32C (Castagnoli), as Zarr v3's crc32c codec stores it: @p crc is the value so far (0 to
 * start), so that tly_crc32c(tly_crc32c(0, a, n), b, m) is the CRC of a then b. tly_crc32c(0,
 * "123456789", 9) == 0xE3069283.
 */
uint32_t tly_crc32c(uint32_t crc, const void *data, size_t n);

#ifdef __cplusplus
}
#endif

#endif
