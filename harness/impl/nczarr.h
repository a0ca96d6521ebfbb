/* The NCZarr adapter's cell, data file and working files (nczarr_cell.c), shared with nczarr.c. */
#ifndef TLY_IMPL_NCZARR_H
#define TLY_IMPL_NCZARR_H

#include <jansson.h>
#include <netcdf.h>
#include <stdbool.h>
#include <stddef.h>

#define IMPL "nczarr"
#define VAR "array"
#define MAXDIM 32
/* The codecs the adapter configures (others of tally's registry are skipped). */
#define NCZARR_CODECS                                                                                                  \
    {                                                                                                                  \
        "none", "blosc", "zstd", NULL                                                                                  \
    }

/* The cell file, checked (docs/impl-protocol.md). */
struct cell {
    json_t *root;
    const char *scenario, *op, *store, *format, *codec, *dtype, *data_path, *url;
    int ndim;
    size_t shape[MAXDIM], chunks[MAXDIM];
    const char *cname;
    int clevel, shuffle, blocksize, level, checksum;
    bool verify;
    nc_type type;
    size_t elsize;
};

/** The reason of the last failure (what failed, named). */
extern char nczarr_reason[4096];

/** Set the reason; returns -1. */
int nczarr_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** Load and check the cell file @p file into @p c; -1 with the reason set. */
int nczarr_load_cell(const char *file, struct cell *c);

/** Remove @p path and all under it; 0 or -1 with the reason set. */
int nczarr_remove_tree(const char *path);

/** The dataset URL of directory @p dir (file://DIR#mode=nczarr,zarr,file), malloc'd. */
char *nczarr_dataset_url(const char *dir);

/** The cell's data file (.npy) loaded: @p nbytes of malloc'd data, or NULL with the reason set. */
void *nczarr_load_npy(const struct cell *c, size_t nbytes);

#endif
