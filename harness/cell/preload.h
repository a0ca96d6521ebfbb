/*
 * Other programs under the same instrument: libtally-preload.so loaded with Debian's jemalloc by
 * LD_PRELOAD (docs/impl-protocol.md). Where the two libraries are, the environment that loads them,
 * and the result object the preload leaves when the measured window closes.
 */
#ifndef TLY_H_PRELOAD_H
#define TLY_H_PRELOAD_H

#include <jansson.h>

#include "harness.h"

struct tly_h_resident;

/** Room for the LD_PRELOAD value tly_h_preload_env() builds. */
#define TLY_H_PRELOAD_VALUE (3 * TLY_H_PATH)

/** Entries tly_h_preload_env() fills. */
#define TLY_H_PRELOAD_NENV 4

/**
 * Fill @p env[0..TLY_H_PRELOAD_NENV) with LD_PRELOAD (the preload, then jemalloc, then any LD_PRELOAD
 * already set; the text in @p value, TLY_H_PRELOAD_VALUE bytes, which must outlive the spawn),
 * TALLY_PROFILE_OUT=@p out_file and TALLY_PROFILE_DIR=@p dir (each unset when NULL), and
 * TALLY_PROFILE_ROOT unset (a preloaded tally's own mark of its root process must not pass to the
 * program). Returns 0, or an error naming the missing library.
 */
int tly_h_preload_env(struct tly_h_env *env, char *value, const char *out_file, const char *dir);

/**
 * The result the preload wrote to @p file, with its resident peak from @p rs (the sampler that
 * watched the program; NULL when there was none) and every figure derived by tly_h_figures(); NULL with tly_errmsg()
 * set when there is none or it is not a result object.
 */
json_t *tly_h_preload_result(const char *file, const struct tly_h_resident *rs);

/** The resident figures of result @p r's window, from the sampler @p rs (NULL: said absent), into @p r. */
void tly_h_resident_into(json_t *r, const struct tly_h_resident *rs);

/** How much of the peak extra (x array) no copy volume explains before a result says so. */
#define TLY_H_UNEXPLAINED_MIN 0.75

/**
 * Set @p r's "unexplained_copies": null, or, when the peak holds at least one extra copy and its
 * peak_extra_ratio exceeds the libraries' copy volume (their "copies", x array) by
 * TLY_H_UNEXPLAINED_MIN or more, {"extra_copies_by_peak", "copy_volume", "unexplained", "note"}: the
 * copies the instrument could not see (loops that never call memcpy), named rather than hidden.
 * Call it again after the peak figures are recomputed (tally profile's rescale).
 */
void tly_h_unexplained_copies(json_t *r);

/** What tly_h_preload_result() does to a result once read: @p r (a result object) recomputed in place,
 * its resident figures from @p rs (or said absent). */
void tly_h_preload_finish(json_t *r, const struct tly_h_resident *rs);

#endif
