/*
 * meta: Zarr v3 zarr.json as zarrita 0.7.5 writes it (the texts below are its output), the spec's
 * variants, refusals naming the feature, and emit -> parse round trips.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"
#include "tally/error.h"
#include "tally/meta.h"

TestSuite(meta);

/* zarr.create(loc, {shape: [100, 50], chunkShape: [10, 25], dtype: "float32", codecs: [bytes, zstd]}) */
static const char zarrita_zstd[] = "{\n"
                                   "  \"zarr_format\": 3,\n"
                                   "  \"node_type\": \"array\",\n"
                                   "  \"shape\": [\n    100,\n    50\n  ],\n"
                                   "  \"data_type\": \"float32\",\n"
                                   "  \"chunk_grid\": {\n"
                                   "    \"name\": \"regular\",\n"
                                   "    \"configuration\": {\n      \"chunk_shape\": [\n        10,\n        25\n"
                                   "      ]\n    }\n  },\n"
                                   "  \"chunk_key_encoding\": {\n"
                                   "    \"name\": \"default\",\n"
                                   "    \"configuration\": {\n      \"separator\": \"/\"\n    }\n  },\n"
                                   "  \"codecs\": [\n"
                                   "    {\n      \"name\": \"bytes\",\n"
                                   "      \"configuration\": {\n        \"endian\": \"little\"\n      }\n    },\n"
                                   "    {\n      \"name\": \"zstd\",\n"
                                   "      \"configuration\": {\n        \"level\": 3,\n        \"checksum\": false\n"
                                   "      }\n    }\n  ],\n"
                                   "  \"fill_value\": null,\n"
                                   "  \"attributes\": {}\n"
                                   "}";

/* ... {shape: [7], chunkShape: [4], dtype: "int16", fillValue: -1, codecs: [bytes, blosc], attributes, dimensionNames}
 */
static const char zarrita_blosc[] =
    "{\n  \"zarr_format\": 3,\n  \"node_type\": \"array\",\n  \"shape\": [\n    7\n  ],\n  \"data_type\": \"int16\",\n"
    "  \"chunk_grid\": {\n    \"name\": \"regular\",\n    \"configuration\": {\n      \"chunk_shape\": [\n        4\n"
    "      ]\n    }\n  },\n  \"chunk_key_encoding\": {\n    \"name\": \"default\",\n    \"configuration\": {\n"
    "      \"separator\": \"/\"\n    }\n  },\n  \"codecs\": [\n    {\n      \"name\": \"bytes\",\n"
    "      \"configuration\": {\n        \"endian\": \"little\"\n      }\n    },\n    {\n      \"name\": \"blosc\",\n"
    "      \"configuration\": {\n        \"cname\": \"zstd\",\n        \"clevel\": 5,\n"
    "        \"shuffle\": \"bitshuffle\",\n        \"typesize\": 2,\n        \"blocksize\": 0\n      }\n    }\n  ],\n"
    "  \"fill_value\": -1,\n  \"dimension_names\": [\n    \"x\"\n  ],\n  \"attributes\": {\n    \"units\": \"m\",\n"
    "    \"scale\": [\n      1,\n      2\n    ]\n  }\n}";

/* ... {shape: [3], chunkShape: [3], dtype: "float64", fillValue: NaN, codecs: []} */
static const char zarrita_nan[] =
    "{\n  \"zarr_format\": 3,\n  \"node_type\": \"array\",\n  \"shape\": [\n    3\n  ],\n  \"data_type\": "
    "\"float64\",\n"
    "  \"chunk_grid\": {\n    \"name\": \"regular\",\n    \"configuration\": {\n      \"chunk_shape\": [\n        3\n"
    "      ]\n    }\n  },\n  \"chunk_key_encoding\": {\n    \"name\": \"default\",\n    \"configuration\": {\n"
    "      \"separator\": \"/\"\n    }\n  },\n  \"codecs\": [],\n  \"fill_value\": \"NaN\",\n  \"attributes\": {}\n}";

/* The members of a zarr.json; NULL takes the default (float32 [20] in chunks of [10], bytes + zstd). */
struct v3 {
    const char *node_type, *data_type, *grid, *keys, *codecs, *fill, *extra;
};

