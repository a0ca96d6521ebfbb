/* tally bench's statistics, verdicts and --compare on synthetic figures: no timing is measured here. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>
#include <stdio.h>

#include "bench/bench.h"

/* A figure from repetitions, as row.c makes one (max spread 0.25). */
static json_t *fig(const double *v, int n)
{
    return tly_h_bench_fig_json(v, n, 0.25);
}

/* A row with tally, untracked, its limit and optionally a layout limit; judged. */
static json_t *row(const char *limit, const char *layout, json_t *t, json_t *u, json_t *l, json_t *ly)
{
    json_t *figs = json_pack("{s:o, s:o, s:o}", "tally", t, "untracked", u, limit, l);
    if (ly)
        json_object_set_new(figs, layout, ly);
    json_t *r = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:o}", "name", "read-local-none-x", "key",
                          "read-local-none-x", "op", "read", "array_bytes", (json_int_t)1 << 26, "limit", limit,
                          "layout_limit", layout ? layout : limit, "figures", figs);
    tly_h_bench_judge(r);
    return r;
}

static double num(json_t *o, const char *k)
{
    return json_number_value(json_object_get(o, k));
}

static const char *status(json_t *r)
{
    return json_string_value(json_object_get(r, "status"));
}

static const char *withheld(json_t *r, const char *k)
{
    return json_string_value(json_object_get(json_object_get(r, "withheld"), k));
}

static const double steady[5] = {1.00, 0.98, 1.02, 0.99, 1.01}, limit_v[5] = {2.0, 2.1, 1.9, 2.0, 2.05};

Test(bench_stats, median_range_and_spread)
{
    struct tly_h_bench_fig f;
    double odd[5] = {5, 1, 4, 2, 3}, even[4] = {4, 1, 3, 2};
    tly_h_bench_fig_of(odd, 5, &f);
    cr_assert(f.n == 5 && f.med == 3 && f.min == 1 && f.max == 5);
    cr_assert(fabs(f.spread - 4.0 / 3.0) < 1e-12);
    cr_assert(odd[0] == 5, "the repetitions are not reordered");
    tly_h_bench_fig_of(even, 4, &f);
    cr_assert(f.med == 2.5);
    tly_h_bench_fig_of(NULL, 0, &f);
    cr_assert(f.n == 0 && f.med == 0);
    int64_t peaks[4] = {40, 10, 30, 20};
    cr_assert(tly_h_bench_median_i(peaks, 4) == 25);
}

Test(bench_stats, a_figure_that_spreads_is_unstable)
{
    double wide[5] = {1.0, 1.5, 1.1, 1.2, 1.0};
    json_t *a = fig(steady, 5), *b = fig(wide, 5), *none = fig(NULL, 0);
    cr_assert(json_is_false(json_object_get(a, "unstable")));
    cr_assert(json_is_true(json_object_get(b, "unstable")), "spread 0.45 > 0.25");
    cr_assert(json_array_size(json_object_get(b, "reps")) == 5);
    cr_assert(json_is_null(json_object_get(none, "gbps")));
    json_decref(a);
    json_decref(b);
    json_decref(none);
}

Test(bench_stats, stable_figures_give_ratios_with_their_ranges)
{
    json_t *r = row("raw", NULL, fig(steady, 5), fig(steady, 5), fig(limit_v, 5), NULL);
    cr_assert_str_eq(status(r), "ok");
    cr_assert(fabs(num(r, "ratio_to_raw") - 0.5) < 1e-9);
    cr_assert(fabs(num(r, "ratio_to_raw_min") - 0.98 / 2.1) < 1e-9);
    cr_assert(fabs(num(r, "ratio_to_raw_max") - 1.02 / 1.9) < 1e-9);
    cr_assert(fabs(num(r, "ratio_to_layout_limit") - 0.5) < 1e-9, "one chunk: the layout's limit is the raw one");
    cr_assert(json_is_null(json_object_get(r, "ratio_to_codec_limit")) && !withheld(r, "ratio_to_codec_limit"),
              "a ratio that does not apply is null, and not withheld");
    cr_assert(json_is_null(json_object_get(r, "ratio_to_zarr_python")));
    cr_assert(fabs(num(r, "gbps") - 1.0) < 1e-9 && fabs(num(r, "baseline_gbps") - 2.0) < 1e-9);
    json_decref(r);
}

