/* CRC-32C (Castagnoli), reflected, init and final xor 0xFFFFFFFF, as Zarr v3's crc32c codec. */
#include <stdint.h>
#include "tally/codec.h"

uint32_t tly_crc32c(uint32_t crc, const void *data, size_t n)
{
    const uint8_t *p = data;
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1)));
    }
    return ~crc;
}
