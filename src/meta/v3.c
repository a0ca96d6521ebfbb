/* Zarr v3 zarr.json (array nodes), as the v3 spec defines it and zarrita 0.7 reads and writes it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "meta/internal.h"

#define DOC TLY__V3

/* Where a codec sits in the chain: the spec's order is array->bytes, then bytes->bytes. */
enum chain { CHAIN_START, CHAIN_BYTES, CHAIN_COMPRESSED };

/* The spec's blosc shuffle names, indexed by numcodecs' numbers (TLY_NOSHUFFLE, ...). */
static const char *const shuffles[] = {"noshuffle", "shuffle", "bitshuffle"};

static const char *const known_fields[] = {
    "zarr_format", "node_type", "shape",      "data_type",       "chunk_grid",          "chunk_key_encoding",
    "fill_value",  "codecs",    "attributes", "dimension_names", "storage_transformers"};

static int parse_format(json_t *root)
{
    json_t *v;
    TLY__TRY(tly__json_field(DOC, root, "zarr_format", &v));
    if (!json_is_integer(v) || json_integer_value(v) != 3)
        return tly_fail(TLY_EFORMAT, DOC ": field 'zarr_format' must be 3");
    TLY__TRY(tly__json_field(DOC, root, "node_type", &v));
    const char *s = json_string_value(v);
    if (s != NULL && strcmp(s, "array") == 0)
        return 0;
    if (s != NULL && strcmp(s, "group") == 0)
        return tly_fail(TLY_EUNSUPPORTED, DOC ": node_type 'group': this is a group, not an array");
    return tly_fail(TLY_EFORMAT, DOC ": field 'node_type' must be \"array\"");
}

static bool known(const char *key)
{
    for (size_t i = 0; i < sizeof known_fields / sizeof known_fields[0]; i++)
        if (strcmp(key, known_fields[i]) == 0)
            return true;
    return false;
}

/* The spec: an unknown member is an extension that must be understood unless it says otherwise. */
static int check_fields(json_t *root)
{
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        json_t *must = json_object_get(v, "must_understand");
        if (!known(key) && !json_is_false(must))
            return tly_fail(TLY_EUNSUPPORTED, DOC ": field '%s' is an extension tally does not support", key);
    }
    v = json_object_get(root, "storage_transformers");
    if (v != NULL && !json_is_array(v))
        return tly_fail(TLY_EFORMAT, DOC ": field 'storage_transformers' must be a list");
    if (json_array_size(v) > 0) {
        const char *name = json_string_value(json_object_get(json_array_get(v, 0), "name"));
        return tly_fail(TLY_EUNSUPPORTED, DOC ": storage transformer '%s' is not supported", name ? name : "?");
    }
    return 0;
}

static int parse_dtype(json_t *root, struct tly_dtype *dt)
{
    json_t *v, *cfg;
    const char *name;
    TLY__TRY(tly__json_field(DOC, root, "data_type", &v));
    TLY__TRY(tly__json_named(DOC, "data_type", v, &name, &cfg));
    if (!json_is_string(v))
        return tly_fail(TLY_EUNSUPPORTED, DOC ": data_type '%s' is not supported (an extension type)", name);
    int rc = tly_dtype_from_v3(name, dt);
    if (rc != 0)
        tly_err_prefix(DOC);
    return rc;
}

static int parse_grid(json_t *root, struct tly_meta *m)
{
    json_t *v, *cfg;
    const char *name;
    int chunk_rank;
    TLY__TRY(tly__json_dims(DOC, root, "shape", 0, m->shape, &m->rank));
    TLY__TRY(tly__json_field(DOC, root, "chunk_grid", &v));
    TLY__TRY(tly__json_named(DOC, "chunk_grid", v, &name, &cfg));
    if (strcmp(name, "regular") != 0)
        return tly_fail(TLY_EUNSUPPORTED, DOC ": chunk_grid '%s' is not supported (only regular)", name);
    if (cfg == NULL)
        return tly_fail(TLY_EFORMAT, DOC ": chunk_grid 'regular' needs a configuration with 'chunk_shape'");
    TLY__TRY(tly__json_dims(DOC, cfg, "chunk_shape", 1, m->chunks, &chunk_rank));
    return tly__meta_check_grid(DOC, m, chunk_rank);
}

