/* Scenarios: the matrix and custom programs as cells, and their budgets. */
#ifndef TLY_CALLER_SCENARIO_H
#define TLY_CALLER_SCENARIO_H

#include <jansson.h>
#include <stdbool.h>

/**
 * Load a scenario file: its matrix expanded into cells and its custom programs, as a JSON array of
 * cell objects (scenario, op, store, codec, codec_spec, format, layout, dtype, shape, chunks,
 * threads, budgets; or scenario, program_path, budgets). A new reference into @p out.
 */
int tly_h_scenarios_load(const char *path, json_t **out);

/** The limits of every rule in @p rules whose "when" matches @p cell, merged in order. */
json_t *tly_h_cell_budgets(json_t *rules, json_t *cell);

/**
 * Check @p result against @p budgets: a list of {name, stage, limit, actual, ok}; @p all_ok false
 * when any failed (a figure missing from the result fails).
 */
json_t *tly_h_check_budgets(json_t *budgets, json_t *result, bool *all_ok);

/** Run one cell in this process (the child side of `tally run`); the result object, or NULL on error. */
json_t *tly_h_cell_run(json_t *cell);

#endif
