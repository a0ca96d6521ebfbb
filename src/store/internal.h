/* Internal to src/store: the interface each store implements. */
#ifndef TLY__STORE_INTERNAL_H
#define TLY__STORE_INTERNAL_H

#include <stdatomic.h>

#include "tally/store.h"

struct tly_store_ops {
    const char *kind;
    int (*size)(struct tly_store *st, const char *key, uint64_t *out);
    int (*readv)(struct tly_store *st, const char *key, uint64_t offset, const struct iovec *iov, int niov);
    int (*read_head)(struct tly_store *st, const char *key, void *buf, size_t n, uint64_t *size);
    int (*read_tail)(struct tly_store *st, const char *key, void *buf, size_t n, uint64_t *size);
    int (*read_stream)(struct tly_store *st, const char *key, void *buf, size_t cap, tly_store_sink_fn sink, void *arg);
    int (*get)(struct tly_store *st, const char *key, char **data, size_t *n);
    int (*put)(struct tly_store *st, const char *key, const void *data, size_t n);
    int (*writer)(struct tly_store *st, const char *key, struct tly_writer **out);
    int (*del)(struct tly_store *st, const char *key);
    int (*clear)(struct tly_store *st);
    int (*gc)(struct tly_store *st, uint64_t *removed);
    int (*probe)(struct tly_store *st, enum tly_store_state *out);
    int (*unchanged)(struct tly_store *st); /* NULL: the store detects a replaced array itself */
    int (*stage)(struct tly_store *st, bool replace);
    int (*publish)(struct tly_store *st);
    void (*discard)(struct tly_store *st);
    void (*close)(struct tly_store *st);
};

struct tly_writer_ops {
    int (*add)(struct tly_writer *w, const struct iovec *iov, int niov);
    int (*writev)(struct tly_writer *w, const struct iovec *iov, int niov);
    int (*commit)(struct tly_writer *w);
    void (*abort)(struct tly_writer *w);
    int (*patch)(struct tly_writer *w, uint64_t offset, const void *data, size_t n); /* NULL: cannot */
    void (*keep_head)(struct tly_writer *w, size_t head,
                      uint64_t expect);             /* NULL: every byte can be patched until the commit */
    void (*in_flight)(struct tly_writer *w, int n); /* NULL: writev writes at once (nothing in flight) */
};

/* Payload bytes that crossed a store's interface (tly_store_traffic): each store adds to them at its
 * one or two points where bytes meet the file or the wire, nowhere else. */
struct tly__store_traffic {
    _Atomic uint64_t read, written;
    _Atomic uint64_t read_requests; /* tly_store_read_requests */
};

/* One request that reads an object (tly_store_read_requests). */
static inline void tly__traffic_request(struct tly__store_traffic *t)
{
    atomic_fetch_add_explicit(&t->read_requests, 1, memory_order_relaxed);
}

static inline void tly__traffic_add(struct tly__store_traffic *t, uint64_t read, uint64_t written)
{
    if (read)
        atomic_fetch_add_explicit(&t->read, read, memory_order_relaxed);
    if (written)
        atomic_fetch_add_explicit(&t->written, written, memory_order_relaxed);
}

/* The part every store shares; each store's struct begins with it. */
struct tly_store {
    const struct tly_store_ops *ops;
    char *url;
    struct tly_store_opts opts;
    struct tly__store_traffic traffic;
};

struct tly_writer {
    const struct tly_writer_ops *ops;
};

int tly__local_open(const char *path, const struct tly_store_opts *opts, struct tly_store **out);

/* s3.c: @p url is s3://BUCKET[/PREFIX]; configured from the AWS environment (see s3_config.c). */
int tly__s3_open(const char *url, const struct tly_store_opts *opts, struct tly_store **out);

#endif
