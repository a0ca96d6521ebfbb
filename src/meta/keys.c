/* Store keys: the metadata document's and each chunk's. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "meta/internal.h"

void tly_meta_free(struct tly_meta *m)
{
    if (m == NULL)
        return;
    /* Freed in stage meta, where it was allocated, so the stage's books balance. */
    TLY_STAGE(TLY_META)
    {
        free(m->attributes_json);
    }
    m->attributes_json = NULL;
}

const char *tly_meta_key(int zarr_format)
{
    return zarr_format == 2 ? TLY__V2 : zarr_format == 3 ? TLY__V3 : NULL;
}

int tly_meta_chunk_key(const struct tly_meta *m, const uint64_t *idx, char *buf, size_t cap)
{
    /* v3's default encoding puts "c" in front; v2 (and v3's "v2" encoding) calls a rank-0 chunk "0". */
    bool prefixed = m->zarr_format == 3 && m->v3_default_keys;
    size_t len = 0;
    int k = snprintf(buf, cap, "%s", prefixed ? "c" : m->rank == 0 ? "0" : "");
    for (int d = 0; k >= 0 && (size_t)k < cap - len && d < m->rank; d++) {
        len += (size_t)k;
        k = snprintf(buf + len, cap - len, "%.*s%" PRIu64, len > 0, &m->separator, idx[d]);
    }
    if (k < 0 || (size_t)k >= cap - len)
        return -1;
    return (int)(len + (size_t)k);
}
