/*
 * The tally command: the table of commands (cli/main.c) and their entry points (each in its room).
 * The option helpers every command shares are below every room, in harness/options.h.
 */
#ifndef TLY_H_CLI_H
#define TLY_H_CLI_H

#include <getopt.h>
#include <stdint.h>

#include "harness.h"
#include "options.h"

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
