/* The tally command: one table of commands, one usage style, --help everywhere. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "tally/tally.h"

struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *synopsis; /* the arguments, after "tally NAME" */
    const char *summary;  /* one line */
    const char *help;     /* the options, one per line, or NULL */
    bool hidden;          /* the child side of another command */
};

static const struct command commands[] = {
    {"put", tly_h_cmd_put, "SRC.npy URL [options]", "write a .npy array as a Zarr array (URL: a directory or s3://)",
     "  --chunks 100,100         chunk shape (default: one chunk); with --shards, the inner chunks'\n"
     "  --codec SPEC             none | blosc[:cname=lz4,clevel=5,shuffle=1,blocksize=0] | zstd[:level=3]\n"
     "                           | gzip[:level=1] | zlib[:level=1] (v2 only)\n"
     "  --format v2|v3           Zarr format (default v2)\n"
     "  --shards 1000,1000       v3 sharding: the shard shape (each a multiple of --chunks)\n"
     "  --index-location end|start  where a shard's index goes (default end)\n"
     "  --crc32c                 sharded: a CRC-32C after each inner chunk\n"
     "  --separator .|/          v2 dimension separator (default .)\n"
     "  --overwrite              replace an array that is there\n"
     "  --fsync                  make each chunk durable before returning\n"
     "  --threads N              worker threads (1..1024; default: CPUs, TALLY_THREADS)\n"
     "  --io-concurrency N       S3 transfers in flight (1..1024; default 32)\n"
     "  --memory-limit SIZE      in-flight buffer budget (default 1G)\n"
     "  --part-size SIZE         S3 multipart part size (5M..5G; default 8M)\n"
     "  --profile                print the per-stage table and the figures\n"
     "  --json[=FILE]            the result object: on stdout, which then carries nothing else (CMD's own\n"
     "                           stdout goes to stderr), so it can be piped; or into FILE (checked first)\n",
     false},
    {"get", tly_h_cmd_get, "URL DST.npy [options]", "read a Zarr array, or a region of it, into a .npy file",
     "  --region 0:10,5:20       the region to read (default: all)\n"
     "  --force                  replace DST.npy when it exists\n"
     "  --threads N, --io-concurrency N, --memory-limit SIZE, --part-size SIZE   as for put\n"
     "  --profile, --json        as for put\n",
     false},
    {"info", tly_h_cmd_info, "URL [--json]", "describe a Zarr array", "  --json                   as JSON\n", false},
    {"gc", tly_h_cmd_gc, "URL", "clean up what crashed writes left under URL (temporary files, multipart uploads)",
     NULL, false},
    {"run", tly_h_cmd_run, "[options]", "run the scenario matrix, each cell in its own process, and check budgets",
     "  --filter REGEX           run the cells whose name (or impl/name) matches\n"
     "  --exclude REGEX          and not those whose name (or impl/name) matches\n"
     "  --out DIR                results.json and reports (default reports/latest)\n"
     "  --scenarios FILE         the scenario file (default scenarios/matrix.json)\n"
     "  --list                   list the cells and exit\n"
     "  --junit FILE             JUnit XML of the cells\n"
     "  --impl NAME[,NAME]       implementations: tally (the engine, in process) and the matrix's adapters\n"
     "                           (zarr-python, gdal, nczarr, zarrita, tensorstore); default all of them\n"
     "  --shard K/N              run the K-th of N deterministic parts of the cells selected (merge with\n"
     "                           report/check); a shard left with none of them runs nothing, exit 0\n"
     "  --cell-timeout SECONDS   kill a cell (and what it started) still running after this long; it fails\n"
     "                           as 'timeout' (default 900; 0: no limit)\n"
     "  --repeat N               run each cell N times: throughput is their median, with its range\n"
     "  --allow-untracked        run even when tracking is off (sanitizers, valgrind); such cells are never\n"
     "                           compared or written into a baseline\n",
     false},
    {"profile", tly_h_cmd_profile, "[options] [--] CMD [ARGS...]",
     "run any program under the same instrument: memory and copies charged to the libraries that made them",
     "  --out DIR                results.json and reports (default reports/profile)\n"
     "  --array-bytes N          the array the program moves (ratios and extra copies against it)\n"
     "  --name NAME              the implementation's name in the reports (default: CMD's file name)\n"
     "  --budgets JSON           limits, as the matrix writes them, e.g. '{\"libraries\": {\"numpy\":\n"
     "                           {\"copies\": 1.1}}}': exit 1 when one fails; checked before CMD runs (an\n"
     "                           unknown key is exit 2), and a library CMD never loaded fails (exit 2)\n"
     "  --json[=FILE]            the result object: on stdout, which then carries nothing else (CMD's own\n"
     "                           stdout goes to stderr), so it can be piped; or into FILE (checked first)\n"
     "The window is the whole process unless the program marks it (tly_mark_begin/end, docs/impl-protocol.md).\n"
     "A CMD that fails (non-zero exit, a signal) makes the result program_failed, its status and signal in\n"
     "impl_process; its figures are kept.\n"
     "Exit status, the first that applies: CMD's own when it failed (128 + signal when killed); 127 CMD not\n"
     "found; 2 tally could not measure, or a budget names a library CMD never loaded; 1 a budget failed; 0.\n",
     false},
    {"preload-env", tly_h_cmd_preload_env, "",
     "print the environment that runs a program under the preload as tally profile does (LD_PRELOAD=...)",
     "Lines KEY=VALUE: LD_PRELOAD (the preload, then the jemalloc tally runs on, then any LD_PRELOAD\n"
     "already set), TALLY_VERSION, TALLY_JEMALLOC and TALLY_BUILD_TYPE. The pytest plugin\n"
     "(python/pytest_tally) reads them.\n"
     "Exit status 2 when the preload or jemalloc cannot be found.\n",
     false},
    {"report", tly_h_cmd_report, "[DIR...] [--out DIR]",
     "write copies.md, index.html and trace.json from results.json (default reports/latest)",
     "  DIR...                   runs (directories holding results.json, or the files): several are the\n"
     "                           shards of one matrix (same tally, commit and matrix; each cell once), merged\n"
     "  --out DIR                where the reports go (default: the one DIR; needed with several)\n",
     false},
    {"check", tly_h_cmd_check, "--baseline FILE [DIR...] [options]",
     "compare a run with the committed baseline; fail on regressions",
     "  --baseline FILE          the baseline (reports/baseline.json)\n"
     "  DIR...                   the run (default reports/latest); several: shards of one matrix, merged\n"
     "  --tolerance R            peak_extra_ratio and copy volumes (default 0.05 of the array)\n"
     "  --copies-tolerance N     extra_copies (default 0)\n"
     "  --throughput-tolerance R a throughput slower by more than R of its median, the runs' ranges apart\n"
     "                           (default 0.10); reported apart from memory\n"
     "  --fail-on-throughput     fail on such a throughput regression too (default: report it only)\n"
     "  --allow-missing REASON   baseline cells the run lacks are allowed, counted and said with REASON\n"
     "                           (default: a missing cell fails: the gate fails closed)\n"
     "  --allow-missing-only RE  narrows --allow-missing to the cells whose impl/scenario matches RE\n"
     "  --junit FILE             the verdicts as JUnit XML (one test per impl/cell)\n"
     "  --summary FILE           append the Markdown summary there ($GITHUB_STEP_SUMMARY when set)\n"
     "  --update                 rewrite the baseline from the run, deliberately (refuses failed budgets,\n"
     "                           untracked cells and a run that fails its schema)\n",
     false},
    {"selftest", tly_h_cmd_selftest, "", "prove the instrument: planted copies are found in their stage", NULL, false},
    {"peer", tly_h_cmd_peer, "[run options]", "zarr-python's cells: tally run --impl zarr-python", NULL, false},
    {"bench", tly_h_cmd_bench, "[options] | --compare OLD.json NEW.json [--tolerance R] | --judge FILE [--out DIR]",
     "throughput against the machine's limits, zarr-python and untracked tally",
     "  --quick                  a small array (64 MiB), the same repetitions\n"
     "  --reps N                 repetitions of every figure, each in its own process (5..99; default 5)\n"
     "  --filter REGEX           the rows (and scaling rows) whose name matches\n"
     "  --max-spread R           a figure whose (max - min) / median is above R is unstable: no ratio\n"
     "                           (default 0.25)\n"
     "  --json                   print the bench document\n"
     "  --out DIR                bench.json and bench.md (default reports/latest)\n"
     "  --compare OLD NEW        compare two bench.json files row by row: a change counts only when\n"
     "                           the runs' [min, max] ranges are apart and the medians differ by more\n"
     "                           than the tolerance; a ratio that drops so is a regression; GB/s (same\n"
     "                           array only) is shown when it moves, and moves with the machine\n"
     "  --tolerance R            for --compare (default 0.10)\n"
     "  --judge FILE             judge a run's bench.json again with this build (ratios, verdicts,\n"
     "                           text; its figures unchanged) into --out's bench.json and bench.md\n"
     "exit status: 0; 1 when a row is invalid (a ratio above 1.05 to a physical limit) or --compare\n"
     "finds a regression; 2 when a measurement failed\n",
     false},
    {"demo", tly_h_cmd_demo, "[DIR]", "a short tour of the instrument (writes DIR/demo-timeline.json)", NULL, false},
    {"scenario", tly_h_cmd_scenario, "CELL_JSON", "the child side of tally run", NULL, true},
    {"bench-cell", tly_h_cmd_bench_cell, "SPEC_JSON", "the child side of tally bench", NULL, true},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

static const struct command *find(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static void usage_all(FILE *f)
{
    fputs("usage: tally <command> [options]      (tally <command> --help for its options)\n\ncommands:\n", f);
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (!commands[i].hidden)
            fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fputs("\noptions:\n  -h, --help     this text\n  -V, --version  the version\n"
          "\nexit status: 0 success, 1 a failed budget or regression, 2 an error\n",
          f);
}

static void usage(const char *cmd, FILE *f)
{
    const struct command *c = find(cmd);
    if (c == NULL)
        return;
    fprintf(f, "usage: tally %s%s%s\n\n%s\n", c->name, c->synopsis[0] ? " " : "", c->synopsis, c->summary);
    if (c->help)
        fprintf(f, "\noptions:\n%s", c->help);
}

/* True when the command's words ask for help (before a "--", after which they are another program's;
 * for profile, before CMD too). */
static bool wants_help(const char *cmd, int argc, char **argv)
{
    bool until_word = strcmp(cmd, "profile") == 0;
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0 && !(until_word && argv[i][0] != '-'); i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return true;
    return false;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress reaches a pipe as it happens */
    tly_h_set_usage(usage);           /* every room's usage errors print from the table above */
    if (argc < 2) {
        usage_all(stderr);
        return TLY_EXIT_ERROR;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        if (argc > 2 && find(argv[2])) {
            tly_h_usage(argv[2], stdout);
            return TLY_EXIT_OK;
        }
        usage_all(stdout);
        return TLY_EXIT_OK;
    }
    if (strcmp(cmd, "-V") == 0 || strcmp(cmd, "--version") == 0) {
        printf("tally %s\n", tly_version());
        const char *alloc = tly_mem_allocator_version();
        printf("tracking: %s%s%s\njemalloc: %s\n", tly_mem_tracking() ? "on" : "off (",
               tly_mem_tracking() ? "" : tly_mem_untracked_reason(), tly_mem_tracking() ? "" : ")",
               alloc ? alloc : "unknown");
        return TLY_EXIT_OK;
    }
    const struct command *c = find(cmd);
    if (c == NULL) {
        fprintf(stderr, "tally: unknown command '%s'\n\n", cmd);
        usage_all(stderr);
        return TLY_EXIT_ERROR;
    }
    if (wants_help(cmd, argc - 1, argv + 1)) {
        tly_h_usage(cmd, stdout);
        return TLY_EXIT_OK;
    }
    optind = 1;
    opterr = 1;
    return c->fn(argc - 1, argv + 1);
}
