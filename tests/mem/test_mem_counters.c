/* mem: exact counters, stage attribution, peaks, at-peak split, the copy ledger, the timeline. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <jemalloc/jemalloc.h>

#include "support.h"

static void *alloc_in(enum tly_stage s, size_t n)
{
    void *p;
    TLY_STAGE(s)
    {
        p = malloc(n);
    }
    cr_assert_not_null(p);
    return p;
}

static void free_in(enum tly_stage s, void *p)
{
    TLY_STAGE(s)
    {
        free(p);
    }
}

TLY_TEST(mem, stage_names_round_trip)
{
    for (int s = 0; s < TLY_NSTAGES; s++)
        cr_expect_eq(tly_stage_from_name(tly_stage_name((enum tly_stage)s)), s);
    cr_expect_str_eq(tly_stage_name(TLY_ENCODE), "encode");
    cr_expect_str_eq(tly_stage_name(TLY_UNSTAGED), "unstaged");
    cr_expect_eq(tly_stage_from_name("nope"), -1);
}

static enum tly_stage leave_by_return(void)
{
    TLY_STAGE(TLY_SIGN)
    {
        return tly_stage_current();
    }
    return TLY_NSTAGES;
}

TLY_TEST(mem, nested_stages_innermost_wins)
{
    /* Record inside the scopes, assert outside: Criterion's assertions allocate. */
    enum tly_stage seen[8];
    seen[0] = tly_stage_current();
    TLY_STAGE(TLY_PUT)
    {
        seen[1] = tly_stage_current();
        TLY_STAGE(TLY_HTTP)
        {
            seen[2] = tly_stage_current();
            enum tly_stage prev = tly_stage_enter(TLY_SIGN);
            seen[3] = prev;
            seen[4] = tly_stage_current();
            tly_stage_leave(prev);
        }
        seen[5] = tly_stage_current();
        for (int i = 0; i < 3; i++)
            TLY_STAGE(TLY_GET)
            {
                break;
            }
        seen[6] = tly_stage_current();
        seen[7] = leave_by_return();
        seen[7] = seen[7] == TLY_SIGN ? tly_stage_current() : TLY_NSTAGES;
    }
    cr_expect_eq(seen[0], TLY_UNSTAGED);
    cr_expect_eq(seen[1], TLY_PUT);
    cr_expect_eq(seen[2], TLY_HTTP);
    cr_expect_eq(seen[3], TLY_HTTP, "enter returns the previous stage");
    cr_expect_eq(seen[4], TLY_SIGN);
    cr_expect_eq(seen[5], TLY_PUT, "leaving the inner scope restores the outer stage");
    cr_expect_eq(seen[6], TLY_PUT, "break out of a scope restores the stage");
    cr_expect_eq(seen[7], TLY_PUT, "return out of a scope restores the stage");
    cr_expect_eq(tly_stage_current(), TLY_UNSTAGED);
}

TLY_TEST(mem, nested_allocations_go_to_innermost)
{
    TLY_REQUIRE_TRACKING();
    struct tly_mem_snapshot a, b;
    tly_mem_snapshot(&a);
    void *outer, *inner;
    TLY_STAGE(TLY_PUT)
    {
        outer = malloc(1000);
        TLY_STAGE(TLY_SIGN)
        {
            inner = malloc(2000);
        }
    }
    tly_mem_snapshot(&b);
    cr_expect_eq(TLY_DELTA(a, b, TLY_PUT, allocs), 1);
    cr_expect_eq(TLY_DELTA(a, b, TLY_PUT, alloc_bytes), malloc_usable_size(outer));
    cr_expect_eq(TLY_DELTA(a, b, TLY_SIGN, allocs), 1);
    cr_expect_eq(TLY_DELTA(a, b, TLY_SIGN, alloc_bytes), malloc_usable_size(inner));
    free_in(TLY_PUT, outer);
    free_in(TLY_SIGN, inner);
}

