/* The tally command's internals shared between its files. */
#ifndef TLY_CALLER_H
#define TLY_CALLER_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "tally/mem.h"
#include "tally/meta.h"

/** Exit statuses of the tally command. */
enum { TLY_EXIT_OK = 0, TLY_EXIT_BUDGET = 1, TLY_EXIT_ERROR = 2 };

/**
 * Print the per-stage table of a window (the difference between @p before and @p after) and the
 * figures: allocs, alloc bytes, own peak, at-peak split, copy volume as a multiple of @p array_bytes.
 */
void tly_h_print_profile(FILE *f, const struct tly_mem_snapshot *before, const struct tly_mem_snapshot *after,
                         uint64_t array_bytes);

/** Human-readable bytes ("95.4 MiB") into @p buf. */
const char *tly_h_bytes(char *buf, size_t cap, double bytes);

/** Metadata for a new array (chunks NULL: one chunk; fill 0; default separators). */
int tly_h_build_meta(const char *format, const struct tly_dtype *dt, int rank, const uint64_t *shape,
                     const uint64_t *chunks, const char *codec, const char *separator, struct tly_meta *m);

/** Bytes [off, off + n) of the test data stream (off a multiple of 8): uniform float32 in [0, 1). */
void tly_h_gen(void *dst, uint64_t off, size_t n, const struct tly_dtype *dt);

/** The first @p n bytes of the test data stream. */
void tly_h_gen_all(void *dst, uint64_t n, const struct tly_dtype *dt);

/**
 * Run @p path (a bare name: looked up on PATH) with @p argv, @p env_name set to @p env_value for it (NULL value: unset;
 * NULL name: the environment as it is), and collect all it prints: stdout into *@p out, stderr into *@p err (malloc'd,
 * NUL-terminated; either may be NULL to drop it). The wait status into @p status. Returns 0, or -errno when the child
 * could not start.
 */
int tly_h_spawn(const char *path, char *const argv[], const char *env_name, const char *env_value, char **out,
                char **err, int *status);

/** The scenario matrix: scenarios/matrix.json here, else in the source tree tally was built from. */
const char *tly_h_matrix_path(void);

/** The path of the running tally command. */
const char *tly_h_self(void);

/** malloc() for a read's output (or a benchmark's buffer): large ones on transparent huge pages. */
void *tly_h_alloc_output(size_t n);

int tly_h_demo(int argc, char **argv);
int tly_h_cmd_bench(int argc, char **argv);
int tly_h_cmd_bench_cell(int argc, char **argv);
int tly_h_cmd_put(int argc, char **argv);
int tly_h_cmd_get(int argc, char **argv);
int tly_h_cmd_info(int argc, char **argv);
int tly_h_cmd_gc(int argc, char **argv);
int tly_h_cmd_run(int argc, char **argv);
int tly_h_cmd_scenario(int argc, char **argv);
int tly_h_cmd_report(int argc, char **argv);
int tly_h_cmd_check(int argc, char **argv);
int tly_h_cmd_selftest(int argc, char **argv);
int tly_h_cmd_peer(int argc, char **argv);

/** DIR/results.json as a list, or NULL after saying on stderr (as `tally CMD`) why not. */
json_t *tly_h_load_results(const char *dir, const char *cmd);

/** Write copies.md, index.html and trace.json for @p results into @p dir. */
int tly_h_report(const char *dir, json_t *results);

#endif
