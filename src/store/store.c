/* Store dispatch: URL to store, and the calls every store answers. */
#include <string.h>

#include "tally/error.h"
#include "store/internal.h"

int tly_store_open(const char *url, const struct tly_store_opts *opts, struct tly_store **out)
{
    static const struct tly_store_opts defaults = {0};
    if (opts == NULL)
        opts = &defaults;
    if (url == NULL || url[0] == '\0')
        return tly_fail(TLY_EUSAGE, "empty store URL");
    if (strncmp(url, "file://", 7) == 0)
        return tly__local_open(url + 7, opts, out);
    if (strncmp(url, "s3://", 5) == 0)
        return tly__s3_open(url, opts, out);
    if (strstr(url, "://") != NULL)
        return tly_fail(TLY_EUSAGE, "store URL '%s': scheme not supported (a directory path, file:// or s3://)", url);
    return tly__local_open(url, opts, out);
}

void tly_store_close(struct tly_store *st)
{
    if (st)
        st->ops->close(st);
}

const char *tly_store_kind(const struct tly_store *st)
{
    return st->ops->kind;
}

const char *tly_store_url(const struct tly_store *st)
{
    return st->url;
}

void tly_store_traffic(const struct tly_store *st, uint64_t *read, uint64_t *written)
{
    if (read)
        *read = atomic_load_explicit(&st->traffic.read, memory_order_relaxed);
    if (written)
        *written = atomic_load_explicit(&st->traffic.written, memory_order_relaxed);
}

#define CHECK_KEY(key)                                                                                                 \
    do {                                                                                                               \
        if (!tly_store_key_valid(key))                                                                                 \
            return tly_fail(TLY_EUSAGE, "key '%s' is not a valid relative key", key);                                  \
    } while (0)

int tly_store_size(struct tly_store *st, const char *key, uint64_t *out)
{
    CHECK_KEY(key);
    return st->ops->size(st, key, out);
}

int tly_store_readv(struct tly_store *st, const char *key, uint64_t offset, const struct iovec *iov, int niov)
{
    CHECK_KEY(key);
    return st->ops->readv(st, key, offset, iov, niov);
}

int tly_store_read_head(struct tly_store *st, const char *key, void *buf, size_t n, uint64_t *size)
{
    CHECK_KEY(key);
    return st->ops->read_head(st, key, buf, n, size);
}

int tly_store_read_tail(struct tly_store *st, const char *key, void *buf, size_t n, uint64_t *size)
{
    CHECK_KEY(key);
    return st->ops->read_tail(st, key, buf, n, size);
}

uint64_t tly_store_read_requests(const struct tly_store *st)
{
    return atomic_load_explicit(&st->traffic.read_requests, memory_order_relaxed);
}

int tly_store_read_stream(struct tly_store *st, const char *key, void *buf, size_t cap, tly_store_sink_fn sink,
                          void *arg)
{
    CHECK_KEY(key);
    return st->ops->read_stream(st, key, buf, cap, sink, arg);
}

int tly_store_get(struct tly_store *st, const char *key, char **data, size_t *n)
{
    CHECK_KEY(key);
    return st->ops->get(st, key, data, n);
}

int tly_store_unchanged(struct tly_store *st)
{
    return st->ops->unchanged ? st->ops->unchanged(st) : 0;
}

int tly_store_put(struct tly_store *st, const char *key, const void *data, size_t n)
{
    CHECK_KEY(key);
    return st->ops->put(st, key, data, n);
}

int tly_store_writer(struct tly_store *st, const char *key, struct tly_writer **out)
{
    CHECK_KEY(key);
    return st->ops->writer(st, key, out);
}

int tly_writer_add(struct tly_writer *w, const struct iovec *iov, int niov)
{
    return w->ops->add(w, iov, niov);
}

int tly_writer_writev(struct tly_writer *w, const struct iovec *iov, int niov)
{
    return w->ops->writev(w, iov, niov);
}

void tly_writer_parts_in_flight(struct tly_writer *w, int n)
{
    if (w->ops->in_flight)
        w->ops->in_flight(w, n);
}

int tly_writer_patch(struct tly_writer *w, uint64_t offset, const void *data, size_t n)
{
    if (w->ops->patch == NULL)
        return tly_fail(TLY_EUNSUPPORTED, "this store cannot change bytes already written");
    return w->ops->patch(w, offset, data, n);
}

void tly_writer_keep_head(struct tly_writer *w, size_t head, uint64_t expect)
{
    if (w->ops->keep_head)
        w->ops->keep_head(w, head, expect);
}

int tly_writer_commit(struct tly_writer *w)
{
    return w->ops->commit(w);
}

void tly_writer_abort(struct tly_writer *w)
{
    if (w)
        w->ops->abort(w);
}

int tly_store_delete(struct tly_store *st, const char *key)
{
    CHECK_KEY(key);
    return st->ops->del(st, key);
}

int tly_store_clear(struct tly_store *st)
{
    return st->ops->clear(st);
}

int tly_store_gc(struct tly_store *st, uint64_t *removed)
{
    uint64_t n = 0;
    int err = st->ops->gc(st, &n);
    if (removed)
        *removed = n;
    return err;
}

int tly_store_probe(struct tly_store *st, enum tly_store_state *out)
{
    return st->ops->probe(st, out);
}

int tly_store_stage(struct tly_store *st, bool replace)
{
    return st->ops->stage(st, replace);
}

int tly_store_publish(struct tly_store *st)
{
    return st->ops->publish(st);
}

void tly_store_discard(struct tly_store *st)
{
    if (st)
        st->ops->discard(st);
}
