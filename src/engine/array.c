/* Arrays: create (metadata written), open (metadata read), close. */
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
    a->gate_free = a->opts.threads;
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
    if (a->meta.has_fill) {
        a->fill_pattern = malloc(TLY__FILL_PATTERN_BYTES);
        if (a->fill_pattern == NULL)
            return tly_fail(-ENOMEM, "out of memory");
        for (size_t off = 0; off < TLY__FILL_PATTERN_BYTES; off += a->meta.dtype.size)
            memcpy(a->fill_pattern + off, a->meta.fill, a->meta.dtype.size); /* one element, not payload */
    }
    return 0;
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

/* Read the existing array's user attributes so an overwrite keeps them. */
static int keep_attributes(struct tly_array *a, struct tly_meta *m)
{
    char *text;
    size_t n;
    int err = tly_store_get(a->store, ".zattrs", &text, &n);
    if (err == 0)
        a->zattrs = text;
    else if (err != TLY_ENOTFOUND)
        return err;
    if (m->zarr_format == 3 && m->attributes_json == NULL && tly_store_get(a->store, "zarr.json", &text, &n) == 0) {
        struct tly_meta old;
        if (tly_meta_parse_v3(text, n, &old) == 0) {
            m->attributes_json = old.attributes_json;
            old.attributes_json = NULL;
            tly_meta_free(&old);
        }
        free(text);
    }
    tly_errclear();
    return 0;
}

static bool exists(struct tly_store *st, const char *key)
{
    uint64_t n;
    return tly_store_size(st, key, &n) == 0;
}

static int create_meta(struct tly_array *a, bool overwrite)
{
    struct tly_meta *m = &a->meta;
    if (exists(a->store, ".zarray") || exists(a->store, "zarr.json")) {
        if (!overwrite)
            return tly_fail(TLY_EEXISTS, "%s: an array exists there (use --overwrite to replace it)",
                            tly_store_url(a->store));
        int err = keep_attributes(a, m);
        if (!err)
            err = tly_store_clear(a->store);
        if (err)
            return err;
    }
    char *doc = tly_meta_emit(m);
    if (doc == NULL)
        return tly_fail(-ENOMEM, "out of memory for the metadata");
    int err = tly_store_put(a->store, tly_meta_key(m->zarr_format), doc, strlen(doc));
    free(doc);
    if (!err && a->zattrs)
        err = tly_store_put(a->store, ".zattrs", a->zattrs, strlen(a->zattrs));
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
        tly_array_close(a);
        return err;
    }
    *out = a;
    return 0;
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
        return tly_fail(TLY_ENOTFOUND, "%s: no Zarr array there (neither zarr.json nor .zarray)",
                        tly_store_url(a->store));
    if (err)
        return err;
    err = tly_meta_parse_v2(text, n, &a->meta);
    free(text);
    if (err) {
        tly_err_prefix("%s/.zarray", tly_store_url(a->store));
        return err;
    }
    err = tly_store_get(a->store, ".zattrs", &text, &n);
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
    TLY_STAGE(TLY_META)
    {
        tly_store_close(a->store);
        tly_meta_free(&a->meta);
        pthread_mutex_destroy(&a->gate_mu);
        pthread_cond_destroy(&a->gate_cv);
        free(a->zattrs);
        free(a->fill_pattern);
        free(a);
    }
    tly__plant_release(); /* a planted defect lives as long as the array the operation used */
}
