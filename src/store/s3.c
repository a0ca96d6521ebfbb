/*
 * The S3 store: s3://BUCKET/PREFIX, configured from the standard AWS environment.
 *
 * Each store operation becomes one or a few S3 requests run by the store's libcurl multi loop
 * (s3_http.c); the caller waits for them in its own stage. Data never passes through a buffer of
 * the store's own where the interface lets it be avoided:
 *
 *   tly_writer_add      the pieces are referenced and streamed as the request body; an object
 *                       over the part size is a multipart upload whose parts are cut from them
 *   tly_writer_writev   the pieces are copied (stage put) into blocks of a part of at most
 *                       part_size bytes, uploaded when it fills: at most two parts per writer
 *   tly_store_readv     a range GET written straight into the caller's pieces
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
 *
 * Configuration (the standard AWS variables first):
 *   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN   credentials (x-amz-security-token)
 *   AWS_REGION, else AWS_DEFAULT_REGION, else us-east-1
 *   AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL   http(s)://HOST[:PORT]; path-style addressing then,
 *                                  else https://BUCKET.s3.REGION.amazonaws.com (virtual-hosted)
 *   TALLY_S3_ADDRESSING=path|virtual    override the addressing style
 *   AWS_CA_BUNDLE, TALLY_S3_CA_BUNDLE   the CA file TLS verifies against (verification is always on)
 *   TALLY_S3_SIGN_PAYLOAD=1        sign the SHA-256 of each body (default UNSIGNED-PAYLOAD)
 *   TALLY_PART_SIZE (8M), TALLY_IO_CONCURRENCY (32)   unless the options set them
 *   TALLY_S3_RETRIES (5), TALLY_S3_BACKOFF_MS (100), TALLY_S3_CONNECT_TIMEOUT (10 s),
 *   TALLY_S3_LOW_SPEED_TIME (30 s below 1 KiB/s), TALLY_S3_LIST_PAGE (1000 keys per listing)
 */
#include <errno.h>
#include <openssl/evp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tally/error.h"
#include "store/internal.h"
#include "common/opts.h"
#include "store/s3_internal.h"

#define MIB ((size_t)1 << 20)
#define PART_MIN (5 * MIB)            /* S3's smallest part (but the last) */
#define PART_MAX ((size_t)5 << 30)    /* and its largest */
#define PARTS_MAX 10000               /* parts in one upload */
#define BLOCK_MIN ((size_t)64 * 1024) /* writev blocks: large enough to be attributed exactly, */
#define BLOCK_MAX ((size_t)2 << 20)   /* powers of two (no size-class rounding) up to this */
#define BATCH 64                      /* deletes and aborts in flight per batch (clear, gc) */

/* ---- the store ---- */

struct s3 {
    struct tly_store base;
    char *bucket;
    char *prefix;    /* without leading or trailing '/'; "" for the bucket's root */
    char *scheme;    /* "http" or "https" */
    char *authority; /* host[:port] of the endpoint */
    bool virtual_host;
    char *region;
    char *ca_file;
    bool sign_payload;
    size_t part_size;
    int list_page;
    struct tly__s3_creds creds;
    struct tly__sigv4_cache cache;
    struct tly__s3_http *http;
    atomic_bool bucket_seen; /* a NoSuchKey proved the bucket exists: a bare 404 to HEAD is a missing key */
};

static struct s3 *S(struct tly_store *st)
{
    return (struct s3 *)st;
}

