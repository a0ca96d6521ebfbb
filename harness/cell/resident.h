/*
 * The resident peak: a process's anonymous resident memory (RssAnon: /proc/PID/statm's resident less
 * its shared pages), sampled from outside the process every millisecond, for it and every process it
 * starts. It is the third peak beside the heap's requested and reserved ones: what the kernel had
 * to give the program, which a heap counter cannot see (a buffer allocated but not yet touched is
 * not resident; memory freed but not yet returned still is).
 *
 * Only changes of TLY_H_RESIDENT_GRAIN or more are kept, so the series of a long run stays small and
 * any maximum it held is known to that grain. A sample costs one pread of a /proc file (~10 us).
 */
#ifndef TLY_H_RESIDENT_H
#define TLY_H_RESIDENT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "harness.h"

/** Changes smaller than this are not kept (the figures' resolution, besides the sampling period). */
#define TLY_H_RESIDENT_GRAIN ((int64_t)256 << 10)

/** How often each process is sampled, and how often its new children are looked for. */
#define TLY_H_RESIDENT_PERIOD_NS 1000000
#define TLY_H_RESIDENT_CHILDREN_EVERY 10

struct tly_h_resident;

/**
 * Start sampling process @p pid and, with @p children, as they appear, its descendants (looked for every
 * TLY_H_RESIDENT_CHILDREN_EVERY samples: a child that lives for less may be missed), on a thread of
 * its own (which allocates nothing on the heap without @p children). Returns NULL when the thread cannot start (the
 * figures are then absent, never guessed).
 */
struct tly_h_resident *tly_h_resident_start(pid_t pid, bool children);

/** Stop sampling (before the processes are reaped: a reaped pid may be another process's soon). */
void tly_h_resident_stop(struct tly_h_resident *r);

/**
 * Process @p pid's anonymous resident bytes when a window opened at @p t0_ns (CLOCK_MONOTONIC) and
 * their highest until @p t1_ns, into @p before and @p peak. False when that process was not sampled
 * in the window.
 */
bool tly_h_resident_window(const struct tly_h_resident *r, pid_t pid, uint64_t t0_ns, uint64_t t1_ns, int64_t *before,
                           int64_t *peak);

/** The highest sum of every sampled process's anonymous resident bytes at one moment; samples taken. */
int64_t tly_h_resident_tree_peak(const struct tly_h_resident *r, uint64_t *samples);

void tly_h_resident_free(struct tly_h_resident *r);

/**
 * A spawn watch (harness.h) that starts sampling the spawned program and its descendants into
 * *@p out when it starts, and stops when it ends (before it is reaped); *@p out is NULL until then,
 * and stays NULL when the sampler cannot start. The caller frees it.
 */
struct tly_h_spawn_watch tly_h_resident_watch(struct tly_h_resident **out);

#endif
