/*
 * Every TALLY_* tuning option in one table (name, environment variable, unit, range, default), and
 * the one way to resolve one: a value the caller gave (checked against the range), else the
 * environment (checked: a bad value is an error, never ignored), else the default. The engine and
 * the S3 store both resolve through here, so they cannot disagree.
 */
#ifndef TLY__COMMON_OPTS_H
#define TLY__COMMON_OPTS_H

#include <stdint.h>

#include "tally/opts.h"

enum tly__opt {
    TLY__OPT_THREADS,
    TLY__OPT_IO_CONCURRENCY,
    TLY__OPT_MEMORY_LIMIT,
    TLY__OPT_PART_SIZE,
    TLY__OPT_S3_RETRIES,
    TLY__OPT_S3_BACKOFF_MS,
    TLY__OPT_S3_CONNECT_TIMEOUT,
    TLY__OPT_S3_LOW_SPEED_TIME,
    TLY__OPT_S3_LIST_PAGE,
    TLY__OPT_S3_TIMEOUT,
    TLY__OPT_S3_IDLE_TIMEOUT,
    TLY__OPT_META_LIMIT,
    TLY__OPT_COUNT
};

/**
 * Resolve option @p o into @p out: @p given when it is not 0 (checked against the option's range),
 * else its environment variable when set and not empty (checked), else the default. Returns 0 or
 * TLY_EUSAGE naming the variable (or the option), the value, the range and the unit.
 */
int tly__opt_resolve(enum tly__opt o, uint64_t given, uint64_t *out);

/** The option's environment variable ("TALLY_THREADS"). */
const char *tly__opt_env(enum tly__opt o);

#endif