/* The object's full key: PREFIX/KEY (malloc'd). */
static char *full_key(const struct s3 *st, const char *key)
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
static int req_init(struct s3 *st, struct tly__s3_req *r, const char *method, const char *op, const char *key,
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
static int req_body(struct s3 *st, struct tly__s3_req *r, const struct iovec *iov, int niov)
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
static int req_fail(const struct tly__s3_req *r)
{
    const char *op = r->op, *what = r->what ? r->what : "?";
    char tries[32] = "";
    if (r->attempts > 1)
        snprintf(tries, sizeof tries, " (after %d attempts)", r->attempts);
    if (r->sink_err)
        return tly_fail(r->sink_err, "s3 %s %s: %s", op, what,
                        r->sink_msg[0] ? r->sink_msg : tly_strerror(r->sink_err));
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
static int run(struct s3 *st, struct tly__s3_req *r)
{
    tly__s3_http_submit(st->http, r);
    tly__s3_http_wait(st->http, r);
    return tly__s3_req_ok(r) ? 0 : req_fail(r);
}

/* A request on object KEY (relative to the prefix). */
static int req_key(struct s3 *st, struct tly__s3_req *r, const char *method, const char *op, const char *key,
                   const char *query)
{
    char *k = full_key(st, key);
    if (k == NULL)
        return tly_fail(-ENOMEM, "out of memory");
    int err = req_init(st, r, method, op, k, query);
    free(k);
    return err;
}

int tly__s3_object_url(struct tly_store *base, const char *key, char **url, char **host)
{
    struct tly__s3_req r;
    int err = req_key(S(base), &r, "GET", "GET", key, NULL);
    if (err)
        return err;
    *url = r.url;
    *host = r.host;
    r.url = r.host = NULL;
    tly__s3_req_clear(&r);
    return 0;
}

/* ---- reads ---- */

/*
 * A HEAD's error reply has no body, so its S3 error code is unknown. A GET of the object's first
 * byte tells it: NoSuchKey (the bucket exists, remembered: later 404s are missing keys),
 * NoSuchBucket, SignatureDoesNotMatch, ...
 */
static int head_failed(struct s3 *st, struct tly__s3_req *head, const char *key)
{
    if (head->curl_code != 0 || head->status < 400)
        return req_fail(head);
    if (head->status == 404 && atomic_load(&st->bucket_seen))
        return req_fail(head);
    struct tly__s3_req probe;
    int err = req_key(st, &probe, "GET", "HEAD", key, NULL);
    if (err)
        return err;
    probe.ranged = true;
    probe.range_start = 0;
    probe.range_len = 1;
    err = run(st, &probe);
    if (strcmp(probe.code, "NoSuchKey") == 0)
        atomic_store(&st->bucket_seen, true);
    if (err == 0 || probe.code[0] == '\0')
        err = req_fail(head);
    tly__s3_req_clear(&probe);
    return err;
}

static int s3_size(struct tly_store *base, const char *key, uint64_t *out)
{
    struct s3 *st = S(base);
    struct tly__s3_req r;
    int err = req_key(st, &r, "HEAD", "HEAD", key, NULL);
    if (err)
        return err;
    err = run(st, &r);
    if (err)
        err = head_failed(st, &r, key);
    else if (!r.have_length)
        err = tly_fail(TLY_EHTTP, "s3 HEAD %s: no Content-Length in the reply", r.what);
    else
        *out = r.content_length;
    tly__s3_req_clear(&r);
    return err;
}

static int s3_readv(struct tly_store *base, const char *key, uint64_t offset, const struct iovec *iov, int niov)
{
    struct s3 *st = S(base);
    uint64_t total = 0;
    for (int i = 0; i < niov; i++)
        total += iov[i].iov_len;
    if (total == 0) {
        uint64_t size;
        return s3_size(base, key, &size);
    }
    struct tly__s3_req r;
    int err = req_key(st, &r, "GET", "GET", key, NULL);
    if (err)
        return err;
    r.ranged = true;
    r.range_start = offset;
    r.range_len = total;
    r.resp = TLY__S3_RESP_IOV;
    r.resp_iov = iov;
    r.nresp_iov = niov;
    r.resp_len = total;
    err = run(st, &r);
    if (!err && r.delivered != total)
        err = tly_fail(TLY_EFORMAT, "s3 GET %s: ends at byte %llu, before the %llu bytes asked for at %llu (truncated)",
                       r.what, (unsigned long long)(offset + r.delivered), (unsigned long long)total,
                       (unsigned long long)offset);
    tly__s3_req_clear(&r);
    return err;
}

static int s3_read_stream(struct tly_store *base, const char *key, void *buf, size_t cap, tly_store_sink_fn sink,
                          void *arg)
{
    (void)buf, (void)cap; /* the body's pieces come straight from libcurl's buffer */
    struct s3 *st = S(base);
    struct tly__s3_req r;
    int err = req_key(st, &r, "GET", "GET", key, NULL);
    if (err)
        return err;
    r.resp = TLY__S3_RESP_SINK;
    r.sink = sink;
    r.sink_arg = arg;
    err = run(st, &r);
    tly__s3_req_clear(&r);
    return err;
}

static int s3_get(struct tly_store *base, const char *key, char **data, size_t *n)
{
    struct s3 *st = S(base);
    struct tly__s3_req r;
    int err = req_key(st, &r, "GET", "GET", key, NULL);
    if (err)
        return err;
    r.resp = TLY__S3_RESP_BUF;
    err = run(st, &r);
    if (!err && r.buf == NULL && (r.buf = calloc(1, 1)) == NULL) /* an empty object */
        err = tly_fail(-ENOMEM, "out of memory");
    if (!err) {
        *data = r.buf;
        *n = r.buf_n;
        r.buf = NULL;
    }
    tly__s3_req_clear(&r);
    return err;
}

/* ---- small writes and deletes ---- */

static int s3_put(struct tly_store *base, const char *key, const void *data, size_t n)
{
    struct s3 *st = S(base);
    struct tly__s3_req r;
    struct iovec iov = {(void *)data, n};
    int err = req_key(st, &r, "PUT", "PUT", key, NULL);
    if (err)
        return err;
    err = req_body(st, &r, &iov, 1);
    if (!err)
        err = run(st, &r);
    tly__s3_req_clear(&r);
    return err;
}

static int s3_del(struct tly_store *base, const char *key)
{
    struct s3 *st = S(base);
    struct tly__s3_req r;
    int err = req_key(st, &r, "DELETE", "DELETE", key, NULL);
    if (err)
        return err;
    err = run(st, &r);
    if (err == TLY_ENOTFOUND) { /* S3 answers 204 for a missing key; a 404 NoSuchKey means the same */
        tly_errclear();
        err = 0;
    }
    tly__s3_req_clear(&r);
    return err;
}

/* ---- the writer ---- */

struct part {
    struct tly__s3_req req;
    struct iovec *iov; /* its slice of the object: the caller's pieces and owned blocks */
    int niov;
    void **blocks; /* owned blocks (writev copies), freed when the part is answered */
    int nblocks;
    bool reaped;
};

struct s3_writer {
    struct tly_writer base;
    struct s3 *st;
    char *key; /* the full key */
    /* the bytes not yet in a part, in order */
    struct iovec *pend;
    int npend, pend_cap;
    uint64_t pend_bytes;
    void **blocks; /* owned blocks among pend */
    int nblocks, blocks_cap;
    char *tail; /* the owned block being filled: pend's last piece while set */
    size_t tail_cap;
    size_t owned; /* capacity of the blocks among pend */
    /* the multipart upload, once the object outgrew one part */
    char *upload_id;
    struct part **parts;
    int nparts, parts_cap;
    int err; /* the first failure; every later call returns it */
    char msg[512];
};

static int wfail(struct s3_writer *w, int err)
{
    if (w->err == 0) {
        w->err = err;
        snprintf(w->msg, sizeof w->msg, "%s", tly_errmsg());
    }
    return err;
}

static int wfailed(struct s3_writer *w)
{
    return tly_fail(w->err, "%s", w->msg);
}

static bool grow(void **arr, int *cap, int need, size_t elem)
{
    if (need <= *cap)
        return true;
    int c = *cap ? *cap * 2 : 16;
    while (c < need)
        c *= 2;
    void *p = realloc(*arr, (size_t)c * elem);
    if (p == NULL)
        return false;
    *arr = p;
    *cap = c;
    return true;
}

static int pend_push(struct s3_writer *w, void *p, size_t n)
{
    if (!grow((void **)&w->pend, &w->pend_cap, w->npend + 1, sizeof *w->pend))
        return wfail(w, tly_fail(-ENOMEM, "s3 %s: out of memory", w->key));
    w->pend[w->npend++] = (struct iovec){p, n};
    return 0;
}

static int initiate(struct s3_writer *w)
{
    struct tly__s3_req r;
    int err = req_init(w->st, &r, "POST", "CreateMultipartUpload", w->key, "uploads=");
    if (err)
        return err;
    r.resp = TLY__S3_RESP_BUF;
    err = run(w->st, &r);
    struct tly__s3_xml x = {0};
    if (!err && (err = tly__s3_xml_parse(r.buf, r.buf_n, &x)) != 0)
        tly_err_prefix("s3 CreateMultipartUpload %s", r.what);
    if (!err && (x.upload_id == NULL || x.upload_id[0] == '\0'))
        err = tly_fail(TLY_EHTTP, "s3 CreateMultipartUpload %s: no UploadId in the reply", r.what);
    if (!err) {
        w->upload_id = x.upload_id;
        x.upload_id = NULL;
    }
    tly__s3_xml_free(&x);
    tly__s3_req_clear(&r);
    return err;
}

/* The upload id, encoded for a query. */
static char *upload_query(const char *upload_id, int part)
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

static void free_blocks(void **blocks, int n)
{
    TLY_STAGE(TLY_PUT)
    {
        for (int i = 0; i < n; i++)
            free(blocks[i]);
    }
}

/* Wait for part @p p's answer; free its blocks; a failure becomes the writer's. */
static void reap(struct s3_writer *w, struct part *p)
{
    if (p->reaped)
        return;
    tly__s3_http_wait(w->st->http, &p->req);
    p->reaped = true;
    if (!tly__s3_req_ok(&p->req))
        wfail(w, req_fail(&p->req));
    else if (p->req.etag[0] == '\0')
        wfail(w, tly_fail(TLY_EHTTP, "s3 UploadPart %s: no ETag in the reply", p->req.what));
    free_blocks(p->blocks, p->nblocks);
    free(p->blocks);
    p->blocks = NULL;
    p->nblocks = 0;
}

/* The pending bytes become the next part, uploaded now (and the upload begun if it was not). */
static int cut_part(struct s3_writer *w)
{
    w->tail = NULL;
    if (w->upload_id == NULL) {
        int err = initiate(w);
        if (err)
            return wfail(w, err);
    }
    if (w->nparts == PARTS_MAX)
        return wfail(w, tly_fail(TLY_EUSAGE, "s3 %s: more than %d parts of %zu bytes (raise TALLY_PART_SIZE)", w->key,
                                 PARTS_MAX, w->st->part_size));
    struct part *p = calloc(1, sizeof *p);
    if (p == NULL || !grow((void **)&w->parts, &w->parts_cap, w->nparts + 1, sizeof *w->parts)) {
        free(p);
        return wfail(w, tly_fail(-ENOMEM, "s3 %s: out of memory", w->key));
    }
    w->parts[w->nparts++] = p;
    p->iov = w->pend;
    p->niov = w->npend;
    p->blocks = w->blocks;
    p->nblocks = w->nblocks;
    w->pend = NULL;
    w->npend = w->pend_cap = 0;
    w->pend_bytes = 0;
    w->blocks = NULL;
    w->nblocks = w->blocks_cap = 0;
    w->owned = 0;
    /* Bounded memory: copied parts upload one at a time while the next one fills. */
    if (p->nblocks)
        for (int i = 0; i < w->nparts - 1; i++)
            if (w->parts[i]->nblocks)
                reap(w, w->parts[i]);
    char *q = upload_query(w->upload_id, w->nparts);
    int err = q ? req_init(w->st, &p->req, "PUT", "UploadPart", w->key, q) : tly_fail(-ENOMEM, "out of memory");
    free(q);
    if (!err)
        err = req_body(w->st, &p->req, p->iov, p->niov);
    if (err) {
        p->reaped = true; /* never sent; its blocks are freed with the writer */
        return wfail(w, err);
    }
    tly__s3_http_submit(w->st->http, &p->req);
    return 0;
}

static int writer_add(struct tly_writer *base, const struct iovec *iov, int niov)
{
    struct s3_writer *w = (struct s3_writer *)base;
    size_t part = w->st->part_size;
    w->tail = NULL;
    for (int i = 0; i < niov && !w->err; i++) {
        char *p = iov[i].iov_base;
        for (size_t len = iov[i].iov_len; len > 0 && !w->err;) {
            size_t k = part - w->pend_bytes < len ? part - w->pend_bytes : len;
            if (pend_push(w, p, k) == 0) {
                w->pend_bytes += k;
                p += k;
                len -= k;
                if (w->pend_bytes == part)
                    cut_part(w);
            }
        }
    }
    return w->err ? wfailed(w) : 0;
}

/*
 * A new owned block for @p want bytes (or a part of them): a power of two from BLOCK_MIN to
 * BLOCK_MAX, growing with what the part already holds (few blocks for a large part, little waste
 * for a small object), no further than the part's end.
 */
static int new_block(struct s3_writer *w, size_t want)
{
    size_t room = w->st->part_size - w->pend_bytes, goal = want > w->owned ? want : w->owned, cap = BLOCK_MIN;
    while (cap < goal && cap < BLOCK_MAX)
        cap *= 2;
    if (cap > room)
        cap = room;
    char *b;
    TLY_STAGE(TLY_PUT)
    {
        b = malloc(cap);
    }
    if (b == NULL || !grow((void **)&w->blocks, &w->blocks_cap, w->nblocks + 1, sizeof *w->blocks)) {
        free_blocks((void **)&b, b != NULL);
        return wfail(w, tly_fail(-ENOMEM, "s3 %s: out of memory for a %zu-byte block", w->key, cap));
    }
    w->blocks[w->nblocks++] = b;
    w->owned += cap;
    if (pend_push(w, b, 0))
        return w->err;
    w->tail = b;
    w->tail_cap = cap;
    return 0;
}

static int writer_writev(struct tly_writer *base, const struct iovec *iov, int niov)
{
    struct s3_writer *w = (struct s3_writer *)base;
    for (int i = 0; i < niov && !w->err; i++) {
        const char *p = iov[i].iov_base;
        for (size_t len = iov[i].iov_len; len > 0 && !w->err;) {
            if ((w->tail == NULL || w->pend[w->npend - 1].iov_len == w->tail_cap) && new_block(w, len))
                break;
            struct iovec *last = &w->pend[w->npend - 1];
            size_t k = w->tail_cap - last->iov_len < len ? w->tail_cap - last->iov_len : len;
            TLY_STAGE(TLY_PUT)
            {
                tly_copy(w->tail + last->iov_len, p, k);
            }
            last->iov_len += k;
            w->pend_bytes += k;
            p += k;
            len -= k;
            if (w->pend_bytes == w->st->part_size)
                cut_part(w);
        }
    }
    return w->err ? wfailed(w) : 0;
}

static void writer_free(struct s3_writer *w)
{
    for (int i = 0; i < w->nparts; i++) {
        struct part *p = w->parts[i];
        free_blocks(p->blocks, p->nblocks);
        free(p->blocks);
        free(p->iov);
        tly__s3_req_clear(&p->req);
        free(p);
    }
    free(w->parts);
    free_blocks(w->blocks, w->nblocks);
    free(w->blocks);
    free(w->pend);
    free(w->upload_id);
    free(w->key);
    free(w);
}

/* Abort the multipart upload (best effort: what fails here, `tally gc` cleans up). */
static void abort_upload(struct s3_writer *w)
{
    for (int i = 0; i < w->nparts; i++)
        reap(w, w->parts[i]);
    if (w->upload_id == NULL)
        return;
    struct tly__s3_req r;
    char *q = upload_query(w->upload_id, 0);
    if (q && req_init(w->st, &r, "DELETE", "AbortMultipartUpload", w->key, q) == 0) {
        run(w->st, &r);
        tly__s3_req_clear(&r);
    }
    free(q);
}

static void writer_abort(struct tly_writer *base)
{
    struct s3_writer *w = (struct s3_writer *)base;
    char saved[1024]; /* the caller's error message outlives the clean-up's own failures */
    snprintf(saved, sizeof saved, "%s", tly_errmsg());
    abort_upload(w);
    writer_free(w);
    tly_fail(0, "%s", saved);
}

/* The ETag S3 gives a multipart object: MD5 of the parts' binary MD5s, "-", the number of parts. */
static bool multipart_etag(const struct s3_writer *w, char *out, size_t cap)
{
    unsigned char *md5s = malloc((size_t)w->nparts * 16), md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    bool ok = md5s != NULL;
    for (int i = 0; ok && i < w->nparts; i++) {
        const char *e = w->parts[i]->req.etag;
        ok = strlen(e) == 34 && e[0] == '"' && e[33] == '"'; /* a plain MD5, not an encrypted object's */
        for (int k = 0; ok && k < 16; k++)
            ok = sscanf(e + 1 + 2 * k, "%2hhx", &md5s[16 * i + k]) == 1;
    }
    ok = ok && EVP_Digest(md5s, (size_t)w->nparts * 16, md, &mdlen, EVP_md5(), NULL) == 1;
    free(md5s);
    if (!ok)
        return false;
    int n = snprintf(out, cap, "\"");
    for (unsigned i = 0; i < mdlen; i++)
        n += snprintf(out + n, cap - (size_t)n, "%02x", md[i]);
    snprintf(out + n, cap - (size_t)n, "-%d\"", w->nparts);
    return true;
}

/*
 * A CompleteMultipartUpload sent again after its answer was lost (by our retry, or by libcurl's own
 * on a kept-alive connection found dead) finds NoSuchUpload: the first try may have completed it.
 * It did when the object under the key has exactly this upload's ETag.
 */
static bool completed_already(struct s3_writer *w)
{
    char want[64];
    struct tly__s3_req r;
    if (!multipart_etag(w, want, sizeof want) || req_init(w->st, &r, "HEAD", "HEAD", w->key, NULL) != 0)
        return false;
    bool done = run(w->st, &r) == 0 && strcmp(r.etag, want) == 0;
    tly__s3_req_clear(&r);
    return done;
}

static int complete(struct s3_writer *w)
{
    struct tly__s3_str xml = {0};
    tly__s3_str_add(&xml, "<CompleteMultipartUpload>", 25);
    for (int i = 0; i < w->nparts; i++)
        tly__s3_str_addf(&xml, "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>", i + 1, w->parts[i]->req.etag);
    tly__s3_str_add(&xml, "</CompleteMultipartUpload>", 26);
    char *q = upload_query(w->upload_id, 0);
    struct tly__s3_req r;
    int err = q && !xml.oom ? req_init(w->st, &r, "POST", "CompleteMultipartUpload", w->key, q)
                            : tly_fail(-ENOMEM, "out of memory");
    free(q);
    if (!err) {
        struct iovec iov = {xml.p, xml.n};
        r.resp = TLY__S3_RESP_BUF;
        r.body_may_hold_error = true;
        err = req_body(w->st, &r, &iov, 1);
        if (!err)
            err = run(w->st, &r);
        if (err && strcmp(r.code, "NoSuchUpload") == 0 && completed_already(w)) {
            tly_errclear();
            err = 0;
        }
        tly__s3_req_clear(&r);
    }
    tly__s3_str_free(&xml);
    return err;
}

static int writer_commit(struct tly_writer *base)
{
    struct s3_writer *w = (struct s3_writer *)base;
    int err = w->err;
    if (!err && w->upload_id == NULL) { /* one part's worth or less: a single PUT */
        struct tly__s3_req r;
        err = req_init(w->st, &r, "PUT", "PUT", w->key, NULL);
        if (!err && (err = req_body(w->st, &r, w->pend, w->npend)) == 0)
            err = run(w->st, &r);
        tly__s3_req_clear(&r);
        if (err)
            wfail(w, err);
    } else if (!err) {
        if (w->pend_bytes > 0)
            cut_part(w);
        for (int i = 0; i < w->nparts; i++)
            reap(w, w->parts[i]);
        if (!w->err && (err = complete(w)) != 0)
            wfail(w, err);
    }
    err = w->err;
    if (err) {
        char msg[sizeof w->msg];
        snprintf(msg, sizeof msg, "%s", w->msg);
        abort_upload(w);
        writer_free(w);
        return tly_fail(err, "%s", msg);
    }
    writer_free(w);
    return 0;
}

static const struct tly_writer_ops s3_writer_ops = {writer_add, writer_writev, writer_commit, writer_abort};

static int s3_writer(struct tly_store *base, const char *key, struct tly_writer **out)
{
    struct s3 *st = S(base);
    struct s3_writer *w = calloc(1, sizeof *w);
    if (w == NULL || (w->key = full_key(st, key)) == NULL) {
        free(w);
        return tly_fail(-ENOMEM, "out of memory");
    }
    w->base.ops = &s3_writer_ops;
    w->st = st;
    *out = &w->base;
    return 0;
}

/* ---- listings: clear and gc ---- */

/* One page of ListObjectsV2 (@p upload_marker NULL) or ListMultipartUploads under the prefix. */
static int list_page(struct s3 *st, bool uploads, const char *token, const char *upload_marker, struct tly__s3_xml *x)
{
    struct tly__s3_str q = {0};
    char *prefix = full_key(st, "");
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
                    : req_init(st, &r, "GET", uploads ? "ListMultipartUploads" : "ListObjectsV2", NULL, q.p);
    tly__s3_str_free(&q);
    if (err)
        return err;
    r.resp = TLY__S3_RESP_BUF;
    free(r.what);
    if (asprintf(&r.what, "s3://%s/%s%s", st->bucket, st->prefix, st->prefix[0] ? "/" : "") < 0)
        r.what = NULL;
    err = run(st, &r);
    if (!err && (err = tly__s3_xml_parse(r.buf, r.buf_n, x)) != 0)
        tly_err_prefix("s3 %s %s", r.op, r.what ? r.what : "");
    tly__s3_req_clear(&r);
    return err;
}

static bool is_meta_key(const char *rel)
{
    return strcmp(rel, ".zarray") == 0 || strcmp(rel, "zarr.json") == 0 || strcmp(rel, ".zattrs") == 0 ||
           strcmp(rel, ".zgroup") == 0;
}

/* Delete (or abort) the listed objects (uploads), BATCH at a time; counts them into @p done. */
static int delete_listed(struct s3 *st, const struct tly__s3_xml *x, bool uploads, bool keep_meta, uint64_t *done)
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
            if (keep_meta && strlen(key) > plen && is_meta_key(key + plen))
                continue;
            char *q = uploads ? upload_query(x->upload_ids[i], 0) : NULL;
            err = uploads && q == NULL
                      ? tly_fail(-ENOMEM, "out of memory")
                      : req_init(st, &rs[n], "DELETE", uploads ? "AbortMultipartUpload" : "DELETE", key, q);
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
                err = req_fail(&rs[k]); /* (an upload completed or aborted meanwhile is gone: fine) */
            tly__s3_req_clear(&rs[k]);
        }
    }
    free(rs);
    return err;
}

