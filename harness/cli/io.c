/* tally put / get / info: move .npy arrays into and out of Zarr arrays, measured. */
#include <errno.h>
#include <getopt.h>
#include <jemalloc/jemalloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cell/result.h"
#include "cli/cli.h"
#include "cli/npy.h"
#include "tally/tally.h"

struct io_args {
    const char *chunks, *codec, *format, *region, *separator, *shards, *index_location;
    bool overwrite, force, fsync, profile, json, crc32c;
    struct tly_io_opts opts;
};

static const struct option io_options[] = {
    {"chunks", required_argument, NULL, 'c'},
    {"codec", required_argument, NULL, 'C'},
    {"format", required_argument, NULL, 'f'},
    {"region", required_argument, NULL, 'r'},
    {"separator", required_argument, NULL, 's'},
    {"threads", required_argument, NULL, 't'},
    {"io-concurrency", required_argument, NULL, 'i'},
    {"memory-limit", required_argument, NULL, 'm'},
    {"part-size", required_argument, NULL, 'P'},
    {"overwrite", no_argument, NULL, 'o'},
    {"force", no_argument, NULL, 'x'},
    {"fsync", no_argument, NULL, 'F'},
    {"profile", no_argument, NULL, 'p'},
    {"json", no_argument, NULL, 'j'},
    {"shards", required_argument, NULL, 'S'},
    {"index-location", required_argument, NULL, 'L'},
    {"crc32c", no_argument, NULL, 'K'},
    {NULL, 0, NULL, 0},
};

/* Options anywhere (GNU getopt moves the positionals to the end); returns the first positional or -1. */
static int parse_io_args(const char *cmd, int argc, char **argv, struct io_args *a)
{
    memset(a, 0, sizeof *a);
    int ch;
    while ((ch = tly_h_getopt(argc, argv, io_options)) != -1) {
        switch (ch) {
        case 'c':
            a->chunks = optarg;
            break;
        case 'C':
            a->codec = optarg;
            break;
        case 'f':
            a->format = optarg;
            break;
        case 'r':
            a->region = optarg;
            break;
        case 's':
            a->separator = optarg;
            break;
        case 't':
        case 'i': {
            uint64_t v;
            if (tly_h_arg_opt(cmd, ch == 't' ? TLY_OPT_THREADS : TLY_OPT_IO_CONCURRENCY, optarg, &v) != 0)
                return -1;
            *(ch == 't' ? &a->opts.threads : &a->opts.io_concurrency) = (int)v;
            break;
        }
        case 'm':
            if (tly_h_arg_opt(cmd, TLY_OPT_MEMORY_LIMIT, optarg, &a->opts.memory_limit) != 0)
                return -1;
            break;
        case 'P': {
            uint64_t v;
            if (tly_h_arg_opt(cmd, TLY_OPT_PART_SIZE, optarg, &v) != 0)
                return -1;
            a->opts.part_size = (size_t)v;
            break;
        }
        case 'o':
            a->overwrite = true;
            break;
        case 'x':
            a->force = true;
            break;
        case 'F':
            a->fsync = true;
            break;
        case 'p':
            a->profile = true;
            break;
        case 'j':
            a->json = true;
            break;
        case 'S':
            a->shards = optarg;
            break;
        case 'L':
            a->index_location = optarg;
            break;
        case 'K':
            a->crc32c = true;
            break;
        default:
            return -1;
        }
    }
    return optind;
}

/*
 * --chunks: @p rank positive integers, digits only (strtoull would take "-1" as 2^64 - 1), each at
 * most the array's extent in that dimension (a chunk is stored whole: a larger one is padding only,
 * and 2^32 x 2^32 of it filled a disk).
 */
static int parse_dims(const char *opt, const char *s, int rank, const uint64_t *shape, uint64_t *out)
{
    const char *p = s;
    if (rank == 0 && *s != '\0')
        return tly_fail(TLY_EUSAGE, "--%s '%s': the array has no dimensions", opt, s);
    for (int d = 0; d < rank; d++) {
        size_t len = strcspn(p, ",");
        char piece[24];
        long long v;
        if (len == 0 || len >= sizeof piece || strspn(p, "0123456789") != len || (d + 1 < rank) != (p[len] == ','))
            return tly_fail(TLY_EUSAGE, "--%s '%s': want %d positive integers separated by commas", opt, s, rank);
        snprintf(piece, sizeof piece, "%.*s", (int)len, p);
        uint64_t most = shape[d] > 1 ? shape[d] : 1;
        if (tly_int_parse(piece, 1, (long long)(most < INT64_MAX ? most : INT64_MAX), &v) != 0)
            return tly_fail(TLY_EUSAGE, "--%s '%s': dimension %d: %s is not in 1..%llu (the array's extent)", opt, s, d,
                            piece, (unsigned long long)most);
        out[d] = (uint64_t)v;
        p += len + 1;
    }
    return 0;
}

