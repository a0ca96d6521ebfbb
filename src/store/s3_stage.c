/*
 * The S3 store's contract for writing a whole array (S3 has no rename, so no swap):
 *
 *   1. PUT PREFIX/.tally-incomplete (the marker);
 *   2. to replace an array: DELETE its metadata (zarr.json, .zarray) first, then every other object
 *      under the prefix but the marker;
 *   3. the caller writes the chunks, then the metadata last;
 *   4. DELETE the marker (publish).
 *
 * So at every moment the prefix is the old array (interrupted before 2), no array at all with the
 * marker ("incomplete array (an interrupted write): run tally gc"), or the whole new array: metadata
 * is only ever written after every chunk, never beside a mix of old and new chunks. gc deletes an
 * incomplete array (its objects, the marker last) and a marker left beside published metadata.
 */
#include <stdlib.h>
#include <string.h>

#include "tally/error.h"
#include "store/s3_store.h"

static const char marker_text[] = "tally: an array is being written here; until its metadata is written this is no "
                                  "array. An interrupted write leaves this: `tally gc URL` cleans up.\n";

/* 1 when @p key exists, 0 when it does not, or the error of a HEAD that failed any other way. */
static int there(struct tly_store *base, const char *key)
{
    uint64_t n;
    int err = tly__s3_size(base, key, &n);
    if (err == TLY_ENOTFOUND) {
        tly_errclear();
        return 0;
    }
    return err ? err : 1;
}

int tly__s3_probe(struct tly_store *base, enum tly_store_state *out)
{
    int r = there(base, "zarr.json");
    if (r == 0)
        r = there(base, ".zarray");
    if (r < 0)
        return r;
    if (r == 1) {
        *out = TLY_STORE_ARRAY;
        return 0;
    }
    if ((r = there(base, TLY__S3_MARKER)) < 0)
        return r;
    *out = r ? TLY_STORE_INCOMPLETE : TLY_STORE_ABSENT;
    return 0;
}

int tly__s3_stage(struct tly_store *base, bool replace)
{
    struct tly__s3 *st = tly__s3_of(base);
    int err = tly__s3_put(base, TLY__S3_MARKER, marker_text, sizeof marker_text - 1);
    if (err || !replace)
        return err;
    /* the metadata first: from here on the prefix is no array, never a mix */
    if ((err = tly__s3_del(base, "zarr.json")) != 0 || (err = tly__s3_del(base, ".zarray")) != 0)
        return err;
    static const char *const keep[] = {TLY__S3_MARKER, NULL};
    uint64_t n = 0;
    err = tly__s3_delete_all(st, keep, &n);
    if (err)
        tly_err_prefix("s3://%s/%s: deleting the old array", st->bucket, st->prefix);
    return err;
}

int tly__s3_publish(struct tly_store *base)
{
    return tly__s3_del(base, TLY__S3_MARKER);
}

void tly__s3_discard(struct tly_store *base)
{
    (void)base; /* the prefix stays marked incomplete: gc deletes what the write left */
}

int tly__s3_gc_incomplete(struct tly__s3 *st, uint64_t *removed)
{
    int r = there(&st->base, TLY__S3_MARKER);
    if (r <= 0)
        return r;
    enum tly_store_state state;
    int err = tly__s3_probe(&st->base, &state);
    if (!err && state != TLY_STORE_ARRAY) {
        static const char *const keep[] = {TLY__S3_MARKER, NULL};
        err = tly__s3_delete_all(st, keep, removed);
    }
    if (!err && (err = tly__s3_del(&st->base, TLY__S3_MARKER)) == 0)
        (*removed)++;
    return err;
}