static const char *v3_text(struct v3 f)
{
    static char buf[4096];
    snprintf(buf, sizeof buf,
             "{\"zarr_format\": 3, \"node_type\": \"%s\", \"shape\": [20], \"data_type\": \"%s\", \"chunk_grid\": %s, "
             "\"chunk_key_encoding\": %s, \"codecs\": [%s], \"fill_value\": %s%s}",
             f.node_type ? f.node_type : "array", f.data_type ? f.data_type : "float32",
             f.grid ? f.grid : "{\"name\": \"regular\", \"configuration\": {\"chunk_shape\": [10]}}",
             f.keys ? f.keys : "{\"name\": \"default\", \"configuration\": {\"separator\": \"/\"}}",
             f.codecs ? f.codecs
                      : "{\"name\": \"bytes\", \"configuration\": {\"endian\": \"little\"}}, "
                        "{\"name\": \"zstd\", \"configuration\": {\"level\": 3, \"checksum\": false}}",
             f.fill ? f.fill : "0", f.extra ? f.extra : "");
    return buf;
}
#define V3(...) v3_text((struct v3){__VA_ARGS__})
#define BYTES_LE "{\"name\": \"bytes\", \"configuration\": {\"endian\": \"little\"}}"

static struct tly_meta parse(const char *text)
{
    struct tly_meta m;
    int rc = tly_meta_parse_v3(text, strlen(text), &m);
    cr_assert_eq(rc, 0, "parse failed: %s\n%s", tly_errmsg(), text);
    return m;
}

static void refuse(const char *text, int err, const char *needle)
{
    struct tly_meta m;
    int rc = tly_meta_parse_v3(text, strlen(text), &m);
    cr_expect_eq(rc, err, "rc %d, want %d (%s)", rc, err, tly_errmsg());
    cr_expect_not_null(strstr(tly_errmsg(), needle), "message '%s' should name '%s'", tly_errmsg(), needle);
    cr_expect_null(m.attributes_json);
}

TLY_TEST(meta, v3_zarrita_zstd)
{
    struct tly_meta m = parse(zarrita_zstd);
    cr_expect_eq(m.zarr_format, 3);
    cr_expect_eq(m.rank, 2);
    cr_expect(m.shape[0] == 100 && m.shape[1] == 50 && m.chunks[0] == 10 && m.chunks[1] == 25);
    cr_expect(m.dtype.kind == 'f' && m.dtype.size == 4 && m.dtype.endian == '<');
    cr_expect_eq(m.codec.id, TLY_CODEC_ZSTD);
    cr_expect_eq(m.codec.zstd.level, 3);
    cr_expect_eq(m.codec.zstd.checksum, 0);
    cr_expect_not(m.has_fill, "zarrita writes null when no fill value is given");
    cr_expect(m.v3_default_keys);
    cr_expect_eq(m.separator, '/');
    cr_expect_str_eq(m.attributes_json, "{}");
    tly_meta_free(&m);
    cr_expect_null(m.attributes_json);
}

TLY_TEST(meta, v3_zarrita_blosc_with_attributes)
{
    struct tly_meta m = parse(zarrita_blosc);
    cr_expect(m.dtype.kind == 'i' && m.dtype.size == 2 && m.dtype.endian == '<');
    cr_expect_eq(m.codec.id, TLY_CODEC_BLOSC);
    cr_expect_str_eq(m.codec.blosc.cname, "zstd");
    cr_expect_eq(m.codec.blosc.clevel, 5);
    cr_expect_eq(m.codec.blosc.shuffle, TLY_BITSHUFFLE);
    cr_expect_eq(m.codec.blosc.typesize, 2);
    cr_expect(m.has_fill);
    cr_expect_arr_eq(m.fill, ((uint8_t[2]){0xff, 0xff}), 2);
    cr_expect_str_eq(m.attributes_json, "{\"units\":\"m\",\"scale\":[1,2]}");
    tly_meta_free(&m);
}

TLY_TEST(meta, v3_zarrita_no_codecs_means_little_endian_bytes)
{
    struct tly_meta m = parse(zarrita_nan);
    cr_expect_eq(m.codec.id, TLY_CODEC_NONE);
    cr_expect_eq(m.dtype.endian, '<');
    cr_expect_arr_eq(m.fill, ((uint8_t[8]){0, 0, 0, 0, 0, 0, 0xf8, 0x7f}), 8, "numpy's NaN");
    tly_meta_free(&m);
}

