/* tally preload-env (see cli.h). */
#include <stdio.h>

#include "cell/preload.h"
#include "cli/cli.h"
#include "options.h"
#include "tally/tally.h"

/* tally preload-env: the environment lines a program started by someone else (a test runner that
 * re-executes itself, python/pytest_tally) needs to run under the same preload as tally profile's. */
int tly_h_cmd_preload_env(int argc, char **argv)
{
    (void)argv;
    if (argc > 1)
        return tly_h_usage_error("preload-env");
    char ld[TLY_H_PRELOAD_VALUE];
    struct tly_h_env env[TLY_H_PRELOAD_NENV];
    int err = tly_h_preload_env(env, ld, NULL, NULL);
    if (err)
        return tly_h_fail_cmd("preload-env", err);
    const char *alloc = tly_mem_allocator_version();
    printf("LD_PRELOAD=%s\nTALLY_VERSION=%s\nTALLY_JEMALLOC=%s\nTALLY_BUILD_TYPE=%s\n", ld, tly_version(),
           alloc ? alloc : "", TALLY_BUILD_TYPE);
    return TLY_EXIT_OK;
}
