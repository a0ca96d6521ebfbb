/*
 * A window's "stacks" (docs/impl-protocol.md): the sites of the memory at its peak, of its copied bytes
 * and of its allocated bytes, heaviest first, each with its frames named now (stacks_sym.c, and the
 * user's Python frames), after every figure was taken. Frames are listed outermost first, as folded
 * stacks are; an engine stack's root word is its stage ("stage encode"), and its sites say the stage.
 *
 * Naming reads debug information (libdw allocates, copies and maps as it goes): it runs with the
 * calling thread's tracking off, into static storage, and frees what it allocated before tracking is
 * back, so that windows still open (an enclosing one) do not count it either.
 *
 * A site's bytes are relative to the window's start, as a library's are: bytes live at the peak less
 * what the stack held when the window opened (a stack that freed older blocks is not listed), bytes
 * copied and bytes allocated in the window. The sites past SITES_MAX are summed in "other_bytes", so
 * that the sites and other_bytes add up to total_bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "mem/internal.h"
#include "mem/stacks.h"

#define SITES_MAX 200
#define FRAME_CAP 320
#define FRAMES_MAX (TLY__STACK_DEPTH + 64 + 1)
#define NAMES_BYTES (4u << 20)

enum { PEAK, COPIES, ALLOCATED, KINDS };

struct site {
    unsigned id;
    int64_t bytes, count;
    unsigned nframes;
    uint32_t frame[FRAMES_MAX]; /* outermost first: offsets of their names in `names` */
};

static struct site sites_of[KINDS][TLY__STACKS_MAX];
static char names[NAMES_BYTES];
static size_t names_used;