TLY_TEST(mem, exact_counters_on_a_known_sequence)
{
    TLY_REQUIRE_TRACKING();
    struct tly_mem_snapshot a, b, c;
    tly_mem_snapshot(&a);
    void *p[4];
    TLY_STAGE(TLY_ENCODE)
    {
        p[0] = malloc(100);
        p[1] = calloc(10, 1000);
        p[2] = malloc(200000);
        if (posix_memalign(&p[3], 4096, 5000) != 0)
            p[3] = NULL;
    }
    cr_assert_not_null(p[3]);
    size_t usable = 0, small_usable = 0;
    for (int i = 0; i < 4; i++)
        usable += malloc_usable_size(p[i]);
    small_usable = usable - malloc_usable_size(p[2]);
    tly_mem_snapshot(&b);
    cr_expect_eq(TLY_DELTA(a, b, TLY_ENCODE, allocs), 4);
    cr_expect_eq(TLY_DELTA(a, b, TLY_ENCODE, frees), 0);
    cr_expect_eq(TLY_DELTA(a, b, TLY_ENCODE, alloc_bytes), usable);
    cr_expect_eq(TLY_DELTA(a, b, TLY_ENCODE, alloc_req_bytes), 100 + 10000 + 200000 + 5000);
    /* live bytes are requested ones: the large block what was asked for, the small ones their class */
    cr_expect_eq(TLY_DELTA(a, b, TLY_ENCODE, live_bytes), (int64_t)(small_usable + 200000));
    cr_expect_eq(b.reserved_live_bytes - a.reserved_live_bytes, (int64_t)usable);
    cr_expect_geq(b.stage[TLY_ENCODE].peak_bytes, b.stage[TLY_ENCODE].live_bytes);
    TLY_STAGE(TLY_ENCODE)
    {
        for (int i = 0; i < 4; i++)
            free(p[i]);
    }
    tly_mem_snapshot(&c);
    cr_expect_eq(TLY_DELTA(a, c, TLY_ENCODE, frees), 4);
    cr_expect_eq(TLY_DELTA(a, c, TLY_ENCODE, live_bytes), 0);
    cr_expect_eq(TLY_DELTA(a, c, TLY_ENCODE, allocs), 4, "frees do not count as allocations");
}

/* The two peaks of one block whose size class is well above its request (jemalloc 5.3: 100,000,000
 * bytes are a 100,663,296-byte class), grown and shrunk by realloc: requested and reserved each
 * follow their own units, and a free gives back exactly what was charged. */
TLY_TEST(mem, requested_and_reserved_peaks)
{
    TLY_REQUIRE_TRACKING();
    struct tly_mem_snapshot a, b, c;
    tly_mem_reset_peaks();
    tly_mem_snapshot(&a);
    void *p = alloc_in(TLY_DECODE, 100000000);
    size_t u1 = malloc_usable_size(p);
    cr_assert_gt(u1, 100000000, "jemalloc's class for 100 MB is above it");
    TLY_STAGE(TLY_DECODE)
    {
        p = realloc(p, 150000000);
        cr_assert_not_null(p);
    }
    size_t u2 = malloc_usable_size(p);
    tly_mem_snapshot(&b);
    cr_expect_eq(b.live_bytes - a.live_bytes, 150000000);
    cr_expect_eq(b.reserved_live_bytes - a.reserved_live_bytes, (int64_t)u2);
    cr_expect_geq(b.peak_bytes - a.live_bytes, 150000000);
    cr_expect_geq(b.reserved_peak_bytes - a.reserved_live_bytes, (int64_t)u2);
    cr_expect_geq(b.reserved_peak_bytes - b.peak_bytes, (int64_t)(u2 - 150000000));
    TLY_STAGE(TLY_DECODE)
    {
        p = realloc(p, 70000); /* shrunk, still a large block */
        cr_assert_not_null(p);
    }
    tly_mem_snapshot(&b);
    cr_expect_eq(b.live_bytes - a.live_bytes, 70000);
    cr_expect_eq(b.reserved_live_bytes - a.reserved_live_bytes, (int64_t)malloc_usable_size(p));
    free_in(TLY_DECODE, p);
    tly_mem_snapshot(&c);
    cr_expect_eq(c.live_bytes, a.live_bytes);
    cr_expect_eq(c.reserved_live_bytes, a.reserved_live_bytes);
    cr_expect_eq(c.stage[TLY_DECODE].live_bytes, a.stage[TLY_DECODE].live_bytes);
}

