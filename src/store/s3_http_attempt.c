/*
 * One attempt of an S3 request (stage http, on the loop thread): its headers signed (stage sign),
 * its transfer set up on an easy handle and added to the multi handle; at its end, the answer, or
 * a retry.
 *
 * Retries: a transport failure (refused, reset, timed out, cut short, idle) or a 429/500/502/503/504
 * or an S3 SlowDown/InternalError/RequestTimeout is tried again after a backoff drawn uniformly from
 * [0, min(cap, base * 2^n)) ("full jitter"), up to max_attempts. Each request is retried alone (a
 * multipart upload's part is a request of its own). A download cut short resumes where it stopped
 * (Range from the bytes already handed over, If-Match the first answer's ETag), so a sink never sees
 * a byte twice.
 *
 * Time: an attempt that moves no byte for idle_timeout_s is abandoned (and retried), beside
 * libcurl's low-speed limit; a request, its retries and backoffs included, ends when its
 * total_timeout_s runs out (a body dripped faster than the low-speed limit never would). What a
 * server says in an error is sanitised before a message shows it (no signature, key or control
 * character).
 */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tally/error.h"
#include "tally/timing.h"
#include "store/internal.h"
#include "store/s3_http_internal.h"
#include "store/s3_xml.h"
#include "mem/plant.h"

/* ---- the start: signed headers, a transfer ---- */

static bool add_header(struct tly__s3_req *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool add_header(struct tly__s3_req *r, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line)
        return false;
    struct curl_slist *l = curl_slist_append(r->headers, line);
    if (l == NULL)
        return false;
    r->headers = l;
    return true;
}

/* The headers of this attempt, signed. Returns 0 or an error (message in sink_msg). */
static int sign_headers(struct tly__s3_http *h, struct tly__s3_req *r)
{
    char date[20], range[64] = "";
    struct tm tm;
    time_t t = time(NULL);
    gmtime_r(&t, &tm);
    strftime(date, sizeof date, "%Y%m%dT%H%M%SZ", &tm);
    bool resuming = r->delivered > 0 && (r->resp == TLY__S3_RESP_IOV || r->resp == TLY__S3_RESP_SINK);
    if (r->ranged)
        snprintf(range, sizeof range, "bytes=%llu-%llu", (unsigned long long)(r->range_start + r->delivered),
                 (unsigned long long)(r->range_start + r->range_len - 1));
    else if (r->suffix) /* resumed: the last bytes not yet in, again a suffix */
        snprintf(
            range, sizeof range, "bytes=-%llu",
            (unsigned long long)((r->have_total && r->total < r->range_len ? r->total : r->range_len) - r->delivered));
    else if (resuming)
        snprintf(range, sizeof range, "bytes=%llu-", (unsigned long long)r->delivered);
    struct tly__sigv4_header hs[9];
    int nh = 0;
    hs[nh++] = (struct tly__sigv4_header){"host", r->host};
    hs[nh++] = (struct tly__sigv4_header){"x-amz-content-sha256", r->payload_hash};
    hs[nh++] = (struct tly__sigv4_header){"x-amz-date", date};
    if (h->o.creds->session_token)
        hs[nh++] = (struct tly__sigv4_header){"x-amz-security-token", h->o.creds->session_token};
    if (range[0])
        hs[nh++] = (struct tly__sigv4_header){"range", range};
    if (resuming && r->etag[0])
        hs[nh++] = (struct tly__sigv4_header){"if-match", r->etag};
    else if (r->if_match)
        hs[nh++] = (struct tly__sigv4_header){"if-match", r->if_match};
    if (r->if_none_match)
        hs[nh++] = (struct tly__sigv4_header){"if-none-match", r->if_none_match};
    if (r->meta_write)
        hs[nh++] = (struct tly__sigv4_header){"x-amz-meta-tally-write", r->meta_write};
    struct tly__sigv4_req sr = {
        .method = r->method,
        .path = r->path,
        .query = r->query,
        .headers = hs,
        .nheaders = nh,
        .payload_hash = r->payload_hash,
        .amz_date = date,
        .region = h->o.region,
        .service = "s3",
    };
    struct tly__sigv4_out out;
    int err;
    TLY_STAGE(TLY_SIGN)
    {
        tly__plant_point(TLY_SIGN);
        err = tly__sigv4_sign(&sr, h->o.creds, h->o.sign_cache, false, &out);
    }
    if (err)
        return err;
    /* The header list lives as long as the transfer, in http; the signature's text is freed in sign. */
    bool ok = true;
    for (int i = 0; ok && i < nh; i++)
        ok = add_header(r, "%s: %s", hs[i].name, hs[i].value);
    ok = ok && add_header(r, "Authorization: %s", out.authorization);
    TLY_STAGE(TLY_SIGN)
    {
        tly__sigv4_out_free(&out);
    }
    if (!ok)
        return tly_fail(-ENOMEM, "out of memory for request headers");
    /* Not signed: no 100-continue round trip before each body; no default content type. */
    if (!add_header(r, "Expect:") ||
        !add_header(r, strcmp(r->method, "POST") == 0 ? "Content-Type: application/xml" : "Content-Type:"))
        return tly_fail(-ENOMEM, "out of memory for request headers");
    return 0;
}

