/*
 * meta: Zarr v2 .zarray as zarr-python 2.13 (numcodecs 0.11) writes it: parsing, refusals naming the
 * feature, and emit -> parse round trips.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"
#include "tally/error.h"
#include "tally/meta.h"

TestSuite(meta);

/* zarr.open("a.zarr", "w", shape=(1000, 1000), chunks=(100, 100), dtype="f8") */
static const char blosc_f8[] = "{\n"
                               "    \"chunks\": [\n"
                               "        100,\n"
                               "        100\n"
                               "    ],\n"
                               "    \"compressor\": {\n"
                               "        \"blocksize\": 0,\n"
                               "        \"clevel\": 5,\n"
                               "        \"cname\": \"lz4\",\n"
                               "        \"id\": \"blosc\",\n"
                               "        \"shuffle\": 1\n"
                               "    },\n"
                               "    \"dimension_separator\": \".\",\n"
                               "    \"dtype\": \"<f8\",\n"
                               "    \"fill_value\": 0.0,\n"
                               "    \"filters\": null,\n"
                               "    \"order\": \"C\",\n"
                               "    \"shape\": [\n"
                               "        1000,\n"
                               "        1000\n"
                               "    ],\n"
                               "    \"zarr_format\": 2\n"
                               "}";

/* The fields of a .zarray; NULL takes the default (a small <f4 array, no compressor). */
struct v2 {
    const char *shape, *chunks, *dtype, *compressor, *fill, *filters, *order, *extra;
};

static const char *v2_text(struct v2 f)
{
    static char buf[4096];
    snprintf(buf, sizeof buf,
             "{\"chunks\": [%s], \"compressor\": %s, \"dtype\": \"%s\", \"fill_value\": %s, \"filters\": %s, "
             "\"order\": \"%s\", \"shape\": [%s], \"zarr_format\": 2%s}",
             f.chunks ? f.chunks : "10", f.compressor ? f.compressor : "null", f.dtype ? f.dtype : "<f4",
             f.fill ? f.fill : "0.0", f.filters ? f.filters : "null", f.order ? f.order : "C", f.shape ? f.shape : "25",
             f.extra ? f.extra : "");
    return buf;
}
#define V2(...) v2_text((struct v2){__VA_ARGS__})

static struct tly_meta parse(const char *text)
{
    struct tly_meta m;
    int rc = tly_meta_parse_v2(text, strlen(text), &m);
    cr_assert_eq(rc, 0, "parse failed: %s\n%s", tly_errmsg(), text);
    return m;
}

static void refuse(const char *text, int err, const char *needle)
{
    struct tly_meta m;
    int rc = tly_meta_parse_v2(text, strlen(text), &m);
    cr_expect_eq(rc, err, "rc %d, want %d (%s)", rc, err, tly_errmsg());
    cr_expect_not_null(strstr(tly_errmsg(), needle), "message '%s' should name '%s'", tly_errmsg(), needle);
    cr_expect_null(m.attributes_json);
}

static uint32_t u32_le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

TLY_TEST(meta, v2_blosc_f8_as_zarr_python_writes_it)
{
    struct tly_meta m = parse(blosc_f8);
    cr_expect_eq(m.zarr_format, 2);
    cr_expect_eq(m.rank, 2);
    cr_expect_eq(m.shape[0], 1000);
    cr_expect_eq(m.chunks[1], 100);
    cr_expect(m.dtype.kind == 'f' && m.dtype.size == 8 && m.dtype.endian == '<');
    cr_expect_eq(m.codec.id, TLY_CODEC_BLOSC);
    cr_expect_str_eq(m.codec.blosc.cname, "lz4");
    cr_expect_eq(m.codec.blosc.clevel, 5);
    cr_expect_eq(m.codec.blosc.shuffle, TLY_SHUFFLE);
    cr_expect_eq(m.codec.blosc.blocksize, 0);
    cr_expect_eq(m.codec.blosc.typesize, 8, "typesize from the dtype");
    cr_expect(m.has_fill);
    cr_expect_arr_eq(m.fill, (uint8_t[8]){0}, 8);
    cr_expect_eq(m.separator, '.');
    cr_expect_null(m.attributes_json);
    tly_meta_free(&m);
}

