/* Measurement windows, the result object and the per-stage table. */
#include <inttypes.h>
#include <math.h>
#include <string.h>
#include <time.h>

#include "cell/result.h"

#include <unistd.h>

#include "cell/figures.h"
#include "cell/resident.h"
#include "harness.h"

/* The last closed window's timeline, taken as it closes (what follows, such as verification, is not the op's). */
static struct tly_mem_sample timeline[TLY_TIMELINE_CAP + 2];
static size_t timeline_n;
static bool trace_windows, resident_windows;
static uint64_t trace_t0, trace_t1; /* the last traced window, on the timeline's clock */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void tly_h_window_trace(bool on)
{
    trace_windows = on;
}

void tly_h_window_resident(bool on)
{
    resident_windows = on;
}

void tly_h_window_open(struct tly_h_window *w)
{
    memset(w, 0, sizeof *w);
    w->traced = trace_windows && tly_time_on() && tly_trace_start(0) == 0;
    /* this process's resident memory, sampled from a thread of the sampler's (which allocates nothing
     * on the heap: not in the window's figures), started before the peaks restart */
    w->rs = resident_windows ? tly_h_resident_start(getpid(), false) : NULL;
    tly_mem_reset_peaks();
    tly_stacks_window_open(); /* (when tly_stacks_start turned them on: tally run's cells) */
    tly_mem_snapshot(&w->before);
    tly_time_snapshot(&w->time_before);
    w->t0_ns = now_ns();
}

void tly_h_window_close(struct tly_h_window *w)
{
    w->t1_ns = now_ns();
    w->wall_s = (double)(w->t1_ns - w->t0_ns) / 1e9;
    tly_time_snapshot(&w->time_after);
    if (w->traced) {
        tly_trace_stop();
        trace_t0 = tly_mem_window_start_ns();
        trace_t1 = w->t1_ns;
    }
    tly_mem_snapshot(&w->after);
    tly_stacks_window_close();
    if (w->rs) {
        tly_h_resident_stop(w->rs);
        w->resident_ok =
            tly_h_resident_window(w->rs, getpid(), w->t0_ns, w->t1_ns, &w->resident_before, &w->resident_peak);
        tly_h_resident_free(w->rs);
        w->rs = NULL;
    }
    tly_mem_crosscheck(&w->xc);
    timeline_n = tly_mem_timeline(timeline, TLY_TIMELINE_CAP + 2);
    if (timeline_n > TLY_TIMELINE_CAP + 2)
        timeline_n = TLY_TIMELINE_CAP + 2;
}

static json_t *timeline_json(void)
{
    const struct tly_mem_sample *s = timeline;
    json_t *cols = json_pack("[s, s]", "t_s", "live"), *rows = json_array();
    for (int k = 0; k < TLY_NSTAGES; k++)
        json_array_append_new(cols, json_string(tly_stage_name((enum tly_stage)k)));
    size_t peak = 0;
    for (size_t i = 0; i < timeline_n; i++) {
        json_t *row = json_pack("[f, I]", (double)s[i].t_ns / 1e9, (json_int_t)s[i].live_bytes);
        for (int k = 0; k < TLY_NSTAGES; k++)
            json_array_append_new(row, json_integer((json_int_t)s[i].stage_live[k]));
        json_array_append_new(rows, row);
        if (s[i].is_peak)
            peak = i;
    }
    return json_pack("{s:o, s:o, s:I}", "columns", cols, "samples", rows, "peak_index", (json_int_t)peak);
}

double tly_h_coverage(const struct tly_mem_crosscheck *xc)
{
    double seen = (double)xc->jemalloc_allocated_bytes - (double)xc->jemalloc_allocated_at_start_bytes;
    return seen > 0 ? (double)xc->tracked_live_bytes / seen : 0.0;
}

double tly_h_read_amplification(const char *op, const struct tly_io_stats *io)
{
    if (strcmp(op, "read") != 0 || io->needed_bytes == 0)
        return -1;
    return (double)io->store_bytes_read / (double)io->needed_bytes;
}

