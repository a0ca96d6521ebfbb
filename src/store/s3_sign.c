/*
 * SigV4 (stage sign): the canonical request, the string to sign and the signature, with OpenSSL.
 *
 * The signer is a pure function of the request, the credentials and the time given to it, so the
 * AWS test suite's 38 cases check it byte for byte (tests/store/test_store_s3_sign.c). The signing
 * key depends only on the secret, the day, the region and the service: it is derived once a day
 * (four HMACs) and kept, and each request then costs one SHA-256 and one HMAC.
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

#include "tally/error.h"
#include "store/s3_sign.h"

static const char hexdigits[] = "0123456789abcdef";

static void to_hex(const unsigned char *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hexdigits[in[i] >> 4];
        out[2 * i + 1] = hexdigits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

int tly__sha256_hex(const struct iovec *iov, int niov, char hex[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1;
    for (int i = 0; ok && i < niov; i++)
        ok = EVP_DigestUpdate(ctx, iov[i].iov_base, iov[i].iov_len) == 1;
    ok = ok && EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == sizeof md;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return tly_fail(TLY_EINTERNAL, "SHA-256 failed (OpenSSL)");
    to_hex(md, sizeof md, hex);
    return 0;
}

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
           c == '.' || c == '~';
}

void tly__s3_uri_encode(struct tly__s3_str *b, const char *src, size_t n, bool keep_slash)
{
    static const char upper[] = "0123456789ABCDEF";
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        if (unreserved(c) || (keep_slash && c == '/'))
            continue;
        tly__s3_str_add(b, src + start, i - start);
        char esc[3] = {'%', upper[c >> 4], upper[c & 15]};
        tly__s3_str_add(b, esc, 3);
        start = i + 1;
    }
    tly__s3_str_add(b, src + start, n - start);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decode @p n bytes of @p s in place of a copy at @p out (at most n bytes); returns the length. */
static size_t pct_decode(const char *s, size_t n, char *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n && (hi = hexval(s[i + 1])) >= 0 && (lo = hexval(s[i + 2])) >= 0) {
            out[k++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[k++] = s[i];
        }
    }
    return k;
}

/* One query parameter, encoded canonically. */
struct qparam {
    char *name, *value;
};

static int qparam_cmp(const void *a, const void *b)
{
    const struct qparam *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

/* Encode @p n bytes of @p s canonically (decoded first, so an encoded and a raw query sign alike). */
static char *canon_component(const char *s, size_t n)
{
    char *dec = malloc(n + 1);
    if (dec == NULL)
        return NULL;
    size_t k = pct_decode(s, n, dec);
    struct tly__s3_str b = {0};
    tly__s3_uri_encode(&b, dec, k, false);
    tly__s3_str_add(&b, "", 0);
    free(dec);
    if (b.oom) {
        tly__s3_str_free(&b);
        return NULL;
    }
    return b.p ? b.p : strdup("");
}

static void canon_query(struct tly__s3_str *out, const char *q)
{
    size_t n = 0, len = q ? strlen(q) : 0;
    for (size_t i = 0; i < len; i++)
        n += q[i] == '&';
    struct qparam *ps = calloc(n + 1, sizeof *ps);
    size_t np = 0;
    if (ps == NULL) {
        out->oom = true;
        return;
    }
    for (const char *p = q; p && *p;) {
        const char *end = strchr(p, '&');
        size_t plen = end ? (size_t)(end - p) : strlen(p);
        if (plen > 0) {
            const char *eq = memchr(p, '=', plen);
            size_t nlen = eq ? (size_t)(eq - p) : plen;
            ps[np].name = canon_component(p, nlen);
            ps[np].value = eq ? canon_component(eq + 1, plen - nlen - 1) : strdup("");
            if (ps[np].name == NULL || ps[np].value == NULL)
                out->oom = true;
            np++;
        }
        p = end ? end + 1 : NULL;
    }
    if (!out->oom) {
        qsort(ps, np, sizeof *ps, qparam_cmp);
        for (size_t i = 0; i < np; i++)
            tly__s3_str_addf(out, "%s%s=%s", i ? "&" : "", ps[i].name, ps[i].value);
    }
    for (size_t i = 0; i < np; i++) {
        free(ps[i].name);
        free(ps[i].value);
    }
    free(ps);
}

/* "/a/./b/../c//" -> "/a/c/": dot segments resolved, empty segments dropped (generic services). */
static void normalize_path(struct tly__s3_str *out, const char *path)
{
    size_t len = strlen(path);
    const char **seg = calloc(len + 1, sizeof *seg);
    size_t *slen = calloc(len + 1, sizeof *slen);
    size_t nseg = 0;
    bool trailing = len > 0 && path[len - 1] == '/';
    if (seg == NULL || slen == NULL) {
        out->oom = true;
        free(seg);
        free(slen);
        return;
    }
    for (const char *p = path; *p;) {
        while (*p == '/')
            p++;
        const char *end = strchr(p, '/');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == 0)
            break;
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            nseg -= nseg > 0;
            trailing = true;
        } else if (!(n == 1 && p[0] == '.')) {
            seg[nseg] = p;
            slen[nseg++] = n;
            trailing = end != NULL;
        } else {
            trailing = true;
        }
        p += n;
    }
    struct tly__s3_str dec = {0};
    for (size_t i = 0; i < nseg; i++) {
        tly__s3_str_add(&dec, "/", 1);
        tly__s3_str_add(&dec, seg[i], slen[i]);
    }
    if (nseg == 0 || trailing)
        tly__s3_str_add(&dec, "/", 1);
    if (dec.oom)
        out->oom = true;
    else
        tly__s3_uri_encode(out, dec.p, dec.n, true);
    tly__s3_str_free(&dec);
    free(seg);
    free(slen);
}