TLY_TEST(meta, v2_emit_is_byte_identical_to_zarr_python)
{
    struct tly_meta m = parse(blosc_f8);
    char *text = tly_meta_emit(&m);
    cr_assert_not_null(text, "%s", tly_errmsg());
    size_t n = strlen(text);
    cr_expect_eq(n, sizeof blosc_f8, "zarr-python's text plus a newline");
    cr_expect_eq(strncmp(text, blosc_f8, sizeof blosc_f8 - 1), 0, "got:\n%s", text);
    cr_expect_eq(text[n - 1], '\n');
    free(text);
}

TLY_TEST(meta, v2_zstd_big_endian_int_fill_42_slash_separator)
{
    struct tly_meta m = parse(V2(.dtype = ">i4", .compressor = "{\"id\": \"zstd\", \"level\": 1}", .fill = "42",
                                 .extra = ", \"dimension_separator\": \"/\""));
    cr_expect(m.dtype.kind == 'i' && m.dtype.size == 4 && m.dtype.endian == '>');
    cr_expect_eq(m.codec.id, TLY_CODEC_ZSTD);
    cr_expect_eq(m.codec.zstd.level, 1);
    cr_expect_eq(m.codec.zstd.checksum, 0);
    cr_expect_arr_eq(m.fill, ((uint8_t[4]){0, 0, 0, 42}), 4, "big-endian element");
    cr_expect_eq(m.separator, '/');
    tly_meta_free(&m);
}

/* numcodecs 0.11: GZip(5).get_config() == {'id': 'gzip', 'level': 5}, Zlib likewise; level 1 when absent. */
TLY_TEST(meta, v2_gzip_and_zlib_as_numcodecs_writes_them)
{
    struct tly_meta m = parse(V2(.compressor = "{\"id\": \"gzip\", \"level\": 5}"));
    cr_expect_eq(m.codec.id, TLY_CODEC_GZIP);
    cr_expect_eq(m.codec.gzip.level, 5);
    m = parse(V2(.compressor = "{\"id\": \"zlib\", \"level\": 9}"));
    cr_expect_eq(m.codec.id, TLY_CODEC_ZLIB);
    cr_expect_eq(m.codec.gzip.level, 9);
    m = parse(V2(.compressor = "{\"id\": \"zlib\"}"));
    cr_expect_eq(m.codec.gzip.level, 1);
    m = parse(V2(.compressor = "{\"id\": \"gzip\", \"level\": -1}"));
    cr_expect_eq(m.codec.gzip.level, -1);
    for (int id = TLY_CODEC_GZIP; id <= TLY_CODEC_ZLIB; id++) {
        m = parse(V2(.compressor = id == TLY_CODEC_GZIP ? "{\"id\": \"gzip\", \"level\": 3}"
                                                        : "{\"id\": \"zlib\", \"level\": 3}"));
        char *text = tly_meta_emit(&m);
        cr_assert_not_null(text, "%s", tly_errmsg());
        const char *want = id == TLY_CODEC_GZIP
                               ? "\"compressor\": {\n        \"id\": \"gzip\",\n        \"level\": 3\n    },"
                               : "\"compressor\": {\n        \"id\": \"zlib\",\n        \"level\": 3\n    },";
        cr_expect_not_null(strstr(text, want), "%s", text);
        free(text);
        char *cfg = tly_codec_config_json(&m.codec);
        cr_expect_str_eq(cfg, id == TLY_CODEC_GZIP ? "{\"id\":\"gzip\",\"level\":3}" : "{\"id\":\"zlib\",\"level\":3}");
        free(cfg);
        /* v3 has no zlib codec (refused, not written as something else); its gzip codec is written */
        m.zarr_format = 3;
        text = tly_meta_emit(&m);
        if (id == TLY_CODEC_ZLIB) {
            cr_expect_null(text);
            cr_expect_not_null(strstr(tly_errmsg(), tly_codec_name(m.codec.id)), "%s", tly_errmsg());
        } else {
            cr_expect_not_null(text, "%s", tly_errmsg());
            cr_expect_not_null(text ? strstr(text, "\"name\": \"gzip\"") : NULL, "%s", text);
        }
        free(text);
    }
}

