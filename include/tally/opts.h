/**
 * tally/opts.h — the one strict parser for the numbers a user gives tally (command-line options,
 * environment variables, scenario files): whole numbers and byte sizes, each checked against its
 * range. Errors are TLY_EUSAGE with a message that names the value, the range and the unit; the
 * caller puts the option's name in front (tly_err_prefix).
 */
#ifndef TALLY_OPTS_H
#define TALLY_OPTS_H

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

#ifdef __cplusplus
}
#endif

#endif
