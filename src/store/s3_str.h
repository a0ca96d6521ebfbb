/* Internal to the S3 store: a growable string for the text it composes (requests, XML bodies, signatures). */
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

#endif