TLY_TEST(mem, realloc_in_place_and_moved)
{
    TLY_REQUIRE_TRACKING();
    struct tly_mem_snapshot a, b;
    tly_mem_snapshot(&a);
    void *p = alloc_in(TLY_DECODE, 1 << 20);
    TLY_STAGE(TLY_DECODE)
    {
        for (size_t n = 1 << 20; n <= 64 << 20; n *= 2) {
            p = realloc(p, n);
            cr_assert_not_null(p);
        }
    }
    tly_mem_snapshot(&b);
    cr_expect_eq(TLY_DELTA(a, b, TLY_DECODE, live_bytes), (int64_t)malloc_usable_size(p));
    free_in(TLY_DECODE, p);
    tly_mem_snapshot(&b);
    cr_expect_eq(TLY_DELTA(a, b, TLY_DECODE, live_bytes), 0);
}

TLY_TEST(mem, large_frees_charged_to_allocating_stage)
{
    TLY_REQUIRE_TRACKING();
    struct tly_mem_snapshot a, b;
    tly_mem_snapshot(&a);
    void *big = alloc_in(TLY_GET, 1 << 20);
    void *small = alloc_in(TLY_GET, 64);
    size_t big_u = malloc_usable_size(big), small_u = malloc_usable_size(small);
    free_in(TLY_SCATTER, big);
    free_in(TLY_SCATTER, small);
    tly_mem_snapshot(&b);
    cr_expect_eq(TLY_DELTA(a, b, TLY_GET, live_bytes), (int64_t)small_u,
                 "the large block's free is charged to get, which allocated it");
    cr_expect_eq(TLY_DELTA(a, b, TLY_GET, frees), 1);
    cr_expect_eq(TLY_DELTA(a, b, TLY_SCATTER, live_bytes), -(int64_t)small_u,
                 "a small free is charged to the freeing stage, as the header says");
    cr_expect_eq(TLY_DELTA(a, b, TLY_SCATTER, frees), 1);
    cr_expect_geq(b.stage[TLY_GET].peak_bytes - a.stage[TLY_GET].live_bytes, (int64_t)(big_u + small_u));
    /* Even the books for the leak check: the same small size, the other way round. */
    free_in(TLY_GET, alloc_in(TLY_SCATTER, 64));
}

struct worker {
    enum tly_stage stage;
    int n;
};

static void *churn(void *arg)
{
    struct worker *w = arg;
    TLY_STAGE(w->stage)
    {
        for (int i = 0; i < w->n; i++) {
            void *volatile p = malloc(64 + (size_t)(i % 4) * 16);
            free(p);
        }
    }
    return NULL;
}

