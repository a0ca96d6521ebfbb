/*
 * store: the local store stays under its root and opens only regular files (issue 15, D9, D11),
 * reads metadata up to TALLY_META_LIMIT (D7), and writes a whole array beside the root and swaps it
 * in (D5): probe, stage, publish (RENAME_EXCHANGE, and the two-step fallback), discard, gc.
 */
#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store/local.h"
#include "support.h"
#include "tally/error.h"
#include "tally/store.h"
#include "tmpdir.h"

static char dir[256], root[300], outside[300];

static void setup(void)
{
    cr_assert_not_null(tly_test_mkdtemp(dir, sizeof dir));
    snprintf(root, sizeof root, "%s/a", dir);
    snprintf(outside, sizeof outside, "%s/outside", dir);
    cr_assert_eq(mkdir(outside, 0777), 0);
}

static void teardown(void)
{
    tly__local_no_exchange = false;
    unsetenv("TALLY_META_LIMIT");
    tly_test_rmtree(dir);
}

TestSuite(stage, .init = setup, .fini = teardown);

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

static char *get(struct tly_store *st, const char *key)
{
    char *data = NULL;
    size_t n;
    return tly_store_get(st, key, &data, &n) == 0 ? data : NULL;
}

TLY_TEST(stage, symlinks_are_never_followed)
{
    char path[400], target[400];
    cr_assert_eq(mkdir(root, 0777), 0);
    snprintf(target, sizeof target, "%s/secret", outside);
    write_file(target, "secret");
    snprintf(path, sizeof path, "%s/0.0", root);
    cr_assert_eq(symlink(target, path), 0);
    snprintf(path, sizeof path, "%s/c", root);
    cr_assert_eq(symlink(outside, path), 0);
    struct tly_store *st;
    cr_assert_eq(tly_store_open(root, NULL, &st), 0);
    uint64_t n;
    char buf[6], *data;
    size_t len;
    struct iovec iov = {buf, sizeof buf};
    cr_expect_eq(tly_store_size(st, "0.0", &n), TLY_EFORMAT, "a chunk that is a link");
    cr_expect(strstr(tly_errmsg(), "0.0: a symbolic link") != NULL, "%s", tly_errmsg());
    cr_expect_eq(tly_store_readv(st, "0.0", 0, &iov, 1), TLY_EFORMAT);
    cr_expect_eq(tly_store_get(st, "0.0", &data, &len), TLY_EFORMAT);
    cr_expect_eq(tly_store_readv(st, "c/secret", 0, &iov, 1), TLY_EFORMAT, "through a linked directory");
    cr_expect(strstr(tly_errmsg(), "symbolic link") != NULL, "%s", tly_errmsg());
    cr_expect_eq(tly_store_size(st, "c/secret", &n), TLY_EFORMAT);
    cr_expect_neq(tly_store_put(st, "c/0", "x", 1), 0, "a write through a linked directory");
    cr_expect(strstr(tly_errmsg(), "symbolic link") != NULL, "%s", tly_errmsg());
    cr_expect_eq(tly_test_count_entries(outside), 1, "nothing landed outside");
    cr_expect_eq(tly_store_delete(st, "c/secret"), TLY_EFORMAT, "nor is anything deleted there");
    cr_expect_eq(tly_test_count_entries(outside), 1);
    cr_expect_eq(tly_store_put(st, "0.0", "mine", 4), 0, "a write replaces the link itself");
    cr_expect_str_eq((data = get(st, "0.0")), "mine");
    free(data);
    FILE *f = fopen(target, "r");
    cr_assert_not_null(f);
    cr_expect_eq(fread(buf, 1, 6, f), 6);
    fclose(f);
    cr_expect_eq(memcmp(buf, "secret", 6), 0, "the file outside is untouched");
    tly_store_close(st);
}

TLY_TEST(stage, fifos_and_devices_are_refused_at_once)
{
    char path[400];
    cr_assert_eq(mkdir(root, 0777), 0);
    snprintf(path, sizeof path, "%s/.zarray", root);
    cr_assert_eq(mkfifo(path, 0666), 0);
    snprintf(path, sizeof path, "%s/dev", root);
    cr_assert_eq(symlink("/dev/zero", path), 0);
    struct tly_store *st;
    cr_assert_eq(tly_store_open(root, NULL, &st), 0);
    char *data;
    size_t len;
    time_t t0 = time(NULL);
    cr_expect_eq(tly_store_get(st, ".zarray", &data, &len), TLY_EFORMAT, "a FIFO blocked the read forever");
    cr_expect(strstr(tly_errmsg(), "not a regular file") != NULL, "%s", tly_errmsg());
    cr_expect_leq(time(NULL) - t0, 2);
    enum tly_store_state state;
    cr_expect_eq(tly_store_probe(st, &state), TLY_EFORMAT, "a FIFO where the metadata is: an error, not absent");
    cr_expect_neq(tly_store_get(st, "dev", &data, &len), 0);
    tly_store_close(st);
}

