/*
 * store: the S3 store against a real S3 — the Ceph radosgw scripts/s3-server starts (scripts/test
 * starts it and exports its environment). Every test writes under a prefix of its own and deletes
 * what it wrote (memstore keeps objects in RAM). Without AWS_ENDPOINT_URL and TALLY_S3_BUCKET the
 * tests skip, saying so.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tally/error.h"
#include "store/internal.h"
#include "store/s3_internal.h"
#include "edge_reads.h"
#include "support.h"
#include "tally/error.h"

#define MIB ((size_t)1 << 20)

static char root[256]; /* s3://BUCKET/tally-test/PID-N */

static bool have_s3(void)
{
    const char *e = getenv("AWS_ENDPOINT_URL"), *b = getenv("TALLY_S3_BUCKET");
    return e && *e && b && *b;
}

#define REQUIRE_S3()                                                                                                   \
    do {                                                                                                               \
        if (!have_s3())                                                                                                \
            cr_skip_test("no S3 server: AWS_ENDPOINT_URL and TALLY_S3_BUCKET are not set (scripts/test starts one)");  \
    } while (0)

/* A fresh prefix per test; the one-time set-up of libcurl and OpenSSL (a first request) before the
 * leak check starts. */
static void setup(void)
{
    if (!have_s3())
        return;
    static int n;
    snprintf(root, sizeof root, "s3://%s/tally-test/%d-%d", getenv("TALLY_S3_BUCKET"), (int)getpid(), n++);
    struct tly_store *st;
    cr_assert_eq(tly_store_open(root, NULL, &st), 0, "%s", tly_errmsg());
    uint64_t size;
    tly_store_size(st, "warm-up", &size);
    tly_store_close(st);
    tly_errclear();
}

TestSuite(store_s3_rgw, .init = setup, .timeout = 120);

static struct tly_store *open_root(const struct tly_store_opts *o)
{
    struct tly_store *st;
    cr_assert_eq(tly_store_open(root, o, &st), 0, "%s", tly_errmsg());
    return st;
}

static void fill(char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (char)((i * 2654435761u + seed) >> 13);
}

static bool absent(struct tly_store *st, const char *key)
{
    uint64_t n;
    return tly_store_size(st, key, &n) == TLY_ENOTFOUND;
}

TLY_TEST(store_s3_rgw, put_get_readv_size_delete)
{
    REQUIRE_S3();
    struct tly_store *st = open_root(NULL);
    cr_assert_eq(tly_store_put(st, "c/0/1", "hello world", 11), 0, "%s", tly_errmsg());
    uint64_t n;
    cr_assert_eq(tly_store_size(st, "c/0/1", &n), 0, "%s", tly_errmsg());
    cr_expect_eq(n, 11);
    char a[5], b[3];
    struct iovec iov[] = {{a, 5}, {b, 3}};
    cr_assert_eq(tly_store_readv(st, "c/0/1", 2, iov, 2), 0, "%s", tly_errmsg());
    cr_expect_eq(memcmp(a, "llo w", 5), 0);
    cr_expect_eq(memcmp(b, "orl", 3), 0);
    struct iovec too_much = {a, 5};
    cr_expect_eq(tly_store_readv(st, "c/0/1", 8, &too_much, 1), TLY_EFORMAT, "a short object");
    cr_expect(strstr(tly_errmsg(), "c/0/1") && strstr(tly_errmsg(), "truncated"), "%s", tly_errmsg());
    cr_expect_eq(tly_store_readv(st, "c/0/1", 20, &too_much, 1), TLY_EFORMAT, "a range past the end");
    cr_expect(strstr(tly_errmsg(), "InvalidRange") != NULL, "%s", tly_errmsg());
    char *data;
    size_t len;
    cr_assert_eq(tly_store_get(st, "c/0/1", &data, &len), 0);
    cr_expect_eq(len, 11);
    cr_expect_str_eq(data, "hello world");
    free(data);
    cr_expect_eq(tly_store_size(st, "nope", &n), TLY_ENOTFOUND);
    cr_expect_eq(tly_store_get(st, "c/9/9", &data, &len), TLY_ENOTFOUND);
    cr_expect(strstr(tly_errmsg(), "c/9/9") && strstr(tly_errmsg(), "NoSuchKey"), "%s", tly_errmsg());
    struct iovec one = {a, 1};
    cr_expect_eq(tly_store_readv(st, "nope", 0, &one, 1), TLY_ENOTFOUND);
    cr_assert_eq(tly_store_put(st, "empty", "", 0), 0);
    cr_assert_eq(tly_store_get(st, "empty", &data, &len), 0);
    cr_expect_eq(len, 0);
    cr_expect_str_eq(data, "");
    free(data);
    cr_expect_eq(tly_store_delete(st, "c/0/1"), 0);
    cr_expect_eq(tly_store_delete(st, "empty"), 0);
    cr_expect(absent(st, "c/0/1"));
    cr_expect_eq(tly_store_delete(st, "c/0/1"), 0, "deleting a missing key is fine");
    tly_store_close(st);
}

