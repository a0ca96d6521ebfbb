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

/** Options of a store. Zero values mean the defaults. */
struct tly_store_opts {
    bool fsync;         /**< local: make each committed write durable (fsync the file and its directory) */
    int io_concurrency; /**< S3: transfers in flight in the curl multi loop (default 32, TALLY_IO_CONCURRENCY) */
    size_t part_size;   /**< S3: multipart part size (default 8 MiB, TALLY_PART_SIZE) */
};

/** Where streamed data goes, piece by piece; returns 0 or a negative error to stop. */
typedef int (*tly_store_sink_fn)(void *arg, const void *data, size_t n);

/**
 * Open the store for @p url: a directory path (created on first write), file://PATH, or
 * s3://BUCKET/PREFIX (configured from the AWS environment). Returns 0 and sets @p out, or
 * TLY_EUSAGE for a URL no store handles.
 */
int tly_store_open(const char *url, const struct tly_store_opts *opts, struct tly_store **out);

/** Close and free @p st (NULL is fine). */
void tly_store_close(struct tly_store *st);

/** "local" or "s3". */
const char *tly_store_kind(const struct tly_store *st);

/** The store's URL, as opened. */
const char *tly_store_url(const struct tly_store *st);

/**
 * The payload bytes that crossed the store's interface since it was opened, into @p read and
 * @p written (either may be NULL): the bytes of objects (chunks and metadata alike) as they moved
 * between the store and the file or the wire. Local: what pread/preadv read and pwritev/pwrite wrote
 * (a patched blosc table counts again). S3: the bodies of GETs answered 2xx as received and of PUTs
 * and UploadParts as sent, every attempt of a retried request counted as it happened; not headers,
 * error replies or S3's XML (listings, multipart initiate and complete, batch deletes). The same
 * operation thus counts the same bytes on both stores, retries aside. Counters only grow; safe to
 * read from any thread while the store is in use.
 */
void tly_store_traffic(const struct tly_store *st, uint64_t *read, uint64_t *written);

/** Size of object @p key into @p out: 0, TLY_ENOTFOUND, or an error. */
int tly_store_size(struct tly_store *st, const char *key, uint64_t *out);

/**
 * Read object @p key from byte @p offset into @p niov pieces of memory, filling each completely.
 * Returns 0, TLY_ENOTFOUND, TLY_EFORMAT when the object is shorter than asked (message names the
 * key and sizes), or an I/O error naming the key.
 */
int tly_store_readv(struct tly_store *st, const char *key, uint64_t offset, const struct iovec *iov, int niov);

/**
 * Read the first bytes of object @p key (a chunk's header) in one request, and its size: min(@p n,
 * size) bytes into @p buf, the object's size into @p size. S3 asks for a range from byte 0, whose
 * reply's Content-Range says the size (a 200, a server that ignores ranges: its Content-Length); RGW
 * refuses a range of an empty object (416), which costs a second request (HEAD). The local store
 * reads it with one pread after the open's fstat. Returns 0, TLY_ENOTFOUND, or an error naming the
 * key.
 */
int tly_store_read_head(struct tly_store *st, const char *key, void *buf, size_t n, uint64_t *size);

/**
 * Read the last bytes of object @p key (a shard's index at its end) in one request, and its size:
 * min(@p n, size) bytes into the start of @p buf, the object's size into @p size. S3 asks for a
 * suffix range (`Range: bytes=-N`), whose Content-Range says the size; a server that answers it
 * with the whole object (200) or refuses it (416, as RGW does for an empty object) costs a second
 * request (the size, then a range), never the object whole. The local store reads it with one
 * pread after the open's fstat. Returns 0, TLY_ENOTFOUND, or an error naming the key.
 */
int tly_store_read_tail(struct tly_store *st, const char *key, void *buf, size_t n, uint64_t *size);

/**
 * Requests the store has made to read objects since it was opened: S3 GETs and HEADs (a retried
 * one counts once); local, each read of an object (tly_store_size, readv, read_tail, read_stream,
 * get). Counters only grow; safe from any thread.
 */
uint64_t tly_store_read_requests(const struct tly_store *st);

/**
 * Stream the whole of object @p key through @p sink as it arrives, so that it is never held whole:
 * the local store reads blocks into @p buf (@p cap bytes, the caller's); S3 hands the HTTP body's
 * pieces straight from libcurl. Returns 0, TLY_ENOTFOUND, the sink's error, or an error naming
 * the key.
 */
int tly_store_read_stream(struct tly_store *st, const char *key, void *buf, size_t cap, tly_store_sink_fn sink,
                          void *arg);

/**
 * Read the whole of a small object (metadata) into a malloc'd, NUL-terminated buffer: @p data and
 * @p n. Returns 0, TLY_ENOTFOUND or an error.
 */
int tly_store_get(struct tly_store *st, const char *key, char **data, size_t *n);

/** Write a whole small object atomically. */
int tly_store_put(struct tly_store *st, const char *key, const void *data, size_t n);

/** Start writing object @p key; nothing is visible under @p key until tly_writer_commit(). */
int tly_store_writer(struct tly_store *st, const char *key, struct tly_writer **out);

/**
 * Append @p niov pieces of memory that stay valid and unchanged until tly_writer_commit() or
 * tly_writer_abort(): the store may reference them instead of copying (the local store writes
 * them at once with pwritev; S3 streams them as the request body from the caller's memory).
 */
int tly_writer_add(struct tly_writer *w, const struct iovec *iov, int niov);

/**
 * Append @p niov pieces of memory the caller reuses as soon as this returns (a streaming
 * encoder's output block). The local store writes them at once; S3 copies them (through the copy
 * ledger) into a part buffer of bounded size, uploading parts as they fill.
 */
