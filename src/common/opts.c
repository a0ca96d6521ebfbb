/* The strict number parsers and the table of tuning options (tally/opts.h, common/opts.h). */
#include "common/opts.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "tally/error.h"

#define KIB ((uint64_t)1 << 10)
#define MIB ((uint64_t)1 << 20)
#define GIB ((uint64_t)1 << 30)

/* Defaults of 0 are resolved by the caller (threads: the number of online CPUs). */
static const struct tly_opt_def defs[TLY_OPT_COUNT] = {
    [TLY_OPT_THREADS] = {"TALLY_THREADS", "--threads", "worker threads", false, 1, 1024, 0},
    [TLY_OPT_IO_CONCURRENCY] = {"TALLY_IO_CONCURRENCY", "--io-concurrency", "transfers in flight", false, 1, 1024, 32},
    [TLY_OPT_MEMORY_LIMIT] = {"TALLY_MEMORY_LIMIT", "--memory-limit", "bytes", true, 64 * KIB, (uint64_t)1 << 50, GIB},
    /* S3's multipart limits: parts of 5 MiB to 5 GiB */
    [TLY_OPT_PART_SIZE] = {"TALLY_PART_SIZE", "--part-size", "bytes", true, 5 * MIB, 5 * GIB, 8 * MIB},
    [TLY_OPT_S3_RETRIES] = {"TALLY_S3_RETRIES", NULL, "retries", false, 0, 100, 5},
    [TLY_OPT_S3_BACKOFF_MS] = {"TALLY_S3_BACKOFF_MS", NULL, "milliseconds", false, 1, 60000, 100},
    [TLY_OPT_S3_CONNECT_TIMEOUT] = {"TALLY_S3_CONNECT_TIMEOUT", NULL, "seconds", false, 1, 600, 10},
    [TLY_OPT_S3_LOW_SPEED_TIME] = {"TALLY_S3_LOW_SPEED_TIME", NULL, "seconds", false, 1, 3600, 30},
    [TLY_OPT_S3_LIST_PAGE] = {"TALLY_S3_LIST_PAGE", NULL, "keys per page", false, 1, 1000, 1000},
    /* one S3 request, its retries and backoffs included: a server that drips a body never ends */
    [TLY_OPT_S3_TIMEOUT] = {"TALLY_S3_TIMEOUT", NULL, "seconds", false, 1, 86400, 600},
    /* no byte either way for this long: the attempt is abandoned (and retried) */
    [TLY_OPT_S3_IDLE_TIMEOUT] = {"TALLY_S3_IDLE_TIMEOUT", NULL, "seconds", false, 1, 3600, 30},
    /* metadata (.zarray, zarr.json, .zattrs) and S3's XML replies are read whole: at most this */
    [TLY_OPT_META_LIMIT] = {"TALLY_META_LIMIT", NULL, "bytes", true, 4 * KIB, 4 * GIB, 64 * MIB},
};

static bool digits_only(const char *s)
{
    if (*s == '-' || *s == '+')
        s++;
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

int tly_int_parse(const char *s, long long lo, long long hi, long long *out)
{
    if (s == NULL || !digits_only(s))
        return tly_fail(TLY_EUSAGE, "'%s' is not a whole number", s ? s : "");
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno == ERANGE || v < lo || v > hi)
        return tly_fail(TLY_EUSAGE, "%s is outside %lld..%lld", s, lo, hi);
    *out = v;
    return 0;
}

int tly_size_parse(const char *s, uint64_t *out)
{
    if (s == NULL || *s < '0' || *s > '9')
        return tly_fail(TLY_EUSAGE, "'%s' is not a size (e.g. 1048576, 64M, 1GiB)", s ? s : "");
    char *end;
    errno = 0;
    unsigned long long n = strtoull(s, &end, 10);
    int shift = 0;
    switch (*end) {
    case 'k':
    case 'K':
        shift = 10;
        break;
    case 'm':
    case 'M':
        shift = 20;
        break;
    case 'g':
    case 'G':
        shift = 30;
        break;
    case 't':
    case 'T':
        shift = 40;
        break;
    default:
        break;
    }
    if (shift) {
        end++;
        if (strcmp(end, "i") == 0 || strcmp(end, "B") == 0 || strcmp(end, "iB") == 0)
            end += strlen(end);
    }
    if (*end != '\0')
        return tly_fail(TLY_EUSAGE, "'%s' is not a size (e.g. 1048576, 64M, 1GiB)", s);
    if (errno == ERANGE || (shift && n > (UINT64_MAX >> shift)))
        return tly_fail(TLY_EUSAGE, "'%s' is too large a size", s);
    *out = (uint64_t)n << shift;
    return 0;
}

int tly_size_parse_range(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    uint64_t v;
    int err = tly_size_parse(s, &v);
    if (err)
        return err;
    if (v < lo || v > hi)
        return tly_fail(TLY_EUSAGE, "%s is outside %llu..%llu bytes", s, (unsigned long long)lo,
                        (unsigned long long)hi);
    *out = v;
    return 0;
}

const char *tly__opt_env(enum tly_opt o)
{
    return defs[o].env;
}

const struct tly_opt_def *tly_opt_def(enum tly_opt o)
{
    return (int)o >= 0 && o < TLY_OPT_COUNT ? &defs[o] : NULL;
}

int tly_opt_parse(enum tly_opt o, const char *s, uint64_t *out)
{
    const struct tly_opt_def *d = &defs[o];
    if (d->size)
        return tly_size_parse_range(s, d->lo, d->hi, out);
    long long x;
    int err = tly_int_parse(s, (long long)d->lo, (long long)d->hi, &x);
    if (!err)
        *out = (uint64_t)x;
    return err;
}

int tly_opt_check(enum tly_opt o, uint64_t v)
{
    const struct tly_opt_def *d = &defs[o];
    if (v < d->lo || v > d->hi)
        return tly_fail(TLY_EUSAGE, "%s %llu is outside %llu..%llu %s", d->option ? d->option : d->env,
                        (unsigned long long)v, (unsigned long long)d->lo, (unsigned long long)d->hi, d->unit);
    return 0;
}

int tly__opt_resolve(enum tly_opt o, uint64_t given, uint64_t *out)
{
    const struct tly_opt_def *d = &defs[o];
    if (given != 0) {
        int err = tly_opt_check(o, given);
        if (!err)
            *out = given;
        return err;
    }
    const char *v = getenv(d->env);
    if (v == NULL || *v == '\0') {
        *out = d->dflt;
        return 0;
    }
    int err = tly_opt_parse(o, v, out);
    if (err)
        tly_err_prefix("%s (%s)", d->env, d->unit);
    return err;
}
