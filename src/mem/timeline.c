/*
 * The memory timeline: (time, live bytes by stage, and by library slot when the preload has any)
 * samples of the current window.
 *
 * A sample is taken when process-wide live bytes have moved by at least `gran` since the last one:
 * 64 KiB, or 1% of the window's array when that is less (tly_mem_timeline_grain; at least 4 KiB).
 * When the buffer fills, every other sample is dropped and `gran` doubles, so the timeline stays
 * bounded whatever the run's length; the peak is kept apart from the buffer and merged back in
 * time order when read, so thinning never loses it.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "mem/internal.h"

#define GRAN0 ((int64_t)64 * 1024)
#define GRAN_MIN ((int64_t)4 * 1024)

_Atomic int64_t tly__tl_last;
_Atomic int64_t tly__tl_gran = GRAN0;
static _Atomic int64_t gran0 = GRAN0; /* the grain a window starts with (tly_mem_timeline_grain) */

static tly__spin mu = TLY__SPIN_INIT;
static uint64_t t0;
static size_t n;
static struct tly_mem_sample samples[TLY_TIMELINE_CAP];
static struct tly_mem_sample peak_sample;
/* Each sample's library slots, kept apart so that the engine (no slots) never touches them. */
static int64_t sample_lib[TLY_TIMELINE_CAP][TLY__LIB_MAX];
static bool sample_has_lib[TLY_TIMELINE_CAP];
static int64_t peak_lib[TLY__LIB_MAX];
static bool peak_has_lib;

static void lock(void)
{
    tly__spin_lock(&mu);
}

static void unlock(void)
{
    tly__spin_unlock(&mu);
}

static void thin(void)
{
    size_t j = 0;
    for (size_t i = 0; i < n; i += 2, j++) {
        samples[j] = samples[i];
        sample_has_lib[j] = sample_has_lib[i];
        if (sample_has_lib[i])
            memcpy(sample_lib[j], sample_lib[i], sizeof sample_lib[j]); /* counters, not payload */
    }
    n = j;
    atomic_store_explicit(&tly__tl_gran, atomic_load(&tly__tl_gran) * 2, memory_order_relaxed);
}

static void put(uint64_t t_ns, int64_t live, const int64_t stage_live[TLY_NSTAGES], const int64_t *lib_live)
{
    if (n == TLY_TIMELINE_CAP)
        thin();
    sample_has_lib[n] = lib_live != NULL;
    if (lib_live)
        memcpy(sample_lib[n], lib_live, sizeof sample_lib[n]); /* counters, not payload */
    struct tly_mem_sample *s = &samples[n++];
    s->t_ns = t_ns >= t0 ? t_ns - t0 : 0;
    s->live_bytes = live;
    memcpy(s->stage_live, stage_live, sizeof s->stage_live); /* counters, not payload */
    s->is_peak = false;
    atomic_store_explicit(&tly__tl_last, live, memory_order_relaxed);
}

/* The library slots' live bytes into @p out, or NULL while there are no slots. */
static const int64_t *libs_now(int64_t out[TLY__LIB_MAX])
{
    if (TLY__LIKELY(atomic_load_explicit(&tly__lib_count, memory_order_relaxed) == 0))
        return NULL;
    tly__lib_live(out);
    return out;
}

void tly__timeline_sample(int64_t live)
{
    int64_t st[TLY_NSTAGES], lb[TLY__LIB_MAX];
    lock();
    int64_t gap = live - atomic_load_explicit(&tly__tl_last, memory_order_relaxed);
    if ((gap < 0 ? -gap : gap) >= atomic_load_explicit(&tly__tl_gran, memory_order_relaxed)) {
        tly__live_stages(st);
        put(tly__now_ns(), live, st, libs_now(lb));
    }
    unlock();
}

void tly__timeline_peak(uint64_t t_ns, int64_t live, const int64_t stage_live[TLY_NSTAGES], const int64_t *lib_live)
{
    lock();
    peak_sample.t_ns = t_ns >= t0 ? t_ns - t0 : 0;
    peak_sample.live_bytes = live;
    memcpy(peak_sample.stage_live, stage_live, sizeof peak_sample.stage_live); /* counters, not payload */
    peak_sample.is_peak = true;
    peak_has_lib = lib_live != NULL;
    if (lib_live)
        memcpy(peak_lib, lib_live, sizeof peak_lib); /* counters, not payload */
    unlock();
}

