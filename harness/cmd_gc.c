/* tally gc: clean up what crashed writes left under an array (temporary files, S3 multipart uploads). */
#include <stdio.h>

#include "harness.h"
#include "tally/error.h"
#include "tally/store.h"

int tly_h_cmd_gc(int argc, char **argv)
{
    if (argc != 2) {
        fputs("usage: tally gc URL\n", stderr);
        return TLY_EXIT_ERROR;
    }
    struct tly_store *st;
    uint64_t removed = 0;
    int err = tly_store_open(argv[1], NULL, &st);
    if (!err) {
        err = tly_store_gc(st, &removed);
        tly_store_close(st);
    }
    if (err) {
        fprintf(stderr, "tally gc: %s\n", tly_errmsg()[0] ? tly_errmsg() : tly_strerror(err));
        return TLY_EXIT_ERROR;
    }
    printf("tally gc: %s: removed %llu left-over write%s\n", argv[1], (unsigned long long)removed,
           removed == 1 ? "" : "s");
    return TLY_EXIT_OK;
}
