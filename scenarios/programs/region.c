/*
 * A scenario the matrix cannot express: read a small region out of a large chunked array. The
 * engine must fetch only the chunks the region touches and hold only small buffers, whatever the
 * array's size. Run by `tally run` as `tally-scenario-region --scenario CELL_JSON`; prints one
 * result object (the engine's schema) on stdout, plus chunks_read.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cell/result.h"
#include "harness.h"
#include "run/run.h"

int main(int argc, char **argv)
{
    struct tly_h_cell cell;
    if (tly_h_program_cell(argc, argv, "tally-scenario-region", &cell) != 0)
        return TLY_EXIT_ERROR;
    /* 100 MB of float32 in 100 chunks of 1 MB; the region straddles four of them. */
    uint64_t shape[2] = {10000, 2500}, chunks[2] = {1000, 250};
    struct tly_region all, region = {2, {900, 200}, {1100, 300}};
    tly_region_all(&all, 2, shape);
    struct tly_dtype f4;
    struct tly_meta m;
    tly_dtype_from_numpy("<f4", &f4);
    int err = tly_h_build_meta("v2", &f4, 2, shape, chunks, "zstd:level=1", NULL, &m);
    char dir[] = "/tmp/tally-region-XXXXXX", url[64];
    if (!err && mkdtemp(dir) == NULL)
        err = -1;
    snprintf(url, sizeof url, "%s/a", dir);
    float *data = NULL, *out = NULL;
    struct tly_array *a = NULL;
    TLY_STAGE(TLY_CALLER)
    {
        data = err ? NULL : malloc(10000 * 2500 * sizeof *data);
        for (size_t i = 0; data && i < 10000 * 2500; i++)
            data[i] = (float)i;
    }
    if (!err && data)
        err = tly_array_create(url, &m, false, NULL, &a);
    if (!err && data)
        err = tly_array_write(a, data, &all, NULL);
    tly_array_close(a);
    free(data);
    a = NULL;
    struct tly_h_result r = {.op = "read", .meta = &m, .store = "local", .array_bytes = tly_region_count(&region) * 4};
    if (!err) {
        tly_h_window_open(&r.win);
        TLY_STAGE(TLY_CALLER)
        {
            out = malloc(r.array_bytes);
        }
        err = tly_array_open(url, NULL, &a);
        if (!err)
            err = tly_array_read(a, out, &region, &r.io);
        tly_h_window_close(&r.win);
        r.output_bytes = r.array_bytes;
    }
    bool ok = !err;
    for (uint64_t y = 0; ok && y < 200; y++)
        for (uint64_t x = 0; x < 100; x++)
            ok &= out[y * 100 + x] == (float)((900 + y) * 2500 + 200 + x);
    if (a)
        tly_store_clear(tly_array_store(a));
    tly_array_close(a);
    rmdir(url);
    rmdir(dir);
    if (err) {
        fprintf(stderr, "tally-scenario-region: %s\n", tly_errmsg());
        return TLY_EXIT_ERROR;
    }
    json_t *o = tly_h_result_json(&r, false);
    json_object_set_new(o, "scenario", json_string(cell.scenario));
    json_object_set_new(o, "layout", json_string("region"));
    json_object_set_new(o, "chunks_read", json_integer((json_int_t)r.io.chunks));
    json_object_set_new(o, "verified", json_boolean(ok));
    tly_h_cell_release(&cell);
    free(out);
    return tly_h_program_result("tally-scenario-region", o);
}
