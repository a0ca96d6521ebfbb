/*
 * mem: the library dimension the preload tracker uses (src/mem/libs.c), driven here directly: a
 * large block's free goes back to the slot that allocated it, whatever thread frees it; the at-peak
 * split and the timeline carry the slots; the stages are charged exactly as without slots.
 */
#include <pthread.h>
#include <stdlib.h>

#include <jemalloc/jemalloc.h>

#include "mem/internal.h"
#include "support.h"

enum { SLOT_A = 1, SLOT_B = 2, NSLOTS = 3 };

static _Atomic unsigned next_slot = SLOT_A;

static unsigned pick(size_t usize)
{
    return usize >= ((size_t)1 << 20) ? atomic_load(&next_slot) : TLY__LIB_NONE;
}

static void slots_on(void)
{
    atomic_store(&tly__lib_count, NSLOTS);
    atomic_store(&tly__lib_of, pick);
}

static void slots_off(void)
{
    atomic_store(&tly__lib_of, (tly__lib_fn)NULL);
}

TestSuite(slots, .init = slots_on, .fini = slots_off);

static void *free_it(void *p)
{
    free(p);
    return NULL;
}

TLY_TEST(slots, frees_go_back_to_the_allocating_slot)
{
    TLY_REQUIRE_TRACKING();
    static struct tly__lib_counters a[TLY__LIB_MAX], b[TLY__LIB_MAX];
    struct tly_mem_snapshot sa, sb;
    tly__snapshot_libs(&sa, a);
    atomic_store(&next_slot, SLOT_A);
    void *x = NULL, *y = NULL, *small = NULL;
    TLY_STAGE(TLY_ENCODE)
    {
        x = malloc(4 << 20);
        small = malloc(1000); /* under the slots' threshold: no slot */
    }
    atomic_store(&next_slot, SLOT_B);
    y = malloc(2 << 20);
    tly__snapshot_libs(&sb, b);
    cr_assert(x && y && small);
    cr_expect_eq(b[SLOT_A].allocs - a[SLOT_A].allocs, 1);
    cr_expect_eq(b[SLOT_A].live_bytes - a[SLOT_A].live_bytes, (int64_t)malloc_usable_size(x));
    cr_expect_eq(b[SLOT_B].live_bytes - a[SLOT_B].live_bytes, (int64_t)malloc_usable_size(y));
    cr_expect_eq(TLY_DELTA(sa, sb, TLY_ENCODE, live_bytes),
                 (int64_t)(malloc_usable_size(x) + malloc_usable_size(small)),
                 "the stages are charged as without slots");

    pthread_t th; /* freed elsewhere, while another slot would be picked: still slot A's */
    cr_assert_eq(pthread_create(&th, NULL, free_it, x), 0);
    pthread_join(th, NULL);
    free(y);
    TLY_STAGE(TLY_ENCODE)
    {
        free(small);
    }
    tly__snapshot_libs(&sb, b);
    cr_expect_eq(b[SLOT_A].live_bytes, a[SLOT_A].live_bytes);
    cr_expect_eq(b[SLOT_A].frees - a[SLOT_A].frees, 1);
    cr_expect_eq(b[SLOT_B].live_bytes, a[SLOT_B].live_bytes);
    cr_expect_eq(TLY_DELTA(sa, sb, TLY_ENCODE, live_bytes), 0, "a large free goes back to its stage too");
}

TLY_TEST(slots, realloc_and_copies_stay_in_the_slot)
{
    TLY_REQUIRE_TRACKING();
    static struct tly__lib_counters a[TLY__LIB_MAX], b[TLY__LIB_MAX];
    struct tly_mem_snapshot s;
    tly__snapshot_libs(&s, a);
    atomic_store(&next_slot, SLOT_A);
    void *p = malloc(1 << 20);
    atomic_store(&next_slot, SLOT_B);
    p = realloc(p, 16 << 20); /* grown in place it stays A's; moved, it is a new block, B's */
    cr_assert_not_null(p);
    tly__lib_copy(SLOT_B, 12345);
    tly__snapshot_libs(&s, b);
    int64_t in_a = b[SLOT_A].live_bytes - a[SLOT_A].live_bytes, in_b = b[SLOT_B].live_bytes - a[SLOT_B].live_bytes;
    cr_expect_eq(in_a + in_b, (int64_t)malloc_usable_size(p), "the block is in exactly one slot");
    cr_expect_eq(b[SLOT_B].copy_bytes - a[SLOT_B].copy_bytes, 12345);
    cr_expect_eq(b[SLOT_B].copies - a[SLOT_B].copies, 1);
    free(p);
    tly__snapshot_libs(&s, b);
    cr_expect_eq(b[SLOT_A].live_bytes + b[SLOT_B].live_bytes, a[SLOT_A].live_bytes + a[SLOT_B].live_bytes);
}

TLY_TEST(slots, peak_split_and_timeline_carry_the_slots)
{
    TLY_REQUIRE_TRACKING();
    tly_mem_reset_peaks();
    static struct tly__lib_counters a[TLY__LIB_MAX], b[TLY__LIB_MAX];
    struct tly_mem_snapshot sa, sb;
    tly__snapshot_libs(&sa, a);
    atomic_store(&next_slot, SLOT_A);
    void *x = malloc(8 << 20);
    atomic_store(&next_slot, SLOT_B);
    void *volatile y = malloc(4 << 20);
    free(y);                                        /* the peak was with both */
    tly__account_outside(TLY_UNSTAGED, 0, 3 << 20); /* a mapping, in slot 0, after the peak: below it */
    tly__account_outside(TLY_UNSTAGED, 0, -(3 << 20));
    tly__snapshot_libs(&sb, b);
    cr_expect_eq(b[SLOT_A].at_peak_bytes - a[SLOT_A].live_bytes, (int64_t)malloc_usable_size(x));
    cr_expect_eq(b[SLOT_B].at_peak_bytes - a[SLOT_B].live_bytes, 4 << 20);
    cr_expect_eq(b[SLOT_B].peak_bytes - a[SLOT_B].live_bytes, 4 << 20);
    cr_expect_eq(b[0].peak_bytes - a[0].live_bytes, 3 << 20, "memory outside malloc has its own peak");
    cr_expect_eq(b[0].live_bytes, a[0].live_bytes);

    static struct tly_mem_sample smp[TLY_TIMELINE_CAP + 2];
    static int64_t lib[TLY_TIMELINE_CAP + 2][TLY__LIB_MAX];
    size_t n = tly__timeline_read(smp, lib, TLY_TIMELINE_CAP + 2);
    size_t peaks = 0;
    for (size_t i = 0; i < n; i++)
        if (smp[i].is_peak) {
            peaks++;
            cr_expect_eq(smp[i].live_bytes, sb.peak_bytes);
            cr_expect_eq(lib[i][SLOT_A], b[SLOT_A].at_peak_bytes, "the peak sample holds the slots' split");
            cr_expect_eq(lib[i][SLOT_B], b[SLOT_B].at_peak_bytes);
        }
    cr_expect_eq(peaks, 1);
    free(x);
}
