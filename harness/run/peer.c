/* tally peer: zarr-python's rows — `tally run --impl zarr-python`, kept as a word of its own. */
#include <stdlib.h>

#include "options.h"
#include "run/run.h"

int tly_h_cmd_peer(int argc, char **argv)
{
    char **args = calloc((size_t)argc + 3, sizeof *args);
    if (args == NULL)
        return TLY_EXIT_ERROR;
    args[0] = "run";
    args[1] = "--impl";
    args[2] = "zarr-python";
    for (int i = 1; i < argc; i++)
        args[i + 2] = argv[i];
    optind = 1;
    int rc = tly_h_cmd_run(argc + 2, args);
    free(args);
    return rc;
}
