/*
 * libFuzzer: a scenario matrix with its budgets, loaded and validated by the harness's own loader
 * (tly_h_matrix_load: axes, programs, implementations, budget rules), each cell parsed again
 * (tly_h_cell_parse) and its budgets checked against a result. Seeds: tests/fuzz/corpus/matrix
 * (scenarios/matrix.json, tests/gate/small.json and variations).
 */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cell/cell.h"
#include "run/matrix.h"

static int fd = -1;

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t n)
{
    /* the loader reads a file: the input as one in memory */
    if (fd < 0 && (fd = memfd_create("matrix.json", 0)) < 0)
        return 0;
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, n, 0) != (ssize_t)n)
        return 0;
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    struct tly_h_matrix m;
    if (tly_h_matrix_load(path, &m) != 0)
        return 0;
    json_t *empty = json_object();
    json_t *result = json_pack("{s:f, s:f, s:i, s:{s:{s:f, s:i}}}", "peak_extra_ratio", 0.5, "extra_copies", 1.0,
                               "peak_bytes", 1000, "stages", "encode", "copies", 1.0, "allocs", 3);
    size_t i;
    json_t *cell;
    json_array_foreach(m.cells, i, cell)
    {
        struct tly_h_cell c;
        if (tly_h_cell_parse(cell, "fuzz", &c) == 0) {
            bool ok;
            json_decref(tly_h_check_budgets(c.budgets ? c.budgets : empty, result, &ok));
            tly_h_cell_release(&c);
        }
        json_decref(tly_h_matrix_cell_for(&m, cell, "zarr-python", 1));
        if (i >= 16) /* a matrix expands to many alike cells: the first ones are enough */
            break;
    }
    json_decref(result);
    json_decref(empty);
    tly_h_matrix_free(&m);
    return 0;
}
