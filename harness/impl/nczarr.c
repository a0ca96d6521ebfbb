/* tally's adapter for NCZarr: netCDF-C 4.9 (Debian 12's libnetcdf19) writing and reading pure Zarr v2.
 *
 *   tally-impl-nczarr --probe | --cell CELL.json        (docs/impl-protocol.md)
 *
 * Built by CMake beside tally when pkg-config finds netcdf. The dataset is the URL
 * file://URL#mode=nczarr,zarr,file (pure Zarr v2: no _NCZARR_* keys; netCDF-C 4.9.0 needs the
 * storage kind "file" named: without it nc_create loops and does not return): a Zarr group at the cell's url,
 * the array at url/array, with dimensions dim0.. (_ARRAY_DIMENSIONS). Write: nc_create, nc_def_dim,
 * nc_def_var, nc_def_var_chunking (the cell's chunks), nc_def_var_blosc / nc_def_var_zstandard,
 * nc_enddef, nc_put_var, nc_close. Read: nc_open, nc_inq_var, nc_get_var into a new buffer, nc_close.
 *
 * Codecs: NCZarr uses a filter only when a plugin with NCZarr's codec API is found
 * (nc_inq_filter_avail); Debian's build ships none ("Plugin Install Prefix: N.A.", "ZSTD Support: no"
 * in libnetcdf.settings) and Debian's HDF5 blosc plugin (hdf5-filter-plugin-blosc-serial) has only
 * the HDF5 API, so blosc and zstd cells are skipped saying so, unless HDF5_PLUGIN_PATH holds NCZarr
 * codec plugins. v3 is skipped (netCDF-C 4.9.0's NCZarr is Zarr v2), and S3 when the build has no
 * NCZarr S3 (nc_open of a #mode=...,s3 URL answers NC_ENOTBUILT).
 *
 * Marks: tly_mark_begin/tly_mark_end of the preload, weak: absent, the adapter runs unmarked.
 */
#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <netcdf.h>
#include <netcdf_filter.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "nczarr.h"

extern void tly_mark_begin(const char *op, unsigned long long array_bytes) __attribute__((weak));
extern void tly_mark_end(unsigned long long output_bytes) __attribute__((weak));

/* The dtypes the adapter writes: numpy's descr, netCDF's type, bytes. */
static const struct {
    const char *descr;
    nc_type type;
    size_t size;
} types[] = {
    {"<f4", NC_FLOAT, 4},  {"<f8", NC_DOUBLE, 8}, {"|i1", NC_BYTE, 1}, {"|u1", NC_UBYTE, 1}, {"<i2", NC_SHORT, 2},
    {"<u2", NC_USHORT, 2}, {"<i4", NC_INT, 4},    {"<u4", NC_UINT, 4}, {"<i8", NC_INT64, 8}, {"<u8", NC_UINT64, 8},
};

/* ------------------------------------------------------------------------------------ NCZarr */
#define NC(call, what)                                                                                                 \
    do {                                                                                                               \
        int rc_ = (call);                                                                                              \
        if (rc_ != NC_NOERR) {                                                                                         \
            nczarr_fail("%s: %s (%s)", what, nc_strerror(rc_), url);                                                   \
            goto out;                                                                                                  \
        }                                                                                                              \
    } while (0)

/* Is filter ID usable for NCZarr here? Asked of a scratch dataset in TMPDIR, removed at once. */
static int filter_avail(unsigned id, int *avail)
{
    const char *tmp = getenv("TMPDIR");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tally-nczarr-probe-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        return nczarr_fail("mkdtemp %s: %s", dir, strerror(errno));
    strncat(dir, "/d", sizeof dir - strlen(dir) - 1);
    char *url = nczarr_dataset_url(dir);
    int ncid = -1, ret = -1;
    if (!url) {
        nczarr_fail("out of memory");
        goto out;
    }
    NC(nc_create(url, NC_NETCDF4 | NC_CLOBBER, &ncid), "nc_create of a scratch dataset");
    int rc = nc_inq_filter_avail(ncid, id);
    *avail = rc == NC_NOERR;
    ret = 0;
out:
    if (ncid >= 0)
        nc_abort(ncid);
    free(url);
    dir[strlen(dir) - 2] = '\0';
    nczarr_remove_tree(dir);
    return ret;
}

