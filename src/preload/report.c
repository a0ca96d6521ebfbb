/*
 * The result object of a closed window (docs/impl-protocol.md), written as JSON with stdio: the
 * preload carries no JSON library, and the figures were taken before anything here allocates.
 *
 * Library, stage and small figures are relative to the window's start, as an engine cell's stages
 * are; process-wide peak, the live bytes before the window and the timeline are absolute live bytes.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "preload/preload.h"
#include "preload/stacks.h"

#define UNSEEN                                                                                                         \
    "what the instrument cannot see: copies that do not call memcpy, memmove or mempcpy (loops, such as numpy's "      \
    "strided and transposed copies: see unexplained_copies), copies the compiler inlined, copies inside libc (read() " \
    "into a buffer, stdio, libc's calls to its own memcpy), copies by the kernel (the page cache), memory mapped "     \
    "with file backing, reserved without access or committed with mprotect (V8's heap), thread stacks, and "           \
    "allocations made before the preload's constructor"

/* A ratio to the array, or null when there is no array to compare with. */
static void jratio(FILE *f, double num, uint64_t array_bytes)
{
    if (array_bytes == 0)
        fputs("null", f);
    else
        fprintf(f, "%.6f", num / (double)array_bytes);
}

/* A slot appears when it moved in the window or held bytes at either end of it. */
static bool listed(const struct tly__figures *x, unsigned i)
{
    const struct tly__lib_counters *a = &x->la[i], *b = &x->lb[i];
    return a->allocs != b->allocs || a->frees != b->frees || a->copies != b->copies || a->live_bytes != 0 ||
           b->live_bytes != 0 || a->peak_bytes != b->live_bytes;
}

/* Library slots in output order: shared objects first, then [unknown] and [other]. */
static unsigned lib_order(const struct tly__figures *x, unsigned out[TLY__LIB_MAX])
{
    unsigned k = 0;
    for (unsigned i = TLY__SLOT_FIRST_LIB; i < x->nslots && i < TLY__LIB_MAX; i++)
        if (listed(x, i))
            out[k++] = i;
    if (listed(x, TLY__SLOT_UNKNOWN))
        out[k++] = TLY__SLOT_UNKNOWN;
    if (listed(x, TLY__SLOT_OTHER))
        out[k++] = TLY__SLOT_OTHER;
    return k;
}

/* A library's copies by size band (src/mem/libs.c): small < 4 KiB <= mid < 64 KiB <= large. */
static void copy_bands(FILE *f, const struct tly__lib_counters *a, const struct tly__lib_counters *b)
{
    static const char *const names[TLY__COPY_BANDS] = {"small", "mid", "large"};
    fputs(", \"copy_bands\": {", f);
    for (unsigned k = 0; k < TLY__COPY_BANDS; k++)
        fprintf(f, "%s\"%s\": {\"count\": %llu, \"bytes\": %llu}", k ? ", " : "", names[k],
                (unsigned long long)(a->band_copies[k] - b->band_copies[k]),
                (unsigned long long)(a->band_bytes[k] - b->band_bytes[k]));
    fputc('}', f);
}

static void libraries(FILE *f, const struct tly__figures *x, const unsigned *order, unsigned k)
{
    fputs("  \"libraries\": {", f);
    for (unsigned j = 0; j < k; j++) {
        unsigned i = order[j];
        const struct tly__lib_counters *a = &x->la[i], *b = &x->lb[i];
        fputs(j ? ",\n    " : "\n    ", f);
        tly__jstr(f, tly__slot_name(i));
        fputs(": {\"path\": ", f);
        tly__jstr(f, tly__slot_path(i));
        fprintf(f,
                ", \"allocs\": %llu, \"frees\": %llu, \"alloc_bytes\": %llu, \"live_bytes\": %lld, "
                "\"peak_bytes\": %lld, \"at_peak_bytes\": %lld, \"copied_bytes\": %llu, \"copy_count\": %llu, "
                "\"copies\": ",
                (unsigned long long)(a->allocs - b->allocs), (unsigned long long)(a->frees - b->frees),
                (unsigned long long)(a->alloc_bytes - b->alloc_bytes), (long long)(a->live_bytes - b->live_bytes),
                (long long)(a->peak_bytes - b->live_bytes), (long long)(a->at_peak_bytes - b->live_bytes),
                (unsigned long long)(a->copy_bytes - b->copy_bytes), (unsigned long long)(a->copies - b->copies));
        jratio(f, (double)(a->copy_bytes - b->copy_bytes), x->array_bytes);
        copy_bands(f, a, b);
        fputc('}', f);
    }
    fputs(k ? "\n  },\n" : "},\n", f);
}

