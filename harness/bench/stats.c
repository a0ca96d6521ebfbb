/*
 * tally bench's statistics: a figure is the median of its repetitions with their range and spread;
 * a figure whose repetitions spread more than the run allows is unstable, and no ratio is made from
 * it; a ratio above TLY_H_BENCH_LIMIT_SLACK to a physical limit marks its row invalid (the limit was
 * mis-measured: nothing beats the machine) where even its range's low end (tally's slowest over the
 * limit's fastest) is above it; a median above it whose range reaches under is a row at its limit,
 * within the noise, reported with its ratio and said in its reasons. Pure functions of numbers and JSON.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int cmp_int64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

void tly_h_bench_fig_of(const double *v, int n, struct tly_h_bench_fig *f)
{
    *f = (struct tly_h_bench_fig){.n = n > 0 ? n : 0};
    if (n <= 0)
        return;
    double *s = malloc((size_t)n * sizeof *s);
    if (s == NULL)
        return;
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    f->med = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    f->min = s[0];
    f->max = s[n - 1];
    f->spread = f->med > 0 ? (f->max - f->min) / f->med : 0;
    free(s);
}

int64_t tly_h_bench_median_i(const int64_t *v, int n)
{
    if (n <= 0)
        return 0;
    int64_t *s = malloc((size_t)n * sizeof *s);
    if (s == NULL)
        return 0;
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_int64);
    int64_t m = n % 2 ? s[n / 2] : s[n / 2 - 1] + (s[n / 2] - s[n / 2 - 1]) / 2;
    free(s);
    return m;
}

static json_t *num_or_null(bool ok, double v)
{
    return ok && isfinite(v) ? json_real(v) : json_null();
}

json_t *tly_h_bench_fig_json(const double *v, int n, double max_spread)
{
    struct tly_h_bench_fig f;
    tly_h_bench_fig_of(v, n, &f);
    json_t *reps = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(reps, json_real(v[i]));
    bool ok = f.n > 0 && f.med > 0;
    return json_pack("{s:o, s:o, s:o, s:o, s:b, s:o}", "gbps", num_or_null(ok, f.med), "gbps_min",
                     num_or_null(ok, f.min), "gbps_max", num_or_null(ok, f.max), "spread", num_or_null(ok, f.spread),
                     "unstable", ok && f.spread > max_spread, "reps", reps);
}

const char *const tly_h_bench_ratio_keys[] = {
    "ratio_to_raw",       "ratio_to_codec_limit", "ratio_to_layout_limit", "ratio_to_overlap_limit",
    "ratio_to_cpu_limit", "ratio_to_zarr_python", "ratio_to_untracked",    NULL};

/* A ratio: tally's figure over the figure named den (NULL: the one the row's field named by `in`
 * names: layout_limit, overlap_limit). Physical: nothing can beat it (raw I/O, the codec alone,
 * reading and decoding overlapped); the strided simplest codes are not, as the engine may stream
 * runs where they gather or scatter. */
static const struct {
    const char *key, *den, *in;
    bool physical;
} ratios[] = {
    {"ratio_to_raw", "raw", NULL, true},
    {"ratio_to_codec_limit", "codec", NULL, true},
    {"ratio_to_layout_limit", NULL, "layout_limit", true},
    {"ratio_to_overlap_limit", NULL, "overlap_limit", true},
    {"ratio_to_cpu_limit", NULL, "cpu_limit", true},
    {"ratio_to_zarr_python", "zarr_python", NULL, false},
    {"ratio_to_untracked", "untracked", NULL, false},
};

/* A measured figure of the row: its numbers; false when it is missing or was not measured. */
static bool fig_get(json_t *figs, const char *name, struct tly_h_bench_fig *f, bool *unstable)
{
    json_t *j = name ? json_object_get(figs, name) : NULL;
    *f = (struct tly_h_bench_fig){0};
    *unstable = json_is_true(json_object_get(j, "unstable"));
    if (!json_is_number(json_object_get(j, "gbps")))
        return false;
    f->n = 1;
    f->med = json_number_value(json_object_get(j, "gbps"));
    f->min = json_number_value(json_object_get(j, "gbps_min"));
    f->max = json_number_value(json_object_get(j, "gbps_max"));
    f->spread = json_number_value(json_object_get(j, "spread"));
    return f->med > 0 && f->min > 0;
}

