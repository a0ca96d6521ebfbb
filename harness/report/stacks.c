/*
 * A result's call stacks (see stacks.h). A result may have been written by a profiled process: every
 * member is checked for its type here, and a site that is not what the preload or the engine writes
 * is skipped.
 */
#include "report/stacks.h"

#include <errno.h>
#include <string.h>

#include "harness.h"
#include "report/report.h"
#include "tally/error.h"

#define TOP 3
#define SHOWN_FRAMES 5
#define SHOWN_LINES 3

static json_t *block(json_t *r, const char *key)
{
    json_t *s = json_object_get(r, "stacks");
    json_t *b = json_is_object(s) && json_is_true(json_object_get(s, "enabled")) ? json_object_get(s, key) : NULL;
    return json_is_object(b) && json_is_array(json_object_get(b, "sites")) ? b : NULL;
}

/* A frame as folded stacks take it: no ';' (the separator) and no line break. */
static void put_frame(FILE *f, const char *s)
{
    for (; *s; s++)
        fputc(*s == ';' || *s == '\n' || *s == '\r' ? ':' : *s, f);
}

static void folded_site(FILE *f, json_t *site)
{
    json_t *frames = json_object_get(site, "frames"), *bytes = json_object_get(site, "bytes");
    if (!json_is_array(frames) || !json_is_integer(bytes) || json_integer_value(bytes) <= 0)
        return;
    size_t i, n = 0;
    json_t *fr;
    json_array_foreach(frames, i, fr)
    {
        if (!json_is_string(fr))
            continue;
        fputs(n++ ? ";" : "", f);
        put_frame(f, json_string_value(fr));
    }
    if (n == 0)
        fputs("[no frames]", f);
    if (json_is_true(json_object_get(site, "truncated")))
        fputs(";[truncated]", f);
    fprintf(f, " %lld\n", (long long)json_integer_value(bytes));
}

static int folded_file(const char *dir, const char *name, json_t *b)
{
    char path[TLY_H_PATH];
    int err = tly_h_pathf(path, "%s/%s", dir, name);
    if (err)
        return err;
    FILE *f = fopen(path, "we");
    if (f == NULL)
        return tly_fail(-errno, "cannot write %s", path);
    size_t i;
    json_t *site;
    json_array_foreach(json_object_get(b, "sites"), i, site)
    {
        if (json_is_object(site))
            folded_site(f, site);
    }
    json_t *other = json_object_get(b, "other_bytes");
    if (json_is_integer(other) && json_integer_value(other) > 0)
        fprintf(f, "[other sites] %lld\n", (long long)json_integer_value(other));
    if (fclose(f) != 0)
        return tly_fail(-EIO, "cannot write %s", path);
    return 0;
}

int tly_h_stacks_folded(const char *dir, json_t *r)
{
    static const char *const keys[] = {"peak", "copies", "allocated"}, *const files[] = {"peak.folded", "copies.folded",
                                                                                         "allocated.folded"};
    for (int k = 0; k < 3; k++) {
        json_t *b = block(r, keys[k]);
        int err = b ? folded_file(dir, files[k], b) : 0;
        if (err)
            return err;
    }
    return 0;
}

int tly_h_stacks_folded_cells(const char *dir, json_t *results)
{
    size_t i;
    json_t *e;
    json_array_foreach(results, i, e)
    {
        if (!json_is_true(json_object_get(json_object_get(e, "stacks"), "enabled")))
            continue;
        char key[512], path[TLY_H_PATH];
        tly_h_cell_key(e, key, sizeof key);
        for (char *p = key; *p; p++)
            if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
                  *p == '-' || *p == '_' || *p == '/') ||
                (*p == '.' && (p == key || p[-1] == '/')))
                *p = '_';
        int err = tly_h_pathf(path, "%s/stacks/%s", dir, key);
        if (!err)
            err = tly_h_mkdirs(path);
        if (!err)
            err = tly_h_stacks_folded(path, e);
        if (err)
            return err;
    }
    return 0;
}