/* Everything under the large-block threshold: what the stages counted less what the slots did. */
static void small(FILE *f, const struct tly__figures *x)
{
    uint64_t allocs = 0, bytes = 0;
    for (int s = 0; s < TLY_NSTAGES; s++) {
        allocs += x->after.stage[s].allocs - x->before.stage[s].allocs;
        bytes += x->after.stage[s].alloc_bytes - x->before.stage[s].alloc_bytes;
    }
    int64_t at_peak = x->after.peak_bytes, before = x->before.live_bytes, live = x->after.live_bytes;
    for (unsigned i = 0; i < TLY__LIB_MAX; i++) {
        if (i != TLY__SLOT_MMAP) { /* mappings are not in the stages' allocation counts */
            allocs -= x->la[i].allocs - x->lb[i].allocs;
            bytes -= x->la[i].alloc_bytes - x->lb[i].alloc_bytes;
        }
        at_peak -= x->la[i].at_peak_bytes;
        before -= x->lb[i].live_bytes;
        live -= x->la[i].live_bytes;
    }
    fprintf(f,
            "  \"small\": {\"allocs\": %llu, \"alloc_bytes\": %llu, \"live_bytes\": %lld, \"at_peak_bytes\": %lld},\n",
            (unsigned long long)allocs, (unsigned long long)bytes, (long long)(live - before),
            (long long)(at_peak - before));
}

static void stages(FILE *f, const struct tly__figures *x)
{
    fputs("  \"stages\": {", f);
    for (int s = 0; s < TLY_NSTAGES; s++) {
        const struct tly_stage_counters *a = &x->after.stage[s], *b = &x->before.stage[s];
        fputs(s ? ",\n    " : "\n    ", f);
        tly__jstr(f, tly_stage_name((enum tly_stage)s));
        fprintf(f,
                ": {\"allocs\": %llu, \"alloc_bytes\": %llu, \"peak_bytes\": %lld, \"at_peak_bytes\": %lld, "
                "\"copy_bytes\": %llu, \"copy_count\": %llu, \"copies\": ",
                (unsigned long long)(a->allocs - b->allocs), (unsigned long long)(a->alloc_bytes - b->alloc_bytes),
                (long long)(a->peak_bytes - b->live_bytes), (long long)(a->at_peak_bytes - b->live_bytes),
                (unsigned long long)(a->copy_bytes - b->copy_bytes), (unsigned long long)(a->copies - b->copies));
        jratio(f, (double)(a->copy_bytes - b->copy_bytes), x->array_bytes);
        fputc('}', f);
    }
    fputs("\n  },\n", f);
}

/* Time by stage: only the marks' push/pop set stages in a foreign process, so without them the whole
 * window is unstaged and its time is nobody's in particular (said, not guessed). */
static void stage_time(FILE *f, const struct tly__figures *x)
{
    const struct tly_time_snapshot *a = &x->time_after, *b = &x->time_before;
    double wall = (double)(x->t1_ns - x->t0_ns) / 1e9, staged = 0;
    for (int s = 0; s < TLY_NSTAGES; s++)
        if (s != TLY_UNSTAGED)
            staged += (double)(a->busy_ns[s] - b->busy_ns[s] + a->waiting_ns[s] - b->waiting_ns[s]);
    if (!tly_time_on() || staged <= 0 || wall <= 0) {
        fputs("  \"stage_time\": null, \"stage_time_about\": ", f);
        tly__jstr(f, tly_time_on() ? "time is not attributable without marks: no stage was pushed (tly_mark_push, or "
                                "'push STAGE' lines on TALLY_MARK_FD), so the whole window was unstaged"
                              : "time accounting is off (TALLY_TRACK=0 or TALLY_TIME=0)");
        fputs(",\n", f);
        return;
    }
    fputs("  \"stage_time\": {", f);
    bool first = true;
    for (int s = 0; s < TLY_NSTAGES; s++) {
        double busy = (double)(a->busy_ns[s] - b->busy_ns[s]) / 1e9;
        double waiting = (double)(a->waiting_ns[s] - b->waiting_ns[s]) / 1e9;
        if (busy <= 0 && waiting <= 0)
            continue;
        fputs(first ? "\n    " : ",\n    ", f);
        first = false;
        tly__jstr(f, tly_stage_name((enum tly_stage)s));
        fprintf(f, ": {\"busy_s\": %.6f, \"waiting_s\": %.6f, \"busy_fraction\": %.6f, \"busy_threads\": %.6f}", busy,
                waiting, busy / wall, busy / wall);
    }
    fputs("\n  },\n  \"stage_time_about\": ", f);
    tly__jstr(f, "the marks' push/pop stages: wall time each thread spent in each pushed stage (unstaged: the rest), "
            "over the window's wall time");
    fputs(",\n", f);
}