TLY_TEST(meta, v3_big_endian_bytes_codec)
{
    struct tly_meta m = parse(V3(.data_type = "int32", .fill = "42",
                                 .codecs = "{\"name\": \"bytes\", \"configuration\": "
                                           "{\"endian\": \"big\"}}"));
    cr_expect_eq(m.dtype.endian, '>');
    cr_expect_eq(m.codec.id, TLY_CODEC_NONE);
    cr_expect_arr_eq(m.fill, ((uint8_t[4]){0, 0, 0, 42}), 4);
    tly_meta_free(&m);
}

TLY_TEST(meta, v3_bytes_without_configuration_for_one_byte_types)
{
    struct tly_meta m = parse(V3(.data_type = "uint8", .fill = "7", .codecs = "{\"name\": \"bytes\"}"));
    cr_expect_eq(m.dtype.endian, '|');
    cr_expect_eq(m.fill[0], 7);
    tly_meta_free(&m);
    m = parse(V3(.data_type = "bool", .fill = "true", .codecs = "\"bytes\""));
    cr_expect_eq(m.fill[0], 1);
    tly_meta_free(&m);
    refuse(V3(.data_type = "int16", .codecs = "{\"name\": \"bytes\"}"), TLY_EFORMAT, "'endian' for int16");
}

TLY_TEST(meta, v3_v2_key_encoding)
{
    struct tly_meta m = parse(V3(.keys = "{\"name\": \"v2\", \"configuration\": {\"separator\": \".\"}}"));
    cr_expect_not(m.v3_default_keys);
    cr_expect_eq(m.separator, '.');
    tly_meta_free(&m);
    m = parse(V3(.keys = "{\"name\": \"v2\"}"));
    cr_expect_eq(m.separator, '.', "v2 encoding defaults to '.'");
    tly_meta_free(&m);
    m = parse(V3(.keys = "{\"name\": \"v2\", \"configuration\": {\"separator\": \"/\"}}"));
    cr_expect_eq(m.separator, '/');
    tly_meta_free(&m);
    m = parse(V3(.keys = "{\"name\": \"default\"}"));
    cr_expect(m.v3_default_keys);
    cr_expect_eq(m.separator, '/', "default encoding defaults to '/'");
    tly_meta_free(&m);
    m = parse(V3(.keys = "{\"name\": \"default\", \"configuration\": {\"separator\": \".\"}}"));
    cr_expect_eq(m.separator, '.');
    tly_meta_free(&m);
}

TLY_TEST(meta, v3_fill_values)
{
    struct tly_meta m = parse(V3(.fill = "\"0x7fc00000\""));
    cr_expect_arr_eq(m.fill, ((uint8_t[4]){0, 0, 0xc0, 0x7f}), 4, "hex NaN");
    tly_meta_free(&m);
    m = parse(V3(.fill = "\"0x3F800000\""));
    cr_expect_arr_eq(m.fill, ((uint8_t[4]){0, 0, 0x80, 0x3f}), 4, "hex 1.0f");
    tly_meta_free(&m);
    m = parse(V3(.data_type = "float64", .fill = "\"0x3ff0000000000000\"",
                 .codecs = "{\"name\": \"bytes\", \"configuration\": {\"endian\": \"big\"}}"));
    cr_expect_arr_eq(m.fill, ((uint8_t[8]){0x3f, 0xf0, 0, 0, 0, 0, 0, 0}), 8, "hex 1.0, big-endian");
    tly_meta_free(&m);
    m = parse(V3(.fill = "\"Infinity\""));
    cr_expect_arr_eq(m.fill, ((uint8_t[4]){0, 0, 0x80, 0x7f}), 4);
    tly_meta_free(&m);
    m = parse(V3(.fill = "\"-Infinity\""));
    cr_expect_arr_eq(m.fill, ((uint8_t[4]){0, 0, 0x80, 0xff}), 4);
    tly_meta_free(&m);
    m = parse(V3(.data_type = "bool", .fill = "false", .codecs = BYTES_LE));
    cr_expect(m.has_fill && m.fill[0] == 0);
    tly_meta_free(&m);
    refuse(V3(.fill = "\"0x7fc0000\""), TLY_EFORMAT, "8 hex digits");
    refuse(V3(.fill = "\"0x0x7fc000\""), TLY_EFORMAT, "hex digits");
    refuse(V3(.fill = "\"nan\""), TLY_EFORMAT, "fill_value 'nan'");
    refuse(V3(.data_type = "uint16", .fill = "70000", .codecs = BYTES_LE), TLY_EFORMAT, "does not fit uint16");
    refuse(V3(.data_type = "int8", .fill = "\"0x01\"", .codecs = BYTES_LE), TLY_EFORMAT, "integer");
}