TLY_TEST(stage, metadata_is_read_whole_only_under_the_limit)
{
    char path[400];
    cr_assert_eq(mkdir(root, 0777), 0);
    snprintf(path, sizeof path, "%s/.zarray", root);
    int fd = open(path, O_CREAT | O_WRONLY, 0666);
    cr_assert(fd >= 0 && ftruncate(fd, (off_t)64 << 30) == 0, "a sparse 64 GiB file");
    close(fd);
    struct tly_store *st;
    cr_assert_eq(tly_store_open(root, NULL, &st), 0);
    char *data;
    size_t len;
    cr_expect_eq(tly_store_get(st, ".zarray", &data, &len), TLY_EFORMAT);
    cr_expect(strstr(tly_errmsg(), "TALLY_META_LIMIT") != NULL, "%s", tly_errmsg());
    tly_store_close(st);
    setenv("TALLY_META_LIMIT", "4k", 1);
    cr_assert_eq(tly_store_open(root, NULL, &st), 0);
    char big[5000];
    memset(big, ' ', sizeof big);
    cr_assert_eq(tly_store_put(st, "five", big, sizeof big), 0);
    cr_assert_eq(tly_store_put(st, "four", big, 4096), 0);
    cr_expect_eq(tly_store_get(st, "five", &data, &len), TLY_EFORMAT, "5000 bytes over a 4 KiB limit");
    cr_assert_eq(tly_store_get(st, "four", &data, &len), 0, "%s", tly_errmsg());
    free(data);
    tly_store_close(st);
    setenv("TALLY_META_LIMIT", "1k", 1);
    cr_expect_eq(tly_store_open(root, NULL, &st), TLY_EUSAGE, "under the range");
    cr_expect(strstr(tly_errmsg(), "TALLY_META_LIMIT") != NULL, "%s", tly_errmsg());
}

/* An "array" at root holding @p text in .zarray and one chunk. */
static void make_array(struct tly_store *st, const char *text)
{
    cr_assert_eq(tly_store_put(st, ".zarray", text, strlen(text)), 0);
    cr_assert_eq(tly_store_put(st, "0", text, strlen(text)), 0);
}

static void replace_and_check(void)
{
    struct tly_store *st, *reader;
    cr_assert_eq(tly_store_open(root, NULL, &st), 0);
    enum tly_store_state state;
    cr_assert_eq(tly_store_probe(st, &state), 0);
    cr_expect_eq(state, TLY_STORE_ABSENT);
    make_array(st, "old");
    cr_assert_eq(tly_store_probe(st, &state), 0);
    cr_expect_eq(state, TLY_STORE_ARRAY);
    cr_assert_eq(tly_store_stage(st, true), 0, "%s", tly_errmsg());
    make_array(st, "new");
    cr_assert_eq(tly_store_put(st, "c/1", "x", 1), 0);
    cr_assert_eq(tly_store_open(root, NULL, &reader), 0);
    char *data = get(reader, "0");
    cr_expect_str_eq(data, "old", "a reader sees the old array until it is published");
    free(data);
    tly_store_close(reader);
    cr_assert_eq(tly_store_publish(st), 0, "%s", tly_errmsg());
    cr_assert_eq(tly_store_open(root, NULL, &reader), 0);
    cr_expect_str_eq((data = get(reader, "0")), "new");
    free(data);
    cr_expect_str_eq((data = get(reader, "c/1")), "x");
    free(data);
    tly_store_close(reader);
    cr_expect_str_eq((data = get(st, "0")), "new", "the writer's store follows its array");
    free(data);
    tly_store_close(st);
    cr_expect_eq(tly_test_count_entries(dir), 2, "the root and outside/: no staging or old directory left");
}

TLY_TEST(stage, replace_by_exchange)
{
    replace_and_check();
}

TLY_TEST(stage, replace_by_the_two_step_fallback)
{
    tly__local_no_exchange = true;
    replace_and_check();
}

