/*
 * Internal to src/codec: what zstd.c shares with its streaming halves, zstd_stream.c (encode) and
 * zstd_dstream.c (decode).
 */
#ifndef TLY__CODEC_ZSTD_H
#define TLY__CODEC_ZSTD_H

#include <stddef.h>

/* For ZSTD_c_stableInBuffer and ZSTD_d_stableOutBuffer (experimental in 1.5, plain parameter
 * values; Debian ships them). */
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>

#include "tally/codec.h"

/** The failure of libzstd's call @p what, with its reason: TLY_ECODEC ("zstd: WHAT: REASON"). */
int tly__zstd_err(const char *what, size_t r);

/** A compression context with @p c's settings (its level, checksum, workers) for @p n bytes. */
int tly__zstd_cctx(const struct tly_codec *c, size_t n, ZSTD_CCtx **out);

/** libzstd's workers for @p threads threads on @p n bytes (0: none, the calling thread compresses). */
int tly__zstd_workers(int threads, size_t n);

/** The frame's header into @p out: 1 when @p n bytes are too few, 0 when read, or the error. */
int tly__zstd_frame_header(const void *src, size_t n, ZSTD_frameHeader *out);

#endif
