/**
 * tally/meta.h — Zarr v2 (.zarray) and v3 (zarr.json) array metadata: parse, emit, chunk keys.
 *
 * What tally reads and writes: fixed-size numeric dtypes, C order, regular chunk grids, codecs
 * none/blosc/zstd/gzip/zlib (v2: "compressor", by numcodecs' ids; v3: "bytes" + optional
 * "blosc"/"zstd"), fill values (numbers, NaN/Infinity/-Infinity, null, v3 hex strings), v2
 * dimension_separator "." and "/", v3 chunk key encodings "default" and "v2", v3 sharding_indexed
 * (struct tly_shard) with crc32c. Anything else — filters, nested sharding, F order, object/string/structured dtypes,
 * unknown codecs, variable chunk grids — is refused with TLY_EUNSUPPORTED and a message naming the feature. Malformed
 * JSON or missing fields: TLY_EFORMAT naming the field.
 */
#ifndef TALLY_META_H
#define TALLY_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tally/plan.h"
#include "tally/codec.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Zarr v3 sharding (the sharding_indexed codec, v1.0): each chunk of the grid (meta.chunks, the
 * shard shape) is one stored object holding inner chunks of shape `inner` (which divides it), each
 * encoded with the array's codec (meta.codec, then crc32c when inner_crc), and an index of
 * (offset, nbytes) little-endian uint64 pairs, one per inner chunk in C order, 2^64-1 twice for an
 * inner chunk not stored (all fill value); the index is followed by its CRC-32C when index_crc.
 */
struct tly_shard {
    bool on;                      /**< the array is sharded */
    uint64_t inner[TLY_MAX_RANK]; /**< inner chunk shape */
    bool index_start;             /**< index_location "start" (default "end") */
    bool index_crc;               /**< index_codecs [bytes, crc32c] (the default); false: [bytes] */
};

/** An array's metadata, in either format. */
struct tly_meta {
    int zarr_format;        /**< 2 or 3 */
    struct tly_dtype dtype; /**< v3: endian from the bytes codec ('<' when absent, size 1: '|') */
    int rank;
    uint64_t shape[TLY_MAX_RANK];
    uint64_t chunks[TLY_MAX_RANK];
    struct tly_codec codec; /**< blosc.typesize is set from the dtype */
    bool has_fill;          /**< false: fill_value null (reads of missing chunks give zeros) */
    uint8_t fill[8];        /**< the fill value as one element in dtype's byte order */
    char separator;         /**< '.' or '/': v2 dimension_separator, v3 chunk key separator */
    bool v3_default_keys;   /**< v3 "default" key encoding ("c/0/0"); false: "v2" ("0.0") */
    char *attributes_json;  /**< v3: the "attributes" object as JSON text (owned), or NULL */
    bool crc32c;            /**< v3: the codecs end with crc32c (its 4 bytes follow each stored chunk,
                                 or each inner chunk when sharded) */
    struct tly_shard shard; /**< v3 sharding_indexed; shard.on false: not sharded */
};

/** Release what @p m owns (attributes_json); the parsers leave nothing to free when they fail. */
void tly_meta_free(struct tly_meta *m);

/**
 * Parse @p n bytes of v2 .zarray JSON. Returns 0, TLY_EFORMAT or TLY_EUNSUPPORTED (message names
 * the field or feature).
 */
int tly_meta_parse_v2(const char *json, size_t n, struct tly_meta *out);

/** Parse @p n bytes of v3 zarr.json (node_type "array"). As tly_meta_parse_v2. */
int tly_meta_parse_v3(const char *json, size_t n, struct tly_meta *out);

/**
 * Emit @p m as .zarray (v2) or zarr.json (v3) text, pretty-printed, newline-terminated; a
 * malloc'd string the caller frees (it is allocated in the caller's stage, so freeing it there
 * balances the books), or NULL on allocation failure or when @p m cannot be written (bad rank,
 * dtype or separator; attributes_json not a JSON object): tly_errmsg() says which. v3 has no null
 * fill value: without one (has_fill false) the dtype's zero is written, which reads the same.
 */
char *tly_meta_emit(const struct tly_meta *m);

/**
 * The codec's configuration in numcodecs' terms as compact JSON text ({"id":"blosc","cname":"lz4",
 * "clevel":5,"shuffle":1,"blocksize":0}, {"id":"zstd","level":3,"checksum":false},
 * {"id":"gzip","level":1}, {"id":"zlib","level":1}, {"id":"none"}); a malloc'd string, or NULL when
 * out of memory.
 */
char *tly_codec_config_json(const struct tly_codec *c);

/**
 * Check that @p n bytes of @p text are a JSON object (v2 .zattrs: user attributes). Returns 0, or
 * TLY_EFORMAT naming @p doc and where it is malformed (a malformed .zattrs was shown as {}).
 */
int tly_meta_attrs_check(const char *doc, const char *text, size_t n);

/** The metadata document's key: ".zarray" (2) or "zarr.json" (3); NULL for another format. */
const char *tly_meta_key(int zarr_format);

/**
 * The store key of chunk @p idx (grid coordinates), relative to the array: v2 "0.1" or "0/1";
 * v3 default "c/0/1" (or "c.0.1" with separator '.'), v3 "v2" encoding "0.1" / "0/1"; a rank-0
 * array's only chunk is "0" (v2) or "c" (v3). Writes into @p buf of @p cap bytes; returns the length,
 * or -1 when it does not fit.
 */
int tly_meta_chunk_key(const struct tly_meta *m, const uint64_t *idx, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif

#endif
