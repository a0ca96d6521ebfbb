/*
 * One cell of the matrix, run in this (child) process: make the data, open the window, write or
 * read through the engine, close the window, and describe what happened as a result object.
 *
 * The data is uniform random float32 in [0, 1) (memray-array's rng.random), from a seeded
 * generator, so a read can be verified against the same numbers without a second copy in memory.
 */
#include <errno.h>
#include <jemalloc/jemalloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tally/error.h"
#include "harness.h"
#include "result.h"
#include "scenario.h"
#include "tally/tally.h"

#define VERIFY_BLOCK ((size_t)1 << 20)

/* splitmix64 of the word's index: any block of the stream can be made again on its own. */
static uint64_t word(uint64_t i)
{
    uint64_t z = (i + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Bytes [off, off + n) of the data stream (off a multiple of 8). Floats in [0, 1) for float32. */
void tly_h_gen(void *dst, uint64_t off, size_t n, const struct tly_dtype *dt)
{
    unsigned char *out = dst;
    for (size_t i = 0; i < n; i += 8) {
        uint64_t r = word((off + i) / 8), w = r;
        if (dt->kind == 'f' && dt->size == 4) {
            float f[2] = {(float)(r >> 40) / 16777216.0f, (float)((r >> 8) & 0xFFFFFF) / 16777216.0f};
            memcpy(&w, f, 8); /* making data, not copying payload */
        }
        memcpy(out + i, &w, n - i < 8 ? n - i : 8); /* making data, not copying payload */
    }
}

void tly_h_gen_all(void *dst, uint64_t n, const struct tly_dtype *dt)
{
    for (uint64_t off = 0; off < n; off += VERIFY_BLOCK)
        tly_h_gen((char *)dst + off, off, n - off < VERIFY_BLOCK ? (size_t)(n - off) : VERIFY_BLOCK, dt);
}

static bool verify(const void *got, uint64_t n, const struct tly_dtype *dt)
{
    char block[4096];
    for (uint64_t off = 0; off < n; off += sizeof block) {
        size_t k = n - off < sizeof block ? (size_t)(n - off) : sizeof block;
        tly_h_gen(block, off, k, dt);
        if (memcmp(block, (const char *)got + off, k) != 0)
            return false;
    }
    return true;
}

struct cell {
    const char *scenario, *op, *store, *codec, *format;
    struct tly_dtype dtype;
    int rank;
    uint64_t shape[TLY_MAX_RANK], chunks[TLY_MAX_RANK];
    struct tly_io_opts opts;
    bool verify; /* check the data after the window (default); off where only the peak matters */
    char url[4200];
    char tmpdir[4096];
};

static int parse_cell(json_t *c, struct cell *x)
{
    memset(x, 0, sizeof *x);
    x->scenario = json_string_value(json_object_get(c, "scenario"));
    x->op = json_string_value(json_object_get(c, "op"));
    x->store = json_string_value(json_object_get(c, "store"));
    x->codec = json_string_value(json_object_get(c, "codec_spec"));
    x->format = json_string_value(json_object_get(c, "format"));
    json_t *shape = json_object_get(c, "shape"), *chunks = json_object_get(c, "chunks");
    if (!x->scenario || !x->op || !x->store || !x->codec || !x->format || !json_is_array(shape) ||
        json_array_size(shape) != json_array_size(chunks) || json_array_size(shape) > TLY_MAX_RANK)
        return tly_fail(TLY_EFORMAT, "cell: needs scenario, op, store, codec_spec, format, shape and chunks");
    int err = tly_dtype_from_numpy(json_string_value(json_object_get(c, "dtype")), &x->dtype);
    if (err)
        return err;
    x->rank = (int)json_array_size(shape);
    for (int d = 0; d < x->rank; d++) {
        x->shape[d] = (uint64_t)json_integer_value(json_array_get(shape, (size_t)d));
        x->chunks[d] = (uint64_t)json_integer_value(json_array_get(chunks, (size_t)d));
    }
    x->opts.threads = (int)json_integer_value(json_object_get(c, "threads"));
    x->opts.memory_limit = (uint64_t)json_integer_value(json_object_get(c, "memory_limit"));
    x->verify = !json_is_false(json_object_get(c, "verify"));
    return 0;
}

static int make_url(struct cell *x)
{
    if (strcmp(x->store, "s3") == 0) {
        const char *bucket = getenv("TALLY_S3_BUCKET");
        if (!bucket || !getenv("AWS_ENDPOINT_URL"))
            return tly_fail(TLY_EUSAGE, "S3 cells need AWS_ENDPOINT_URL and TALLY_S3_BUCKET");
        snprintf(x->url, sizeof x->url, "s3://%s/tally-run/%d-%s", bucket, (int)getpid(), x->scenario);
        return 0;
    }
    const char *base = getenv("TMPDIR");
    snprintf(x->tmpdir, sizeof x->tmpdir, "%s/tally-cell-XXXXXX", base && *base ? base : "/tmp");
    if (mkdtemp(x->tmpdir) == NULL)
        return tly_fail_errno("%s", x->tmpdir);
    snprintf(x->url, sizeof x->url, "%s/array", x->tmpdir);
    return 0;
}

static void cleanup(struct cell *x)
{
    struct tly_store *st;
    if (x->url[0] && tly_store_open(x->url, NULL, &st) == 0) {
        tly_store_clear(st);
        tly_store_close(st);
    }
    if (x->tmpdir[0]) {
        rmdir(x->url);
        rmdir(x->tmpdir);
    }
}

static int write_array(struct cell *x, const struct tly_meta *m, const void *data, struct tly_io_stats *io)
{
    struct tly_array *a;
    struct tly_region all;
    tly_region_all(&all, x->rank, x->shape);
    int err = tly_array_create(x->url, m, true, &x->opts, &a);
    if (!err)
        err = tly_array_write(a, data, &all, io);
    tly_array_close(a);
    return err;
}

/* After a write, outside the window: read the array back and compare with the data written. */
static bool read_back(struct cell *x, const void *data, uint64_t bytes)
{
    struct tly_array *a;
    struct tly_region all;
    tly_region_all(&all, x->rank, x->shape);
    void *back;
    TLY_STAGE(TLY_CALLER)
    {
        back = tly_h_alloc_output(bytes);
    }
    bool ok = back && tly_array_open(x->url, &x->opts, &a) == 0;
    if (ok) {
        ok = tly_array_read(a, back, &all, NULL) == 0 && memcmp(back, data, bytes) == 0;
        tly_array_close(a);
    }
    TLY_STAGE(TLY_CALLER)
    {
        free(back);
    }
    return ok;
}

/* The window's timeline, taken as it closes (what follows, such as verification, is not the op's). */
static struct tly_mem_sample timeline[TLY_TIMELINE_CAP + 2];
static size_t timeline_n;

static void window_close(struct tly_h_window *w)
{
    tly_h_window_close(w);
    timeline_n = tly_mem_timeline(timeline, TLY_TIMELINE_CAP + 2);
    if (timeline_n > TLY_TIMELINE_CAP + 2)
        timeline_n = TLY_TIMELINE_CAP + 2;
}

static json_t *timeline_json(void)
{
    const struct tly_mem_sample *s = timeline;
    size_t n = timeline_n;
    json_t *cols = json_pack("[s, s]", "t_s", "live"), *rows = json_array();
    for (int k = 0; k < TLY_NSTAGES; k++)
        json_array_append_new(cols, json_string(tly_stage_name((enum tly_stage)k)));
    size_t peak = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *row = json_pack("[f, I]", (double)s[i].t_ns / 1e9, (json_int_t)s[i].live_bytes);
        for (int k = 0; k < TLY_NSTAGES; k++)
            json_array_append_new(row, json_integer((json_int_t)s[i].stage_live[k]));
        json_array_append_new(rows, row);
        if (s[i].is_peak)
            peak = i;
    }
    return json_pack("{s:o, s:o, s:I}", "columns", cols, "samples", rows, "peak_index", (json_int_t)peak);
}

static json_t *describe(struct cell *x, json_t *c, struct tly_h_result *r, bool verified)
{
    json_t *o = tly_h_result_json(r);
    json_object_set(o, "scenario", json_object_get(c, "scenario"));
    json_object_set(o, "layout", json_object_get(c, "layout"));
    json_object_set_new(o, "threads", json_integer(x->opts.threads));
    json_object_set_new(o, "verified", json_boolean(verified));
    json_object_set_new(o, "pool",
                        json_pack("{s:I, s:I, s:I}", "peak_bytes", (json_int_t)r->io.pool_peak, "waits",
                                  (json_int_t)r->io.pool_waits, "forced", (json_int_t)r->io.pool_forced));
    json_object_set_new(o, "timeline", timeline_json());
    return o;
}

json_t *tly_h_cell_run(json_t *c)
{
    struct cell x;
    struct tly_meta m;
    int err = parse_cell(c, &x);
    if (!err)
        err = tly_h_build_meta(x.format, &x.dtype, x.rank, x.shape, x.chunks, x.codec, NULL, &m);
    if (!err)
        err = make_url(&x);
    if (err)
        return NULL;
    uint64_t bytes = x.dtype.size;
    for (int d = 0; d < x.rank; d++)
        bytes *= x.shape[d];
    struct tly_h_result r = {
        .op = strcmp(x.op, "read") == 0 ? "read" : "write", .meta = &m, .store = x.store, .array_bytes = bytes};
    void *data, *out = NULL;
    bool verified = false;
    TLY_STAGE(TLY_CALLER)
    {
        data = malloc(bytes);
        if (data)
            tly_h_gen_all(data, bytes, &x.dtype);
    }
    if (data == NULL) {
        tly_fail(-ENOMEM, "out of memory for %llu bytes of data", (unsigned long long)bytes);
        cleanup(&x);
        return NULL;
    }
    if (strcmp(x.op, "write") == 0) {
        tly_h_window_open(&r.win);
        err = write_array(&x, &m, data, &r.io);
        window_close(&r.win);
        verified = !err && (!x.verify || read_back(&x, data, bytes));
    } else {
        err = write_array(&x, &m, data, NULL); /* the fixture, outside the window */
        TLY_STAGE(TLY_CALLER)
        {
            free(data);
        }
        data = NULL;
        struct tly_array *a = NULL;
        struct tly_region all;
        tly_region_all(&all, x.rank, x.shape);
        if (!err) {
            tly_h_window_open(&r.win);
            TLY_STAGE(TLY_CALLER)
            {
                out = tly_h_alloc_output(bytes);
            }
            err = out ? tly_array_open(x.url, &x.opts, &a) : tly_fail(-ENOMEM, "out of memory for the output");
            if (!err)
                err = tly_array_read(a, out, &all, &r.io);
            tly_array_close(a);
            window_close(&r.win);
            r.output_bytes = out ? malloc_usable_size(out) : 0;
            verified = !err && (!x.verify || verify(out, bytes, &x.dtype));
        }
    }
    json_t *o = NULL;
    if (!err)
        TLY_STAGE(TLY_CALLER)
        {
            o = describe(&x, c, &r, verified);
        }
    free(data);
    free(out);
    cleanup(&x);
    return o;
}
