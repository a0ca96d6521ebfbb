/* The JSON side of metadata, shared by v2 and v3: loading, field checks, and emitting text. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meta/internal.h"

/* How the fill-value stand-in reads once jansson has dumped it. */
#define PLACEHOLDER "\x01tally:fill_value\x01"
#define PLACEHOLDER_DUMPED "\"\\u0001tally:fill_value\\u0001\""

static const char *const blosc_cnames[] = {"lz4", "lz4hc", "blosclz", "zstd", "zlib", "snappy"};

/*
 * The length of a bare fill-value token at @p s that jansson refuses but Python's json writes:
 * NaN, Infinity, -Infinity, or an integer above INT64_MAX (a uint64 fill value); 0 for anything else.
 */
static size_t quotable(const char *s, size_t n)
{
    static const char *const words[] = {"NaN", "Infinity", "-Infinity"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        size_t k = strlen(words[i]);
        if (n >= k && memcmp(s, words[i], k) == 0 && (n == k || !isalnum((unsigned char)s[k])))
            return k;
    }
    size_t k = 0;
    while (k < n && isdigit((unsigned char)s[k]))
        k++;
    if (k == 0 || (k < n && strchr(".eE", s[k]) != NULL))
        return 0;
    return k > 19 || (k == 19 && memcmp(s, "9223372036854775807", 19) > 0) ? k : 0;
}

/* Index just past the string literal that opens at @p i (or @p n when it does not close). */
static size_t string_end(const char *s, size_t n, size_t i)
{
    for (i++; i < n; i++) {
        if (s[i] == '\\')
            i++;
        else if (s[i] == '"')
            return i + 1;
    }
    return n;
}

static bool colon_follows(const char *s, size_t n, size_t i)
{
    while (i < n && isspace((unsigned char)s[i]))
        i++;
    return i < n && s[i] == ':';
}

/*
 * What requote() did: the quotes it put in, by their offsets in its output, so that an error jansson
 * finds in the quoted text is reported where it is in the document as written.
 */
struct quoting {
    size_t n;   /* quote characters put in (two per token) */
    size_t *at; /* their offsets in the output; NULL on the counting pass */
    size_t len; /* the output's length */
};

/*
 * Quote a bare token (quotable()) that is the value of the top-level "fill_value", so that the
 * fill-value parser sees it as a string. With @p out NULL, only counts (q->n, q->len): the caller
 * sizes @p out and q->at from that pass, then runs it again to write them.
 */
static void requote(const char *s, size_t n, char *out, struct quoting *q)
{
    size_t o = 0, nq = 0;
    int depth = 0;
    bool at_fill = false; /* just after the top-level key "fill_value" */
    for (size_t i = 0; i < n;) {
        if (s[i] == '"') {
            size_t j = string_end(s, n, i);
            at_fill = depth == 1 && j - i == 12 && memcmp(s + i, "\"fill_value\"", 12) == 0 && colon_follows(s, n, j);
            if (out)
                memcpy(out + o, s + i, j - i); /* JSON text, not payload */
            o += j - i;
            i = j;
            continue;
        }
        if (s[i] == ':' || isspace((unsigned char)s[i])) {
            if (out)
                out[o] = s[i];
            o++;
            i++;
            continue;
        }
        size_t k = at_fill ? quotable(s + i, n - i) : 0;
        at_fill = false;
        if (k > 0) {
            if (out) {
                q->at[nq] = o;
                q->at[nq + 1] = o + k + 1;
                out[o] = '"';
                memcpy(out + o + 1, s + i, k); /* JSON text, not payload */
                out[o + k + 1] = '"';
            }
            o += k + 2;
            nq += 2;
            i += k;
            continue;
        }
        depth += (s[i] == '{' || s[i] == '[') - (s[i] == '}' || s[i] == ']');
        if (out)
            out[o] = s[i];
        o++;
        i++;
    }
    q->n = nq;
    q->len = o;
}

/* The column jansson gave for an error in the quoted text, less the quotes put in before it on its line. */
static int unquoted_column(const char *text, const struct quoting *q, const json_error_t *e)
{
    size_t pos = e->position > 0 && (size_t)e->position <= q->len ? (size_t)e->position : q->len;
    size_t line = pos;
    while (line > 0 && text[line - 1] != '\n')
        line--;
    int shift = 0;
    for (size_t i = 0; i < q->n; i++)
        shift += q->at[i] >= line && q->at[i] < pos;
    return e->column > shift ? e->column - shift : e->column;
}