TLY_TEST(mem, eight_threads_no_lost_updates)
{
    TLY_REQUIRE_TRACKING();
    enum { THREADS = 8, N = 100000 };
    static const enum tly_stage stages[] = {TLY_ENCODE, TLY_DECODE};
    struct tly_mem_snapshot a, b;
    pthread_t th[THREADS];
    struct worker w[THREADS];
    tly_mem_snapshot(&a);
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){stages[i % 2], N};
        cr_assert_eq(pthread_create(&th[i], NULL, churn, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    tly_mem_snapshot(&b);
    uint64_t per_pair = 0;
    for (int i = 0; i < 4; i++)
        per_pair += nallocx(64 + (size_t)i * 16, 0);
    for (size_t k = 0; k < 2; k++) {
        enum tly_stage s = stages[k];
        cr_expect_eq(TLY_DELTA(a, b, s, allocs), (uint64_t)N * THREADS / 2, "%s allocs", tly_stage_name(s));
        cr_expect_eq(TLY_DELTA(a, b, s, frees), (uint64_t)N * THREADS / 2, "%s frees", tly_stage_name(s));
        cr_expect_eq(TLY_DELTA(a, b, s, alloc_bytes), per_pair * N / 4 * THREADS / 2, "%s bytes", tly_stage_name(s));
        cr_expect_eq(TLY_DELTA(a, b, s, live_bytes), 0, "%s live", tly_stage_name(s));
    }
    /* Process-wide: every stage's live bytes sum to the process's, and the churn left nothing. */
    int64_t sum = 0;
    for (int s = 0; s < TLY_NSTAGES; s++)
        sum += b.stage[s].live_bytes;
    cr_expect_eq(sum, b.live_bytes, "stages sum to the process-wide live bytes");
    cr_expect_eq(b.live_bytes - a.live_bytes,
                 TLY_DELTA(a, b, TLY_UNSTAGED, live_bytes) + TLY_DELTA(a, b, TLY_CALLER, live_bytes),
                 "only unstaged bookkeeping (thread start/exit) may remain");
}

TLY_TEST(mem, peak_reset_and_at_peak_split)
{
    TLY_REQUIRE_TRACKING();
    tly_mem_reset_peaks();
    struct tly_mem_snapshot a, b;
    tly_mem_snapshot(&a);
    cr_expect_eq(a.peak_bytes, a.live_bytes, "a reset peak starts at the live bytes");
    void *e = alloc_in(TLY_ENCODE, 3 << 20);
    void *p = alloc_in(TLY_PUT, 5 << 20);
    free_in(TLY_PUT, p);
    void *e2 = alloc_in(TLY_ENCODE, 1 << 20); /* lower than the peak: does not move it */
    tly_mem_snapshot(&b);
    int64_t eu = (int64_t)malloc_usable_size(e), pu = 5 << 20;
    cr_expect_geq(b.peak_bytes - a.live_bytes, eu + pu);
    cr_expect_lt(b.peak_bytes - a.live_bytes, eu + pu + (64 << 10), "peak within 64 KiB of the two blocks");
    cr_expect_eq(b.stage[TLY_ENCODE].at_peak_bytes - a.stage[TLY_ENCODE].live_bytes, eu);
    cr_expect_eq(b.stage[TLY_PUT].at_peak_bytes - a.stage[TLY_PUT].live_bytes, pu);
    cr_expect_eq(b.stage[TLY_PUT].peak_bytes - a.stage[TLY_PUT].live_bytes, pu);
    free_in(TLY_ENCODE, e);
    free_in(TLY_ENCODE, e2);

    tly_mem_reset_peaks();
    tly_mem_snapshot(&b);
    cr_expect_eq(b.peak_bytes, b.live_bytes, "reset brings the peak back to live");
    cr_expect_eq(b.stage[TLY_PUT].peak_bytes, b.stage[TLY_PUT].live_bytes);
}

TLY_TEST(mem, copy_ledger_per_stage)
{
    struct tly_mem_snapshot a, b;
    char src[4096], dst[4096];
    memset(src, 7, sizeof src);
    tly_mem_snapshot(&a);
    TLY_STAGE(TLY_GATHER)
    {
        tly_copy(dst, src, 1000);
        tly_copy(dst, src, 3000);
    }
    TLY_STAGE(TLY_HTTP)
    {
        tly_copy(dst, src, 10);
        tly_copy_note(90);
    }
    tly_mem_snapshot(&b);
    cr_expect_eq(memcmp(dst, src, 3000), 0);
    cr_expect_eq(TLY_DELTA(a, b, TLY_GATHER, copies), 2);
    cr_expect_eq(TLY_DELTA(a, b, TLY_GATHER, copy_bytes), 4000);
    cr_expect_eq(TLY_DELTA(a, b, TLY_HTTP, copies), 2);
    cr_expect_eq(TLY_DELTA(a, b, TLY_HTTP, copy_bytes), 100);
    cr_expect_eq(TLY_DELTA(a, b, TLY_ENCODE, copy_bytes), 0);
}

TLY_TEST(mem, timeline_is_bounded_and_keeps_the_peak)
{
    TLY_REQUIRE_TRACKING();
    tly_mem_reset_peaks();
    enum { STEPS = 20000 };
    /* Many moves of 128 KiB: far more samples than the timeline holds, with one spike inside. */
    for (int i = 0; i < STEPS; i++) {
        void *p = alloc_in(TLY_DECODE, i == STEPS / 3 ? (64 << 20) : (128 << 10));
        free_in(TLY_DECODE, p);
    }
    static struct tly_mem_sample s[TLY_TIMELINE_CAP + 8];
    size_t n = tly_mem_timeline(s, TLY_TIMELINE_CAP + 8);
    cr_assert_leq(n, TLY_TIMELINE_CAP + 2, "bounded: %zu samples", n);
    cr_assert_gt(n, 10);
    struct tly_mem_snapshot snap;
    tly_mem_snapshot(&snap);
    int64_t max = 0;
    size_t peaks = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i].live_bytes > max)
            max = s[i].live_bytes;
        peaks += s[i].is_peak;
        if (i)
            cr_expect_geq(s[i].t_ns, s[i - 1].t_ns, "time order");
    }
    cr_expect_eq(peaks, 1);
    cr_expect_eq(max, snap.peak_bytes, "the timeline's highest sample is the peak");
    char *buf;
    size_t len;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_eq(tly_mem_timeline_write_json(f), 0);
    fclose(f);
    cr_expect(strstr(buf, "\"peak_index\"") != NULL);
    cr_expect(strstr(buf, "\"decode\"") != NULL);
    free(buf);
}

