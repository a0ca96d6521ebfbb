/*
 * The tally command: the table of commands (cli/main.c), their entry points (each in its room), and
 * the helpers every command's option parsing shares: one usage style, --help answered everywhere
 * with exit 0, and numbers parsed strictly (tally/opts.h).
 */
#ifndef TLY_H_CLI_H
#define TLY_H_CLI_H

#include <getopt.h>
#include <stdint.h>

#include "harness.h"

/** getopt_long() for a command: options anywhere, errors reported by getopt itself. Reset per command. */
int tly_h_getopt(int argc, char **argv, const struct option *opts);

/** Print the command's usage on stderr; returns TLY_EXIT_ERROR. */
int tly_h_usage_error(const char *cmd);

/** Print the command's full help on @p f. */
void tly_h_usage(const char *cmd, FILE *f);

/** A whole number for option @p name in [@p lo, @p hi]; on error says so on stderr (as `tally CMD`). */
int tly_h_arg_int(const char *cmd, const char *name, const char *v, long long lo, long long hi, long long *out);

/** A byte size for option @p name in [@p lo, @p hi]; on error says so on stderr. */
int tly_h_arg_size(const char *cmd, const char *name, const char *v, uint64_t lo, uint64_t hi, uint64_t *out);

int tly_h_cmd_put(int argc, char **argv);
int tly_h_cmd_get(int argc, char **argv);
int tly_h_cmd_info(int argc, char **argv);
int tly_h_cmd_gc(int argc, char **argv);
int tly_h_cmd_run(int argc, char **argv);
int tly_h_cmd_scenario(int argc, char **argv);
int tly_h_cmd_report(int argc, char **argv);
int tly_h_cmd_check(int argc, char **argv);
int tly_h_cmd_selftest(int argc, char **argv);
int tly_h_cmd_peer(int argc, char **argv);
int tly_h_cmd_bench(int argc, char **argv);
int tly_h_cmd_bench_cell(int argc, char **argv);
int tly_h_cmd_demo(int argc, char **argv);
int tly_h_cmd_profile(int argc, char **argv);
int tly_h_cmd_preload_env(int argc, char **argv);

#endif
