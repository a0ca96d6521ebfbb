/* .npy files for the command line. */
#ifndef TLY_CALLER_NPY_H
#define TLY_CALLER_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "tally/plan.h"

struct tly_npy {
    struct tly_dtype dtype;
    int rank;
    uint64_t shape[TLY_MAX_RANK];
    const void *data; /**< the array (inside the mapping, for a mapped file) */
    void *map;        /**< the mapping, or NULL */
    size_t map_bytes;
};

/** Bytes of the array's data (UINT64_MAX when that does not fit: tly_npy_parse() refuses such a shape). */
uint64_t tly_npy_bytes(const struct tly_npy *npy);

/**
 * Read the .npy file held in @p size bytes at @p buf (named @p path in messages): its header parsed
 * strictly (tly_npy_map), its data pointing into @p buf. Returns 0, TLY_EFORMAT or TLY_EUNSUPPORTED.
 */
int tly_npy_parse(const char *path, const void *buf, size_t size, struct tly_npy *out);

/** Map the .npy file at @p path read-only; its data is not copied. Fortran order is refused. */
int tly_npy_map(const char *path, struct tly_npy *out);

void tly_npy_unmap(struct tly_npy *npy);

/** Write a .npy of @p npy's dtype and shape with @p data, atomically (temporary file, rename). */
int tly_npy_write(const char *path, const struct tly_npy *npy, const void *data);

#endif