static void reason(json_t *reasons, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void reason(json_t *reasons, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    json_array_append_new(reasons, json_string(buf));
}

/* Each figure's state in words; sets *unstable and *error (a figure other than zarr-python's that
 * did not run). */
static void judge_figures(json_t *figs, json_t *reasons, bool *unstable, bool *error)
{
    const char *name;
    json_t *fig;
    json_object_foreach(figs, name, fig)
    {
        struct tly_h_bench_fig f;
        bool shaky;
        if (!fig_get(figs, name, &f, &shaky)) {
            const char *why = json_string_value(json_object_get(fig, "error"));
            reason(reasons, "%s: not measured (%s)", name, why ? why : "no repetition ran");
            *error |= strcmp(name, "zarr_python") != 0;
        } else if (json_is_string(json_object_get(fig, "error"))) {
            reason(reasons, "%s: a repetition failed (%s)", name, json_string_value(json_object_get(fig, "error")));
            *error |= strcmp(name, "zarr_python") != 0;
        } else if (shaky) {
            reason(reasons, "%s: unstable, its repetitions spread %.0f%% of the median (%.3g-%.3g GB/s)", name,
                   100 * f.spread, f.min, f.max);
            *unstable = true;
        }
    }
}

static void set_median(json_t *row, const char *key, json_t *figs, const char *name)
{
    json_t *g = name ? json_object_get(json_object_get(figs, name), "gbps") : NULL;
    json_object_set_new(row, key, json_is_number(g) ? json_real(json_number_value(g)) : json_null());
}

static void set_ratio(json_t *row, const char *key, bool ok, double v, double lo, double hi)
{
    char k[64];
    json_object_set_new(row, key, num_or_null(ok, v));
    snprintf(k, sizeof k, "%s_min", key);
    json_object_set_new(row, k, num_or_null(ok, lo));
    snprintf(k, sizeof k, "%s_max", key);
    json_object_set_new(row, k, num_or_null(ok, hi));
}

/* Every ratio of the row; *invalid when one to a physical limit is above the slack. */
static void judge_ratios(json_t *row, json_t *figs, json_t *reasons, bool *invalid)
{
    json_t *withheld = json_object();
    struct tly_h_bench_fig t, d;
    bool t_shaky, d_shaky;
    bool t_ok = fig_get(figs, "tally", &t, &t_shaky);
    for (size_t i = 0; i < sizeof ratios / sizeof ratios[0]; i++) {
        const char *den = ratios[i].den ? ratios[i].den : json_string_value(json_object_get(row, ratios[i].in));
        bool applies = den && json_object_get(figs, den);
        bool ok = applies && t_ok && !t_shaky && fig_get(figs, den, &d, &d_shaky) && !d_shaky;
        double v = ok ? t.med / d.med : 0;
        bool physical =
            ratios[i].physical &&
            !(den && (!strcmp(den, "codec_layout") || !strcmp(den, "overlap_layout") || !strcmp(den, "cpu_layout")));
        /* one chunk: the layout's limit is the contiguous one, already judged under its own name */
        bool again = !ratios[i].den && den && (!strcmp(den, "raw") || !strcmp(den, "codec"));
        /* above the slack only in the median, its repetitions' range reaching under: at the limit,
         * within the noise of two figures measured apart, not a limit mis-measured */
        if (ok && physical && v > TLY_H_BENCH_LIMIT_SLACK && t.min / d.max <= TLY_H_BENCH_LIMIT_SLACK) {
            if (!again)
                reason(reasons,
                       "at its limit: %s is %.2f, above %.2f, but its range (%.2f-%.2f) reaches under it: "
                       "within the repetitions' noise, %s is what bounds it",
                       ratios[i].key, v, TLY_H_BENCH_LIMIT_SLACK, t.min / d.max, t.max / d.min, den);
        } else if (ok && physical && v > TLY_H_BENCH_LIMIT_SLACK) {
            if (!again)
                reason(reasons,
                       "invalid: %s would be %.2f, above %.2f: the engine cannot beat %s, a physical limit, so that "
                       "limit was mis-measured",
                       ratios[i].key, v, TLY_H_BENCH_LIMIT_SLACK, den);
            else /* every withheld ratio is named in the reasons */
                reason(reasons,
                       "invalid: %s is the ratio to %s here (one chunk: the layout's limit is the contiguous one)",
                       ratios[i].key, den);
            *invalid = true;
            json_object_set_new(withheld, ratios[i].key, json_string("invalid"));
            ok = false;
        } else if (applies && !ok) {
            json_object_set_new(withheld, ratios[i].key,
                                json_string(t_ok && fig_get(figs, den, &d, &d_shaky) ? "unstable" : "not measured"));
        }
        set_ratio(row, ratios[i].key, ok, v, ok ? t.min / d.max : 0, ok ? t.max / d.min : 0);
    }
    json_object_set_new(row, "withheld", withheld);
}

/*
 * How much of its overlapped limit the machine's CPUs let any engine reach: the CPU-shared limit over
 * the overlapped one (overlap_reachable, with its range), repetition by repetition, since both come
 * from the same measurement (overlap.c: the CPU-shared figure is the overlapped one's CPU seconds over
 * the CPUs). Below 1 where the two halves' CPU seconds do not fit side by side on the CPUs; on S3
 * against a server on the same CPUs its CPU counts too. Null where the row has no such pair.
 */
static void set_reachable(json_t *row, json_t *figs)
{
    const char *on = json_string_value(json_object_get(row, "overlap_limit"));
    const char *cn = json_string_value(json_object_get(row, "cpu_limit"));
    json_t *o = on ? json_object_get(json_object_get(figs, on), "reps") : NULL;
    json_t *c = cn ? json_object_get(json_object_get(figs, cn), "reps") : NULL;
    size_t n = json_array_size(o);
    double v[TLY_H_BENCH_MAX_REPS];
    bool ok = n > 0 && n == json_array_size(c) && n <= TLY_H_BENCH_MAX_REPS;
    for (size_t i = 0; ok && i < n; i++) {
        double od = json_number_value(json_array_get(o, i)), cd = json_number_value(json_array_get(c, i));
        ok = od > 0 && cd > 0;
        v[i] = ok ? cd / od : 0;
    }
    struct tly_h_bench_fig f = {0};
    if (ok)
        tly_h_bench_fig_of(v, (int)n, &f);
    set_ratio(row, "overlap_reachable", ok, f.med, f.min, f.max);
}

void tly_h_bench_judge(json_t *row)
{
    json_t *figs = json_object_get(row, "figures"), *reasons = json_array();
    bool unstable = false, invalid = false, error = false;
    judge_figures(figs, reasons, &unstable, &error);
    json_t *t = json_object_get(figs, "tally");
    const char *own[] = {"gbps", "gbps_min", "gbps_max", "spread"};
    for (int k = 0; k < 4; k++) {
        json_t *v = json_object_get(t, own[k]);
        json_object_set_new(row, own[k], json_is_number(v) ? json_real(json_number_value(v)) : json_null());
    }
    set_median(row, "baseline_gbps", figs, json_string_value(json_object_get(row, "limit")));
    set_median(row, "layout_limit_gbps", figs, json_string_value(json_object_get(row, "layout_limit")));
    set_median(row, "overlap_limit_gbps", figs, json_string_value(json_object_get(row, "overlap_limit")));
    set_median(row, "cpu_limit_gbps", figs, json_string_value(json_object_get(row, "cpu_limit")));
    set_median(row, "zarr_python_gbps", figs, "zarr_python");
    set_median(row, "untracked_gbps", figs, "untracked");
    json_t *peak = json_object_get(t, "peak_extra_bytes");
    json_object_set_new(row, "peak_extra_bytes", json_is_integer(peak) ? json_incref(peak) : json_null());
    judge_ratios(row, figs, reasons, &invalid);
    set_reachable(row, figs);
    json_object_set_new(row, "unstable", json_boolean(unstable));
    json_object_set_new(row, "invalid", json_boolean(invalid));
    json_object_set_new(row, "status",
                        json_string(error      ? "error"
                                    : invalid  ? "invalid"
                                    : unstable ? "unstable"
                                               : "ok"));
    json_object_set_new(row, "reasons", reasons);
}