void tly__jstr(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static int by_bytes(const void *a, const void *b)
{
    const struct site *x = a, *y = b;
    return x->bytes < y->bytes ? 1 : x->bytes > y->bytes ? -1 : x->id < y->id ? -1 : x->id > y->id;
}

static uint32_t keep_name(const char *s)
{
    size_t n = strlen(s) + 1;
    if (names_used + n > NAMES_BYTES)
        return 0;                     /* names[0] is "?" */
    memcpy(names + names_used, s, n); /* a name, not payload */
    names_used += n;
    return (uint32_t)(names_used - n);
}

/* An engine stack's stage (its root word), or -1. */
static int stage_of(const uintptr_t *w, unsigned n)
{
    return n > 0 && (w[n - 1] & TLY__STACK_ROOT_TAG) && !(w[n - 1] & TLY__STACK_PY_TAG)
               ? (int)(w[n - 1] & ~TLY__STACK_ROOT_TAG)
               : -1;
}

/* Site @p s's frames named into `names`. The interpreter's own native frames are left out where a
 * Python frame stands further in (they are how it ran that frame). */
static void name_site(struct site *s)
{
    static char text[FRAMES_MAX][FRAME_CAP];
    const struct tly__stacks_ops *o = tly__stacks_ops();
    bool runtime[FRAMES_MAX], truncated;
    unsigned n, k = 0, first_py = FRAMES_MAX, gen, slot;
    const uintptr_t *w = tly__stack_words(s->id, &n, &slot, &truncated, &gen);
    int stage = stage_of(w, n);
    for (unsigned i = 0; i < n && k < FRAMES_MAX; i++, k++) {
        runtime[k] = false;
        if (w[i] & TLY__STACK_PY_TAG) {
            const char *py = o->py_text && i + 1 < n ? o->py_text(w[i] & ~TLY__STACK_PY_TAG, w[i + 1]) : NULL;
            snprintf(text[k], FRAME_CAP, "%s", py ? py : "[python frame]");
            first_py = first_py == FRAMES_MAX ? k : first_py;
            i++;
        } else if (i + 1 == n && stage >= 0) {
            snprintf(text[k], FRAME_CAP, "stage %s", tly_stage_name((enum tly_stage)stage));
        } else {
            tly__sym_name(w[i], gen, text[k], FRAME_CAP, &runtime[k]);
        }
    }
    if (s->id == 0) {
        snprintf(text[0], FRAME_CAP, "[no room in the stacks table]");
        runtime[0] = false;
        k = 1;
    }
    s->nframes = 0;
    for (unsigned i = k; i-- > 0;) /* outermost first */
        if (!(runtime[i] && i > first_py))
            s->frame[s->nframes++] = keep_name(text[i]);
}

static void site(FILE *f, const struct site *s, const char *count_key, bool first)
{
    const struct tly__stacks_ops *o = tly__stacks_ops();
    unsigned n, slot, gen;
    bool truncated;
    const uintptr_t *w = tly__stack_words(s->id, &n, &slot, &truncated, &gen);
    int stage = s->id == 0 ? -1 : stage_of(w, n);
    fprintf(f, "%s\n      {\"bytes\": %lld, \"%s\": %lld, \"library\": ", first ? "" : ",", (long long)s->bytes,
            count_key, (long long)s->count);
    tly__jstr(f, o->slot_name ? o->slot_name(slot) : "?");
    if (stage >= 0) {
        fputs(", \"stage\": ", f);
        tly__jstr(f, tly_stage_name((enum tly_stage)stage));
    }
    fprintf(f, ", \"truncated\": %s, \"frames\": [", truncated ? "true" : "false");
    for (unsigned i = 0; i < s->nframes; i++) {
        tly__jstr(f, names + s->frame[i]);
        fputs(i + 1 < s->nframes ? ", " : "", f);
    }
    fputs("]}", f);
}

/* One list of sites, @p k of them, sorted (the first SITES_MAX named) already. */
static void sites_block(FILE *f, const char *key, const struct site *sites, unsigned k, const char *count_key)
{
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

/* The listed sites' frames named, with this thread's tracking off (see the top of the file). */
static void name_all(const unsigned k[KINDS])
{
    struct tly__tls *t = &tly__tls;
    uint8_t was = t->in_hook;
    t->in_hook = 1;
    names_used = 0;
    keep_name("?");
    tly__sym_begin();
    for (int kind = 0; kind < KINDS; kind++)
        for (unsigned i = 0; i < k[kind] && i < SITES_MAX; i++)
            name_site(&sites_of[kind][i]);
    tly__sym_end();
    t->in_hook = was;
}

void tly__stacks_emit(FILE *f, const struct tly__stacks_window *w)
{
    if (!tly__stacks_on || w == NULL || w->peak == NULL) {
        fputs("  \"stacks\": {\"enabled\": false, \"peak\": null, \"copies\": null, \"allocated\": null}", f);
        return;
    }
    const struct tly__stack_counts *b = w->before, *p = w->peak, *a = w->now;
    unsigned k[KINDS] = {0};
    for (unsigned i = 0; i < w->n; i++) {
        if (p->bytes[i] - b->bytes[i] > 0)
            sites_of[PEAK][k[PEAK]++] =
                (struct site){i, p->bytes[i] - b->bytes[i], p->blocks[i] - b->blocks[i], 0, {0}};
        if (a->copy_bytes[i] > b->copy_bytes[i])
            sites_of[COPIES][k[COPIES]++] = (struct site){
                i, (int64_t)(a->copy_bytes[i] - b->copy_bytes[i]), (int64_t)(a->copies[i] - b->copies[i]), 0, {0}};
        if (a->alloc_bytes[i] > b->alloc_bytes[i])
            sites_of[ALLOCATED][k[ALLOCATED]++] = (struct site){
                i, (int64_t)(a->alloc_bytes[i] - b->alloc_bytes[i]), (int64_t)(a->allocs[i] - b->allocs[i]), 0, {0}};
    }
    for (int kind = 0; kind < KINDS; kind++)
        qsort(sites_of[kind], k[kind], sizeof sites_of[kind][0], by_bytes);
    name_all(k);
    const struct tly__stacks_ops *o = tly__stacks_ops();
    fprintf(f,
            "  \"stacks\": {\"enabled\": true, \"depth_cap\": %d, \"python_frames\": %s, \"interned\": %u, "
            "\"dropped\": %llu, \"taken\": %llu, \"taken_s\": %.6f,\n",
            TLY__STACK_DEPTH, o->py_active && o->py_active() ? "true" : "false", w->n, (unsigned long long)w->dropped,
            (unsigned long long)(w->taken[1] - w->taken[0]), (double)(w->taken_ns[1] - w->taken_ns[0]) / 1e9);
    sites_block(f, "peak", sites_of[PEAK], k[PEAK], "blocks");
    fputs(",\n", f);
    sites_block(f, "copies", sites_of[COPIES], k[COPIES], "count");
    fputs(",\n", f);
    sites_block(f, "allocated", sites_of[ALLOCATED], k[ALLOCATED], "blocks");
    fputs("}", f);
}
