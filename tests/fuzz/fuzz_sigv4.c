/*
 * libFuzzer: the SigV4 canonical request and signature (tly__sigv4_sign) of a request written as the
 * AWS test suite writes one ("METHOD PATH?QUERY HTTP/1.1" then "name:value" lines), and the URI
 * encoding of its path. Seeds: tests/fuzz/corpus/sigv4 (the suite's requests, tests/data/sigv4).
 */
#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "store/s3_sign.h"

#define MAX_HEADERS 16

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t n)
{
    char *text = malloc(n + 1);
    memcpy(text, data, n);
    text[n] = '\0';
    struct tly__sigv4_header h[MAX_HEADERS];
    int nh = 0;
    char *line = text, *next = strchr(line, '\n');
    if (next)
        *next++ = '\0';
    char *method = line, *path = strchr(line, ' '), *query = NULL;
    if (path) {
        *path++ = '\0';
        char *sp = strrchr(path, ' ');
        if (sp)
            *sp = '\0';
        if ((query = strchr(path, '?')) != NULL)
            *query++ = '\0';
    }
    for (line = next; line && nh < MAX_HEADERS; line = next) {
        if ((next = strchr(line, '\n')) != NULL)
            *next++ = '\0';
        char *colon = strchr(line, ':');
        if (colon == NULL)
            break;
        *colon = '\0';
        h[nh++] = (struct tly__sigv4_header){line, colon + 1};
    }
    struct tly__s3_creds creds = {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", NULL};
    /* one cache for the whole run, as a store has: the signing key is derived once, not per input */
    static struct tly__sigv4_cache cache;
    static bool cache_ready;
    if (!cache_ready) {
        tly__sigv4_cache_init(&cache);
        cache_ready = true;
    }
    struct tly__sigv4_req r = {
        .method = method,
        .path = path ? path : "/",
        .query = query,
        .headers = h,
        .nheaders = nh,
        .payload_hash = "UNSIGNED-PAYLOAD",
        .amz_date = "20150830T123600Z",
        .region = "us-east-1",
        .service = "service",
        .normalize_path = n & 1,
    };
    struct tly__sigv4_out out;
    if (tly__sigv4_sign(&r, &creds, &cache, true, &out) == 0) {
        assert(strlen(out.signature) == 64 && strstr(out.authorization, "Signature=") != NULL);
        tly__sigv4_out_free(&out);
    }
    struct tly__s3_str enc = {0};
    tly__s3_uri_encode(&enc, r.path, strlen(r.path), true);
    tly__s3_str_free(&enc);
    free(text);
    return 0;
}
