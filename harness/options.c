/* The option helpers every room shares (options.h). */
#include "options.h"

#include <stdatomic.h>

#include "harness.h"
#include "tally/error.h"

static _Atomic(tly_h_usage_fn) usage_fn;

void tly_h_set_usage(tly_h_usage_fn fn)
{
    atomic_store(&usage_fn, fn);
}

void tly_h_usage(const char *cmd, FILE *f)
{
    tly_h_usage_fn fn = atomic_load(&usage_fn);
    if (fn)
        fn(cmd, f);
}

int tly_h_usage_error(const char *cmd)
{
    tly_h_usage(cmd, stderr);
    return TLY_EXIT_ERROR;
}

int tly_h_getopt(int argc, char **argv, const struct option *opts)
{
    return getopt_long(argc, argv, "", opts, NULL);
}

int tly_h_arg_int(const char *cmd, const char *name, const char *v, long long lo, long long hi, long long *out)
{
    int err = tly_int_parse(v, lo, hi, out);
    if (err)
        fprintf(stderr, "tally %s: --%s: %s\n", cmd, name, tly_errmsg());
    return err;
}

int tly_h_arg_size(const char *cmd, const char *name, const char *v, uint64_t lo, uint64_t hi, uint64_t *out)
{
    int err = tly_size_parse_range(v, lo, hi, out);
    if (err)
        fprintf(stderr, "tally %s: --%s: %s\n", cmd, name, tly_errmsg());
    return err;
}

int tly_h_arg_opt(const char *cmd, enum tly_opt o, const char *v, uint64_t *out)
{
    int err = tly_opt_parse(o, v, out);
    if (err)
        fprintf(stderr, "tally %s: %s: %s\n", cmd, tly_opt_def(o)->option, tly_errmsg());
    return err;
}
