/*
 * Internal to the local store: its state and what its three files give each other.
 *
 *   local.c        the store's operations: sizes, reads, writes, deletes, clear, open and close
 *   local_path.c   where a key is: its directory walked from the root without following a symbolic
 *                  link (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS where the kernel has it), and
 *                  only regular files opened (O_NOFOLLOW | O_NONBLOCK, then fstat)
 *   local_stage.c  a whole array written beside the root and swapped in (stage, publish, discard),
 *                  the root's state (probe), and gc of what interrupted writes left
 */
#ifndef TLY__STORE_LOCAL_H
#define TLY__STORE_LOCAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/internal.h"

struct tly__local {
    struct tly_store base;
    char *root;  /* the path as given, without trailing slashes: what messages name */
    int root_fd; /* -1 until the root is opened */
    pthread_mutex_t mu;
    uint64_t meta_limit; /* the most bytes tly_store_get() reads (TALLY_META_LIMIT) */
    /* a staged array (local_stage.c): every data operation goes to stage_fd while it is >= 0 */
    int stage_fd;
    int parent_fd;    /* the root's parent directory */
    char *name;       /* the root's last component */
    char *stage_name; /* ".NAME.tally-new-PID-N" in the parent */
    bool replace;     /* an array is there: publish swaps it out */
};

static inline struct tly__local *tly__local_of(struct tly_store *st)
{
    return (struct tly__local *)st;
}

/* ---- local.c ---- */

/** The root's descriptor (the directory made first with @p create); -ENOENT when it is missing. */
int tly__local_root(struct tly__local *st, bool create);

/** The directory data operations use: the staged one, else the root (made first with @p create);
 * -ENOENT when the root is missing, or another -errno. */
int tly__local_dir(struct tly__local *st, bool create);

/** mkdir -p @p path. 0 or -errno. */
int tly__local_mkdirs(const char *path);

/* ---- local_path.c ---- */

/**
 * The directory of @p key under @p dir, walked without following a symbolic link (made on the way
 * with @p create), into @p pfd (which the caller closes when it is not @p dir), and the key's last
 * component into @p name. TLY_ENOTFOUND when a directory on the way is missing; an error naming the
 * key (@p st's root in front) for a symbolic link or another failure.
 */
int tly__local_key_dir(struct tly__local *st, int dir, const char *key, bool create, int *pfd, const char **name);

/**
 * tly__local_key_dir() for reading from the array's own directory: that directory into @p dir
 * (TLY_ENOTFOUND "no such directory" when it is missing), then @p key's directory and name.
 */
int tly__local_key_at(struct tly__local *st, const char *key, int *dir, int *pfd, const char **name);

/**
 * Open @p key for reading: a regular file only, never through a symbolic link, and without blocking
 * on a FIFO or a device (refused: "not a regular file"). Its size into @p size when not NULL.
 * TLY_ENOTFOUND, or an error naming the key.
 */
int tly__local_open_key(struct tly__local *st, const char *key, int *fd, uint64_t *size);

/** Remove @p name under @p dir and everything in it, never following a symbolic link. 0 or -errno. */
int tly__local_rmtree(int dir, const char *name);

/* ---- local_stage.c ---- */

int tly__local_probe(struct tly_store *base, enum tly_store_state *out);
int tly__local_stage(struct tly_store *base, bool replace);
int tly__local_publish(struct tly_store *base);
void tly__local_discard(struct tly_store *base);
int tly__local_gc(struct tly_store *base, uint64_t *removed);

/** Tests: publish as if the filesystem had no RENAME_EXCHANGE (the two-step fallback). */
extern bool tly__local_no_exchange;

#endif