TLY_TEST(meta, v2_zstd_with_checksum)
{
    struct tly_meta m = parse(V2(.compressor = "{\"checksum\": true, \"id\": \"zstd\", \"level\": 5}"));
    cr_expect_eq(m.codec.zstd.level, 5);
    cr_expect_eq(m.codec.zstd.checksum, 1);
    tly_meta_free(&m);
}

TLY_TEST(meta, v2_bool_fill_false_and_true)
{
    struct tly_meta m = parse(V2(.dtype = "|b1", .fill = "false"));
    cr_expect(m.dtype.kind == 'b' && m.dtype.size == 1 && m.dtype.endian == '|');
    cr_expect(m.has_fill);
    cr_expect_eq(m.fill[0], 0);
    m = parse(V2(.dtype = "|b1", .fill = "true"));
    cr_expect_eq(m.fill[0], 1);
}

TLY_TEST(meta, v2_float_fill_values)
{
    struct tly_meta m = parse(V2(.fill = "\"NaN\""));
    cr_expect(m.has_fill);
    cr_expect_eq(u32_le(m.fill), 0x7fc00000u, "numpy's float32 NaN");
    m = parse(V2(.fill = "\"Infinity\""));
    cr_expect_eq(u32_le(m.fill), 0x7f800000u);
    m = parse(V2(.fill = "\"-Infinity\""));
    cr_expect_eq(u32_le(m.fill), 0xff800000u);
    m = parse(V2(.fill = "0.1"));
    float f;
    memcpy(&f, m.fill, 4);
    cr_expect_eq(f, 0.1f);
    m = parse(V2(.fill = "null"));
    cr_expect_not(m.has_fill);
    m = parse(V2(.dtype = ">f8", .fill = "\"NaN\""));
    cr_expect_arr_eq(m.fill, ((uint8_t[8]){0x7f, 0xf8, 0, 0, 0, 0, 0, 0}), 8, "big-endian NaN");
    m = parse(V2(.fill = "7", .dtype = "<f8"));
    double d;
    memcpy(&d, m.fill, 8);
    cr_expect_eq(d, 7.0, "an integer reads as a float");
}

TLY_TEST(meta, v2_bare_nan_token_is_accepted)
{
    /* Python's json writes bare NaN (allow_nan) when a writer forgets zarr's encoding; jansson refuses it. */
    struct tly_meta m = parse(V2(.fill = "NaN"));
    cr_expect_eq(u32_le(m.fill), 0x7fc00000u);
    m = parse(V2(.fill = "-Infinity"));
    cr_expect_eq(u32_le(m.fill), 0xff800000u);
    refuse(V2(.fill = "NaN", .extra = ", \"x\": NaN"), TLY_EFORMAT, "malformed JSON");
}

TLY_TEST(meta, v2_integer_fill_values_must_fit)
{
    struct tly_meta m = parse(V2(.dtype = "|u1", .fill = "255"));
    cr_expect_eq(m.fill[0], 255);
    m = parse(V2(.dtype = "<i2", .fill = "-32768"));
    cr_expect_arr_eq(m.fill, ((uint8_t[2]){0x00, 0x80}), 2);
    m = parse(V2(.dtype = "<i8", .fill = "-1"));
    cr_expect_arr_eq(m.fill, ((uint8_t[8]){0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}), 8);
    m = parse(V2(.dtype = "<u8", .fill = "18446744073709551615"));
    cr_expect_arr_eq(m.fill, ((uint8_t[8]){0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}), 8, "above INT64_MAX");
    m = parse(V2(.dtype = "<u2", .fill = "0.0"));
    cr_expect(m.has_fill, "an integral real");
    refuse(V2(.dtype = "|u1", .fill = "256"), TLY_EFORMAT, "fill_value 256 does not fit uint8");
    refuse(V2(.dtype = "|i1", .fill = "-129"), TLY_EFORMAT, "does not fit int8");
    refuse(V2(.dtype = "<u4", .fill = "-1"), TLY_EFORMAT, "does not fit uint32");
    refuse(V2(.dtype = "<i8", .fill = "18446744073709551615"), TLY_EFORMAT, "fill_value");
    refuse(V2(.dtype = "<i4", .fill = "1.5"), TLY_EFORMAT, "does not fit int32");
    refuse(V2(.dtype = "<i4", .fill = "\"NaN\""), TLY_EFORMAT, "fill_value");
    refuse(V2(.dtype = "<f4", .fill = "1e39"), TLY_EFORMAT, "does not fit float32");
    refuse(V2(.dtype = "|b1", .fill = "2"), TLY_EFORMAT, "does not fit bool");
}