#define SHARD(inner, codecs, rest)                                                                                     \
    "{\"name\": \"sharding_indexed\", \"configuration\": {\"chunk_shape\": [" inner "], \"codecs\": [" codecs "]" rest \
    "}}"
#define CRC "{\"name\": \"crc32c\"}"
#define GZIP5 "{\"name\": \"gzip\", \"configuration\": {\"level\": 5}}"

TLY_TEST(meta, v3_sharding_parses_and_emits_back)
{
    struct tly_meta m =
        parse(V3(.codecs = SHARD("5", BYTES_LE ", " GZIP5 ", " CRC,
                                 ", \"index_codecs\": [" BYTES_LE ", " CRC "], \"index_location\": \"start\"")));
    cr_expect(m.shard.on);
    cr_expect_eq(m.shard.inner[0], 5);
    cr_expect_eq(m.chunks[0], 10, "the grid's chunks are the shard's shape");
    cr_expect(m.shard.index_start && m.shard.index_crc && m.crc32c);
    cr_expect_eq(m.codec.id, TLY_CODEC_GZIP);
    cr_expect_eq(m.codec.gzip.level, 5);
    char *text = tly_meta_emit(&m);
    cr_assert_not_null(text, "%s", tly_errmsg());
    struct tly_meta b = parse(text);
    cr_expect(b.shard.on && b.shard.inner[0] == 5 && b.shard.index_start && b.shard.index_crc && b.crc32c);
    cr_expect(b.codec.id == TLY_CODEC_GZIP && b.codec.gzip.level == 5);
    free(text);
    tly_meta_free(&b);
    tly_meta_free(&m);
    /* the spec's defaults: index at the end, index codecs bytes + crc32c */
    m = parse(V3(.codecs = SHARD("2", BYTES_LE, "")));
    cr_expect(m.shard.on && !m.shard.index_start && m.shard.index_crc && !m.crc32c);
    cr_expect_eq(m.codec.id, TLY_CODEC_NONE);
    tly_meta_free(&m);
    m = parse(V3(.codecs = SHARD("10", BYTES_LE, ", \"index_codecs\": [" BYTES_LE "]")));
    cr_expect(m.shard.on && !m.shard.index_crc);
    tly_meta_free(&m);
}

TLY_TEST(meta, v3_refuses_codecs_it_does_not_implement)
{
    refuse(V3(.codecs = SHARD("3", BYTES_LE, "")), TLY_EFORMAT, "does not divide");
    refuse(V3(.codecs = SHARD("5", SHARD("1", BYTES_LE, ""), "")), TLY_EUNSUPPORTED, "nested sharding");
    refuse(V3(.codecs = SHARD("5", BYTES_LE, "") ", " CRC), TLY_EUNSUPPORTED, "after sharding_indexed");
    refuse(V3(.codecs = SHARD("5", BYTES_LE, ", \"index_codecs\": [" BYTES_LE ", " GZIP5 "]")), TLY_EUNSUPPORTED,
           "index codec 'gzip'");
    refuse(V3(.codecs = SHARD("5", BYTES_LE, ", \"index_location\": \"middle\"")), TLY_EFORMAT, "index_location");
    refuse(V3(.codecs = SHARD("5", BYTES_LE ", " CRC ", " GZIP5, "")), TLY_EUNSUPPORTED, "after crc32c");
    refuse(V3(.codecs = BYTES_LE ", " SHARD("5", BYTES_LE, "")), TLY_EUNSUPPORTED, "only codec");
    refuse(V3(.codecs = "{\"name\": \"transpose\", \"configuration\": {\"order\": [0]}}, " BYTES_LE), TLY_EUNSUPPORTED,
           "codec 'transpose'");
    refuse(V3(.codecs = BYTES_LE ", " CRC), TLY_EUNSUPPORTED, "inside sharding_indexed only");
    refuse(V3(.codecs = BYTES_LE ", {\"name\": \"frobnicate\"}"), TLY_EUNSUPPORTED, "codec 'frobnicate'");
    refuse(V3(.codecs = BYTES_LE ", {\"name\": \"zstd\", \"configuration\": {\"level\": 1}}, {\"name\": \"blosc\"}"),
           TLY_EUNSUPPORTED, "after another compressor");
    refuse(V3(.codecs = "{\"name\": \"zstd\", \"configuration\": {\"level\": 1}}, " BYTES_LE), TLY_EFORMAT,
           "'bytes' must come first");
    refuse(V3(.codecs = BYTES_LE ", {\"name\": \"zstd\"}"), TLY_EFORMAT, "'level'");
    refuse(V3(.codecs = BYTES_LE ", {\"name\": \"blosc\", \"configuration\": {\"shuffle\": 1}}"), TLY_EFORMAT,
           "'shuffle'");
}