static void coverage(FILE *f, const struct tly__figures *x)
{
    const struct tly_mem_crosscheck *c = &x->xc;
    int64_t tracked = c->tracked_live_bytes - x->la[TLY__SLOT_MMAP].live_bytes; /* the heap only */
    double seen = (double)c->jemalloc_allocated_bytes - (double)c->jemalloc_allocated_at_start_bytes;
    fprintf(f,
            "  \"coverage\": {\"tracked_live_bytes\": %lld, \"jemalloc_allocated_bytes\": %llu, "
            "\"jemalloc_allocated_at_start_bytes\": %llu, \"ratio\": %.6f, \"rss_peak_bytes\": %llu, "
            "\"jemalloc_thread_peak_bytes\": %llu},\n",
            (long long)tracked, (unsigned long long)c->jemalloc_allocated_bytes,
            (unsigned long long)c->jemalloc_allocated_at_start_bytes,
            x->xc_ok && seen > 0 ? (double)tracked / seen : 0.0, (unsigned long long)c->rss_peak_bytes,
            (unsigned long long)c->thread_peak_bytes);
}

static void timeline(FILE *f, const struct tly__figures *x, const unsigned *order, unsigned k)
{
    fputs("  \"timeline\": {\"columns\": [\"t_s\", \"live\"", f);
    for (unsigned j = 0; j < k; j++) {
        fputs(", ", f);
        tly__jstr(f, tly__slot_name(order[j]));
    }
    fputs(", \"small\", \"mmap\"], \"samples\": [", f);
    size_t peak_index = 0;
    for (size_t i = 0; i < x->tl_n; i++) {
        const struct tly_mem_sample *s = &x->tl[i];
        const int64_t *lib = x->tl_lib[i];
        if (s->is_peak)
            peak_index = i;
        int64_t small_live = s->live_bytes;
        for (unsigned l = 0; l < TLY__LIB_MAX; l++)
            small_live -= lib[l];
        fprintf(f, "%s\n    [%.6f, %lld", i ? "," : "", (double)s->t_ns / 1e9, (long long)s->live_bytes);
        for (unsigned j = 0; j < k; j++)
            fprintf(f, ", %lld", (long long)lib[order[j]]);
        fprintf(f, ", %lld, %lld]", (long long)small_live, (long long)lib[TLY__SLOT_MMAP]);
    }
    fprintf(f, "\n  ], \"peak_index\": %zu},\n", peak_index);
}

/* Every object the process has loaded, by library name: what a budget may name (tally profile fails a
 * budget on a library not among them, a misspelt name, rather than holding it at 0). */
static void loaded(FILE *f)
{
    static char names[512][64]; /* at exit, on one thread: no allocation */
    size_t n = tly__obj_loaded(names, sizeof names / sizeof names[0]);
    fputs("  \"loaded_libraries\": [", f);
    for (size_t i = 0; i < n; i++) {
        fputs(i ? ", " : "", f);
        tly__jstr(f, names[i]);
    }
    fputs("],\n", f);
}

/* The resident bytes read just before each release in the window (release.c): the harness takes
 * the highest of them and of its own samples. */
static void releases(FILE *f, const struct tly__figures *x)
{
    static struct tly__release r[2048]; /* at a window's close, under the marks' lock: no allocation */
    size_t n = tly__release_window(x->t0_ns, x->t1_ns ? x->t1_ns : UINT64_MAX, r, sizeof r / sizeof r[0]);
    fputs("  \"resident_releases\": [", f);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s[%llu, %lld]", i ? ", " : "", (unsigned long long)r[i].t_ns, (long long)r[i].bytes);
    fputs("],\n", f);
}

