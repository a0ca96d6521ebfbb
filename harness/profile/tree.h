/*
 * tally profile's processes: every result the preload left in the results directory
 * (TALLY_PROFILE_DIR, one file per window of each process, docs/impl-protocol.md), gathered into the
 * program's primary result, a "processes" list and the tree's totals.
 */
#ifndef TLY_H_PROFILE_TREE_H
#define TLY_H_PROFILE_TREE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

struct tly_h_resident;

/**
 * Read every result in @p dir, then remove them (and @p dir's other files). @p root_status: the wait
 * status of the program tally started (its processes are those whose parent is this one).
 * Returns the primary result (a new reference), with "processes" and "tree" added: the first
 * marked window closed directly inside a whole-process one, else the whole-process window of the
 * process whose heap grew the most. NULL when no process left a complete result; then
 * @p processes (a new reference, or NULL) still lists the processes seen. @p root_primary: the
 * primary result is the started process's own (its exit status is the program's).
 */
json_t *tly_h_tree_collect(const char *dir, int root_status, const struct tly_h_resident *rs, json_t **processes,
                           bool *root_primary);

/** Remove @p dir and every file in it (results, and PATH.tmp files a killed process left). */
void tly_h_tree_remove(const char *dir);

/** One line per process of @p processes (a "processes" list): who it was, what it held, how it ended. */
void tly_h_tree_print(FILE *f, json_t *processes, json_t *tree);

#endif