/* A frame that places the site in the program: a source line ("file.py:12 function", "function
 * (file.c:12)") or a Python extension's function ("numcodecs/blosc compress"); not a bare library
 * symbol ("malloc [libc.so.6]") or address ("lib+0x1234"). */
static bool placed(const char *s)
{
    for (const char *p = strchr(s, ':'); p; p = strchr(p + 1, ':'))
        if (p[1] >= '0' && p[1] <= '9')
            return true;
    return strchr(s, '[') == NULL && strstr(s, "+0x") == NULL && strchr(s, ' ') != NULL;
}

/* Where in the program a site is: its innermost frames that place it (SHOWN_LINES of them, outermost
 * first), then its leaf frame; the innermost frames when none does. */
static void print_frames(FILE *f, json_t *frames)
{
    size_t n = json_array_size(frames), pick[SHOWN_FRAMES], k = 0;
    for (size_t i = n; i-- > 0 && k < SHOWN_LINES;) {
        json_t *fr = json_array_get(frames, i);
        if (json_is_string(fr) && placed(json_string_value(fr)))
            pick[k++] = i;
    }
    if (k == 0)
        for (size_t i = n; i-- > 0 && k < SHOWN_FRAMES - 1;)
            pick[k++] = i;
    char shown[512];
    for (size_t j = k; j-- > 0;) {
        json_t *fr = json_array_get(frames, pick[j]);
        fprintf(f, "%s%s",
                j + 1 < k     ? " > "
                : pick[j] > 0 ? "... > "
                              : "",
                tly_h_term(shown, sizeof shown, json_string_value(fr)));
        if (j > 0 && pick[j - 1] > pick[j] + 1)
            fputs(" > ...", f);
    }
    if (k > 0 && pick[0] + 1 < n) {
        json_t *leaf = json_array_get(frames, n - 1);
        fprintf(f, "%s > %s", pick[0] + 2 < n ? " > ..." : "",
                tly_h_term(shown, sizeof shown, json_is_string(leaf) ? json_string_value(leaf) : "?"));
    }
}

static void print_block(FILE *f, json_t *r, const char *key, const char *title, const char *count_key,
                        const char *indent)
{
    json_t *b = block(r, key);
    if (b == NULL || json_array_size(json_object_get(b, "sites")) == 0)
        return;
    char c[32], lib[4 * 160];
    json_t *total = json_object_get(b, "total_bytes");
    fprintf(f, "%s%s (%s in %lld sites):\n", indent, title,
            tly_h_bytes(c, sizeof c, json_is_integer(total) ? (double)json_integer_value(total) : 0.0),
            (long long)json_integer_value(json_object_get(b, "sites_count")));
    size_t i;
    json_t *site;
    json_array_foreach(json_object_get(b, "sites"), i, site)
    {
        if (i >= TOP)
            break;
        json_t *bytes = json_object_get(site, "bytes"), *l = json_object_get(site, "library"),
               *stage = json_object_get(site, "stage");
        char where[160];
        if (json_is_string(stage)) /* the engine's: its stage is where it ran */
            snprintf(where, sizeof where, "stage %s", json_string_value(stage));
        else
            snprintf(where, sizeof where, "%s", json_is_string(l) ? json_string_value(l) : "?");
        long long count = (long long)json_integer_value(json_object_get(site, count_key));
        fprintf(f, "%s  %zu. %s, %lld %s%s, %s: ", indent, i + 1,
                tly_h_bytes(c, sizeof c, json_is_integer(bytes) ? (double)json_integer_value(bytes) : 0.0), count,
                strcmp(count_key, "blocks") == 0 ? "block" : "cop",
                count == 1 ? (count_key[0] == 'b' ? "" : "y") : (count_key[0] == 'b' ? "s" : "ies"),
                tly_h_term(lib, sizeof lib, where));
        print_frames(f, json_object_get(site, "frames"));
        fputc('\n', f);
    }
}

void tly_h_stacks_print(FILE *f, json_t *r, const char *indent)
{
    print_block(f, r, "peak", "where the peak's large blocks were allocated", "blocks", indent);
    print_block(f, r, "copies", "where the large copies were made", "count", indent);
}
