/* The S3 store's growable string (s3_str.h): the text of requests, XML bodies and signatures; and
 * server text sanitised before a message shows it. */
#include <stdarg.h>
#include <stdbool.h>
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

#define REDACTED "[redacted]"

/* The length of a secret of @p secrets at @p s (0: none); secrets shorter than 4 bytes are no secrets. */
static size_t secret_at(const char *s, const char *const *secrets, int n)
{
    for (int i = 0; i < n; i++) {
        size_t k = secrets[i] ? strlen(secrets[i]) : 0;
        if (k >= 4 && strncmp(s, secrets[i], k) == 0)
            return k;
    }
    return 0;
}

/* Where a credential's value ends: at white space, a separator or a quote. */
static size_t value_len(const char *s)
{
    size_t k = 0;
    while (s[k] && !strchr(" \t\r\n,;&\"'<>", s[k]))
        k++;
    return k;
}

void tly__s3_sanitize(char *s, size_t cap, size_t max, const char *const *secrets, int nsecrets)
{
    static const char *const keys[] = {"Signature=", "Credential="};
    char out[1024];
    size_t o = 0, lim = max < sizeof out - 4 ? max : sizeof out - 4;
    bool cut = false;
    for (const char *p = s; *p;) {
        size_t k = secret_at(p, secrets, nsecrets), key = 0;
        for (int i = 0; i < 2 && k == 0 && key == 0; i++)
            if (strncmp(p, keys[i], strlen(keys[i])) == 0)
                key = strlen(keys[i]);
        const char *piece = p;
        size_t len = 1;
        if (k) {
            piece = REDACTED, len = strlen(REDACTED);
            p += k;
        } else if (key) {
            len = key;
            p += key;
        } else {
            p++;
        }
        if (o + len > lim) {
            cut = true;
            break;
        }
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)piece[i];
            out[o++] = c == '\t' || c == '\n' || c == '\r' ? ' ' : c < 0x20 || c >= 0x7f ? '?' : (char)c;
        }
        if (key) { /* the value after the key */
            size_t v = value_len(p);
            if (o + strlen(REDACTED) > lim) {
                cut = true;
                break;
            }
            memcpy(out + o, REDACTED, strlen(REDACTED)); /* message text, not payload */
            o += strlen(REDACTED);
            p += v;
        }
    }
    if (cut) {
        memcpy(out + o, "...", 3); /* message text, not payload */
        o += 3;
    }
    out[o] = '\0';
    snprintf(s, cap, "%s", out);
}
