/* tally gc: clean up what crashed writes left under an array (temporary files, S3 multipart uploads). */
#include <stdio.h>

#include "cli/cli.h"
#include "tally/tally.h"

int tly_h_cmd_gc(int argc, char **argv)
{
    static const struct option none[] = {{NULL, 0, NULL, 0}};
    if (tly_h_getopt(argc, argv, none) != -1 || argc - optind != 1)
        return tly_h_usage_error("gc");
    const char *url = argv[optind];
    struct tly_store *st;
    uint64_t removed = 0;
    int err = tly_store_open(url, NULL, &st);
    if (!err) {
        err = tly_store_gc(st, &removed);
        tly_store_close(st);
    }
    if (err)
        return tly_h_fail_cmd("gc", err);
    printf("tally gc: %s: removed %llu left-over write%s\n", url, (unsigned long long)removed, removed == 1 ? "" : "s");
    return TLY_EXIT_OK;
}
