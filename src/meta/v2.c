/* Zarr v2 .zarray, as zarr-python 2.13 with numcodecs 0.11 reads and writes it. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "meta/internal.h"

#define DOC TLY__V2

static int parse_format(json_t *root)
{
    json_t *v;
    TLY__TRY(tly__json_field(DOC, root, "zarr_format", &v));
    if (!json_is_integer(v) || json_integer_value(v) != 2)
        return tly_fail(TLY_EFORMAT, DOC ": field 'zarr_format' must be 2");
    return 0;
}

static int parse_dtype(json_t *root, struct tly_dtype *dt)
{
    json_t *v;
    TLY__TRY(tly__json_field(DOC, root, "dtype", &v));
    if (json_is_array(v))
        return tly_fail(TLY_EUNSUPPORTED, DOC ": dtype is not supported: structured dtype");
    if (!json_is_string(v))
        return tly_fail(TLY_EFORMAT, DOC ": field 'dtype' must be a string");
    int rc = tly_dtype_from_numpy(json_string_value(v), dt);
    if (rc != 0)
        tly_err_prefix(DOC);
    return rc;
}

static int parse_grid(json_t *root, struct tly_meta *m)
{
    int chunk_rank;
    TLY__TRY(tly__json_dims(DOC, root, "shape", 0, m->shape, &m->rank));
    TLY__TRY(tly__json_dims(DOC, root, "chunks", 1, m->chunks, &chunk_rank));
    return tly__meta_check_grid(DOC, m, chunk_rank);
}

static int parse_order(json_t *root)
{
    json_t *v;
    TLY__TRY(tly__json_field(DOC, root, "order", &v));
    const char *s = json_string_value(v);
    if (s != NULL && strcmp(s, "C") == 0)
        return 0;
    if (s != NULL && strcmp(s, "F") == 0)
        return tly_fail(TLY_EUNSUPPORTED, DOC ": order F (column-major) is not supported; only order C");
    return tly_fail(TLY_EFORMAT, DOC ": field 'order' must be \"C\" or \"F\"");
}

/* Filters change the stored bytes: refuse any, naming them ("delta, fixedscaleoffset"). */
static int parse_filters(json_t *root)
{
    json_t *v = json_object_get(root, "filters"), *f;
    if (v == NULL || json_is_null(v) || (json_is_array(v) && json_array_size(v) == 0))
        return 0;
    if (!json_is_array(v))
        return tly_fail(TLY_EFORMAT, DOC ": field 'filters' must be null or a list");
    char ids[256] = "";
    size_t i, len = 0;
    json_array_foreach(v, i, f)
    {
        const char *id = json_string_value(json_object_get(f, "id"));
        int k = snprintf(ids + len, sizeof ids - len, "%s%s", i ? ", " : "", id ? id : "?");
        len = k < 0 || (size_t)k >= sizeof ids - len ? sizeof ids - 1 : len + (size_t)k;
    }
    return tly_fail(TLY_EUNSUPPORTED, DOC ": filters are not supported (%s)", ids);
}

static int parse_blosc(json_t *cfg, struct tly_codec *c, const struct tly_dtype *dt)
{
    long long v = TLY_SHUFFLE;
    json_t *shuffle = json_object_get(cfg, "shuffle");
    c->id = TLY_CODEC_BLOSC;
    TLY__TRY(tly__blosc_common(DOC, cfg, c));
    if (shuffle != NULL)
        TLY__TRY(tly__json_int(DOC, "blosc 'shuffle'", shuffle, -1, 2, &v));
    /* numcodecs' AUTOSHUFFLE (-1): bit shuffle for 1-byte elements, byte shuffle otherwise. */
    if (v == -1)
        v = dt->size == 1 ? TLY_BITSHUFFLE : TLY_SHUFFLE;
    c->blosc.shuffle = (int)v;
    return 0;
}

static int parse_zstd(json_t *cfg, struct tly_codec *c)
{
    long long level = 1; /* numcodecs' Zstd default */
    json_t *v;
    c->id = TLY_CODEC_ZSTD;
    if ((v = json_object_get(cfg, "level")) != NULL)
        TLY__TRY(tly__json_int(DOC, "zstd 'level'", v, -131072, 22, &level));
    c->zstd.level = (int)level;
    if ((v = json_object_get(cfg, "checksum")) != NULL && !json_is_boolean(v))
        return tly_fail(TLY_EFORMAT, DOC ": zstd 'checksum' must be true or false");
    c->zstd.checksum = json_is_true(v);
    return 0;
}

/* numcodecs' GZip and Zlib: {"id": "gzip" | "zlib", "level": N}, level 1 when absent (their default). */
static int parse_gzip(json_t *cfg, enum tly_codec_id id, struct tly_codec *c)
{
    long long level = 1;
    json_t *v;
    c->id = id;
    if ((v = json_object_get(cfg, "level")) != NULL)
        TLY__TRY(tly__json_int(DOC, id == TLY_CODEC_ZLIB ? "zlib 'level'" : "gzip 'level'", v, -1, 9, &level));
    c->gzip.level = (int)level;
    return 0;
}

