/* Other programs under the preload tracker: the libraries, the environment, the result (see preload.h). */
#include "cell/preload.h"

#include <dlfcn.h>
#include <jemalloc/jemalloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cell/result.h"
#include "tally/tally.h"

/* The jemalloc this program runs on: the one the preloaded process must run on too. */
static int jemalloc_path(char *out)
{
    Dl_info info;
    if (dladdr((void *)mallctl, &info) == 0 || info.dli_fname == NULL || info.dli_fname[0] != '/')
        return tly_fail(TLY_EUNSUPPORTED, "cannot find the jemalloc shared library tally runs on (dladdr)");
    return tly_h_pathf(out, "%s", info.dli_fname);
}

int tly_h_preload_env(struct tly_h_env *env, char *value, const char *out_file, const char *dir)
{
    char je[TLY_H_PATH], pre[TLY_H_PATH];
    int err = jemalloc_path(je);
    if (!err)
        err = tly_h_pathf(pre, "%s/libtally-preload.so", tly_h_self_dir());
    if (!err && access(pre, R_OK) != 0)
        err = tly_fail_errno("the preload tracker %s", pre);
    if (err)
        return err;
    const char *old = getenv("LD_PRELOAD");
    /* the preload first: its memalign and aligned_alloc answer as glibc's do, before jemalloc's
     * (src/preload/alloc.c); jemalloc second, before libc, so that malloc is jemalloc's */
    int n = snprintf(value, TLY_H_PRELOAD_VALUE, "%s %s%s%s", pre, je, old && *old ? " " : "", old ? old : "");
    if (n < 0 || n >= TLY_H_PRELOAD_VALUE)
        return tly_fail(TLY_EUSAGE, "LD_PRELOAD would be too long");
    env[0] = (struct tly_h_env){"LD_PRELOAD", value};
    env[1] = (struct tly_h_env){"TALLY_PROFILE_OUT", out_file};
    env[2] = (struct tly_h_env){"TALLY_PROFILE_ROOT", NULL};
    env[3] = (struct tly_h_env){"TALLY_PROFILE_DIR", dir};
    return 0;
}

json_t *tly_h_preload_result(const char *file)
{
    json_error_t je;
    json_t *r = json_load_file(file, 0, &je);
    if (r == NULL) {
        tly_fail(TLY_EFORMAT, "the preload left no result (%s): %s", file, je.text);
        return NULL;
    }
    if (!json_is_object(r) || !json_is_boolean(json_object_get(r, "tracking"))) {
        json_decref(r);
        tly_fail(TLY_EFORMAT, "%s: not a result object of the preload", file);
        return NULL;
    }
    tly_h_preload_finish(r);
    return r;
}

void tly_h_preload_finish(json_t *r)
{
    json_t *extra = json_object_get(r, "peak_extra_bytes"), *array = json_object_get(r, "array_bytes");
    if (json_is_integer(extra) && json_is_integer(array)) {
        bool bound;
        long long copies = tly_h_extra_copies(json_integer_value(extra), (uint64_t)json_integer_value(array), &bound);
        json_object_set_new(r, "extra_copies", json_integer(copies));
        json_object_set_new(r, "overhead_bound", json_boolean(bound));
    }
    /* the preload sees a program's memory, not what its stack read or wrote: no store traffic */
    static const char *const unknown[] = {"store_bytes_read", "store_bytes_written", "read_amplification"};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        json_object_set_new(r, unknown[i], json_null());
}
