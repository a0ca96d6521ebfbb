/*
 * The S3 store's requests: where one goes (path-style http://HOST/BUCKET/KEY or virtual-hosted
 * http://BUCKET.HOST/KEY), its body, running it on the store's loop, and its error as a code and a
 * message that names the operation, the object, the HTTP status and S3's error code (never a
 * credential or a signature).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tally/error.h"
#include "store/s3_store.h"

/* The object's full key: PREFIX/KEY (malloc'd). */
char *tly__s3_full_key(const struct tly__s3 *st, const char *key)
{
    char *k = NULL;
    if (asprintf(&k, "%s%s%s", st->prefix, st->prefix[0] ? "/" : "", key) < 0)
        return NULL;
    return k;
}

/*
 * Fill @p r for METHOD on object @p key (a full key; NULL: the bucket itself) with the query
 * @p query (already encoded). Path-style: http://host/BUCKET/KEY; virtual-hosted:
 * http://BUCKET.host/KEY.
 */
int tly__s3_req_init(struct tly__s3 *st, struct tly__s3_req *r, const char *method, const char *op, const char *key,
                     const char *query)
{
    memset(r, 0, sizeof *r);
    r->method = method;
    r->op = op;
    struct tly__s3_str path = {0}, url = {0};
    if (!st->virtual_host)
        tly__s3_str_addf(&path, "/%s", st->bucket);
    tly__s3_str_addf(&path, "%s%s", key || st->virtual_host ? "/" : "", key ? key : "");
    tly__s3_str_addf(&url, "%s://%s%s%s", st->scheme, st->virtual_host ? st->bucket : "", st->virtual_host ? "." : "",
                     st->authority);
    if (!path.oom && path.p)
        tly__s3_uri_encode(&url, path.p, path.n, true);
    if (query && query[0])
        tly__s3_str_addf(&url, "?%s", query);
    r->path = path.p;
    r->url = url.p;
    if (asprintf(&r->host, "%s%s%s", st->virtual_host ? st->bucket : "", st->virtual_host ? "." : "", st->authority) <
        0)
        r->host = NULL;
    r->query = strdup(query ? query : "");
    if (asprintf(&r->what, "s3://%s/%s", st->bucket, key ? key : "") < 0)
        r->what = NULL;
    snprintf(r->payload_hash, sizeof r->payload_hash, "%s",
             st->sign_payload ? "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
                              : "UNSIGNED-PAYLOAD");
    if (path.oom || url.oom || !r->path || !r->url || !r->host || !r->query || !r->what) {
        tly__s3_req_clear(r);
        return tly_fail(-ENOMEM, "out of memory for an S3 request");
    }
    return 0;
}

/* The request's body: @p niov pieces streamed in place; hashed first when payloads are signed. */
int tly__s3_req_body(struct tly__s3 *st, struct tly__s3_req *r, const struct iovec *iov, int niov)
{
    r->body = iov;
    r->nbody = niov;
    r->body_len = 0;
    for (int i = 0; i < niov; i++)
        r->body_len += iov[i].iov_len;
    int err = 0;
    if (st->sign_payload)
        TLY_STAGE(TLY_SIGN)
        {
            err = tly__sha256_hex(iov, niov, r->payload_hash);
        }
    return err;
}

/* The error of an answered request that failed, as a code and a message (never a credential). */
int tly__s3_req_fail(const struct tly__s3_req *r)
{
    const char *op = r->op, *what = r->what ? r->what : "?";
    char tries[96] = "";
    bool said = strstr(r->curl_error, "TALLY_S3_TIMEOUT") != NULL || strstr(r->sink_msg, "TALLY_S3_TIMEOUT") != NULL;
    if (r->late && !said)
        snprintf(tries, sizeof tries, " (after %d attempts: no time left for another, TALLY_S3_TIMEOUT %ld s)",
                 r->attempts, r->timeout_s);
    else if (r->attempts > 1)
        snprintf(tries, sizeof tries, " (after %d attempts)", r->attempts);
    if (r->sink_err)
        return tly_fail(r->sink_err, "s3 %s %s: %s", op, what,
                        r->sink_msg[0] ? r->sink_msg : tly_strerror(r->sink_err));
    if (r->overflow && r->resp == TLY__S3_RESP_NONE)
        return tly_fail(TLY_EHTTP, "s3 %s %s: HTTP %ld with a reply body nobody asked for, over 64 KiB", op, what,
                        r->status);
    if (r->overflow)
        return tly_fail(TLY_EFORMAT, "s3 %s %s: the reply holds more than the %llu bytes asked for", op, what,
                        (unsigned long long)r->resp_len);
    if (r->curl_code != 0)
        return tly_fail(TLY_EHTTP, "s3 %s %s: %s%s", op, what, r->curl_error, tries);
    int err = TLY_EHTTP;
    if (r->status == 401 || r->status == 403)
        err = TLY_EAUTH;
    else if (r->status == 404 && strcmp(r->code, "NoSuchBucket") != 0 && strcmp(r->code, "NoSuchUpload") != 0)
        err = TLY_ENOTFOUND;
    else if (r->status == 416)
        err = TLY_EFORMAT; /* InvalidRange: the object ends before the range (truncated) */
    if (r->code[0] == '\0')
        return tly_fail(err, "s3 %s %s: HTTP %ld%s%s", op, what, r->status, r->status == 404 ? " (not found)" : "",
                        tries);
    return tly_fail(err, "s3 %s %s: HTTP %ld %s%s%s%s%s", op, what, r->status, r->code, r->message[0] ? ": " : "",
                    r->message, err == TLY_EFORMAT ? " (the object is shorter: truncated)" : "", tries);
}

/* Run @p r and wait for its answer: 0 or its error. */
int tly__s3_run(struct tly__s3 *st, struct tly__s3_req *r)
{
    tly__s3_http_submit(st->http, r);
    tly__s3_http_wait(st->http, r);
    return tly__s3_req_ok(r) ? 0 : tly__s3_req_fail(r);
}

/* A request on object KEY (relative to the prefix). */
int tly__s3_req_key(struct tly__s3 *st, struct tly__s3_req *r, const char *method, const char *op, const char *key,
                    const char *query)
{
    char *k = tly__s3_full_key(st, key);
    if (k == NULL)
        return tly_fail(-ENOMEM, "out of memory");
    int err = tly__s3_req_init(st, r, method, op, k, query);
    free(k);
    return err;
}

int tly__s3_object_url(struct tly_store *base, const char *key, char **url, char **host)
{
    struct tly__s3_req r;
    int err = tly__s3_req_key(tly__s3_of(base), &r, "GET", "GET", key, NULL);
    if (err)
        return err;
    *url = r.url;
    *host = r.host;
    r.url = r.host = NULL;
    tly__s3_req_clear(&r);
    return 0;
}

/* The upload id, encoded for a query. */
char *tly__s3_upload_query(const char *upload_id, int part)
{
    struct tly__s3_str q = {0};
    if (part > 0)
        tly__s3_str_addf(&q, "partNumber=%d&", part);
    tly__s3_str_add(&q, "uploadId=", 9);
    tly__s3_uri_encode(&q, upload_id, strlen(upload_id), false);
    if (q.oom)
        tly__s3_str_free(&q);
    return q.p;
}