static int build_meta(const struct io_args *a, const struct tly_npy *npy, struct tly_meta *m)
{
    uint64_t chunks[TLY_MAX_RANK], shards[TLY_MAX_RANK];
    int err = a->chunks ? parse_dims("chunks", a->chunks, npy->rank, npy->shape, chunks) : 0;
    if (!err && a->shards)
        err = parse_dims("shards", a->shards, npy->rank, npy->shape, shards);
    if (!err && !a->shards && (a->index_location || a->crc32c))
        err = tly_fail(TLY_EUSAGE, "--%s: only with --shards", a->crc32c ? "crc32c" : "index-location");
    if (!err && a->index_location && strcmp(a->index_location, "start") != 0 && strcmp(a->index_location, "end") != 0)
        err = tly_fail(TLY_EUSAGE, "--index-location '%s': want start or end", a->index_location);
    /* sharded: --shards is the grid's chunk shape, --chunks the inner chunks' (default: the shard) */
    if (!err)
        err = tly_h_build_meta(a->format, &npy->dtype, npy->rank, npy->shape,
                               a->shards   ? shards
                               : a->chunks ? chunks
                                           : NULL,
                               a->codec, a->separator, m);
    if (err && a->format && strstr(tly_errmsg(), "format '"))
        tly_err_prefix("--format");
    if (!err && a->shards)
        err = tly_h_meta_shard(m, a->chunks ? chunks : shards,
                               a->index_location && strcmp(a->index_location, "start") == 0, a->crc32c);
    return err;
}

