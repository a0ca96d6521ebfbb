/* The tally command: entry point and sub-command dispatch. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "tally/tally.h"

static const char usage[] =
    "usage: tally <command> [options]\n"
    "\n"
    "commands:\n"
    "  put SRC.npy URL [--chunks 100,100] [--codec none|blosc[:cname=lz4,clevel=5,shuffle=1]|\n"
    "                  zstd[:level=3]] [--format v2|v3] [--separator .|/] [--overwrite]\n"
    "                  [--fsync] [--threads N] [--profile] [--json]\n"
    "                 write a .npy array as a Zarr array (URL: a directory)\n"
    "  get URL DST.npy [--region 0:10,5:20] [--threads N] [--profile] [--json]\n"
    "                 read a Zarr array (or a region of it) into a .npy file\n"
    "  info URL [--json]\n"
    "                 describe a Zarr array\n"
    "  gc URL         clean up what crashed writes left under URL\n"
    "  run [--filter REGEX] [--out DIR] [--scenarios FILE] [--list] [--junit FILE]\n"
    "                 run the scenario matrix (each scenario in its own process), check\n"
    "                 budgets, write DIR/results.json and the reports (DIR: reports/latest)\n"
    "  report [DIR]   write DIR/copies.md, index.html and trace.json from DIR/results.json\n"
    "  check --baseline FILE [DIR] [--tolerance R] [--update]\n"
    "                 compare a run with the committed baseline; fail on regressions\n"
    "  selftest       prove the instrument: planted copies are found in their stage\n"
    "  peer [--filter REGEX] [--out DIR]\n"
    "                 run the local cells with zarr-python 2.13 and add its rows to the tables\n"
    "  demo [DIR]     a short tour of the instrument (writes DIR/demo-timeline.json;\n"
    "                 DIR defaults to reports/latest)\n"
    "\n"
    "options:\n"
    "  -h, --help     this text\n"
    "  -V, --version  the version\n"
    "\n"
    "exit status: 0 success, 1 a failed budget, 2 an error\n";

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return TLY_EXIT_ERROR;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage, stdout);
        return TLY_EXIT_OK;
    }
    if (strcmp(cmd, "-V") == 0 || strcmp(cmd, "--version") == 0) {
        printf("tally %s\n", tly_version());
        return TLY_EXIT_OK;
    }
    if (strcmp(cmd, "put") == 0)
        return tly_h_cmd_put(argc - 1, argv + 1);
    if (strcmp(cmd, "get") == 0)
        return tly_h_cmd_get(argc - 1, argv + 1);
    if (strcmp(cmd, "info") == 0)
        return tly_h_cmd_info(argc - 1, argv + 1);
    /* the commands without options of their own take no '-' words, and selftest no words at all */
    bool plain = !strcmp(cmd, "gc") || !strcmp(cmd, "report") || !strcmp(cmd, "demo") || !strcmp(cmd, "selftest");
    for (int i = 2; plain && i < argc; i++)
        if (argv[i][0] == '-' || strcmp(cmd, "selftest") == 0) {
            fprintf(stderr, "tally %s: unexpected argument '%s'\n\n%s", cmd, argv[i], usage);
            return TLY_EXIT_ERROR;
        }
    if (strcmp(cmd, "gc") == 0)
        return tly_h_cmd_gc(argc - 1, argv + 1);
    if (strcmp(cmd, "run") == 0)
        return tly_h_cmd_run(argc - 1, argv + 1);
    if (strcmp(cmd, "scenario") == 0)
        return tly_h_cmd_scenario(argc - 1, argv + 1);
    if (strcmp(cmd, "report") == 0)
        return tly_h_cmd_report(argc - 1, argv + 1);
    if (strcmp(cmd, "check") == 0)
        return tly_h_cmd_check(argc - 1, argv + 1);
    if (strcmp(cmd, "selftest") == 0)
        return tly_h_cmd_selftest(argc - 1, argv + 1);
    if (strcmp(cmd, "peer") == 0)
        return tly_h_cmd_peer(argc - 1, argv + 1);
    if (strcmp(cmd, "bench") == 0)
        return tly_h_cmd_bench(argc - 1, argv + 1);
    if (strcmp(cmd, "bench-cell") == 0)
        return tly_h_cmd_bench_cell(argc - 1, argv + 1);
    if (strcmp(cmd, "demo") == 0)
        return tly_h_demo(argc - 1, argv + 1);
    fprintf(stderr, "tally: unknown command '%s'\n\n%s", cmd, usage);
    return TLY_EXIT_ERROR;
}