static void set_method(CURL *e, struct tly__s3_req *r)
{
    if (strcmp(r->method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (strcmp(r->method, "PUT") == 0) {
        curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->body_len);
    } else if (strcmp(r->method, "POST") == 0) {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    } else if (strcmp(r->method, "GET") != 0) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
    }
    if (r->body) {
        curl_easy_setopt(e, CURLOPT_READFUNCTION, tly__s3_on_read);
        curl_easy_setopt(e, CURLOPT_READDATA, r);
        curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, tly__s3_on_seek);
        curl_easy_setopt(e, CURLOPT_SEEKDATA, r);
    }
}

static void finish(struct tly__s3_http *h, struct tly__s3_req *r)
{
    tly_io_request_end(r, r->status, r->body_len + r->delivered + r->buf_n, r->attempts);
    if (h->o.traffic && (strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0))
        tly__traffic_request(h->o.traffic);
    tly__s3_str_free(&r->errbody);
    pthread_mutex_lock(&h->mu);
    r->done = true;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&h->mu);
}

static void fail_now(struct tly__s3_http *h, struct tly__s3_req *r, int err)
{
    r->sink_err = err;
    snprintf(r->sink_msg, sizeof r->sink_msg, "%s", tly_errmsg());
    finish(h, r);
}

/* CURLOPT_XFERINFOFUNCTION: abandon an attempt that has moved no byte for idle_timeout_s. */
static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    (void)dltotal, (void)ultotal;
    struct tly__s3_req *r = ud;
    uint64_t moved = (uint64_t)dlnow + (uint64_t)ulnow, now = tly__s3_now_ns();
    if (moved != r->moved) {
        r->moved = moved;
        r->moved_ns = now;
        return 0;
    }
    if (now - r->moved_ns < (uint64_t)r->idle_s * 1000000000u)
        return 0;
    r->idle = true;
    return 1;
}

