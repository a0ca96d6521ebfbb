/*
 * The checks both stores' edge reads share (tly_store_read_head, tly_store_read_tail): an object's
 * first or last bytes and its size in one request; an object shorter than asked read whole; an empty
 * object; a missing one named. Included by test_store_local.c and test_store_s3_rgw.c.
 */
#ifndef TLY_TEST_EDGE_READS_H
#define TLY_TEST_EDGE_READS_H

#include <criterion/criterion.h>
#include <string.h>

#include "tally/error.h"
#include "tally/store.h"

typedef int (*edge_read_fn)(struct tly_store *st, const char *key, void *buf, size_t n, uint64_t *size);

/* On @p st: @p read of the first (or last, @p tail) 5 bytes of "hello world", then of more than it holds, of an empty
 * object and of a missing one. */
static inline void check_edge_reads(struct tly_store *st, edge_read_fn read, bool tail)
{
    cr_assert_eq(tly_store_put(st, "c/0/1", "hello world", 11), 0, "%s", tly_errmsg());
    cr_assert_eq(tly_store_put(st, "empty", "", 0), 0, "%s", tly_errmsg());
    char buf[16] = {0};
    uint64_t size = 0, r0 = tly_store_read_requests(st);
    cr_assert_eq(read(st, "c/0/1", buf, 5, &size), 0, "%s", tly_errmsg());
    cr_expect_eq(size, 11);
    cr_expect_eq(memcmp(buf, tail ? "world" : "hello", 5), 0, "%.5s", buf);
    cr_expect_eq(tly_store_read_requests(st) - r0, 1, "one request for the %s and the size", tail ? "end" : "start");
    memset(buf, 0, sizeof buf);
    cr_assert_eq(read(st, "c/0/1", buf, sizeof buf, &size), 0, "%s", tly_errmsg());
    cr_expect_eq(size, 11, "an object shorter than asked: read whole, its size said");
    cr_expect_eq(memcmp(buf, "hello world", 11), 0, "%.11s", buf);
    size = 99;
    cr_assert_eq(read(st, "empty", buf, 4, &size), 0, "%s", tly_errmsg());
    cr_expect_eq(size, 0, "an empty object");
    cr_expect_eq(read(st, "nope", buf, 4, &size), TLY_ENOTFOUND);
    cr_expect(strstr(tly_errmsg(), "nope") != NULL, "%s", tly_errmsg());
    cr_expect_eq(tly_store_delete(st, "c/0/1"), 0);
    cr_expect_eq(tly_store_delete(st, "empty"), 0);
}

#endif
