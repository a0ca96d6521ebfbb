/*
 * The memory timeline: (time, live bytes by stage) samples of the current window.
 *
 * A sample is taken when process-wide live bytes have moved by at least `gran` since the last one.
 * When the buffer fills, every other sample is dropped and `gran` doubles, so the timeline stays
 * bounded whatever the run's length; the peak is kept apart from the buffer and merged back in
 * time order when read, so thinning never loses it.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "mem/internal.h"

#define GRAN0 ((int64_t)64 * 1024)

_Atomic int64_t tly__tl_last;
_Atomic int64_t tly__tl_gran = GRAN0;

static tly__spin mu = TLY__SPIN_INIT;
static uint64_t t0;
static size_t n;
static struct tly_mem_sample samples[TLY_TIMELINE_CAP];
static struct tly_mem_sample peak_sample;

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
    for (size_t i = 0; i < n; i += 2)
        samples[j++] = samples[i];
    n = j;
    atomic_store_explicit(&tly__tl_gran, atomic_load(&tly__tl_gran) * 2, memory_order_relaxed);
}

static void put(uint64_t t_ns, int64_t live, const int64_t stage_live[TLY_NSTAGES])
{
    if (n == TLY_TIMELINE_CAP)
        thin();
    struct tly_mem_sample *s = &samples[n++];
    s->t_ns = t_ns >= t0 ? t_ns - t0 : 0;
    s->live_bytes = live;
    memcpy(s->stage_live, stage_live, sizeof s->stage_live); /* counters, not payload */
    s->is_peak = false;
    atomic_store_explicit(&tly__tl_last, live, memory_order_relaxed);
}

void tly__timeline_sample(int64_t live)
{
    int64_t st[TLY_NSTAGES];
    lock();
    int64_t gap = live - atomic_load_explicit(&tly__tl_last, memory_order_relaxed);
    if ((gap < 0 ? -gap : gap) >= atomic_load_explicit(&tly__tl_gran, memory_order_relaxed)) {
        tly__live_stages(st);
        put(tly__now_ns(), live, st);
    }
    unlock();
}

void tly__timeline_peak(uint64_t t_ns, int64_t live, const int64_t stage_live[TLY_NSTAGES])
{
    lock();
    peak_sample.t_ns = t_ns >= t0 ? t_ns - t0 : 0;
    peak_sample.live_bytes = live;
    memcpy(peak_sample.stage_live, stage_live, sizeof peak_sample.stage_live); /* counters, not payload */
    peak_sample.is_peak = true;
    unlock();
}

void tly__timeline_reset(uint64_t t0_ns, int64_t live, const int64_t stage_live[TLY_NSTAGES])
{
    lock();
    t0 = t0_ns;
    n = 0;
    atomic_store_explicit(&tly__tl_gran, GRAN0, memory_order_relaxed);
    put(t0_ns, live, stage_live);
    peak_sample = samples[0];
    peak_sample.is_peak = true;
    unlock();
}

size_t tly_mem_timeline(struct tly_mem_sample *out, size_t cap)
{
    int64_t st[TLY_NSTAGES];
    tly__live_stages(st);
    uint64_t now = tly__now_ns();
    int64_t live = tly_mem_live_bytes();

    lock();
    size_t total = 0;
    bool peak_done = false;
#define EMIT(smp)                                                                                                      \
    do {                                                                                                               \
        if (total < cap)                                                                                               \
            out[total] = (smp);                                                                                        \
        total++;                                                                                                       \
    } while (0)
    for (size_t i = 0; i < n; i++) {
        if (!peak_done && peak_sample.t_ns <= samples[i].t_ns) {
            EMIT(peak_sample);
            peak_done = true;
        }
        EMIT(samples[i]);
    }
    if (!peak_done)
        EMIT(peak_sample);
    struct tly_mem_sample last = {.t_ns = now >= t0 ? now - t0 : 0, .live_bytes = live};
    memcpy(last.stage_live, st, sizeof st); /* counters, not payload */
    EMIT(last);
#undef EMIT
    unlock();
    return total;
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