/* A shard index at the end by one GET of a suffix range (Range: bytes=-N); RGW refuses one of an empty
 * object (416), which costs a second request (HEAD). */
TLY_TEST(store_s3_rgw, read_tail_is_one_suffix_get)
{
    REQUIRE_S3();
    struct tly_store *st = open_root(NULL);
    check_edge_reads(st, tly_store_read_tail, true);
    tly_store_close(st);
}

/* A chunk's header and its size by one ranged GET (its Content-Range says the size); RGW refuses a
 * range of an empty object (416), which costs a second request (HEAD). */
TLY_TEST(store_s3_rgw, read_head_is_one_ranged_get)
{
    REQUIRE_S3();
    struct tly_store *st = open_root(NULL);
    check_edge_reads(st, tly_store_read_head, false);
    tly_store_close(st);
}

struct acc {
    char *buf;
    size_t n, cap;
    int calls, fail_at;
};

static int acc_sink(void *arg, const void *data, size_t n)
{
    struct acc *a = arg;
    if (++a->calls == a->fail_at)
        return tly_fail(TLY_ECODEC, "the sink says no");
    cr_assert_leq(a->n + n, a->cap);
    memcpy(a->buf + a->n, data, n);
    a->n += n;
    return 0;
}

TLY_TEST(store_s3_rgw, read_stream_hands_over_the_body_in_pieces)
{
    REQUIRE_S3();
    struct tly_store *st = open_root(NULL);
    size_t size = 3 * MIB + 17;
    char *src = malloc(size);
    fill(src, size, 1);
    cr_assert_eq(tly_store_put(st, "s", src, size), 0, "%s", tly_errmsg());
    struct acc a = {.buf = malloc(size), .cap = size};
    char unused[16];
    cr_assert_eq(tly_store_read_stream(st, "s", unused, sizeof unused, acc_sink, &a), 0, "%s", tly_errmsg());
    cr_expect_eq(a.n, size);
    cr_expect_eq(memcmp(a.buf, src, size), 0);
    cr_expect_gt(a.calls, 1, "pieces as they arrive, not the whole object");
    struct acc b = {.buf = a.buf, .cap = size, .fail_at = 3};
    cr_expect_eq(tly_store_read_stream(st, "s", unused, sizeof unused, acc_sink, &b), TLY_ECODEC,
                 "the sink's error comes back");
    cr_expect(strstr(tly_errmsg(), "the sink says no") != NULL, "%s", tly_errmsg());
    cr_expect_eq(tly_store_read_stream(st, "missing", unused, sizeof unused, acc_sink, &a), TLY_ENOTFOUND);
    cr_expect_eq(tly_store_delete(st, "s"), 0);
    tly_store_close(st);
    free(src);
    free(a.buf);
}

/* Write @p size bytes of @p src under @p key through a writer: added in place (@p stable) or copied
 * from a buffer reused between calls. */
