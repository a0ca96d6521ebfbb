/* Internal to the S3 store: a growable string for the text it composes (requests, XML bodies,
 * signatures), and the sanitiser of text a server sends back. */
#ifndef TLY__STORE_S3_STR_H
#define TLY__STORE_S3_STR_H

#include <stdbool.h>
#include <stddef.h>

/* A growable string; `oom` sticks after a failed allocation. */
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

/**
 * Make text that came from a server fit for a message, in place in @p s (NUL-terminated, @p cap
 * bytes): the values after "Signature=" and "Credential=" and every occurrence of the @p nsecrets
 * strings in @p secrets (the access key id, the secret, the session token; NULL ones skipped)
 * become "[redacted]"; white space becomes a space and every other byte outside printable ASCII
 * (control characters, escape sequences, C1 controls) a '?'; the text is cut at @p max bytes with
 * "...". A server that echoes the request's Authorization header shows no signature.
 */
void tly__s3_sanitize(char *s, size_t cap, size_t max, const char *const *secrets, int nsecrets);

#endif
