/* The S3 store's growable string (s3_str.h): the text of requests, XML bodies and signatures. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/s3_str.h"

void tly__s3_str_add(struct tly__s3_str *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 128;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->n, s, n); /* text the store composes, not payload */
    b->n += n;
    b->p[b->n] = '\0';
}

void tly__s3_str_addf(struct tly__s3_str *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = true;
        return;
    }
    if ((size_t)n < sizeof small) {
        tly__s3_str_add(b, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (big == NULL) {
        b->oom = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    tly__s3_str_add(b, big, (size_t)n);
    free(big);
}

void tly__s3_str_free(struct tly__s3_str *b)
{
    free(b->p);
    *b = (struct tly__s3_str){0};
}
