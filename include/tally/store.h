/**
 * tally/store.h — where chunks live: the local filesystem (and S3, behind the same interface).
 *
 * Keys are relative to the array's root ("0.0", "c/0/1", ".zarray"); a key may not escape the root
 * (no "..", no absolute path, no empty component). Writes are atomic: a reader sees the old object
 * or the whole new one, never a torn one. Reads and writes go straight between the store and the
 * caller's memory (preadv/pwritev for local files): the store makes no payload copies of its own.
 */
#ifndef TALLY_STORE_H
#define TALLY_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

struct tly_store;
struct tly_writer;

/** Options of a store. */
struct tly_store_opts {
    bool fsync; /**< make each committed write durable (fsync the file and its directory) */
};

/**
 * Open the store for @p url: a directory path (created on first write) or file:// URL.
 * Returns 0 and sets @p out, or TLY_EUSAGE for a URL no store handles.
 */
int tly_store_open(const char *url, const struct tly_store_opts *opts, struct tly_store **out);

/** Close and free @p st (NULL is fine). */
void tly_store_close(struct tly_store *st);

/** "local" or "s3". */
const char *tly_store_kind(const struct tly_store *st);

/** The store's URL, as opened. */
const char *tly_store_url(const struct tly_store *st);

/** Size of object @p key into @p out: 0, TLY_ENOTFOUND, or an error. */
int tly_store_size(struct tly_store *st, const char *key, uint64_t *out);

/**
 * Read object @p key from byte @p offset into @p niov pieces of memory, filling each completely.
 * Returns 0, TLY_ENOTFOUND, TLY_EFORMAT when the object is shorter than asked (message names the
 * key and sizes), or an I/O error naming the key.
 */
int tly_store_readv(struct tly_store *st, const char *key, uint64_t offset, const struct iovec *iov, int niov);

/**
 * Read the whole of a small object (metadata) into a malloc'd, NUL-terminated buffer: @p data and
 * @p n. Returns 0, TLY_ENOTFOUND or an error.
 */
int tly_store_get(struct tly_store *st, const char *key, char **data, size_t *n);

/** Write a whole small object atomically. */
int tly_store_put(struct tly_store *st, const char *key, const void *data, size_t n);

/** Start writing object @p key; nothing is visible under @p key until tly_writer_commit(). */
int tly_store_writer(struct tly_store *st, const char *key, struct tly_writer **out);

/** Append @p niov pieces of memory to the object (written from them directly). */
int tly_writer_writev(struct tly_writer *w, const struct iovec *iov, int niov);

/** Publish the object under its key (atomically) and free @p w. On error nothing is published. */
int tly_writer_commit(struct tly_writer *w);

/** Drop the object being written and free @p w (NULL is fine). */
void tly_writer_abort(struct tly_writer *w);

/** Delete object @p key (0 also when it did not exist). */
int tly_store_delete(struct tly_store *st, const char *key);

/**
 * Delete everything under the store's root (used to overwrite an array). Refuses with TLY_EUSAGE
 * unless the root holds Zarr metadata (.zarray, zarr.json), so it never empties a directory that is
 * not an array.
 */
int tly_store_clear(struct tly_store *st);

/** True when @p key is a valid relative key (no escape from the root). */
bool tly_store_key_valid(const char *key);

#ifdef __cplusplus
}
#endif

#endif
