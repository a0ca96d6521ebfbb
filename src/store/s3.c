/*
 * The S3 store: s3://BUCKET/PREFIX, configured from the standard AWS environment (s3_config.c).
 *
 * This file is the store itself: open, close and its operations' table (s3_internal.h maps the files
 * that do the work). Each store operation becomes one or a few S3 requests (s3_request.c) run by
 * the store's libcurl multi loop (s3_http.c); the caller waits for them in its own stage. Data
 * never passes through a buffer of the store's own where the interface lets it be avoided:
 *
 *   tly_writer_add      the pieces are referenced and streamed as the request body; an object
 *                       over the part size is a multipart upload whose parts are cut from them
 *   tly_writer_writev   the pieces are copied (stage put) into blocks of a part of at most
 *                       part_size bytes, uploaded when it fills: at most two parts per writer
 *   tly_store_readv     a range GET written straight into the caller's pieces
 *   tly_store_read_head one GET of a range from byte 0: an object's start and its size
 *   tly_store_read_tail one GET of a suffix range (Range: bytes=-N): an object's end and its size
 *   tly_store_read_stream  a GET whose pieces go straight from libcurl to the sink
 *
 * Nothing is visible under a key before its writer commits: a small object is one PUT at commit,
 * a large one a multipart upload completed at commit and aborted on any failure. An upload a crash
 * left behind is aborted by tly_store_gc (`tally gc URL`).
 *
 * Errors name the operation, the object, the HTTP status and S3's error code and message
 * ("s3 PUT s3://b/a/.zarray: HTTP 403 SignatureDoesNotMatch: ..."); never a credential or a signature.
 * A missing bucket is TLY_EHTTP, not TLY_ENOTFOUND: callers read TLY_ENOTFOUND as "this key is
 * absent, use the fill value", which would read a missing bucket as an empty array.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tally/error.h"
#include "store/s3_store.h"

static void s3_close(struct tly_store *base)
{
    struct tly__s3 *st = tly__s3_of(base);
    tly__s3_http_stop(st->http);
    tly__s3_creds_free(&st->creds);
    tly__sigv4_cache_destroy(&st->cache);
    free(st->bucket);
    free(st->prefix);
    free(st->scheme);
    free(st->authority);
    free(st->region);
    free(st->ca_file);
    free(st->base.url);
    free(st);
}

static const struct tly_store_ops s3_ops = {
    .kind = "s3",
    .size = tly__s3_size,
    .readv = tly__s3_readv,
    .read_head = tly__s3_read_head,
    .read_tail = tly__s3_read_tail,
    .read_stream = tly__s3_read_stream,
    .get = tly__s3_get,
    .put = tly__s3_put,
    .writer = tly__s3_writer,
    .del = tly__s3_del,
    .clear = tly__s3_clear,
    .gc = tly__s3_gc,
    .probe = tly__s3_probe,
    .unchanged = tly__s3_unchanged,
    .stage = tly__s3_stage,
    .publish = tly__s3_publish,
    .discard = tly__s3_discard,
    .close = s3_close,
};

int tly__s3_open(const char *url, const struct tly_store_opts *opts, struct tly_store **out)
{
    struct tly__s3 *st = calloc(1, sizeof *st);
    if (st == NULL || (st->base.url = strdup(url)) == NULL) {
        free(st);
        return tly_fail(-ENOMEM, "out of memory");
    }
    st->base.ops = &s3_ops;
    st->base.opts = *opts;
    tly__sigv4_cache_init(&st->cache);
    struct tly__s3_http_opts ho;
    int err = tly__s3_configure(st, url, opts, &ho);
    ho.traffic = &st->base.traffic;
    if (!err)
        err = tly__s3_http_start(&ho, &st->http);
    if (err) {
        s3_close(&st->base);
        return err;
    }
    st->base.opts.part_size = st->part_size;
    st->base.opts.io_concurrency = ho.concurrency;
    *out = &st->base;
    return 0;
}
