/* Internal to src/meta: the JSON helpers the v2 and v3 readers and writers share, and fill values. */
#ifndef TLY__META_INTERNAL_H
#define TLY__META_INTERNAL_H

#include <jansson.h>

#include "tally/error.h"
#include "tally/mem.h"
#include "tally/meta.h"

/* The document names that prefix every message. */
#define TLY__V2 ".zarray"
#define TLY__V3 "zarr.json"

/* Return the error of @p expr, if any: the parsers are long chains of checks. */
#define TLY__TRY(expr)                                                                                                 \
    do {                                                                                                               \
        int tly__rc = (expr);                                                                                          \
        if (tly__rc != 0)                                                                                              \
            return tly__rc;                                                                                            \
    } while (0)

/** A format's parser body: fill @p m from the document @p root. Returns 0 or an error. */
typedef int (*tly__meta_parse_fn)(json_t *root, struct tly_meta *m);

/**
 * Load @p n bytes of JSON text and run @p fn over it in stage meta; on failure @p out is left zeroed
 * (nothing to free). @p doc names the document in messages.
 */
int tly__meta_parse(const char *doc, const char *text, size_t n, struct tly_meta *out, tly__meta_parse_fn fn);

/** The member @p key of @p obj into @p out; TLY_EFORMAT naming it when it is missing. */
int tly__json_field(const char *doc, json_t *obj, const char *key, json_t **out);

/**
 * The integer @p v (named @p what in messages) into @p out; TLY_EFORMAT unless it is an integer in
 * [@p lo, @p hi].
 */
int tly__json_int(const char *doc, const char *what, json_t *v, long long lo, long long hi, long long *out);

/**
 * The member @p key of @p obj, a list of integers >= @p min, into @p dims and its length into @p rank.
 * TLY_EFORMAT when it is missing or malformed; TLY_EUNSUPPORTED beyond TLY_MAX_RANK.
 */
int tly__json_dims(const char *doc, json_t *obj, const char *key, uint64_t min, uint64_t *dims, int *rank);

/** Check that chunks has @p chunk_rank dims, as shape has, and the grid's sizes (tly_grid_check). */
int tly__meta_check_grid(const char *doc, const struct tly_meta *m, int chunk_rank);

/**
 * A v3 named configuration: {"name": ..., "configuration": {...}} or a bare name string. @p cfg is
 * NULL when there is no configuration. Named @p what in messages.
 */
int tly__json_named(const char *doc, const char *what, json_t *v, const char **name, json_t **cfg);

/** Blosc's cname, clevel and blocksize members of @p cfg (absent: numcodecs' defaults) into @p c. */
int tly__blosc_common(const char *doc, json_t *cfg, struct tly_codec *c);

/** A JSON list of @p rank integers, or NULL on allocation failure. */
json_t *tly__json_dims_new(const uint64_t *dims, int rank);

/**
 * A stand-in for the fill value, replaced by its text after dumping (tly__meta_emit): jansson can
 * neither hold an integer above INT64_MAX nor print a double in its shortest form.
 */
json_t *tly__json_fill_placeholder(void);

/** The document of @p m: .zarray (v2.c) or zarr.json (v3.c); NULL with a message on failure. */
json_t *tly__v2_doc(const struct tly_meta *m);
json_t *tly__v3_doc(const struct tly_meta *m);

/**
 * Parse fill value @p v for @p m's dtype (in its byte order) into m->fill and m->has_fill; v3 also
 * takes hex strings ("0x7fc00000"). TLY_EFORMAT when it does not fit the dtype.
 */
int tly__fill_parse(const char *doc, json_t *v, struct tly_meta *m);

/** The document's required "fill_value" field, parsed into @p m (v2 and v3 alike). */
int tly__fill_field(const char *doc, json_t *root, struct tly_meta *m);

/** The codec's numcodecs configuration ({"id": "blosc", "cname": ...}; {"id": "none"}); a new reference. */
json_t *tly__codec_config(const struct tly_codec *c);

/**
 * The JSON text of @p m's fill value into @p buf (TLY__FILL_CAP bytes): 42, 0.5, "NaN", true, null.
 * v3 has no null: an array without a fill value gets its dtype's zero, which reads the same.
 */
#define TLY__FILL_CAP 48
void tly__fill_json(const struct tly_meta *m, char *buf);

#endif