Test(bench_stats, an_unstable_figure_gives_no_ratio)
{
    double wide[5] = {1.0, 2.0, 1.1, 1.2, 1.0};
    json_t *r = row("codec", NULL, fig(steady, 5), fig(steady, 5), fig(wide, 5), NULL);
    cr_assert_str_eq(status(r), "unstable");
    cr_assert(json_is_null(json_object_get(r, "ratio_to_codec_limit")));
    cr_assert_str_eq(withheld(r, "ratio_to_codec_limit"), "unstable");
    cr_assert(json_is_number(json_object_get(r, "ratio_to_untracked")), "the stable pair keeps its ratio");
    cr_assert(json_array_size(json_object_get(r, "reasons")) == 1);
    json_decref(r);
    r = row("codec", NULL, fig(wide, 5), fig(steady, 5), fig(steady, 5), NULL);
    cr_assert(json_is_null(json_object_get(r, "ratio_to_untracked")), "tally unstable: no ratio at all");
    cr_assert(json_is_number(json_object_get(r, "gbps")), "its median is still reported");
    json_decref(r);
}

Test(bench_stats, beating_a_physical_limit_is_invalid)
{
    json_t *r = row("raw", "raw_layout", fig(limit_v, 5), fig(steady, 5), fig(steady, 5), fig(limit_v, 5));
    cr_assert_str_eq(status(r), "invalid");
    cr_assert(json_is_true(json_object_get(r, "invalid")));
    cr_assert(json_is_null(json_object_get(r, "ratio_to_raw")), "withheld, not reported");
    cr_assert_str_eq(withheld(r, "ratio_to_raw"), "invalid");
    cr_assert(json_is_number(json_object_get(r, "ratio_to_layout_limit")), "1.0 to the layout's limit is fine");
    json_decref(r);
    /* one chunk: the layout's limit is the codec's, so both ratios are withheld, and the reasons name each */
    r = row("codec", NULL, fig(limit_v, 5), fig(steady, 5), fig(steady, 5), NULL);
    cr_assert_str_eq(withheld(r, "ratio_to_codec_limit"), "invalid");
    cr_assert_str_eq(withheld(r, "ratio_to_layout_limit"), "invalid");
    const char *keys[2] = {"ratio_to_codec_limit", "ratio_to_layout_limit"};
    for (int k = 0; k < 2; k++) {
        bool named = false;
        size_t i;
        json_t *why;
        json_array_foreach(json_object_get(r, "reasons"), i, why) named |=
            strstr(json_string_value(why), keys[k]) != NULL;
        cr_assert(named, "the reasons name %s", keys[k]);
    }
    json_decref(r);
    /* the codec's strided code is a target, not a physical limit: the engine may stream where it gathers */
    double half[5] = {0.5, 0.5, 0.5, 0.5, 0.5};
    r = row("codec", "codec_layout", fig(steady, 5), fig(steady, 5), fig(steady, 5), fig(half, 5));
    cr_assert_str_eq(status(r), "ok");
    cr_assert(fabs(num(r, "ratio_to_layout_limit") - 2.0) < 1e-9);
    json_decref(r);
}

/* A compressed read's overlapped limit: a ratio of its own, physical (reading and decoding overlapped
 * cannot be beaten); the layout's overlapped limit, with its decode the simplest strided code, is not. */
