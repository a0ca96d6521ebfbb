/*
 * The S3 store's operations on one object: its size (HEAD), reads (a range GET into the caller's
 * pieces, a GET streamed to a sink, a GET into a buffer), a small PUT, a DELETE.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "tally/error.h"
#include "store/s3_store.h"

/* ---- reads ---- */

/*
 * A HEAD's error reply has no body, so its S3 error code is unknown. A GET of the object's first
 * byte tells it: NoSuchKey (the bucket exists, remembered: later 404s are missing keys),
 * NoSuchBucket, SignatureDoesNotMatch, ...
 */
static int head_failed(struct tly__s3 *st, struct tly__s3_req *head, const char *key)
{
    if (head->curl_code != 0 || head->status < 400)
        return tly__s3_req_fail(head);
    if (head->status == 404 && atomic_load(&st->bucket_seen))
        return tly__s3_req_fail(head);
    struct tly__s3_req probe;
    int err = tly__s3_req_key(st, &probe, "GET", "HEAD", key, NULL);
    if (err)
        return err;
    probe.ranged = true;
    probe.range_start = 0;
    probe.range_len = 1;
    err = tly__s3_run(st, &probe);
    if (strcmp(probe.code, "NoSuchKey") == 0)
        atomic_store(&st->bucket_seen, true);
    if (err == 0 || probe.code[0] == '\0')
        err = tly__s3_req_fail(head);
    tly__s3_req_clear(&probe);
    return err;
}

int tly__s3_size(struct tly_store *base, const char *key, uint64_t *out)
{
    struct tly__s3 *st = tly__s3_of(base);
    struct tly__s3_req r;
    int err = tly__s3_req_key(st, &r, "HEAD", "HEAD", key, NULL);
    if (err)
        return err;
    err = tly__s3_run(st, &r);
    if (err)
        err = head_failed(st, &r, key);
    else if (!r.have_length)
        err = tly_fail(TLY_EHTTP, "s3 HEAD %s: no Content-Length in the reply", r.what);
    else
        *out = r.content_length;
    tly__s3_req_clear(&r);
    return err;
}

int tly__s3_readv(struct tly_store *base, const char *key, uint64_t offset, const struct iovec *iov, int niov)
{
    struct tly__s3 *st = tly__s3_of(base);
    uint64_t total = 0;
    for (int i = 0; i < niov; i++)
        total += iov[i].iov_len;
    if (total == 0) {
        uint64_t size;
        return tly__s3_size(base, key, &size);
    }
    struct tly__s3_req r;
    int err = tly__s3_req_key(st, &r, "GET", "GET", key, NULL);
    if (err)
        return err;
    r.ranged = true;
    r.range_start = offset;
    r.range_len = total;
    r.resp = TLY__S3_RESP_IOV;
    r.resp_iov = iov;
    r.nresp_iov = niov;
    r.resp_len = total;
    err = tly__s3_run(st, &r);
    if (!err && r.delivered != total)
        err = tly_fail(TLY_EFORMAT, "s3 GET %s: ends at byte %llu, before the %llu bytes asked for at %llu (truncated)",
                       r.what, (unsigned long long)(offset + r.delivered), (unsigned long long)total,
                       (unsigned long long)offset);
    tly__s3_req_clear(&r);
    return err;
}

/*
 * The object's first (@p tail false) or last @p n bytes by one GET, a range from byte 0 or a suffix
 * range, and its size: a 206's Content-Range says it (and its length how much there was, for an
 * object shorter than @p n); a 200 to a range, from a server that ignores ranges, is the object from
 * its start, its Content-Length the size. What cannot be answered so is asked again the ordinary way
 * (the size by HEAD when not known, then a range): two requests, as before. That is a 416 (RGW
 * refuses a range of an empty object) and a 200 to a suffix (stopped at its first byte).
 */
