/* Other programs under the preload tracker: the libraries, the environment, the result (see preload.h). */
#include "cell/preload.h"

#include <dlfcn.h>
#include <jemalloc/jemalloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cell/figures.h"
#include "cell/resident.h"
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

/* The resident peak of the window (sampled from outside, cell/resident.c) into @p r. */
void tly_h_resident_into(json_t *r, const struct tly_h_resident *rs)
{
    pid_t pid = (pid_t)json_integer_value(json_object_get(json_object_get(r, "impl_process"), "pid"));
    uint64_t t0 = (uint64_t)json_integer_value(json_object_get(r, "t0_ns")),
             t1 = (uint64_t)json_integer_value(json_object_get(r, "t1_ns"));
    int64_t before, peak;
    if (rs && pid > 0 && t1 > 0 && tly_h_resident_window(rs, pid, t0, t1, &before, &peak)) {
        /* and what the process read of itself just before it gave memory back (a spike the samples
         * may have missed): the highest of both */
        size_t i;
        json_t *rd;
        json_array_foreach(json_object_get(r, "resident_releases"), i, rd)
        {
            json_int_t b = json_integer_value(json_array_get(rd, 1));
            if (b > peak)
                peak = b;
        }
        json_object_set_new(r, TLY_K_RESIDENT_BEFORE, json_integer(before));
        json_object_set_new(r, TLY_K_RESIDENT_PEAK, json_integer(peak));
    } else {
        json_object_set_new(r, "resident_about",
                            json_string(rs ? "the window's process was not sampled (it lived too briefly)"
                                           : "the sampler could not start"));
    }
}

json_t *tly_h_preload_result(const char *file, const struct tly_h_resident *rs)
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
    tly_h_preload_finish(r, rs);
    return r;
}

void tly_h_preload_finish(json_t *r, const struct tly_h_resident *rs)
{
    /* the preload's figures, derived the harness's way (one definition for every result) */
    tly_h_resident_into(r, rs);
    tly_h_figures(r, false);
    tly_h_unexplained_copies(r);
    /* the preload sees a program's memory, not what its stack read or wrote: no store traffic */
    static const char *const unknown[] = {"store_bytes_read", "store_bytes_written", "store_read_requests",
                                          "read_amplification"};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        json_object_set_new(r, unknown[i], json_null());
}

void tly_h_unexplained_copies(json_t *r)
{
    json_t *ratio = json_object_get(r, "peak_extra_ratio");
    json_int_t by_peak = json_integer_value(json_object_get(r, "extra_copies"));
    double volume = 0;
    const char *name;
    json_t *v;
    json_object_foreach(json_object_get(r, "libraries"), name, v) volume +=
        json_number_value(json_object_get(v, "copies"));
    double unexplained = json_number_value(ratio) - volume;
    if (!json_is_number(ratio) || by_peak < 1 || unexplained < TLY_H_UNEXPLAINED_MIN) {
        json_object_set_new(r, "unexplained_copies", json_null());
        return;
    }
    char note[320];
    snprintf(note, sizeof note,
             "%lld extra by peak; copy volume %.2f: %.2f x array of the peak was filled without memcpy, memmove "
             "or mempcpy, which the instrument cannot see: loop copies, such as numpy's strided or transposed "
             "copies, or a buffer a codec wrote itself",
             (long long)by_peak, volume, unexplained);
    json_object_set_new(r, "unexplained_copies",
                        json_pack("{s:I, s:f, s:f, s:s}", "extra_copies_by_peak", by_peak, "copy_volume", volume,
                                  "unexplained", unexplained, "note", note));
}
