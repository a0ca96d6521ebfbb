/*
 * Internal to the S3 store: the store's state, and what the store's files (s3.c, s3_config.c,
 * s3_request.c, s3_object.c, s3_writer.c, s3_list.c; the map is in s3_internal.h) give each other.
 */
#ifndef TLY__STORE_S3_STORE_H
#define TLY__STORE_S3_STORE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "store/internal.h"
#include "store/s3_http.h"
#include "store/s3_sign.h"
#include "store/s3_xml.h"

struct tly__s3 {
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
    /* the overwrite contract (s3_stage.c) */
    char write_id[33];        /* this store's write: its id in the marker and on the metadata; "" until staged */
    char opened_key[12];      /* the metadata document a read opened ("zarr.json", ".zarray"), or "" */
    char opened_version[256]; /* what identifies that document's version: ETag, writer id, Last-Modified */
};

static inline struct tly__s3 *tly__s3_of(struct tly_store *st)
{
    return (struct tly__s3 *)st;
}

/* ---- s3_config.c ---- */

/** Configure @p st from @p url (s3://BUCKET[/PREFIX]), the environment and @p opts; @p ho is how
 * its loop is to run. Returns 0 or an error naming the URL, the variable or the option. */
int tly__s3_configure(struct tly__s3 *st, const char *url, const struct tly_store_opts *opts,
                      struct tly__s3_http_opts *ho);

/* ---- s3_request.c ---- */

/** The object's full key: PREFIX/KEY (malloc'd; NULL when out of memory). */
char *tly__s3_full_key(const struct tly__s3 *st, const char *key);

/** Fill @p r for @p method on object @p key (a full key; NULL: the bucket itself) with the query
 * @p query (already encoded). Returns 0 or -ENOMEM. */
int tly__s3_req_init(struct tly__s3 *st, struct tly__s3_req *r, const char *method, const char *op, const char *key,
                     const char *query);

/** As tly__s3_req_init() on object @p key relative to the prefix. */
int tly__s3_req_key(struct tly__s3 *st, struct tly__s3_req *r, const char *method, const char *op, const char *key,
                    const char *query);

/** The request's body: @p niov pieces streamed in place; hashed first when payloads are signed. */
int tly__s3_req_body(struct tly__s3 *st, struct tly__s3_req *r, const struct iovec *iov, int niov);

/** The error of an answered request that failed, as a code and a message (never a credential). */
int tly__s3_req_fail(const struct tly__s3_req *r);

/** Run @p r and wait for its answer: 0 or its error. */
int tly__s3_run(struct tly__s3 *st, struct tly__s3_req *r);

/** "[partNumber=N&]uploadId=ID" (@p part 0: without the part), encoded for a query; malloc'd, NULL
 * when out of memory. */
char *tly__s3_upload_query(const char *upload_id, int part);

/** The URL and Host header a request for object @p key of S3 store @p st goes to (malloc'd):
 * how the addressing style and the endpoint resolve (tests). Returns 0 or -ENOMEM. */
int tly__s3_object_url(struct tly_store *st, const char *key, char **url, char **host);

/* ---- s3_object.c: the store's operations on one object ---- */

int tly__s3_size(struct tly_store *base, const char *key, uint64_t *out);
int tly__s3_readv(struct tly_store *base, const char *key, uint64_t offset, const struct iovec *iov, int niov);
int tly__s3_read_head(struct tly_store *base, const char *key, void *buf, size_t n, uint64_t *size);
int tly__s3_read_tail(struct tly_store *base, const char *key, void *buf, size_t n, uint64_t *size);
int tly__s3_read_stream(struct tly_store *base, const char *key, void *buf, size_t cap, tly_store_sink_fn sink,
                        void *arg);
int tly__s3_get(struct tly_store *base, const char *key, char **data, size_t *n);
int tly__s3_put(struct tly_store *base, const char *key, const void *data, size_t n);

/** GET @p key whole, as tly__s3_get(), its ETag into @p etag (NULL: not wanted). */
int tly__s3_get_tagged(struct tly__s3 *st, const char *key, char **data, size_t *n, char etag[128]);

/** PUT @p n bytes at @p key, on a condition when @p if_match or @p if_none_match is set (the other
 * NULL): 0, 1 when the condition failed (HTTP 412), or an error. No commit check (tly__s3_put's). */
int tly__s3_put_if(struct tly__s3 *st, const char *key, const void *data, size_t n, const char *if_match,
                   const char *if_none_match);
int tly__s3_del(struct tly_store *base, const char *key);

/* ---- s3_writer.c ---- */

int tly__s3_writer(struct tly_store *base, const char *key, struct tly_writer **out);

/* ---- s3_list.c ---- */

int tly__s3_clear(struct tly_store *base);
int tly__s3_gc(struct tly_store *base, uint64_t *removed);

/** One page of ListObjectsV2 (@p uploads false; @p token the continuation) or ListMultipartUploads
 * (key and upload-id markers) under the prefix, parsed into @p x. */
int tly__s3_list_page(struct tly__s3 *st, bool uploads, const char *token, const char *upload_marker,
                      struct tly__s3_xml *x);

/** Delete every object under the prefix but those named in @p keep (NULL-terminated, relative to the
 * prefix; NULL: none kept); counts them into @p n. */
int tly__s3_delete_all(struct tly__s3 *st, const char *const *keep, uint64_t *n);

/* ---- s3_stage.c: the overwrite contract ---- */

/** The object that marks an array being written (or one whose write was interrupted). */
#define TLY__S3_MARKER ".tally-incomplete"

int tly__s3_probe(struct tly_store *base, enum tly_store_state *out);
int tly__s3_unchanged(struct tly_store *base);

/** The metadata document @p key was read by request @p r (a GET answered 200): remembered, so that
 * tly__s3_unchanged() can tell whether the array was replaced during a read. */
void tly__s3_opened(struct tly__s3 *st, const char *key, const struct tly__s3_req *r);

/** Before a commit writes @p key: 0 when @p key is not written at commit, or this write still holds the
 * array (the marker is its own); otherwise an error, and nothing is published. */
int tly__s3_commit_check(struct tly__s3 *st, const char *key);
int tly__s3_stage(struct tly_store *base, bool replace);
int tly__s3_publish(struct tly_store *base);
void tly__s3_discard(struct tly_store *base);

/** gc's part: an incomplete array (the marker without metadata) deleted, the marker last; a marker
 * beside metadata (a write interrupted after publishing its metadata) deleted. Counts into @p removed. */
int tly__s3_gc_incomplete(struct tly__s3 *st, uint64_t *removed);

/** 0 unless the prefix's marker names a write that runs on this host (its pid alive, started when
 * the marker says): then TLY_EEXISTS naming it, and gc leaves the prefix alone. */
int tly__s3_gc_allowed(struct tly__s3 *st);

#endif
