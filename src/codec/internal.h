/*
 * Internal to src/codec: what the registry (registry.c) calls in each codec file. The registry sets
 * the stage (encode or decode) and checks the arguments every codec shares; these functions do the
 * codec's own work and report failures through tly_fail() with the codec's name first.
 */
#ifndef TLY__CODEC_INTERNAL_H
#define TLY__CODEC_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tally/codec.h"

/**
 * Parse @p val as a whole decimal integer in [@p lo, @p hi] into @p out. Returns 0, or TLY_EUSAGE
 * with "<codec>: <key> '<val>' ..." as the message.
 */
int tly__codec_int(const char *codec, const char *key, const char *val, long long lo, long long hi, long long *out);

/**
 * The arguments every streaming encoder shares (tly_zstd_encode_stream, tly_gzip_encode_stream): pieces,
 * an output buffer and a sink, and pieces that add up to @p total. 0, or TLY_EUSAGE "<codec>: ...".
 */
int tly__stream_args(const char *codec, const struct iovec *iov, int niov, uint64_t total, const void *out,
                     size_t out_cap, tly_sink_fn sink);

/** TLY_CODEC_NONE: the bound is @p n itself. */
size_t tly__none_bound(size_t n);

/** Copy @p n bytes through the ledger; TLY_EUSAGE when @p cap < @p n. */
int tly__none_encode(void *dst, size_t cap, const void *src, size_t n, size_t *out_n);

/** Copy @p n bytes through the ledger; TLY_ECODEC when @p n != @p dst_n. */
int tly__none_decode(void *dst, size_t dst_n, const void *src, size_t n);

/** @p n plus the blosc header; SIZE_MAX when that does not fit in a size_t. */
size_t tly__blosc_bound(size_t n);

/** See tly_codec_workspace(). */
size_t tly__blosc_workspace(const struct tly_codec *c, size_t n, bool decode);

/** 0 when @p c's blosc settings are valid, else TLY_EUSAGE naming the bad one. */
int tly__blosc_check(const struct tly_codec *c);

/** Set the blosc option @p key ("cname", "clevel", "shuffle", "blocksize") from @p val. */
int tly__blosc_set(struct tly_codec *c, const char *key, const char *val);

/** Compress into one c-blosc 1.x frame with blosc_compress_ctx (one internal thread). */
int tly__blosc_encode(const struct tly_codec *c, void *dst, size_t cap, const void *src, size_t n, size_t *out_n);

/** Validate the frame's header against @p n and @p dst_n, then decompress with blosc_decompress_ctx. */
int tly__blosc_decode(int threads, void *dst, size_t dst_n, const void *src, size_t n);

/** nbytes from a validated frame header. */
int tly__blosc_decoded_size(const void *src, size_t n, uint64_t *out);

/** ZSTD_compressBound(@p n); SIZE_MAX when @p n is too large for zstd. */
size_t tly__zstd_bound(size_t n);

/** See tly_codec_workspace(). */
size_t tly__zstd_workspace(const struct tly_codec *c, size_t n, bool decode, bool windowed);

/** 0 when @p c's zstd settings are valid, else TLY_EUSAGE naming the bad one. */
int tly__zstd_check(const struct tly_codec *c);

/** Set the zstd option @p key ("level", "checksum") from @p val. */
int tly__zstd_set(struct tly_codec *c, const char *key, const char *val);

/** One frame that records its content size, compressed in a single call. */
int tly__zstd_encode(const struct tly_codec *c, void *dst, size_t cap, const void *src, size_t n, size_t *out_n);

/** Check the frame's content size against @p dst_n, decompress, check the size produced. */
int tly__zstd_decode(void *dst, size_t dst_n, const void *src, size_t n);

/** The frame's content size; TLY_EUNSUPPORTED when the frame does not record it. */
int tly__zstd_decoded_size(const void *src, size_t n, uint64_t *out);

/** gzip (TLY_CODEC_GZIP) and zlib (TLY_CODEC_ZLIB), by @p c->id: compressBound(@p n), 12 bytes more
 *  for gzip's wrapper; SIZE_MAX when @p n is too large. */
size_t tly__gzip_bound(const struct tly_codec *c, size_t n);

/** See tly_codec_workspace(). */
size_t tly__gzip_workspace(const struct tly_codec *c, size_t n, bool decode);

/** 0 when @p c's level is valid, else TLY_EUSAGE. */
int tly__gzip_check(const struct tly_codec *c);

/** Set the gzip/zlib option @p key ("level") from @p val. */
int tly__gzip_set(struct tly_codec *c, const char *key, const char *val);

/** One stream (gzip: one member), deflated in a single pass into @p dst. */
int tly__gzip_encode(const struct tly_codec *c, void *dst, size_t cap, const void *src, size_t n, size_t *out_n);

/** Inflate into @p dst: exactly @p dst_n bytes, and nothing after the stream (gzip: its members). */
int tly__gzip_decode(const struct tly_codec *c, void *dst, size_t dst_n, const void *src, size_t n);

/** TLY_EUNSUPPORTED, saying why: neither format records the decoded size in full at its start. */
int tly__gzip_decoded_size(const struct tly_codec *c);

/* A blosc header's little-endian 32-bit fields (blosc_frame.c, blosc_write.c). */
static inline uint32_t tly__le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void tly__put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

#endif
