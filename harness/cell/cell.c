/* The cell: parsed and validated in one place (see cell.h), and the array metadata it describes. */
#include "cell/cell.h"

#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* Every key a cell may have, with its JSON type; anything else is a typo and refused. */
struct key {
    const char *name;
    json_type type; /* JSON_TRUE stands for a boolean */
};

static const struct key keys[] = {
    {"scenario", JSON_STRING},
    {"impl", JSON_STRING},
    {"op", JSON_STRING},
    {"store", JSON_STRING},
    {"codec", JSON_STRING},
    {"codec_spec", JSON_STRING},
    {"format", JSON_STRING},
    {"layout", JSON_STRING},
    {"dtype", JSON_STRING},
    {"shape", JSON_ARRAY},
    {"chunks", JSON_ARRAY},
    {"threads", JSON_INTEGER},
    {"io_concurrency", JSON_INTEGER},
    {"memory_limit", JSON_INTEGER},
    {"part_size", JSON_INTEGER},
    {"verify", JSON_TRUE},
    {"baseline", JSON_TRUE},
    {"budgets", JSON_OBJECT},
    {"program", JSON_STRING},
    {"program_path", JSON_STRING},
    {"dir", JSON_STRING},
    {"kind", JSON_STRING},
    {"about", JSON_STRING},
    {"index", JSON_INTEGER},
    {"zstd_level", JSON_INTEGER},
    {"impl_index", JSON_INTEGER},
    {"inner_chunks", JSON_ARRAY},
    {"index_location", JSON_STRING},
    {"region", JSON_ARRAY},
    {"object_chunks", JSON_ARRAY}, /* bench: an S3 write limit's objects (a sharded row's shard shape) */
};

static bool type_ok(json_t *v, json_type t)
{
    if (t == JSON_TRUE)
        return json_is_boolean(v);
    return json_typeof(v) == t;
}

static const char *type_name(json_type t)
{
    switch (t) {
    case JSON_STRING:
        return "a string";
    case JSON_ARRAY:
        return "a list";
    case JSON_INTEGER:
        return "a whole number";
    case JSON_OBJECT:
        return "an object";
    default:
        return "true or false";
    }
}

static int check_keys(json_t *j, const char *where)
{
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v)
    {
        size_t i = 0;
        while (i < sizeof keys / sizeof keys[0] && strcmp(keys[i].name, k) != 0)
            i++;
        if (i == sizeof keys / sizeof keys[0])
            return tly_fail(TLY_EFORMAT, "%s: unknown key '%s'", where, k);
        if (!type_ok(v, keys[i].type))
            return tly_fail(TLY_EFORMAT, "%s: '%s' must be %s", where, k, type_name(keys[i].type));
    }
    return 0;
}

static const char *str(json_t *j, const char *k)
{
    return json_string_value(json_object_get(j, k));
}

/* @p v must be one of the words in @p allowed (NULL-terminated). */
static int one_of(const char *where, const char *key, const char *v, const char *const *allowed)
{
    char list[256];
    size_t at = 0;
    list[0] = '\0';
    for (int i = 0; allowed[i]; i++) {
        if (strcmp(v, allowed[i]) == 0)
            return 0;
        if (at < sizeof list)
            at += (size_t)snprintf(list + at, sizeof list - at, "%s%s", i ? ", " : "", allowed[i]);
    }
    return tly_fail(TLY_EFORMAT, "%s: %s '%s' is not one of %s", where, key, v, list);
}

static int parse_dims(json_t *a, const char *where, const char *key, uint64_t *out)
{
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        if (!json_is_integer(v) || json_integer_value(v) <= 0)
            return tly_fail(TLY_EFORMAT, "%s: %s[%zu] must be a positive whole number", where, key, i);
        out[i] = (uint64_t)json_integer_value(v);
    }
    return 0;
}

/* Sharding (inner_chunks: the chunks are the shards) and a region to read (a list of [start, stop]). */
static int parse_layout(json_t *j, const char *where, struct tly_h_cell *c)
{
    json_t *inner = json_object_get(j, "inner_chunks"), *region = json_object_get(j, "region"), *v;
    const char *loc = str(j, "index_location");
    int err;
    if (inner) {
        if (json_array_size(inner) != (size_t)c->rank)
            return tly_fail(TLY_EFORMAT, "%s: inner_chunks must have the shape's %d dimensions", where, c->rank);
        if ((err = parse_dims(inner, where, "inner_chunks", c->inner)))
            return err;
        for (int d = 0; d < c->rank; d++)
            if (c->chunks[d] % c->inner[d] != 0)
                return tly_fail(TLY_EFORMAT, "%s: inner_chunks[%d] %llu does not divide the shard's %llu", where, d,
                                (unsigned long long)c->inner[d], (unsigned long long)c->chunks[d]);
        c->sharded = true;
    }
    if (loc && (!inner || (strcmp(loc, "start") != 0 && strcmp(loc, "end") != 0)))
        return tly_fail(TLY_EFORMAT, "%s: index_location must be \"start\" or \"end\", with inner_chunks", where);
    c->index_start = loc && strcmp(loc, "start") == 0;
    if (!region)
        return 0;
    size_t i;
    if (json_array_size(region) != (size_t)c->rank)
        return tly_fail(TLY_EFORMAT, "%s: region must have the shape's %d dimensions", where, c->rank);
    c->region.rank = c->rank;
    json_array_foreach(region, i, v)
    {
        json_t *a = json_array_get(v, 0), *b = json_array_get(v, 1);
        if (json_array_size(v) != 2 || !json_is_integer(a) || !json_is_integer(b) || json_integer_value(a) < 0 ||
            json_integer_value(b) <= json_integer_value(a) || (uint64_t)json_integer_value(b) > c->shape[i])
            return tly_fail(TLY_EFORMAT, "%s: region[%zu] must be [start, stop] with 0 <= start < stop <= %llu", where,
                            i, (unsigned long long)c->shape[i]);
        c->region.start[i] = (uint64_t)json_integer_value(a);
        c->region.stop[i] = (uint64_t)json_integer_value(b);
    }
    c->has_region = true;
    return 0;
}