static int write_object(struct tly_store *st, const char *key, const char *src, size_t size, bool stable, size_t piece,
                        bool commit)
{
    struct tly_writer *w;
    int err = tly_store_writer(st, key, &w);
    if (err)
        return err;
    int npieces = (int)((size + piece - 1) / piece);
    struct iovec *iov = malloc((size_t)npieces * sizeof *iov);
    char *reused = stable ? NULL : malloc(piece);
    for (int i = 0; i < npieces && !err; i++) {
        size_t off = (size_t)i * piece, n = size - off < piece ? size - off : piece;
        if (stable) {
            iov[i] = (struct iovec){(char *)src + off, n};
        } else {
            memcpy(reused, src + off, n);
            struct iovec one = {reused, n};
            err = tly_writer_writev(w, &one, 1);
            memset(reused, 0xee, n); /* the store must have copied it */
        }
    }
    if (stable && !err)
        err = tly_writer_add(w, iov, npieces);
    if (!err && commit)
        err = tly_writer_commit(w);
    else
        tly_writer_abort(w);
    free(iov);
    free(reused);
    return err;
}

static void expect_object(struct tly_store *st, const char *key, const char *src, size_t size)
{
    uint64_t n = 0;
    cr_assert_eq(tly_store_size(st, key, &n), 0, "%s", tly_errmsg());
    cr_expect_eq(n, size);
    char *back = malloc(size + 1);
    struct iovec iov = {back, size};
    cr_assert_eq(tly_store_readv(st, key, 0, &iov, 1), 0, "%s", tly_errmsg());
    cr_expect_eq(memcmp(back, src, size), 0, "%s reads back as written", key);
    free(back);
}

TLY_TEST(store_s3_rgw, added_pieces_stream_from_memory_single_and_multipart)
{
    REQUIRE_S3();
    struct tly_store *st = open_root(&(struct tly_store_opts){.part_size = 5 * MIB});
    size_t size = 12 * MIB + 12345;
    char *src = malloc(size);
    fill(src, size, 2);
    struct tly_mem_snapshot s0, s1;
    tly_mem_snapshot(&s0);
    cr_assert_eq(write_object(st, "small", src, 3 * MIB, true, 1000, true), 0, "%s", tly_errmsg());
    cr_assert_eq(write_object(st, "big", src, size, true, 2500, true), 0, "%s", tly_errmsg());
    tly_mem_snapshot(&s1);
    /* The callback's copy into curl's buffer is the only one: stage http, once per byte (retries aside). */
    uint64_t http = TLY_DELTA(s0, s1, TLY_HTTP, copy_bytes), put = TLY_DELTA(s0, s1, TLY_PUT, copy_bytes);
    cr_expect_eq(put, 0, "added pieces are never copied by the store");
    cr_expect(http >= size + 3 * MIB && http < (size + 3 * MIB) * 11 / 10, "http copies %llu",
              (unsigned long long)http);
    expect_object(st, "small", src, 3 * MIB);
    expect_object(st, "big", src, size);
    cr_expect_eq(tly_store_delete(st, "small"), 0);
    cr_expect_eq(tly_store_delete(st, "big"), 0);
    tly_store_close(st);
    free(src);
}

/* Copied parts (writev) upload up to tly_writer_parts_in_flight at once: the writer's part buffers
 * (stage put) stay within that many parts and the one filling; the object reads back as written. */
TLY_TEST(store_s3_rgw, copied_parts_in_flight_stay_within_their_count)
{
    REQUIRE_S3();
    struct tly_store *st = open_root(&(struct tly_store_opts){.part_size = 5 * MIB});
    size_t size = 31 * MIB + 777;
    char *src = malloc(size);
    fill(src, size, 9);
    struct tly_writer *w;
    cr_assert_eq(tly_store_writer(st, "inflight", &w), 0, "%s", tly_errmsg());
    tly_writer_parts_in_flight(w, 3);
    tly_mem_reset_peaks();
    struct tly_mem_snapshot s0, s1;
    tly_mem_snapshot(&s0);
    int err = 0;
    for (size_t off = 0; off < size && !err; off += 300000) {
        struct iovec one = {src + off, size - off < 300000 ? size - off : 300000};
        err = tly_writer_writev(w, &one, 1);
    }
    cr_assert_eq(err, 0, "%s", tly_errmsg());
    cr_assert_eq(tly_writer_commit(w), 0, "%s", tly_errmsg());
    tly_mem_snapshot(&s1);
    int64_t peak = s1.stage[TLY_PUT].peak_bytes - s0.stage[TLY_PUT].live_bytes;
    if (tly_mem_tracking())
        cr_expect(peak <= (int64_t)(4 * 5 * MIB + MIB), "put held %lld bytes, over 3 parts uploading and 1 filling",
                  (long long)peak);
    expect_object(st, "inflight", src, size);
    cr_expect_eq(tly_store_delete(st, "inflight"), 0);
    tly_store_close(st);
    free(src);
}

