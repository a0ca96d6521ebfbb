/*
 * libFuzzer: a blosc chunk decoded whole (tly_codec_decode), into the size its header says (when
 * small) and into a size of the input's choosing, on one and on two threads. Seeds:
 * tests/fuzz/corpus/blosc (numcodecs-written chunks).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tally/codec.h"

#define MAX_OUT ((size_t)4 << 20)

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t n)
{
    if (n < 2)
        return 0;
    size_t want = (size_t)data[0] << 8 | data[1]; /* a size of the input's choosing */
    int threads = 1 + (data[0] & 1);
    data += 2;
    n -= 2;
    struct tly_codec c;
    tly_codec_defaults(&c, TLY_CODEC_BLOSC);
    c.threads = threads;
    unsigned char *src = malloc(n ? n : 1);
    memcpy(src, data, n);
    uint64_t size = 0;
    if (tly_codec_decoded_size(&c, src, n, &size) == 0 && size <= MAX_OUT) {
        unsigned char *dst = malloc(size ? size : 1);
        tly_codec_decode(&c, dst, (size_t)size, src, n);
        free(dst);
    }
    unsigned char *dst = malloc(want ? want : 1);
    tly_codec_decode(&c, dst, want, src, n);
    free(dst);
    free(src);
    return 0;
}
