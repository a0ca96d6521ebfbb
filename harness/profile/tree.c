/* tally profile's processes: the results directory gathered (see tree.h, docs/impl-protocol.md). */
#include "profile/tree.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cell/preload.h"
#include "cell/resident.h"
#include "harness.h"
#include "report/report.h"

static json_int_t ival(json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

/* A string the program's process wrote, or "" (the files are the program's to write: any shape). */
static const char *sval(json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    return v ? v : "";
}

static bool ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), k = strlen(tail);
    return n >= k && strcmp(s + n - k, tail) == 0;
}

/* Every object in @p dir's PID.START.SEQ.json files, complete or provisional. */
static json_t *read_all(const char *dir)
{
    json_t *all = json_array();
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        char path[TLY_H_PATH];
        if (!ends_with(e->d_name, ".json") || tly_h_pathf(path, "%s/%s", dir, e->d_name) != 0)
            continue;
        json_t *r = json_load_file(path, 0, NULL);
        if (json_is_object(r) && json_is_object(json_object_get(r, "process")) &&
            json_is_object(json_object_get(r, "window")))
            json_array_append(all, r);
        json_decref(r);
    }
    if (d)
        closedir(d);
    return all;
}

void tly_h_tree_remove(const char *dir)
{
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        char path[TLY_H_PATH];
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && tly_h_pathf(path, "%s/%s", dir, e->d_name) == 0)
            unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

static bool complete(json_t *r)
{
    return !json_is_true(json_object_get(r, "incomplete")) && json_is_boolean(json_object_get(r, "tracking"));
}

/* A window's figures, without its timeline: what the processes list holds of each result. */
static json_t *window_summary(json_t *r)
{
    json_t *w = json_deep_copy(json_object_get(r, "window"));
    json_object_del(w, "timeline_t0_ns");
    if (!complete(r))
        return w;
    static const char *const keys[] = {"array_bytes",  "before_bytes", "peak_bytes", "peak_extra_bytes",
                                       "output_bytes", "extra_copies", "wall_s"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        json_object_set(w, keys[i], json_object_get(r, keys[i]));
    json_t *libs = json_object();
    const char *name;
    json_t *v;
    json_object_foreach(json_object_get(r, "libraries"), name, v)
    {
        if (ival(v, "at_peak_bytes") == 0 && ival(v, "copied_bytes") == 0 && ival(v, "peak_bytes") == 0)
            continue;
        json_object_set_new(libs, name,
                            json_pack("{s:O?, s:O?, s:O?}", "at_peak_bytes", json_object_get(v, "at_peak_bytes"),
                                      "peak_bytes", json_object_get(v, "peak_bytes"), "copied_bytes",
                                      json_object_get(v, "copied_bytes")));
    }
    json_object_set_new(w, "libraries", libs);
    return w;
}

static int by_start(const void *a, const void *b)
{
    json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    json_int_t s = ival(x, "start_ns"), t = ival(y, "start_ns");
    return s < t ? -1 : s > t;
}

static int by_seq(const void *a, const void *b)
{
    json_int_t s = ival(*(json_t *const *)a, "seq"), t = ival(*(json_t *const *)b, "seq");
    return s < t ? -1 : s > t;
}

static void sort_array(json_t *arr, int (*cmp)(const void *, const void *))
{
    size_t n = json_array_size(arr);
    json_t **v = calloc(n ? n : 1, sizeof *v);
    for (size_t i = 0; v && i < n; i++)
        v[i] = json_incref(json_array_get(arr, i));
    if (v)
        qsort(v, n, sizeof *v, cmp);
    json_array_clear(arr);
    for (size_t i = 0; v && i < n; i++)
        json_array_append_new(arr, v[i]);
    free(v);
}

/* The processes (one per process image: a pid that exec'd has one before and one after), by start. */
static json_t *images(json_t *all)
{
    json_t *by_key = json_object(), *list = json_array();
    size_t i;
    json_t *r;
    json_array_foreach(all, i, r)
    {
        json_t *p = json_object_get(r, "process");
        char key[64];
        snprintf(key, sizeof key, "%lld.%lld", (long long)ival(p, "pid"), (long long)ival(p, "start_ns"));
        json_t *im = json_object_get(by_key, key);
        if (im == NULL) {
            im = json_pack("{s:O?, s:O?, s:O?, s:O?, s:O?, s:O?, s:[], s:[]}", "pid", json_object_get(p, "pid"), "ppid",
                           json_object_get(p, "ppid"), "exe", json_object_get(p, "exe"), "argv",
                           json_object_get(p, "argv"), "forked", json_object_get(p, "forked"), "start_ns",
                           json_object_get(p, "start_ns"), "windows", "results");
            json_object_set_new(by_key, key, im);
            json_array_append(list, im);
        }
        json_array_append(json_object_get(im, "results"), r);
        json_array_append_new(json_object_get(im, "windows"), window_summary(r));
    }
    json_decref(by_key);
    sort_array(list, by_start);
    json_array_foreach(list, i, r) sort_array(json_object_get(r, "windows"), by_seq);
    return list;
}

/* The whole-process window's result of @p im, or NULL when it left none. */
static json_t *process_result(json_t *im)
{
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(im, "results"), i,
                       r) if (ival(json_object_get(r, "window"), "depth") == 0 && complete(r)) return r;
    return NULL;
}

