/* Zarr v3 zarr.json (array nodes), as the v3 spec defines it and zarrita 0.7 reads and writes it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "meta/internal.h"

#define DOC TLY__V3

/* Where a codec sits in the chain: the spec's order is array->bytes, then bytes->bytes (a compressor,
 * then crc32c, which must be last). */
enum chain { CHAIN_START, CHAIN_BYTES, CHAIN_COMPRESSED, CHAIN_CRC };

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

static int parse_gzip(json_t *cfg, struct tly_codec *c)
{
    long long level;
    json_t *v;
    c->id = TLY_CODEC_GZIP;
    TLY__TRY(tly__json_field(DOC, cfg, "level", &v));
    TLY__TRY(tly__json_int(DOC, "gzip 'level'", v, 0, 9, &level));
    c->gzip.level = (int)level;
    return 0;
}

static int parse_codec(const char *name, json_t *cfg, struct tly_meta *m, enum chain *at, bool inner)
{
    if (*at == CHAIN_CRC)
        return tly_fail(TLY_EUNSUPPORTED, DOC ": codec '%s' after crc32c is not supported", name);
    if (strcmp(name, "sharding_indexed") == 0)
        return tly_fail(TLY_EUNSUPPORTED, inner ? DOC
                                              ": nested sharding (sharding_indexed inside a shard) is not supported"
                                                : DOC ": codec 'sharding_indexed' must be the array's only codec");
    if (strcmp(name, "bytes") == 0) {
        if (*at != CHAIN_START)
            return tly_fail(TLY_EFORMAT, DOC ": codec 'bytes' must come first, once");
        *at = CHAIN_BYTES;
        return parse_bytes(cfg, &m->dtype);
    }
    if (strcmp(name, "crc32c") == 0) {
        *at = CHAIN_CRC;
        m->crc32c = true;
        return 0;
    }
    bool zstd = strcmp(name, "zstd") == 0, gzip = strcmp(name, "gzip") == 0;
    if (!zstd && !gzip && strcmp(name, "blosc") != 0)
        return tly_fail(TLY_EUNSUPPORTED,
                        DOC ": codec '%s' is not supported (only bytes, then blosc, zstd or gzip, then crc32c; or "
                            "sharding_indexed of those)",
                        name);
    if (*at == CHAIN_COMPRESSED)
        return tly_fail(TLY_EUNSUPPORTED, DOC ": codec '%s' after another compressor is not supported", name);
    if ((zstd || gzip) && cfg == NULL)
        return tly_fail(TLY_EFORMAT, DOC ": codec '%s' needs a configuration with 'level'", name);
    *at = CHAIN_COMPRESSED;
    return zstd ? parse_zstd(cfg, &m->codec) : gzip ? parse_gzip(cfg, &m->codec) : parse_blosc(cfg, &m->codec);
}

/* A list of codecs (the array's, or a shard's inner chunks'): bytes, a compressor, crc32c. */
static int parse_chain(const char *what, json_t *list, struct tly_meta *m, bool inner)
{
    json_t *c, *cfg;
    const char *name;
    enum chain at = CHAIN_START;
    size_t i;
    if (!json_is_array(list))
        return tly_fail(TLY_EFORMAT, DOC ": field '%s' must be a list", what);
    json_array_foreach(list, i, c)
    {
        TLY__TRY(tly__json_named(DOC, "codec", c, &name, &cfg));
        TLY__TRY(parse_codec(name, cfg, m, &at, inner));
    }
    return 0;
}

/* sharding_indexed's index_codecs: bytes (little-endian), then optionally crc32c. */
static int parse_index_codecs(json_t *list, struct tly_shard *sh)
{
    json_t *c, *cfg;
    const char *name;
    size_t i;
    if (!json_is_array(list) || json_array_size(list) == 0)
        return tly_fail(TLY_EFORMAT, DOC ": sharding_indexed 'index_codecs' must be a list that starts with bytes");
    sh->index_crc = false;
    json_array_foreach(list, i, c)
    {
        TLY__TRY(tly__json_named(DOC, "index codec", c, &name, &cfg));
        if (i == 0 && strcmp(name, "bytes") == 0) {
            const char *e = json_string_value(json_object_get(cfg, "endian"));
            if (e != NULL && strcmp(e, "little") != 0)
                return tly_fail(TLY_EUNSUPPORTED,
                                DOC ": sharding_indexed index endian '%s' is not supported (only little)", e);
        } else if (i == 1 && strcmp(name, "crc32c") == 0) {
            sh->index_crc = true;
        } else {
            return tly_fail(TLY_EUNSUPPORTED,
                            DOC ": sharding_indexed index codec '%s' is not supported (only bytes, then crc32c)", name);
        }
    }
    return 0;
}