TLY_TEST(meta, v3_refuses_other_nodes_grids_and_types)
{
    refuse("{\"zarr_format\": 3, \"node_type\": \"group\", \"attributes\": {}}", TLY_EUNSUPPORTED, "group");
    refuse(V3(.node_type = "thing"), TLY_EFORMAT, "node_type");
    refuse(V3(.grid = "{\"name\": \"rectilinear\", \"configuration\": {\"chunk_shapes\": [[5, 15]]}}"),
           TLY_EUNSUPPORTED, "chunk_grid 'rectilinear'");
    refuse(V3(.keys = "{\"name\": \"fancy\"}"), TLY_EUNSUPPORTED, "chunk_key_encoding 'fancy'");
    refuse(V3(.data_type = "complex64"), TLY_EUNSUPPORTED, "data_type 'complex64'");
    refuse(V3(.data_type = "string"), TLY_EUNSUPPORTED, "data_type 'string'");
    refuse("{\"zarr_format\": 3, \"node_type\": \"array\", \"shape\": [1], \"data_type\": {\"name\": "
           "\"numpy.datetime64\"}}",
           TLY_EUNSUPPORTED, "numpy.datetime64");
    refuse(V3(.extra = ", \"storage_transformers\": [{\"name\": \"chunk-manifest-json\"}]"), TLY_EUNSUPPORTED,
           "storage transformer 'chunk-manifest-json'");
    refuse(V3(.extra = ", \"consolidated\": {\"x\": 1}"), TLY_EUNSUPPORTED, "field 'consolidated'");
    refuse("{\"zarr_format\": 2, \"node_type\": \"array\"}", TLY_EFORMAT, "'zarr_format' must be 3");
    refuse("{\"zarr_format\": 3, \"node_type\": \"array\", \"shape\": [1,}", TLY_EFORMAT, "line 1, column");
}

TLY_TEST(meta, v3_accepts_what_the_spec_lets_it_ignore)
{
    struct tly_meta m = parse(
        V3(.extra = ", \"storage_transformers\": [], \"dimension_names\": [\"t\"], "
                    "\"ext\": {\"must_understand\": false, \"anything\": 1}, \"attributes\": {\"a\": [1, \"b\"]}"));
    cr_expect_str_eq(m.attributes_json, "{\"a\":[1,\"b\"]}");
    tly_meta_free(&m);
    refuse(V3(.extra = ", \"dimension_names\": [\"t\", \"u\"]"), TLY_EFORMAT, "dimension_names");
    refuse(V3(.extra = ", \"attributes\": [1]"), TLY_EFORMAT, "'attributes'");
}