TLY_TEST(meta, v2_defaults_when_optional_fields_are_absent)
{
    /* No dimension_separator and no filters: what older zarr-python versions write. */
    const char *text = "{\"chunks\": [2], \"compressor\": {\"id\": \"blosc\"}, \"dtype\": \"|u1\", "
                       "\"fill_value\": 0, \"order\": \"C\", \"shape\": [3], \"zarr_format\": 2}";
    struct tly_meta m = parse(text);
    cr_expect_eq(m.separator, '.');
    cr_expect_str_eq(m.codec.blosc.cname, "lz4", "numcodecs' Blosc() defaults");
    cr_expect_eq(m.codec.blosc.clevel, 5);
    cr_expect_eq(m.codec.blosc.shuffle, TLY_SHUFFLE);
    cr_expect_eq(m.codec.blosc.typesize, 1);
}

TLY_TEST(meta, v2_blosc_autoshuffle_resolves_by_element_size)
{
    struct tly_meta m = parse(V2(.dtype = "|u1", .fill = "0", .compressor = "{\"id\": \"blosc\", \"shuffle\": -1}"));
    cr_expect_eq(m.codec.blosc.shuffle, TLY_BITSHUFFLE);
    m = parse(V2(.compressor = "{\"id\": \"blosc\", \"shuffle\": -1, \"cname\": \"zstd\", \"clevel\": 9}"));
    cr_expect_eq(m.codec.blosc.shuffle, TLY_SHUFFLE);
    cr_expect_str_eq(m.codec.blosc.cname, "zstd");
    cr_expect_eq(m.codec.blosc.clevel, 9);
}

TLY_TEST(meta, v2_rank_0_and_zero_length_dims)
{
    struct tly_meta m = parse(V2(.shape = "", .chunks = ""));
    cr_expect_eq(m.rank, 0);
    m = parse(V2(.shape = "0, 5", .chunks = "1, 5"));
    cr_expect_eq(m.rank, 2);
    cr_expect_eq(m.shape[0], 0);
}

TLY_TEST(meta, v2_refuses_order_f)
{
    refuse(V2(.order = "F"), TLY_EUNSUPPORTED, "order F");
}

TLY_TEST(meta, v2_refuses_filters_naming_them)
{
    refuse(V2(.filters = "[{\"id\": \"delta\", \"dtype\": \"<f4\"}, {\"id\": \"fixedscaleoffset\"}]"), TLY_EUNSUPPORTED,
           "filters are not supported (delta, fixedscaleoffset)");
    struct tly_meta m = parse(V2(.filters = "[]"));
    cr_expect_eq(m.rank, 1, "an empty list is no filter");
}

TLY_TEST(meta, v2_refuses_unsupported_dtypes)
{
    refuse(V2(.dtype = "|O", .fill = "0", .filters = "[{\"id\": \"vlen-utf8\"}]"), TLY_EUNSUPPORTED, "object");
    refuse(V2(.dtype = "<U10", .fill = "\"\""), TLY_EUNSUPPORTED, "string");
    refuse(V2(.dtype = "<c8", .fill = "0"), TLY_EUNSUPPORTED, "complex");
    refuse(V2(.dtype = "<M8[ns]", .fill = "0"), TLY_EUNSUPPORTED, "<M8[ns]");
    refuse("{\"chunks\": [1], \"compressor\": null, \"dtype\": [[\"a\", \"<f4\"]], \"fill_value\": null, "
           "\"order\": \"C\", \"shape\": [1], \"zarr_format\": 2}",
           TLY_EUNSUPPORTED, "structured");
}

