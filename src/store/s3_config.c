/*
 * The S3 store's configuration: s3://BUCKET[/PREFIX], the standard AWS environment (credentials,
 * region, endpoint, CA bundle), the addressing style, and the TALLY_* tuning options (resolved
 * through common/opts.h).
 *
 * The variables (the standard AWS ones first):
 *   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN   credentials (x-amz-security-token)
 *   AWS_REGION, else AWS_DEFAULT_REGION, else us-east-1
 *   AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL   http(s)://HOST[:PORT]; path-style addressing then,
 *                                  else https://BUCKET.s3.REGION.amazonaws.com (virtual-hosted)
 *   TALLY_S3_ADDRESSING=path|virtual    override the addressing style
 *   AWS_CA_BUNDLE, TALLY_S3_CA_BUNDLE   the CA file TLS verifies against (verification is always on)
 *   TALLY_S3_SIGN_PAYLOAD=1        sign the SHA-256 of each body (default UNSIGNED-PAYLOAD)
 *   TALLY_PART_SIZE (8M), TALLY_IO_CONCURRENCY (32)   unless the options set them
 *   TALLY_S3_RETRIES (5), TALLY_S3_BACKOFF_MS (100), TALLY_S3_CONNECT_TIMEOUT (10 s),
 *   TALLY_S3_LOW_SPEED_TIME (30 s below 1 KiB/s), TALLY_S3_LIST_PAGE (1000 keys per listing),
 *   TALLY_S3_TIMEOUT (600 s a request, retries included), TALLY_S3_IDLE_TIMEOUT (30 s without a byte),
 *   TALLY_META_LIMIT (64 MiB: a metadata document or an XML reply read whole)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tally/error.h"
#include "store/s3_store.h"
#include "common/opts.h"

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && v[0] ? v : NULL;
}

static bool bucket_valid(const char *b)
{
    size_t n = strlen(b);
    if (n < 3 || n > 63)
        return false;
    for (const char *p = b; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' || *p == '_'))
            return false;
    return true;
}

/* s3://BUCKET[/PREFIX] into bucket and prefix (without leading or trailing slashes). */
static int parse_url(struct tly__s3 *st, const char *url)
{
    const char *b = url + 5, *slash = strchr(b, '/');
    size_t blen = slash ? (size_t)(slash - b) : strlen(b);
    st->bucket = strndup(b, blen);
    const char *p = slash ? slash : "";
    while (*p == '/')
        p++;
    st->prefix = strdup(p);
    if (st->bucket == NULL || st->prefix == NULL)
        return tly_fail(-ENOMEM, "out of memory");
    size_t plen = strlen(st->prefix);
    while (plen > 0 && st->prefix[plen - 1] == '/')
        st->prefix[--plen] = '\0';
    if (!bucket_valid(st->bucket))
        return tly_fail(TLY_EUSAGE, "store URL '%s': '%s' is not a bucket name (3 to 63 of a-z 0-9 . - _)", url,
                        st->bucket);
    if (plen > 0 && !tly_store_key_valid(st->prefix))
        return tly_fail(TLY_EUSAGE, "store URL '%s': the prefix '%s' has an empty, '.' or '..' component", url,
                        st->prefix);
    return 0;
}

/* The endpoint and the addressing style: AWS_ENDPOINT_URL(_S3), TALLY_S3_ADDRESSING, the region. */
static int parse_endpoint(struct tly__s3 *st)
{
    const char *ep = env("AWS_ENDPOINT_URL_S3");
    if (ep == NULL)
        ep = env("AWS_ENDPOINT_URL");
    const char *style = env("TALLY_S3_ADDRESSING");
    if (style && strcmp(style, "path") != 0 && strcmp(style, "virtual") != 0)
        return tly_fail(TLY_EUSAGE, "TALLY_S3_ADDRESSING='%s': want path or virtual", style);
    if (ep) {
        const char *rest = strstr(ep, "://");
        if (rest == NULL || (strncmp(ep, "http://", 7) != 0 && strncmp(ep, "https://", 8) != 0))
            return tly_fail(TLY_EUSAGE, "AWS_ENDPOINT_URL='%s': want http://HOST[:PORT] or https://HOST[:PORT]", ep);
        rest += 3;
        size_t n = strcspn(rest, "/?#");
        if (n == 0)
            return tly_fail(TLY_EUSAGE, "AWS_ENDPOINT_URL='%s': no host", ep);
        st->scheme = strndup(ep, (size_t)(rest - 3 - ep));
        st->authority = strndup(rest, n);
        /* A custom endpoint (RGW, MinIO) is addressed by path unless told otherwise. */
        st->virtual_host = style && strcmp(style, "virtual") == 0;
    } else {
        st->scheme = strdup("https");
        if (asprintf(&st->authority, "s3.%s.amazonaws.com", st->region) < 0)
            st->authority = NULL;
        /* AWS: virtual-hosted, except a bucket with dots, which no wildcard certificate covers */
        st->virtual_host = style ? strcmp(style, "virtual") == 0 : strchr(st->bucket, '.') == NULL;
    }
    if (st->scheme == NULL || st->authority == NULL)
        return tly_fail(-ENOMEM, "out of memory");
    return 0;
}

