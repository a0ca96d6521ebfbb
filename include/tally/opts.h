/**
 * tally/opts.h — the one strict parser for the numbers a user gives tally (command-line options,
 * environment variables, scenario files): whole numbers and byte sizes, each checked against its
 * range. Errors are TLY_EUSAGE with a message that names the value, the range and the unit; the
 * caller puts the option's name in front (tly_err_prefix). And the one table of the tuning options'
 * bounds and defaults (enum tly_opt): the engine resolves through it, the command line and the cell
 * validator check against it.
 */
#ifndef TALLY_OPTS_H
#define TALLY_OPTS_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Parse a whole decimal number in [@p lo, @p hi] ("8", "-3"; not "", " 8", "8x", "0x8", "1e3").
 * Returns 0, or TLY_EUSAGE ("'abc' is not a whole number", "-3 is outside 1..1024").
 */
int tly_int_parse(const char *s, long long lo, long long hi, long long *out);

/**
 * Parse a byte size: digits with an optional binary multiple k, M, G or T, optionally followed by
 * "i", "B" or "iB" ("1073741824", "64M", "1GiB", "512k"). Returns 0 or TLY_EUSAGE.
 */
int tly_size_parse(const char *s, uint64_t *out);

/** tly_size_parse() and a range check: [@p lo, @p hi] bytes. */
int tly_size_parse_range(const char *s, uint64_t lo, uint64_t hi, uint64_t *out);

/** Every TALLY_* tuning option: the one table of their bounds and defaults. */
enum tly_opt {
    TLY_OPT_THREADS,
    TLY_OPT_IO_CONCURRENCY,
    TLY_OPT_MEMORY_LIMIT,
    TLY_OPT_PART_SIZE,
    TLY_OPT_S3_RETRIES,
    TLY_OPT_S3_BACKOFF_MS,
    TLY_OPT_S3_CONNECT_TIMEOUT,
    TLY_OPT_S3_LOW_SPEED_TIME,
    TLY_OPT_S3_LIST_PAGE,
    TLY_OPT_S3_TIMEOUT,
    TLY_OPT_S3_IDLE_TIMEOUT,
    TLY_OPT_META_LIMIT,
    TLY_OPT_COUNT
};

/** One option's row of the table. */
struct tly_opt_def {
    const char *env;    /**< its environment variable: "TALLY_MEMORY_LIMIT" */
    const char *option; /**< its command-line option ("--memory-limit"), NULL when it has none */
    const char *unit;   /**< "bytes", "worker threads", ... */
    bool size;          /**< a byte size (k/M/G suffixes), else a whole number */
    uint64_t lo, hi;    /**< the range a value given must lie in */
    uint64_t dflt;      /**< the value when none is given (0 for threads: the number of online CPUs) */
};

/** Option @p o's row (NULL when @p o is not an option). */
const struct tly_opt_def *tly_opt_def(enum tly_opt o);

/**
 * Parse @p s as option @p o's value (a byte size or a whole number, as its row says) within its range.
 * Returns 0, or TLY_EUSAGE ("1000 is outside 65536..1125899906842624 bytes"); the caller names the option.
 */
int tly_opt_parse(enum tly_opt o, const char *s, uint64_t *out);

/** Check the value @p v given for option @p o against its range: 0, or TLY_EUSAGE ("--memory-limit 1000
 *  is outside 65536..1125899906842624 bytes"). */
int tly_opt_check(enum tly_opt o, uint64_t v);

#ifdef __cplusplus
}
#endif

#endif
