/*
 * Internal to the S3 store: the libcurl multi loop's interface (s3_http.c runs it, s3_http_attempt.c
 * sends each attempt, s3_http_body.c moves the bodies): one S3 request, queued by a caller and
 * answered in place.
 */
#ifndef TLY__STORE_S3_HTTP_H
#define TLY__STORE_S3_HTTP_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "tally/mem.h"
#include "tally/store.h"
#include "store/s3_sign.h"
#include "store/s3_str.h"

struct tly__s3_http;
struct tly__store_traffic;

/** How the loop signs and sends: fixed for the life of a store. */
struct tly__s3_http_opts {
    int concurrency;      /* transfers in flight at most */
    int max_attempts;     /* per request, first try included */
    long backoff_base_ms; /* retry n waits a random time in [0, min(cap, base * 2^n)) (full jitter) */
    long backoff_cap_ms;
    long connect_timeout_s; /* CURLOPT_CONNECTTIMEOUT */
    long low_speed_time_s;  /* abort (and retry) a transfer slower than low_speed_limit for this long */
    long low_speed_limit;   /* bytes per second */
    long idle_timeout_s;    /* abort (and retry) an attempt that moves no byte for this long */
    long total_timeout_s;   /* a request's time, its retries and backoffs included */
    uint64_t body_max;      /* RESP_BUF bodies (metadata, XML replies) at most this long */
    const char *ca_file;    /* NULL: the system's CA store */
    const struct tly__s3_creds *creds;
    struct tly__sigv4_cache *sign_cache;
    const char *region;
    struct tly__store_traffic *traffic; /* the store's: each attempt's bodies added at its end (NULL: none) */
};

enum tly__s3_resp {
    TLY__S3_RESP_NONE, /* no body wanted (HEAD, DELETE, PUT) */
    TLY__S3_RESP_IOV,  /* exactly resp_len bytes into resp_iov (a range GET into the caller's memory) */
    TLY__S3_RESP_SINK, /* each piece of the body handed to a sink as it arrives */
    TLY__S3_RESP_BUF,  /* the body into a malloc'd, NUL-terminated buffer (metadata, XML) */
};

/** One S3 request: filled by the caller, run by the loop (retried as a whole), answered in place. */
struct tly__s3_req {
    /* the request */
    const char *method;       /* GET, PUT, HEAD, DELETE, POST */
    const char *op;           /* what the messages call it: "PUT", "GET", "ListObjectsV2", "UploadPart" ... */
    char *url;                /* the full URL, path encoded */
    char *host;               /* the Host header's value */
    char *path;               /* the decoded path, for signing */
    char *query;              /* the query as sent ("" for none) */
    char *what;               /* s3://bucket/key: what messages name */
    const struct iovec *body; /* the request body, read in place (curl read callback), or NULL */
    int nbody;
    uint64_t body_len;
    char payload_hash[65]; /* "UNSIGNED-PAYLOAD" or the body's hex SHA-256 */
    bool ranged;           /* send Range: bytes=range_start-(range_start+range_len-1) */
    uint64_t range_start, range_len;
    bool suffix;               /* send Range: bytes=-range_len (the object's last bytes; not with ranged) */
    bool body_may_hold_error;  /* CompleteMultipartUpload: a 200 may carry an <Error> */
    const char *if_match;      /* conditional: If-Match (an ETag) sent and signed; NULL: none */
    const char *if_none_match; /* conditional: If-None-Match ("*": only when the key is absent); NULL: none */
    const char *meta_write;    /* x-amz-meta-tally-write: the writer's id on a PUT; NULL: none */
    /* the response */
    enum tly__s3_resp resp;
    const struct iovec *resp_iov; /* RESP_IOV: filled completely, in order */
    int nresp_iov;
    uint64_t resp_len;
    tly_store_sink_fn sink; /* RESP_SINK, called on the loop thread in the caller's stage */
    void *sink_arg;
    /* the answer */
    long status;             /* the last HTTP status (0: no response) */
    int curl_code;           /* the last CURLcode */
    char curl_error[256];    /* curl's message for it */
    char code[64];           /* S3 error code, from the error body */
    char message[256];       /* S3 error message */
    char etag[128];          /* the ETag response header */
    char meta_write_got[72]; /* the x-amz-meta-tally-write response header (a tally writer's id), or "" */
    char last_modified[40];  /* the Last-Modified response header, or "" */
    uint64_t content_length; /* Content-Length of a HEAD or a GET */
    bool have_length;
    char *buf; /* RESP_BUF: the body (allocated in the caller's stage), NUL-terminated */
    size_t buf_n;
    uint64_t delivered; /* body bytes handed over (IOV, SINK), across retries */
    int sink_err;       /* the sink's error, its message in sink_msg */
    char sink_msg[512];
    bool overflow;  /* RESP_IOV: the body was longer than asked */
    bool enough;    /* RESP_IOV: a 200 for a range delivered what was asked; the rest is not read */
    bool whole;     /* suffix: a 200 (the server ignored the Range), stopped at its first byte */
    uint64_t total; /* the object's size, from a 206's Content-Range or a 200's Content-Length (ranges, suffixes) */
    bool have_total;
    bool idle; /* this attempt was abandoned: no byte moved for idle_timeout_s */
    bool late; /* the request's time (total_timeout_s) ran out */
    int attempts;
    /* the loop's own */
    enum tly_stage caller_stage;
    bool done;
    pthread_cond_t cv;
    struct tly__s3_req *next;
    uint64_t due_ns;
    uint64_t deadline_ns; /* when the request's time runs out */
    uint64_t moved_ns;    /* when this attempt last moved a byte */
    uint64_t moved;       /* bytes it had moved then, both ways */
    long timeout_s;       /* the limit that made it late, for the message */
    long idle_s;          /* the idle limit of the attempt running */
    uint64_t body_max;    /* RESP_BUF: the limit, for the callbacks */
    void *easy;
    struct curl_slist *headers;
    int body_i; /* the upload's position in body */
    size_t body_off;
    int resp_i; /* RESP_IOV: the position of byte `delivered` in resp_iov */
    size_t resp_off;
    uint64_t skip;   /* bytes of a 200 to drop (the server ignored a resuming Range) */
    long cur_status; /* this attempt's status, known at its first body byte */
    struct tly__s3_str errbody;
    size_t buf_cap;
};

/** Start the loop's thread. Returns 0, or an error with its message. */
int tly__s3_http_start(const struct tly__s3_http_opts *o, struct tly__s3_http **out);

/** Stop the loop (no request may be outstanding) and free it. NULL is fine. */
void tly__s3_http_stop(struct tly__s3_http *h);

/** Queue @p r (its answer fields are reset); returns at once. Wait with tly__s3_http_wait(). */
void tly__s3_http_submit(struct tly__s3_http *h, struct tly__s3_req *r);

/** Wait until @p r is answered (after its retries). */
void tly__s3_http_wait(struct tly__s3_http *h, struct tly__s3_req *r);

/** Whether an answered request succeeded at the HTTP level (2xx, no transport or callback error). */
bool tly__s3_req_ok(const struct tly__s3_req *r);

/** Free what a request's builders and answer allocated (url, host, path, query, what, buf). */
void tly__s3_req_clear(struct tly__s3_req *r);

#endif
