/*
 * trace.json: each cell as a process of Chrome trace events, for Perfetto (ui.perfetto.dev opens
 * the Chrome JSON format): its threads' slices (stage scopes, chunks, codec calls, waits, S3
 * requests), copies as instants, flows from a chunk's encode to its put, as the cell recorded them
 * (cell/events.c), and its memory timeline as a counter track of live bytes per stage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report/report.h"
#include "tally/tally.h"

static void counters(FILE *f, json_t *e, size_t pid)
{
    json_t *tl = json_object_get(e, "timeline"), *cols = json_object_get(tl, "columns");
    size_t j;
    json_t *r;
    json_array_foreach(json_object_get(tl, "samples"), j, r)
    {
        fprintf(f, ",\n{\"name\":\"live bytes\",\"ph\":\"C\",\"pid\":%zu,\"tid\":0,\"ts\":%.3f,\"args\":{", pid,
                tly_h_finite(json_number_value(json_array_get(r, 0)) * 1e6)); /* JSON has no inf */
        for (size_t k = 2; k < json_array_size(cols); k++) {
            json_t *name = json_array_get(cols, k);
            char *quoted = json_dumps(name, JSON_ENCODE_ANY);
            fprintf(f, "%s%s:%lld", k > 2 ? "," : "", quoted ? quoted : "\"?\"",
                    json_integer_value(json_array_get(r, k)));
            free(quoted);
        }
        fprintf(f, "}}");
    }
}

/* A time of the cell's trace (whole ns) as Chrome's µs. */
static void us_key(json_t *ev, const char *from, const char *to)
{
    json_t *v = json_object_get(ev, from);
    if (v) {
        json_object_set_new(ev, to, json_real((double)json_integer_value(v) / 1e3));
        json_object_del(ev, from);
    }
}

/* The cell's own events (recorded with pid 0, times in ns), as process @p pid. */
static void slices(FILE *f, json_t *e, size_t pid)
{
    size_t j;
    json_t *ev;
    json_array_foreach(json_object_get(e, "trace"), j, ev)
    {
        json_t *copy = json_copy(ev);
        json_object_set_new(copy, "pid", json_integer((json_int_t)pid));
        us_key(copy, "ts_ns", "ts");
        us_key(copy, "dur_ns", "dur");
        char *text = json_dumps(copy, JSON_COMPACT | JSON_REAL_PRECISION(16));
        if (text)
            fprintf(f, ",\n%s", text);
        free(text);
        json_decref(copy);
    }
}

int tly_h_write_trace(const char *dir, json_t *results)
{
    char path[TLY_H_PATH];
    snprintf(path, sizeof path, "%s/trace.json", dir);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return tly_fail_errno("%s", path);
    fprintf(f, "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n");
    bool first = true;
    size_t i;
    json_t *e;
    json_array_foreach(results, i, e)
    {
        if (strcmp(tly_h_str(e, "status"), "ok") != 0)
            continue;
        char key[512];
        const char *impl = tly_h_str(e, "impl");
        if (*impl && strcmp(impl, "tally") != 0)
            tly_h_cell_key(e, key, sizeof key);
        else
            snprintf(key, sizeof key, "%s", tly_h_str(e, "scenario"));
        json_t *name = json_pack("{s:s, s:s, s:I, s:I, s:{s:s}}", "name", "process_name", "ph", "M", "pid",
                                 (json_int_t)i + 1, "tid", (json_int_t)0, "args", "name", key);
        char *text = json_dumps(name, JSON_COMPACT);
        fprintf(f, "%s%s", first ? "" : ",\n", text);
        first = false;
        free(text);
        json_decref(name);
        slices(f, e, i + 1);
        counters(f, e, i + 1);
    }
    fprintf(f, "\n]}\n");
    return fclose(f) == 0 ? 0 : tly_fail_errno("%s", path);
}