/* A header, canonical: lower-case name, value trimmed with inner white space folded to one space. */
struct chdr {
    char *name, *value;
    int order;
};

static int chdr_cmp(const void *a, const void *b)
{
    const struct chdr *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : x->order - y->order; /* duplicates keep their order */
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static char *fold_value(const char *v)
{
    char *out = malloc(strlen(v) + 1);
    if (out == NULL)
        return NULL;
    size_t k = 0;
    bool gap = false;
    for (const char *p = v; *p; p++) {
        if (is_space(*p)) {
            gap = k > 0;
            continue;
        }
        if (gap)
            out[k++] = ' ';
        gap = false;
        out[k++] = *p;
    }
    out[k] = '\0';
    return out;
}

/* Canonical headers into @p out ("name:value\n" each) and the signed header list into @p names. */
static void canon_headers(struct tly__s3_str *out, struct tly__s3_str *names, const struct tly__sigv4_header *h, int nh)
{
    struct chdr *hs = calloc((size_t)nh + 1, sizeof *hs);
    if (hs == NULL) {
        out->oom = true;
        return;
    }
    for (int i = 0; i < nh; i++) {
        hs[i].name = strdup(h[i].name);
        hs[i].value = fold_value(h[i].value ? h[i].value : "");
        hs[i].order = i;
        if (hs[i].name == NULL || hs[i].value == NULL)
            out->oom = true;
        for (char *c = hs[i].name; c && *c; c++)
            *c = (*c >= 'A' && *c <= 'Z') ? (char)(*c - 'A' + 'a') : *c;
    }
    if (!out->oom) {
        qsort(hs, (size_t)nh, sizeof *hs, chdr_cmp);
        for (int i = 0; i < nh; i++) {
            bool same = i > 0 && strcmp(hs[i].name, hs[i - 1].name) == 0;
            if (same) {
                tly__s3_str_addf(out, ",%s", hs[i].value);
                continue;
            }
            tly__s3_str_addf(out, "%s%s:%s", i ? "\n" : "", hs[i].name, hs[i].value);
            tly__s3_str_addf(names, "%s%s", names->n ? ";" : "", hs[i].name);
        }
        tly__s3_str_add(out, "\n", 1);
    }
    for (int i = 0; i < nh; i++) {
        free(hs[i].name);
        free(hs[i].value);
    }
    free(hs);
}

static bool hmac(const void *key, size_t klen, const void *msg, size_t n, unsigned char out[32])
{
    unsigned int len = 0;
    return HMAC(EVP_sha256(), key, (int)klen, msg, n, out, &len) != NULL && len == 32;
}

void tly__sigv4_thread_warm_up(void)
{
    unsigned char md[32];
    char hex[65];
    tly__sha256_hex(NULL, 0, hex);
    hmac("k", 1, "m", 1, md);
}

void tly__sigv4_cache_init(struct tly__sigv4_cache *c)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
}

void tly__sigv4_cache_destroy(struct tly__sigv4_cache *c)
{
    OPENSSL_cleanse(c->key, sizeof c->key);
    pthread_mutex_destroy(&c->mu);
}

