/*
 * CRC-32C (Castagnoli) through ISA-L's crc32_iscsi, which picks its SSE4.2 / PCLMULQDQ path at run
 * time (a table-driven one elsewhere). crc32_iscsi(buf, len, init) neither inverts its initial value
 * nor its result, so the standard CRC (RFC 3720, Zarr v3's crc32c codec: initial and final xor
 * 0xFFFFFFFF) is ~crc32_iscsi(buf, len, ~crc), which also chains: crc is the CRC of what came before.
 */
#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include <isa-l/crc.h>

#include "tally/codec.h"

#define PIECE ((size_t)1 << 30) /* crc32_iscsi takes an int length */

uint32_t tly_crc32c(uint32_t crc, const void *data, size_t n)
{
    unsigned char *p = (unsigned char *)data; /* crc32_iscsi only reads it */
    crc = ~crc;
    while (n > 0) {
        size_t k = n < PIECE ? n : PIECE;
        crc = crc32_iscsi(p, (int)k, crc);
        p += k;
        n -= k;
    }
    return ~crc;
}
