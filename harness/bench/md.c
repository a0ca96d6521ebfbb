/*
 * bench.md: the bench document as a page. Each figure is shown as its median with its spread, each
 * ratio with its range; a ratio withheld says why (unstable, invalid), and every row that is not
 * ok says so in words under the table.
 */
#include <stdio.h>
#include <string.h>

#include "bench/bench.h"

static double num(json_t *o, const char *key)
{
    return json_number_value(json_object_get(o, key));
}

static const char *str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* How a column shows its figure. */
enum show { TEXT, GBPS, SPREAD, RATIO, MIB, WHOLE, REAL, VERDICT };

struct col {
    const char *head, *key;
    enum show show;
    const char *fig; /* GB/s: the figure it is the median of (a row key naming one, or its name), or NULL */
};

/* A ratio with its range, "0.93 (0.88-0.98)"; why it is withheld; or "—" where it does not apply. */
static void ratio(char *buf, size_t cap, json_t *row, const char *key)
{
    char k[64];
    json_t *v = json_object_get(row, key);
    const char *why = json_string_value(json_object_get(json_object_get(row, "withheld"), key));
    if (!json_is_number(v)) {
        snprintf(buf, cap, "%s", why ? why : "—");
        return;
    }
    snprintf(k, sizeof k, "%s_min", key);
    double lo = num(row, k);
    snprintf(k, sizeof k, "%s_max", key);
    snprintf(buf, cap, "%.2f (%.2f-%.2f)", json_number_value(v), lo, num(row, k));
}

/* One cell of a row: a GB/s median "2.40", a spread "4%" (with " !" past @p max), a ratio, MiB. */
static void cell(char *buf, size_t cap, json_t *row, const struct col *c, double max)
{
    json_t *v = json_object_get(row, c->key);
    double x = json_number_value(v);
    if (c->show == TEXT)
        snprintf(buf, cap, "%s", str(row, c->key));
    else if (c->show == VERDICT)
        snprintf(buf, cap, json_is_object(v) ? "**%s**: %s" : "—", str(v, "resource"), str(v, "sentence"));
    else if (c->show == RATIO)
        ratio(buf, cap, row, c->key);
    else if (!json_is_number(v))
        snprintf(buf, cap, "—");
    else if (c->show == SPREAD)
        snprintf(buf, cap, "%.0f%%%s", 100 * x, x > max ? " !" : "");
    else if (c->show == MIB)
        snprintf(buf, cap, "%.1f", x / 1048576.0);
    else if (c->show == WHOLE)
        snprintf(buf, cap, "%.0f", x);
    else
        snprintf(buf, cap, c->show == GBPS ? "%.2f" : "%.1f", x);
    if (c->fig && !strcmp(c->fig, "limit") && json_is_string(json_object_get(row, "limit_note")) &&
        json_is_number(v)) /* a limit of one thread by the format (the notes say why) */
        snprintf(buf + strlen(buf), cap - strlen(buf), " (1 thread: the format)");
    if (c->fig) { /* the median of an unstable figure: marked as the spread column marks it */
        const char *name = json_string_value(json_object_get(row, c->fig));
        json_t *fig = json_object_get(json_object_get(row, "figures"), name ? name : c->fig);
        if (json_is_true(json_object_get(fig, "unstable")))
            snprintf(buf + strlen(buf), cap - strlen(buf), " !");
    }
}

/* A table of @p rows in columns @p cols. */
static void table(FILE *f, json_t *rows, const struct col *cols, size_t ncols, double max)
{
    for (size_t k = 0; k < ncols; k++)
        fprintf(f, "| %s ", cols[k].head);
    fputs("|\n", f);
    for (size_t k = 0; k < ncols; k++)
        fputs("|---", f);
    fputs("|\n", f);
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r)
    {
        for (size_t k = 0; k < ncols; k++) {
            char buf[512];
            cell(buf, sizeof buf, r, &cols[k], max);
            fprintf(f, "| %s ", buf);
        }
        fputs("|\n", f);
    }
}

static const struct col row_cols[] = {
    {"row", "name", TEXT},
    {"status", "status", TEXT},
    {"GB/s", "gbps", GBPS, "tally"},
    {"spread", "spread", SPREAD},
    {"limit GB/s", "baseline_gbps", GBPS, "limit"},
    {"layout limit GB/s", "layout_limit_gbps", GBPS, "layout_limit"},
    {"ratio_to_raw", "ratio_to_raw", RATIO},
    {"ratio_to_codec_limit", "ratio_to_codec_limit", RATIO},
    {"ratio_to_layout_limit", "ratio_to_layout_limit", RATIO},
    {"overlap limit GB/s", "overlap_limit_gbps", GBPS, "overlap_limit"},
    {"ratio_to_overlap_limit", "ratio_to_overlap_limit", RATIO},
    {"CPU-shared limit GB/s", "cpu_limit_gbps", GBPS, "cpu_limit"},
    {"ratio_to_cpu_limit", "ratio_to_cpu_limit", RATIO},
    {"of the overlap limit the CPUs allow", "overlap_reachable", RATIO},
    {"zarr-python GB/s", "zarr_python_gbps", GBPS, "zarr_python"},
    {"ratio_to_zarr_python", "ratio_to_zarr_python", RATIO},
    {"ratio_to_untracked", "ratio_to_untracked", RATIO},
    {"peak extra MiB", "peak_extra_bytes", MIB},
    {"bound by (tally's median repetition)", "bottleneck", VERDICT},
};

