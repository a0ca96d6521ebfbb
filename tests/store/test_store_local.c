/* store: the local filesystem store — keys, atomic writes, reads into caller memory, errors. */
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "edge_reads.h"
#include "support.h"
#include "tally/error.h"
#include "tally/store.h"
#include "tmpdir.h"

static char dir[256];

static void setup(void)
{
    cr_assert_not_null(tly_test_mkdtemp(dir, sizeof dir));
}

static void teardown(void)
{
    tly_test_rmtree(dir);
}

TestSuite(store, .init = setup, .fini = teardown);

TLY_TEST(store, keys_cannot_escape_the_root)
{
    cr_expect(tly_store_key_valid("0.0"));
    cr_expect(tly_store_key_valid("c/0/1"));
    cr_expect(tly_store_key_valid(".zarray"));
    cr_expect(!tly_store_key_valid("../x"));
    cr_expect(!tly_store_key_valid("a/../../x"));
    cr_expect(!tly_store_key_valid("/etc/passwd"));
    cr_expect(!tly_store_key_valid("a//b"));
    cr_expect(!tly_store_key_valid("a/./b"));
    cr_expect(!tly_store_key_valid("a/"));
    cr_expect(!tly_store_key_valid(""));
    struct tly_store *st;
    cr_assert_eq(tly_store_open(dir, NULL, &st), 0);
    cr_expect_eq(tly_store_put(st, "../escape", "x", 1), TLY_EUSAGE);
    cr_expect(strstr(tly_errmsg(), "../escape") != NULL, "%s", tly_errmsg());
    tly_store_close(st);
}

TLY_TEST(store, put_get_readv_and_size)
{
    struct tly_store *st;
    cr_assert_eq(tly_store_open(dir, NULL, &st), 0);
    cr_assert_eq(tly_store_put(st, "c/0/1", "hello world", 11), 0);
    uint64_t n;
    cr_assert_eq(tly_store_size(st, "c/0/1", &n), 0);
    cr_expect_eq(n, 11);
    char a[5], b[3];
    struct iovec iov[] = {{a, 5}, {b, 3}};
    cr_assert_eq(tly_store_readv(st, "c/0/1", 2, iov, 2), 0);
    cr_expect_eq(memcmp(a, "llo w", 5), 0);
    cr_expect_eq(memcmp(b, "orl", 3), 0);
    struct iovec too_much = {a, 5};
    cr_expect_eq(tly_store_readv(st, "c/0/1", 8, &too_much, 1), TLY_EFORMAT, "short object");
    cr_expect(strstr(tly_errmsg(), "truncated") != NULL, "%s", tly_errmsg());
    char *data;
    size_t len;
    cr_assert_eq(tly_store_get(st, "c/0/1", &data, &len), 0);
    cr_expect_str_eq(data, "hello world");
    free(data);
    cr_expect_eq(tly_store_size(st, "nope", &n), TLY_ENOTFOUND);
    cr_expect_eq(tly_store_get(st, "c/9/9", &data, &len), TLY_ENOTFOUND);
    cr_expect_eq(tly_store_delete(st, "c/0/1"), 0);
    cr_expect_eq(tly_store_size(st, "c/0/1", &n), TLY_ENOTFOUND);
    cr_expect_eq(tly_store_delete(st, "c/0/1"), 0, "deleting a missing key is fine");
    tly_store_close(st);
}

/* A shard index at the end: the object's last bytes and its size by one read (fstat, then pread). */
TLY_TEST(store, read_tail_reads_the_end_and_the_size_at_once)
{
    struct tly_store *st;
    cr_assert_eq(tly_store_open(dir, NULL, &st), 0);
    check_edge_reads(st, tly_store_read_tail, true);
    tly_store_close(st);
}

/* A chunk's header and its size by one read: the start of the object and its size at once. */
TLY_TEST(store, read_head_reads_the_start_and_the_size_at_once)
{
    struct tly_store *st;
    cr_assert_eq(tly_store_open(dir, NULL, &st), 0);
    check_edge_reads(st, tly_store_read_head, false);
    tly_store_close(st);
}

