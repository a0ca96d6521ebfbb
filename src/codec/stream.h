/*
 * Internal to src/codec (and its tests): zstd's and zlib's streaming calls, the streaming entries of
 * their tables (codec/ops.h). Outside src/codec they are reached through tly_codec_encode_stream()
 * and struct tly_dstream (tally/codec.h).
 */
#ifndef TLY__CODEC_STREAM_H
#define TLY__CODEC_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "tally/codec.h"

/**
 * zstd only: compress the concatenation of @p niov pieces whose total is @p total bytes (one piece
 * is read in place; several are gathered by libzstd into its window, counted: zstd_stream.c),
 * passing output to @p sink in blocks of at most @p out_cap bytes from @p out (a buffer the caller
 * owns, ideally ZSTD_CStreamOutSize()): a block each time the buffer has less room than libzstd
 * needs to compress a block straight into it, and what is left at the end. The frame records @p total as its content
 * size. Compression runs in stage encode; @p sink runs in the caller's stage (it does the caller's work, e.g. a put).
 * Returns 0, TLY_EUSAGE when the pieces do not add up to @p total (checked before any output), TLY_ECODEC, or the
 * sink's (negative) error.
 */
int tly_zstd_encode_stream(const struct tly_codec *c, const struct iovec *iov, int niov, uint64_t total, void *out,
                           size_t out_cap, tly_sink_fn sink, void *arg);

/**
 * A zstd frame decoded as its bytes arrive (pushed: from file blocks, or from an HTTP body as it
 * lands), so the encoded chunk is never held whole. Output goes either straight into one
 * contiguous destination (no window buffer: zstd writes there directly), in blocks of at most
 * out_cap bytes through a sink, or copied by libzstd straight into the places a place function names
 * (tly_zstd_dstream_open_placed: a chunk that lies strided in the output).
 */
struct tly_zstd_dstream;

/**
 * Start decoding a frame of exactly @p dst_n decoded bytes. Give either @p dst (contiguous
 * destination) or @p sink with @p out / @p out_cap (a buffer the caller owns, ideally
 * ZSTD_DStreamOutSize()). Returns 0 and sets @p out_ds, or an error. Runs in stage decode.
 */
int tly_zstd_dstream_open(const struct tly_codec *c, void *dst, size_t dst_n, tly_sink_fn sink, void *arg, void *out,
                          size_t out_cap, struct tly_zstd_dstream **out_ds);

/** As tly_zstd_dstream_open, its output copied by libzstd straight into the places @p place names
 *  (tly_dstream_open_placed). */
int tly_zstd_dstream_open_placed(const struct tly_codec *c, size_t dst_n, tly_place_fn place, void *arg, void *scratch,
                                 size_t scratch_cap, struct tly_zstd_dstream **out_ds);

/** Feed the next @p n encoded bytes. TLY_ECODEC when they are not the frame expected. */
int tly_zstd_dstream_feed(struct tly_zstd_dstream *ds, const void *in, size_t n);

/**
 * Finish: 0 when exactly one whole frame of dst_n bytes was decoded, else TLY_ECODEC ("truncated",
 * "trailing bytes", "content size ..."). Frees @p ds (NULL is fine) either way.
 */
int tly_zstd_dstream_close(struct tly_zstd_dstream *ds);

/**
 * Free @p ds (NULL is fine) without a verdict, after a feed (or the reading that fed it) failed: the
 * thread's error message keeps that failure's reason instead of close()'s "truncated".
 */
void tly_zstd_dstream_abort(struct tly_zstd_dstream *ds);

/**
 * The output block gzip and zlib stream through (tly_gzip_encode_stream's @p out, a windowed
 * tly_gzip_dstream's @p out): as ZSTD_CStreamOutSize() is zstd's, about one deflate block's worth.
 */
#define TLY_GZIP_STREAM_BLOCK ((size_t)128 << 10)

/**
 * gzip or zlib (by @p c->id, TLY_CODEC_GZIP or TLY_CODEC_ZLIB), as tly_zstd_encode_stream: deflate
 * the concatenation of @p niov pieces (read in place) whose total is @p total bytes, passing output
 * to @p sink in blocks of at most @p out_cap bytes from @p out (ideally TLY_GZIP_STREAM_BLOCK). One
 * gzip member (zlib's default header: no name, mtime 0) or one zlib stream. Deflate runs in stage
 * encode, @p sink in the caller's stage. Returns 0, TLY_EUSAGE (settings, or pieces that do not add
 * up to @p total: checked before any output), TLY_ECODEC, or the sink's (negative) error.
 */
int tly_gzip_encode_stream(const struct tly_codec *c, const struct iovec *iov, int niov, uint64_t total, void *out,
                           size_t out_cap, tly_sink_fn sink, void *arg);

/**
 * A gzip or zlib stream inflated as its bytes arrive, as tly_zstd_dstream: straight into one
 * contiguous destination (zlib writes there directly; it keeps only its 32 KiB window), or in
 * blocks of at most out_cap bytes through a sink. gzip: any valid header (name, comment, extra
 * field, header CRC) and members one after another (as Python's gzip module, and so numcodecs,
 * reads them); zlib: one stream, no preset dictionary.
 */
struct tly_gzip_dstream;

/**
 * Start inflating a stream of exactly @p dst_n decoded bytes: @p dst (contiguous destination), or
 * @p sink with @p out / @p out_cap (a buffer the caller owns). Returns 0 and sets @p out_ds, or an
 * error. Runs in stage decode.
 */
int tly_gzip_dstream_open(const struct tly_codec *c, void *dst, size_t dst_n, tly_sink_fn sink, void *arg, void *out,
                          size_t out_cap, struct tly_gzip_dstream **out_ds);

/** Feed the next @p n encoded bytes. TLY_ECODEC ("gzip: corrupt stream (...)", "... more than the N
 *  bytes expected", "zlib: trailing bytes after the stream") when they are not the stream expected. */
int tly_gzip_dstream_feed(struct tly_gzip_dstream *ds, const void *in, size_t n);

/**
 * Finish: 0 when whole streams (members) of dst_n bytes in all were decoded, else TLY_ECODEC
 * ("truncated", "decoded to N bytes, expected M"). Frees @p ds (NULL is fine) either way.
 */
int tly_gzip_dstream_close(struct tly_gzip_dstream *ds);

/** Free @p ds (NULL is fine) without a verdict, keeping the failure's message (as tly_zstd_dstream_abort). */
void tly_gzip_dstream_abort(struct tly_gzip_dstream *ds);

#endif