TLY_TEST(meta, v2_refuses_other_compressors)
{
    refuse(V2(.compressor = "{\"id\": \"lzma\", \"preset\": 1}"), TLY_EUNSUPPORTED, "compressor 'lzma'");
    refuse(V2(.compressor = "{\"id\": \"gzip\", \"level\": 10}"), TLY_EFORMAT, "gzip 'level'");
    refuse(V2(.compressor = "{\"id\": \"zlib\", \"level\": \"9\"}"), TLY_EFORMAT, "zlib 'level'");
    refuse(V2(.compressor = "{\"id\": \"blosc\", \"cname\": \"lzma\"}"), TLY_EUNSUPPORTED, "cname 'lzma'");
    refuse(V2(.compressor = "{\"id\": \"blosc\", \"clevel\": 10}"), TLY_EFORMAT, "clevel");
}

TLY_TEST(meta, v2_refuses_rank_33)
{
    char dims[128] = "1";
    for (int i = 1; i < 33; i++)
        strcat(dims, ",1");
    refuse(V2(.shape = dims, .chunks = dims), TLY_EUNSUPPORTED, "rank 33");
    char ok[128] = "1";
    for (int i = 1; i < 32; i++)
        strcat(ok, ",1");
    struct tly_meta m = parse(V2(.shape = ok, .chunks = ok));
    cr_expect_eq(m.rank, 32);
}

TLY_TEST(meta, v2_refuses_malformed_json_with_line_and_column)
{
    refuse("{\n    \"zarr_format\": 2,\n    \"shape\": [1,,2]\n}", TLY_EFORMAT, "line 3, column");
    refuse("", TLY_EFORMAT, "malformed JSON");
    refuse("[1, 2]", TLY_EFORMAT, "not a JSON object");
    refuse("{\"zarr_format\": 2, \"zarr_format\": 2}", TLY_EFORMAT, "duplicate");
}

TLY_TEST(meta, v2_refuses_bad_fields_naming_them)
{
    refuse(V2(.shape = "-1"), TLY_EFORMAT, "'shape'");
    refuse(V2(.shape = "1.5"), TLY_EFORMAT, "'shape'");
    refuse(V2(.chunks = "0"), TLY_EFORMAT, "'chunks'");
    refuse(V2(.shape = "10, 10"), TLY_EFORMAT, "shape has 2 dimensions but the chunk shape has 1");
    refuse(V2(.shape = "1", .chunks = "4611686018427387904"), TLY_EUNSUPPORTED, "too large");
    refuse(V2(.order = "X"), TLY_EFORMAT, "'order'");
    refuse(V2(.extra = ", \"dimension_separator\": \"-\""), TLY_EFORMAT, "'dimension_separator'");
    refuse("{\"chunks\": [1], \"compressor\": null, \"dtype\": \"<f4\", \"fill_value\": null, \"order\": \"C\", "
           "\"zarr_format\": 2}",
           TLY_EFORMAT, "field 'shape' is missing");
    refuse("{\"chunks\": [1], \"compressor\": null, \"dtype\": \"<f4\", \"order\": \"C\", \"shape\": [1], "
           "\"zarr_format\": 2}",
           TLY_EFORMAT, "field 'fill_value' is missing");
    refuse(V2(.extra = ", \"zarr_format\": 3"), TLY_EFORMAT, "duplicate");
    refuse("{\"zarr_format\": 3}", TLY_EFORMAT, "'zarr_format' must be 2");
}