static int parse_array(json_t *j, const char *where, struct tly_h_cell *c)
{
    json_t *shape = json_object_get(j, "shape"), *chunks = json_object_get(j, "chunks");
    const char *dtype = str(j, "dtype");
    if (!shape && !chunks && !dtype && c->program)
        return 0; /* a custom program brings its own array */
    if (!shape || !chunks || !dtype)
        return tly_fail(TLY_EFORMAT, "%s: needs dtype, shape and chunks", where);
    size_t rank = json_array_size(shape);
    if (rank == 0 || rank > TLY_MAX_RANK || json_array_size(chunks) != rank)
        return tly_fail(TLY_EFORMAT, "%s: shape and chunks must be lists of the same length, 1 to %d", where,
                        TLY_MAX_RANK);
    int err = tly_dtype_from_numpy(dtype, &c->dtype);
    if (err)
        return tly_fail(err, "%s: dtype '%s': %s", where, dtype, tly_errmsg());
    c->rank = (int)rank;
    if ((err = parse_dims(shape, where, "shape", c->shape)) || (err = parse_dims(chunks, where, "chunks", c->chunks)))
        return err;
    uint64_t bytes = c->dtype.size;
    for (int d = 0; d < c->rank; d++)
        if (__builtin_mul_overflow(bytes, c->shape[d], &bytes) || bytes > ((uint64_t)1 << 44))
            return tly_fail(TLY_EFORMAT, "%s: the array is larger than 16 TiB", where);
    return parse_layout(j, where, c);
}

static int parse_opts(json_t *j, const char *where, struct tly_h_cell *c)
{
    /* the bounds are the engine's (tally/opts.h): a key given must lie in them, one left out is the default (0) */
    static const struct {
        const char *key;
        enum tly_opt opt;
    } nums[] = {{"threads", TLY_OPT_THREADS},
                {"io_concurrency", TLY_OPT_IO_CONCURRENCY},
                {"memory_limit", TLY_OPT_MEMORY_LIMIT},
                {"part_size", TLY_OPT_PART_SIZE}};
    long long v[4];
    for (int i = 0; i < 4; i++) {
        json_t *x = json_object_get(j, nums[i].key);
        const struct tly_opt_def *d = tly_opt_def(nums[i].opt);
        v[i] = x ? json_integer_value(x) : 0;
        if (x && (v[i] < 0 || (uint64_t)v[i] < d->lo || (uint64_t)v[i] > d->hi))
            return tly_fail(TLY_EFORMAT, "%s: %s %lld is outside %llu..%llu", where, nums[i].key, v[i],
                            (unsigned long long)d->lo, (unsigned long long)d->hi);
    }
    c->opts = (struct tly_io_opts){
        .threads = (int)v[0], .io_concurrency = (int)v[1], .memory_limit = (uint64_t)v[2], .part_size = (size_t)v[3]};
    return 0;
}