static int count_sink(void *arg, const void *data, size_t n)
{
    (void)data;
    *(size_t *)arg += n;
    return 0;
}

TLY_TEST(store_s3_rgw, traffic_counts_object_bodies_as_they_cross_the_wire)
{
    REQUIRE_S3();
    struct tly_store *st = open_root(&(struct tly_store_opts){.part_size = 5 * MIB});
    size_t size = 12 * MIB + 777;
    char *src = malloc(size);
    fill(src, size, 4);
    uint64_t r, w;
    tly_store_traffic(st, &r, &w);
    cr_expect(r == 0 && w == 0, "a new store has moved nothing: %llu read, %llu written", (unsigned long long)r,
              (unsigned long long)w);
    /* metadata (one PUT), an object in one PUT, one in three UploadParts: their bytes exactly (the
     * multipart initiate and complete are S3's XML, not the object's) */
    cr_assert_eq(tly_store_put(st, ".zarray", "{\"zarr_format\": 2}", 18), 0, "%s", tly_errmsg());
    cr_assert_eq(write_object(st, "small", src, 3 * MIB, true, 1000, true), 0, "%s", tly_errmsg());
    cr_assert_eq(write_object(st, "big", src, size, true, 2500, true), 0, "%s", tly_errmsg());
    tly_store_traffic(st, &r, &w);
    cr_expect_eq(w, 18 + 3 * MIB + size, "written: %llu", (unsigned long long)w);
    cr_expect_eq(r, 0, "writes read nothing: %llu", (unsigned long long)r);
    /* a HEAD and a 404 move no object bytes; a range, a whole small object and a stream do, exactly */
    uint64_t n;
    cr_assert_eq(tly_store_size(st, "big", &n), 0, "%s", tly_errmsg());
    char part[1000];
    struct iovec p = {part, sizeof part};
    cr_expect_eq(tly_store_readv(st, "missing", 0, &p, 1), TLY_ENOTFOUND);
    cr_assert_eq(tly_store_readv(st, "big", 5 * MIB - 500, &p, 1), 0, "%s", tly_errmsg());
    char *doc;
    size_t len;
    cr_assert_eq(tly_store_get(st, ".zarray", &doc, &len), 0, "%s", tly_errmsg());
    free(doc);
    size_t streamed = 0;
    cr_assert_eq(tly_store_read_stream(st, "small", NULL, 0, count_sink, &streamed), 0, "%s", tly_errmsg());
    cr_expect_eq(streamed, 3 * MIB);
    tly_store_traffic(st, &r, &w);
    cr_expect_eq(r, 1000 + 18 + 3 * MIB, "read: %llu", (unsigned long long)r);
    cr_expect_eq(w, 18 + 3 * MIB + size, "reads write nothing: %llu", (unsigned long long)w);
    cr_expect_eq(tly_store_delete(st, ".zarray"), 0);
    cr_expect_eq(tly_store_delete(st, "small"), 0);
    cr_expect_eq(tly_store_delete(st, "big"), 0);
    tly_store_close(st);
    free(src);
}

