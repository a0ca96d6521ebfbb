/*
 * store: SigV4 (stage sign) against the AWS signing test suite — all 38 cases of
 * tests/data/sigv4/v4 (aws-c-auth's suite, Apache-2.0: LICENSE and NOTICE beside it): the canonical
 * request, the string to sign, the signature and the Authorization header, byte for byte.
 */
#include <jansson.h>
#include <libgen.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/s3_internal.h"
#include "support.h"
#include "tally/error.h"

TestSuite(store_s3_sign);

static char *slurp(const char *dir, const char *name, size_t *len)
{
    char path[1600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    fclose(f);
    buf[got] = '\0';
    if (len)
        *len = got;
    return buf;
}

static const char *suite_dir(char *buf, size_t cap)
{
    char src[1024];
    snprintf(src, sizeof src, "%s", __FILE__);
    snprintf(buf, cap, "%s/../data/sigv4/v4", dirname(src));
    return buf;
}

/* One case's request.txt, parsed: METHOD URI HTTP/1.1, headers (continuation lines joined), body. */
struct vreq {
    char *text;
    char method[16];
    char *path, *query;
    struct tly__sigv4_header h[16];
    int nh;
    const char *body;
    size_t body_len;
};

static void parse_request(char *text, size_t len, struct vreq *v)
{
    memset(v, 0, sizeof *v);
    v->text = text;
    char *eol = strchr(text, '\n');
    *eol = '\0';
    char *sp = strchr(text, ' '), *last = strrchr(text, ' ');
    snprintf(v->method, sizeof v->method, "%.*s", (int)(sp - text), text);
    *last = '\0'; /* the URI may hold spaces: it runs from the first space to the last */
    v->path = sp + 1;
    char *q = strchr(v->path, '?');
    if (q) {
        *q = '\0';
        v->query = q + 1;
    }
    char *line = eol + 1;
    while (line < text + len && *line != '\n' && *line != '\0') {
        char *end = strchr(line, '\n');
        char *next = end ? end + 1 : text + len;
        if (end && (*next == ' ' || *next == '\t')) {
            *end = '\n'; /* a folded value: keep the line break, the signer folds white space */
            char *e2 = strchr(next, '\n');
            while (e2 && (e2[1] == ' ' || e2[1] == '\t'))
                e2 = strchr(e2 + 1, '\n');
            end = e2;
            next = end ? end + 1 : text + len;
        }
        if (end)
            *end = '\0';
        char *colon = strchr(line, ':');
        *colon = '\0';
        v->h[v->nh++] = (struct tly__sigv4_header){line, colon + 1};
        line = next;
    }
    v->body = line < text + len ? line + 1 : "";
    v->body_len = line < text + len ? (size_t)(text + len - line - 1) : 0;
}

static char *authorization_line(char *signed_req)
{
    char *a = strstr(signed_req, "\nAuthorization:");
    cr_assert_not_null(a);
    a += strlen("\nAuthorization:");
    char *end = strchr(a, '\n');
    if (end)
        *end = '\0';
    return a;
}

/* Run one case; returns whether it matched (failures are reported by cr_expect). */
static bool run_case(const char *base, const char *name, struct tly__sigv4_cache *cache)
{
    char dir[1400];
    snprintf(dir, sizeof dir, "%s/%s", base, name);
    json_error_t je;
    char path[1500];
    snprintf(path, sizeof path, "%s/context.json", dir);
    json_t *ctx = json_load_file(path, 0, &je);
    cr_assert_not_null(ctx, "%s: %s", name, je.text);
    json_t *cr = json_object_get(ctx, "credentials");
    struct tly__s3_creds creds = {
        .access_key = (char *)json_string_value(json_object_get(cr, "access_key_id")),
        .secret_key = (char *)json_string_value(json_object_get(cr, "secret_access_key")),
    };
    const char *token = json_string_value(json_object_get(cr, "token"));
    bool omit_token = json_is_true(json_object_get(ctx, "omit_session_token"));
    bool sign_body = json_is_true(json_object_get(ctx, "sign_body"));
    const char *ts = json_string_value(json_object_get(ctx, "timestamp")); /* 2015-08-30T12:36:00Z */
    char amz_date[17];
    snprintf(amz_date, sizeof amz_date, "%.4s%.2s%.2sT%.2s%.2s%.2sZ", ts, ts + 5, ts + 8, ts + 11, ts + 14, ts + 17);

    size_t len = 0;
    struct vreq v;
    char *text = slurp(dir, "request.txt", &len);
    parse_request(text, len, &v);
    struct iovec body = {(void *)v.body, v.body_len};
    char payload[65];
    cr_assert_eq(tly__sha256_hex(&body, 1, payload), 0);
    v.h[v.nh++] = (struct tly__sigv4_header){"X-Amz-Date", amz_date};
    if (token && !omit_token)
        v.h[v.nh++] = (struct tly__sigv4_header){"X-Amz-Security-Token", token};
    if (sign_body)
        v.h[v.nh++] = (struct tly__sigv4_header){"X-Amz-Content-Sha256", payload};
    struct tly__sigv4_req r = {
        .method = v.method,
        .path = v.path,
        .query = v.query,
        .headers = v.h,
        .nheaders = v.nh,
        .payload_hash = payload,
        .amz_date = amz_date,
        .region = json_string_value(json_object_get(ctx, "region")),
        .service = json_string_value(json_object_get(ctx, "service")),
        .normalize_path = json_is_true(json_object_get(ctx, "normalize")),
    };
    struct tly__sigv4_out out;
    cr_assert_eq(tly__sigv4_sign(&r, &creds, cache, true, &out), 0, "%s: %s", name, tly_errmsg());

    char *creq = slurp(dir, "header-canonical-request.txt", NULL);
    char *sts = slurp(dir, "header-string-to-sign.txt", NULL);
    char *sig = slurp(dir, "header-signature.txt", NULL);
    char *sreq = slurp(dir, "header-signed-request.txt", NULL);
    bool ok = strcmp(out.canonical_request, creq) == 0 && strcmp(out.string_to_sign, sts) == 0 &&
              strcmp(out.signature, sig) == 0 && strcmp(out.authorization, authorization_line(sreq)) == 0;
    if (!ok) /* Criterion does not print the strings it compares */
        fprintf(stderr, "---- %s: got\n%s\n---- expected\n%s\n", name, out.canonical_request, creq);
    cr_expect_str_eq(out.canonical_request, creq, "%s: canonical request", name);
    cr_expect_str_eq(out.string_to_sign, sts, "%s: string to sign", name);
    cr_expect_str_eq(out.signature, sig, "%s: signature", name);
    cr_expect_str_eq(out.authorization, authorization_line(sreq), "%s: Authorization", name);
    cr_expect(strstr(out.authorization, creds.secret_key) == NULL, "%s: the secret is never in a header", name);
    tly__sigv4_out_free(&out);
    free(creq);
    free(sts);
    free(sig);
    free(sreq);
    free(v.text);
    json_decref(ctx);
    return ok;
}

TLY_TEST(store_s3_sign, all_38_aws_vectors)
{
    char base[1100];
    suite_dir(base, sizeof base);
    DIR *d = opendir(base);
    cr_assert_not_null(d, "%s", base);
    struct tly__sigv4_cache cache;
    tly__sigv4_cache_init(&cache);
    int cases = 0, passed = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.')
            continue;
        cases++;
        passed += run_case(base, e->d_name, &cache);
    }
    closedir(d);
    cr_expect_eq(cases, 38, "the suite has 38 cases");
    cr_expect_eq(passed, cases, "%d of %d cases match", passed, cases);
    cr_expect_eq(cache.derivations, 1, "one signing key for one (day, region, service): derived %llu times",
                 (unsigned long long)cache.derivations);
    tly__sigv4_cache_destroy(&cache);
}

