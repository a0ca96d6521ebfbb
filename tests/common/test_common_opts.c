/*
 * common: the one table of the tuning options' bounds (tally/opts.h). Every row is whole, its
 * default lies in its range, and what parses a value given on the command line, in the environment
 * or in a cell says the same range.
 */
#include <stdlib.h>
#include <string.h>

#include "common/opts.h"
#include "support.h"
#include "tally/error.h"
#include "tally/opts.h"

TestSuite(opts);

TLY_TEST(opts, every_row_is_whole)
{
    for (int o = 0; o < TLY_OPT_COUNT; o++) {
        const struct tly_opt_def *d = tly_opt_def((enum tly_opt)o);
        cr_assert_not_null(d);
        cr_expect(d->env && strncmp(d->env, "TALLY_", 6) == 0, "option %d: an environment variable", o);
        cr_expect(d->unit && d->unit[0], "%s: a unit", d->env);
        cr_expect(d->lo <= d->hi, "%s: lo <= hi", d->env);
        /* threads' default 0 is resolved to the number of CPUs */
        cr_expect(o == TLY_OPT_THREADS ? d->dflt == 0 : d->lo <= d->dflt && d->dflt <= d->hi,
                  "%s: default %llu in %llu..%llu", d->env, (unsigned long long)d->dflt, (unsigned long long)d->lo,
                  (unsigned long long)d->hi);
    }
    cr_expect_null(tly_opt_def(TLY_OPT_COUNT));
}

TLY_TEST(opts, memory_limit_bounds)
{
    const struct tly_opt_def *d = tly_opt_def(TLY_OPT_MEMORY_LIMIT);
    cr_expect_eq(d->lo, (uint64_t)64 << 10);
    cr_expect_eq(d->hi, (uint64_t)1 << 50);
    cr_expect_str_eq(d->option, "--memory-limit");
    uint64_t v = 0;
    cr_expect_eq(tly_opt_parse(TLY_OPT_MEMORY_LIMIT, "64M", &v), 0);
    cr_expect_eq(v, (uint64_t)64 << 20);
    cr_expect_eq(tly_opt_parse(TLY_OPT_MEMORY_LIMIT, "1000", &v), TLY_EUSAGE);
    cr_expect_str_eq(tly_errmsg(), "1000 is outside 65536..1125899906842624 bytes");
    cr_expect_eq(tly_opt_check(TLY_OPT_MEMORY_LIMIT, 1000), TLY_EUSAGE);
    cr_expect_str_eq(tly_errmsg(), "--memory-limit 1000 is outside 65536..1125899906842624 bytes");
    cr_expect_eq(tly_opt_check(TLY_OPT_MEMORY_LIMIT, 65536), 0);
}

TLY_TEST(opts, whole_numbers_and_the_environment)
{
    uint64_t v = 0;
    cr_expect_eq(tly_opt_parse(TLY_OPT_THREADS, "8", &v), 0);
    cr_expect_eq(v, 8);
    cr_expect_eq(tly_opt_parse(TLY_OPT_THREADS, "0", &v), TLY_EUSAGE);
    cr_expect_str_eq(tly_errmsg(), "0 is outside 1..1024");
    cr_expect_eq(tly_opt_parse(TLY_OPT_THREADS, "8k", &v), TLY_EUSAGE, "threads is not a size");
    setenv("TALLY_MEMORY_LIMIT", "1000", 1);
    cr_expect_eq(tly__opt_resolve(TLY_OPT_MEMORY_LIMIT, 0, &v), TLY_EUSAGE);
    cr_expect_str_eq(tly_errmsg(), "TALLY_MEMORY_LIMIT (bytes): 1000 is outside 65536..1125899906842624 bytes");
    cr_expect_eq(tly__opt_resolve(TLY_OPT_MEMORY_LIMIT, (uint64_t)1 << 20, &v), 0, "a value given wins");
    cr_expect_eq(v, (uint64_t)1 << 20);
    unsetenv("TALLY_MEMORY_LIMIT");
    cr_expect_eq(tly__opt_resolve(TLY_OPT_MEMORY_LIMIT, 0, &v), 0);
    cr_expect_eq(v, tly_opt_def(TLY_OPT_MEMORY_LIMIT)->dflt);
}