TLY_TEST(store_s3_rgw, reused_pieces_are_copied_into_bounded_parts)
{
    REQUIRE_S3();
    size_t part = 5 * MIB, size = 13 * MIB + 999;
    struct tly_store *st = open_root(&(struct tly_store_opts){.part_size = part});
    char *src = malloc(size);
    fill(src, size, 3);
    struct tly_mem_snapshot s0, s1;
    tly_mem_snapshot(&s0);
    tly_mem_reset_peaks();
    enum tly_stage prev = tly_stage_enter(TLY_PUT);
    int err = write_object(st, "streamed", src, size, false, 100 * 1000, true);
    tly_stage_leave(prev);
    cr_assert_eq(err, 0, "%s", tly_errmsg());
    tly_mem_snapshot(&s1);
    cr_expect_eq(TLY_DELTA(s0, s1, TLY_PUT, copy_bytes), size, "each byte copied once into a part, in stage put");
    if (tly_mem_tracking()) {
        /* the test's own 100 kB piece is in put too; at most two parts live besides */
        int64_t peak = s1.stage[TLY_PUT].peak_bytes - s0.stage[TLY_PUT].live_bytes;
        cr_expect_leq(peak, (int64_t)(2 * part + MIB), "put stage peak %lld bytes", (long long)peak);
    }
    expect_object(st, "streamed", src, size);
    cr_assert_eq(write_object(st, "small-streamed", src, 4 * MIB, false, 65536, true), 0, "%s", tly_errmsg());
    expect_object(st, "small-streamed", src, 4 * MIB);
    cr_expect_eq(tly_store_delete(st, "streamed"), 0);
    cr_expect_eq(tly_store_delete(st, "small-streamed"), 0);
    tly_store_close(st);
    free(src);
}

TLY_TEST(store_s3_rgw, nothing_is_visible_before_commit_and_abort_leaves_nothing)
{
    REQUIRE_S3();
    size_t part = 5 * MIB, size = 11 * MIB;
    struct tly_store *st = open_root(&(struct tly_store_opts){.part_size = part});
    char *src = malloc(size);
    fill(src, size, 4);
    struct tly_writer *w;
    cr_assert_eq(tly_store_writer(st, "k", &w), 0);
    struct iovec iov = {src, size};
    cr_assert_eq(tly_writer_writev(w, &iov, 1), 0, "%s", tly_errmsg());
    cr_expect(absent(st, "k"), "parts uploaded, nothing visible yet");
    tly_writer_abort(w);
    cr_expect(absent(st, "k"));
    uint64_t removed = 99;
    cr_assert_eq(tly_store_gc(st, &removed), 0, "%s", tly_errmsg());
    cr_expect_eq(removed, 0, "the abort aborted its multipart upload");
    cr_assert_eq(write_object(st, "k", src, size, true, size, false), 0, "added, then aborted");
    cr_expect(absent(st, "k"));
    cr_assert_eq(tly_store_gc(st, &removed), 0);
    cr_expect_eq(removed, 0);
    tly_store_close(st);
    free(src);
}

TLY_TEST(store_s3_rgw, gc_aborts_what_a_crashed_write_left)
{
    REQUIRE_S3();
    size_t part = 5 * MIB;
    struct tly_store *st = open_root(&(struct tly_store_opts){.part_size = part});
    char *src = malloc(part + 1);
    fill(src, part + 1, 5);
    struct tly_writer *w;
    cr_assert_eq(tly_store_writer(st, "c/0/0", &w), 0);
    struct iovec iov = {src, part + 1};
    cr_assert_eq(tly_writer_writev(w, &iov, 1), 0, "%s", tly_errmsg()); /* a part uploaded */
    /* a crash: the writer is never committed nor aborted */
    uint64_t removed = 0;
    cr_assert_eq(tly_store_gc(st, &removed), 0, "%s", tly_errmsg());
    cr_expect_eq(removed, 1);
    cr_assert_eq(tly_store_gc(st, &removed), 0);
    cr_expect_eq(removed, 0, "nothing left the second time");
    tly_writer_abort(w); /* frees it; its upload is already gone */
    cr_expect(absent(st, "c/0/0"));
    tly_store_close(st);
    free(src);
}