static int parse_key_encoding(json_t *root, struct tly_meta *m)
{
    json_t *v, *cfg;
    const char *name;
    TLY__TRY(tly__json_field(DOC, root, "chunk_key_encoding", &v));
    TLY__TRY(tly__json_named(DOC, "chunk_key_encoding", v, &name, &cfg));
    m->v3_default_keys = strcmp(name, "default") == 0;
    if (!m->v3_default_keys && strcmp(name, "v2") != 0)
        return tly_fail(TLY_EUNSUPPORTED, DOC ": chunk_key_encoding '%s' is not supported (only default, v2)", name);
    m->separator = m->v3_default_keys ? '/' : '.';
    v = json_object_get(cfg, "separator");
    const char *s = json_string_value(v);
    if (v == NULL)
        return 0;
    if (s == NULL || (strcmp(s, ".") != 0 && strcmp(s, "/") != 0))
        return tly_fail(TLY_EFORMAT, DOC ": chunk_key_encoding separator must be \".\" or \"/\"");
    m->separator = s[0];
    return 0;
}

static int parse_bytes(json_t *cfg, struct tly_dtype *dt)
{
    json_t *v = json_object_get(cfg, "endian");
    const char *s = json_string_value(v);
    if (v == NULL && dt->size == 1)
        return 0;
    if (v == NULL)
        return tly_fail(TLY_EFORMAT, DOC ": codec 'bytes' needs 'endian' for %s", tly_dtype_v3_name(dt));
    if (s == NULL || (strcmp(s, "little") != 0 && strcmp(s, "big") != 0))
        return tly_fail(TLY_EFORMAT, DOC ": codec 'bytes': endian must be \"little\" or \"big\"");
    if (dt->size > 1)
        dt->endian = s[0] == 'b' ? '>' : '<';
    return 0;
}

static int parse_blosc(json_t *cfg, struct tly_codec *c)
{
    long long typesize;
    json_t *v;
    c->id = TLY_CODEC_BLOSC;
    TLY__TRY(tly__blosc_common(DOC, cfg, c));
    /* typesize only tunes the shuffle; it is taken from the dtype (set by the caller) either way. */
    if ((v = json_object_get(cfg, "typesize")) != NULL)
        TLY__TRY(tly__json_int(DOC, "blosc 'typesize'", v, 1, 255, &typesize));
    json_t *shuffle = json_object_get(cfg, "shuffle");
    c->blosc.shuffle = TLY_SHUFFLE;
    if (shuffle == NULL)
        return 0;
    for (int i = 0; i < 3; i++)
        if (json_is_string(shuffle) && strcmp(json_string_value(shuffle), shuffles[i]) == 0) {
            c->blosc.shuffle = i;
            return 0;
        }
    return tly_fail(TLY_EFORMAT, DOC ": blosc 'shuffle' must be \"noshuffle\", \"shuffle\" or \"bitshuffle\"");
}

static int parse_zstd(json_t *cfg, struct tly_codec *c)
{
    long long level;
    json_t *v;
    c->id = TLY_CODEC_ZSTD;
    TLY__TRY(tly__json_field(DOC, cfg, "level", &v));
    TLY__TRY(tly__json_int(DOC, "zstd 'level'", v, -131072, 22, &level));
    c->zstd.level = (int)level;
    if ((v = json_object_get(cfg, "checksum")) != NULL && !json_is_boolean(v))
        return tly_fail(TLY_EFORMAT, DOC ": zstd 'checksum' must be true or false");
    c->zstd.checksum = json_is_true(v);
    return 0;
}

static int parse_codec(const char *name, json_t *cfg, struct tly_meta *m, enum chain *at)
{
    if (strcmp(name, "bytes") == 0) {
        if (*at != CHAIN_START)
            return tly_fail(TLY_EFORMAT, DOC ": codec 'bytes' must come first, once");
        *at = CHAIN_BYTES;
        return parse_bytes(cfg, &m->dtype);
    }
    bool zstd = strcmp(name, "zstd") == 0;
    if (!zstd && strcmp(name, "blosc") != 0)
        return tly_fail(TLY_EUNSUPPORTED, DOC ": codec '%s' is not supported (only bytes, then blosc or zstd)", name);
    if (*at == CHAIN_COMPRESSED)
        return tly_fail(TLY_EUNSUPPORTED, DOC ": codec '%s' after another compressor is not supported", name);
    if (zstd && cfg == NULL)
        return tly_fail(TLY_EFORMAT, DOC ": codec 'zstd' needs a configuration with 'level'");
    *at = CHAIN_COMPRESSED;
    return zstd ? parse_zstd(cfg, &m->codec) : parse_blosc(cfg, &m->codec);
}

static int parse_codecs(json_t *root, struct tly_meta *m)
{
    json_t *list, *c, *cfg;
    const char *name;
    enum chain at = CHAIN_START;
    size_t i;
    TLY__TRY(tly__json_field(DOC, root, "codecs", &list));
    if (!json_is_array(list))
        return tly_fail(TLY_EFORMAT, DOC ": field 'codecs' must be a list");
    m->codec = (struct tly_codec){.id = TLY_CODEC_NONE};
    /* Without a bytes codec, zarrita assumes {"endian": "little"}: so does tally. */
    m->dtype.endian = m->dtype.size == 1 ? '|' : '<';
    json_array_foreach(list, i, c)
    {
        TLY__TRY(tly__json_named(DOC, "codec", c, &name, &cfg));
        TLY__TRY(parse_codec(name, cfg, m, &at));
    }
    m->codec.blosc.typesize = m->dtype.size;
    return 0;
}