static int s3_built(void)
{
    int ncid;
    int rc = nc_open("https://localhost.invalid/bucket/key#mode=nczarr,zarr,s3", NC_NOWRITE, &ncid);
    if (rc == NC_NOERR)
        nc_close(ncid);
    return rc != NC_ENOTBUILT;
}

static const char *version(void)
{
    static char v[64];
    snprintf(v, sizeof v, "%s", nc_inq_libvers());
    v[strcspn(v, " ")] = '\0';
    return v;
}

/* A reason to skip the cell, or NULL (the reason set and *err on an error). */
static const char *skip(struct cell *c, int *err)
{
    static char why[1024];
    *err = 0;
    if (strcmp(c->format, "v3") == 0)
        return "netCDF-C 4.9.0's NCZarr reads and writes Zarr v2 only";
    if (strcmp(c->store, "s3") == 0) {
        if (!s3_built())
            return "Debian 12's netCDF-C 4.9.0 is built without NCZarr S3 support (a #mode=nczarr,zarr,s3 URL "
                   "answers NC_ENOTBUILT: 'Attempt to use feature that was not turned on when netCDF was built'; its "
                   "nc-config has no --has-s3 to ask)";
        return "the adapter runs NCZarr's local cells only";
    }
    c->type = NC_NAT;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcmp(types[i].descr, c->dtype) == 0) {
            c->type = types[i].type;
            c->elsize = types[i].size;
        }
    if (c->type == NC_NAT) {
        snprintf(why, sizeof why, "the adapter handles little-endian numeric dtypes, not %s", c->dtype);
        return why;
    }
    static const char *const configured[] = NCZARR_CODECS;
    bool known = false;
    for (int i = 0; configured[i]; i++)
        known |= strcmp(c->codec, configured[i]) == 0;
    if (!known) {
        snprintf(why, sizeof why, "the nczarr adapter does not configure %s chunks", c->codec);
        return why;
    }
    if (strcmp(c->codec, "none") == 0)
        return NULL;
    bool blosc = strcmp(c->codec, "blosc") == 0;
    if (!blosc && c->checksum)
        return "NCZarr's zstandard filter has no checksum option";
    int avail = 0;
    if (filter_avail(blosc ? H5Z_FILTER_BLOSC : H5Z_FILTER_ZSTD, &avail) != 0) {
        *err = 1;
        return NULL;
    }
    if (avail)
        return NULL;
    const char *pp = getenv("HDF5_PLUGIN_PATH");
    snprintf(why, sizeof why,
             "netCDF-C %s has no %s filter for NCZarr: nc_inq_filter_avail(%u) answers NC_ENOFILTER "
             "(HDF5_PLUGIN_PATH %s%s; Debian ships no NCZarr codec plugins, its libnetcdf.settings says "
             "'Plugin Install Prefix: N.A.'%s)",
             version(), blosc ? "blosc" : "zstd", blosc ? H5Z_FILTER_BLOSC : H5Z_FILTER_ZSTD, pp ? "is " : "unset",
             pp ? pp : "", blosc ? "" : " and 'ZSTD Support: no'");
    return why;
}

static int write_array(const struct cell *c, const void *data)
{
    char *url = nczarr_dataset_url(c->url);
    int ncid = -1, varid, dimids[MAXDIM], ret = -1;
    if (!url)
        return nczarr_fail("out of memory");
    NC(nc_create(url, NC_NETCDF4 | NC_NOCLOBBER, &ncid), "nc_create");
    for (int d = 0; d < c->ndim; d++) {
        char name[16];
        snprintf(name, sizeof name, "dim%d", d);
        NC(nc_def_dim(ncid, name, c->shape[d], &dimids[d]), "nc_def_dim");
    }
    NC(nc_def_var(ncid, VAR, c->type, c->ndim, dimids, &varid), "nc_def_var");
    NC(nc_def_var_chunking(ncid, varid, NC_CHUNKED, c->chunks), "nc_def_var_chunking");
    if (strcmp(c->codec, "blosc") == 0) {
        static const char *const cnames[] = {"blosclz", "lz4", "lz4hc", "snappy", "zlib", "zstd"};
        unsigned sub = 0;
        for (unsigned i = 0; i < sizeof cnames / sizeof cnames[0]; i++)
            if (strcmp(cnames[i], c->cname) == 0)
                sub = i;
        NC(nc_def_var_blosc(ncid, varid, sub, (unsigned)c->clevel, (unsigned)c->blocksize, (unsigned)c->shuffle),
           "nc_def_var_blosc");
    } else if (strcmp(c->codec, "zstd") == 0) {
        NC(nc_def_var_zstandard(ncid, varid, c->level), "nc_def_var_zstandard");
    }
    NC(nc_enddef(ncid), "nc_enddef");
    NC(nc_put_var(ncid, varid, data), "nc_put_var");
    int rc = nc_close(ncid);
    ncid = -1;
    NC(rc, "nc_close");
    ret = 0;
out:
    if (ncid >= 0)
        nc_abort(ncid);
    free(url);
    return ret;
}

