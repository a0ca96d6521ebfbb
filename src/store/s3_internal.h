/*
 * Internal to the S3 store: what its files share.
 *
 *   s3.c       the store and writer operations, configuration, addressing, errors
 *   s3_sign.c  SigV4 (stage sign): canonical request, string to sign, signature, signing key cache
 *   s3_http.c  the one libcurl multi loop (stage http), its thread, retries
 *   s3_xml.c   S3's XML replies, parsed with expat
 */
#ifndef TLY__STORE_S3_INTERNAL_H
#define TLY__STORE_S3_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "tally/mem.h"
#include "tally/store.h"

/* ---- a growable string (request text, XML bodies); `oom` sticks after a failed allocation ---- */

struct tly__s3_str {
    char *p;
    size_t n, cap;
    bool oom;
};

/** Append @p n bytes of @p s (not payload: text the store composes). */
void tly__s3_str_add(struct tly__s3_str *b, const char *s, size_t n);

/** Append a formatted string. */
void tly__s3_str_addf(struct tly__s3_str *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** Free the string's buffer and empty it. */
void tly__s3_str_free(struct tly__s3_str *b);

/* ---- s3_sign.c: SigV4 ---- */

/** Credentials from the environment; the secret and token are wiped when freed. */
struct tly__s3_creds {
    char *access_key;
    char *secret_key;
    char *session_token; /* NULL without one */
};

/** The signing key of one (date, region, service): derived once a day, not per request. */
struct tly__sigv4_cache {
    pthread_mutex_t mu;
    char date[9]; /* "YYYYMMDD"; "" when empty */
    char region[64];
    char service[32];
    unsigned char key[32];
    uint64_t derivations; /* how many times a key was derived (tests check the cache works) */
};

struct tly__sigv4_header {
    const char *name;
    const char *value;
};

/** A request to sign, as it will be sent. */
struct tly__sigv4_req {
    const char *method;
    /** The decoded path ("/bucket/c/0/1", "/example space/"): URI-encoded here, once, by the S3
     * rules (every byte but unreserved ones and '/'); the wire path must use tly__s3_uri_encode()
     * on the same string. */
    const char *path;
    /** The query string as sent, without '?' (NULL or "" for none): each name and value is
     * percent-decoded, encoded again strictly, and the pairs sorted. */
    const char *query;
    /** Every header to sign (host and x-amz-date among them); names in any case, values as sent
     * (trimmed, inner runs of white space folded, duplicates joined with ',' in their order). */
    const struct tly__sigv4_header *headers;
    int nheaders;
    const char *payload_hash; /* hex SHA-256 of the body, or "UNSIGNED-PAYLOAD" */
    const char *amz_date;     /* "20150830T123600Z": the x-amz-date header's value */
    const char *region;
    const char *service;
    /** Generic AWS services: remove "." and ".." segments and empty ones first. S3: false (a key
     * is used exactly as named). */
    bool normalize_path;
};

/** What signing produces. authorization is always set; the texts only when asked (tests). */
struct tly__sigv4_out {
    char *authorization;     /* "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=..." */
    char signature[65];      /* hex */
    char *canonical_request; /* with keep_text */
    char *string_to_sign;    /* with keep_text */
};

/**
 * Sign @p r with @p creds (the signing key from @p cache, derived when its date, region or
 * service changed). Returns 0 or -ENOMEM / TLY_EINTERNAL; free @p out with tly__sigv4_out_free().
 * Pure: no clock, no environment, no I/O.
 */
int tly__sigv4_sign(const struct tly__sigv4_req *r, const struct tly__s3_creds *creds, struct tly__sigv4_cache *cache,
                    bool keep_text, struct tly__sigv4_out *out);

/** Free what tly__sigv4_sign() allocated in @p out (the authorization is wiped first). */
void tly__sigv4_out_free(struct tly__sigv4_out *out);

/** OpenSSL allocates state per thread at its first digest and frees it when the thread ends: a
 * thread that signs calls this first, in the stage it ends in, so the state is charged there and
 * not to the first signature's stage. */
void tly__sigv4_thread_warm_up(void);

void tly__sigv4_cache_init(struct tly__sigv4_cache *c);
void tly__sigv4_cache_destroy(struct tly__sigv4_cache *c);

/** Hex SHA-256 of the bytes of @p niov pieces into @p hex. Returns 0 or TLY_EINTERNAL. */
int tly__sha256_hex(const struct iovec *iov, int niov, char hex[65]);

/**
 * URI-encode @p src (@p n bytes) into @p b by the SigV4 rules: unreserved bytes (A-Z a-z 0-9 - _ . ~)
 * stay, '/' stays when @p keep_slash, every other byte becomes %XX (upper-case hex).
 */
void tly__s3_uri_encode(struct tly__s3_str *b, const char *src, size_t n, bool keep_slash);

/** The credentials' memory, wiped and freed. */
void tly__s3_creds_free(struct tly__s3_creds *c);

/* ---- s3_xml.c: S3's XML replies ---- */

/** What a reply holds, whichever it is: Error, ListBucketResult, ListMultipartUploadsResult,
 * InitiateMultipartUploadResult, CompleteMultipartUploadResult. */
struct tly__s3_xml {
    char root[48];               /* the root element's name */
    char code[64];               /* Error/Code */
    char message[256];           /* Error/Message, control characters replaced by spaces */
    char *upload_id;             /* InitiateMultipartUploadResult/UploadId */
    bool truncated;              /* IsTruncated */
    char *next_token;            /* NextContinuationToken */
    char *next_key_marker;       /* NextKeyMarker */
    char *next_upload_id_marker; /* NextUploadIdMarker */
    char **keys;                 /* Contents/Key or Upload/Key, in order */
    char **upload_ids;           /* Upload/UploadId, beside keys (ListMultipartUploads) */
    size_t nkeys;
};

/** Parse @p n bytes of XML into @p out. Returns 0, TLY_EFORMAT (malformed; message says where) or
 * -ENOMEM. Free @p out with tly__s3_xml_free() in either case. */
int tly__s3_xml_parse(const char *xml, size_t n, struct tly__s3_xml *out);

void tly__s3_xml_free(struct tly__s3_xml *x);

/* ---- s3.c ---- */

/** The URL and Host header a request for object @p key of S3 store @p st goes to (malloc'd):
 * how the addressing style and the endpoint resolve (tests). Returns 0 or -ENOMEM. */
int tly__s3_object_url(struct tly_store *st, const char *key, char **url, char **host);

/* ---- s3_http.c: the libcurl multi loop ---- */

struct tly__s3_http;

/** How the loop signs and sends: fixed for the life of a store. */
struct tly__s3_http_opts {
    int concurrency;      /* transfers in flight at most */
    int max_attempts;     /* per request, first try included */
    long backoff_base_ms; /* retry n waits a random time in [0, min(cap, base * 2^n)) (full jitter) */
    long backoff_cap_ms;
    long connect_timeout_s; /* CURLOPT_CONNECTTIMEOUT */
    long low_speed_time_s;  /* abort (and retry) a transfer slower than low_speed_limit for this long */
    long low_speed_limit;   /* bytes per second */
    const char *ca_file;    /* NULL: the system's CA store */
    const struct tly__s3_creds *creds;
    struct tly__sigv4_cache *sign_cache;
    const char *region;
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
    bool body_may_hold_error; /* CompleteMultipartUpload: a 200 may carry an <Error> */
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
    uint64_t content_length; /* Content-Length of a HEAD or a GET */
    bool have_length;
    char *buf; /* RESP_BUF: the body (allocated in the caller's stage), NUL-terminated */
    size_t buf_n;
    uint64_t delivered; /* body bytes handed over (IOV, SINK), across retries */
    int sink_err;       /* the sink's error, its message in sink_msg */
    char sink_msg[512];
    bool overflow; /* RESP_IOV: the body was longer than asked */
    int attempts;
    /* the loop's own */
    enum tly_stage caller_stage;
    bool done;
    pthread_cond_t cv;
    struct tly__s3_req *next;
    uint64_t due_ns;
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
