/*
 * Running cells in child processes: `tally run`'s parent side (one fresh process per cell, so every
 * peak starts clean) and the child side (`tally scenario CELL`: the engine's cell, in process).
 */
#ifndef TLY_H_RUN_H
#define TLY_H_RUN_H

#include <jansson.h>
#include <stdbool.h>

#include "cell/cell.h"
#include "harness.h"

/**
 * Run @p cell in a child: `tally scenario CELL` (or the cell's program with `--scenario CELL`), with
 * @p env applied and, when @p wrap is not NULL, under that command (its result then comes back in a
 * file, as a wrapper may print on stdout itself). Returns the child's result object, or NULL with
 * @p reason (TLY_H_REASON bytes) saying why.
 */
json_t *tly_h_child_run(json_t *cell, const struct tly_h_env *env, int nenv, char *const *wrap, char *reason);

#define TLY_H_REASON 600

/** The child side: run cell @p cell in this process; its result object, or NULL with tly_errmsg() set. */
json_t *tly_h_cell_run(json_t *cell);

/**
 * For a custom scenario program (`PROGRAM --scenario CELL_JSON`): the cell from the arguments, parsed
 * and validated into @p c. Returns 0, or TLY_EXIT_ERROR after saying why on stderr (as @p prog).
 */
int tly_h_program_cell(int argc, char **argv, const char *prog, struct tly_h_cell *c);

/**
 * Hand a cell's result to the parent: on stdout, or into $TALLY_RESULT_FILE when set (a wrapper such
 * as heaptrack prints on stdout itself). Takes @p result. Returns an exit status.
 */
int tly_h_program_result(const char *prog, json_t *result);

/** True when the S3 cells can run (AWS_ENDPOINT_URL and TALLY_S3_BUCKET are set). */
bool tly_h_s3_configured(void);

/** tally run (run.c), which tally peer (peer.c) runs with its own arguments. */
int tly_h_cmd_run(int argc, char **argv);

#endif