static int parse_compressor(json_t *root, struct tly_meta *m)
{
    json_t *v;
    TLY__TRY(tly__json_field(DOC, root, "compressor", &v));
    m->codec = (struct tly_codec){.id = TLY_CODEC_NONE};
    m->codec.blosc.typesize = m->dtype.size;
    if (json_is_null(v))
        return 0;
    const char *id = json_string_value(json_object_get(v, "id"));
    if (id == NULL)
        return tly_fail(TLY_EFORMAT, DOC ": field 'compressor' must be null or an object with an 'id'");
    if (strcmp(id, "blosc") == 0)
        return parse_blosc(v, &m->codec, &m->dtype);
    if (strcmp(id, "zstd") == 0)
        return parse_zstd(v, &m->codec);
    if (strcmp(id, "gzip") == 0 || strcmp(id, "zlib") == 0)
        return parse_gzip(v, id[0] == 'g' ? TLY_CODEC_GZIP : TLY_CODEC_ZLIB, &m->codec);
    return tly_fail(TLY_EUNSUPPORTED, DOC ": compressor '%s' is not supported (only blosc, zstd, gzip, zlib or null)",
                    id);
}

static int parse_separator(json_t *root, struct tly_meta *m)
{
    json_t *v = json_object_get(root, "dimension_separator");
    const char *s = json_string_value(v);
    /* Absent (older writers, some stores) means ".". */
    if (v == NULL)
        s = ".";
    if (s == NULL || (strcmp(s, ".") != 0 && strcmp(s, "/") != 0))
        return tly_fail(TLY_EFORMAT, DOC ": field 'dimension_separator' must be \".\" or \"/\"");
    m->separator = s[0];
    return 0;
}

static int parse(json_t *root, struct tly_meta *m)
{
    m->zarr_format = 2;
    TLY__TRY(parse_format(root));
    TLY__TRY(parse_dtype(root, &m->dtype));
    TLY__TRY(parse_grid(root, m));
    TLY__TRY(parse_order(root));
    TLY__TRY(parse_filters(root));
    TLY__TRY(parse_compressor(root, m));
    TLY__TRY(tly__fill_field(DOC, root, m));
    return parse_separator(root, m);
}

int tly_meta_parse_v2(const char *json, size_t n, struct tly_meta *out)
{
    return tly__meta_parse(DOC, json, n, out, parse);
}

json_t *tly__codec_config(const struct tly_codec *c)
{
    switch (c->id) {
    case TLY_CODEC_BLOSC:
        return json_pack("{s:s, s:s, s:i, s:i, s:I}", "id", "blosc", "cname", c->blosc.cname, "clevel", c->blosc.clevel,
                         "shuffle", c->blosc.shuffle, "blocksize", (json_int_t)c->blosc.blocksize);
    case TLY_CODEC_ZSTD:
        return json_pack("{s:s, s:i, s:b}", "id", "zstd", "level", c->zstd.level, "checksum", c->zstd.checksum);
    case TLY_CODEC_GZIP:
    case TLY_CODEC_ZLIB:
        return json_pack("{s:s, s:i}", "id", tly_codec_name(c->id), "level", c->gzip.level);
    default:
        return json_pack("{s:s}", "id", "none");
    }
}

char *tly_codec_config_json(const struct tly_codec *c)
{
    json_t *j = tly__codec_config(c);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return text;
}

/* numcodecs' get_config(): the compressor as zarr-python writes it (null for none). */
static json_t *compressor(const struct tly_codec *c)
{
    if (c->id == TLY_CODEC_NONE)
        return json_null();
    json_t *j = tly__codec_config(c);
    /* numcodecs 0.11 writes {"id", "level"}; "checksum" only when asked for, so that it still reads ours. */
    if (j && c->id == TLY_CODEC_ZSTD && !c->zstd.checksum)
        json_object_del(j, "checksum");
    return j;
}

json_t *tly__v2_doc(const struct tly_meta *m)
{
    char dtype[8];
    json_t *root =
        json_pack("{s:o, s:o, s:s#, s:s, s:o, s:n, s:s, s:o, s:i}", "chunks", tly__json_dims_new(m->chunks, m->rank),
                  "compressor", compressor(&m->codec), "dimension_separator", &m->separator, 1, "dtype",
                  tly_dtype_numpy(&m->dtype, dtype), "fill_value", tly__json_fill_placeholder(), "filters", "order",
                  "C", "shape", tly__json_dims_new(m->shape, m->rank), "zarr_format", 2);
    if (root == NULL)
        tly_fail(-ENOMEM, DOC ": out of memory building the document");
    return root;
}
