/* junit.xml: one testcase per cell (named impl/scenario), for CI systems that show test results. */
#include <stdio.h>
#include <string.h>

#include "cell/cell.h"
#include "report/report.h"

static const char *status_of(json_t *e)
{
    const char *s = json_string_value(json_object_get(e, "status"));
    return s ? s : "";
}

static void testcase(FILE *f, json_t *e)
{
    const char *st = status_of(e);
    /* impl/scenario: a scenario alone repeats across the stacks a matrix runs */
    fprintf(f, "<testcase classname=\"tally.matrix\" name=\"");
    tly_h_xml_text(f, json_string_value(json_object_get(e, "impl")));
    fputc('/', f);
    tly_h_xml_text(f, json_string_value(json_object_get(e, "scenario")));
    fprintf(f, "\" time=\"%.3f\">", json_number_value(json_object_get(e, "wall_s")));
    if (!strcmp(st, "skipped") || !strcmp(st, "failed")) {
        fprintf(f, "<%s message=\"", !strcmp(st, "skipped") ? "skipped" : "error");
        tly_h_xml_text(f, json_string_value(json_object_get(e, "reason")));
        fprintf(f, "\"/>");
    } else if (!json_is_true(json_object_get(e, "ok"))) {
        fprintf(f, "<failure message=\"budget failed\">");
        char line[256];
        for (size_t j = 0; tly_h_budget_next_failed(json_object_get(e, "budgets"), &j, line, sizeof line);) {
            tly_h_xml_text(f, line);
            fputc('\n', f);
        }
        fprintf(f, "</failure>");
    }
    fprintf(f, "</testcase>\n");
}

int tly_h_write_junit(const char *path, json_t *results)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return tly_fail_errno("%s", path);
    size_t i, n = json_array_size(results), failures = 0, skipped = 0, errors = 0;
    json_t *e;
    json_array_foreach(results, i, e)
    {
        const char *st = status_of(e);
        skipped += !strcmp(st, "skipped");
        errors += !strcmp(st, "failed");
        failures += !strcmp(st, "ok") && !json_is_true(json_object_get(e, "ok"));
    }
    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n<testsuite name=\"tally.matrix\" "
            "tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" skipped=\"%zu\">\n",
            n, failures, errors, skipped);
    json_array_foreach(results, i, e) testcase(f, e);
    fprintf(f, "</testsuite>\n</testsuites>\n");
    return fclose(f) == 0 ? 0 : tly_fail_errno("%s", path);
}
