/* codec: the registry's tables (src/codec/ops.h) are whole and agree with the names it lists. */
#include <string.h>

#include "codec/blocks.h"
#include "codec/ops.h"
#include "support.h"
#include "tally/codec.h"
#include "tally/error.h"

TestSuite(codec_table);

TLY_TEST(codec_table, names_are_the_tables)
{
    const char *const *names = tly_codec_names();
    const char *want[] = {"none", "blosc", "zstd", "gzip", "zlib"};
    int n = 0;
    for (; names[n]; n++) {
        cr_assert_lt(n, 5);
        cr_assert_str_eq(names[n], want[n]);
        const struct tly__codec_ops *ops = tly__codec_by_name(names[n], strlen(names[n]));
        cr_assert_not_null(ops, "%s", names[n]);
        cr_assert_str_eq(ops->name, names[n]);
        cr_assert_eq(tly__codec_by_id(ops->id), ops, "%s: its id finds another table", names[n]);
        cr_assert_str_eq(tly_codec_name(ops->id), names[n]);
    }
    cr_assert_eq(n, 5);
}

TLY_TEST(codec_table, every_table_is_whole)
{
    for (const char *const *n = tly_codec_names(); *n; n++) {
        const struct tly__codec_ops *ops = tly__codec_by_name(*n, strlen(*n));
        cr_assert(ops->bound && ops->encode && ops->decode, "%s: a required entry is missing", *n);
        bool streams = ops->encode_stream != NULL;
        cr_assert(streams == (ops->stream_block != NULL) && streams == (ops->dstream_open != NULL) &&
                      streams == (ops->dstream_feed != NULL) && streams == (ops->dstream_close != NULL) &&
                      streams == (ops->dstream_abort != NULL),
                  "%s: streaming entries are all or none", *n);
        cr_assert(!(ops->raw && (streams || ops->blocks)), "%s: a raw codec neither streams nor has blocks", *n);
    }
}

TLY_TEST(codec_table, capabilities)
{
    struct tly_codec c;
    const struct {
        const char *spec;
        bool raw, streams, blocks;
    } want[] = {{"none", true, false, false},
                {"blosc", false, false, true},
                {"zstd", false, true, false},
                {"gzip", false, true, false},
                {"zlib", false, true, false}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        cr_assert_eq(tly_codec_parse(want[i].spec, &c), 0, "%s", tly_errmsg());
        cr_assert_eq(tly_codec_stores_raw(&c), want[i].raw, "%s", want[i].spec);
        cr_assert_eq(tly_codec_streams(&c), want[i].streams, "%s", want[i].spec);
        cr_assert_eq(tly_codec_has_blocks(&c), want[i].blocks, "%s", want[i].spec);
        cr_assert_eq(tly_codec_stream_block(&c, false) > 0, want[i].streams, "%s", want[i].spec);
        cr_assert_eq(tly_codec_stream_block(&c, true) > 0, want[i].streams, "%s", want[i].spec);
    }
}

TLY_TEST(codec_table, a_codec_that_does_not_stream_refuses_a_stream)
{
    struct tly_codec c;
    tly_codec_defaults(&c, TLY_CODEC_BLOSC);
    struct tly_dstream *ds = NULL;
    char out[16];
    cr_assert_eq(tly_dstream_open(&c, out, sizeof out, NULL, NULL, NULL, 0, &ds), TLY_EUSAGE);
    cr_assert_null(ds);
    cr_assert_str_eq(tly_errmsg(), "blosc: stream decoding needs a codec that streams");
    struct iovec iov = {out, sizeof out};
    cr_assert_eq(tly_codec_encode_stream(&c, &iov, 1, sizeof out, out, sizeof out, NULL, NULL), TLY_EUSAGE);
}

TLY_TEST(codec_table, an_unknown_codec_lists_the_known_ones)
{
    struct tly_codec c;
    cr_assert_eq(tly_codec_parse("lzma", &c), TLY_EUSAGE);
    cr_assert_str_eq(tly_errmsg(), "codec 'lzma' is unknown (none, blosc, zstd, gzip, zlib)");
}