void tly__s3_attempt_begin(struct tly__s3_http *h, struct tly__s3_req *r)
{
    tly__plant_point(TLY_HTTP);
    uint64_t now = tly__s3_now_ns();
    if (now >= r->deadline_ns) {
        r->late = true;
        r->timeout_s = h->o.total_timeout_s;
        fail_now(h, r,
                 tly_fail(TLY_EHTTP,
                          "timed out: more than %ld s for the request, its retries included (TALLY_S3_TIMEOUT)",
                          h->o.total_timeout_s));
        return;
    }
    r->attempts++;
    r->idle = false;
    r->moved = 0;
    r->moved_ns = now;
    r->idle_s = h->o.idle_timeout_s;
    r->cur_status = 0;
    r->status = 0;
    r->curl_code = 0;
    r->code[0] = r->message[0] = r->curl_error[0] = '\0';
    r->errbody.n = 0;
    r->body_i = 0;
    r->body_off = 0;
    r->skip = 0;
    r->buf_n = 0;
    r->whole = false;
    int err = sign_headers(h, r);
    if (err) {
        curl_slist_free_all(r->headers);
        r->headers = NULL;
        fail_now(h, r, err);
        return;
    }
    CURL *e = h->nidle ? h->idle[--h->nidle] : curl_easy_init();
    if (e == NULL) {
        curl_slist_free_all(r->headers);
        r->headers = NULL;
        fail_now(h, r, tly_fail(-ENOMEM, "out of memory for a transfer"));
        return;
    }
    curl_easy_reset(e); /* options only: the multi handle keeps the connections */
    r->easy = e;
    curl_easy_setopt(e, CURLOPT_URL, r->url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, h->o.connect_timeout_s);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, h->o.low_speed_limit);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, h->o.low_speed_time_s);
    uint64_t left_ms = (r->deadline_ns - now) / 1000000u;
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(left_ms > 0 ? left_ms : 1));
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, r);
    /* 16 KiB each way (curl's download default; its upload default is 64 KiB): measured as fast
     * against radosgw here, and 32 transfers hold 1 MiB instead of 4 */
    curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, 16384L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->curl_error);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    if (h->o.ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, h->o.ca_file);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, tly__s3_on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, tly__s3_on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    set_method(e, r);
    if (curl_multi_add_handle(h->multi, e) != CURLM_OK) {
        curl_slist_free_all(r->headers);
        r->headers = NULL;
        r->easy = NULL;
        curl_easy_cleanup(e);
        fail_now(h, r, tly_fail(-ENOMEM, "cannot add a transfer to the curl multi handle"));
        return;
    }
    h->active++;
}

/* ---- the end: the answer, or a retry after a backoff ---- */

/* xorshift64*: the jitter needs no quality beyond spreading retries apart. */
static uint64_t rnd(struct tly__s3_http *h)
{
    h->rng ^= h->rng >> 12;
    h->rng ^= h->rng << 25;
    h->rng ^= h->rng >> 27;
    return h->rng * 2685821657736338717ull;
}

static uint64_t backoff_ns(struct tly__s3_http *h, int attempt)
{
    uint64_t ms = (uint64_t)h->o.backoff_base_ms << (attempt < 20 ? attempt - 1 : 19);
    if (ms > (uint64_t)h->o.backoff_cap_ms)
        ms = (uint64_t)h->o.backoff_cap_ms;
    return ms ? rnd(h) % (ms * 1000000u) : 0;
}

static bool retryable_transport(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return true;
    default:
        return false;
    }
}

static bool retryable(const struct tly__s3_req *r)
{
    if (r->sink_err || r->overflow || r->late)
        return false;
    if (r->idle)
        return true;
    if (r->curl_code != CURLE_OK)
        return retryable_transport((CURLcode)r->curl_code);
    if (r->status == 429 || r->status == 500 || r->status == 502 || r->status == 503 || r->status == 504)
        return true;
    return strcmp(r->code, "SlowDown") == 0 || strcmp(r->code, "InternalError") == 0 ||
           strcmp(r->code, "RequestTimeout") == 0;
}

/* Error code and message of an S3 error reply (a 200 may carry one: CompleteMultipartUpload). */
static void parse_error(struct tly__s3_req *r, const char *xml, size_t n)
{
    struct tly__s3_xml x;
    if (tly__s3_xml_parse(xml, n, &x) == 0 && strcmp(x.root, "Error") == 0) {
        snprintf(r->code, sizeof r->code, "%s", x.code[0] ? x.code : "Error");
        snprintf(r->message, sizeof r->message, "%s", x.message);
    }
    tly__s3_xml_free(&x);
    tly_errclear();
}

/* What a server said, made fit to show: no credential, signature or control character, capped. */
static void sanitise(struct tly__s3_http *h, struct tly__s3_req *r)
{
    const char *secrets[] = {h->o.creds->access_key, h->o.creds->secret_key, h->o.creds->session_token};
    tly__s3_sanitize(r->code, sizeof r->code, 48, secrets, 3);
    tly__s3_sanitize(r->message, sizeof r->message, 200, secrets, 3);
    tly__s3_sanitize(r->curl_error, sizeof r->curl_error, 200, secrets, 3);
}

