/*
 * The scenario matrix (scenarios/matrix.json): axes expanded into cells, custom scenario programs,
 * and the budgets that apply to each cell, resolved from the rules whose "when" matches it. The
 * whole file is validated when it is loaded: an unknown key, axis, stage or figure is an error
 * naming the file and where in it.
 */
#ifndef TLY_H_MATRIX_H
#define TLY_H_MATRIX_H

#include <jansson.h>

#include "harness.h"

/** A loaded scenario file. */
struct tly_h_matrix {
    json_t *cells; /**< tally's cells in matrix order, each with "index" and "budgets", validated */
    json_t *rules; /**< the budget rules (a list) */
    json_t *impls; /**< other implementations: name -> {"command": [...] (paths resolved), "about"} */
    char path[TLY_H_PATH];
};

/** Load and validate the scenario file at @p path into @p m. */
int tly_h_matrix_load(const char *path, struct tly_h_matrix *m);

/** Free what tly_h_matrix_load() made. */
void tly_h_matrix_free(struct tly_h_matrix *m);

/**
 * Matrix cell @p cell run by implementation @p impl (the @p impl_index-th of the run): a copy with
 * "impl", "impl_index" and the budgets the rules give that implementation. A new reference.
 */
json_t *tly_h_matrix_cell_for(const struct tly_h_matrix *m, json_t *cell, const char *impl, int impl_index);

/** The limits of every rule in @p rules whose "when" matches @p cell, merged in order; a new reference. */
json_t *tly_h_rules_budgets(json_t *rules, json_t *cell);

/** The matrix: scenarios/matrix.json of the project (tly_h_project_file) into @p out. */
void tly_h_matrix_default(char *out);

#endif