int tly_writer_writev(struct tly_writer *w, const struct iovec *iov, int niov);

/**
 * Overwrite @p n bytes at @p offset of what was appended so far (a header whose fields are known
 * only at the end, as a blosc frame's offset table). The local store writes them in place; S3 changes
 * them where they are not sent yet (an object under the part size, or the first part with
 * tly_writer_keep_head(): bytes appended by tly_writer_writev) and answers TLY_EUNSUPPORTED otherwise.
 */
int tly_writer_patch(struct tly_writer *w, uint64_t offset, const void *data, size_t n);

/**
 * Say, before anything is appended, that the object's first @p head bytes will be patched (a shard's
 * index at its start, a blosc frame's header and offset table): S3 then keeps its first part until the
 * commit, uploading it last, so that tly_writer_patch() can change bytes in it; the local store needs
 * nothing. @p expect: the most the object may hold (0: not known). One that may outgrow the part size
 * keeps a first part as small as S3 takes (5 MiB, or @p head where longer), so that the bytes after it
 * go out as they come instead of waiting with it; otherwise the first part is the part size, and an
 * object under it is one PUT.
 */
void tly_writer_keep_head(struct tly_writer *w, size_t head, uint64_t expect);

/**
 * Let up to @p n parts copied by tly_writer_writev() upload at once (default 1: one uploads while the
 * next fills): the writer then holds up to n + 1 parts of part_size bytes (n + 2 with
 * tly_writer_keep_head()). The local store writes at once and ignores it.
 */
void tly_writer_parts_in_flight(struct tly_writer *w, int n);

/** Publish the object under its key (atomically) and free @p w. On error nothing is published. */
int tly_writer_commit(struct tly_writer *w);

/** Drop the object being written and free @p w (NULL is fine). */
void tly_writer_abort(struct tly_writer *w);

/** Delete object @p key (0 also when it did not exist). */
int tly_store_delete(struct tly_store *st, const char *key);

/**
 * Delete everything under the store's root. Refuses with TLY_EUSAGE
 * unless the root holds Zarr metadata (.zarray, zarr.json), so it never empties a directory that is
 * not an array.
 */
int tly_store_clear(struct tly_store *st);

/**
 * Clean up what interrupted writes left: local temporary files under the root and, beside it, the
 * directories of staged arrays never published (an old array an interrupted two-step swap set aside
 * is put back when the root is missing); S3 multipart uploads never completed or aborted, and an
 * incomplete array (the marker without metadata: all its objects). A local leftover whose process
 * still runs is kept. @p removed (may be NULL) gets how many were cleaned.
 */
int tly_store_gc(struct tly_store *st, uint64_t *removed);

/** What is at a store's root (tly_store_probe). */
enum tly_store_state {
    TLY_STORE_ABSENT,     /**< nothing: no array, no interrupted write (local: no directory, or an empty one) */
    TLY_STORE_ARRAY,      /**< an array: Zarr metadata (.zarray or zarr.json) */
    TLY_STORE_INCOMPLETE, /**< an interrupted write that never published (run tally gc) */
    TLY_STORE_OTHER,      /**< local: a directory that holds something but no Zarr metadata */
};

/**
 * What is at the store's root, into @p out. A check that fails for any reason but "not found"
 * (403, 5xx after the retries, a timeout, EACCES, a FIFO where the metadata should be) is that error,
 * never TLY_STORE_ABSENT.
 */
int tly_store_probe(struct tly_store *st, enum tly_store_state *out);

/**
 * After a read of the array whose metadata this store opened: 0 when that metadata is still the
 * version the read opened, so every chunk it read was that array's; -ESTALE ("the array was replaced
 * while it was read") when an overwrite deleted or replaced it meanwhile. S3: one HEAD of the metadata,
 * its ETag, writer id (x-amz-meta-tally-write) and Last-Modified compared (an overwrite deletes the
 * metadata before it touches a chunk). Local stores detect a swap themselves (a chunk the swap removed
 * is -ESTALE, never missing) and return 0. A store that opened no metadata returns 0.
 */
int tly_store_unchanged(struct tly_store *st);

/**
 * Begin writing a whole new array at the store's root, unseen by readers until tly_store_publish():
 *
 *   local  every later write of @p st goes to a new directory beside the root
 *          (".NAME.tally-new-PID-N"); the root itself is untouched.
 *   S3     there is no rename: the prefix is marked incomplete (the ".tally-incomplete" object,
 *          created only where there is none: If-None-Match: *, so one writer holds an array at a
 *          time; another's marker is taken over only when its process provably no longer runs, else
 *          TLY_EEXISTS names it); with @p replace, the old array's metadata is deleted first, then its
 *          other objects. From then on the prefix opens as no array ("incomplete array: run tally
 *          gc") until the caller has written the new metadata (last) and published; a commit whose
 *          write no longer holds the marker publishes nothing.
 *
 * @p replace says an array (or an incomplete one) is there to be replaced (tly_store_probe()).
 */
int tly_store_stage(struct tly_store *st, bool replace);

/**
 * Make the staged array the store's: local: the staged directory swapped with the root in one
 * rename (renameat2 RENAME_EXCHANGE; where the filesystem has no exchange, the old one is renamed
 * aside first, and tly_store_gc() puts it back if the second rename never happened), then the old
 * array removed; a new array is renamed into place (an empty directory there is replaced). S3: the
 * marker deleted. 0 when nothing is staged.
 */
int tly_store_publish(struct tly_store *st);

/** Drop a staged array: local: its directory removed; S3: nothing (it stays incomplete, for gc). */
void tly_store_discard(struct tly_store *st);

/** True when @p key is a valid relative key (no escape from the root). */
bool tly_store_key_valid(const char *key);

#ifdef __cplusplus
}
#endif

#endif