TLY_TEST(store, writes_are_atomic)
{
    struct tly_store *st;
    cr_assert_eq(tly_store_open(dir, &(struct tly_store_opts){.fsync = true}, &st), 0);
    cr_assert_eq(tly_store_put(st, "k", "old", 3), 0);
    struct tly_writer *w;
    cr_assert_eq(tly_store_writer(st, "k", &w), 0);
    struct iovec iov[] = {{"ne", 2}, {"w!", 2}};
    cr_assert_eq(tly_writer_writev(w, iov, 2), 0);
    char *data;
    size_t n;
    cr_assert_eq(tly_store_get(st, "k", &data, &n), 0);
    cr_expect_str_eq(data, "old", "not visible before commit");
    free(data);
    tly_writer_abort(w);
    cr_assert_eq(tly_store_get(st, "k", &data, &n), 0);
    cr_expect_str_eq(data, "old", "an aborted write leaves the old object");
    free(data);
    cr_expect_eq(tly_test_count_entries(dir), 1, "and no temporary file");
    cr_assert_eq(tly_store_writer(st, "k", &w), 0);
    cr_assert_eq(tly_writer_writev(w, iov, 2), 0);
    cr_assert_eq(tly_writer_commit(w), 0);
    cr_assert_eq(tly_store_get(st, "k", &data, &n), 0);
    cr_expect_str_eq(data, "new!");
    free(data);
    tly_store_close(st);
}

TLY_TEST(store, many_iovecs_and_large_objects)
{
    enum { N = 5000, PIECE = 1000 };
    static char src[N * PIECE], back[N * PIECE];
    for (size_t i = 0; i < sizeof src; i++)
        src[i] = (char)(i * 7);
    struct iovec *iov = malloc(N * sizeof *iov), *riov = malloc(N * sizeof *riov);
    for (int i = 0; i < N; i++) {
        iov[i] = (struct iovec){src + (size_t)i * PIECE, PIECE};
        riov[i] = (struct iovec){back + (size_t)i * PIECE, PIECE};
    }
    struct tly_store *st;
    cr_assert_eq(tly_store_open(dir, NULL, &st), 0);
    struct tly_writer *w;
    cr_assert_eq(tly_store_writer(st, "big", &w), 0);
    cr_assert_eq(tly_writer_writev(w, iov, N), 0, "more iovecs than IOV_MAX");
    cr_assert_eq(tly_writer_commit(w), 0);
    cr_assert_eq(tly_store_readv(st, "big", 0, riov, N), 0);
    cr_expect_eq(memcmp(src, back, sizeof src), 0);
    tly_store_close(st);
    free(iov);
    free(riov);
}

TLY_TEST(store, clear_refuses_a_directory_that_is_not_an_array)
{
    struct tly_store *st;
    cr_assert_eq(tly_store_open(dir, NULL, &st), 0);
    cr_assert_eq(tly_store_put(st, "precious.txt", "x", 1), 0);
    cr_expect_eq(tly_store_clear(st), TLY_EUSAGE);
    cr_expect_eq(tly_test_count_entries(dir), 1);
    cr_assert_eq(tly_store_put(st, ".zarray", "{}", 2), 0);
    cr_assert_eq(tly_store_put(st, "a/b/c", "x", 1), 0);
    cr_expect_eq(tly_store_clear(st), 0);
    cr_expect_eq(tly_test_count_entries(dir), 0);
    tly_store_close(st);
}

TLY_TEST(store, missing_root_reads_as_not_found)
{
    char path[300];
    snprintf(path, sizeof path, "%s/does/not/exist", dir);
    struct tly_store *st;
    cr_assert_eq(tly_store_open(path, NULL, &st), 0);
    uint64_t n;
    cr_expect_eq(tly_store_size(st, ".zarray", &n), TLY_ENOTFOUND);
    cr_expect_eq(tly_store_put(st, "x", "1", 1), 0, "the root is made on first write");
    tly_store_close(st);
    cr_expect_eq(tly_store_open("s3x://bucket/a", NULL, &st), TLY_EUSAGE);
}

struct acc {
    char buf[64];
    size_t n;
    int calls;
};

static int acc_sink(void *arg, const void *data, size_t n)
{
    struct acc *a = arg;
    memcpy(a->buf + a->n, data, n);
    a->n += n;
    a->calls++;
    return a->calls == 100 ? TLY_EHTTP : 0;
}

TLY_TEST(store, read_stream_in_blocks)
{
    struct tly_store *st;
    cr_assert_eq(tly_store_open(dir, NULL, &st), 0);
    cr_assert_eq(tly_store_put(st, "s", "0123456789abcdefghij", 20), 0);
    struct acc a = {0};
    char block[6];
    cr_assert_eq(tly_store_read_stream(st, "s", block, sizeof block, acc_sink, &a), 0);
    cr_expect_eq(a.n, 20);
    cr_expect_eq(memcmp(a.buf, "0123456789abcdefghij", 20), 0);
    cr_expect_eq(a.calls, 4, "blocks of at most 6 bytes");
    cr_expect_eq(tly_store_read_stream(st, "missing", block, sizeof block, acc_sink, &a), TLY_ENOTFOUND);
    tly_store_close(st);
}