static const struct col scaling_cols[] = {
    {"row", "name", TEXT},
    {"status", "status", TEXT},
    {"chunk MiB", "chunk_mib", REAL},
    {"threads", "threads", WHOLE},
    {"io", "io_concurrency", WHOLE},
    {"write GB/s", "write_gbps", GBPS},
    {"spread", "write_spread", SPREAD},
    {"read GB/s", "read_gbps", GBPS},
    {"spread", "read_spread", SPREAD},
    {"write peak extra MiB", "write_peak_extra_bytes", MIB},
    {"read peak extra MiB", "read_peak_extra_bytes", MIB},
};

static void header(FILE *f, json_t *doc)
{
    json_t *m = json_object_get(doc, "machine");
    fprintf(
        f,
        "# tally bench\n\nMachine: %lld CPUs, %.1f GiB, %s, Linux %s. GB/s = 10^9 bytes/s. %s run%s%s%s.\n\n"
        "Each figure is the median of %lld repetitions, each in a process of its own; the kinds of a row "
        "take turns, repetition by repetition, so that the machine's drift reaches them alike. Spread = "
        "(max - min) / median; a figure whose spread is above %.0f%% is unstable (its median marked !) and gives no "
        "ratio. Ratios are medians over medians, with the range their repetitions allow (min/max to "
        "max/min). A ratio above %.2f to a physical limit (raw I/O, the codec alone, raw I/O into the "
        "layout, reading and decoding overlapped) is withheld and its row is invalid (the limit was "
        "mis-measured) when even its range's low end is above it; a median above it whose range reaches "
        "under it is reported, the row at its limit within the noise.\n\n",
        json_integer_value(json_object_get(m, "cpus")),
        (double)json_integer_value(json_object_get(m, "mem_bytes")) / 1073741824.0, str(m, "cpu_model"),
        str(m, "kernel"), json_is_true(json_object_get(doc, "quick")) ? "A quick" : "A full",
        json_is_string(json_object_get(doc, "filter")) ? " of the rows matching `" : "",
        json_is_string(json_object_get(doc, "filter")) ? str(doc, "filter") : "",
        json_is_string(json_object_get(doc, "filter")) ? "`" : "", json_integer_value(json_object_get(doc, "reps")),
        100 * num(doc, "max_spread"), num(doc, "limit_slack"));
    json_t *commit = json_object_get(doc, "git_commit");
    fprintf(f, "Made by `%s`, started %s, %.0f min; commit %.12s%s.\n\n", str(doc, "command"), str(doc, "date"),
            num(doc, "took_s") / 60, json_is_string(commit) ? json_string_value(commit) : "unknown",
            json_is_true(json_object_get(doc, "git_dirty")) ? " with uncommitted changes" : "");
    json_t *again = json_object_get(doc, "judged_again");
    if (json_is_object(again)) /* tally bench --judge: the same figures, judged by a later build */
        fprintf(f,
                "Judged again from that run's bench.json by `%s` on %s at commit %.12s: the figures and their "
                "repetitions are the run's, unchanged, as are its bottleneck sentences; the ratios, statuses and "
                "the text that explains them are this build's.\n\n",
                str(again, "command"), str(again, "date"),
                json_is_string(json_object_get(again, "git_commit")) ? str(again, "git_commit") : "unknown");
    fprintf(f, "Memory policy: **%s**. %s\n\n%s\n\n", str(doc, "memory_policy"), str(doc, "memory_policy_about"),
            str(doc, "about"));
}

/* The rows whose limit is one thread by the format, and why. */
static void limit_notes(FILE *f, json_t *doc)
{
    size_t i;
    json_t *r;
    bool any = false;
    json_array_foreach(json_object_get(doc, "rows"), i, r)
    {
        if (!json_is_string(json_object_get(r, "limit_note")))
            continue;
        fprintf(f, "%s- **%s**: %s.\n", any ? "" : "\n## Limits of one thread by the format\n\n", str(r, "name"),
                str(r, "limit_note"));
        any = true;
    }
}

/* Every row that is not ok, and why, in words; and an ok row at a limit within its noise. */
static void notes(FILE *f, json_t *doc)
{
    const char *tables[] = {"rows", "scaling"};
    bool any = false;
    for (int t = 0; t < 2; t++) {
        size_t i, j;
        json_t *r, *why;
        json_array_foreach(json_object_get(doc, tables[t]), i, r)
        {
            bool ok = !strcmp(str(r, "status"), "ok");
            if (ok && json_array_size(json_object_get(r, "reasons")) == 0)
                continue;
            fprintf(f, "%s- **%s** is %s:", any ? "" : "\n## Rows that are not ok, or at a limit\n\n", str(r, "name"),
                    ok ? "ok" : str(r, "status"));
            any = true;
            json_array_foreach(json_object_get(r, "reasons"), j, why)
            {
                fprintf(f, "%s %s", j ? ";" : "", json_string_value(why));
            }
            fputs(".\n", f);
        }
    }
}

void tly_h_bench_write_md(FILE *f, json_t *doc)
{
    double max = num(doc, "max_spread");
    header(f, doc);
    table(f, json_object_get(doc, "rows"), row_cols, sizeof row_cols / sizeof row_cols[0], max);
    if (json_array_size(json_object_get(doc, "scaling"))) {
        fputs("\n## Scaling\n\nThe same array, chunks per dimension x threads (x io-concurrency for S3); memory "
              "limit as above; tally alone, write and read taking turns.\n\n",
              f);
        table(f, json_object_get(doc, "scaling"), scaling_cols, sizeof scaling_cols / sizeof scaling_cols[0], max);
    }
    limit_notes(f, doc);
    notes(f, doc);
}
