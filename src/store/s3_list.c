/*
 * The S3 store's listings: tly_store_clear (ListObjectsV2 under the prefix, each key deleted, the
 * Zarr metadata last), tly_store_gc (ListMultipartUploads under the prefix, each upload aborted; an
 * incomplete array's objects deleted: s3_stage.c), and the deletion of everything under the prefix
 * but a few names that both share with staging.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tally/error.h"
#include "store/s3_store.h"
#include "store/s3_xml.h"

#define BATCH 64 /* deletes and aborts in flight per batch (clear, gc) */

/* One page of ListObjectsV2 (@p upload_marker NULL) or ListMultipartUploads under the prefix. */
int tly__s3_list_page(struct tly__s3 *st, bool uploads, const char *token, const char *upload_marker,
                      struct tly__s3_xml *x)
{
    struct tly__s3_str q = {0};
    char *prefix = tly__s3_full_key(st, "");
    if (prefix == NULL)
        return tly_fail(-ENOMEM, "out of memory");
    if (uploads) {
        tly__s3_str_addf(&q, "max-uploads=%d&prefix=", st->list_page);
        tly__s3_uri_encode(&q, prefix, strlen(prefix), false);
        tly__s3_str_add(&q, "&uploads=", 9);
        if (token) {
            tly__s3_str_add(&q, "&key-marker=", 12);
            tly__s3_uri_encode(&q, token, strlen(token), false);
            tly__s3_str_add(&q, "&upload-id-marker=", 18);
            tly__s3_uri_encode(&q, upload_marker ? upload_marker : "", upload_marker ? strlen(upload_marker) : 0,
                               false);
        }
    } else {
        tly__s3_str_addf(&q, "list-type=2&max-keys=%d&prefix=", st->list_page);
        tly__s3_uri_encode(&q, prefix, strlen(prefix), false);
        if (token) {
            tly__s3_str_add(&q, "&continuation-token=", 20);
            tly__s3_uri_encode(&q, token, strlen(token), false);
        }
    }
    free(prefix);
    struct tly__s3_req r;
    int err = q.oom ? tly_fail(-ENOMEM, "out of memory")
                    : tly__s3_req_init(st, &r, "GET", uploads ? "ListMultipartUploads" : "ListObjectsV2", NULL, q.p);
    tly__s3_str_free(&q);
    if (err)
        return err;
    r.resp = TLY__S3_RESP_BUF;
    free(r.what);
    if (asprintf(&r.what, "s3://%s/%s%s", st->bucket, st->prefix, st->prefix[0] ? "/" : "") < 0)
        r.what = NULL;
    err = tly__s3_run(st, &r);
    if (!err && (err = tly__s3_xml_parse(r.buf, r.buf_n, x)) != 0)
        tly_err_prefix("s3 %s %s", r.op, r.what ? r.what : "");
    tly__s3_req_clear(&r);
    return err;
}

static const char *const meta_keys[] = {".zarray", "zarr.json", ".zattrs", ".zgroup", NULL};

static bool listed_in(const char *rel, const char *const *names)
{
    for (; names && *names; names++)
        if (strcmp(rel, *names) == 0)
            return true;
    return false;
}

/* Delete (or abort) the listed objects (uploads) but those named in @p keep (relative to the prefix),
 * BATCH at a time; counts them into @p done. */
