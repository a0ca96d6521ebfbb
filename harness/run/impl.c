/* Other implementations' cells: probe, data files, the adapter under the preload, one result (see impl.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cell/preload.h"
#include "cell/resident.h"
#include "report/report.h"
#include "run/impl.h"

#define NPY_BLOCK ((size_t)1 << 20)

/* argv from the adapter's command and @p tail (NULL-terminated), in @p argv (16 slots). */
static void build_argv(json_t *command, char **tail, char **argv)
{
    size_t i, k = 0;
    json_t *w;
    json_array_foreach(command, i, w) if (k < 12) argv[k++] = (char *)json_string_value(w);
    for (; *tail && k < 15; tail++)
        argv[k++] = *tail;
    argv[k] = NULL;
}

/* The one JSON object line an adapter prints last; NULL when there is none. */
static json_t *result_line(const char *out)
{
    if (out == NULL)
        return NULL;
    size_t n = strlen(out);
    while (n > 0 && out[n - 1] == '\n')
        n--;
    size_t start = n;
    while (start > 0 && out[start - 1] != '\n')
        start--;
    json_t *j = json_loadb(out + start, n - start, 0, NULL);
    if (j && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

void tly_h_impl_probe(struct tly_h_impl *im)
{
    char *tail[] = {"--probe", NULL}, *argv[16];
    build_argv(im->command, tail, argv);
    struct tly_h_child ch;
    int rc = tly_h_spawn(argv[0], argv, NULL, 0, true, &ch);
    json_t *j = rc == 0 ? result_line(ch.out) : NULL;
    im->available = j && json_is_true(json_object_get(j, "available"));
    snprintf(im->version, sizeof im->version, "%s",
             json_string_value(json_object_get(j, "version")) ? json_string_value(json_object_get(j, "version")) : "");
    if (rc != 0)
        snprintf(im->reason, sizeof im->reason, "%s: %s", argv[0], strerror(-rc));
    else if (j == NULL)
        snprintf(im->reason, sizeof im->reason, "%s --probe printed no result line: %s", argv[0],
                 tly_h_last_line(ch.err && ch.err[0] ? ch.err : ch.out));
    else if (!im->available)
        snprintf(im->reason, sizeof im->reason, "%s",
                 json_string_value(json_object_get(j, "reason")) ? json_string_value(json_object_get(j, "reason"))
                                                                 : "unavailable");
    json_decref(j);
    tly_h_child_free(&ch);
}

int tly_h_scratch_open(struct tly_h_scratch *s)
{
    memset(s, 0, sizeof *s);
    const char *base = getenv("TMPDIR");
    int err = tly_h_pathf(s->dir, "%s/tally-impl-XXXXXX", base && *base ? base : "/tmp");
    if (err)
        return err;
    if (mkdtemp(s->dir) == NULL)
        return tly_fail_errno("%s", s->dir);
    s->data = json_object();
    return 0;
}

void tly_h_scratch_close(struct tly_h_scratch *s)
{
    const char *k;
    json_t *v;
    json_object_foreach(s->data, k, v) unlink(json_string_value(v));
    json_decref(s->data);
    s->data = NULL;
    if (s->dir[0])
        rmdir(s->dir);
}

/* A .npy of the cell's array: tally's data stream, written block by block. */
static int write_npy(const struct tly_h_cell *c, const char *path)
{
    char shape[512] = "", descr[8];
    size_t n = 0;
    for (int d = 0; d < c->rank && n < sizeof shape; d++)
        n += (size_t)snprintf(shape + n, sizeof shape - n, "%llu,%s", (unsigned long long)c->shape[d],
                              c->rank > 1 && d + 1 < c->rank ? " " : "");
    char header[1024];
    int h = snprintf(header, sizeof header, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }",
                     tly_dtype_numpy(&c->dtype, descr), shape);
    int total = (10 + h + 1 + 63) / 64 * 64; /* the header is padded so the data starts 64-aligned */
    memset(header + h, ' ', (size_t)(total - 10 - h - 1));
    header[total - 10 - 1] = '\n';
    unsigned char magic[10] = {
        0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)((total - 10) & 0xff), (unsigned char)((total - 10) >> 8)};
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return tly_fail_errno("%s", path);
    fwrite(magic, 1, sizeof magic, f);
    fwrite(header, 1, (size_t)(total - 10), f);
    char *block = malloc(NPY_BLOCK);
    uint64_t bytes = tly_h_cell_bytes(c);
    for (uint64_t off = 0; block && off < bytes; off += NPY_BLOCK) {
        size_t k = bytes - off < NPY_BLOCK ? (size_t)(bytes - off) : NPY_BLOCK;
        tly_h_gen(block, off, k, &c->dtype);
        fwrite(block, 1, k, f);
    }
    free(block);
    if (block == NULL || ferror(f) | (fclose(f) != 0)) {
        unlink(path);
        return tly_fail(-EIO, "cannot write the data file %s", path);
    }
    return 0;
}