/*
 * A second try for text jansson refused: with bare NaN/Infinity or a big integer fill value quoted.
 * Returns 0 with @p root NULL when there was nothing to quote (@p err keeps the first error); when the
 * quoted text fails too, its error goes into @p err, at its place in the text as written.
 */
static int load_requoted(const char *text, size_t n, json_error_t *err, json_t **root)
{
    struct quoting q = {0};
    *root = NULL;
    requote(text, n, NULL, &q);
    if (q.n == 0)
        return 0;
    char *copy = malloc(q.len + 1);
    size_t *at = malloc(q.n * sizeof *at);
    int rc = copy && at ? 0 : -ENOMEM;
    if (rc == 0) {
        q.at = at;
        requote(text, n, copy, &q);
        copy[q.len] = '\0';
        json_error_t e2;
        *root = json_loadb(copy, q.len, JSON_REJECT_DUPLICATES, &e2);
        if (*root == NULL && (json_error_code(&e2) == json_error_out_of_memory || e2.text[0] == '\0'))
            rc = -ENOMEM;
        else if (*root == NULL) {
            *err = e2;
            err->column = unquoted_column(copy, &q, &e2);
        }
    }
    free(copy);
    free(at);
    return rc;
}

static int load(const char *doc, const char *text, size_t n, json_t **out)
{
    json_error_t err;
    json_t *root = json_loadb(text, n, JSON_REJECT_DUPLICATES, &err);
    /* jansson leaves the error text empty where an allocation failed (it sets one for every syntax error). */
    int rc = root == NULL && (json_error_code(&err) == json_error_out_of_memory || err.text[0] == '\0') ? -ENOMEM : 0;
    if (rc == 0 && root == NULL && text != NULL)
        rc = load_requoted(text, n, &err, &root);
    if (rc == -ENOMEM)
        return tly_fail(-ENOMEM, "%s: out of memory parsing JSON", doc);
    if (root == NULL)
        return tly_fail(TLY_EFORMAT, "%s: malformed JSON at line %d, column %d: %s", doc, err.line, err.column,
                        err.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return tly_fail(TLY_EFORMAT, "%s: not a JSON object", doc);
    }
    *out = root;
    return 0;
}

int tly_meta_attrs_check(const char *doc, const char *text, size_t n)
{
    json_error_t err;
    int rc = 0;
    TLY_STAGE(TLY_META)
    {
        json_t *root = json_loadb(text, n, JSON_REJECT_DUPLICATES, &err);
        if (root == NULL && (json_error_code(&err) == json_error_out_of_memory || err.text[0] == '\0'))
            rc = tly_fail(-ENOMEM, "%s: out of memory parsing JSON", doc);
        else if (root == NULL)
            rc = tly_fail(TLY_EFORMAT, "%s: malformed JSON at line %d, column %d: %s", doc, err.line, err.column,
                          err.text);
        else if (!json_is_object(root))
            rc = tly_fail(TLY_EFORMAT, "%s: not a JSON object", doc);
        json_decref(root);
    }
    return rc;
}

int tly__meta_parse(const char *doc, const char *text, size_t n, struct tly_meta *out, tly__meta_parse_fn fn)
{
    int rc = TLY_EINTERNAL;
    *out = (struct tly_meta){0};
    TLY_STAGE(TLY_META)
    {
        json_t *root = NULL;
        rc = load(doc, text, n, &root);
        if (rc == 0)
            rc = fn(root, out);
        json_decref(root);
        if (rc != 0) {
            free(out->attributes_json);
            *out = (struct tly_meta){0};
        }
    }
    return rc;
}

int tly__json_field(const char *doc, json_t *obj, const char *key, json_t **out)
{
    *out = json_object_get(obj, key);
    return *out ? 0 : tly_fail(TLY_EFORMAT, "%s: field '%s' is missing", doc, key);
}

int tly__json_int(const char *doc, const char *what, json_t *v, long long lo, long long hi, long long *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return tly_fail(TLY_EFORMAT, "%s: %s must be an integer in [%lld, %lld]", doc, what, lo, hi);
    *out = json_integer_value(v);
    return 0;
}