static int parse_creds(struct tly__s3 *st, const char *url)
{
    const char *ak = env("AWS_ACCESS_KEY_ID"), *sk = env("AWS_SECRET_ACCESS_KEY"), *tok = env("AWS_SESSION_TOKEN");
    if (ak == NULL || sk == NULL)
        return tly_fail(TLY_EAUTH,
                        "%s: no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN "
                        "for temporary ones)",
                        url);
    st->creds.access_key = strdup(ak);
    st->creds.secret_key = strdup(sk);
    st->creds.session_token = tok ? strdup(tok) : NULL;
    if (!st->creds.access_key || !st->creds.secret_key || (tok && !st->creds.session_token))
        return tly_fail(-ENOMEM, "out of memory");
    return 0;
}

int tly__s3_configure(struct tly__s3 *st, const char *url, const struct tly_store_opts *opts,
                      struct tly__s3_http_opts *ho)
{
    int err = parse_url(st, url);
    if (err)
        return err;
    const char *region = env("AWS_REGION");
    if (region == NULL)
        region = env("AWS_DEFAULT_REGION");
    if ((st->region = strdup(region ? region : "us-east-1")) == NULL)
        return tly_fail(-ENOMEM, "out of memory");
    if ((err = parse_endpoint(st)) != 0 || (err = parse_creds(st, url)) != 0)
        return err;
    const char *ca = env("TALLY_S3_CA_BUNDLE");
    if (ca == NULL)
        ca = env("AWS_CA_BUNDLE");
    if (ca && (st->ca_file = strdup(ca)) == NULL)
        return tly_fail(-ENOMEM, "out of memory");
    const char *sign = env("TALLY_S3_SIGN_PAYLOAD");
    st->sign_payload = sign && strcmp(sign, "0") != 0;
    uint64_t part, conc, retries, backoff, cto, lst, page, total, idle, body_max;
    if (opts->io_concurrency < 0)
        return tly_fail(TLY_EUSAGE, "I/O concurrency %d: want a positive count", opts->io_concurrency);
    if ((err = tly__opt_resolve(TLY_OPT_PART_SIZE, opts->part_size, &part)) ||
        (err = tly__opt_resolve(TLY_OPT_IO_CONCURRENCY, (uint64_t)opts->io_concurrency, &conc)) ||
        (err = tly__opt_resolve(TLY_OPT_S3_RETRIES, 0, &retries)) ||
        (err = tly__opt_resolve(TLY_OPT_S3_BACKOFF_MS, 0, &backoff)) ||
        (err = tly__opt_resolve(TLY_OPT_S3_CONNECT_TIMEOUT, 0, &cto)) ||
        (err = tly__opt_resolve(TLY_OPT_S3_LOW_SPEED_TIME, 0, &lst)) ||
        (err = tly__opt_resolve(TLY_OPT_S3_LIST_PAGE, 0, &page)) ||
        (err = tly__opt_resolve(TLY_OPT_S3_TIMEOUT, 0, &total)) ||
        (err = tly__opt_resolve(TLY_OPT_S3_IDLE_TIMEOUT, 0, &idle)) ||
        (err = tly__opt_resolve(TLY_OPT_META_LIMIT, 0, &body_max)))
        return err;
    st->part_size = (size_t)part;
    st->list_page = (int)page;
    *ho = (struct tly__s3_http_opts){
        .concurrency = (int)conc,
        .max_attempts = (int)retries + 1,
        .backoff_base_ms = (long)backoff,
        .backoff_cap_ms = 10000,
        .connect_timeout_s = (long)cto,
        .low_speed_time_s = (long)lst,
        .low_speed_limit = 1024,
        .idle_timeout_s = (long)idle,
        .total_timeout_s = (long)total,
        .body_max = body_max,
        .ca_file = st->ca_file,
        .creds = &st->creds,
        .sign_cache = &st->cache,
        .region = st->region,
    };
    return 0;
}
