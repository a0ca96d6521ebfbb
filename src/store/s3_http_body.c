/*
 * libcurl's callbacks of an S3 transfer (stage http, on the loop thread): the request body streamed
 * from the caller's memory (read, seek), the ETag header, and the response body landed in the
 * caller's pieces, its sink or a buffer allocated in its stage (write). A 200 to a ranged or resumed
 * GET is the whole object: what comes before the range is dropped, and the transfer stops once the
 * range is in; a 200 to a suffix range is stopped at once (its Content-Length is the object's size). An error reply's
 * body is kept for its S3 error code (64 KiB at most); a body read whole (metadata, XML) is refused past body_max
 * (TALLY_META_LIMIT) as soon as its Content-Length says so, before anything is allocated for it; a body nobody asked
 * for is refused past 64 KiB. The copies into and out of libcurl's buffers go through the copy ledger.
 */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "tally/error.h"
#include "store/s3_http_internal.h"

#define ERRBODY_MAX ((size_t)64 * 1024) /* an error reply is a few hundred bytes; keep at most this */

size_t tly__s3_on_read(char *dst, size_t size, size_t nitems, void *ud)
{
    struct tly__s3_req *r = ud;
    size_t room = size * nitems, k = 0;
    while (k < room && r->body_i < r->nbody) {
        const struct iovec *v = &r->body[r->body_i];
        size_t m = v->iov_len - r->body_off;
        if (m > room - k)
            m = room - k;
        if (m)
            tly_copy(dst + k, (const char *)v->iov_base + r->body_off, m);
        k += m;
        r->body_off += m;
        if (r->body_off == v->iov_len) {
            r->body_i++;
            r->body_off = 0;
        }
    }
    return k;
}

/* curl rewinds a body to send it again (a redirect, an auth retry): only ever to an absolute offset. */
int tly__s3_on_seek(void *ud, curl_off_t offset, int origin)
{
    struct tly__s3_req *r = ud;
    if (origin != SEEK_SET || offset < 0)
        return CURL_SEEKFUNC_CANTSEEK;
    uint64_t left = (uint64_t)offset;
    r->body_i = 0;
    r->body_off = 0;
    while (r->body_i < r->nbody && left >= r->body[r->body_i].iov_len) {
        left -= r->body[r->body_i].iov_len;
        r->body_i++;
    }
    if (r->body_i == r->nbody && left > 0)
        return CURL_SEEKFUNC_FAIL;
    r->body_off = (size_t)left;
    return CURL_SEEKFUNC_OK;
}

/* Refuse a body read whole (RESP_BUF) that says it will be (@p declared) or has grown over the limit. */
static bool too_large(struct tly__s3_req *r, uint64_t n, bool declared)
{
    if (n <= r->body_max)
        return false;
    r->sink_err = TLY_EFORMAT;
    if (declared)
        snprintf(r->sink_msg, sizeof r->sink_msg,
                 "the reply says it is %llu bytes, more than the limit for metadata and listings, %llu bytes "
                 "(TALLY_META_LIMIT)",
                 (unsigned long long)n, (unsigned long long)r->body_max);
    else
        snprintf(r->sink_msg, sizeof r->sink_msg,
                 "the reply runs past the limit for metadata and listings, %llu bytes (TALLY_META_LIMIT)",
                 (unsigned long long)r->body_max);
    return true;
}

size_t tly__s3_on_header(char *p, size_t size, size_t nitems, void *ud)
{
    struct tly__s3_req *r = ud;
    size_t len = size * nitems;
    const char *v = memchr(p, ':', len), *end = p + len;
    if (v == NULL)
        return len;
    for (v++; v < end && (*v == ' ' || *v == '\t'); v++)
        ;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    if (len > 23 && strncasecmp(p, "x-amz-meta-tally-write:", 23) == 0) {
        /* compared, never printed raw: printable ASCII only, or none */
        bool ok = end - v < (ptrdiff_t)sizeof r->meta_write_got;
        for (const char *c = v; ok && c < end; c++)
            ok = *c > 0x20 && *c < 0x7f;
        snprintf(r->meta_write_got, sizeof r->meta_write_got, "%.*s", ok ? (int)(end - v) : 0, v);
    } else if (len > 14 && strncasecmp(p, "last-modified:", 14) == 0) {
        bool ok = end - v < (ptrdiff_t)sizeof r->last_modified;
        for (const char *c = v; ok && c < end; c++)
            ok = *c >= 0x20 && *c < 0x7f;
        snprintf(r->last_modified, sizeof r->last_modified, "%.*s", ok ? (int)(end - v) : 0, v);
    } else if (len > 5 && strncasecmp(p, "etag:", 5) == 0) {
        /* sent back as If-Match: printable ASCII only, or none */
        bool ok = end - v < (ptrdiff_t)sizeof r->etag;
        for (const char *c = v; ok && c < end; c++)
            ok = *c > 0x20 && *c < 0x7f;
        snprintf(r->etag, sizeof r->etag, "%.*s", ok ? (int)(end - v) : 0, v);
    } else if (len > 14 && strncasecmp(p, "content-range:", 14) == 0 && (r->suffix || r->ranged)) {
        /* "bytes FIRST-LAST/TOTAL": the size of the object a range is of */
        char text[96];
        snprintf(text, sizeof text, "%.*s", (int)(end - v < 95 ? end - v : 95), v);
        const char *slash = strrchr(text, '/');
        char *stop = NULL;
        unsigned long long total = slash && slash[1] >= '0' && slash[1] <= '9' ? strtoull(slash + 1, &stop, 10) : 0;
        if (stop && *stop == '\0' && strncmp(text, "bytes ", 6) == 0) {
            r->total = total;
            r->have_total = true;
        }
    } else if (len > 15 && strncasecmp(p, "content-length:", 15) == 0 && r->resp == TLY__S3_RESP_BUF) {
        long status = 0;
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
        char num[24];
        snprintf(num, sizeof num, "%.*s", (int)(end - v < 23 ? end - v : 23), v);
        unsigned long long cl = strtoull(num, NULL, 10);
        if (status >= 200 && status < 300 && (cl > r->body_max || strlen(num) > 19) &&
            too_large(r, cl > r->body_max ? cl : UINT64_MAX, true))
            return 0;
    }
    return len;
}

