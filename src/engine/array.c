/*
 * Arrays: create (staged: nothing visible until committed), commit (metadata written last, then
 * published), open (metadata read), close.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tally/error.h"
#include "engine/internal.h"
#include "tally/mem.h"
#include "mem/plant.h"

static int setup(struct tly_array *a)
{
    a->remote = strcmp(tly_store_kind(a->store), "local") != 0;
    pthread_mutex_init(&a->gate_mu, NULL);
    pthread_cond_init(&a->gate_cv, NULL);
    a->gate_taken = 0;
    a->meta.codec.blosc.typesize = a->meta.dtype.size;
    tly__plant_point(TLY_META);
    int err = tly_grid_check(a->meta.rank, a->meta.shape, a->meta.chunks, a->meta.dtype.size);
    if (err) {
        tly_err_prefix("%s", tly_store_url(a->store));
        return err;
    }
    err = tly_grid_init(&a->grid, a->meta.rank, a->meta.shape, a->meta.chunks);
    if (err)
        return err;
    /* Always there: edge padding and empty-chunk checks read it (zeros without a fill value). */
    a->fill_pattern = calloc(1, TLY__FILL_PATTERN_BYTES);
    if (a->fill_pattern == NULL)
        return tly_fail(-ENOMEM, "out of memory");
    for (size_t off = 0; a->meta.has_fill && off < TLY__FILL_PATTERN_BYTES; off += a->meta.dtype.size)
        memcpy(a->fill_pattern + off, a->meta.fill, a->meta.dtype.size); /* one element, not payload */
    return a->meta.shard.on ? tly__shard_setup(a) : 0;
}

/* A new handle with its options resolved (a bad TALLY_* variable is an error here). */
static int array_new(const struct tly_io_opts *opts, struct tly_array **out)
{
    struct tly_io_opts o;
    int err = tly_io_opts_resolve(opts, &o);
    if (err)
        return err;
    struct tly_array *a;
    TLY_STAGE(TLY_META)
    {
        a = calloc(1, sizeof *a);
    }
    if (a == NULL)
        return tly_fail(-ENOMEM, "out of memory");
    a->opts = o;
    *out = a;
    return 0;
}

/*
 * Read the existing array's user attributes so an overwrite keeps them: v2 .zattrs, v3 attributes.
 * A read that fails is an error; attributes that are not a JSON object are not kept.
 */
static int keep_attributes(struct tly_array *a, struct tly_meta *m)
{
    char *text;
    size_t n;
    int err = tly_store_get(a->store, ".zattrs", &text, &n);
    if (err == 0 && tly_meta_attrs_check(".zattrs", text, n) == 0)
        a->zattrs = text;
    else if (err == 0)
        free(text);
    else if (err != TLY_ENOTFOUND)
        return err;
    if (m->zarr_format == 3 && m->attributes_json == NULL) {
        err = tly_store_get(a->store, "zarr.json", &text, &n);
        if (err != 0 && err != TLY_ENOTFOUND)
            return err;
        struct tly_meta old;
        if (err == 0 && tly_meta_parse_v3(text, n, &old) == 0) {
            m->attributes_json = old.attributes_json;
            old.attributes_json = NULL;
            tly_meta_free(&old);
        }
        if (err == 0)
            free(text);
    }
    tly_errclear();
    return 0;
}

/*
 * What is there decides: nothing (or an empty directory) is written anew; an array (or an incomplete
 * one) only with @p overwrite; anything else never. Either way the new array is staged: nothing of it
 * is visible until tly_array_commit() writes its metadata and publishes it (tly_store_stage).
 */
static int create_meta(struct tly_array *a, bool overwrite)
{
    struct tly_meta *m = &a->meta;
    const char *url = tly_store_url(a->store);
    enum tly_store_state state;
    int err = tly_store_probe(a->store, &state);
    if (err)
        return err;
    if (state == TLY_STORE_OTHER)
        return tly_fail(TLY_EUSAGE,
                        "%s: a directory that is not a Zarr array (no .zarray or zarr.json): refusing to put an "
                        "array there",
                        url);
    if (state == TLY_STORE_ARRAY && !overwrite)
        return tly_fail(TLY_EEXISTS, "%s: an array exists there (use --overwrite to replace it)", url);
    if (state == TLY_STORE_INCOMPLETE && !overwrite)
        return tly_fail(TLY_EEXISTS,
                        "%s: an incomplete array is there (an interrupted write): run tally gc, or use --overwrite",
                        url);
    if (state == TLY_STORE_ARRAY && (err = keep_attributes(a, m)) != 0)
        return err;
    tly_errclear();
    if ((a->doc = tly_meta_emit(m)) == NULL)
        return tly_errmsg()[0] ? TLY_EUSAGE : tly_fail(-ENOMEM, "out of memory for the metadata");
    err = tly_store_stage(a->store, state != TLY_STORE_ABSENT);
    a->staged = err == 0;
    return err;
}

