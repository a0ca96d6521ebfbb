/*
 * The helpers every command's option parsing shares, below every room (beside harness.h): one usage
 * style, --help answered everywhere with exit 0, and numbers parsed strictly against tally/opts.h's
 * one table of limits. The command line (cli/main.c) registers how a command's usage is printed.
 */
#ifndef TLY_H_OPTIONS_H
#define TLY_H_OPTIONS_H

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>

#include "tally/opts.h"

/** getopt_long() for a command: options anywhere, errors reported by getopt itself. Reset per command. */
int tly_h_getopt(int argc, char **argv, const struct option *opts);

/** How the command line prints command @p cmd's full help on @p f (cli/main.c sets it at start). */
typedef void (*tly_h_usage_fn)(const char *cmd, FILE *f);
void tly_h_set_usage(tly_h_usage_fn fn);

/** Print the command's full help on @p f (nothing when no command line registered one). */
void tly_h_usage(const char *cmd, FILE *f);

/** Print the command's usage on stderr; returns TLY_EXIT_ERROR. */
int tly_h_usage_error(const char *cmd);

/** A whole number for option @p name in [@p lo, @p hi]; on error says so on stderr (as `tally CMD`). */
int tly_h_arg_int(const char *cmd, const char *name, const char *v, long long lo, long long hi, long long *out);

/** A byte size for option @p name in [@p lo, @p hi]; on error says so on stderr. */
int tly_h_arg_size(const char *cmd, const char *name, const char *v, uint64_t lo, uint64_t hi, uint64_t *out);

/** The value of tuning option @p o (its command-line option, kind and range from tally/opts.h's
 *  table); on error says so on stderr. */
int tly_h_arg_opt(const char *cmd, enum tly_opt o, const char *v, uint64_t *out);

#endif