/* The data file of the cell's array (made once per dtype and shape in a run). */
static int data_file(struct tly_h_scratch *s, const struct tly_h_cell *c, char *path)
{
    char key[600], descr[8];
    int n = snprintf(key, sizeof key, "%s", tly_dtype_numpy(&c->dtype, descr));
    for (int d = 0; d < c->rank; d++)
        n += snprintf(key + n, sizeof key - (size_t)n, " %llu", (unsigned long long)c->shape[d]);
    json_t *have = json_object_get(s->data, key);
    if (have)
        return tly_h_pathf(path, "%s", json_string_value(have));
    int err = tly_h_pathf(path, "%s/data-%zu.npy", s->dir, json_object_size(s->data));
    if (!err)
        err = write_npy(c, path);
    if (!err)
        json_object_set_new(s->data, key, json_string(path));
    return err;
}

/* The cell file the adapter reads (docs/impl-protocol.md). */
static int cell_file(struct tly_h_scratch *s, const struct tly_h_cell *c, const char *data, bool fixture, char *path)
{
    struct tly_codec codec;
    char url[TLY_H_PATH];
    int err = tly_codec_parse(c->codec_spec, &codec);
    codec.blosc.typesize = c->dtype.size;
    if (!err && strcmp(c->store, "s3") == 0)
        err = tly_h_pathf(url, "s3://%s/tally-run/%d-%s-%s", getenv("TALLY_S3_BUCKET"), (int)getpid(), c->impl,
                          c->scenario);
    else if (!err)
        err = tly_h_pathf(url, "%s/array-%d", s->dir, s->serial);
    if (!err)
        err = tly_h_pathf(path, "%s/cell-%d.json", s->dir, s->serial++);
    if (err)
        return err;
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:O, s:O, s:O, s:i, s:I, s:s, s:s, s:b}",
                          "scenario", c->scenario, "impl", c->impl, "op", c->op, "store", c->store, "format", c->format,
                          "layout", c->layout, "codec", c->codec, "codec_config", tly_h_codec_json(&codec), "dtype",
                          json_object_get(c->json, "dtype"), "shape", json_object_get(c->json, "shape"), "chunks",
                          json_object_get(c->json, "chunks"), "threads", c->opts.threads, "memory_limit",
                          (json_int_t)c->opts.memory_limit, "data_path", data, "url", url, "verify", c->verify);
    static const char *const optional[] = {"inner_chunks", "index_location", "region"};
    for (size_t i = 0; i < sizeof optional / sizeof optional[0]; i++)
        if (json_object_get(c->json, optional[i]))
            json_object_set(j, optional[i], json_object_get(c->json, optional[i]));
    /* the codec names every adapter checks "codec" against: the registry's list, never retyped */
    json_t *names = json_array();
    for (const char *const *n = tly_codec_names(); *n; n++)
        json_array_append_new(names, json_string(*n));
    json_object_set_new(j, "codecs", names);
    if (fixture)
        json_object_set_new(j, "fixture", json_string("written by tally's engine"));
    err = json_dump_file(j, path, JSON_COMPACT) == 0 ? 0 : tly_fail(-EIO, "cannot write %s", path);
    json_decref(j);
    return err;
}

/* A sharded read cell's array, written with tally's engine from the test data (outside any window)
 * for an adapter that reads shards but cannot write them; at the cell file's url. */
