/*
 * `tally demo`: a short tour of the instrument, until the scenario matrix exists. It compresses a
 * 64 MiB array with zstd chunk by chunk through stages gather -> encode -> put (a file), and shows
 * what each stage allocated, held at the peak and copied, with the timeline as JSON.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <zstd.h>

#include "cell/result.h"
#include "cli/cli.h"

#define ARRAY_BYTES ((size_t)64 << 20)
#define CHUNK_BYTES ((size_t)8 << 20)

static int write_chunk(FILE *out, const void *p, size_t n)
{
    return fwrite(p, 1, n, out) == n ? 0 : -EIO;
}

int tly_h_cmd_demo(int argc, char **argv)
{
    static const struct option none[] = {{NULL, 0, NULL, 0}};
    if (tly_h_getopt(argc, argv, none) != -1 || argc - optind > 1)
        return tly_h_usage_error("demo");
    const char *dir = optind < argc ? argv[optind] : "reports/latest";
    char path[TLY_H_PATH];
    mkdir("reports", 0777);
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "tally demo: cannot create %s: %s\n", dir, strerror(errno));
        return TLY_EXIT_ERROR;
    }
    float *array;
    TLY_STAGE(TLY_CALLER)
    {
        array = malloc(ARRAY_BYTES);
        for (size_t i = 0; i < ARRAY_BYTES / sizeof *array; i++)
            array[i] = (float)(i % 1000) * 0.5f;
    }
    if (array == NULL)
        return TLY_EXIT_ERROR;
    snprintf(path, sizeof path, "%s/demo.chunks", dir);
    FILE *out = fopen(path, "wb");
    if (out == NULL) {
        fprintf(stderr, "tally demo: cannot open %s: %s\n", path, strerror(errno));
        free(array);
        return TLY_EXIT_ERROR;
    }

    struct tly_mem_snapshot before, after;
    tly_mem_reset_peaks();
    tly_mem_snapshot(&before);
    int err = 0;
    for (size_t off = 0; off < ARRAY_BYTES && !err; off += CHUNK_BYTES) {
        void *chunk, *enc;
        size_t n = 0;
        TLY_STAGE(TLY_GATHER)
        {
            chunk = malloc(CHUNK_BYTES);
            tly_copy(chunk, (char *)array + off, CHUNK_BYTES);
        }
        TLY_STAGE(TLY_ENCODE)
        {
            enc = malloc(ZSTD_compressBound(CHUNK_BYTES));
            n = ZSTD_compress(enc, ZSTD_compressBound(CHUNK_BYTES), chunk, CHUNK_BYTES, 3);
        }
        TLY_STAGE(TLY_PUT)
        {
            err = ZSTD_isError(n) ? -EINVAL : write_chunk(out, enc, n);
        }
        free(chunk);
        free(enc);
    }
    tly_mem_snapshot(&after);
    fclose(out);
    remove(path);

    printf("tally demo: 64 MiB float32 array, 8 chunks of 8 MiB, gather -> zstd -> file\n");
    printf("tracking: %s\n\n", tly_mem_tracking() ? "on" : tly_mem_untracked_reason());
    tly_h_print_profile(stdout, &before, &after, ARRAY_BYTES);

    snprintf(path, sizeof path, "%s/demo-timeline.json", dir);
    FILE *tl = fopen(path, "w");
    if (tl == NULL || tly_mem_timeline_write_json(tl) != 0 || fclose(tl) != 0) {
        fprintf(stderr, "tally demo: cannot write %s\n", path);
        err = -EIO;
    } else {
        printf("\ntimeline: %s\n", path);
    }
    free(array);
    return err ? TLY_EXIT_ERROR : TLY_EXIT_OK;
}
