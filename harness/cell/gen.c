/*
 * The cells' data: uniform random float32 in [0, 1) (memray-array's rng.random), from a counter-based
 * generator, so any block can be made again on its own and a read is verified without a second copy
 * of the array in memory. Output buffers for reads ask for huge pages, as numpy's arrays do.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "cell/cell.h"

#define GEN_BLOCK ((size_t)1 << 20)
#define HUGE_PAGE ((size_t)2 << 20)

/* splitmix64 of the word's index. */
static uint64_t word(uint64_t i)
{
    uint64_t z = (i + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

void tly_h_gen(void *dst, uint64_t off, size_t n, const struct tly_dtype *dt)
{
    unsigned char *out = dst;
    for (size_t i = 0; i < n; i += 8) {
        uint64_t r = word((off + i) / 8), w = r;
        if (dt->kind == 'f' && dt->size == 4) {
            float f[2] = {(float)(r >> 40) / 16777216.0f, (float)((r >> 8) & 0xFFFFFF) / 16777216.0f};
            memcpy(&w, f, 8); /* making data, not copying payload */
        }
        memcpy(out + i, &w, n - i < 8 ? n - i : 8); /* making data, not copying payload */
    }
}

void tly_h_gen_all(void *dst, uint64_t n, const struct tly_dtype *dt)
{
    for (uint64_t off = 0; off < n; off += GEN_BLOCK)
        tly_h_gen((char *)dst + off, off, n - off < GEN_BLOCK ? (size_t)(n - off) : GEN_BLOCK, dt);
}

bool tly_h_gen_verify(const void *got, uint64_t n, const struct tly_dtype *dt)
{
    char block[4096];
    for (uint64_t off = 0; off < n; off += sizeof block) {
        size_t k = n - off < sizeof block ? (size_t)(n - off) : sizeof block;
        tly_h_gen(block, off, k, dt);
        if (memcmp(block, (const char *)got + off, k) != 0)
            return false;
    }
    return true;
}

bool tly_h_gen_verify_region(const void *got, const struct tly_region *r, const uint64_t *shape,
                             const struct tly_dtype *dt)
{
    char block[4096 + 16];
    int rank = r->rank;
    size_t es = dt->size;
    uint64_t rows = 1, row = (r->stop[rank - 1] - r->start[rank - 1]) * es;
    for (int d = 0; d < rank - 1; d++)
        rows *= r->stop[d] - r->start[d];
    const char *p = got;
    for (uint64_t k = 0; k < rows; k++) {
        uint64_t t = k, off = 0, pos[TLY_MAX_RANK];
        for (int d = rank - 2; d >= 0; d--) {
            pos[d] = r->start[d] + t % (r->stop[d] - r->start[d]);
            t /= r->stop[d] - r->start[d];
        }
        pos[rank - 1] = r->start[rank - 1];
        for (int d = 0; d < rank; d++)
            off = off * shape[d] + pos[d];
        off *= es; /* the row's first byte in the array */
        for (uint64_t done = 0; done < row;) {
            uint64_t at = off + done, base = at & ~(uint64_t)7;
            size_t k2 = row - done < 4096 ? (size_t)(row - done) : 4096;
            tly_h_gen(block, base, (size_t)(at - base) + k2, dt);
            if (memcmp(block + (at - base), p, k2) != 0)
                return false;
            p += k2;
            done += k2;
        }
    }
    return true;
}

/*
 * Large outputs ask for transparent huge pages over their 2 MiB-aligned part, as numpy does for its
 * arrays (zarr-python gets them, so the comparison is fair only if we do too). Faulting in a GiB
 * costs ~0.35 s in 4 KiB pages and ~0.07 s in 2 MiB pages here when huge pages are at hand; when
 * they are not, the kernel compacts memory in the fault, so the cost varies from run to run. The
 * engine's own buffers stay on 4 KiB pages for that reason.
 */
void *tly_h_alloc_output(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p && n >= 2 * HUGE_PAGE) {
        uintptr_t a = ((uintptr_t)p + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1);
        uintptr_t b = ((uintptr_t)p + n) & ~(uintptr_t)(HUGE_PAGE - 1);
        if (b > a)
            (void)madvise((void *)a, b - a, MADV_HUGEPAGE); /* advice: EINVAL without THP is fine */
    }
    return p;
}