/* The signing key for (date, region, service) into @p key: from the cache, or derived and kept. */
static bool signing_key(struct tly__sigv4_cache *c, const char *secret, const char *date, const char *region,
                        const char *service, unsigned char key[32])
{
    bool ok = true;
    pthread_mutex_lock(&c->mu);
    if (strcmp(c->date, date) != 0 || strcmp(c->region, region) != 0 || strcmp(c->service, service) != 0) {
        size_t slen = strlen(secret);
        char *k0 = malloc(slen + 5);
        unsigned char a[32], b[32];
        ok = k0 != NULL && strlen(region) < sizeof c->region && strlen(service) < sizeof c->service;
        if (ok) {
            memcpy(k0, "AWS4", 4); /* key material, not payload */
            memcpy(k0 + 4, secret, slen);
            ok = hmac(k0, slen + 4, date, strlen(date), a) && hmac(a, 32, region, strlen(region), b) &&
                 hmac(b, 32, service, strlen(service), a) && hmac(a, 32, "aws4_request", 12, c->key);
            OPENSSL_cleanse(k0, slen + 4);
        }
        free(k0);
        OPENSSL_cleanse(a, sizeof a);
        OPENSSL_cleanse(b, sizeof b);
        if (ok) {
            snprintf(c->date, sizeof c->date, "%s", date);
            snprintf(c->region, sizeof c->region, "%s", region);
            snprintf(c->service, sizeof c->service, "%s", service);
            c->derivations++;
        } else {
            c->date[0] = '\0';
        }
    }
    if (ok)
        memcpy(key, c->key, 32); /* key material, not payload */
    pthread_mutex_unlock(&c->mu);
    return ok;
}

int tly__sigv4_sign(const struct tly__sigv4_req *r, const struct tly__s3_creds *creds, struct tly__sigv4_cache *cache,
                    bool keep_text, struct tly__sigv4_out *out)
{
    memset(out, 0, sizeof *out);
    if (r->amz_date == NULL || strlen(r->amz_date) != 16 || r->amz_date[8] != 'T')
        return tly_fail(TLY_EINTERNAL, "SigV4: x-amz-date '%s' is not YYYYMMDDTHHMMSSZ",
                        r->amz_date ? r->amz_date : "");
    char date[9];
    memcpy(date, r->amz_date, 8); /* text, not payload */
    date[8] = '\0';

    struct tly__s3_str creq = {0}, names = {0}, sts = {0}, auth = {0};
    tly__s3_str_addf(&creq, "%s\n", r->method);
    if (r->normalize_path)
        normalize_path(&creq, r->path);
    else
        tly__s3_uri_encode(&creq, r->path, strlen(r->path), true);
    tly__s3_str_add(&creq, "\n", 1);
    canon_query(&creq, r->query);
    tly__s3_str_add(&creq, "\n", 1);
    canon_headers(&creq, &names, r->headers, r->nheaders);
    tly__s3_str_addf(&creq, "\n%.*s\n%s", (int)names.n, names.p ? names.p : "", r->payload_hash);

    char creq_hash[65] = "";
    struct iovec civ = {creq.p, creq.n};
    int err = creq.oom || names.oom ? tly_fail(-ENOMEM, "SigV4: out of memory") : tly__sha256_hex(&civ, 1, creq_hash);
    if (!err) {
        tly__s3_str_addf(&sts, "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s", r->amz_date, date, r->region,
                         r->service, creq_hash);
        unsigned char key[32], sig[32];
        if (sts.oom)
            err = tly_fail(-ENOMEM, "SigV4: out of memory");
        else if (!signing_key(cache, creds->secret_key, date, r->region, r->service, key) ||
                 !hmac(key, sizeof key, sts.p, sts.n, sig))
            err = tly_fail(TLY_EINTERNAL, "SigV4: HMAC-SHA256 failed (OpenSSL)");
        OPENSSL_cleanse(key, sizeof key);
        if (!err) {
            to_hex(sig, sizeof sig, out->signature);
            tly__s3_str_addf(
                &auth, "AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request, SignedHeaders=%.*s, Signature=%s",
                creds->access_key, date, r->region, r->service, (int)names.n, names.p ? names.p : "", out->signature);
            if (auth.oom)
                err = tly_fail(-ENOMEM, "SigV4: out of memory");
        }
    }
    if (!err) {
        out->authorization = auth.p;
        auth.p = NULL;
        if (keep_text) {
            out->canonical_request = creq.p;
            out->string_to_sign = sts.p;
            creq.p = sts.p = NULL;
        }
    }
    tly__s3_str_free(&creq);
    tly__s3_str_free(&names);
    tly__s3_str_free(&sts);
    tly__s3_str_free(&auth);
    if (err)
        tly__sigv4_out_free(out);
    return err;
}

void tly__sigv4_out_free(struct tly__sigv4_out *out)
{
    if (out->authorization)
        OPENSSL_cleanse(out->authorization, strlen(out->authorization));
    free(out->authorization);
    free(out->canonical_request);
    free(out->string_to_sign);
    OPENSSL_cleanse(out->signature, sizeof out->signature);
    memset(out, 0, sizeof *out);
}

void tly__s3_creds_free(struct tly__s3_creds *c)
{
    if (c->secret_key)
        OPENSSL_cleanse(c->secret_key, strlen(c->secret_key));
    if (c->session_token)
        OPENSSL_cleanse(c->session_token, strlen(c->session_token));
    free(c->access_key);
    free(c->secret_key);
    free(c->session_token);
    memset(c, 0, sizeof *c);
}