TLY_TEST(meta, v3_bare_nan_is_quoted_only_as_the_top_level_fill_value)
{
    struct tly_meta m = parse(V3(.fill = "NaN", .extra = ", \"attributes\": {\"fill_value\": \"NaN\"}"));
    cr_expect_arr_eq(m.fill, ((uint8_t[4]){0, 0, 0xc0, 0x7f}), 4);
    cr_expect_str_eq(m.attributes_json, "{\"fill_value\":\"NaN\"}", "a string stays a string");
    tly_meta_free(&m);
    refuse(V3(.extra = ", \"attributes\": {\"fill_value\": NaN}"), TLY_EFORMAT, "malformed JSON");
    refuse(V3(.fill = "\"x\", \"y\": NaN"), TLY_EFORMAT, "malformed JSON");
}

TLY_TEST(meta, v3_refuses_rank_33)
{
    char doc[1024], dims[128] = "1";
    for (int i = 1; i < 33; i++)
        strcat(dims, ",1");
    snprintf(doc, sizeof doc,
             "{\"zarr_format\": 3, \"node_type\": \"array\", \"shape\": [%s], \"data_type\": \"uint8\", "
             "\"chunk_grid\": {\"name\": \"regular\", \"configuration\": {\"chunk_shape\": [%s]}}, "
             "\"chunk_key_encoding\": {\"name\": \"default\"}, \"codecs\": [], \"fill_value\": 0}",
             dims, dims);
    refuse(doc, TLY_EUNSUPPORTED, "rank 33");
}

/* Emit, parse back, compare every field. */
static void round_trip(const struct tly_meta *a)
{
    char *text = tly_meta_emit(a);
    cr_assert_not_null(text, "%s", tly_errmsg());
    struct tly_meta b = parse(text);
    cr_expect_eq(b.zarr_format, 3);
    cr_expect_eq(b.rank, a->rank);
    cr_expect_arr_eq(b.shape, a->shape, sizeof a->shape[0] * (size_t)a->rank);
    cr_expect_arr_eq(b.chunks, a->chunks, sizeof a->chunks[0] * (size_t)a->rank);
    cr_expect(b.dtype.kind == a->dtype.kind && b.dtype.size == a->dtype.size && b.dtype.endian == a->dtype.endian);
    cr_expect_eq(b.codec.id, a->codec.id);
    /* v3 has no null fill value: an array without one is written with its dtype's zero. */
    cr_expect(b.has_fill);
    cr_expect_arr_eq(b.fill, a->fill, a->dtype.size, "fill of\n%s", text);
    cr_expect_eq(b.separator, a->separator);
    cr_expect_eq(b.v3_default_keys, a->v3_default_keys);
    cr_expect_str_eq(b.attributes_json, a->attributes_json ? a->attributes_json : "{}");
    if (a->codec.id == TLY_CODEC_BLOSC) {
        cr_expect_str_eq(b.codec.blosc.cname, a->codec.blosc.cname);
        cr_expect_eq(b.codec.blosc.clevel, a->codec.blosc.clevel);
        cr_expect_eq(b.codec.blosc.shuffle, a->codec.blosc.shuffle);
        cr_expect_eq(b.codec.blosc.blocksize, a->codec.blosc.blocksize);
        cr_expect_eq(b.codec.blosc.typesize, a->dtype.size);
    }
    if (a->codec.id == TLY_CODEC_ZSTD) {
        cr_expect_eq(b.codec.zstd.level, a->codec.zstd.level);
        cr_expect_eq(b.codec.zstd.checksum, a->codec.zstd.checksum);
    }
    tly_meta_free(&b);
    free(text);
}

TLY_TEST(meta, v3_emit_parse_round_trips)
{
    const char *docs[] = {
        zarrita_zstd,
        zarrita_blosc,
        zarrita_nan,
        V3(.data_type = "int32", .fill = "-42",
           .codecs = "{\"name\": \"bytes\", \"configuration\": {\"endian\": \"big\"}}"),
        V3(.data_type = "uint64", .fill = "18446744073709551615", .codecs = BYTES_LE),
        V3(.data_type = "float64", .fill = "\"-Infinity\"", .codecs = BYTES_LE),
        V3(.fill = "0.3"),
        V3(.fill = "\"0x3f800000\""),
        V3(.data_type = "bool", .fill = "true", .codecs = "{\"name\": \"bytes\"}"),
        V3(.keys = "{\"name\": \"v2\", \"configuration\": {\"separator\": \"/\"}}",
           .codecs = BYTES_LE ", {\"name\": \"blosc\", \"configuration\": {\"cname\": \"lz4hc\", \"clevel\": 9, "
                              "\"shuffle\": \"noshuffle\", \"typesize\": 4, \"blocksize\": 65536}}"),
        V3(.codecs = BYTES_LE ", {\"name\": \"zstd\", \"configuration\": {\"level\": -3, \"checksum\": true}}"),
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        struct tly_meta a = parse(docs[i]);
        round_trip(&a);
        tly_meta_free(&a);
    }
}

