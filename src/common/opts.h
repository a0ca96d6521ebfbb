/*
 * The one way to resolve a tuning option of the table in tally/opts.h: a value the caller gave
 * (checked against the range), else the environment (checked: a bad value is an error, never
 * ignored), else the default. The engine and the S3 store both resolve through here, and the
 * harness's command line and cell validator check against the same table, so they cannot disagree.
 */
#ifndef TLY__COMMON_OPTS_H
#define TLY__COMMON_OPTS_H

#include <stdint.h>

#include "tally/opts.h"

/**
 * Resolve option @p o into @p out: @p given when it is not 0 (checked against the option's range),
 * else its environment variable when set and not empty (checked), else the default. Returns 0 or
 * TLY_EUSAGE naming the variable (or the option), the value, the range and the unit.
 */
int tly__opt_resolve(enum tly_opt o, uint64_t given, uint64_t *out);

/** The option's environment variable ("TALLY_THREADS"). */
const char *tly__opt_env(enum tly_opt o);

#endif
