/**
 * tally/tally.h — the whole public API of libtally, one header per module:
 *
 *   error.h   errors as values, messages with context (tly_fail, tly_errmsg)
 *   checked.h sizes multiplied and added without wrapping
 *   opts.h    the strict parser of numbers a user gives, and the one table of tuning options' bounds
 *   mem.h     the tracker: stages, counters, copy ledger, timeline, cross-checks
 *   timing.h  where the time goes: busy and waiting per stage, waits, the event ring
 *   plan.h    dtypes, regions, chunk grids and runs (the plan stage)
 *   codec.h   codecs (none, blosc, zstd, gzip, zlib) into caller buffers, and what each can do
 *   meta.h    Zarr v2/v3 metadata
 *   store.h   local filesystem and S3 objects
 *   engine.h  arrays: create, open, write and read regions
 *   version.h the library's version
 *
 * Dependencies point one way: mem <- plan <- meta, codec, store <- engine (docs/design.md).
 */
#ifndef TALLY_TALLY_H
#define TALLY_TALLY_H

#include "tally/checked.h"
#include "tally/codec.h"
#include "tally/engine.h"
#include "tally/error.h"
#include "tally/mem.h"
#include "tally/meta.h"
#include "tally/opts.h"
#include "tally/plan.h"
#include "tally/store.h"
#include "tally/timing.h"
#include "tally/version.h"

#endif