static int write_fixture(const struct tly_h_cell *c, const char *cellfile)
{
    json_t *j = json_load_file(cellfile, 0, NULL);
    const char *url = json_string_value(json_object_get(j, "url"));
    struct tly_meta m;
    struct tly_array *a = NULL;
    struct tly_region all;
    uint64_t bytes = tly_h_cell_bytes(c);
    void *data = NULL;
    int err = url ? tly_h_cell_meta(c, &m) : tly_fail(TLY_EFORMAT, "%s has no url", cellfile);
    if (!err && (data = malloc(bytes ? bytes : 1)) == NULL)
        err = tly_fail(-ENOMEM, "out of memory for the fixture");
    if (!err) {
        tly_h_gen_all(data, bytes, &c->dtype);
        tly_region_all(&all, c->rank, c->shape);
        err = tly_array_create(url, &m, true, &c->opts, &a);
    }
    if (!err)
        err = tly_array_write(a, data, &all, NULL);
    if (!err)
        err = tly_array_commit(a);
    tly_array_close(a);
    free(data);
    json_decref(j);
    if (err)
        tly_err_prefix("writing the sharded fixture");
    return err;
}

/* An S3 fixture an adapter that failed (or died) did not remove: what tly_store_clear finds there. A
 * local one lies in the scratch directory. */
static void drop_s3_fixture(const char *cellfile)
{
    json_t *j = json_load_file(cellfile, 0, NULL);
    const char *url = json_string_value(json_object_get(j, "url"));
    struct tly_store *st = NULL;
    if (url && tly_store_open(url, NULL, &st) == 0) {
        int err = tly_store_clear(st); /* TLY_EUSAGE: no array there, the adapter removed it */
        if (err && err != TLY_EUSAGE)
            fprintf(stderr, "tally run: the fixture at %s is left: %s\n", url, tly_errmsg());
    }
    tly_store_close(st);
    json_decref(j);
}

/* The adapter's line and the preload's figures, as one result. */
static json_t *merge(json_t *line, const char *result_file, const struct tly_h_impl *im,
                     const struct tly_h_resident *rs, char *reason)
{
    const char *status = json_string_value(json_object_get(line, "status"));
    if (status && strcmp(status, "skipped") == 0)
        return json_pack("{s:s, s:O}", "status", "skipped", "reason", json_object_get(line, "reason"));
    if (!status || strcmp(status, "ok") != 0) {
        snprintf(reason, TLY_H_REASON, "%s",
                 json_string_value(json_object_get(line, "reason")) ? json_string_value(json_object_get(line, "reason"))
                                                                    : "the adapter's line has no status");
        return NULL;
    }
    json_t *r = tly_h_preload_result(result_file, rs);
    if (r == NULL) {
        snprintf(reason, TLY_H_REASON, "%s", tly_errmsg());
        return NULL;
    }
    json_object_set_new(r, "status", json_string("ok"));
    /* the file is the adapter's process's to write: a result that is not one is refused, not reported */
    if (tly_h_result_validate(r, "the preload's result") != 0) {
        snprintf(reason, TLY_H_REASON, "%s", tly_errmsg());
        json_decref(r);
        return NULL;
    }
    json_object_set_new(r, "impl_version", json_string(im->version));
    json_object_set(r, "verified", json_object_get(line, "verified"));
    json_object_set(r, "extra", json_object_get(line, "extra"));
    /* the name reports show for the cell's stack where it is more than the impl's ("zarr-python + boto3
     * store": the adapter's own store's copies are in the figures) */
    const char *label = json_string_value(json_object_get(line, "label"));
    if (label && *label && strlen(label) < 128 && !tly_h_text_has_controls(label))
        json_object_set_new(r, "impl_label", json_string(label));
    if (!json_is_true(json_object_get(r, "marked")))
        json_object_set_new(r, "marked_note",
                            json_string("the adapter's marks did not reach the preload: the "
                                        "figures are the whole process's"));
    return r;
}

/* Before the harness writes a fixture the adapter may not read: `ADAPTER --skip CELL` prints the
 * skipped line it would print for --cell, or a line whose status is "run". The skipped line, or NULL. */
