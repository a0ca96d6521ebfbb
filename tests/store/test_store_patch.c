/* store: a writer patches bytes it appended (a blosc frame's header and offset table, known only at
 * the end); nothing is visible before the commit, and a patch past what was written is refused. */
#include <string.h>

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

TLY_TEST(store, writer_patches_what_it_wrote)
{
    struct tly_store *st;
    cr_assert_eq(tly_store_open(dir, NULL, &st), 0);
    struct tly_writer *w;
    cr_assert_eq(tly_store_writer(st, "k", &w), 0);
    struct iovec iov[] = {{"....", 4}, {"body", 4}};
    cr_assert_eq(tly_writer_writev(w, iov, 2), 0);
    cr_assert_eq(tly_writer_patch(w, 0, "head", 4), 0, "%s", tly_errmsg());
    cr_assert_eq(tly_writer_patch(w, 6, "DY", 2), 0, "%s", tly_errmsg());
    cr_expect_eq(tly_writer_patch(w, 7, "xy", 2), TLY_EUSAGE, "past the end: %s", tly_errmsg());
    cr_expect_eq(tly_writer_patch(w, 9, "", 0), TLY_EUSAGE);
    char *data;
    size_t n;
    cr_expect_eq(tly_store_get(st, "k", &data, &n), TLY_ENOTFOUND, "not visible before the commit");
    struct iovec more = {"!", 1};
    cr_assert_eq(tly_writer_writev(w, &more, 1), 0);
    cr_assert_eq(tly_writer_commit(w), 0);
    cr_assert_eq(tly_store_get(st, "k", &data, &n), 0);
    cr_expect_str_eq(data, "headboDY!");
    free(data);
    tly_store_close(st);
}