static struct tly__s3_creds example = {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", NULL};

static char *sign_at(struct tly__sigv4_cache *cache, const char *date, const char *region)
{
    struct tly__sigv4_header h[] = {{"host", "example.amazonaws.com"}, {"x-amz-date", date}};
    struct tly__sigv4_req r = {"GET", "/", NULL, h, 2, "UNSIGNED-PAYLOAD", date, region, "s3", false};
    struct tly__sigv4_out out;
    cr_assert_eq(tly__sigv4_sign(&r, &example, cache, false, &out), 0);
    char *sig = strdup(out.signature);
    tly__sigv4_out_free(&out);
    return sig;
}

TLY_TEST(store_s3_sign, signing_key_is_cached_per_day_region_and_service)
{
    struct tly__sigv4_cache c;
    tly__sigv4_cache_init(&c);
    char *a = sign_at(&c, "20240101T000000Z", "us-east-1");
    char *b = sign_at(&c, "20240101T235959Z", "us-east-1");
    cr_expect_eq(c.derivations, 1, "same day: the cached key");
    char *d = sign_at(&c, "20240102T000000Z", "us-east-1");
    cr_expect_eq(c.derivations, 2, "a new day: a new key");
    char *e = sign_at(&c, "20240102T000000Z", "eu-west-1");
    cr_expect_eq(c.derivations, 3, "a new region: a new key");
    struct tly__sigv4_cache fresh;
    tly__sigv4_cache_init(&fresh);
    char *f = sign_at(&fresh, "20240102T000000Z", "eu-west-1");
    cr_expect_str_eq(e, f, "the cached key signs as a fresh one");
    cr_expect_str_neq(a, b);
    cr_expect_str_neq(b, d);
    free(a), free(b), free(d), free(e), free(f);
    tly__sigv4_cache_destroy(&c);
    tly__sigv4_cache_destroy(&fresh);
}

TLY_TEST(store_s3_sign, s3_keys_are_encoded_once_and_not_normalized)
{
    struct tly__s3_str b = {0};
    const char *key = "/bucket/a b/c+d~e=f/./x//\xc3\xa9";
    tly__s3_uri_encode(&b, key, strlen(key), true);
    cr_expect_str_eq(b.p, "/bucket/a%20b/c%2Bd~e%3Df/./x//%C3%A9");
    tly__s3_str_free(&b);
    tly__s3_uri_encode(&b, "a/b=c&d", 7, false);
    cr_expect_str_eq(b.p, "a%2Fb%3Dc%26d", "a query value encodes '/' too");
    tly__s3_str_free(&b);

    /* The canonical URI of an S3 request is the key as named: the same encoding the wire gets. */
    struct tly__sigv4_cache c;
    tly__sigv4_cache_init(&c);
    struct tly__sigv4_header h[] = {{"host", "h"}, {"x-amz-date", "20240101T000000Z"}};
    struct tly__sigv4_req r = {
        "GET", key, "uploads=&prefix=a%2Fb", h, 2, "UNSIGNED-PAYLOAD", "20240101T000000Z", "us-east-1", "s3", false};
    struct tly__sigv4_out out;
    cr_assert_eq(tly__sigv4_sign(&r, &example, &c, true, &out), 0);
    cr_expect(
        strncmp(out.canonical_request, "GET\n/bucket/a%20b/c%2Bd~e%3Df/./x//%C3%A9\nprefix=a%2Fb&uploads=\n", 62) == 0,
        "%s", out.canonical_request);
    tly__sigv4_out_free(&out);
    r.query = "uploads"; /* a bare name signs as "name=" */
    cr_assert_eq(tly__sigv4_sign(&r, &example, &c, true, &out), 0);
    cr_expect(strstr(out.canonical_request, "\nuploads=\n") != NULL, "%s", out.canonical_request);
    tly__sigv4_out_free(&out);
    tly__sigv4_cache_destroy(&c);
}

TLY_TEST(store_s3_sign, sha256_over_pieces)
{
    char hex[65];
    struct iovec one = {"Param1=value1", 13};
    cr_assert_eq(tly__sha256_hex(&one, 1, hex), 0);
    cr_expect_str_eq(hex, "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e");
    struct iovec three[] = {{"Param", 5}, {"", 0}, {"1=value1", 8}};
    cr_assert_eq(tly__sha256_hex(three, 3, hex), 0);
    cr_expect_str_eq(hex, "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e");
    cr_assert_eq(tly__sha256_hex(NULL, 0, hex), 0);
    cr_expect_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}