TLY_TEST(meta, v3_emit_is_in_zarritas_shape)
{
    struct tly_meta m = parse(zarrita_blosc);
    char *text = tly_meta_emit(&m);
    cr_assert_not_null(text);
    const char *want[] = {
        "{\n  \"zarr_format\": 3,\n  \"node_type\": \"array\",\n",
        "\"data_type\": \"int16\"",
        "\"chunk_grid\": {\n    \"name\": \"regular\",\n    \"configuration\": {\n      \"chunk_shape\": [\n        "
        "4\n",
        "\"chunk_key_encoding\": {\n    \"name\": \"default\",\n    \"configuration\": {\n      \"separator\": \"/\"",
        "\"fill_value\": -1,",
        "\"name\": \"bytes\",\n      \"configuration\": {\n        \"endian\": \"little\"",
        "\"shuffle\": \"bitshuffle\",\n        \"typesize\": 2,",
        "\"attributes\": {\n    \"units\": \"m\",",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_expect_not_null(strstr(text, want[i]), "want\n%s\nin\n%s", want[i], text);
    cr_expect_eq(text[strlen(text) - 1], '\n');
    free(text);
    tly_meta_free(&m);
}

TLY_TEST(meta, v3_emit_without_fill_writes_zero_and_nan_as_string)
{
    struct tly_meta m = parse(zarrita_zstd);
    char *text = tly_meta_emit(&m);
    cr_expect_not_null(strstr(text, "\"fill_value\": 0.0,"), "%s", text);
    free(text);
    tly_meta_free(&m);
    m = parse(V3(.fill = "\"0x7fc00001\""));
    text = tly_meta_emit(&m);
    cr_expect_not_null(strstr(text, "\"fill_value\": \"NaN\","), "any NaN is written as zarrita reads it: %s", text);
    free(text);
    tly_meta_free(&m);
}

TLY_TEST(meta, v3_emit_refuses_bad_attributes_and_bad_metadata)
{
    struct tly_meta m = parse(zarrita_zstd);
    char *saved = m.attributes_json;
    m.attributes_json = "[1, 2]";
    cr_expect_null(tly_meta_emit(&m));
    cr_expect_not_null(strstr(tly_errmsg(), "attributes_json"), "%s", tly_errmsg());
    m.attributes_json = "{oops";
    cr_expect_null(tly_meta_emit(&m));
    m.attributes_json = saved;
    m.rank = 33;
    cr_expect_null(tly_meta_emit(&m));
    cr_expect_not_null(strstr(tly_errmsg(), "rank 33"), "%s", tly_errmsg());
    m.rank = 2;
    m.zarr_format = 4;
    cr_expect_null(tly_meta_emit(&m));
    tly_meta_free(&m);
}

/* issue 25 N10: zlib's default level -1 is numcodecs' (v2) and never reaches a v3 document, whose
 * gzip level is 0..9: what tally writes, its own reader must take */
TLY_TEST(meta, v3_gzip_level_outside_the_spec_is_not_written)
{
    struct tly_meta m = parse(V3(.codecs = BYTES_LE ", " GZIP5));
    for (int level = -1; level <= 10; level += 11) {
        m.codec.gzip.level = level;
        char *text = tly_meta_emit(&m);
        cr_expect_null(text, "level %d was written", level);
        cr_expect(strstr(tly_errmsg(), "gzip level is 0..9") != NULL, "%s", tly_errmsg());
        free(text);
    }
    m.codec.gzip.level = 0;
    char *text = tly_meta_emit(&m);
    cr_assert_not_null(text, "%s", tly_errmsg());
    struct tly_meta b = parse(text);
    cr_expect(b.codec.id == TLY_CODEC_GZIP && b.codec.gzip.level == 0);
    free(text);
    tly_meta_free(&b);
    tly_meta_free(&m);
}
