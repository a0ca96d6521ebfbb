/*
 * Other programs under the same instrument: libtally-preload.so loaded with Debian's jemalloc by
 * LD_PRELOAD (docs/impl-protocol.md). Where the two libraries are, the environment that loads them,
 * and the result object the preload leaves when the measured window closes.
 */
#ifndef TLY_H_PRELOAD_H
#define TLY_H_PRELOAD_H

#include <jansson.h>

#include "harness.h"

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
 * The result the preload wrote to @p file, with the figures recomputed the harness's way (extra
 * copies under the fixed overhead count as 0); NULL with tly_errmsg() set when there is none or it
 * is not a result object.
 */
json_t *tly_h_preload_result(const char *file);

/** What tly_h_preload_result() does to a result once read: @p r (a result object) recomputed in place. */
void tly_h_preload_finish(json_t *r);

#endif
