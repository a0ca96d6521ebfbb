/*
 * Internal to the S3 store: the map of its files, and every header they share (the tests include
 * this one; each file includes only the headers it uses).
 *
 *   s3.c, s3_store.h     the store: open, close, its operations' table; its state
 *   s3_config.c          configuration: the URL, the AWS environment, credentials, the endpoint
 *   s3_request.c         requests: addressing, bodies, running one, errors
 *   s3_object.c          size, reads, put, delete
 *   s3_writer.c          the writer: one PUT or a multipart upload
 *   s3_list.c            listings: clear and gc
 *   s3_stage.c           writing a whole array: the marker, metadata deleted first and written last
 *   s3_http.c, .h        the one libcurl multi loop (stage http), its thread, the callers' side
 *   s3_http_attempt.c    one attempt: signed headers, the transfer's setup, retries
 *   s3_http_body.c       libcurl's body and header callbacks
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
#include "store/s3_store.h"

#endif