void tly_h_traffic_text(json_t *result, char *read, char *written, char *amp, size_t cap)
{
    json_t *r = json_object_get(result, "store_bytes_read"), *w = json_object_get(result, "store_bytes_written");
    json_t *x = json_object_get(result, "read_amplification");
    snprintf(read, cap, "—");
    snprintf(written, cap, "—");
    snprintf(amp, cap, "—");
    if (json_is_number(r))
        tly_h_bytes(read, cap, json_number_value(r));
    if (json_is_number(w))
        tly_h_bytes(written, cap, json_number_value(w));
    if (json_is_number(x))
        snprintf(amp, cap, "%.4f", json_number_value(x));
}

int64_t tly_h_peak_extra_bytes(const struct tly_h_result *r)
{
    return r->win.after.peak_bytes - r->win.before.live_bytes - (int64_t)r->output_bytes;
}

double tly_h_peak_extra_ratio(const struct tly_h_result *r)
{
    return r->array_bytes ? (double)tly_h_peak_extra_bytes(r) / (double)r->array_bytes : 0.0;
}

long long tly_h_extra_copies(int64_t extra_bytes, uint64_t array_bytes, bool *overhead_bound)
{
    long long copies = array_bytes ? llround((double)extra_bytes / (double)array_bytes) : 0;
    *overhead_bound = extra_bytes < (int64_t)TLY_H_FIXED_OVERHEAD && copies != 0;
    return *overhead_bound ? 0 : copies;
}

void tly_h_extra_text(int64_t extra_bytes, uint64_t array_bytes, char *buf, size_t cap)
{
    char a[32];
    bool bound;
    long long copies = tly_h_extra_copies(extra_bytes, array_bytes, &bound);
    double ratio = array_bytes ? (double)extra_bytes / (double)array_bytes : 0.0;
    if (bound)
        snprintf(buf, cap, "peak extra %s (%.3f x array): under the %d MiB fixed overhead, not counted as copies",
                 tly_h_bytes(a, sizeof a, (double)extra_bytes), ratio, (int)(TLY_H_FIXED_OVERHEAD >> 20));
    else
        snprintf(buf, cap, "peak extra %s (%.3f x array) => %lld extra copies",
                 tly_h_bytes(a, sizeof a, (double)extra_bytes), ratio, copies);
}

static json_t *dims_json(int rank, const uint64_t *v)
{
    json_t *a = json_array();
    for (int d = 0; d < rank; d++)
        json_array_append_new(a, json_integer((json_int_t)v[d]));
    return a;
}

static json_t *stages_json(const struct tly_h_result *r)
{
    json_t *o = json_object();
    const struct tly_mem_snapshot *b = &r->win.before, *a = &r->win.after;
    for (int s = 0; s < TLY_NSTAGES; s++) {
        const struct tly_stage_counters *x = &a->stage[s], *y = &b->stage[s];
        uint64_t copy_bytes = x->copy_bytes - y->copy_bytes;
        json_object_set_new(o, tly_stage_name((enum tly_stage)s),
                            json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:f}", "allocs",
                                      (json_int_t)(x->allocs - y->allocs), "alloc_bytes",
                                      (json_int_t)(x->alloc_bytes - y->alloc_bytes), "peak_bytes",
                                      (json_int_t)(x->peak_bytes - y->live_bytes), "at_peak_bytes",
                                      (json_int_t)(x->at_peak_bytes - y->live_bytes), "copy_bytes",
                                      (json_int_t)copy_bytes, "copy_count", (json_int_t)(x->copies - y->copies),
                                      "copies", r->array_bytes ? (double)copy_bytes / (double)r->array_bytes : 0.0));
    }
    return o;
}

