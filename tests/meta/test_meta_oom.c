/*
 * meta: allocation failures inside jansson, swept one allocation at a time (as libuv's
 * test-loop-oom.c): every failure is a clean error, the output is left empty, nothing leaks (the
 * suite's leak check).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "support.h"
#include "tally/error.h"
#include "tally/meta.h"

static const char doc[] =
    "{\"zarr_format\": 3, \"node_type\": \"array\", \"shape\": [7, 3], \"data_type\": \"int16\", "
    "\"chunk_grid\": {\"name\": \"regular\", \"configuration\": {\"chunk_shape\": [4, 3]}}, "
    "\"chunk_key_encoding\": {\"name\": \"default\", \"configuration\": {\"separator\": \"/\"}}, "
    "\"codecs\": [{\"name\": \"bytes\", \"configuration\": {\"endian\": \"little\"}}, {\"name\": \"blosc\", "
    "\"configuration\": {\"cname\": \"zstd\", \"clevel\": 5, \"shuffle\": \"bitshuffle\", \"typesize\": 2, "
    "\"blocksize\": 0}}], \"fill_value\": -1, \"dimension_names\": [\"y\", \"x\"], "
    "\"attributes\": {\"units\": \"m\", \"scale\": [1, 2], \"nested\": {\"a\": null}}}";

/* Allocations jansson may still make before the next one fails; -1: no limit. */
static int budget = -1;

static void *failing_malloc(size_t n)
{
    if (budget == 0)
        return NULL;
    if (budget > 0)
        budget--;
    return malloc(n);
}

static void use_failing_allocator(void)
{
    json_set_alloc_funcs(failing_malloc, free);
}

static void restore_allocator(void)
{
    json_set_alloc_funcs(malloc, free);
}

TestSuite(meta, .init = use_failing_allocator, .fini = restore_allocator);

TLY_TEST(meta, oom_parse_fails_cleanly_at_every_allocation)
{
    int failures = 0;
    for (int n = 0; n < 1000; n++) {
        struct tly_meta m;
        budget = n;
        int rc = tly_meta_parse_v3(doc, sizeof doc - 1, &m);
        budget = -1;
        if (rc == 0) {
            cr_expect_str_eq(m.attributes_json, "{\"units\":\"m\",\"scale\":[1,2],\"nested\":{\"a\":null}}");
            tly_meta_free(&m);
            cr_expect_gt(failures, 10, "the sweep reached past jansson's allocations");
            return;
        }
        failures++;
        /* jansson's lexer reports some failed allocations as syntax errors: either error will do. */
        cr_expect(rc == -ENOMEM || rc == TLY_EFORMAT, "allocation %d: rc %d (%s)", n, rc, tly_errmsg());
        cr_expect_null(m.attributes_json);
        cr_expect_eq(m.rank, 0, "the output is left zeroed");
    }
    cr_assert_fail("the parse never succeeded");
}

TLY_TEST(meta, oom_emit_fails_cleanly_at_every_allocation)
{
    struct tly_meta m;
    cr_assert_eq(tly_meta_parse_v3(doc, sizeof doc - 1, &m), 0, "%s", tly_errmsg());
    for (int format = 2; format <= 3; format++) {
        m.zarr_format = format;
        char *want = tly_meta_emit(&m);
        cr_assert_not_null(want);
        int n = 0;
        for (char *text = NULL; text == NULL; n++) {
            budget = n;
            text = tly_meta_emit(&m);
            budget = -1;
            if (text != NULL)
                cr_expect_str_eq(text, want);
            free(text);
        }
        cr_expect_gt(n, 10, "v%d: the sweep failed each of jansson's allocations", format);
        free(want);
    }
    tly_meta_free(&m);
}