/* RESP_IOV: @p n bytes at the position `delivered` of the caller's pieces. */
static void put_iov(struct tly__s3_req *r, const char *p, size_t n)
{
    while (n > 0 && r->resp_i < r->nresp_iov) {
        const struct iovec *v = &r->resp_iov[r->resp_i];
        size_t m = v->iov_len - r->resp_off;
        if (m > n)
            m = n;
        tly_copy((char *)v->iov_base + r->resp_off, p, m);
        p += m;
        n -= m;
        r->resp_off += m;
        if (r->resp_off == v->iov_len) {
            r->resp_i++;
            r->resp_off = 0;
        }
    }
}

/* RESP_BUF: room for @p n more bytes and the NUL, allocated in the caller's stage (it frees it). */
static bool buf_room(struct tly__s3_req *r, size_t n)
{
    if (r->buf_n + n + 1 <= r->buf_cap)
        return true;
    if (too_large(r, (uint64_t)r->buf_n + n, false))
        return false;
    curl_off_t cl = -1;
    curl_easy_getinfo(r->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
    size_t cap = r->buf_cap ? r->buf_cap * 2 : 4096;
    if (cl > 0 && (uint64_t)cl + 1 > cap && (uint64_t)cl <= r->body_max) /* the length it says, not more */
        cap = (size_t)cl + 1;
    while (cap < r->buf_n + n + 1)
        cap *= 2;
    char *p;
    TLY_STAGE(r->caller_stage)
    {
        p = realloc(r->buf, cap);
    }
    if (p == NULL)
        return false;
    r->buf = p;
    r->buf_cap = cap;
    return true;
}

size_t tly__s3_on_write(char *p, size_t size, size_t nitems, void *ud)
{
    struct tly__s3_req *r = ud;
    size_t len = size * nitems, n = len;
    if (r->cur_status == 0) {
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->cur_status);
        /* A 200 to a suffix range is the whole object from its start: its size is what was wanted;
         * the caller reads the end by an ordinary range rather than the object whole. */
        if (r->cur_status == 200 && r->suffix) {
            curl_off_t cl = -1;
            curl_easy_getinfo(r->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
            r->whole = true;
            r->have_total = cl >= 0;
            r->total = cl >= 0 ? (uint64_t)cl : 0;
            return 0;
        }
        /* A 200 to a ranged (or resumed) GET is the whole object: drop what comes before the range. */
        if (r->cur_status == 200 && (r->ranged || r->delivered > 0)) {
            curl_off_t cl = -1;
            curl_easy_getinfo(r->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
            r->have_total = cl >= 0;
            r->total = cl >= 0 ? (uint64_t)cl : 0;
            r->skip = r->range_start + r->delivered;
        }
    }
    if (r->cur_status < 200 || r->cur_status >= 300) {
        if (r->errbody.n < ERRBODY_MAX)
            tly__s3_str_add(&r->errbody, p, n < ERRBODY_MAX - r->errbody.n ? n : ERRBODY_MAX - r->errbody.n);
        return len;
    }
    if (r->skip) {
        size_t k = r->skip < n ? (size_t)r->skip : n;
        p += k;
        n -= k;
        r->skip -= k;
    }
    switch (r->resp) {
    case TLY__S3_RESP_NONE:
        r->delivered += n;
        if (r->delivered > ERRBODY_MAX) { /* a body nobody asked for, and no end to it */
            r->overflow = true;
            return 0;
        }
        break;
    case TLY__S3_RESP_IOV: {
        uint64_t room = r->resp_len - r->delivered;
        if (n > room) {
            if (r->cur_status != 200) {
                r->overflow = true; /* a 206 longer than the range asked for */
                return 0;
            }
            n = (size_t)room; /* the rest of a whole object sent for a range: not wanted */
        }
        put_iov(r, p, n);
        r->delivered += n;
        if (r->cur_status == 200 && r->delivered == r->resp_len && n < len) {
            r->enough = true; /* the range is in: stop reading the rest of the object */
            return 0;
        }
        break;
    }
    case TLY__S3_RESP_SINK:
        if (n > 0) {
            int rc;
            TLY_STAGE(r->caller_stage)
            {
                rc = r->sink(r->sink_arg, p, n);
            }
            if (rc) {
                r->sink_err = rc < 0 ? rc : TLY_EUSAGE;
                snprintf(r->sink_msg, sizeof r->sink_msg, "%s", tly_errmsg());
                return 0;
            }
        }
        r->delivered += n;
        break;
    case TLY__S3_RESP_BUF:
        if (!buf_room(r, n)) {
            if (r->sink_err == 0) {
                r->sink_err = -ENOMEM;
                snprintf(r->sink_msg, sizeof r->sink_msg, "out of memory for the reply");
            }
            return 0;
        }
        tly_copy(r->buf + r->buf_n, p, n);
        r->buf_n += n;
        r->buf[r->buf_n] = '\0';
        break;
    }
    return len;
}
