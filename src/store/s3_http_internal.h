/*
 * Internal to the libcurl multi loop: what its three files share.
 *
 *   s3_http.c          the loop's thread, its queue and its backoff list; the callers' submit and wait
 *   s3_http_attempt.c  one attempt: signed headers, the transfer's setup, its end and the retry policy
 *   s3_http_body.c     libcurl's callbacks: the request body out, the response's headers and body in
 */
#ifndef TLY__STORE_S3_HTTP_INTERNAL_H
#define TLY__STORE_S3_HTTP_INTERNAL_H

#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "store/s3_http.h"

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

static inline uint64_t tly__s3_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- s3_http_attempt.c (on the loop thread) ---- */

/** Start an attempt of @p r: sign it, set up a transfer and add it to the multi handle (or answer
 * @p r with the error). */
void tly__s3_attempt_begin(struct tly__s3_http *h, struct tly__s3_req *r);

/** A transfer ended with @p rc: answer its request, or queue it for a retry after a backoff. */
void tly__s3_attempt_end(struct tly__s3_http *h, CURL *e, CURLcode rc);

/* ---- s3_http_body.c: libcurl's callbacks (on the loop thread, stage http); userdata is the request ---- */

/** CURLOPT_READFUNCTION: the request body, from the caller's pieces. */
size_t tly__s3_on_read(char *dst, size_t size, size_t nitems, void *ud);

/** CURLOPT_SEEKFUNCTION: rewind the request body. */
int tly__s3_on_seek(void *ud, curl_off_t offset, int origin);

/** CURLOPT_HEADERFUNCTION: the ETag. */
size_t tly__s3_on_header(char *p, size_t size, size_t nitems, void *ud);

/** CURLOPT_WRITEFUNCTION: the response body, into the caller's pieces, sink or buffer. */
size_t tly__s3_on_write(char *p, size_t size, size_t nitems, void *ud);

#endif