Test(bench_stats, the_overlapped_limit)
{
    double half[5] = {0.5, 0.5, 0.5, 0.5, 0.5};
    json_t *r = row("codec", NULL, fig(steady, 5), fig(steady, 5), fig(limit_v, 5), NULL);
    cr_assert(json_is_null(json_object_get(r, "ratio_to_overlap_limit")) && !withheld(r, "ratio_to_overlap_limit"),
              "no overlapped limit: the ratio does not apply");
    json_decref(r);
    const char *kinds[] = {"overlap", "overlap_layout"};
    for (int k = 0; k < 2; k++) {
        for (int beaten = 0; beaten < 2; beaten++) {
            json_t *figs = json_pack("{s:o, s:o, s:o, s:o}", "tally", fig(steady, 5), "untracked", fig(steady, 5),
                                     "codec", fig(limit_v, 5), kinds[k], fig(beaten ? half : limit_v, 5));
            r = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:o}", "name", "read-local-blosc-x", "key",
                          "read-local-blosc-x", "op", "read", "array_bytes", (json_int_t)1 << 26, "limit", "codec",
                          "layout_limit", "codec", "overlap_limit", kinds[k], "figures", figs);
            tly_h_bench_judge(r);
            cr_assert(fabs(num(r, "overlap_limit_gbps") - (beaten ? 0.5 : 2.0)) < 1e-9);
            if (!beaten) {
                cr_assert(fabs(num(r, "ratio_to_overlap_limit") - 0.5) < 1e-9);
                cr_assert_str_eq(status(r), "ok");
            } else if (k == 0) {
                cr_assert_str_eq(status(r), "invalid", "beating reading and decoding overlapped: mis-measured");
                cr_assert_str_eq(withheld(r, "ratio_to_overlap_limit"), "invalid");
            } else {
                cr_assert_str_eq(status(r), "ok", "the strided simplest code is a target, not a physical limit");
                cr_assert(fabs(num(r, "ratio_to_overlap_limit") - 2.0) < 1e-9);
            }
            json_decref(r);
        }
    }
}

/* The CPU-shared limit (the row's cpu_limit names its figure): a ratio of its own, physical for a
 * contiguous row (beating it is a mis-measured limit), not for the layout's (cpu_layout: its halves are
 * the simplest strided codes); a row without one has no ratio. */
Test(bench_stats, the_cpu_shared_limit)
{
    double half[5] = {0.5, 0.5, 0.5, 0.5, 0.5}, cpu_v[5] = {1.25, 1.3, 1.2, 1.25, 1.25};
    const char *kinds[] = {"cpu", "cpu_layout"};
    for (int k = 0; k < 2; k++) {
        for (int beaten = 0; beaten < 2; beaten++) {
            json_t *figs =
                json_pack("{s:o, s:o, s:o, s:o, s:o}", "tally", fig(steady, 5), "untracked", fig(steady, 5), "codec",
                          fig(limit_v, 5), "overlap", fig(limit_v, 5), kinds[k], fig(beaten ? half : cpu_v, 5));
            json_t *r =
                json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:o}", "name", "write-local-zstd-x", "key",
                          "write-local-zstd-x", "op", "write", "array_bytes", (json_int_t)1 << 26, "limit", "codec",
                          "layout_limit", "codec", "overlap_limit", "overlap", "cpu_limit", kinds[k], "figures", figs);
            tly_h_bench_judge(r);
            cr_assert(fabs(num(r, "cpu_limit_gbps") - (beaten ? 0.5 : 1.25)) < 1e-9);
            cr_assert(fabs(num(r, "ratio_to_overlap_limit") - 0.5) < 1e-9, "the overlapped limit is still judged");
            if (!beaten) {
                cr_assert(fabs(num(r, "ratio_to_cpu_limit") - 0.8) < 1e-9);
                cr_assert(fabs(num(r, "ratio_to_cpu_limit_min") - 0.98 / 1.3) < 1e-9, "range: min over max");
                cr_assert_str_eq(status(r), "ok");
            } else if (k == 0) {
                cr_assert_str_eq(status(r), "invalid", "beating the codec and the I/O on the same CPUs: mis-measured");
                cr_assert_str_eq(withheld(r, "ratio_to_cpu_limit"), "invalid");
            } else {
                cr_assert_str_eq(status(r), "ok", "the layout's CPU-shared limit is a target, not a physical limit");
                cr_assert(fabs(num(r, "ratio_to_cpu_limit") - 2.0) < 1e-9);
            }
            json_decref(r);
        }
    }
    json_t *r = row("codec", NULL, fig(steady, 5), fig(steady, 5), fig(limit_v, 5), NULL);
    cr_assert(json_is_null(json_object_get(r, "ratio_to_cpu_limit")) && !withheld(r, "ratio_to_cpu_limit") &&
                  json_is_null(json_object_get(r, "cpu_limit_gbps")),
              "no CPU-shared limit: the ratio does not apply");
    json_decref(r);
}