static void report(const struct io_args *a, const struct tly_h_result *r)
{
    TLY_STAGE(TLY_CALLER)
    {
        if (a->json) {
            json_t *o = tly_h_result_json(r, false);
            json_dumpf(o, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
            fputc('\n', stdout);
            json_decref(o);
        }
        if (a->profile)
            tly_h_result_print(a->json ? stderr : stdout, r);
    }
}

int tly_h_cmd_put(int argc, char **argv)
{
    struct io_args a;
    int first = parse_io_args("put", argc, argv, &a);
    if (first < 0 || argc - first != 2)
        return tly_h_usage_error("put");
    struct tly_npy npy;
    struct tly_meta m;
    int err;
    TLY_STAGE(TLY_CALLER)
    {
        err = tly_npy_map(argv[first], &npy);
    }
    if (err)
        return tly_h_fail_cmd("put", err);
    err = build_meta(&a, &npy, &m);
    if (err) {
        tly_npy_unmap(&npy);
        return tly_h_fail_cmd("put", err);
    }
    struct tly_io_opts opts = a.opts;
    opts.fsync = a.fsync;
    struct tly_h_result r = {.op = "write", .meta = &m, .array_bytes = tly_npy_bytes(&npy)};
    struct tly_array *arr = NULL;
    struct tly_region reg;
    tly_region_all(&reg, npy.rank, npy.shape);
    tly_h_window_open(&r.win);
    err = tly_array_create(argv[first + 1], &m, a.overwrite, &opts, &arr);
    if (!err)
        err = tly_array_write(arr, npy.data, &reg, &r.io);
    if (!err)
        err = tly_array_commit(arr); /* the metadata last, then the array published */
    tly_h_window_close(&r.win);
    if (!err) {
        r.store = tly_store_kind(tly_array_store(arr));
        r.meta = tly_array_meta(arr);
        report(&a, &r);
    }
    tly_array_close(arr);
    tly_npy_unmap(&npy);
    return err ? tly_h_fail_cmd("put", err) : TLY_EXIT_OK;
}

int tly_h_cmd_get(int argc, char **argv)
{
    struct io_args a;
    int first = parse_io_args("get", argc, argv, &a);
    if (first < 0 || argc - first != 2)
        return tly_h_usage_error("get");
    if (!a.force && access(argv[first + 1], F_OK) == 0) {
        fprintf(stderr, "tally get: %s exists: --force replaces it\n", argv[first + 1]);
        return TLY_EXIT_ERROR;
    }
    struct tly_io_opts opts = a.opts;
    struct tly_array *arr;
    int err = tly_array_open(argv[first], &opts, &arr);
    if (err)
        return tly_h_fail_cmd("get", err);
    const struct tly_meta *m = tly_array_meta(arr);
    struct tly_npy npy = {.dtype = m->dtype, .rank = m->rank};
    struct tly_region reg;
    err = a.region ? tly_region_parse(a.region, m->rank, m->shape, &reg) : 0;
    if (!a.region)
        tly_region_all(&reg, m->rank, m->shape);
    for (int d = 0; d < m->rank; d++)
        npy.shape[d] = reg.stop[d] - reg.start[d];
    struct tly_h_result r = {
        .op = "read", .meta = m, .store = tly_store_kind(tly_array_store(arr)), .array_bytes = tly_npy_bytes(&npy)};
    void *out = NULL;
    if (!err) {
        tly_h_window_open(&r.win);
        TLY_STAGE(TLY_CALLER)
        {
            out = tly_h_alloc_output(r.array_bytes ? r.array_bytes : 1);
        }
        err = out ? tly_array_read(arr, out, &reg, &r.io) : tly_fail(-ENOMEM, "out of memory for the output");
        tly_h_window_close(&r.win);
        r.output_bytes = out ? malloc_usable_size(out) : 0;
    }
    if (!err) {
        report(&a, &r);
        TLY_STAGE(TLY_CALLER)
        {
            err = tly_npy_write(argv[first + 1], &npy, out);
        }
    }
    free(out);
    tly_array_close(arr);
    return err ? tly_h_fail_cmd("get", err) : TLY_EXIT_OK;
}

static json_t *info_json(struct tly_array *arr)
{
    const struct tly_meta *m = tly_array_meta(arr);
    char descr[8];
    json_t *shape = json_array(), *chunks = json_array();
    uint64_t grid[TLY_MAX_RANK], nchunks = 0, bytes = 0;
    for (int d = 0; d < m->rank; d++) {
        json_array_append_new(shape, json_integer((json_int_t)m->shape[d]));
        json_array_append_new(chunks, json_integer((json_int_t)m->chunks[d]));
        grid[d] = tly_div_ceil_u64(m->shape[d], m->chunks[d]);
    }
    /* Both fit: the array was opened, which checks its grid (tly_grid_check). */
    tly_product_u64(1, grid, m->rank, TLY_MAX_ARRAY_BYTES, &nchunks);
    tly_product_u64(m->dtype.size, m->shape, m->rank, TLY_MAX_ARRAY_BYTES, &bytes);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:I, s:I, s:s, s:o}", "url",
                          tly_store_url(tly_array_store(arr)), "store", tly_store_kind(tly_array_store(arr)), "format",
                          m->zarr_format == 3 ? "v3" : "v2", "dtype", tly_dtype_numpy(&m->dtype, descr), "shape", shape,
                          "chunks", chunks, "nchunks", (json_int_t)nchunks, "array_bytes", (json_int_t)bytes, "codec",
                          tly_codec_name(m->codec.id), "codec_config", tly_h_codec_json(&m->codec));
    char sep[2] = {m->separator, 0};
    json_object_set_new(o, "separator", json_string(sep));
    if (m->shard.on) {
        json_t *inner = json_array();
        uint64_t per = 1;
        for (int d = 0; d < m->rank; d++) {
            json_array_append_new(inner, json_integer((json_int_t)m->shard.inner[d]));
            per *= m->chunks[d] / m->shard.inner[d];
        }
        json_object_set_new(o, "sharded", json_true());
        json_object_set_new(o, "inner_chunks", inner);
        json_object_set_new(o, "inner_per_shard", json_integer((json_int_t)per));
        json_object_set_new(o, "index_location", json_string(m->shard.index_start ? "start" : "end"));
        json_object_set_new(o, "index_checksum", json_boolean(m->shard.index_crc));
        json_object_set_new(o, "inner_crc32c", json_boolean(m->crc32c));
    }
    const char *attrs = m->zarr_format == 3 ? m->attributes_json : tly_array_zattrs(arr);
    json_t *aj = attrs ? json_loads(attrs, 0, NULL) : NULL;
    json_object_set_new(o, "attributes", aj ? aj : json_object());
    return o;
}

int tly_h_cmd_info(int argc, char **argv)
{
    struct io_args a;
    int first = parse_io_args("info", argc, argv, &a);
    if (first < 0 || argc - first != 1)
        return tly_h_usage_error("info");
    struct tly_array *arr;
    int err = tly_array_open(argv[first], NULL, &arr);
    if (err)
        return tly_h_fail_cmd("info", err);
    json_t *o = info_json(arr);
    if (a.json) {
        json_dumpf(o, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
    } else {
        const char *k;
        json_t *v;
        json_object_foreach(o, k, v)
        {
            char *s = json_is_string(v) ? NULL : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            printf("%-13s %s\n", k, s ? s : json_string_value(v));
            free(s);
        }
    }
    json_decref(o);
    tly_array_close(arr);
    return TLY_EXIT_OK;
}
