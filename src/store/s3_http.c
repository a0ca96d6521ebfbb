/*
 * The libcurl multi loop (stage http): one thread per S3 store runs every transfer, at most
 * `concurrency` at once, over the multi handle's cache of kept-alive connections.
 *
 * Callers (the engine's workers, one blocking call each) queue a request and wait on its condition
 * variable; the loop signs each attempt (stage sign), streams the body from the caller's memory
 * (read callback), lands the response in the caller's memory or sink (write callback) and answers.
 * The callbacks' copies into and out of libcurl's buffers go through the copy ledger in stage http.
 *
 * Retries: a transport failure (refused, reset, timed out, cut short) or a 429/500/502/503/504 or
 * an S3 SlowDown/InternalError/RequestTimeout is tried again after a backoff drawn uniformly from
 * [0, min(cap, base * 2^n)) ("full jitter"), up to max_attempts. Each request is retried alone (a
 * multipart upload's part is a request of its own). A download cut short resumes where it stopped
 * (Range from the bytes already handed over, If-Match the first answer's ETag), so a sink never sees
 * a byte twice.
 */
#include <curl/curl.h>
#include <errno.h>
#include <jemalloc/jemalloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "tally/error.h"
#include "store/s3_internal.h"
#include "mem/plant.h"

#define ERRBODY_MAX ((size_t)64 * 1024) /* an error reply is a few hundred bytes; keep at most this */

struct tly__s3_http {
    struct tly__s3_http_opts o;
    CURLM *multi;
    pthread_t thread;
    pthread_mutex_t mu;
    struct tly__s3_req *head, *tail; /* queued: waiting for a transfer slot */
    struct tly__s3_req *backoff;     /* waiting out their backoff before a retry */
    bool stop;
    /* the loop thread's own */
    int active;
    CURL **idle;
    int nidle;
    uint64_t rng;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void)
{
    TLY_STAGE(TLY_HTTP)
    {
        global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    }
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

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

/* ---- callbacks (on the loop thread, stage http) ---- */

static size_t on_read(char *dst, size_t size, size_t nitems, void *ud)
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
static int on_seek(void *ud, curl_off_t offset, int origin)
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

static size_t on_header(char *p, size_t size, size_t nitems, void *ud)
{
    struct tly__s3_req *r = ud;
    size_t len = size * nitems;
    if (len > 5 && strncasecmp(p, "etag:", 5) == 0) {
        const char *v = p + 5, *end = p + len;
        while (v < end && (*v == ' ' || *v == '\t'))
            v++;
        while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
            end--;
        snprintf(r->etag, sizeof r->etag, "%.*s", (int)(end - v), v);
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
    curl_off_t cl = -1;
    curl_easy_getinfo(r->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
    size_t cap = r->buf_cap ? r->buf_cap * 2 : 4096;
    if (cl > 0 && (uint64_t)cl + 1 > cap && (uint64_t)cl < SIZE_MAX / 2)
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

static size_t on_write(char *p, size_t size, size_t nitems, void *ud)
{
    struct tly__s3_req *r = ud;
    size_t len = size * nitems, n = len;
    if (r->cur_status == 0) {
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->cur_status);
        /* A 200 to a ranged (or resumed) GET is the whole object: drop what comes before the range. */
        if (r->cur_status == 200 && (r->ranged || r->delivered > 0))
            r->skip = r->range_start + r->delivered;
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
            r->sink_err = -ENOMEM;
            snprintf(r->sink_msg, sizeof r->sink_msg, "out of memory for the reply");
            return 0;
        }
        tly_copy(r->buf + r->buf_n, p, n);
        r->buf_n += n;
        r->buf[r->buf_n] = '\0';
        break;
    }
    return len;
}

/* ---- one attempt ---- */

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
    else if (resuming)
        snprintf(range, sizeof range, "bytes=%llu-", (unsigned long long)r->delivered);
    struct tly__sigv4_header hs[6];
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
        curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(e, CURLOPT_READDATA, r);
        curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, on_seek);
        curl_easy_setopt(e, CURLOPT_SEEKDATA, r);
    }
}

