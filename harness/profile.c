/* The per-stage table printed by --profile and the demo. */
#include <inttypes.h>

#include "harness.h"

const char *tly_h_bytes(char *buf, size_t cap, double bytes)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = bytes < 0 ? -bytes : bytes;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    snprintf(buf, cap, u ? "%s%.1f %s" : "%s%.0f %s", bytes < 0 ? "-" : "", v, units[u]);
    return buf;
}

void tly_h_print_profile(FILE *f, const struct tly_mem_snapshot *before, const struct tly_mem_snapshot *after,
                         uint64_t array_bytes)
{
    char a[32], b[32], c[32], d[32];
    fprintf(f, "%-9s %10s %12s %12s %12s %8s %12s\n", "stage", "allocs", "alloc bytes", "peak", "at peak", "copies",
            "copy bytes");
    for (int s = 0; s < TLY_NSTAGES; s++) {
        const struct tly_stage_counters *x = &after->stage[s], *y = &before->stage[s];
        uint64_t allocs = x->allocs - y->allocs;
        uint64_t copy_bytes = x->copy_bytes - y->copy_bytes;
        if (allocs == 0 && copy_bytes == 0 && x->peak_bytes == y->live_bytes)
            continue;
        fprintf(f, "%-9s %10" PRIu64 " %12s %12s %12s %8.2f %12s\n", tly_stage_name((enum tly_stage)s), allocs,
                tly_h_bytes(a, sizeof a, (double)(x->alloc_bytes - y->alloc_bytes)),
                tly_h_bytes(b, sizeof b, (double)(x->peak_bytes - y->live_bytes)),
                tly_h_bytes(c, sizeof c, (double)(x->at_peak_bytes - y->live_bytes)),
                array_bytes ? (double)copy_bytes / (double)array_bytes : 0.0,
                tly_h_bytes(d, sizeof d, (double)copy_bytes));
    }
    double extra = array_bytes ? (double)(after->peak_bytes - before->live_bytes) / (double)array_bytes : 0;
    fprintf(f, "array %s, baseline %s, peak %s (+%.2f x array)\n", tly_h_bytes(a, sizeof a, (double)array_bytes),
            tly_h_bytes(b, sizeof b, (double)before->live_bytes), tly_h_bytes(c, sizeof c, (double)after->peak_bytes),
            extra);
}