TLY_TEST(store_s3_rgw, clear_pages_through_listings_and_refuses_non_arrays)
{
    REQUIRE_S3();
    setenv("TALLY_S3_LIST_PAGE", "10", 1); /* 25 objects: three pages */
    struct tly_store *st = open_root(NULL);
    cr_assert_eq(tly_store_put(st, "precious.txt", "x", 1), 0);
    cr_expect_eq(tly_store_clear(st), TLY_EUSAGE);
    cr_expect(strstr(tly_errmsg(), "not a Zarr array") != NULL, "%s", tly_errmsg());
    cr_expect(!absent(st, "precious.txt"));
    cr_assert_eq(tly_store_put(st, ".zarray", "{}", 2), 0);
    for (int i = 0; i < 23; i++) {
        char key[32];
        snprintf(key, sizeof key, "c/%d/%d", i / 5, i % 5);
        cr_assert_eq(tly_store_put(st, key, "x", 1), 0);
    }
    cr_assert_eq(tly_store_clear(st), 0, "%s", tly_errmsg());
    cr_expect(absent(st, ".zarray"));
    cr_expect(absent(st, "precious.txt"));
    cr_expect(absent(st, "c/4/2"));
    cr_expect(absent(st, "c/0/0"));
    tly_store_close(st);
}

struct worker {
    struct tly_store *st;
    int id, err;
    char msg[256];
};

static void *hammer(void *arg)
{
    struct worker *wk = arg;
    size_t size = 100 * 1000 + (size_t)wk->id;
    char *src = malloc(size), *back = malloc(size);
    fill(src, size, (unsigned)wk->id);
    for (int i = 0; i < 10 && !wk->err; i++) {
        char key[32];
        snprintf(key, sizeof key, "t%d/%d", wk->id, i);
        struct iovec iov = {back, size};
        TLY_STAGE(TLY_PUT)
        {
            wk->err = tly_store_put(wk->st, key, src, size);
        }
        TLY_STAGE(TLY_GET)
        {
            if (!wk->err)
                wk->err = tly_store_readv(wk->st, key, 0, &iov, 1);
        }
        if (!wk->err && memcmp(src, back, size) != 0)
            wk->err = TLY_EINTERNAL;
        if (!wk->err)
            wk->err = tly_store_delete(wk->st, key);
        if (wk->err)
            snprintf(wk->msg, sizeof wk->msg, "%s", tly_errmsg());
    }
    free(src);
    free(back);
    return NULL;
}

TLY_TEST(store_s3_rgw, many_threads_share_one_loop)
{
    REQUIRE_S3();
    struct tly_store *st = open_root(&(struct tly_store_opts){.io_concurrency = 3});
    enum { N = 8 };
    pthread_t th[N];
    struct worker wk[N];
    for (int i = 0; i < N; i++) {
        wk[i] = (struct worker){.st = st, .id = i};
        pthread_create(&th[i], NULL, hammer, &wk[i]);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        cr_expect_eq(wk[i].err, 0, "thread %d: %s", i, wk[i].msg);
    }
    tly_store_close(st);
}

TLY_TEST(store_s3_rgw, work_is_charged_to_sign_http_and_the_callers_stage)
{
    REQUIRE_S3();
    struct tly_store *st = open_root(NULL);
    size_t size = 2 * MIB;
    char *src = malloc(size), *back = malloc(size);
    fill(src, size, 6);
    struct tly_mem_snapshot s0, s1, s2;
    tly_mem_snapshot(&s0);
    TLY_STAGE(TLY_PUT)
    {
        cr_assert_eq(tly_store_put(st, "x", src, size), 0);
    }
    tly_mem_snapshot(&s1);
    struct iovec iov[] = {{back, MIB}, {back + MIB, MIB}};
    TLY_STAGE(TLY_GET)
    {
        cr_assert_eq(tly_store_readv(st, "x", 0, iov, 2), 0);
    }
    tly_mem_snapshot(&s2);
    cr_expect_eq(memcmp(src, back, size), 0);
    cr_expect_eq(TLY_DELTA(s0, s1, TLY_HTTP, copy_bytes), size, "upload: the read callback's copy, in http");
    cr_expect_eq(TLY_DELTA(s1, s2, TLY_HTTP, copy_bytes), size, "download: the write callback's copy, in http");
    cr_expect_eq(TLY_DELTA(s0, s2, TLY_GET, copy_bytes) + TLY_DELTA(s0, s2, TLY_PUT, copy_bytes), 0);
    if (tly_mem_tracking()) {
        cr_expect_gt(TLY_DELTA(s0, s1, TLY_SIGN, allocs), 0, "signing allocates in sign");
        cr_expect_gt(TLY_DELTA(s0, s1, TLY_HTTP, allocs), 0, "libcurl allocates in http");
    }
    cr_expect_eq(tly_store_delete(st, "x"), 0);
    tly_store_close(st);
    free(src);
    free(back);
}

