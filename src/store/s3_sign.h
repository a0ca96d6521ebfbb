/* Internal to the S3 store: SigV4 (s3_sign.c), the credentials it signs with, and S3's URI encoding. */
#ifndef TLY__STORE_S3_SIGN_H
#define TLY__STORE_S3_SIGN_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "store/s3_str.h"

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

#endif