/* What the CPUs allow of the overlapped limit: the CPU-shared figure over the overlapped one, taken
 * repetition by repetition (both come from the same processes), so that a machine's drift, which moves
 * both alike, does not widen it; null where the row has no CPU-shared limit or the pairs do not match. */
Test(bench_stats, what_the_cpus_allow_of_the_overlapped_limit)
{
    double ov[5] = {1.0, 2.0, 1.5, 1.2, 1.8}, cpu[5] = {0.8, 1.5, 1.2, 0.9, 1.62}; /* 0.8 0.75 0.8 0.75 0.9 */
    json_t *figs = json_pack("{s:o, s:o, s:o, s:o, s:o}", "tally", fig(steady, 5), "untracked", fig(steady, 5), "codec",
                             fig(limit_v, 5), "overlap", fig(ov, 5), "cpu", fig(cpu, 5));
    json_t *r = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:o}", "name", "read-s3-zstd-x", "key",
                          "read-s3-zstd-x", "op", "read", "array_bytes", (json_int_t)1 << 26, "limit", "codec",
                          "layout_limit", "codec", "overlap_limit", "overlap", "cpu_limit", "cpu", "figures", figs);
    tly_h_bench_judge(r);
    cr_assert(fabs(num(r, "overlap_reachable") - 0.8) < 1e-9, "the median of the pairs, not 1.2 / 1.5");
    cr_assert(fabs(num(r, "overlap_reachable_min") - 0.75) < 1e-9 && fabs(num(r, "overlap_reachable_max") - 0.9) < 1e-9,
              "its range is the pairs' (the medians' ratio range would be 0.4-1.62)");
    cr_assert(json_object_get(json_object_get(r, "withheld"), "overlap_reachable") == NULL,
              "a ratio of two limits, never withheld: it judges the machine, not the engine");
    json_decref(r);
    double four[4] = {0.8, 1.5, 1.2, 0.9};
    figs = json_pack("{s:o, s:o, s:o, s:o, s:o}", "tally", fig(steady, 5), "untracked", fig(steady, 5), "codec",
                     fig(limit_v, 5), "overlap", fig(ov, 5), "cpu", fig(four, 4));
    r = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:o}", "name", "read-s3-zstd-x", "key", "read-s3-zstd-x",
                  "op", "read", "array_bytes", (json_int_t)1 << 26, "limit", "codec", "layout_limit", "codec",
                  "overlap_limit", "overlap", "cpu_limit", "cpu", "figures", figs);
    tly_h_bench_judge(r);
    cr_assert(json_is_null(json_object_get(r, "overlap_reachable")), "a repetition's CPU time missing: no pairs");
    json_decref(r);
    r = row("codec", NULL, fig(steady, 5), fig(steady, 5), fig(limit_v, 5), NULL);
    cr_assert(json_is_null(json_object_get(r, "overlap_reachable")), "no CPU-shared limit: does not apply");
    json_decref(r);
}

/* A median above the slack whose range reaches under it is at the limit within the noise (read-local-
 * blosc-one-chunk on a shared 2-CPU machine: 1.13 of its CPU-shared limit, tally's repetitions spread
 * 20%), reported with its ratio and a reason; a range wholly above it is a limit mis-measured. */