json_t *tly_h_result_json(const struct tly_h_result *r, bool with_timeline)
{
    const struct tly_meta *m = r->meta;
    char descr[8];
    const struct tly_mem_crosscheck *xc = &r->win.xc;
    double coverage = tly_h_coverage(xc);
    json_t *o = json_object();
    json_object_set_new(o, "op", json_string(r->op));
    json_object_set_new(o, "store", json_string(r->store));
    json_object_set_new(o, "codec", json_string(tly_codec_name(m->codec.id)));
    json_object_set_new(o, "codec_config", tly_h_codec_json(&m->codec));
    json_object_set_new(o, "format", json_string(m->zarr_format == 3 ? "v3" : "v2"));
    json_object_set_new(o, "dtype", json_string(tly_dtype_numpy(&m->dtype, descr)));
    json_object_set_new(o, "shape", dims_json(m->rank, m->shape));
    json_object_set_new(o, "chunks", dims_json(m->rank, m->chunks));
    json_object_set_new(o, "array_bytes", json_integer((json_int_t)r->array_bytes));
    json_object_set_new(o, "before_bytes", json_integer((json_int_t)r->win.before.live_bytes));
    json_object_set_new(o, "output_bytes", json_integer((json_int_t)r->output_bytes));
    json_object_set_new(o, "wall_s", json_real(r->win.wall_s));
    json_object_set_new(o, "throughput_bps",
                        json_real(r->win.wall_s > 0 ? (double)r->array_bytes / r->win.wall_s : 0.0));
    json_object_set_new(o, TLY_K_PEAK, json_integer((json_int_t)r->win.after.peak_bytes));
    json_object_set_new(o, TLY_K_RESERVED_BEFORE, json_integer((json_int_t)r->win.before.reserved_live_bytes));
    json_object_set_new(o, TLY_K_RESERVED_PEAK, json_integer((json_int_t)r->win.after.reserved_peak_bytes));
    if (r->win.resident_ok) {
        json_object_set_new(o, TLY_K_RESIDENT_BEFORE, json_integer((json_int_t)r->win.resident_before));
        json_object_set_new(o, TLY_K_RESIDENT_PEAK, json_integer((json_int_t)r->win.resident_peak));
    }
    tly_h_figures(o, false);
    json_object_set_new(o, "stages", stages_json(r));
    json_object_set_new(o, "coverage",
                        json_pack("{s:I, s:I, s:I, s:f, s:I}", "tracked_live_bytes", (json_int_t)xc->tracked_live_bytes,
                                  "jemalloc_allocated_bytes", (json_int_t)xc->jemalloc_allocated_bytes,
                                  "jemalloc_allocated_at_start_bytes",
                                  (json_int_t)xc->jemalloc_allocated_at_start_bytes, "ratio", coverage,
                                  "rss_peak_bytes", (json_int_t)xc->rss_peak_bytes));
    json_object_set_new(json_object_get(o, "coverage"), "jemalloc_thread_peak_bytes",
                        json_integer((json_int_t)xc->thread_peak_bytes));
    json_object_set_new(o, "chunks_io",
                        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "chunks", (json_int_t)r->io.chunks, "missing",
                                  (json_int_t)r->io.missing, "read_modify_write", (json_int_t)r->io.rmw, "stored_bytes",
                                  (json_int_t)r->io.stored_bytes, "needed_bytes", (json_int_t)r->io.needed_bytes,
                                  "split_ranges", (json_int_t)r->io.split_ranges));
    /* the operation's own traffic: the metadata an open, create or commit moves is not in it */
    json_object_set_new(o, "store_bytes_read", json_integer((json_int_t)r->io.store_bytes_read));
    json_object_set_new(o, "store_bytes_written", json_integer((json_int_t)r->io.store_bytes_written));
    json_object_set_new(o, "store_read_requests", json_integer((json_int_t)r->io.store_read_requests));
    double amp = tly_h_read_amplification(r->op, &r->io);
    json_object_set_new(o, "read_amplification", amp >= 0 ? json_real(amp) : json_null());
    json_object_set_new(o, "tracking", tly_mem_tracking() ? json_true() : json_false());
    if (!tly_mem_tracking())
        json_object_set_new(o, "untracked_reason", json_string(tly_mem_untracked_reason()));
    json_object_set_new(o, "pool",
                        json_pack("{s:I, s:I, s:I}", "peak_bytes", (json_int_t)r->io.pool_peak, "waits",
                                  (json_int_t)r->io.pool_waits, "forced", (json_int_t)r->io.pool_forced));
    tly_h_time_into(o, &r->win, &r->io, strcmp(r->store, "s3") == 0);
    if (with_timeline)
        json_object_set_new(o, "timeline", timeline_json());
    if (with_timeline && r->win.traced) {
        uint64_t dropped = 0;
        json_object_set_new(o, "trace", tly_h_trace_events(trace_t0, trace_t1, &dropped));
        json_object_set_new(o, "trace_dropped", json_integer((json_int_t)dropped));
    }
    return o;
}