int tly_array_create(const char *url, const struct tly_meta *m, bool overwrite, const struct tly_io_opts *opts,
                     struct tly_array **out)
{
    struct tly_array *a;
    int err = array_new(opts, &a);
    if (err)
        return err;
    TLY_STAGE(TLY_META)
    {
        a->meta = *m;
        a->meta.attributes_json = m->attributes_json ? strdup(m->attributes_json) : NULL;
        struct tly_store_opts so = {a->opts.fsync, a->opts.io_concurrency, a->opts.part_size};
        err = tly_store_open(url, &so, &a->store);
        if (!err)
            err = setup(a);
        if (!err)
            err = create_meta(a, overwrite);
    }
    if (err) {
        a->failed = true;
        tly_array_close(a);
        return err;
    }
    *out = a;
    return 0;
}

int tly_array_commit(struct tly_array *a)
{
    if (!a->staged || a->committed)
        return 0;
    if (a->failed)
        return tly_fail(TLY_EUSAGE, "%s: a write failed: the new array is not published", tly_store_url(a->store));
    int err = 0;
    TLY_STAGE(TLY_META)
    {
        /* the metadata last: on S3 it is what makes the prefix an array again (tly_store_stage) */
        if (a->zattrs)
            err = tly_store_put(a->store, ".zattrs", a->zattrs, strlen(a->zattrs));
        if (!err)
            err = tly_store_put(a->store, tly_meta_key(a->meta.zarr_format), a->doc, strlen(a->doc));
        if (!err)
            err = tly_store_publish(a->store);
    }
    a->committed = err == 0;
    a->failed = err != 0;
    return err;
}

/* Where neither metadata document is: no array, or (the store says) an interrupted write's leftovers. */
static int no_array(struct tly_array *a)
{
    enum tly_store_state state;
    int err = tly_store_probe(a->store, &state);
    if (err)
        return err;
    if (state == TLY_STORE_INCOMPLETE)
        return tly_fail(TLY_EFORMAT,
                        "%s: incomplete array (a write was interrupted before it was published): run tally gc",
                        tly_store_url(a->store));
    return tly_fail(TLY_ENOTFOUND, "%s: no Zarr array there (neither zarr.json nor .zarray)", tly_store_url(a->store));
}

static int open_meta(struct tly_array *a)
{
    char *text;
    size_t n;
    int err = tly_store_get(a->store, "zarr.json", &text, &n);
    if (err == 0) {
        err = tly_meta_parse_v3(text, n, &a->meta);
        free(text);
        if (err)
            tly_err_prefix("%s/zarr.json", tly_store_url(a->store));
        return err;
    }
    if (err != TLY_ENOTFOUND)
        return err;
    err = tly_store_get(a->store, ".zarray", &text, &n);
    if (err == TLY_ENOTFOUND)
        return no_array(a);
    if (err)
        return err;
    err = tly_meta_parse_v2(text, n, &a->meta);
    free(text);
    if (err) {
        tly_err_prefix("%s/.zarray", tly_store_url(a->store));
        return err;
    }
    err = tly_store_get(a->store, ".zattrs", &text, &n);
    if (err == 0 && (err = tly_meta_attrs_check(".zattrs", text, n)) != 0) {
        free(text);
        tly_err_prefix("%s/.zattrs", tly_store_url(a->store));
        return err;
    }
    if (err == 0)
        a->zattrs = text;
    else if (err != TLY_ENOTFOUND)
        return err;
    tly_errclear();
    return 0;
}

int tly_array_open(const char *url, const struct tly_io_opts *opts, struct tly_array **out)
{
    struct tly_array *a;
    int err = array_new(opts, &a);
    if (err)
        return err;
    TLY_STAGE(TLY_META)
    {
        struct tly_store_opts so = {a->opts.fsync, a->opts.io_concurrency, a->opts.part_size};
        err = tly_store_open(url, &so, &a->store);
        if (!err)
            err = open_meta(a);
        if (!err)
            err = setup(a);
    }
    if (err) {
        tly_array_close(a);
        return err;
    }
    *out = a;
    return 0;
}

const struct tly_meta *tly_array_meta(const struct tly_array *a)
{
    return &a->meta;
}

struct tly_store *tly_array_store(struct tly_array *a)
{
    return a->store;
}

const char *tly_array_zattrs(const struct tly_array *a)
{
    return a->zattrs;
}

void tly_array_close(struct tly_array *a)
{
    if (a == NULL)
        return;
    /* A staged array whose writes all succeeded is published here when the caller did not commit. */
    if (a->staged && !a->committed && !a->failed)
        tly_array_commit(a);
    TLY_STAGE(TLY_META)
    {
        if (a->staged && !a->committed)
            tly_store_discard(a->store);
        tly_store_close(a->store);
        free(a->doc);
        tly_meta_free(&a->meta);
        pthread_mutex_destroy(&a->gate_mu);
        pthread_cond_destroy(&a->gate_cv);
        free(a->zattrs);
        free(a->fill_pattern);
        free(a);
    }
    tly__plant_release(); /* a planted defect lives as long as the array the operation used */
}
