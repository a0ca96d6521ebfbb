/*
 * The planted defect, for `tally selftest` (internal to libtally: the engine and the stores hold the
 * plant points). With TALLY_PLANT=STAGE[:BYTES] in the environment, the first time the engine passes
 * a plant point of STAGE it allocates BYTES (default 1 MiB) in that stage, fills them through the
 * copy ledger, and holds them until the array is closed (tly_array_close), so the operation's window
 * sees them. Off, a plant point costs one load and a compare.
 */
#ifndef TLY__MEM_PLANT_H
#define TLY__MEM_PLANT_H

#include <stddef.h>

#include "tally/mem.h"

extern int tly__plant_stage; /* -1: off */
void tly__plant_hit(void);

/** A place where a defect of stage @p s can be planted. */
static inline void tly__plant_point(enum tly_stage s)
{
    if (__builtin_expect(tly__plant_stage == (int)s, 0))
        tly__plant_hit();
}

/** Plant @p bytes in stage @p s (-1: none). */
void tly__plant_set(int s, size_t bytes);

/** Free what was planted. */
void tly__plant_release(void);

#endif