/* Emit, parse back, compare every field. */
static void round_trip(const struct tly_meta *a)
{
    char *text = tly_meta_emit(a);
    cr_assert_not_null(text, "%s", tly_errmsg());
    struct tly_meta b = parse(text);
    cr_expect_eq(b.zarr_format, 2);
    cr_expect_eq(b.rank, a->rank);
    cr_expect_arr_eq(b.shape, a->shape, sizeof a->shape[0] * (size_t)a->rank);
    cr_expect_arr_eq(b.chunks, a->chunks, sizeof a->chunks[0] * (size_t)a->rank);
    cr_expect(b.dtype.kind == a->dtype.kind && b.dtype.size == a->dtype.size && b.dtype.endian == a->dtype.endian);
    cr_expect_eq(b.codec.id, a->codec.id);
    cr_expect_eq(b.has_fill, a->has_fill);
    cr_expect_arr_eq(b.fill, a->fill, a->dtype.size, "fill of\n%s", text);
    cr_expect_eq(b.separator, a->separator);
    if (a->codec.id == TLY_CODEC_BLOSC) {
        cr_expect_str_eq(b.codec.blosc.cname, a->codec.blosc.cname);
        cr_expect_eq(b.codec.blosc.clevel, a->codec.blosc.clevel);
        cr_expect_eq(b.codec.blosc.shuffle, a->codec.blosc.shuffle);
        cr_expect_eq(b.codec.blosc.blocksize, a->codec.blosc.blocksize);
    }
    if (a->codec.id == TLY_CODEC_ZSTD) {
        cr_expect_eq(b.codec.zstd.level, a->codec.zstd.level);
        cr_expect_eq(b.codec.zstd.checksum, a->codec.zstd.checksum);
    }
    if (a->codec.id == TLY_CODEC_GZIP || a->codec.id == TLY_CODEC_ZLIB)
        cr_expect_eq(b.codec.gzip.level, a->codec.gzip.level);
    free(text);
}

TLY_TEST(meta, v2_emit_parse_round_trips)
{
    const char *docs[] = {
        blosc_f8,
        V2(.dtype = ">i4", .compressor = "{\"id\": \"zstd\", \"level\": -5}", .fill = "-42",
           .extra = ", \"dimension_separator\": \"/\""),
        V2(.compressor = "{\"id\": \"zstd\", \"level\": 22, \"checksum\": true}", .fill = "\"NaN\""),
        V2(.compressor = "{\"id\": \"gzip\", \"level\": 9}", .dtype = "<i2", .fill = "-3"),
        V2(.compressor = "{\"id\": \"zlib\", \"level\": 0}"),
        V2(.fill = "\"-Infinity\""),
        V2(.fill = "0.1"),
        V2(.dtype = "<f8", .fill = "1e300"),
        V2(.dtype = "<f8", .fill = "-1.5e-7"),
        V2(.dtype = "<f8", .fill = "123456789.25"),
        V2(.dtype = "<f8", .fill = "-0.0"),
        V2(.fill = "null"),
        V2(.dtype = "|b1", .fill = "true"),
        V2(.dtype = "<u8", .fill = "18446744073709551615"),
        V2(.dtype = "<i8", .fill = "-9223372036854775808"),
        V2(.dtype = ">u2", .fill = "65535",
           .compressor =
               "{\"id\": \"blosc\", \"cname\": \"zstd\", \"clevel\": 3, \"shuffle\": 2, \"blocksize\": 8192}"),
        V2(.shape = "", .chunks = ""),
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        struct tly_meta a = parse(docs[i]);
        round_trip(&a);
        tly_meta_free(&a);
    }
}

