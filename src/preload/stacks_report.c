/*
 * A window's "stacks" (docs/impl-protocol.md): the sites of the memory at its peak and of its copied
 * bytes, heaviest first, each with its frames named now (stacks_sym.c, stacks_py.c), after every
 * figure was taken. Frames are listed outermost first, as folded stacks are.
 *
 * A site's bytes are relative to the window's start, as a library's are: bytes live at the peak less
 * what the stack held when the window opened (a stack that freed older blocks is not listed), and
 * bytes copied in the window. The sites past SITES_MAX are summed in "other_bytes", so that the
 * sites and other_bytes add up to total_bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "preload/preload.h"
#include "preload/stacks.h"

#define SITES_MAX 200
#define FRAME_CAP 320
#define FRAMES_MAX (TLY__STACK_DEPTH + 64 + 1)

struct site {
    unsigned id;
    int64_t bytes, count;
};

static int by_bytes(const void *a, const void *b)
{
    const struct site *x = a, *y = b;
    return x->bytes < y->bytes ? 1 : x->bytes > y->bytes ? -1 : x->id < y->id ? -1 : x->id > y->id;
}

static char frames[FRAMES_MAX][FRAME_CAP];

/* Stack @p id's frames named into `frames`, innermost first; returns how many. The interpreter's own
 * native frames are left out where a Python frame stands further in (they are how it ran that frame). */
static unsigned name_frames(unsigned id, unsigned *slot, bool *truncated)
{
    unsigned n, k = 0, first_py = FRAMES_MAX, gen;
    const uintptr_t *w = tly__stack_words(id, &n, slot, truncated, &gen);
    bool runtime[FRAMES_MAX];
    for (unsigned i = 0; i < n && k < FRAMES_MAX; i++) {
        if (w[i] & TLY__STACK_PY_TAG) {
            snprintf(frames[k], FRAME_CAP, "%s", tly__py_text(w[i] & ~TLY__STACK_PY_TAG, w[i + 1]));
            runtime[k] = false;
            if (first_py == FRAMES_MAX)
                first_py = k;
            i++;
        } else {
            tly__sym_name(w[i], gen, frames[k], FRAME_CAP, &runtime[k]);
        }
        k++;
    }
    unsigned kept = 0;
    for (unsigned i = 0; i < k; i++)
        if (!(runtime[i] && i > first_py)) {
            if (kept != i)
                memcpy(frames[kept], frames[i], FRAME_CAP); /* a name, not payload */
            kept++;
        }
    if (id == 0)
        kept = (unsigned)snprintf(frames[0], FRAME_CAP, "[no room in the stacks table]") > 0;
    return kept;
}

static void site(FILE *f, const struct site *s, const char *count_key, bool first)
{
    unsigned slot;
    bool truncated;
    unsigned n = name_frames(s->id, &slot, &truncated);
    fprintf(f, "%s\n      {\"bytes\": %lld, \"%s\": %lld, \"library\": ", first ? "" : ",", (long long)s->bytes,
            count_key, (long long)s->count);
    tly__jstr(f, tly__slot_name(slot));
    fprintf(f, ", \"truncated\": %s, \"frames\": [", truncated ? "true" : "false");
    for (unsigned i = n; i-- > 0;) {
        tly__jstr(f, frames[i]);
        fputs(i ? ", " : "", f);
    }
    fputs("]}", f);
}

static struct site sites[TLY__STACKS_MAX];

/* One list of sites: @p k of them in `sites`, sorted here. */
static void sites_block(FILE *f, const char *key, unsigned k, const char *count_key)
{
    qsort(sites, k, sizeof sites[0], by_bytes);
    int64_t total = 0, other = 0, other_count = 0, count = 0;
    for (unsigned i = 0; i < k; i++) {
        total += sites[i].bytes;
        count += sites[i].count;
        if (i >= SITES_MAX) {
            other += sites[i].bytes;
            other_count += sites[i].count;
        }
    }
    fprintf(f,
            "    \"%s\": {\"total_bytes\": %lld, \"total_%s\": %lld, \"sites_count\": %u, \"other_bytes\": %lld, "
            "\"other_%s\": %lld, \"sites\": [",
            key, (long long)total, count_key, (long long)count, k, (long long)other, count_key, (long long)other_count);
    for (unsigned i = 0; i < k && i < SITES_MAX; i++)
        site(f, &sites[i], count_key, i == 0);
    fputs("]}", f);
}

void tly__stacks_emit(FILE *f, const struct tly__figures *x)
{
    if (!tly__stacks_on || x->stk_peak == NULL) {
        fputs("  \"stacks\": {\"enabled\": false, \"peak\": null, \"copies\": null},\n", f);
        return;
    }
    const struct tly__stack_counts *b = x->stk_before, *p = x->stk_peak, *a = x->stk_now;
    unsigned n = x->stk_n;
    tly__sym_begin();
    fprintf(f,
            "  \"stacks\": {\"enabled\": true, \"depth_cap\": %d, \"python_frames\": %s, \"interned\": %u, "
            "\"dropped\": %llu, \"taken\": %llu, \"taken_s\": %.6f,\n",
            TLY__STACK_DEPTH, tly__py_active() ? "true" : "false", n, (unsigned long long)x->stk_dropped,
            (unsigned long long)(x->stk_taken[1] - x->stk_taken[0]),
            (double)(x->stk_taken_ns[1] - x->stk_taken_ns[0]) / 1e9);
    unsigned k = 0;
    for (unsigned i = 0; i < n; i++)
        if (p->bytes[i] - b->bytes[i] > 0)
            sites[k++] = (struct site){i, p->bytes[i] - b->bytes[i], p->blocks[i] - b->blocks[i]};
    sites_block(f, "peak", k, "blocks");
    fputs(",\n", f);
    k = 0;
    for (unsigned i = 0; i < n; i++)
        if (a->copy_bytes[i] > b->copy_bytes[i])
            sites[k++] = (struct site){i, (int64_t)(a->copy_bytes[i] - b->copy_bytes[i]),
                                       (int64_t)(a->copies[i] - b->copies[i])};
    sites_block(f, "copies", k, "count");
    fputs("},\n", f);
    tly__sym_end();
}