static int parse_sharding(json_t *cfg, struct tly_meta *m)
{
    struct tly_shard *sh = &m->shard;
    json_t *v;
    int rank;
    if (cfg == NULL)
        return tly_fail(TLY_EFORMAT, DOC ": codec 'sharding_indexed' needs a configuration");
    sh->on = true;
    TLY__TRY(tly__json_dims(DOC, cfg, "chunk_shape", 1, sh->inner, &rank));
    if (rank != m->rank)
        return tly_fail(TLY_EFORMAT, DOC ": sharding_indexed 'chunk_shape' has %d dimensions, the array %d", rank,
                        m->rank);
    for (int d = 0; d < rank; d++)
        if (m->chunks[d] % sh->inner[d] != 0)
            return tly_fail(TLY_EFORMAT,
                            DOC ": sharding_indexed inner chunk %llu does not divide the shard's %llu (dimension %d)",
                            (unsigned long long)sh->inner[d], (unsigned long long)m->chunks[d], d);
    TLY__TRY(tly__json_field(DOC, cfg, "codecs", &v));
    TLY__TRY(parse_chain("sharding_indexed codecs", v, m, true));
    sh->index_crc = true;
    if ((v = json_object_get(cfg, "index_codecs")) != NULL)
        TLY__TRY(parse_index_codecs(v, sh));
    const char *loc = json_string_value(v = json_object_get(cfg, "index_location"));
    if (v != NULL && (loc == NULL || (strcmp(loc, "start") != 0 && strcmp(loc, "end") != 0)))
        return tly_fail(TLY_EFORMAT, DOC ": sharding_indexed 'index_location' must be \"start\" or \"end\"");
    sh->index_start = loc != NULL && strcmp(loc, "start") == 0;
    return 0;
}

static int parse_codecs(json_t *root, struct tly_meta *m)
{
    json_t *list, *first, *cfg;
    const char *name;
    TLY__TRY(tly__json_field(DOC, root, "codecs", &list));
    if (!json_is_array(list))
        return tly_fail(TLY_EFORMAT, DOC ": field 'codecs' must be a list");
    m->codec = (struct tly_codec){.id = TLY_CODEC_NONE};
    /* Without a bytes codec, zarrita assumes {"endian": "little"}: so does tally. */
    m->dtype.endian = m->dtype.size == 1 ? '|' : '<';
    first = json_array_get(list, 0);
    if (first != NULL && tly__json_named(DOC, "codec", first, &name, &cfg) == 0 &&
        strcmp(name, "sharding_indexed") == 0) {
        if (json_array_size(list) != 1)
            return tly_fail(TLY_EUNSUPPORTED, DOC ": codecs after sharding_indexed are not supported");
        TLY__TRY(parse_sharding(cfg, m));
    } else {
        tly_errclear();
        TLY__TRY(parse_chain("codecs", list, m, false));
        if (m->crc32c)
            return tly_fail(TLY_EUNSUPPORTED, DOC ": codec 'crc32c' is supported inside sharding_indexed only");
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
    if (c->id == TLY_CODEC_GZIP)
        return json_pack("{s:s, s:{s:i}}", "name", "gzip", "configuration", "level", c->gzip.level);
    return json_pack("{s:s, s:{s:s, s:i, s:s, s:i, s:I}}", "name", "blosc", "configuration", "cname", c->blosc.cname,
                     "clevel", c->blosc.clevel, "shuffle", shuffles[shuffle], "typesize", (int)m->dtype.size,
                     "blocksize", (json_int_t)c->blosc.blocksize);
}

/* Append @p item (a new reference, NULL when building it failed) to @p list; NULL (and @p list freed) on failure. */
static json_t *append(json_t *list, json_t *item)
{
    if (list == NULL || item == NULL) {
        json_decref(list);
        json_decref(item);
        return NULL;
    }
    if (json_array_append_new(list, item) != 0) { /* it takes item's reference either way */
        json_decref(list);
        return NULL;
    }
    return list;
}

/* The chunk's codecs (an unsharded array's, or a shard's inner chunks'): bytes, a compressor, crc32c. */
static json_t *chain(const struct tly_meta *m)
{
    /* 1-byte types have no byte order: "little" is what zarrita writes and reads for them too. */
    json_t *list = json_pack("[{s:s, s:{s:s}}]", "name", "bytes", "configuration", "endian",
                             m->dtype.endian == '>' && m->dtype.size > 1 ? "big" : "little");
    if (list != NULL && m->codec.id != TLY_CODEC_NONE)
        list = append(list, compressor(m));
    if (list != NULL && m->crc32c)
        list = append(list, json_pack("{s:s}", "name", "crc32c"));
    return list;
}

static json_t *codecs(const struct tly_meta *m)
{
    const struct tly_shard *sh = &m->shard;
    if (!sh->on)
        return chain(m);
    json_t *index = json_pack("[{s:s, s:{s:s}}]", "name", "bytes", "configuration", "endian", "little");
    if (index != NULL && sh->index_crc)
        index = append(index, json_pack("{s:s}", "name", "crc32c"));
    json_t *inner = chain(m);
    if (index == NULL || inner == NULL) {
        json_decref(index);
        json_decref(inner);
        return NULL;
    }
    return json_pack("[{s:s, s:{s:o, s:o, s:o, s:s}}]", "name", "sharding_indexed", "configuration", "chunk_shape",
                     tly__json_dims_new(sh->inner, m->rank), "codecs", inner, "index_codecs", index, "index_location",
                     sh->index_start ? "start" : "end");
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