/*
 * The store's traffic (tly_store_traffic), once per attempt, so that a retried request counts every
 * attempt's bytes as they crossed the wire: object bodies only, as the local store counts its preads
 * and pwrites — a PUT's or an UploadPart's request body as sent, and a GET's response body as
 * received in an answer (2xx; a 200 carrying a whole object for a range counts whole). Headers, error
 * replies and S3's XML (listings, multipart initiate and complete, batch deletes) are not objects.
 */
static void count_traffic(struct tly__s3_http *h, CURL *e, const struct tly__s3_req *r)
{
    if (h->o.traffic == NULL)
        return;
    curl_off_t up = 0, down = 0;
    if (strcmp(r->method, "PUT") == 0)
        curl_easy_getinfo(e, CURLINFO_SIZE_UPLOAD_T, &up);
    else if (strcmp(r->op, "GET") == 0 && r->status >= 200 && r->status < 300)
        curl_easy_getinfo(e, CURLINFO_SIZE_DOWNLOAD_T, &down);
    tly__traffic_add(h->o.traffic, down > 0 ? (uint64_t)down : 0, up > 0 ? (uint64_t)up : 0);
}

void tly__s3_attempt_end(struct tly__s3_http *h, CURL *e, CURLcode rc)
{
    struct tly__s3_req *r = NULL;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&r);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->status);
    curl_off_t cl = -1;
    curl_easy_getinfo(e, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
    r->have_length = rc == CURLE_OK && cl >= 0;
    r->content_length = cl >= 0 ? (uint64_t)cl : 0;
    r->curl_code = rc;
    count_traffic(h, e, r);
    curl_multi_remove_handle(h->multi, e);
    curl_slist_free_all(r->headers);
    r->headers = NULL;
    r->easy = NULL;
    if (h->nidle < h->o.concurrency)
        h->idle[h->nidle++] = e;
    else
        curl_easy_cleanup(e);
    h->active--;

    if (rc == CURLE_WRITE_ERROR && (r->enough || r->whole))
        r->curl_code = rc = CURLE_OK; /* stopped once a 200 had delivered the range asked for, or at once */
    uint64_t now = tly__s3_now_ns();
    if (rc == CURLE_ABORTED_BY_CALLBACK && r->idle)
        snprintf(r->curl_error, sizeof r->curl_error, "no byte moved for %ld s (TALLY_S3_IDLE_TIMEOUT)",
                 h->o.idle_timeout_s);
    else if (rc == CURLE_OPERATION_TIMEDOUT && now + 1000000u >= r->deadline_ns) {
        r->late = true;
        r->timeout_s = h->o.total_timeout_s;
        snprintf(r->curl_error, sizeof r->curl_error,
                 "timed out: more than %ld s for the request, its retries included (TALLY_S3_TIMEOUT)",
                 h->o.total_timeout_s);
    }
    if (rc == CURLE_OK && (r->status < 200 || r->status >= 300) && r->errbody.n)
        parse_error(r, r->errbody.p, r->errbody.n);
    else if (rc == CURLE_OK && r->body_may_hold_error && r->buf_n)
        parse_error(r, r->buf, r->buf_n);
    if (rc != CURLE_OK && r->curl_error[0] == '\0')
        snprintf(r->curl_error, sizeof r->curl_error, "%s", curl_easy_strerror(rc));
    sanitise(h, r);
    uint64_t due = now + backoff_ns(h, r->attempts);
    if (retryable(r) && r->attempts < h->o.max_attempts && due >= r->deadline_ns) {
        r->late = true; /* no time left for the retry it would have had */
        r->timeout_s = h->o.total_timeout_s;
    } else if (retryable(r) && r->attempts < h->o.max_attempts) {
        r->due_ns = due;
        pthread_mutex_lock(&h->mu);
        r->next = h->backoff;
        h->backoff = r;
        pthread_mutex_unlock(&h->mu);
        return;
    }
    finish(h, r);
}