TLY_TEST(mem, crosschecks_agree_with_the_tracker)
{
    TLY_REQUIRE_TRACKING();
    struct tly_mem_crosscheck x0, x1;
    cr_assert_eq(tly_mem_crosscheck(&x0), 0);
    enum { N = 64 };
    void *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = alloc_in(TLY_PLAN, 1 << 20);
        memset(p[i], 1, 1 << 20); /* resident, for VmHWM */
    }
    cr_assert_eq(tly_mem_crosscheck(&x1), 0);
    /* Tolerance: jemalloc merges small-object counts per arena lazily (tcache), so its totals may
     * trail ours by what caches hold: 1 MiB plus 1% of the 64 MiB moved. */
    int64_t tol = (1 << 20) + (64 << 20) / 100;
    int64_t d_tracked = x1.tracked_live_bytes - x0.tracked_live_bytes;
    int64_t d_je = (int64_t)x1.jemalloc_allocated_bytes - (int64_t)x0.jemalloc_allocated_bytes;
    cr_expect_geq(d_tracked, (int64_t)N << 20);
    cr_expect_leq(llabs(d_tracked - d_je), tol, "tracked %lld vs jemalloc stats.allocated %lld", (long long)d_tracked,
                  (long long)d_je);
    int64_t d_thread = (int64_t)(x1.thread_allocated_bytes - x0.thread_allocated_bytes);
    int64_t d_thread_tracked = (int64_t)(x1.thread_tracked_bytes - x0.thread_tracked_bytes);
    cr_expect_leq(llabs(d_thread - d_thread_tracked), tol, "thread.allocated %lld vs tracked %lld", (long long)d_thread,
                  (long long)d_thread_tracked);
    cr_expect_geq(x1.rss_peak_bytes, (uint64_t)N << 20, "VmHWM holds the 64 MiB touched");
    cr_expect_geq(x1.rss_peak_bytes, x1.rss_bytes);
    double coverage = (double)x1.tracked_live_bytes / (double)x1.jemalloc_allocated_bytes;
    cr_expect(coverage > 0.9 && coverage < 1.1, "coverage %.3f", coverage);
    for (int i = 0; i < N; i++)
        free_in(TLY_PLAN, p[i]);
}
