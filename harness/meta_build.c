/* Array metadata from command-line or scenario settings. */
#include <string.h>

#include "tally/error.h"
#include "harness.h"

int tly_h_build_meta(const char *format, const struct tly_dtype *dt, int rank, const uint64_t *shape,
                     const uint64_t *chunks, const char *codec, const char *separator, struct tly_meta *m)
{
    memset(m, 0, sizeof *m);
    m->zarr_format = 2;
    if (format && strcmp(format, "v3") == 0)
        m->zarr_format = 3;
    else if (format && strcmp(format, "v2") != 0)
        return tly_fail(TLY_EUSAGE, "format '%s': want v2 or v3", format);
    m->dtype = *dt;
    m->rank = rank;
    for (int d = 0; d < rank; d++) {
        m->shape[d] = shape[d];
        m->chunks[d] = chunks ? chunks[d] : (shape[d] ? shape[d] : 1);
    }
    int err = tly_codec_parse(codec ? codec : "none", &m->codec);
    if (err)
        return err;
    m->codec.blosc.typesize = m->dtype.size;
    m->has_fill = true; /* zeros, as zarr-python's default fill_value 0 */
    m->separator = m->zarr_format == 3 ? '/' : '.';
    m->v3_default_keys = true;
    if (separator) {
        if (strcmp(separator, ".") != 0 && strcmp(separator, "/") != 0)
            return tly_fail(TLY_EUSAGE, "separator '%s': want . or /", separator);
        m->separator = separator[0];
    }
    return 0;
}