int tly__json_dims(const char *doc, json_t *obj, const char *key, uint64_t min, uint64_t *dims, int *rank)
{
    json_t *list, *v;
    TLY__TRY(tly__json_field(doc, obj, key, &list));
    if (!json_is_array(list))
        return tly_fail(TLY_EFORMAT, "%s: field '%s' must be a list of integers", doc, key);
    if (json_array_size(list) > TLY_MAX_RANK)
        return tly_fail(TLY_EUNSUPPORTED, "%s: rank %zu ('%s') is more than tally's limit of %d", doc,
                        json_array_size(list), key, TLY_MAX_RANK);
    size_t i;
    json_array_foreach(list, i, v)
    {
        if (!json_is_integer(v) || json_integer_value(v) < (long long)min)
            return tly_fail(TLY_EFORMAT, "%s: field '%s' must be a list of integers >= %llu (item %zu is not)", doc,
                            key, (unsigned long long)min, i);
        dims[i] = (uint64_t)json_integer_value(v);
    }
    *rank = (int)json_array_size(list);
    return 0;
}

int tly__meta_check_grid(const char *doc, const struct tly_meta *m, int chunk_rank)
{
    if (chunk_rank != m->rank)
        return tly_fail(TLY_EFORMAT, "%s: shape has %d dimensions but the chunk shape has %d", doc, m->rank,
                        chunk_rank);
    int rc = tly_grid_check(m->rank, m->shape, m->chunks, m->dtype.size);
    if (rc)
        tly_err_prefix("%s", doc);
    return rc;
}

int tly__json_named(const char *doc, const char *what, json_t *v, const char **name, json_t **cfg)
{
    *cfg = NULL;
    *name = json_string_value(v);
    if (*name != NULL)
        return 0;
    *name = json_string_value(json_object_get(v, "name"));
    if (*name == NULL)
        return tly_fail(TLY_EFORMAT, "%s: %s must be an object with a 'name'", doc, what);
    *cfg = json_object_get(v, "configuration");
    if (*cfg != NULL && !json_is_object(*cfg))
        return tly_fail(TLY_EFORMAT, "%s: %s '%s': 'configuration' must be an object", doc, what, *name);
    return 0;
}

static int blosc_cname(const char *doc, json_t *v, struct tly_codec *c)
{
    const char *s = json_string_value(v);
    if (s == NULL)
        return tly_fail(TLY_EFORMAT, "%s: blosc 'cname' must be a string", doc);
    for (size_t i = 0; i < sizeof blosc_cnames / sizeof blosc_cnames[0]; i++)
        if (strcmp(s, blosc_cnames[i]) == 0) {
            strcpy(c->blosc.cname, s); /* fits: one of the names above */
            return 0;
        }
    return tly_fail(TLY_EUNSUPPORTED, "%s: blosc cname '%s' is not supported", doc, s);
}

int tly__blosc_common(const char *doc, json_t *cfg, struct tly_codec *c)
{
    long long v;
    json_t *member;
    strcpy(c->blosc.cname, "lz4");
    c->blosc.clevel = 5;
    c->blosc.blocksize = 0;
    if ((member = json_object_get(cfg, "cname")) != NULL)
        TLY__TRY(blosc_cname(doc, member, c));
    if ((member = json_object_get(cfg, "clevel")) != NULL) {
        TLY__TRY(tly__json_int(doc, "blosc 'clevel'", member, 0, 9, &v));
        c->blosc.clevel = (int)v;
    }
    if ((member = json_object_get(cfg, "blocksize")) != NULL) {
        TLY__TRY(tly__json_int(doc, "blosc 'blocksize'", member, 0, INT32_MAX, &v));
        c->blosc.blocksize = (size_t)v;
    }
    return 0;
}

json_t *tly__json_dims_new(const uint64_t *dims, int rank)
{
    json_t *list = json_array();
    for (int d = 0; list != NULL && d < rank; d++)
        if (json_array_append_new(list, json_integer((json_int_t)dims[d])) != 0) {
            json_decref(list);
            list = NULL;
        }
    return list;
}

json_t *tly__json_fill_placeholder(void)
{
    return json_string(PLACEHOLDER);
}

