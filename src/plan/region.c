/* Regions: hyper-rectangles of an array, and their command-line form "0:10,5:20". */
#include <stdlib.h>
#include <string.h>

#include "tally/error.h"
#include "tally/plan.h"

void tly_region_all(struct tly_region *r, int rank, const uint64_t *shape)
{
    r->rank = rank;
    for (int d = 0; d < rank; d++) {
        r->start[d] = 0;
        r->stop[d] = shape[d];
    }
}

uint64_t tly_region_count(const struct tly_region *r)
{
    uint64_t n = 1;
    for (int d = 0; d < r->rank; d++)
        n *= r->stop[d] > r->start[d] ? r->stop[d] - r->start[d] : 0;
    return n;
}

/* Parse one bound; an empty one takes @p dflt. False when it is not a non-negative integer. */
static bool parse_bound(const char *s, size_t len, uint64_t dflt, uint64_t *out)
{
    if (len == 0) {
        *out = dflt;
        return true;
    }
    char buf[32];
    if (len >= sizeof buf)
        return false;
    memcpy(buf, s, len); /* a few characters of the argument, not payload */
    buf[len] = '\0';
    char *end;
    if (buf[0] < '0' || buf[0] > '9')
        return false;
    unsigned long long v = strtoull(buf, &end, 10);
    if (*end != '\0')
        return false;
    *out = v;
    return true;
}

int tly_region_parse(const char *s, int rank, const uint64_t *shape, struct tly_region *out)
{
    tly_region_all(out, rank, shape);
    const char *p = s;
    for (int d = 0; d < rank; d++) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *colon = memchr(p, ':', len);
        uint64_t a, b;
        bool ok;
        if (colon) {
            ok = parse_bound(p, (size_t)(colon - p), 0, &a) &&
                 parse_bound(colon + 1, len - (size_t)(colon - p) - 1, shape[d], &b);
        } else {
            ok = parse_bound(p, len, 0, &a) && len > 0;
            b = a + 1;
        }
        if (!ok)
            return tly_fail(TLY_EUSAGE, "region '%s': dimension %d: '%.*s' is not START:STOP", s, d, (int)len, p);
        if (a > b || b > shape[d])
            return tly_fail(TLY_EUSAGE, "region '%s': dimension %d: %llu:%llu is outside 0:%llu", s, d,
                             (unsigned long long)a, (unsigned long long)b, (unsigned long long)shape[d]);
        out->start[d] = a;
        out->stop[d] = b;
        if (end == NULL) {
            if (d != rank - 1)
                return tly_fail(TLY_EUSAGE, "region '%s' has %d dimensions, the array %d", s, d + 1, rank);
            return 0;
        }
        p = end + 1;
    }
    if (rank == 0 && *s == '\0')
        return 0;
    return tly_fail(TLY_EUSAGE, "region '%s' has more dimensions than the array's %d", s, rank);
}