/* How each image ended, its exit status where tally waited for it, its peak. */
static void describe(json_t *list, int root_status)
{
    size_t i;
    json_t *im;
    pid_t self = getpid();
    json_int_t root_last = -1;
    json_array_foreach(list, i, im) if (ival(im, "ppid") == self) root_last = (json_int_t)i;
    json_array_foreach(list, i, im)
    {
        json_t *pr = process_result(im);
        bool execd = false;
        for (size_t j = i + 1; j < json_array_size(list); j++)
            execd = execd || ival(json_array_get(list, j), "pid") == ival(im, "pid");
        const char *result = pr ? "complete" : execd ? "exec" : "none";
        json_object_set_new(im, "result", json_string(result));
        json_object_set_new(im, "ended",
                            pr      ? json_deep_copy(json_object_get(json_object_get(pr, "window"), "ended"))
                            : execd ? json_string("exec")
                                    : json_null());
        if (!pr)
            json_object_set_new(im, "no_result",
                                json_string(execd ? "it exec'd: the new image (the next with this pid) carries on, "
                                                    "with windows of its own; this one's figures ended with it"
                                                  : "killed by a signal, still running when the program ended "
                                                    "(an orphan), or its preload could not write (its message "
                                                    "says why): only the provisional objects written as its "
                                                    "windows opened are left"));
        bool root = (json_int_t)i == root_last;
        json_object_set_new(im, "exit_status",
                            root && WIFEXITED(root_status) ? json_integer(WEXITSTATUS(root_status)) : json_null());
        json_object_set_new(im, "signal",
                            root && WIFSIGNALED(root_status) ? json_integer(WTERMSIG(root_status)) : json_null());
        json_int_t peak = 0;
        size_t k;
        json_t *w;
        json_array_foreach(json_object_get(im, "windows"), k, w) if (ival(w, "peak_bytes") > peak) peak =
            ival(w, "peak_bytes");
        json_object_set_new(im, "peak_bytes", pr ? json_integer(peak) : json_null());
        json_object_set(im, "before_bytes", pr ? json_object_get(pr, "before_bytes") : json_null());
    }
}

struct step {
    long long t;
    long long d;
};

static int by_time(const void *a, const void *b)
{
    const struct step *x = a, *y = b;
    return x->t < y->t ? -1 : x->t > y->t ? 1 : (x->d > y->d) - (x->d < y->d); /* a fall before a rise */
}

static size_t push(struct step **out, size_t *cap, size_t n, long long t, long long d)
{
    if (n == *cap) {
        size_t c = *cap ? 2 * *cap : 1024;
        struct step *g = realloc(*out, c * sizeof *g);
        if (g == NULL)
            return n;
        *out = g;
        *cap = c;
    }
    (*out)[n] = (struct step){t, d};
    return n + 1;
}