/* What tly_meta_emit() can write; a message says what is wrong otherwise. */
static int check_emittable(const struct tly_meta *m)
{
    if (m->zarr_format != 2 && m->zarr_format != 3)
        return tly_fail(TLY_EUSAGE, "metadata: zarr_format %d is neither 2 nor 3", m->zarr_format);
    if (m->rank < 0 || m->rank > TLY_MAX_RANK)
        return tly_fail(TLY_EUSAGE, "metadata: rank %d is out of range", m->rank);
    if (m->separator != '.' && m->separator != '/')
        return tly_fail(TLY_EUSAGE, "metadata: separator '%c' is neither '.' nor '/'", m->separator);
    if (strcmp(tly_dtype_v3_name(&m->dtype), "?") == 0 || strchr("<>|", m->dtype.endian) == NULL ||
        m->dtype.endian == '\0')
        return tly_fail(TLY_EUSAGE, "metadata: dtype %c%u is not a tally dtype", m->dtype.kind,
                        (unsigned)m->dtype.size);
    if (m->codec.id != TLY_CODEC_NONE && m->codec.id != TLY_CODEC_BLOSC && m->codec.id != TLY_CODEC_ZSTD &&
        m->codec.id != TLY_CODEC_GZIP && m->codec.id != TLY_CODEC_ZLIB) /* a test codec (copy): no Zarr form */
        return tly_fail(TLY_EUSAGE, "metadata: codec %s has no Zarr metadata", tly_codec_name(m->codec.id));
    if (m->codec.id == TLY_CODEC_BLOSC && memchr(m->codec.blosc.cname, '\0', sizeof m->codec.blosc.cname) == NULL)
        return tly_fail(TLY_EUSAGE, "metadata: blosc cname is not terminated");
    if ((m->shard.on || m->crc32c) && m->zarr_format != 3)
        return tly_fail(TLY_EUSAGE, "metadata: %s is Zarr v3 only", m->shard.on ? "sharding" : "crc32c");
    if (m->codec.id == TLY_CODEC_ZLIB && m->zarr_format == 3)
        return tly_fail(TLY_EUSAGE, "metadata: zlib is a v2 compressor (Zarr v3 has gzip)");
    if (m->codec.id == TLY_CODEC_GZIP && m->zarr_format == 3 && (m->codec.gzip.level < 0 || m->codec.gzip.level > 9))
        return tly_fail(TLY_EUSAGE,
                        "metadata: Zarr v3's gzip level is 0..9, not %d (zlib's -1, its default level, is "
                        "for v2's numcodecs GZip and Zlib only)",
                        m->codec.gzip.level);
    if (m->crc32c && !m->shard.on)
        return tly_fail(TLY_EUSAGE, "metadata: crc32c is supported inside a shard only");
    for (int d = 0; m->shard.on && d < m->rank; d++)
        if (m->shard.inner[d] == 0 || m->chunks[d] % m->shard.inner[d] != 0)
            return tly_fail(TLY_EUSAGE, "metadata: inner chunk %llu does not divide the shard's %llu (dimension %d)",
                            (unsigned long long)m->shard.inner[d], (unsigned long long)m->chunks[d], d);
    int rc = tly_grid_check(m->rank, m->shape, m->chunks, m->dtype.size);
    if (rc)
        tly_err_prefix("metadata");
    return rc;
}

/* @p raw with the fill-value stand-in replaced by @p fill and a newline added; allocated in @p stage. */
static char *splice(const char *raw, const char *fill, enum tly_stage stage)
{
    const char *at = strstr(raw, PLACEHOLDER_DUMPED);
    if (at == NULL) {
        tly_fail(TLY_EINTERNAL, "metadata: fill value stand-in not found in the dumped document");
        return NULL;
    }
    size_t head = (size_t)(at - raw), ph = strlen(PLACEHOLDER_DUMPED), nfill = strlen(fill);
    size_t tail = strlen(at + ph);
    char *text = NULL;
    TLY_STAGE(stage)
    {
        text = malloc(head + nfill + tail + 2);
    }
    if (text == NULL)
        return NULL;
    /* JSON text, not payload */
    memcpy(text, raw, head);
    memcpy(text + head, fill, nfill);
    memcpy(text + head + nfill, at + ph, tail);
    memcpy(text + head + nfill + tail, "\n", 2);
    return text;
}

char *tly_meta_emit(const struct tly_meta *m)
{
    /* The caller owns and frees the text: it is allocated in the caller's stage so the books balance. */
    enum tly_stage caller = tly_stage_current();
    char *text = NULL;
    TLY_STAGE(TLY_META)
    {
        if (check_emittable(m) != 0)
            break;
        json_t *root = m->zarr_format == 2 ? tly__v2_doc(m) : tly__v3_doc(m);
        /* zarr-python 2 writes sorted keys, 4-space indent, ASCII; zarrita writes 2-space indent. */
        size_t flags = m->zarr_format == 2 ? JSON_INDENT(4) | JSON_SORT_KEYS | JSON_ENSURE_ASCII : JSON_INDENT(2);
        char *raw = root ? json_dumps(root, flags) : NULL;
        json_decref(root);
        if (raw != NULL) {
            char fill[TLY__FILL_CAP];
            tly__fill_json(m, fill);
            text = splice(raw, fill, caller);
        }
        free(raw);
    }
    return text;
}
