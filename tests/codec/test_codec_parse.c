/* codec: command-line codec specs, numcodecs' defaults, and the names of bad keys and values. */
#include "codec/codec_util.h"

TestSuite(codec);

static struct tly_codec parse_ok(const char *spec)
{
    struct tly_codec c;
    memset(&c, 0xab, sizeof c);
    int rc = tly_codec_parse(spec, &c);
    cr_assert_eq(rc, 0, "'%s': %s", spec, tly_errmsg());
    return c;
}

/* Field by field: struct padding is not part of a codec's value. */
static bool same(const struct tly_codec *a, const struct tly_codec *b)
{
    return a->id == b->id && strcmp(a->blosc.cname, b->blosc.cname) == 0 && a->blosc.clevel == b->blosc.clevel &&
           a->blosc.shuffle == b->blosc.shuffle && a->blosc.blocksize == b->blosc.blocksize &&
           a->blosc.typesize == b->blosc.typesize && a->zstd.level == b->zstd.level &&
           a->zstd.checksum == b->zstd.checksum;
}

TLY_TEST(codec, defaults_follow_numcodecs)
{
    struct tly_codec c = cu_codec(TLY_CODEC_BLOSC);
    cr_expect_eq(c.id, TLY_CODEC_BLOSC);
    cr_expect_str_eq(c.blosc.cname, "lz4");
    cr_expect_eq(c.blosc.clevel, 5);
    cr_expect_eq(c.blosc.shuffle, TLY_SHUFFLE);
    cr_expect_eq(c.blosc.blocksize, 0);
    cr_expect_eq(c.blosc.typesize, 1);
    c = cu_codec(TLY_CODEC_ZSTD);
    cr_expect_eq(c.zstd.level, 3);
    cr_expect_eq(c.zstd.checksum, 0);
    cr_expect_str_eq(tly_codec_name(TLY_CODEC_NONE), "none");
    cr_expect_str_eq(tly_codec_name(TLY_CODEC_BLOSC), "blosc");
    cr_expect_str_eq(tly_codec_name(TLY_CODEC_ZSTD), "zstd");
    cr_expect_str_eq(tly_codec_name((enum tly_codec_id)7), "?");
}

TLY_TEST(codec, parse_accepts_the_examples)
{
    struct tly_codec c = parse_ok("none");
    cr_expect_eq(c.id, TLY_CODEC_NONE);
    c = parse_ok("blosc");
    struct tly_codec d = cu_codec(TLY_CODEC_BLOSC);
    cr_expect(same(&c, &d), "bare blosc is the defaults");
    c = parse_ok("blosc:cname=lz4,clevel=5,shuffle=1,blocksize=0");
    cr_expect(same(&c, &d), "the defaults spelled out");
    c = parse_ok("blosc:cname=zstd,clevel=9,shuffle=2,blocksize=65536");
    cr_expect_str_eq(c.blosc.cname, "zstd");
    cr_expect_eq(c.blosc.clevel, 9);
    cr_expect_eq(c.blosc.shuffle, TLY_BITSHUFFLE);
    cr_expect_eq(c.blosc.blocksize, 65536);
    c = parse_ok("blosc:shuffle=noshuffle,clevel=0");
    cr_expect_eq(c.blosc.shuffle, TLY_NOSHUFFLE);
    cr_expect_eq(c.blosc.clevel, 0);
    c = parse_ok("blosc:shuffle=bitshuffle");
    cr_expect_eq(c.blosc.shuffle, TLY_BITSHUFFLE);
    c = parse_ok("zstd");
    cr_expect_eq(c.id, TLY_CODEC_ZSTD);
    cr_expect_eq(c.zstd.level, 3);
    c = parse_ok("zstd:level=3");
    cr_expect_eq(c.zstd.level, 3);
    c = parse_ok("zstd:level=-5,checksum=1");
    cr_expect_eq(c.zstd.level, -5);
    cr_expect_eq(c.zstd.checksum, 1);
    c = parse_ok("zstd:level=22");
    cr_expect_eq(c.zstd.level, 22);
    c = parse_ok("gzip");
    cr_expect_eq(c.id, TLY_CODEC_GZIP);
    cr_expect_eq(c.gzip.level, 1, "numcodecs' GZip default");
    c = parse_ok("gzip:level=5");
    cr_expect_eq(c.gzip.level, 5);
    c = parse_ok("zlib");
    cr_expect_eq(c.id, TLY_CODEC_ZLIB);
    cr_expect_eq(c.gzip.level, 1, "numcodecs' Zlib default");
    c = parse_ok("zlib:level=0");
    cr_expect_eq(c.gzip.level, 0);
    c = parse_ok("zlib:level=-1");
    cr_expect_eq(c.gzip.level, -1);
}

static void parse_bad(const char *spec, const char *prefix, const char *names)
{
    struct tly_codec c = cu_codec(TLY_CODEC_ZSTD), before = c;
    cu_expect_err(tly_codec_parse(spec, &c), TLY_EUSAGE, prefix);
    cr_expect_neq(strstr(tly_errmsg(), names), NULL, "'%s': message '%s' does not name '%s'", spec, tly_errmsg(),
                  names);
    cr_expect(same(&c, &before), "'%s': the result is untouched", spec);
}

TLY_TEST(codec, parse_refuses_bad_specs)
{
    parse_bad("lzma", "codec", "lzma");
    parse_bad("gzip:level=10", "gzip:", "level '10'");
    parse_bad("gzip:level=-2", "gzip:", "level '-2'");
    parse_bad("zlib:level=x", "zlib:", "level 'x'");
    parse_bad("gzip:clevel=3", "gzip:", "clevel");
    parse_bad("zlib:level=1,checksum=1", "zlib:", "checksum");
    parse_bad("", "codec", "''");
    parse_bad("bloscx", "codec", "bloscx");
    parse_bad("blosc:", "blosc:", "key=value");
    parse_bad("blosc:foo=1", "blosc:", "foo");
    parse_bad("blosc:clevel", "blosc:", "clevel");
    parse_bad("blosc:clevel=", "blosc:", "clevel");
    parse_bad("blosc:=5", "blosc:", "=5");
    parse_bad("blosc:clevel=10", "blosc:", "clevel '10'");
    parse_bad("blosc:clevel=-1", "blosc:", "clevel '-1'");
    parse_bad("blosc:clevel=x", "blosc:", "clevel 'x'");
    parse_bad("blosc:clevel=5x", "blosc:", "clevel '5x'");
    parse_bad("blosc:clevel= 5", "blosc:", "clevel ' 5'");
    parse_bad("blosc:cname=brotli", "blosc:", "brotli");
    parse_bad("blosc:cname=lz4lz4lz4lz4lz4lz4", "blosc:", "lz4lz4lz4lz4lz4lz4");
    parse_bad("blosc:shuffle=3", "blosc:", "shuffle '3'");
    parse_bad("blosc:shuffle=auto", "blosc:", "shuffle 'auto'");
    parse_bad("blosc:blocksize=-1", "blosc:", "blocksize '-1'");
    parse_bad("blosc:clevel=5,,shuffle=1", "blosc:", "key=value");
    parse_bad("blosc:level=3", "blosc:", "level");
    parse_bad("zstd:level=23", "zstd:", "level '23'");
    parse_bad("zstd:level=99999999999999999999", "zstd:", "level");
    parse_bad("zstd:level=3,", "zstd:", "key=value");
    parse_bad("zstd:checksum=2", "zstd:", "checksum '2'");
    parse_bad("zstd:clevel=3", "zstd:", "clevel");
    parse_bad("none:level=1", "none:", "level");
}