static void emit(FILE *f, const struct tly__figures *x)
{
    const struct tly_mem_snapshot *a = &x->after, *b = &x->before;
    int64_t extra = a->peak_bytes - b->live_bytes - (int64_t)x->output_bytes;
    double wall = (double)(x->t1_ns - x->t0_ns) / 1e9;
    const char *reason = tly__pl_untracked_reason();

    fprintf(f, "{\n  \"impl_process\": {\"pid\": %d, \"exe\": ", (int)getpid());
    tly__jstr(f, tly__pl_exe);
    fputs(", \"exit_status\": null},\n", f);
    tly__emit_header(f, x);
    fputs("  \"tracking\": ", f);
    fputs(reason ? "false, \"untracked_reason\": " : "true, \"untracked_reason\": null", f);
    if (reason)
        tly__jstr(f, reason);
    fprintf(f, ",\n  \"marked\": %s, \"op\": ", x->marked ? "true" : "false");
    if (x->marked)
        tly__jstr(f, x->op);
    else
        fputs("null", f);
    fprintf(f, ", \"marks_ignored\": %u, \"end_missing\": %s,\n", x->marks_ignored, x->end_missing ? "true" : "false");
    fprintf(f,
            "  \"array_bytes\": %llu, \"before_bytes\": %lld, \"output_bytes\": %llu, \"peak_bytes\": %lld, "
            "\"reserved_before_bytes\": %lld, \"reserved_peak_bytes\": %lld, \"t0_ns\": %llu, \"t1_ns\": %llu,\n"
            "  \"peak_extra_bytes\": %lld, \"peak_extra_ratio\": ",
            (unsigned long long)x->array_bytes, (long long)b->live_bytes, (unsigned long long)x->output_bytes,
            (long long)a->peak_bytes, (long long)b->reserved_live_bytes, (long long)a->reserved_peak_bytes,
            (unsigned long long)x->t0_ns, (unsigned long long)x->t1_ns, (long long)extra);
    jratio(f, (double)extra, x->array_bytes);
    fputs(", \"extra_copies\": ", f);
    if (x->array_bytes)
        fprintf(f, "%lld", (long long)llround((double)extra / (double)x->array_bytes));
    else
        fputs("null", f);
    fprintf(f, ",\n  \"wall_s\": %.6f, \"throughput_bps\": %.1f,\n", wall,
            wall > 0 ? (double)x->array_bytes / wall : 0.0);
    const struct tly__lib_counters *ma = &x->la[TLY__SLOT_MMAP], *mb = &x->lb[TLY__SLOT_MMAP];
    fprintf(f, "  \"mmap_bytes\": %lld, \"mmap_peak_bytes\": %lld, \"mmap_count\": %llu,\n",
            (long long)ma->at_peak_bytes, (long long)ma->peak_bytes, (unsigned long long)(ma->allocs - mb->allocs));

    unsigned order[TLY__LIB_MAX];
    unsigned k = lib_order(x, order);
    libraries(f, x, order, k);
    small(f, x);
    stages(f, x);
    stage_time(f, x);
    coverage(f, x);
    timeline(f, x, order, k);
    struct tly__stacks_window sw = {x->stk_before, x->stk_peak, x->stk_now, x->stk_n, x->stk_dropped,
                                    {x->stk_taken[0], x->stk_taken[1]}, {x->stk_taken_ns[0], x->stk_taken_ns[1]}};
    tly__stacks_emit(f, x->stk_peak ? &sw : NULL);
    fputs(",\n", f);
    loaded(f);
    releases(f, x);
    fprintf(f, "  \"settings\": {\"large\": %zu, \"copy_min\": %zu, \"mmap_min\": %zu},\n", tly__pl_settings[0],
            tly__pl_settings[1], tly__pl_settings[2]);
    fputs("  \"unseen\": ", f);
    tly__jstr(f, UNSEEN);
    fputs("\n}\n", f);
}

/*
 * What the preload writes (the result, a message on stderr) must not kill a program with SIGXFSZ
 * when it crosses its RLIMIT_FSIZE: the signal is blocked on this thread meanwhile (the write fails
 * with EFBIG instead), and one that a write raised is taken off before it is unblocked. One that was
 * pending before is the program's and stays.
 */
bool tly__xfsz_hold(sigset_t *old)
{
    sigset_t xfsz, pending;
    sigemptyset(&xfsz);
    sigaddset(&xfsz, SIGXFSZ);
    pthread_sigmask(SIG_BLOCK, &xfsz, old);
    return sigpending(&pending) == 0 && sigismember(&pending, SIGXFSZ);
}

void tly__xfsz_release(const sigset_t *old, bool was_pending)
{
    sigset_t xfsz;
    sigemptyset(&xfsz);
    sigaddset(&xfsz, SIGXFSZ);
    struct timespec now = {0, 0};
    if (!was_pending)
        sigtimedwait(&xfsz, NULL, &now);
    pthread_sigmask(SIG_SETMASK, old, NULL);
}

static int write_tmp(const char *tmp, const struct tly__figures *x)
{
    FILE *f = fopen(tmp, "we"); /* no descriptor of the preload's outlives an exec */
    if (f == NULL)
        return -errno;
    errno = 0;
    emit(f, x);
    int err = ferror(f) ? -(errno ? errno : EIO) : 0;
    if (fclose(f) != 0 && err == 0)
        err = -errno;
    return err;
}

int tly__report_write(const char *path, const struct tly__figures *x)
{
    char tmp[PATH_MAX + 8];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        return -ENAMETOOLONG;
    int err = write_tmp(tmp, x);
    if (err == 0 && rename(tmp, path) != 0)
        err = -errno;
    if (err)
        unlink(tmp); /* nothing half-written stays */
    return err;
}