static void finish(struct tly__s3_http *h, struct tly__s3_req *r)
{
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

static void begin_attempt(struct tly__s3_http *h, struct tly__s3_req *r)
{
    tly__plant_point(TLY_HTTP);
    r->attempts++;
    r->cur_status = 0;
    r->status = 0;
    r->curl_code = 0;
    r->code[0] = r->message[0] = r->curl_error[0] = '\0';
    r->errbody.n = 0;
    r->body_i = 0;
    r->body_off = 0;
    r->skip = 0;
    r->buf_n = 0;
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
    /* 16 KiB each way (curl's download default; its upload default is 64 KiB): measured as fast
     * against radosgw here, and 32 transfers hold 1 MiB instead of 4 */
    curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, 16384L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->curl_error);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    if (h->o.ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, h->o.ca_file);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
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
    if (r->sink_err || r->overflow)
        return false;
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

static void end_attempt(struct tly__s3_http *h, CURL *e, CURLcode rc)
{
    struct tly__s3_req *r = NULL;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&r);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->status);
    curl_off_t cl = -1;
    curl_easy_getinfo(e, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
    r->have_length = rc == CURLE_OK && cl >= 0;
    r->content_length = cl >= 0 ? (uint64_t)cl : 0;
    r->curl_code = rc;
    curl_multi_remove_handle(h->multi, e);
    curl_slist_free_all(r->headers);
    r->headers = NULL;
    r->easy = NULL;
    if (h->nidle < h->o.concurrency)
        h->idle[h->nidle++] = e;
    else
        curl_easy_cleanup(e);
    h->active--;

    if (rc == CURLE_OK && (r->status < 200 || r->status >= 300) && r->errbody.n)
        parse_error(r, r->errbody.p, r->errbody.n);
    else if (rc == CURLE_OK && r->body_may_hold_error && r->buf_n)
        parse_error(r, r->buf, r->buf_n);
    if (rc != CURLE_OK && r->curl_error[0] == '\0')
        snprintf(r->curl_error, sizeof r->curl_error, "%s", curl_easy_strerror(rc));
    if (retryable(r) && r->attempts < h->o.max_attempts) {
        r->due_ns = now_ns() + backoff_ns(h, r->attempts);
        pthread_mutex_lock(&h->mu);
        r->next = h->backoff;
        h->backoff = r;
        pthread_mutex_unlock(&h->mu);
        return;
    }
    finish(h, r);
}

/* ---- the loop ---- */

/* Under h->mu: move retries that are due to the queue's head; take what may start now. */
static struct tly__s3_req *take_startable(struct tly__s3_http *h, uint64_t now)
{
    for (struct tly__s3_req **pp = &h->backoff; *pp;) {
        struct tly__s3_req *r = *pp;
        if (r->due_ns > now) {
            pp = &r->next;
            continue;
        }
        *pp = r->next;
        r->next = h->head;
        h->head = r;
        if (h->tail == NULL)
            h->tail = r;
    }
    struct tly__s3_req *start = NULL, **end = &start;
    for (int slots = h->o.concurrency - h->active; slots > 0 && h->head; slots--) {
        struct tly__s3_req *r = h->head;
        h->head = r->next;
        if (h->head == NULL)
            h->tail = NULL;
        r->next = NULL;
        *end = r;
        end = &r->next;
    }
    return start;
}

/* Under h->mu: how long the loop may sleep: until a retry is due, or not at all if one can start. */
static long sleep_ms(struct tly__s3_http *h, uint64_t now)
{
    if (h->head && h->active < h->o.concurrency)
        return 0;
    long ms = 1000;
    for (struct tly__s3_req *r = h->backoff; r; r = r->next) {
        long due = r->due_ns <= now ? 0 : (long)((r->due_ns - now) / 1000000u) + 1;
        if (due < ms)
            ms = due;
    }
    return ms;
}

static void *loop_main(void *arg)
{
    struct tly__s3_http *h = arg;
    tly_stage_enter(TLY_HTTP);
    /* No thread cache on this long-lived thread: blocks cached there count as allocated in
     * jemalloc's stats.allocated, which the tracker's coverage compares against (the workers'
     * caches are handed back when they exit; this thread's would stay). */
    bool off = false;
    mallctl("thread.tcache.enabled", NULL, NULL, &off, sizeof off);
    tly__sigv4_thread_warm_up();
    for (;;) {
        pthread_mutex_lock(&h->mu);
        struct tly__s3_req *start = take_startable(h, now_ns());
        bool quit = h->stop && h->active == 0 && start == NULL && h->head == NULL && h->backoff == NULL;
        pthread_mutex_unlock(&h->mu);
        if (quit)
            break;
        while (start) {
            struct tly__s3_req *r = start;
            start = r->next;
            r->next = NULL;
            begin_attempt(h, r);
        }
        int running;
        curl_multi_perform(h->multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(h->multi, &left)) != NULL)
            if (m->msg == CURLMSG_DONE)
                end_attempt(h, m->easy_handle, m->data.result);
        pthread_mutex_lock(&h->mu);
        long timeout_ms = sleep_ms(h, now_ns());
        pthread_mutex_unlock(&h->mu);
        curl_multi_poll(h->multi, NULL, 0, (int)timeout_ms, NULL);
    }
    return NULL;
}

