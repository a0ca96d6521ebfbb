/**
 * tally/timing.h — where the time goes: wall time per thread and per stage, split into busy and
 * waiting, the waits by what was waited for, and a bounded event ring for traces.
 *
 * Time accounting is on in every process that links the tracker, unless TALLY_TRACK=0 or
 * TALLY_TIME=0 (then tly_time_on() is false and the scopes cost what they did before). Each stage
 * transition (tly_stage_enter / tly_stage_leave to a different stage) reads CLOCK_MONOTONIC once
 * and charges the interval that ends to the stage it was spent in, on the calling thread:
 *
 *   busy_ns     wall time in the stage, less what was waiting
 *   waiting_ns  time the thread was blocked there: on a pool ticket, the codec gate or the S3 loop's
 *               poll (recorded where it blocks, tly_wait_begin/end), and on the engine's workers the
 *               part of get and put spent off the CPU: blocked (HTTP answers, pread/pwrite), or
 *               runnable while every CPU ran something else (TLY_WAIT_CPU); the thread's
 *               /proc/thread-self/schedstat (time run, time waiting to run) is read at the edges of
 *               those intervals, on worker threads only (a descriptor per worker, kept open)
 *
 * Nothing here allocates; the counters live in the tracker's per-thread blocks. The event ring is
 * mapped once by tly_trace_start(), before a measured window, outside jemalloc (so it is in no
 * figure), and written only while a trace is on; it is never touched by the allocation hooks.
 */
#ifndef TALLY_TIMING_H
#define TALLY_TIMING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tally/mem.h"

#ifdef __cplusplus
extern "C" {
#endif

/** What a thread waited for. */
enum tly_wait {
    TLY_WAIT_TICKET, /**< a pool ticket: the memory budget was taken */
    TLY_WAIT_GATE,   /**< the codec gate: --threads codec calls were running */
    TLY_WAIT_IO,     /**< blocked inside get or put on a worker: HTTP answers, pread/pwrite */
    TLY_WAIT_POLL,   /**< the S3 loop thread idle in curl_multi_poll: nothing to send or receive */
    TLY_WAIT_CPU,    /**< runnable inside get or put on a worker, but every CPU ran something else */
    TLY_NWAITS
};

/** The wait's name ("ticket", "gate", "io", "poll", "cpu"); "?" out of range. */
const char *tly_wait_name(enum tly_wait w);

/** True when time accounting is on (see above). */
bool tly_time_on(void);

/** Time counters of the whole process at one moment; subtract two snapshots for a window. */
struct tly_time_snapshot {
    uint64_t t_ns;                    /**< CLOCK_MONOTONIC when taken */
    uint64_t busy_ns[TLY_NSTAGES];    /**< summed over threads */
    uint64_t waiting_ns[TLY_NSTAGES]; /**< summed over threads */
    uint64_t wait_ns[TLY_NWAITS];     /**< the waiting, by what was waited for */
    uint64_t worker_ns;               /**< threads' time as the engine's workers */
    uint64_t http_requests;           /**< S3 requests answered (retries inside one) */
    uint64_t http_in_flight_ns;       /**< summed over requests: from queued to answered */
};

/**
 * Fill @p out (safe from any thread). A thread's interval in progress counts as busy in its
 * current stage up to now.
 */
void tly_time_snapshot(struct tly_time_snapshot *out);

/** A wait's start: the time now, or 0 when time accounting is off. */
uint64_t tly_wait_begin(void);

/**
 * The calling thread waited from @p t0 (tly_wait_begin()) until now for @p why: the time is
 * waiting in its current stage, not busy. A no-op when @p t0 is 0.
 */
void tly_wait_end(uint64_t t0, enum tly_wait why);

/**
 * The calling thread runs as one of the engine's workers from now (@p on) or no longer; nestable.
 * Worker time is the denominator of the shares in a bottleneck verdict, and a worker's get and put
 * intervals are split into working and off-CPU waiting.
 */
void tly_time_worker(bool on);

/** An S3 request was queued (@p id names it until it ends): method, its s3:// URL, body bytes. */
void tly_io_request_begin(const void *id, const char *method, const char *what, uint64_t body_bytes);

/** Request @p id was answered: the final HTTP status (0: none), bytes moved, attempts made. */
void tly_io_request_end(const void *id, long status, uint64_t bytes, int attempts);

/* ---- the event ring ---- */

/** What an event records. */
enum tly_event_kind {
    TLY_EV_STAGE_BEGIN,  /**< stage: entered; c: the stage left behind */
    TLY_EV_STAGE_END,    /**< stage: left; c: the stage returned to */
    TLY_EV_WAIT,         /**< a wait ending now: a = its ns, c = enum tly_wait (waits under 20 µs are not recorded) */
    TLY_EV_CHUNK_BEGIN,  /**< text = key, a = chunk bytes, b = chunk index */
    TLY_EV_CHUNK_END,    /**< b = chunk index */
    TLY_EV_CODEC_BEGIN,  /**< text = "blosc encode", a = input bytes */
    TLY_EV_CODEC_END,    /**< a = output bytes, c = 0 or 1 on an error */
    TLY_EV_HTTP_BEGIN,   /**< a = request id, b = body bytes, text = "METHOD s3://.../key" (the tail kept) */
    TLY_EV_HTTP_END,     /**< a = request id, b = bytes moved, c = status, stage = attempts */
    TLY_EV_COPY,         /**< a = payload bytes copied since the last copy event, in stage */
    TLY_EV_WORKER,       /**< the thread became an engine worker (c = 1) or stopped (c = 0) */
    TLY_EV_THREAD_START, /**< a new thread, in the stage it inherited */
    TLY_EV_THREAD_EXIT,  /**< the thread ends, in stage */
};

/** One event (64 bytes). */
struct tly_event {
    uint64_t t_ns; /**< CLOCK_MONOTONIC */
    uint64_t a, b;
    uint32_t tid;  /**< the kernel's thread id */
    uint8_t kind;  /**< enum tly_event_kind */
    uint8_t stage; /**< the thread's stage (see the kinds) */
    uint16_t c;
    char text[32]; /**< NUL-terminated; a long one keeps its end */
};

/** Events a ring holds by default. */
#define TLY_TRACE_CAP ((size_t)1 << 16)

/**
 * Map the ring (once, @p cap events; 0: TLY_TRACE_CAP), empty it and start recording. Returns 0 or
 * a negative errno. Call it before a window opens: the mapping is outside jemalloc.
 */
int tly_trace_start(size_t cap);

/** Stop recording (the events stay until the next start). */
void tly_trace_stop(void);

/** True while recording: callers skip building an event's text when it is off. */
bool tly_trace_on(void);

/**
 * How many events the ring holds, to read after tly_trace_stop() (and after the threads that wrote
 * them were joined): the newest min(recorded, cap); how many older ones it overwrote in @p dropped.
 */
size_t tly_trace_count(uint64_t *dropped);

/** Event @p i of those, oldest first (the ring's own storage, valid until the next start). */
const struct tly_event *tly_trace_event_at(size_t i);

/** Record an event of @p kind on the calling thread (a no-op unless recording). */
void tly_trace_note(enum tly_event_kind kind, uint64_t a, uint64_t b, unsigned c, const char *text);

/** When the current measurement window opened (tly_mem_reset_peaks), CLOCK_MONOTONIC ns. */
uint64_t tly_mem_window_start_ns(void);

#ifdef __cplusplus
}
#endif

#endif