static int delete_listed(struct tly__s3 *st, const struct tly__s3_xml *x, bool uploads, const char *const *keep,
                         uint64_t *done)
{
    struct tly__s3_req *rs = calloc(BATCH, sizeof *rs);
    if (rs == NULL)
        return tly_fail(-ENOMEM, "out of memory");
    size_t plen = st->prefix[0] ? strlen(st->prefix) + 1 : 0;
    int err = 0;
    for (size_t i = 0; i < x->nkeys && !err;) {
        int n = 0;
        for (; n < BATCH && i < x->nkeys && !err; i++) {
            const char *key = x->keys[i];
            if (strlen(key) > plen && listed_in(key + plen, keep))
                continue;
            char *q = uploads ? tly__s3_upload_query(x->upload_ids[i], 0) : NULL;
            err = uploads && q == NULL
                      ? tly_fail(-ENOMEM, "out of memory")
                      : tly__s3_req_init(st, &rs[n], "DELETE", uploads ? "AbortMultipartUpload" : "DELETE", key, q);
            free(q);
            n += err == 0;
        }
        for (int k = 0; k < n; k++)
            tly__s3_http_submit(st->http, &rs[k]);
        for (int k = 0; k < n; k++) {
            tly__s3_http_wait(st->http, &rs[k]);
            if (tly__s3_req_ok(&rs[k]))
                *done += 1;
            else if (!(uploads && strcmp(rs[k].code, "NoSuchUpload") == 0) && !err)
                err = tly__s3_req_fail(&rs[k]); /* (an upload completed or aborted meanwhile is gone: fine) */
            tly__s3_req_clear(&rs[k]);
        }
    }
    free(rs);
    return err;
}

int tly__s3_delete_all(struct tly__s3 *st, const char *const *keep, uint64_t *n)
{
    char *token = NULL;
    int err;
    do {
        struct tly__s3_xml x = {0};
        err = tly__s3_list_page(st, false, token, NULL, &x);
        free(token);
        token = NULL;
        if (!err)
            err = delete_listed(st, &x, false, keep, n);
        if (!err && x.truncated) {
            token = x.next_token;
            x.next_token = NULL;
            if (token == NULL)
                err = tly_fail(TLY_EHTTP, "s3 ListObjectsV2 s3://%s/%s: truncated without a continuation token",
                               st->bucket, st->prefix);
        }
        tly__s3_xml_free(&x);
    } while (!err && token);
    return err;
}

int tly__s3_clear(struct tly_store *base)
{
    struct tly__s3 *st = tly__s3_of(base);
    uint64_t size;
    int err = tly__s3_size(base, ".zarray", &size);
    if (err == TLY_ENOTFOUND)
        err = tly__s3_size(base, "zarr.json", &size);
    if (err == TLY_ENOTFOUND)
        return tly_fail(TLY_EUSAGE,
                        "s3://%s/%s: not a Zarr array (no .zarray or zarr.json): refusing to delete its contents",
                        st->bucket, st->prefix);
    if (err)
        return err;
    uint64_t n = 0;
    err = tly__s3_delete_all(st, meta_keys, &n);
    /* The metadata last: an interrupted clear leaves an array (with missing chunks), not orphans. */
    static const char *const meta[] = {".zattrs", ".zgroup", ".zarray", "zarr.json"};
    for (size_t i = 0; i < sizeof meta / sizeof *meta && !err; i++)
        err = tly__s3_del(base, meta[i]);
    return err;
}

int tly__s3_gc(struct tly_store *base, uint64_t *removed)
{
    struct tly__s3 *st = tly__s3_of(base);
    char *key_marker = NULL, *id_marker = NULL;
    int err = tly__s3_gc_allowed(st); /* never the uploads or objects of a write that runs */
    if (err)
        return err;
    do {
        struct tly__s3_xml x = {0};
        err = tly__s3_list_page(st, true, key_marker, id_marker, &x);
        free(key_marker);
        free(id_marker);
        key_marker = id_marker = NULL;
        if (!err)
            err = delete_listed(st, &x, true, NULL, removed);
        if (!err && x.truncated) {
            key_marker = x.next_key_marker;
            id_marker = x.next_upload_id_marker;
            x.next_key_marker = x.next_upload_id_marker = NULL;
            if (key_marker == NULL)
                err = tly_fail(TLY_EHTTP, "s3 ListMultipartUploads s3://%s/%s: truncated without a key marker",
                               st->bucket, st->prefix);
        }
        tly__s3_xml_free(&x);
    } while (!err && key_marker);
    free(id_marker);
    return err ? err : tly__s3_gc_incomplete(st, removed);
}