static json_t *adapter_skips(const struct tly_h_impl *im, const char *cellfile)
{
    char *tail[] = {"--skip", (char *)cellfile, NULL}, *argv[16];
    build_argv(im->command, tail, argv);
    struct tly_h_child ch;
    int rc = tly_h_spawn(argv[0], argv, NULL, 0, true, &ch);
    json_t *line = rc == 0 ? result_line(ch.out) : NULL, *res = NULL;
    const char *status = json_string_value(json_object_get(line, "status"));
    if (status && strcmp(status, "skipped") == 0)
        res = json_pack("{s:s, s:O}", "status", "skipped", "reason", json_object_get(line, "reason"));
    json_decref(line);
    tly_h_child_free(&ch);
    return res;
}

static json_t *run_adapter(const struct tly_h_impl *im, const char *cellfile, const char *result_file, char *reason)
{
    char *tail[] = {"--cell", (char *)cellfile, NULL}, *argv[16], ld[TLY_H_PRELOAD_VALUE];
    struct tly_h_env env[TLY_H_PRELOAD_NENV];
    if (tly_h_preload_env(env, ld, result_file, NULL) != 0) {
        snprintf(reason, TLY_H_REASON, "%s", tly_errmsg());
        return NULL;
    }
    build_argv(im->command, tail, argv);
    struct tly_h_child ch;
    struct tly_h_resident *rs = NULL;
    struct tly_h_spawn_watch watch = tly_h_resident_watch(&rs);
    tly_h_spawn_watch_next(&watch);
    int rc = tly_h_spawn(argv[0], argv, env, TLY_H_PRELOAD_NENV, true, &ch);
    json_t *line = rc == 0 ? result_line(ch.out) : NULL, *res = NULL;
    if (rc != 0)
        snprintf(reason, TLY_H_REASON, "%s: %s", argv[0], strerror(-rc));
    else if (ch.timed_out)
        snprintf(reason, TLY_H_REASON,
                 "timeout: the adapter ran past --cell-timeout and was killed, with what it "
                 "started: %s",
                 tly_h_last_line(ch.err));
    else if (WIFSIGNALED(ch.status))
        snprintf(reason, TLY_H_REASON, "the adapter died of signal %d: %s", WTERMSIG(ch.status),
                 tly_h_last_line(ch.err));
    else if (line == NULL)
        snprintf(reason, TLY_H_REASON, "the adapter printed no result line (exit %d): %s", WEXITSTATUS(ch.status),
                 tly_h_last_line(ch.err && ch.err[0] ? ch.err : ch.out));
    else
        res = merge(line, result_file, im, rs, reason);
    tly_h_resident_free(rs);
    json_decref(line);
    tly_h_child_free(&ch);
    return res;
}

json_t *tly_h_impl_run(const struct tly_h_impl *im, json_t *cell, struct tly_h_scratch *s, char *reason)
{
    if (!im->available)
        return json_pack("{s:s, s:s}", "status", "skipped", "reason", im->reason);
    struct tly_h_cell c;
    if (tly_h_cell_parse(cell, "the cell", &c) != 0) {
        snprintf(reason, TLY_H_REASON, "%s", tly_errmsg());
        return NULL;
    }
    if (c.rank == 0) {
        snprintf(reason, TLY_H_REASON, "a custom program's cell has no array for %s to run", im->name);
        tly_h_cell_release(&c);
        return NULL;
    }
    char data[TLY_H_PATH], cellfile[TLY_H_PATH] = "", result[TLY_H_PATH] = "";
    json_t *res = NULL;
    bool is_read = strcmp(c.op, "read") == 0;
    bool fixture = is_read && ((im->sharded_fixture && c.sharded) || (im->s3_fixture && strcmp(c.store, "s3") == 0));
    if (data_file(s, &c, data) || cell_file(s, &c, data, fixture, cellfile))
        snprintf(reason, TLY_H_REASON, "%s", tly_errmsg());
    else if (fixture && (res = adapter_skips(im, cellfile)) != NULL)
        ; /* no fixture written for a cell the adapter skips */
    else if ((fixture && write_fixture(&c, cellfile)) || tly_h_pathf(result, "%s/result-%d.json", s->dir, s->serial))
        snprintf(reason, TLY_H_REASON, "%s", tly_errmsg());
    else
        res = run_adapter(im, cellfile, result, reason);
    if (fixture && res == NULL && strcmp(c.store, "s3") == 0)
        drop_s3_fixture(cellfile);
    if (result[0])
        unlink(result);
    if (cellfile[0])
        unlink(cellfile);
    tly_h_cell_release(&c);
    return res;
}
