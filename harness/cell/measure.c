/* One cell's operation through the engine, inside a measurement window (used by run and bench). */
#include <errno.h>
#include <jemalloc/jemalloc.h>
#include <stdlib.h>

#include "cell/result.h"

static int write_array(const struct tly_h_cell *c, const char *url, const struct tly_meta *m, const void *data,
                       struct tly_io_stats *io)
{
    struct tly_array *a = NULL;
    struct tly_region all;
    tly_region_all(&all, c->rank, c->shape);
    int err = tly_array_create(url, m, true, &c->opts, &a);
    if (!err)
        err = tly_array_write(a, data, &all, io);
    tly_array_close(a);
    return err;
}

static int read_array(const struct tly_h_cell *c, const char *url, struct tly_h_result *r, void **out)
{
    struct tly_array *a = NULL;
    struct tly_region all;
    tly_region_all(&all, c->rank, c->shape);
    const struct tly_region *want = c->has_region ? &c->region : &all;
    tly_h_window_open(&r->win);
    TLY_STAGE(TLY_CALLER)
    {
        *out = tly_h_alloc_output(r->array_bytes);
    }
    int err = *out ? tly_array_open(url, &c->opts, &a) : tly_fail(-ENOMEM, "out of memory for the output");
    if (!err)
        err = tly_array_read(a, *out, want, &r->io);
    tly_array_close(a);
    tly_h_window_close(&r->win);
    r->output_bytes = *out ? malloc_usable_size(*out) : 0;
    return err;
}

int tly_h_measure_engine(const struct tly_h_cell *c, const char *url, void **data, struct tly_h_result *r, void **out)
{
    *out = NULL;
    r->array_bytes = tly_h_cell_bytes(c);
    tly_mem_timeline_grain(r->array_bytes); /* a sample per 1% of a small array's bytes */
    if (r->op[0] == 'w') {
        tly_h_window_open(&r->win);
        int err = write_array(c, url, r->meta, *data, &r->io);
        tly_h_window_close(&r->win);
        return err;
    }
    int err = write_array(c, url, r->meta, *data, NULL); /* the fixture, outside the window */
    r->array_bytes = tly_h_cell_op_bytes(c);             /* a region read's figures are the region's */
    TLY_STAGE(TLY_CALLER)
    {
        free(*data);
    }
    *data = NULL;
    return err ? err : read_array(c, url, r, out);
}