int tly__s3_http_start(const struct tly__s3_http_opts *o, struct tly__s3_http **out)
{
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK)
        return tly_fail(TLY_EINTERNAL, "libcurl failed to initialise: %s", curl_easy_strerror(global_rc));
    int err = 0;
    TLY_STAGE(TLY_HTTP)
    {
        struct tly__s3_http *h = calloc(1, sizeof *h);
        CURL **idle = calloc((size_t)o->concurrency, sizeof *idle);
        CURLM *multi = h && idle ? curl_multi_init() : NULL;
        if (multi == NULL) {
            free(h);
            free(idle);
            err = tly_fail(-ENOMEM, "out of memory for the S3 transfer loop");
            break;
        }
        h->o = *o;
        h->idle = idle;
        h->multi = multi;
        h->rng = now_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)h;
        h->rng |= 1;
        /* Keep-alive: the multi handle's connection cache holds a connection per slot. */
        curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)o->concurrency);
        curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)o->concurrency);
        pthread_mutex_init(&h->mu, NULL);
        int rc = pthread_create(&h->thread, NULL, loop_main, h);
        if (rc != 0) {
            curl_multi_cleanup(multi);
            pthread_mutex_destroy(&h->mu);
            free(idle);
            free(h);
            err = tly_fail(-rc, "cannot start the S3 transfer thread: %s", strerror(rc));
            break;
        }
        *out = h;
    }
    return err;
}

void tly__s3_http_stop(struct tly__s3_http *h)
{
    if (h == NULL)
        return;
    pthread_mutex_lock(&h->mu);
    h->stop = true;
    pthread_mutex_unlock(&h->mu);
    curl_multi_wakeup(h->multi);
    pthread_join(h->thread, NULL);
    TLY_STAGE(TLY_HTTP)
    {
        for (int i = 0; i < h->nidle; i++)
            curl_easy_cleanup(h->idle[i]);
        curl_multi_cleanup(h->multi);
        pthread_mutex_destroy(&h->mu);
        free(h->idle);
        free(h);
    }
}

void tly__s3_http_submit(struct tly__s3_http *h, struct tly__s3_req *r)
{
    r->status = 0;
    r->curl_code = 0;
    r->curl_error[0] = r->code[0] = r->message[0] = r->etag[0] = r->sink_msg[0] = '\0';
    r->content_length = 0;
    r->have_length = false;
    r->buf_n = 0;
    r->delivered = 0;
    r->sink_err = 0;
    r->overflow = false;
    r->attempts = 0;
    r->caller_stage = tly_stage_current();
    r->done = false;
    r->next = NULL;
    r->easy = NULL;
    r->headers = NULL;
    r->resp_i = 0;
    r->resp_off = 0;
    r->errbody = (struct tly__s3_str){0};
    pthread_cond_init(&r->cv, NULL);
    pthread_mutex_lock(&h->mu);
    if (h->tail)
        h->tail->next = r;
    else
        h->head = r;
    h->tail = r;
    pthread_mutex_unlock(&h->mu);
    curl_multi_wakeup(h->multi);
}

void tly__s3_http_wait(struct tly__s3_http *h, struct tly__s3_req *r)
{
    pthread_mutex_lock(&h->mu);
    while (!r->done)
        pthread_cond_wait(&r->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
    pthread_cond_destroy(&r->cv);
}

bool tly__s3_req_ok(const struct tly__s3_req *r)
{
    return r->curl_code == CURLE_OK && r->status >= 200 && r->status < 300 && r->sink_err == 0 && !r->overflow &&
           r->code[0] == '\0';
}

void tly__s3_req_clear(struct tly__s3_req *r)
{
    free(r->url);
    free(r->host);
    free(r->path);
    free(r->query);
    free(r->what);
    free(r->buf);
    r->url = r->host = r->path = r->query = r->what = r->buf = NULL;
    r->buf_n = r->buf_cap = 0;
}