int tly_h_cell_parse(json_t *j, const char *where, struct tly_h_cell *c)
{
    static const char *const ops[] = {"write", "read", NULL}, *const stores[] = {"local", "s3", NULL};
    static const char *const formats[] = {"v2", "v3", NULL};
    const char *const *codecs = tly_codec_names(); /* the registry's: one list for every room and adapter */
    memset(c, 0, sizeof *c);
    if (!json_is_object(j))
        return tly_fail(TLY_EFORMAT, "%s: a cell must be an object", where);
    int err = check_keys(j, where);
    if (err)
        return err;
    c->scenario = str(j, "scenario");
    c->impl = str(j, "impl") ? str(j, "impl") : "tally";
    c->op = str(j, "op");
    c->store = str(j, "store") ? str(j, "store") : "local";
    c->codec = str(j, "codec");
    c->codec_spec = str(j, "codec_spec");
    c->format = str(j, "format") ? str(j, "format") : "v2";
    c->layout = str(j, "layout") ? str(j, "layout") : "";
    c->program = str(j, "program_path") ? str(j, "program_path") : str(j, "program");
    c->dir = str(j, "dir");
    c->verify = !json_is_false(json_object_get(j, "verify"));
    c->baseline = !json_is_false(json_object_get(j, "baseline"));
    c->index = json_object_get(j, "index") ? json_integer_value(json_object_get(j, "index")) : -1;
    c->budgets = json_object_get(j, "budgets");
    if (c->scenario == NULL || c->op == NULL)
        return tly_fail(TLY_EFORMAT, "%s: needs 'scenario' and 'op'", where);
    if ((err = one_of(where, "op", c->op, ops)) || (err = one_of(where, "store", c->store, stores)) ||
        (err = one_of(where, "format", c->format, formats)) ||
        (c->codec && (err = one_of(where, "codec", c->codec, codecs))))
        return err;
    if (c->codec_spec == NULL)
        c->codec_spec = c->codec ? c->codec : "none";
    struct tly_codec probe;
    if ((err = tly_codec_parse(c->codec_spec, &probe)))
        return tly_fail(err, "%s: codec '%s': %s", where, c->codec_spec, tly_errmsg());
    if (c->codec == NULL) { /* the spec's codec, by the registry's name for it (gzip:level=5 is gzip) */
        c->codec = tly_codec_name(probe.id);
        if ((err = one_of(where, "codec", c->codec, codecs)))
            return err;
    }
    if ((err = parse_array(j, where, c)) || (err = parse_opts(j, where, c)))
        return err;
    if (c->budgets && (err = tly_h_budgets_validate(c->budgets, where)))
        return err;
    c->json = json_incref(j);
    return 0;
}

void tly_h_cell_release(struct tly_h_cell *c)
{
    json_decref(c->json);
    c->json = NULL;
}

uint64_t tly_h_cell_bytes(const struct tly_h_cell *c)
{
    uint64_t bytes = c->rank ? c->dtype.size : 0;
    for (int d = 0; d < c->rank; d++)
        bytes *= c->shape[d];
    return bytes;
}

int tly_h_cell_meta(const struct tly_h_cell *c, struct tly_meta *m)
{
    int err = tly_h_build_meta(c->format, &c->dtype, c->rank, c->shape, c->chunks, c->codec_spec, NULL, m);
    return !err && c->sharded ? tly_h_meta_shard(m, c->inner, c->index_start, false) : err;
}

uint64_t tly_h_cell_op_bytes(const struct tly_h_cell *c)
{
    return c->has_region ? tly_region_count(&c->region) * c->dtype.size : tly_h_cell_bytes(c);
}

int tly_h_build_meta(const char *format, const struct tly_dtype *dt, int rank, const uint64_t *shape,
                     const uint64_t *chunks, const char *codec, const char *separator, struct tly_meta *m)
{
    memset(m, 0, sizeof *m);
    m->zarr_format = 2;
    if (format && strcmp(format, "v3") == 0)
        m->zarr_format = 3;
    else if (format && strcmp(format, "v2") != 0)
        return tly_fail(TLY_EUSAGE, "format '%s': want v2 or v3", format);
    m->dtype = *dt;
    m->rank = rank;
    for (int d = 0; d < rank; d++) {
        m->shape[d] = shape[d];
        m->chunks[d] = chunks ? chunks[d] : (shape[d] ? shape[d] : 1);
    }
    int err = tly_codec_parse(codec ? codec : "none", &m->codec);
    if (err)
        return err;
    m->codec.blosc.typesize = m->dtype.size;
    m->has_fill = true; /* zeros, as zarr-python's default fill_value 0 */
    m->separator = m->zarr_format == 3 ? '/' : '.';
    m->v3_default_keys = true;
    if (separator) {
        if (strcmp(separator, ".") != 0 && strcmp(separator, "/") != 0)
            return tly_fail(TLY_EUSAGE, "separator '%s': want . or /", separator);
        m->separator = separator[0];
    }
    return 0;
}

int tly_h_meta_shard(struct tly_meta *m, const uint64_t *inner, bool index_start, bool crc32c)
{
    if (m->zarr_format != 3)
        return tly_fail(TLY_EUSAGE, "sharding is Zarr v3 only (use --format v3)");
    for (int d = 0; d < m->rank; d++) {
        if (inner[d] == 0 || m->chunks[d] % inner[d] != 0)
            return tly_fail(TLY_EUSAGE, "inner chunk %llu does not divide the shard's %llu (dimension %d)",
                            (unsigned long long)inner[d], (unsigned long long)m->chunks[d], d);
        m->shard.inner[d] = inner[d];
    }
    m->shard.on = true;
    m->shard.index_start = index_start;
    m->shard.index_crc = true; /* the spec's default index codecs: bytes, crc32c */
    m->crc32c = crc32c;
    return 0;
}

json_t *tly_h_codec_json(const struct tly_codec *c)
{
    char *text = tly_codec_config_json(c);
    json_t *j = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    return j ? j : json_null();
}