TLY_TEST(stage, a_new_array_is_renamed_into_place_and_never_over_another)
{
    struct tly_store *st, *other;
    cr_assert_eq(tly_store_open(root, NULL, &st), 0);
    cr_assert_eq(tly_store_stage(st, false), 0, "%s", tly_errmsg());
    make_array(st, "new");
    struct stat sb;
    cr_expect_neq(stat(root, &sb), 0, "nothing at the root before publishing");
    cr_assert_eq(tly_store_publish(st), 0, "%s", tly_errmsg());
    cr_expect_eq(tly_test_count_entries(root), 2);
    tly_store_close(st);
    /* an empty directory is replaced; one that filled meanwhile is not */
    char empty[400];
    snprintf(empty, sizeof empty, "%s/empty", dir);
    cr_assert_eq(mkdir(empty, 0777), 0);
    cr_assert_eq(tly_store_open(empty, NULL, &st), 0);
    cr_assert_eq(tly_store_stage(st, false), 0);
    make_array(st, "new");
    cr_assert_eq(tly_store_open(empty, NULL, &other), 0);
    cr_assert_eq(tly_store_put(other, "theirs", "x", 1), 0);
    tly_store_close(other);
    cr_expect_eq(tly_store_publish(st), TLY_EEXISTS, "%s", tly_errmsg());
    tly_store_close(st); /* discards the staged one */
    cr_expect_eq(tly_test_count_entries(empty), 1, "theirs is untouched");
    cr_expect_eq(tly_test_count_entries(dir), 3, "a, empty, outside and nothing staged: %d",
                 tly_test_count_entries(dir));
}

TLY_TEST(stage, probe_tells_what_is_there)
{
    struct tly_store *st;
    enum tly_store_state state;
    cr_assert_eq(mkdir(root, 0777), 0);
    cr_assert_eq(tly_store_open(root, NULL, &st), 0);
    cr_assert_eq(tly_store_probe(st, &state), 0);
    cr_expect_eq(state, TLY_STORE_ABSENT, "an empty directory");
    cr_assert_eq(tly_store_put(st, "notes.txt", "x", 1), 0);
    cr_assert_eq(tly_store_probe(st, &state), 0);
    cr_expect_eq(state, TLY_STORE_OTHER);
    cr_assert_eq(tly_store_put(st, "zarr.json", "{}", 2), 0);
    cr_assert_eq(tly_store_probe(st, &state), 0);
    cr_expect_eq(state, TLY_STORE_ARRAY);
    tly_store_close(st);
    char path[400];
    snprintf(path, sizeof path, "%s/nothing/here", dir);
    cr_assert_eq(tly_store_open(path, NULL, &st), 0);
    cr_assert_eq(tly_store_probe(st, &state), 0);
    cr_expect_eq(state, TLY_STORE_ABSENT);
    struct stat sb;
    cr_expect_neq(stat(path, &sb), 0, "a probe makes nothing");
    tly_store_close(st);
}

/* A process that dies after the first rename of the two-step swap: no array at the root. */
TLY_TEST(stage, gc_puts_back_an_old_array_an_interrupted_swap_set_aside)
{
    struct tly_store *st;
    cr_assert_eq(tly_store_open(root, NULL, &st), 0);
    make_array(st, "old");
    tly_store_close(st);
    pid_t pid = fork();
    if (pid == 0) {
        char aside[400];
        snprintf(aside, sizeof aside, "%s/.a.tally-old-%d-0", dir, (int)getpid());
        _exit(rename(root, aside) != 0);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    cr_assert_eq(tly_store_open(root, NULL, &st), 0);
    enum tly_store_state state;
    cr_assert_eq(tly_store_probe(st, &state), 0);
    cr_expect_eq(state, TLY_STORE_INCOMPLETE);
    uint64_t removed = 0;
    cr_assert_eq(tly_store_gc(st, &removed), 0, "%s", tly_errmsg());
    cr_expect_eq(removed, 1);
    cr_assert_eq(tly_store_probe(st, &state), 0);
    cr_expect_eq(state, TLY_STORE_ARRAY);
    char *data = get(st, "0");
    cr_expect_str_eq(data, "old");
    free(data);
    tly_store_close(st);
}

TLY_TEST(stage, gc_removes_dead_staging_and_keeps_live)
{
    struct tly_store *st, *live;
    cr_assert_eq(tly_store_open(root, NULL, &st), 0);
    make_array(st, "old");
    pid_t pid = fork();
    if (pid == 0) { /* a writer killed mid-overwrite */
        struct tly_store *s;
        _exit(tly_store_open(root, NULL, &s) != 0 || tly_store_stage(s, true) != 0 ||
              tly_store_put(s, "0", "half", 4) != 0);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    cr_assert_eq(tly_store_open(root, NULL, &live), 0);
    cr_assert_eq(tly_store_stage(live, true), 0);
    cr_expect_eq(tly_test_count_entries(dir), 4, "root, outside, the dead writer's and the live one's staging");
    uint64_t removed = 0;
    cr_assert_eq(tly_store_gc(st, &removed), 0, "%s", tly_errmsg());
    cr_expect_eq(removed, 1);
    cr_expect_eq(tly_test_count_entries(dir), 3, "the live staging directory is kept");
    char *data = get(st, "0");
    cr_expect_str_eq(data, "old", "the old array is whole");
    free(data);
    tly_store_close(live);
    cr_expect_eq(tly_test_count_entries(dir), 2, "closing without publishing discards");
    tly_store_close(st);
}