TLY_TEST(store_s3_rgw, a_wrong_secret_is_named_and_never_printed)
{
    REQUIRE_S3();
    const char *bad = "NotTheSecretAtAll0123456789abcdefghijklm";
    setenv("AWS_SECRET_ACCESS_KEY", bad, 1);
    struct tly_store *st = open_root(NULL);
    cr_expect_eq(tly_store_put(st, "x", "1", 1), TLY_EAUTH);
    cr_expect(strstr(tly_errmsg(), "SignatureDoesNotMatch") && strstr(tly_errmsg(), "s3 PUT"), "%s", tly_errmsg());
    cr_expect(strstr(tly_errmsg(), bad) == NULL && strstr(tly_errmsg(), "Signature=") == NULL, "%s", tly_errmsg());
    uint64_t n;
    cr_expect_eq(tly_store_size(st, "x", &n), TLY_EAUTH, "a HEAD's error has no body: a probe names it");
    cr_expect(strstr(tly_errmsg(), "SignatureDoesNotMatch") != NULL, "%s", tly_errmsg());
    tly_store_close(st);
}

TLY_TEST(store_s3_rgw, a_missing_bucket_is_named_and_is_not_a_missing_key)
{
    REQUIRE_S3();
    struct tly_store *st;
    cr_assert_eq(tly_store_open("s3://tally-no-such-bucket/a", NULL, &st), 0);
    cr_expect_eq(tly_store_put(st, "x", "1", 1), TLY_EHTTP);
    cr_expect(strstr(tly_errmsg(), "NoSuchBucket") != NULL, "%s", tly_errmsg());
    uint64_t n;
    cr_expect_eq(tly_store_size(st, "x", &n), TLY_EHTTP);
    cr_expect(strstr(tly_errmsg(), "NoSuchBucket") != NULL, "%s", tly_errmsg());
    char *data;
    size_t len;
    cr_expect_eq(tly_store_get(st, "zarr.json", &data, &len), TLY_EHTTP);
    tly_store_close(st);
}

TLY_TEST(store_s3_rgw, signed_payloads_and_virtual_hosted_addressing)
{
    REQUIRE_S3();
    setenv("TALLY_S3_SIGN_PAYLOAD", "1", 1);
    struct tly_store *st = open_root(&(struct tly_store_opts){.part_size = 5 * MIB});
    size_t size = 6 * MIB;
    char *src = malloc(size);
    fill(src, size, 7);
    cr_assert_eq(write_object(st, "signed", src, size, true, MIB, true), 0, "radosgw checks the hash: %s",
                 tly_errmsg());
    expect_object(st, "signed", src, size);
    tly_store_close(st);
    unsetenv("TALLY_S3_SIGN_PAYLOAD");

    /* radosgw's "rgw dns name" is localhost, and curl resolves *.localhost to the loopback */
    char ep[256];
    snprintf(ep, sizeof ep, "%s", getenv("AWS_ENDPOINT_URL"));
    char *port = strrchr(ep, ':');
    char vep[300];
    snprintf(vep, sizeof vep, "http://localhost%s", port);
    setenv("AWS_ENDPOINT_URL", vep, 1);
    setenv("TALLY_S3_ADDRESSING", "virtual", 1);
    st = open_root(NULL);
    char *u, *h;
    cr_assert_eq(tly__s3_object_url(st, "signed", &u, &h), 0);
    cr_expect(strncmp(u, "http://tally", 12) == 0 || strstr(u, ".localhost:") != NULL, "%s", u);
    free(u);
    free(h);
    expect_object(st, "signed", src, size);
    cr_expect_eq(tly_store_delete(st, "signed"), 0);
    tly_store_close(st);
    free(src);
}