/* One image's live bytes as steps: its results' timelines, in absolute time, merged. */
static size_t image_steps(json_t *im, struct step **out, size_t *cap, size_t n)
{
    struct step *s = NULL;
    size_t k = 0, room = 0;
    size_t i, j;
    json_t *r, *row;
    json_array_foreach(json_object_get(im, "results"), i, r)
    {
        if (!complete(r))
            continue;
        long long t0 = (long long)ival(json_object_get(r, "window"), "timeline_t0_ns");
        json_array_foreach(json_object_get(json_object_get(r, "timeline"), "samples"), j, row) k =
            push(&s, &room, k, t0 + (long long)(json_number_value(json_array_get(row, 0)) * 1e9),
                 (long long)json_integer_value(json_array_get(row, 1)));
    }
    if (k)
        qsort(s, k, sizeof *s, by_time);
    long long prev = 0;
    for (size_t x = 0; x < k; x++) { /* each sample as a change from the last */
        n = push(out, cap, n, s[x].t, s[x].d - prev);
        prev = s[x].d;
    }
    if (k) /* gone after its last sample */
        n = push(out, cap, n, s[k - 1].t + 1, -prev);
    free(s);
    return n;
}

/* The tree's totals: every image's peak added, and the highest sum of live bytes at one time. */
static json_t *totals(json_t *list)
{
    struct step *all = NULL;
    size_t n = 0, cap = 0, i;
    json_t *im, *gone = json_array();
    json_int_t sum = 0, with = 0;
    json_array_foreach(list, i, im)
    {
        if (!strcmp(sval(im, "result"), "complete")) {
            with++;
            sum += ival(im, "peak_bytes");
            n = image_steps(im, &all, &cap, n);
        } else if (strcmp(sval(im, "result"), "exec")) {
            json_array_append_new(
                gone, json_pack("{s:O?, s:O?}", "pid", json_object_get(im, "pid"), "exe", json_object_get(im, "exe")));
        }
    }
    if (n)
        qsort(all, n, sizeof *all, by_time);
    long long live = 0, best = 0, best_t = 0;
    for (size_t k = 0; k < n; k++) {
        live += all[k].d;
        if (live > best) {
            best = live;
            best_t = all[k].t;
        }
    }
    free(all);
    return json_pack("{s:I, s:I, s:o, s:I, s:I, s:I, s:s}", "processes", (json_int_t)json_array_size(list),
                     "with_result", with, "without_result", gone, "peak_sum_bytes", sum, "concurrent_peak_bytes",
                     (json_int_t)best, "concurrent_peak_ns", (json_int_t)best_t, "about",
                     "peak_sum_bytes: each process's peak, added (an upper bound: the peaks need not be at one "
                     "time, and a fork's child counts what it shares with its parent copy-on-write); "
                     "concurrent_peak_bytes: the highest sum of the processes' live bytes at one time, from their "
                     "timelines (CLOCK_MONOTONIC; samples at every 64 KiB of change, a process counted from its "
                     "first sample to its last)");
}

/* The primary window: the first marked one closed directly inside a whole-process window; else the
 * whole-process window of the image whose heap grew the most. */
static json_t *primary(json_t *list)
{
    json_t *best = NULL, *im, *r;
    size_t i, j;
    json_array_foreach(list, i, im) json_array_foreach(json_object_get(im, "results"), j, r)
    {
        json_t *w = json_object_get(r, "window");
        if (complete(r) && json_is_true(json_object_get(w, "marked")) && ival(w, "depth") == 1 &&
            (best == NULL || ival(w, "t1_ns") < ival(json_object_get(best, "window"), "t1_ns")))
            best = r;
    }
    if (best)
        return best;
    json_int_t grew = 0;
    json_array_foreach(list, i, im)
    {
        json_t *pr = process_result(im);
        if (pr && (best == NULL || ival(pr, "peak_bytes") - ival(pr, "before_bytes") > grew)) {
            grew = ival(pr, "peak_bytes") - ival(pr, "before_bytes");
            best = pr;
        }
    }
    return best;
}

json_t *tly_h_tree_collect(const char *dir, int root_status, const struct tly_h_resident *rs, json_t **processes,
                           bool *root_primary)
{
    json_t *all = read_all(dir), *list = images(all), *im;
    json_decref(all);
    describe(list, root_status);
    json_t *tree = totals(list), *p = primary(list);
    p = p ? json_deep_copy(p) : NULL;
    *root_primary = p && ival(json_object_get(p, "process"), "ppid") == getpid();
    size_t i;
    json_array_foreach(list, i, im) json_object_del(im, "results");
    if (p) {
        tly_h_preload_finish(p, rs);
        uint64_t samples;
        int64_t res = tly_h_resident_tree_peak(rs, &samples);
        if (rs && samples)
            json_object_set_new(tree, "resident_concurrent_peak_bytes", json_integer(res));
        json_object_set(p, "processes", list);
        json_object_set_new(p, "tree", tree);
    } else {
        json_decref(tree);
    }
    *processes = list;
    return p;
}

