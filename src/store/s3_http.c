/*
 * The libcurl multi loop (stage http): one thread per S3 store runs every transfer, at most
 * `concurrency` at once, over the multi handle's cache of kept-alive connections.
 *
 * Callers (the engine's workers, one blocking call each) queue a request and wait on its condition
 * variable; the loop starts each attempt (s3_http_attempt.c: signed in stage sign), lets libcurl
 * move the bodies through its callbacks (s3_http_body.c), and answers the request or puts it on the
 * backoff list for a retry. This file is the thread, the queue, the backoff list and the callers'
 * side.
 */
#include <curl/curl.h>
#include <errno.h>
#include <jemalloc/jemalloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tally/error.h"
#include "tally/timing.h"
#include "store/s3_http_internal.h"
#include "store/s3_sign.h"

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void)
{
    TLY_STAGE(TLY_HTTP)
    {
        global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    }
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
        struct tly__s3_req *start = take_startable(h, tly__s3_now_ns());
        bool quit = h->stop && h->active == 0 && start == NULL && h->head == NULL && h->backoff == NULL;
        pthread_mutex_unlock(&h->mu);
        if (quit)
            break;
        while (start) {
            struct tly__s3_req *r = start;
            start = r->next;
            r->next = NULL;
            tly__s3_attempt_begin(h, r);
        }
        int running;
        curl_multi_perform(h->multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(h->multi, &left)) != NULL)
            if (m->msg == CURLMSG_DONE)
                tly__s3_attempt_end(h, m->easy_handle, m->data.result);
        pthread_mutex_lock(&h->mu);
        long timeout_ms = sleep_ms(h, tly__s3_now_ns());
        pthread_mutex_unlock(&h->mu);
        uint64_t idle = tly_wait_begin();
        curl_multi_poll(h->multi, NULL, 0, (int)timeout_ms, NULL);
        tly_wait_end(idle, TLY_WAIT_POLL);
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
        h->rng = tly__s3_now_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)h;
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
    r->meta_write_got[0] = r->last_modified[0] = '\0';
    r->content_length = 0;
    r->have_length = false;
    r->buf_n = 0;
    r->delivered = 0;
    r->sink_err = 0;
    r->overflow = r->enough = r->idle = r->late = r->whole = r->have_total = false;
    r->total = 0;
    r->attempts = 0;
    r->deadline_ns = tly__s3_now_ns() + (uint64_t)h->o.total_timeout_s * 1000000000u;
    r->timeout_s = 0;
    r->body_max = h->o.body_max;
    r->caller_stage = tly_stage_current();
    r->done = false;
    r->next = NULL;
    r->easy = NULL;
    r->headers = NULL;
    r->resp_i = 0;
    r->resp_off = 0;
    r->errbody = (struct tly__s3_str){0};
    tly_io_request_begin(r, r->method, r->what, r->body_len);
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
