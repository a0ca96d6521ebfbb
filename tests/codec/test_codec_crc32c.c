/*
 * codec: tly_crc32c against the CRC-32C check value, a bitwise reference (the polynomial's
 * definition, written here) over every length 0..300 at every alignment, chaining at every split
 * point, and a large buffer in uneven pieces.
 */
#include "codec/codec_util.h"

TestSuite(codec);

/* CRC-32C bit by bit: reflected polynomial 0x82F63B78, initial and final xor 0xFFFFFFFF. */
static uint32_t crc32c_bitwise(uint32_t crc, const unsigned char *p, size_t n)
{
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = crc & 1 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
    }
    return ~crc;
}

TLY_TEST(codec, crc32c_check_values)
{
    cr_expect_eq(tly_crc32c(0, "123456789", 9), 0xE3069283u);
    cr_expect_eq(tly_crc32c(0, NULL, 0), 0u, "nothing: 0");
    cr_expect_eq(tly_crc32c(0xE3069283u, "x", 0), 0xE3069283u, "no bytes leave the CRC as it is");
    /* RFC 3720 B.4: 32 bytes of zeros, of 0xFF, and 0..31 */
    unsigned char b[32];
    memset(b, 0, sizeof b);
    cr_expect_eq(tly_crc32c(0, b, sizeof b), 0x8A9136AAu);
    memset(b, 0xFF, sizeof b);
    cr_expect_eq(tly_crc32c(0, b, sizeof b), 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        b[i] = (unsigned char)i;
    cr_expect_eq(tly_crc32c(0, b, sizeof b), 0x46DD794Eu);
    cr_expect_eq(crc32c_bitwise(0, (const unsigned char *)"123456789", 9), 0xE3069283u, "the reference itself");
}

TLY_TEST(codec, crc32c_every_length_and_alignment_against_the_bitwise_reference)
{
    unsigned char buf[300 + 16];
    cu_fill_random(buf, sizeof buf, 42);
    int bad = 0;
    for (size_t off = 0; off < 16; off++)
        for (size_t n = 0; n <= 300; n++) {
            uint32_t want = crc32c_bitwise(0, buf + off, n), got = tly_crc32c(0, buf + off, n);
            if (got != want && bad++ < 5)
                cr_expect_fail("offset %zu length %zu: %08x, want %08x", off, n, got, want);
        }
    cr_expect_eq(bad, 0, "%d lengths and offsets differ", bad);
}

TLY_TEST(codec, crc32c_chains_at_every_split)
{
    unsigned char buf[300];
    cu_fill_random(buf, sizeof buf, 7);
    uint32_t whole = tly_crc32c(0, buf, sizeof buf);
    cr_expect_eq(whole, crc32c_bitwise(0, buf, sizeof buf));
    for (size_t k = 0; k <= sizeof buf; k++) {
        uint32_t a = tly_crc32c(0, buf, k);
        cr_expect_eq(tly_crc32c(a, buf + k, sizeof buf - k), whole, "split at %zu", k);
        cr_expect_eq(crc32c_bitwise(a, buf + k, sizeof buf - k), whole, "the reference chains the same at %zu", k);
    }
}

TLY_TEST(codec, crc32c_large_buffer_in_uneven_pieces)
{
    size_t n = 5 * MiB + 3;
    unsigned char *p = cu_alloc(n);
    cu_fill_random(p, n, 3);
    uint32_t whole = tly_crc32c(0, p, n), chained = 0;
    for (size_t at = 0, step = 1; at < n; at += step, step = step * 3 + 1) {
        size_t k = step < n - at ? step : n - at;
        chained = tly_crc32c(chained, p + at, k);
    }
    cr_expect_eq(chained, whole);
    if (!TLY_UNDER_VALGRIND())
        cr_expect_eq(crc32c_bitwise(0, p, n), whole);
    free(p);
}
