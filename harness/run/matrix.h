/*
 * The scenario matrix (scenarios/matrix.json): axes expanded into cells, custom scenario programs,
 * and the budgets that apply to each cell, resolved from the rules whose "when" matches it. The
 * whole file is validated when it is loaded: an unknown key, axis, stage or figure is an error
 * naming the file and where in it.
 */
#ifndef TLY_H_MATRIX_H
#define TLY_H_MATRIX_H

#include <jansson.h>

/**
 * Load the scenario file at @p path: a list of cell objects in matrix order (each with "index",
 * its position, and "budgets"), validated. A new reference into @p out.
 */
int tly_h_matrix_load(const char *path, json_t **out);

/** The limits of every rule in @p rules whose "when" matches @p cell, merged in order; a new reference. */
json_t *tly_h_rules_budgets(json_t *rules, json_t *cell);

/** The matrix: scenarios/matrix.json of the project (tly_h_project_file) into @p out. */
void tly_h_matrix_default(char *out);

#endif
