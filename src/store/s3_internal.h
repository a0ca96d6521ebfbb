/*
 * Internal to the S3 store: the map of its files, and every header they share (the tests include
 * this one).
 *
 *   s3.c                 the store and writer operations, configuration, addressing, errors
 *   s3_http.c, .h        the one libcurl multi loop (stage http), its thread, retries
 *   s3_sign.c, .h        SigV4 (stage sign): canonical request, string to sign, signature, key cache
 *   s3_xml.c, .h         S3's XML replies, parsed with expat
 *   s3_str.c, .h         the growable string the others compose text with
 */
#ifndef TLY__STORE_S3_INTERNAL_H
#define TLY__STORE_S3_INTERNAL_H

#include "store/s3_str.h"
#include "store/s3_sign.h"
#include "store/s3_xml.h"
#include "store/s3_http.h"

/* ---- s3.c ---- */

/** The URL and Host header a request for object @p key of S3 store @p st goes to (malloc'd):
 * how the addressing style and the endpoint resolve (tests). Returns 0 or -ENOMEM. */
int tly__s3_object_url(struct tly_store *st, const char *key, char **url, char **host);

#endif