static int s3_clear(struct tly_store *base)
{
    struct s3 *st = S(base);
    uint64_t size;
    int err = s3_size(base, ".zarray", &size);
    if (err == TLY_ENOTFOUND)
        err = s3_size(base, "zarr.json", &size);
    if (err == TLY_ENOTFOUND)
        return tly_fail(TLY_EUSAGE,
                        "s3://%s/%s: not a Zarr array (no .zarray or zarr.json): refusing to delete its contents",
                        st->bucket, st->prefix);
    if (err)
        return err;
    char *token = NULL;
    uint64_t n = 0;
    do {
        struct tly__s3_xml x;
        err = list_page(st, false, token, NULL, &x);
        free(token);
        token = NULL;
        if (!err)
            err = delete_listed(st, &x, false, true, &n);
        if (!err && x.truncated) {
            token = x.next_token;
            x.next_token = NULL;
            if (token == NULL)
                err = tly_fail(TLY_EHTTP, "s3 ListObjectsV2 s3://%s/%s: truncated without a continuation token",
                               st->bucket, st->prefix);
        }
        tly__s3_xml_free(&x);
    } while (!err && token);
    /* The metadata last: an interrupted clear leaves an array (with missing chunks), not orphans. */
    static const char *const meta[] = {".zattrs", ".zgroup", ".zarray", "zarr.json"};
    for (size_t i = 0; i < sizeof meta / sizeof *meta && !err; i++)
        err = s3_del(base, meta[i]);
    return err;
}