TLY_TEST(store, gc_removes_what_crashed_writes_left)
{
    struct tly_store *st;
    cr_assert_eq(tly_store_open(dir, NULL, &st), 0);
    cr_assert_eq(tly_store_put(st, "c/0/0", "x", 1), 0);
    /* a crash: a process that is gone left a temporary file (a writer never committed nor aborted) */
    pid_t pid = fork();
    if (pid == 0) {
        struct tly_writer *cw;
        struct iovec half = {"half", 4};
        _exit(tly_store_writer(st, "c/0/1", &cw) != 0 || tly_writer_writev(cw, &half, 1) != 0);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* and this process is still writing one: gc must leave that alone */
    struct tly_writer *w;
    cr_assert_eq(tly_store_writer(st, "c/0/2", &w), 0);
    struct iovec iov = {"live", 4};
    cr_assert_eq(tly_writer_writev(w, &iov, 1), 0);
    char path[400];
    snprintf(path, sizeof path, "%s/c/0", dir);
    cr_expect_eq(tly_test_count_entries(path), 3);
    uint64_t removed = 0;
    cr_assert_eq(tly_store_gc(st, &removed), 0);
    cr_expect_eq(removed, 1, "the dead writer's file");
    cr_expect_eq(tly_test_count_entries(path), 2, "the committed chunk and the live writer's file are left");
    cr_assert_eq(tly_writer_commit(w), 0, "%s", tly_errmsg());
    cr_expect_eq(tly_test_count_entries(path), 2);
    tly_store_close(st);
}

static void traffic(struct tly_store *st, uint64_t *r, uint64_t *w)
{
    tly_store_traffic(st, r, w);
}

static int count_sink(void *arg, const void *data, size_t n)
{
    (void)data;
    *(size_t *)arg += n;
    return 0;
}

TLY_TEST(store, traffic_counts_every_byte_that_crosses_the_interface)
{
    struct tly_store *st;
    cr_assert_eq(tly_store_open(dir, NULL, &st), 0);
    uint64_t r, w;
    traffic(st, &r, &w);
    cr_expect(r == 0 && w == 0, "a new store has moved nothing: %llu read, %llu written", (unsigned long long)r,
              (unsigned long long)w);
    /* metadata through put, a chunk through a writer (add, writev, then a patch of 4 bytes) */
    cr_assert_eq(tly_store_put(st, ".zarray", "{\"zarr_format\": 2}", 18), 0);
    static char chunk[100000];
    memset(chunk, 7, sizeof chunk);
    struct tly_writer *wr;
    cr_assert_eq(tly_store_writer(st, "0.0", &wr), 0);
    struct iovec a[] = {{chunk, 60000}, {chunk, 30000}}, b = {chunk, 10000};
    cr_assert_eq(tly_writer_add(wr, a, 2), 0);
    cr_assert_eq(tly_writer_writev(wr, &b, 1), 0);
    cr_assert_eq(tly_writer_patch(wr, 16, "abcd", 4), 0);
    cr_assert_eq(tly_writer_commit(wr), 0);
    traffic(st, &r, &w);
    cr_expect_eq(w, 18 + 100000 + 4, "written: %llu", (unsigned long long)w);
    cr_expect_eq(r, 0, "nothing read yet: %llu", (unsigned long long)r);
    /* a size is no traffic; a range, a whole small object and a stream are, exactly */
    uint64_t n;
    cr_assert_eq(tly_store_size(st, "0.0", &n), 0);
    char part[1000];
    struct iovec p = {part, sizeof part};
    cr_assert_eq(tly_store_readv(st, "0.0", 500, &p, 1), 0);
    char *doc;
    size_t len;
    cr_assert_eq(tly_store_get(st, ".zarray", &doc, &len), 0);
    free(doc);
    char block[4096];
    size_t streamed = 0;
    cr_assert_eq(tly_store_read_stream(st, "0.0", block, sizeof block, count_sink, &streamed), 0);
    cr_expect_eq(streamed, 100000);
    traffic(st, &r, &w);
    cr_expect_eq(r, 1000 + 18 + 100000, "read: %llu", (unsigned long long)r);
    cr_expect_eq(w, 18 + 100000 + 4, "reads write nothing: %llu", (unsigned long long)w);
    /* a missing key and a short read: what was read before the end still crossed */
    cr_expect_eq(tly_store_readv(st, "9.9", 0, &p, 1), TLY_ENOTFOUND);
    cr_expect_eq(tly_store_readv(st, "0.0", 99500, &p, 1), TLY_EFORMAT);
    traffic(st, &r, &w);
    cr_expect_eq(r, 1000 + 18 + 100000 + 500, "read after a short read: %llu", (unsigned long long)r);
    tly_store_close(st);
}