static int parse_extras(json_t *root, struct tly_meta *m)
{
    json_t *names = json_object_get(root, "dimension_names");
    if (names != NULL && !json_is_null(names) && (!json_is_array(names) || json_array_size(names) != (size_t)m->rank))
        return tly_fail(TLY_EFORMAT, DOC ": field 'dimension_names' must be a list of %d names", m->rank);
    json_t *attrs = json_object_get(root, "attributes");
    if (attrs == NULL)
        return 0;
    if (!json_is_object(attrs))
        return tly_fail(TLY_EFORMAT, DOC ": field 'attributes' must be an object");
    m->attributes_json = json_dumps(attrs, JSON_COMPACT);
    return m->attributes_json ? 0 : tly_fail(-ENOMEM, DOC ": out of memory copying 'attributes'");
}

static int parse(json_t *root, struct tly_meta *m)
{
    m->zarr_format = 3;
    TLY__TRY(parse_format(root));
    TLY__TRY(check_fields(root));
    TLY__TRY(parse_dtype(root, &m->dtype));
    TLY__TRY(parse_grid(root, m));
    TLY__TRY(parse_key_encoding(root, m));
    TLY__TRY(parse_codecs(root, m)); /* before the fill value: it sets the byte order */
    TLY__TRY(tly__fill_field(DOC, root, m));
    return parse_extras(root, m);
}

int tly_meta_parse_v3(const char *json, size_t n, struct tly_meta *out)
{
    return tly__meta_parse(DOC, json, n, out, parse);
}

static json_t *compressor(const struct tly_meta *m)
{
    const struct tly_codec *c = &m->codec;
    int shuffle = c->blosc.shuffle >= 0 && c->blosc.shuffle <= 2 ? c->blosc.shuffle : TLY_SHUFFLE;
    if (c->id == TLY_CODEC_ZSTD)
        return json_pack("{s:s, s:{s:i, s:b}}", "name", "zstd", "configuration", "level", c->zstd.level, "checksum",
                         c->zstd.checksum != 0);
    return json_pack("{s:s, s:{s:s, s:i, s:s, s:i, s:I}}", "name", "blosc", "configuration", "cname", c->blosc.cname,
                     "clevel", c->blosc.clevel, "shuffle", shuffles[shuffle], "typesize", (int)m->dtype.size,
                     "blocksize", (json_int_t)c->blosc.blocksize);
}

static json_t *codecs(const struct tly_meta *m)
{
    /* 1-byte types have no byte order: "little" is what zarrita writes and reads for them too. */
    json_t *list = json_pack("[{s:s, s:{s:s}}]", "name", "bytes", "configuration", "endian",
                             m->dtype.endian == '>' && m->dtype.size > 1 ? "big" : "little");
    if (list != NULL && m->codec.id != TLY_CODEC_NONE && json_array_append_new(list, compressor(m)) != 0) {
        json_decref(list);
        return NULL;
    }
    return list;
}

/* The caller's attributes text, or {} when there is none; NULL with a message when it is not an object. */
static json_t *attributes(const struct tly_meta *m)
{
    if (m->attributes_json == NULL)
        return json_object();
    json_error_t err;
    json_t *attrs = json_loads(m->attributes_json, 0, &err);
    if (json_is_object(attrs))
        return attrs;
    json_decref(attrs);
    tly_fail(TLY_EUSAGE, DOC ": attributes_json is not a JSON object (%s)", attrs ? "another JSON value" : err.text);
    return NULL;
}

json_t *tly__v3_doc(const struct tly_meta *m)
{
    json_t *attrs = attributes(m);
    if (attrs == NULL)
        return NULL;
    json_t *root = json_pack("{s:i, s:s, s:o, s:s, s:{s:s, s:{s:o}}, s:{s:s, s:{s:s#}}, s:o, s:o, s:o}", "zarr_format",
                             3, "node_type", "array", "shape", tly__json_dims_new(m->shape, m->rank), "data_type",
                             tly_dtype_v3_name(&m->dtype), "chunk_grid", "name", "regular", "configuration",
                             "chunk_shape", tly__json_dims_new(m->chunks, m->rank), "chunk_key_encoding", "name",
                             m->v3_default_keys ? "default" : "v2", "configuration", "separator", &m->separator, 1,
                             "fill_value", tly__json_fill_placeholder(), "codecs", codecs(m), "attributes", attrs);
    if (root == NULL)
        tly_fail(-ENOMEM, DOC ": out of memory building the document");
    return root;
}
