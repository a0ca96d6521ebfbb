/*
 * Other implementations as a matrix dimension: an adapter program per stack (harness/impl/) runs one
 * cell under the preload tracker (docs/impl-protocol.md); its result line and the preload's figures
 * become one result object with "impl" set.
 */
#ifndef TLY_H_IMPL_H
#define TLY_H_IMPL_H

#include <jansson.h>
#include <stdbool.h>

#include "run/run.h"

/** An implementation of the run. */
struct tly_h_impl {
    const char *name;
    json_t *command;      /**< the adapter's argv (borrowed from the matrix) */
    bool sharded_fixture; /**< it reads sharded arrays it cannot write: the harness writes them (engine) */
    bool s3_fixture;      /**< it reads S3 arrays it cannot write there: the harness writes them (engine) */
    bool available;
    char version[128];
    char reason[TLY_H_REASON]; /**< why it is unavailable */
};

/** Ask the adapter (`ADAPTER --probe`) whether its stack is here. */
void tly_h_impl_probe(struct tly_h_impl *im);

/** Where a run keeps the data files and cell files it gives adapters (removed at the end). */
struct tly_h_scratch {
    char dir[TLY_H_PATH];
    json_t *data; /**< "<dtype> <shape>" -> the .npy's path */
    int serial;
};

int tly_h_scratch_open(struct tly_h_scratch *s);
void tly_h_scratch_close(struct tly_h_scratch *s);

/**
 * Run @p cell (a matrix cell with "impl") with @p im under the preload. Returns the merged result
 * object (its "status" "ok" or "skipped" with "reason"), or NULL with @p reason saying why it failed.
 */
json_t *tly_h_impl_run(const struct tly_h_impl *im, json_t *cell, struct tly_h_scratch *s, char *reason);

#endif