static int read_edge(struct tly_store *base, const char *key, void *buf, size_t n, uint64_t *size, bool tail)
{
    struct tly__s3 *st = tly__s3_of(base);
    if (n == 0)
        return tly__s3_size(base, key, size);
    struct tly__s3_req r;
    struct iovec iov = {buf, n};
    int err = tly__s3_req_key(st, &r, "GET", "GET", key, NULL);
    if (err)
        return err;
    r.suffix = tail;
    r.ranged = !tail;
    r.range_start = 0;
    r.range_len = n;
    r.resp = TLY__S3_RESP_IOV;
    r.resp_iov = &iov;
    r.nresp_iov = 1;
    r.resp_len = n;
    err = tly__s3_run(st, &r);
    bool again = (err == TLY_EFORMAT && r.status == 416) || (tail && !err && r.status == 200);
    bool known = !err && r.have_total;
    uint64_t total = r.have_total ? r.total : r.content_length;
    if (!err && r.status == 200 && !r.whole && r.have_length) /* an empty 200: no byte to stop at */
        known = true, total = r.content_length;
    if (again && err) { /* 416 */
        tly_errclear();
        err = 0;
    }
    if (!again && !err && !known)
        err = tly_fail(TLY_EHTTP, "s3 GET %s: a %ld to a %s without Content-Range (the object's size)", r.what,
                       r.status, tail ? "suffix range" : "range");
    if (!again && !err && r.delivered != (total < n ? total : n))
        err = tly_fail(TLY_EFORMAT, "s3 GET %s: %llu of the %s %llu bytes of %llu (truncated)", r.what,
                       (unsigned long long)r.delivered, tail ? "last" : "first",
                       (unsigned long long)(total < n ? total : n), (unsigned long long)total);
    tly__s3_req_clear(&r);
    if (err || !again) {
        if (!err)
            *size = total;
        return err;
    }
    if (!known && (err = tly__s3_size(base, key, &total)) != 0)
        return err;
    *size = total;
    iov.iov_len = total < n ? (size_t)total : n;
    return iov.iov_len ? tly__s3_readv(base, key, tail ? total - iov.iov_len : 0, &iov, 1) : 0;
}

int tly__s3_read_head(struct tly_store *base, const char *key, void *buf, size_t n, uint64_t *size)
{
    return read_edge(base, key, buf, n, size, false);
}

int tly__s3_read_tail(struct tly_store *base, const char *key, void *buf, size_t n, uint64_t *size)
{
    return read_edge(base, key, buf, n, size, true);
}

int tly__s3_read_stream(struct tly_store *base, const char *key, void *buf, size_t cap, tly_store_sink_fn sink,
                        void *arg)
{
    (void)buf, (void)cap; /* the body's pieces come straight from libcurl's buffer */
    struct tly__s3 *st = tly__s3_of(base);
    struct tly__s3_req r;
    int err = tly__s3_req_key(st, &r, "GET", "GET", key, NULL);
    if (err)
        return err;
    r.resp = TLY__S3_RESP_SINK;
    r.sink = sink;
    r.sink_arg = arg;
    err = tly__s3_run(st, &r);
    tly__s3_req_clear(&r);
    return err;
}

int tly__s3_get(struct tly_store *base, const char *key, char **data, size_t *n)
{
    return tly__s3_get_tagged(tly__s3_of(base), key, data, n, NULL);
}

int tly__s3_get_tagged(struct tly__s3 *st, const char *key, char **data, size_t *n, char etag[128])
{
    struct tly__s3_req r;
    int err = tly__s3_req_key(st, &r, "GET", "GET", key, NULL);
    if (err)
        return err;
    r.resp = TLY__S3_RESP_BUF;
    err = tly__s3_run(st, &r);
    if (!err && r.buf == NULL && (r.buf = calloc(1, 1)) == NULL) /* an empty object */
        err = tly_fail(-ENOMEM, "out of memory");
    if (!err) {
        tly__s3_opened(st, key, &r);
        if (etag)
            snprintf(etag, 128, "%s", r.etag);
        *data = r.buf;
        *n = r.buf_n;
        r.buf = NULL;
    }
    tly__s3_req_clear(&r);
    return err;
}

/* ---- small writes and deletes ---- */

int tly__s3_put(struct tly_store *base, const char *key, const void *data, size_t n)
{
    struct tly__s3 *st = tly__s3_of(base);
    int err = tly__s3_commit_check(st, key);
    return err ? err : tly__s3_put_if(st, key, data, n, NULL, NULL);
}

int tly__s3_put_if(struct tly__s3 *st, const char *key, const void *data, size_t n, const char *if_match,
                   const char *if_none_match)
{
    struct tly__s3_req r;
    struct iovec iov = {(void *)data, n};
    int err = tly__s3_req_key(st, &r, "PUT", "PUT", key, NULL);
    if (err)
        return err;
    r.if_match = if_match;
    r.if_none_match = if_none_match;
    if (st->write_id[0])
        r.meta_write = st->write_id; /* the version a reader compares, unique to this write */
    err = tly__s3_req_body(st, &r, &iov, 1);
    if (!err)
        err = tly__s3_run(st, &r);
    if (err && r.status == 412) {
        tly_errclear();
        err = 1;
    }
    tly__s3_req_clear(&r);
    return err;
}

int tly__s3_del(struct tly_store *base, const char *key)
{
    struct tly__s3 *st = tly__s3_of(base);
    struct tly__s3_req r;
    int err = tly__s3_req_key(st, &r, "DELETE", "DELETE", key, NULL);
    if (err)
        return err;
    err = tly__s3_run(st, &r);
    if (err == TLY_ENOTFOUND) { /* S3 answers 204 for a missing key; a 404 NoSuchKey means the same */
        tly_errclear();
        err = 0;
    }
    tly__s3_req_clear(&r);
    return err;
}