TLY_TEST(meta, v2_emits_fill_values_as_python_spells_them)
{
    struct {
        const char *dtype, *fill, *want;
    } cases[] = {
        {"<f8", "0", "\"fill_value\": 0.0,"},
        {"<f8", "100", "\"fill_value\": 100.0,"},
        {"<f8", "1e16", "\"fill_value\": 1e+16,"},
        {"<f8", "0.0001", "\"fill_value\": 0.0001,"},
        {"<f8", "0.00001", "\"fill_value\": 1e-05,"},
        {"<f4", "0.1", "\"fill_value\": 0.1,"},
        {"<f4", "\"NaN\"", "\"fill_value\": \"NaN\","},
        {"<f4", "\"Infinity\"", "\"fill_value\": \"Infinity\","},
        {"<i2", "-7", "\"fill_value\": -7,"},
        {"|b1", "false", "\"fill_value\": false,"},
        {"<u8", "18446744073709551615", "\"fill_value\": 18446744073709551615,"},
        {"<u4", "null", "\"fill_value\": null,"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct tly_meta m = parse(V2(.dtype = cases[i].dtype, .fill = cases[i].fill));
        char *text = tly_meta_emit(&m);
        cr_assert_not_null(text);
        cr_expect_not_null(strstr(text, cases[i].want), "want %s in\n%s", cases[i].want, text);
        free(text);
    }
}

TLY_TEST(meta, v2_parse_and_emit_allocate_in_stage_meta)
{
    TLY_REQUIRE_TRACKING();
    struct tly_mem_snapshot a, b;
    tly_mem_snapshot(&a);
    struct tly_meta m = parse(blosc_f8);
    char *text = tly_meta_emit(&m);
    free(text);
    tly_meta_free(&m);
    tly_mem_snapshot(&b);
    cr_expect_geq(TLY_DELTA(a, b, TLY_META, allocs), 10, "jansson's objects are charged to meta");
    cr_expect_eq(TLY_DELTA(a, b, TLY_META, live_bytes), 0);
    cr_expect_eq(tly_stage_current(), TLY_UNSTAGED, "the stage is restored");
}

TLY_TEST(meta, v2_emitted_text_belongs_to_the_callers_stage)
{
    TLY_REQUIRE_TRACKING();
    struct tly_meta m = parse(blosc_f8);
    struct tly_mem_snapshot a, b;
    tly_mem_snapshot(&a);
    TLY_STAGE(TLY_PLAN)
    {
        free(tly_meta_emit(&m));
    }
    tly_mem_snapshot(&b);
    cr_expect_eq(TLY_DELTA(a, b, TLY_PLAN, allocs), 1, "the text, and nothing else, is the caller's");
    cr_expect_eq(TLY_DELTA(a, b, TLY_PLAN, live_bytes), 0);
    cr_expect_eq(TLY_DELTA(a, b, TLY_META, live_bytes), 0);
}

/* Issue 15, D1: each bare NaN quoted took 2 bytes more than the copy had room for (a heap overflow). */
TLY_TEST(meta, v2_many_bare_fill_values_are_refused_without_overflow)
{
    struct tly_meta m;
    static const char two[] = "{\"fill_value\":NaN,\"fill_value\":NaN}";
    cr_expect_eq(tly_meta_parse_v2(two, sizeof two - 1, &m), TLY_EFORMAT);
    cr_expect(strstr(tly_errmsg(), "duplicate") != NULL, "%s", tly_errmsg());
    char many[8192] = "{";
    for (int i = 0; i < 300; i++)
        strcat(many, i ? ",\"fill_value\":-Infinity" : "\"fill_value\":-Infinity");
    strcat(many, "}");
    cr_expect_eq(tly_meta_parse_v2(many, strlen(many), &m), TLY_EFORMAT);
}

/* Issue 15, D13: a syntax error after a bare NaN is reported where it is, not at the NaN. */
TLY_TEST(meta, v2_syntax_error_after_a_bare_nan_is_placed_right)
{
    struct tly_meta m;
    static const char text[] = "{\"fill_value\": NaN, \"shape\": [10,,]}";
    cr_expect_eq(tly_meta_parse_v2(text, sizeof text - 1, &m), TLY_EFORMAT);
    cr_expect(strstr(tly_errmsg(), "line 1, column 34") != NULL, "%s", tly_errmsg());
}

/* Issue 15, D2: shape x itemsize and the chunk count must fit; a wrapped size read as 0 bytes. */
TLY_TEST(meta, v2_shape_that_overflows_is_refused)
{
    struct tly_meta m;
    static const char text[] = "{\"zarr_format\": 2, \"shape\": [2305843009213693952, 8], \"chunks\": [1, 1], "
                               "\"dtype\": \"<f8\", \"compressor\": null, \"fill_value\": 0, \"order\": \"C\", "
                               "\"filters\": null}";
    cr_expect_eq(tly_meta_parse_v2(text, sizeof text - 1, &m), TLY_EUNSUPPORTED);
    cr_expect(strstr(tly_errmsg(), ".zarray: shape [2305843009213693952, 8]") != NULL, "%s", tly_errmsg());
}