void tly_h_result_print(FILE *f, const struct tly_h_result *r)
{
    char a[32], b[32], extra[160];
    fprintf(f, "%s %s %s %s: %s in %.3f s (%.2f GB/s), %llu chunks (%llu missing, %llu read-modify-write)\n", r->op,
            r->store, r->meta->zarr_format == 3 ? "v3" : "v2", tly_codec_name(r->meta->codec.id),
            tly_h_bytes(a, sizeof a, (double)r->array_bytes), r->win.wall_s,
            r->win.wall_s > 0 ? (double)r->array_bytes / r->win.wall_s / 1e9 : 0.0, (unsigned long long)r->io.chunks,
            (unsigned long long)r->io.missing, (unsigned long long)r->io.rmw);
    if (!tly_mem_tracking())
        fprintf(f, "tracking is off: %s\n", tly_mem_untracked_reason());
    tly_h_print_profile(f, &r->win.before, &r->win.after, r->array_bytes);
    tly_h_extra_text(tly_h_peak_extra_bytes(r), r->array_bytes, extra, sizeof extra);
    fprintf(f, "output %s; %s; coverage %.3f; peak RSS %s\n", tly_h_bytes(a, sizeof a, (double)r->output_bytes), extra,
            tly_h_coverage(&r->win.xc), tly_h_bytes(b, sizeof b, (double)r->win.xc.rss_peak_bytes));
    double amp = tly_h_read_amplification(r->op, &r->io);
    fprintf(f, "store: read %s, written %s", tly_h_bytes(a, sizeof a, (double)r->io.store_bytes_read),
            tly_h_bytes(b, sizeof b, (double)r->io.store_bytes_written));
    if (amp >= 0)
        fprintf(f, "; read amplification %.4f (of %llu encoded bytes needed)", amp,
                (unsigned long long)r->io.needed_bytes);
    fputc('\n', f);
    if (!tly_time_on())
        return;
    json_t *st = NULL, *time = tly_h_time_json(&r->win.time_before, &r->win.time_after, r->win.wall_s, &r->io,
                                               strcmp(r->store, "s3") == 0, &st);
    json_t *bn = tly_h_bottleneck(st, time);
    const char *k;
    json_t *v;
    fprintf(f, "time:");
    json_object_foreach(st, k, v)
    {
        double busy = json_number_value(json_object_get(v, "busy_s")),
               wait = json_number_value(json_object_get(v, "waiting_s"));
        if (busy + wait >= 0.0005)
            fprintf(f, wait >= 0.0005 ? " %s %.3f s (%.3f s waiting)" : " %s %.3f s", k, busy + wait, wait);
    }
    fprintf(f, "\n%s\n", json_string_value(json_object_get(bn, "sentence")));
    json_decref(bn);
    json_decref(st);
    json_decref(time);
}

void tly_h_print_profile(FILE *f, const struct tly_mem_snapshot *before, const struct tly_mem_snapshot *after,
                         uint64_t array_bytes)
{
    char a[32], b[32], c[32], d[32];
    fprintf(f, "%-9s %10s %12s %12s %12s %8s %12s\n", "stage", "allocs", "alloc bytes", "peak", "at peak", "copied",
            "copied bytes");
    for (int s = 0; s < TLY_NSTAGES; s++) {
        const struct tly_stage_counters *x = &after->stage[s], *y = &before->stage[s];
        uint64_t allocs = x->allocs - y->allocs;
        uint64_t copy_bytes = x->copy_bytes - y->copy_bytes;
        if (allocs == 0 && copy_bytes == 0 && x->peak_bytes == y->live_bytes)
            continue;
        fprintf(f, "%-9s %10" PRIu64 " %12s %12s %12s %8.2f %12s\n", tly_stage_name((enum tly_stage)s), allocs,
                tly_h_bytes(a, sizeof a, (double)(x->alloc_bytes - y->alloc_bytes)),
                tly_h_bytes(b, sizeof b, (double)(x->peak_bytes - y->live_bytes)),
                tly_h_bytes(c, sizeof c, (double)(x->at_peak_bytes - y->live_bytes)),
                array_bytes ? (double)copy_bytes / (double)array_bytes : 0.0,
                tly_h_bytes(d, sizeof d, (double)copy_bytes));
    }
    double extra = array_bytes ? (double)(after->peak_bytes - before->live_bytes) / (double)array_bytes : 0;
    fprintf(f, "array %s, before %s, peak %s (+%.2f x array)\n", tly_h_bytes(a, sizeof a, (double)array_bytes),
            tly_h_bytes(b, sizeof b, (double)before->live_bytes), tly_h_bytes(c, sizeof c, (double)after->peak_bytes),
            extra);
}
