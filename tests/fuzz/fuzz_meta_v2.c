/*
 * libFuzzer: Zarr v2 .zarray parsed (tly_meta_parse_v2); what parses is emitted and parsed again,
 * and must come back the same. Seeds: tests/fuzz/corpus/meta_v2 (scripts/fuzz meta_v2).
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "tally/meta.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t n)
{
    struct tly_meta m, back;
    if (tly_meta_parse_v2((const char *)data, n, &m) != 0)
        return 0;
    char *text = tly_meta_emit(&m);
    if (text != NULL) {
        int rc = tly_meta_parse_v2(text, strlen(text), &back);
        assert(rc == 0);
        assert(back.rank == m.rank && memcmp(back.shape, m.shape, sizeof m.shape) == 0);
        assert(memcmp(back.chunks, m.chunks, sizeof m.chunks) == 0 && back.dtype.size == m.dtype.size);
        assert(back.has_fill == m.has_fill && (!m.has_fill || memcmp(back.fill, m.fill, m.dtype.size) == 0));
        tly_meta_free(&back);
        free(text);
    }
    tly_meta_free(&m);
    return 0;
}