Test(bench_stats, a_median_over_the_limit_within_the_noise_is_at_the_limit)
{
    double noisy[5] = {1.0, 1.13, 1.2, 0.97, 1.15}, tight[5] = {1.12, 1.13, 1.14, 1.13, 1.12},
           lim[5] = {1.0, 1.0, 1.0, 1.01, 0.99};
    json_t *r = row("raw", NULL, fig(noisy, 5), fig(noisy, 5), fig(lim, 5), NULL);
    cr_assert_str_eq(status(r), "ok");
    cr_assert(fabs(num(r, "ratio_to_raw") - 1.13) < 1e-9, "%g", num(r, "ratio_to_raw"));
    cr_assert(fabs(num(r, "ratio_to_raw_min") - 0.97 / 1.01) < 1e-9);
    bool said = false;
    size_t i;
    json_t *why;
    json_array_foreach(json_object_get(r, "reasons"), i, why) said |=
        strstr(json_string_value(why), "at its limit: ratio_to_raw is 1.13") != NULL;
    cr_assert(said, "the reasons say the row is at its limit");
    json_decref(r);
    r = row("raw", NULL, fig(tight, 5), fig(tight, 5), fig(lim, 5), NULL);
    cr_assert_str_eq(status(r), "invalid", "1.11 at the least: above the slack beyond the noise");
    json_decref(r);
}

Test(bench_stats, a_figure_that_did_not_run_is_an_error)
{
    json_t *missing = fig(NULL, 0);
    json_object_set_new(missing, "error", json_string("could not start"));
    json_t *r = row("raw", NULL, fig(steady, 5), fig(steady, 5), missing, NULL);
    cr_assert_str_eq(status(r), "error");
    cr_assert_str_eq(withheld(r, "ratio_to_raw"), "not measured");
    json_decref(r);
}

/* A bench document of one judged row whose tally figure is @p t. */
static json_t *doc(const double *t, double limit_scale)
{
    double l[5];
    for (int i = 0; i < 5; i++)
        l[i] = limit_v[i] * limit_scale;
    json_t *rows = json_array();
    json_array_append_new(rows, row("raw", NULL, fig(t, 5), fig(t, 5), fig(l, 5), NULL));
    return json_pack("{s:s, s:i, s:b, s:I, s:o, s:[]}", "schema", TLY_H_BENCH_SCHEMA, "reps", 5, "quick", 1,
                     "array_bytes", (json_int_t)1 << 26, "rows", rows, "scaling");
}

static int compare(json_t *a, json_t *b, double tol)
{
    FILE *devnull = fopen("/dev/null", "w");
    int r = tly_h_bench_compare(a, b, tol, devnull);
    fclose(devnull);
    json_decref(a);
    json_decref(b);
    return r;
}

Test(bench_compare, overlapping_ranges_are_noise)
{
    double slower[5] = {0.80, 0.98, 0.79, 0.81, 0.80}; /* 20% slower median, but the ranges meet */
    cr_assert(compare(doc(steady, 1), doc(slower, 1), 0.10) == 0);
}

Test(bench_compare, apart_and_past_the_tolerance_is_a_regression)
{
    double slower[5] = {0.80, 0.82, 0.79, 0.81, 0.80};
    /* ratio_to_raw only: one chunk's ratio_to_layout_limit is the same ratio, counted once; both sides
     * of ratio_to_untracked moved; GB/s does not gate */
    cr_assert(compare(doc(steady, 1), doc(slower, 1), 0.10) == 1);
    cr_assert(compare(doc(slower, 1), doc(steady, 1), 0.10) == 0, "an improvement is no regression");
    cr_assert(compare(doc(steady, 1), doc(slower, 1), 0.25) == 0, "within a wider tolerance");
}

Test(bench_compare, a_slower_machine_moves_gbps_and_does_not_fail)
{
    double slower[5] = {0.80, 0.82, 0.79, 0.81, 0.80};
    cr_assert(compare(doc(steady, 1), doc(slower, 0.8), 0.10) == 0, "GB/s moved, the ratios held: no regression");
}

Test(bench_compare, other_documents_are_refused)
{
    json_t *old = json_pack("{s:s, s:[]}", "schema", "tally-bench/1", "rows");
    cr_assert(compare(old, doc(steady, 1), 0.10) == -1);
}
