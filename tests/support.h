/* Helpers shared by the Criterion suites. */
#ifndef TLY_TESTS_SUPPORT_H
#define TLY_TESTS_SUPPORT_H

#include <criterion/criterion.h>

#include "tally/mem.h"

/* Under valgrind (RUNNING_ON_VALGRIND), exhaustive suites check a sample of their cases: valgrind
 * runs code some 50x slower, and the memory errors it looks for are in the paths, not the sizes. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define TLY_UNDER_VALGRIND() (RUNNING_ON_VALGRIND != 0)
#endif
#endif
#ifndef TLY_UNDER_VALGRIND
#define TLY_UNDER_VALGRIND() 0
#endif

/* Attribution tests need the hooks; sanitizer and valgrind runs skip them, saying why. */
#define TLY_REQUIRE_TRACKING()                                                                                         \
    do {                                                                                                               \
        if (!tly_mem_tracking())                                                                                       \
            cr_skip_test("tracking is off: %s", tly_mem_untracked_reason());                                           \
    } while (0)

/* Counter of stage @p s in the window between snapshots @p a and @p b. */
#define TLY_DELTA(a, b, s, field) ((b).stage[s].field - (a).stage[s].field)

/*
 * The suites' leak check: the stages a suite uses (all but unstaged and harness) hold the same live
 * bytes at the end of a test as at its start. It begins after the libraries' one-time set-up (a
 * suite's .init).
 */
struct tly_leak_check {
    struct tly_mem_snapshot at_start;
};

static inline void tly_leak_check_begin(struct tly_leak_check *lc)
{
    tly_mem_snapshot(&lc->at_start);
}

static inline void tly_leak_check_end(struct tly_leak_check *lc)
{
    if (!tly_mem_tracking())
        return;
    struct tly_mem_snapshot end;
    tly_mem_snapshot(&end);
    for (int s = 0; s < TLY_NSTAGES; s++) {
        if (s == TLY_UNSTAGED || s == TLY_CALLER)
            continue;
        cr_expect_eq(end.stage[s].live_bytes, lc->at_start.stage[s].live_bytes, "leak in stage %s: %lld bytes",
                     tly_stage_name((enum tly_stage)s),
                     (long long)(end.stage[s].live_bytes - lc->at_start.stage[s].live_bytes));
    }
}

/*
 * A Criterion test whose body is bracketed by the leak check (Criterion does not fail a test on an
 * assertion in a suite's .fini, so the check runs inside the test).
 */
#define TLY_TEST(suite, name, ...)                                                                                     \
    static void suite##_##name##_body(void);                                                                           \
    Test(suite, name, ##__VA_ARGS__)                                                                                   \
    {                                                                                                                  \
        struct tly_leak_check lc;                                                                                      \
        tly_leak_check_begin(&lc);                                                                                     \
        suite##_##name##_body();                                                                                       \
        tly_leak_check_end(&lc);                                                                                       \
    }                                                                                                                  \
    static void suite##_##name##_body(void)

#endif