/* @p argv as one line, at most @p cap bytes, for a terminal. */
static const char *argv_text(json_t *argv, char *buf, size_t cap)
{
    char raw[256] = "";
    size_t n = 0, i;
    json_t *a;
    json_array_foreach(argv, i, a) if (n < sizeof raw - 1) n +=
        (size_t)snprintf(raw + n, sizeof raw - n, "%s%s", i ? " " : "", json_is_string(a) ? json_string_value(a) : "?");
    if (n >= 60)
        strcpy(raw + 57, "...");
    return tly_h_term(buf, cap, raw);
}

/* The library that copied the most in the whole-process window of @p im, when one copied. */
static void print_copier(FILE *f, json_t *im)
{
    size_t i;
    json_t *w, *v, *top = NULL;
    const char *name, *top_name = NULL;
    json_array_foreach(json_object_get(im, "windows"), i, w) if (ival(w, "depth") == 0) json_object_foreach(
        json_object_get(w, "libraries"), name, v) if (ival(v, "copied_bytes") > (top ? ival(top, "copied_bytes") : 0))
    {
        top = v;
        top_name = name;
    }
    char a[32], shown[256];
    if (top)
        fprintf(f, "; %s copied %s", tly_h_term(shown, sizeof shown, top_name),
                tly_h_bytes(a, sizeof a, (double)ival(top, "copied_bytes")));
}

static void print_windows(FILE *f, json_t *im)
{
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(im, "windows"), i, w)
    {
        if (ival(w, "depth") == 0)
            continue;
        char a[32], name[256];
        if (json_is_true(json_object_get(w, "incomplete")))
            fprintf(f, "; window %s: no result", tly_h_term(name, sizeof name, sval(w, "name")));
        else
            fprintf(f, "; window %s: peak %s", tly_h_term(name, sizeof name, sval(w, "name")),
                    tly_h_bytes(a, sizeof a, (double)ival(w, "peak_bytes")));
    }
}

void tly_h_tree_print(FILE *f, json_t *processes, json_t *tree)
{
    char a[32], b[32];
    if (tree)
        fprintf(f, "processes: %lld (%lld with a result); their peaks added %s, at most %s at once\n",
                (long long)ival(tree, "processes"), (long long)ival(tree, "with_result"),
                tly_h_bytes(a, sizeof a, (double)ival(tree, "peak_sum_bytes")),
                tly_h_bytes(b, sizeof b, (double)ival(tree, "concurrent_peak_bytes")));
    size_t i;
    json_t *im;
    json_array_foreach(processes, i, im)
    {
        char args[1024];
        fprintf(f, "  pid %lld <- %lld %s%s: ", (long long)ival(im, "pid"), (long long)ival(im, "ppid"),
                argv_text(json_object_get(im, "argv"), args, sizeof args),
                json_is_true(json_object_get(im, "forked")) ? " (forked)" : "");
        const char *result = sval(im, "result");
        if (!strcmp(result, "complete"))
            fprintf(f, "peak %s (%s more than at its start)", tly_h_bytes(a, sizeof a, (double)ival(im, "peak_bytes")),
                    tly_h_bytes(b, sizeof b, (double)(ival(im, "peak_bytes") - ival(im, "before_bytes"))));
        else
            fprintf(f, "no result: %s",
                    !strcmp(result, "exec") ? "exec'd (the next line with its pid)"
                                            : "killed, still running, or its preload could not write");
        print_copier(f, im);
        if (json_is_integer(json_object_get(im, "exit_status")))
            fprintf(f, "; exited with status %lld", (long long)ival(im, "exit_status"));
        if (json_is_integer(json_object_get(im, "signal")))
            fprintf(f, "; killed by signal %lld", (long long)ival(im, "signal"));
        char ended[64];
        if (json_is_string(json_object_get(im, "ended")) && strcmp(result, "exec"))
            fprintf(f, " (ended by %s)", tly_h_term(ended, sizeof ended, sval(im, "ended")));
        print_windows(f, im);
        fputc('\n', f);
    }
}