static void *read_array(const struct cell *c, size_t nbytes)
{
    char *url = nczarr_dataset_url(c->url);
    int ncid = -1, varid, ndims, dimids[NC_MAX_VAR_DIMS];
    nc_type type;
    void *out = NULL;
    if (!url) {
        nczarr_fail("out of memory");
        return NULL;
    }
    NC(nc_open(url, NC_NOWRITE, &ncid), "nc_open");
    NC(nc_inq_varid(ncid, VAR, &varid), "nc_inq_varid(\"" VAR "\")");
    NC(nc_inq_var(ncid, varid, NULL, &type, &ndims, dimids, NULL), "nc_inq_var");
    if (type != c->type || ndims != c->ndim) {
        nczarr_fail("%s: the variable is of type %d with %d dimensions, the cell says %s with %d", url, type, ndims,
                    c->dtype, c->ndim);
        goto out;
    }
    for (int d = 0; d < ndims; d++) {
        size_t len;
        NC(nc_inq_dimlen(ncid, dimids[d], &len), "nc_inq_dimlen");
        if (len != c->shape[d]) {
            nczarr_fail("%s: dimension %d is %zu long, the cell says %zu", url, d, len, c->shape[d]);
            goto out;
        }
    }
    if (posix_memalign(&out, 64, nbytes ? nbytes : 1) != 0) {
        out = NULL;
        nczarr_fail("out of memory for the output (%zu bytes)", nbytes);
        goto out;
    }
    NC(nc_get_var(ncid, varid, out), "nc_get_var");
    int rc = nc_close(ncid);
    ncid = -1;
    NC(rc, "nc_close");
    free(url);
    return out;
out:
    if (ncid >= 0)
        nc_close(ncid);
    free(out);
    free(url);
    return NULL;
}

/* ------------------------------------------------------------------------------------ the run */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int verify(const struct cell *c, const void *out, const void *data, size_t nbytes)
{
    if (memcmp(out, data, nbytes) == 0)
        return 0;
    size_t n = 0, count = nbytes / c->elsize;
    for (size_t i = 0; i < count; i++)
        n += memcmp((const char *)out + i * c->elsize, (const char *)data + i * c->elsize, c->elsize) != 0;
    return nczarr_fail("verify: %zu of %zu elements read back from %s differ from %s", n, count, c->url, c->data_path);
}

static int run_cell(const struct cell *c, json_t *extra, bool *verified)
{
    size_t nbytes = c->elsize;
    for (int d = 0; d < c->ndim; d++)
        nbytes *= c->shape[d];
    bool write = strcmp(c->op, "write") == 0;
    void *data = nczarr_load_npy(c, nbytes), *out = NULL;
    int ret = -1;
    if (!data)
        return -1;
    if (!write) {
        if (write_array(c, data) != 0) {
            char inner[sizeof nczarr_reason];
            snprintf(inner, sizeof inner, "%s", nczarr_reason);
            nczarr_fail("writing the read fixture to %s: %s", c->url, inner);
            goto out;
        }
        free(data);
        data = NULL;
    }
    if (tly_mark_begin)
        tly_mark_begin(c->op, (unsigned long long)nbytes);
    double t0 = now_s();
    int rc = 0;
    if (write)
        rc = write_array(c, data);
    else
        rc = (out = read_array(c, nbytes)) ? 0 : -1;
    double wall = now_s() - t0;
    if (tly_mark_end)
        tly_mark_end(write ? 0ULL : (unsigned long long)nbytes);
    json_object_set_new(extra, "window_wall_s", json_real((double)(long long)(wall * 1e6 + 0.5) / 1e6));
    json_object_set_new(extra, "marked", json_boolean(tly_mark_begin != NULL));
    json_object_set_new(extra, "array_path", json_sprintf("%s/%s", c->url, VAR));
    if (rc != 0)
        goto out;
    if (c->verify) {
        if (write && !(out = read_array(c, nbytes))) {
            char inner[sizeof nczarr_reason];
            snprintf(inner, sizeof inner, "%s", nczarr_reason);
            nczarr_fail("reading %s back to verify: %s", c->url, inner);
            goto out;
        }
        if (!write && !(data = nczarr_load_npy(c, nbytes)))
            goto out;
        if (verify(c, out, data, nbytes) != 0)
            goto out;
        *verified = true;
    }
    ret = 0;
out:
    free(data);
    free(out);
    return ret;
}