static int s3_gc(struct tly_store *base, uint64_t *removed)
{
    struct s3 *st = S(base);
    char *key_marker = NULL, *id_marker = NULL;
    int err;
    do {
        struct tly__s3_xml x;
        err = list_page(st, true, key_marker, id_marker, &x);
        free(key_marker);
        free(id_marker);
        key_marker = id_marker = NULL;
        if (!err)
            err = delete_listed(st, &x, true, false, removed);
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
    return err;
}

/* ---- configuration ---- */

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && v[0] ? v : NULL;
}

static bool bucket_valid(const char *b)
{
    size_t n = strlen(b);
    if (n < 3 || n > 63)
        return false;
    for (const char *p = b; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' || *p == '_'))
            return false;
    return true;
}

/* s3://BUCKET[/PREFIX] into bucket and prefix (without leading or trailing slashes). */
static int parse_url(struct s3 *st, const char *url)
{
    const char *b = url + 5, *slash = strchr(b, '/');
    size_t blen = slash ? (size_t)(slash - b) : strlen(b);
    st->bucket = strndup(b, blen);
    const char *p = slash ? slash : "";
    while (*p == '/')
        p++;
    st->prefix = strdup(p);
    if (st->bucket == NULL || st->prefix == NULL)
        return tly_fail(-ENOMEM, "out of memory");
    size_t plen = strlen(st->prefix);
    while (plen > 0 && st->prefix[plen - 1] == '/')
        st->prefix[--plen] = '\0';
    if (!bucket_valid(st->bucket))
        return tly_fail(TLY_EUSAGE, "store URL '%s': '%s' is not a bucket name (3 to 63 of a-z 0-9 . - _)", url,
                        st->bucket);
    if (plen > 0 && !tly_store_key_valid(st->prefix))
        return tly_fail(TLY_EUSAGE, "store URL '%s': the prefix '%s' has an empty, '.' or '..' component", url,
                        st->prefix);
    return 0;
}

/* The endpoint and the addressing style: AWS_ENDPOINT_URL(_S3), TALLY_S3_ADDRESSING, the region. */
static int parse_endpoint(struct s3 *st)
{
    const char *ep = env("AWS_ENDPOINT_URL_S3");
    if (ep == NULL)
        ep = env("AWS_ENDPOINT_URL");
    const char *style = env("TALLY_S3_ADDRESSING");
    if (style && strcmp(style, "path") != 0 && strcmp(style, "virtual") != 0)
        return tly_fail(TLY_EUSAGE, "TALLY_S3_ADDRESSING='%s': want path or virtual", style);
    if (ep) {
        const char *rest = strstr(ep, "://");
        if (rest == NULL || (strncmp(ep, "http://", 7) != 0 && strncmp(ep, "https://", 8) != 0))
            return tly_fail(TLY_EUSAGE, "AWS_ENDPOINT_URL='%s': want http://HOST[:PORT] or https://HOST[:PORT]", ep);
        rest += 3;
        size_t n = strcspn(rest, "/?#");
        if (n == 0)
            return tly_fail(TLY_EUSAGE, "AWS_ENDPOINT_URL='%s': no host", ep);
        st->scheme = strndup(ep, (size_t)(rest - 3 - ep));
        st->authority = strndup(rest, n);
        /* A custom endpoint (RGW, MinIO) is addressed by path unless told otherwise. */
        st->virtual_host = style && strcmp(style, "virtual") == 0;
    } else {
        st->scheme = strdup("https");
        if (asprintf(&st->authority, "s3.%s.amazonaws.com", st->region) < 0)
            st->authority = NULL;
        /* AWS: virtual-hosted, except a bucket with dots, which no wildcard certificate covers */
        st->virtual_host = style ? strcmp(style, "virtual") == 0 : strchr(st->bucket, '.') == NULL;
    }
    if (st->scheme == NULL || st->authority == NULL)
        return tly_fail(-ENOMEM, "out of memory");
    return 0;
}

static int parse_creds(struct s3 *st, const char *url)
{
    const char *ak = env("AWS_ACCESS_KEY_ID"), *sk = env("AWS_SECRET_ACCESS_KEY"), *tok = env("AWS_SESSION_TOKEN");
    if (ak == NULL || sk == NULL)
        return tly_fail(TLY_EAUTH,
                        "%s: no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN "
                        "for temporary ones)",
                        url);
    st->creds.access_key = strdup(ak);
    st->creds.secret_key = strdup(sk);
    st->creds.session_token = tok ? strdup(tok) : NULL;
    if (!st->creds.access_key || !st->creds.secret_key || (tok && !st->creds.session_token))
        return tly_fail(-ENOMEM, "out of memory");
    return 0;
}

static int configure(struct s3 *st, const char *url, const struct tly_store_opts *opts, struct tly__s3_http_opts *ho)
{
    int err = parse_url(st, url);
    if (err)
        return err;
    const char *region = env("AWS_REGION");
    if (region == NULL)
        region = env("AWS_DEFAULT_REGION");
    if ((st->region = strdup(region ? region : "us-east-1")) == NULL)
        return tly_fail(-ENOMEM, "out of memory");
    if ((err = parse_endpoint(st)) != 0 || (err = parse_creds(st, url)) != 0)
        return err;
    const char *ca = env("TALLY_S3_CA_BUNDLE");
    if (ca == NULL)
        ca = env("AWS_CA_BUNDLE");
    if (ca && (st->ca_file = strdup(ca)) == NULL)
        return tly_fail(-ENOMEM, "out of memory");
    const char *sign = env("TALLY_S3_SIGN_PAYLOAD");
    st->sign_payload = sign && strcmp(sign, "0") != 0;
    uint64_t part, conc, retries, backoff, cto, lst, page;
    if (opts->io_concurrency < 0)
        return tly_fail(TLY_EUSAGE, "I/O concurrency %d: want a positive count", opts->io_concurrency);
    if ((err = tly__opt_resolve(TLY__OPT_PART_SIZE, opts->part_size, &part)) ||
        (err = tly__opt_resolve(TLY__OPT_IO_CONCURRENCY, (uint64_t)opts->io_concurrency, &conc)) ||
        (err = tly__opt_resolve(TLY__OPT_S3_RETRIES, 0, &retries)) ||
        (err = tly__opt_resolve(TLY__OPT_S3_BACKOFF_MS, 0, &backoff)) ||
        (err = tly__opt_resolve(TLY__OPT_S3_CONNECT_TIMEOUT, 0, &cto)) ||
        (err = tly__opt_resolve(TLY__OPT_S3_LOW_SPEED_TIME, 0, &lst)) ||
        (err = tly__opt_resolve(TLY__OPT_S3_LIST_PAGE, 0, &page)))
        return err;
    st->part_size = (size_t)part;
    st->list_page = (int)page;
    *ho = (struct tly__s3_http_opts){
        .concurrency = (int)conc,
        .max_attempts = (int)retries + 1,
        .backoff_base_ms = (long)backoff,
        .backoff_cap_ms = 10000,
        .connect_timeout_s = (long)cto,
        .low_speed_time_s = (long)lst,
        .low_speed_limit = 1024,
        .ca_file = st->ca_file,
        .creds = &st->creds,
        .sign_cache = &st->cache,
        .region = st->region,
    };
    return 0;
}

static void s3_close(struct tly_store *base)
{
    struct s3 *st = S(base);
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
    .size = s3_size,
    .readv = s3_readv,
    .read_stream = s3_read_stream,
    .get = s3_get,
    .put = s3_put,
    .writer = s3_writer,
    .del = s3_del,
    .clear = s3_clear,
    .gc = s3_gc,
    .close = s3_close,
};

int tly__s3_open(const char *url, const struct tly_store_opts *opts, struct tly_store **out)
{
    struct s3 *st = calloc(1, sizeof *st);
    if (st == NULL || (st->base.url = strdup(url)) == NULL) {
        free(st);
        return tly_fail(-ENOMEM, "out of memory");
    }
    st->base.ops = &s3_ops;
    st->base.opts = *opts;
    tly__sigv4_cache_init(&st->cache);
    struct tly__s3_http_opts ho;
    int err = configure(st, url, opts, &ho);
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