void tly__timeline_reset(uint64_t t0_ns, int64_t live, const int64_t stage_live[TLY_NSTAGES], const int64_t *lib_live)
{
    lock();
    t0 = t0_ns;
    n = 0;
    atomic_store_explicit(&tly__tl_gran, atomic_load(&gran0), memory_order_relaxed);
    put(t0_ns, live, stage_live, lib_live);
    peak_sample = samples[0];
    peak_sample.is_peak = true;
    peak_has_lib = lib_live != NULL;
    if (lib_live)
        memcpy(peak_lib, lib_live, sizeof peak_lib); /* counters, not payload */
    unlock();
}

struct reader {
    struct tly_mem_sample *out;
    int64_t (*lib_out)[TLY__LIB_MAX];
    size_t cap, total;
};

/* One sample out; one taken before there were library slots reads as zeros there. */
static void emit(struct reader *r, const struct tly_mem_sample *smp, const int64_t *libs)
{
    if (r->total < r->cap) {
        r->out[r->total] = *smp;
        if (r->lib_out && libs)
            memcpy(r->lib_out[r->total], libs, sizeof r->lib_out[r->total]); /* counters, not payload */
        else if (r->lib_out)
            memset(r->lib_out[r->total], 0, sizeof r->lib_out[r->total]);
    }
    r->total++;
}

size_t tly__timeline_read(struct tly_mem_sample *out, int64_t (*lib_out)[TLY__LIB_MAX], size_t cap)
{
    int64_t st[TLY_NSTAGES], lb[TLY__LIB_MAX];
    tly__live_stages(st);
    const int64_t *lnow = libs_now(lb);
    uint64_t now = tly__now_ns();
    int64_t live = tly_mem_live_bytes();
    struct reader r = {out, lib_out, cap, 0};

    lock();
    bool peak_done = false;
    for (size_t i = 0; i < n; i++) {
        if (!peak_done && peak_sample.t_ns <= samples[i].t_ns) {
            emit(&r, &peak_sample, peak_has_lib ? peak_lib : NULL);
            peak_done = true;
        }
        emit(&r, &samples[i], sample_has_lib[i] ? sample_lib[i] : NULL);
    }
    if (!peak_done)
        emit(&r, &peak_sample, peak_has_lib ? peak_lib : NULL);
    struct tly_mem_sample last = {.t_ns = now >= t0 ? now - t0 : 0, .live_bytes = live};
    memcpy(last.stage_live, st, sizeof st); /* counters, not payload */
    emit(&r, &last, lnow);
    unlock();
    return r.total;
}

size_t tly_mem_timeline(struct tly_mem_sample *out, size_t cap)
{
    return tly__timeline_read(out, NULL, cap);
}

int tly_mem_timeline_write_json(FILE *f)
{
    static struct tly_mem_sample buf[TLY_TIMELINE_CAP + 2];
    static pthread_mutex_t buf_mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&buf_mu);
    size_t k = tly_mem_timeline(buf, TLY_TIMELINE_CAP + 2);
    if (k > TLY_TIMELINE_CAP + 2)
        k = TLY_TIMELINE_CAP + 2;
    size_t peak_index = 0;
    fprintf(f, "{\"columns\":[\"t_s\",\"live\"");
    for (int s = 0; s < TLY_NSTAGES; s++)
        fprintf(f, ",\"%s\"", tly_stage_name((enum tly_stage)s));
    fprintf(f, "],\"samples\":[");
    for (size_t i = 0; i < k; i++) {
        if (buf[i].is_peak)
            peak_index = i;
        fprintf(f, "%s[%.9f,%lld", i ? "," : "", (double)buf[i].t_ns / 1e9, (long long)buf[i].live_bytes);
        for (int s = 0; s < TLY_NSTAGES; s++)
            fprintf(f, ",%lld", (long long)buf[i].stage_live[s]);
        fputc(']', f);
    }
    fprintf(f, "],\"peak_index\":%zu}", peak_index);
    pthread_mutex_unlock(&buf_mu);
    return ferror(f) ? -EIO : 0;
}

void tly_mem_timeline_grain(uint64_t array_bytes)
{
    int64_t g = (int64_t)(array_bytes / 100);
    atomic_store(&gran0, array_bytes == 0 || g > GRAN0 ? GRAN0 : g < GRAN_MIN ? GRAN_MIN : g);
}

uint64_t tly_mem_window_start_ns(void)
{
    lock();
    uint64_t t = t0;
    unlock();
    return t;
}