static int emit(json_t *line)
{
    const char *status = json_string_value(json_object_get(line, "status"));
    char *text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
    int failed = status && strcmp(status, "failed") == 0;
    if (text) {
        puts(text);
        free(text);
    }
    fflush(stdout);
    if (failed)
        fprintf(stderr, "%s: %s: failed: %s\n", IMPL,
                json_is_string(json_object_get(line, "scenario")) ? json_string_value(json_object_get(line, "scenario"))
                                                                  : "?",
                json_string_value(json_object_get(line, "reason")));
    json_decref(line);
    return failed ? 1 : 0;
}

static int probe(void)
{
    int blosc = 0, zstd = 0;
    json_t *line = json_object();
    json_object_set_new(line, "impl", json_string(IMPL));
    if (filter_avail(H5Z_FILTER_BLOSC, &blosc) != 0 || filter_avail(H5Z_FILTER_ZSTD, &zstd) != 0) {
        json_object_set_new(line, "available", json_false());
        json_object_set_new(line, "reason", json_string(nczarr_reason));
    } else {
        json_object_set_new(line, "available", json_true());
        json_object_set_new(line, "version", json_string(version()));
        json_object_set_new(line, "codecs", json_pack("{s:b,s:b,s:b}", "none", 1, "blosc", blosc, "zstd", zstd));
        json_object_set_new(line, "s3", json_boolean(s3_built()));
    }
    return emit(line);
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--probe") == 0)
        return probe();
    if (argc != 3 || strcmp(argv[1], "--cell") != 0) {
        fprintf(stderr, "usage: %s --probe | --cell FILE\n", argv[0]);
        return 2;
    }
    struct cell c;
    json_t *line = json_object(), *extra = json_object();
    bool verified = false, claimed = false;
    const char *status = "failed";
    json_object_set_new(line, "impl", json_string(IMPL));
    json_object_set_new(line, "impl_version", json_string(version()));
    if (nczarr_load_cell(argv[2], &c) != 0)
        goto done;
    json_object_set_new(line, "scenario", json_string(c.scenario));
    int err;
    const char *why = skip(&c, &err);
    if (err)
        goto done;
    if (why) {
        status = "skipped";
        snprintf(nczarr_reason, sizeof nczarr_reason, "%s", why);
        goto done;
    }
    struct stat st;
    if (stat(c.data_path, &st) != 0) {
        nczarr_fail("the data file %s does not exist", c.data_path);
        goto done;
    }
    if (lstat(c.url, &st) == 0) {
        nczarr_fail("%s already exists (the url must be a directory that does not exist yet)", c.url);
        goto done;
    }
    if (strpbrk(c.url, " #?%")) {
        nczarr_fail("%s: NCZarr takes the path inside a URL, and it holds a character that would need escaping", c.url);
        goto done;
    }
    claimed = true;
    if (run_cell(&c, extra, &verified) == 0)
        status = "ok";
done:
    if (claimed) {
        char before[sizeof nczarr_reason];
        snprintf(before, sizeof before, "%s", nczarr_reason);
        if (nczarr_remove_tree(c.url) != 0) {
            if (strcmp(status, "failed") == 0) {
                char cleanup[sizeof nczarr_reason];
                snprintf(cleanup, sizeof cleanup, "%s", nczarr_reason);
                snprintf(nczarr_reason, sizeof nczarr_reason, "%.2000s; %.2000s", before, cleanup);
            }
            status = "failed";
        }
    }
    json_object_set_new(line, "status", json_string(status));
    if (strcmp(status, "ok") != 0)
        json_object_set_new(line, "reason", json_string(nczarr_reason));
    json_object_set_new(line, "verified", json_boolean(verified));
    json_object_set_new(line, "extra", extra);
    json_decref(c.root);
    return emit(line);
}
