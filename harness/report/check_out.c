/* tally check's verdicts as text, as JUnit XML and as a Markdown summary for a CI job's page. */
#include <stdio.h>
#include <string.h>

#include "report/check.h"
#include "report/report.h"
#include "tally/tally.h"

bool tly_h_check_fails(const char *kind, bool fail_on_throughput)
{
    return !strcmp(kind, TLY_H_REGRESSION) || !strcmp(kind, TLY_H_MISSING) || !strcmp(kind, TLY_H_FAILED) ||
           (fail_on_throughput && !strcmp(kind, TLY_H_SLOWER));
}

static const char *s(json_t *l, const char *k)
{
    const char *v = json_string_value(json_object_get(l, k));
    return v ? v : "";
}

/* "stage encode copies", "library numpy copies", "peak_extra_ratio". */
static void figure_text(json_t *l, char *buf, size_t cap)
{
    const char *owner = json_string_value(json_object_get(l, "owner"));
    snprintf(buf, cap, "%s%s%s", owner ? owner : "", owner ? " " : "", s(l, "figure"));
}

void tly_h_check_line_text(json_t *l, char *buf, size_t cap)
{
    const char *kind = s(l, "kind");
    if (json_is_string(json_object_get(l, "reason")) && json_is_null(json_object_get(l, "figure"))) {
        snprintf(buf, cap, "%-10s %s: %s", kind, s(l, "cell"), s(l, "reason"));
        return;
    }
    char fig[128];
    figure_text(l, fig, sizeof fig);
    if (!strcmp(kind, TLY_H_NEW_FIGURE) || !strcmp(kind, TLY_H_MISSING)) { /* one side has no value */
        bool new_fig = !strcmp(kind, TLY_H_NEW_FIGURE);
        snprintf(buf, cap, "%-10s %s %s = %.6g: %s", kind, s(l, "cell"), fig,
                 json_number_value(json_object_get(l, new_fig ? "new" : "old")), s(l, "reason"));
        return;
    }
    int n = snprintf(buf, cap, "%-10s %s %s: %.4g -> %.4g (tolerance %.4g)", kind, s(l, "cell"), fig,
                     json_number_value(json_object_get(l, "old")), json_number_value(json_object_get(l, "new")),
                     json_number_value(json_object_get(l, "tolerance")));
    if (json_is_string(json_object_get(l, "reason")) && n > 0 && (size_t)n < cap)
        snprintf(buf + n, cap - (size_t)n, ": %s", s(l, "reason"));
}

int tly_h_check_junit(const char *path, json_t *lines, json_t *cells, bool fail_on_throughput)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return tly_fail_errno("%s", path);
    size_t failures = 0, i;
    json_t *l;
    json_array_foreach(lines, i, l) failures += tly_h_check_fails(s(l, "kind"), fail_on_throughput);
    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n<testsuite name=\"tally.check\" "
            "tests=\"%zu\" failures=\"%zu\">\n",
            json_object_size(cells), failures);
    const char *key;
    json_t *v;
    json_object_foreach(cells, key, v)
    {
        fprintf(f, "<testcase classname=\"tally.check\" name=\"");
        tly_h_xml_text(f, key);
        fprintf(f, "\">");
        json_array_foreach(lines, i, l)
        {
            if (strcmp(s(l, "cell"), key) != 0)
                continue;
            char text[1024];
            tly_h_check_line_text(l, text, sizeof text);
            bool fails = tly_h_check_fails(s(l, "kind"), fail_on_throughput);
            fprintf(f, fails                                  ? "<failure message=\""
                       : !strcmp(s(l, "kind"), TLY_H_ALLOWED) ? "<skipped message=\""
                                                              : "<system-out>");
            tly_h_xml_text(f, text);
            fprintf(f, fails || !strcmp(s(l, "kind"), TLY_H_ALLOWED) ? "\"/>" : "</system-out>");
        }
        fprintf(f, "</testcase>\n");
    }
    fprintf(f, "</testsuite>\n</testsuites>\n");
    return fclose(f) == 0 ? 0 : tly_fail_errno("%s", path);
}

int tly_h_check_summary(const char *path, json_t *lines, int compared, bool fail_on_throughput)
{
    FILE *f = fopen(path, "a");
    if (f == NULL)
        return tly_fail_errno("%s", path);
    size_t bad = 0, shown = 0, i;
    json_t *l;
    json_array_foreach(lines, i, l) bad += tly_h_check_fails(s(l, "kind"), fail_on_throughput);
    fprintf(f, "## tally check: %s\n\n%d cells compared with the baseline; %zu lines fail the check.\n\n",
            bad ? "failed" : "passed", compared, bad);
    json_array_foreach(lines, i, l)
    {
        if (!strcmp(s(l, "kind"), TLY_H_NEW) || !strcmp(s(l, "kind"), TLY_H_NOTE) ||
            !strcmp(s(l, "kind"), TLY_H_NEW_FIGURE))
            continue;
        if (shown++ == 0)
            fprintf(f, "| verdict | cell | figure | baseline | now | tolerance |\n|---|---|---|---|---|---|\n");
        char fig[128] = "";
        if (!json_is_null(json_object_get(l, "figure")))
            figure_text(l, fig, sizeof fig);
        fprintf(f, "| %s | `", s(l, "kind"));
        tly_h_md_text(f, s(l, "cell"));
        fprintf(f, "` | ");
        tly_h_md_text(f, fig[0] ? fig : s(l, "reason"));
        if (fig[0])
            fprintf(f, " | %.4g | %.4g | %.4g |\n", json_number_value(json_object_get(l, "old")),
                    json_number_value(json_object_get(l, "new")), json_number_value(json_object_get(l, "tolerance")));
        else
            fprintf(f, " | | | |\n");
    }
    if (shown == 0)
        fprintf(f, "No figure moved beyond its tolerance.\n");
    fputc('\n', f);
    return fclose(f) == 0 ? 0 : tly_fail_errno("%s", path);
}
