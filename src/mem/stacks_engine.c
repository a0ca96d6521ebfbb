/*
 * The engine's call stacks (tally/mem.h, tly_stacks_start): src/mem/stacks.c takes and interns them,
 * as the engine says here. A large block's stack is taken inside jemalloc's hook, through the library
 * slot function the preload uses for its libraries (tly__lib_of): it leaves the stack in tly__tls.stack
 * and charges no library. Its leaf is found by jemalloc's own frames: the tracker's frames run inside
 * jemalloc's, so every frame up to the outermost of jemalloc's is left off but that one (malloc). A
 * copy's stack is taken in tly_copy, its leaf the copy's caller (tly_copy's return address). Every
 * stack's root word is the thread's stage.
 *
 * No Python frames and no library slots here: tally's own cells are the engine's C, with its stages.
 */
#include <dlfcn.h>
#include <jemalloc/jemalloc.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>

#include "mem/internal.h"
#include "mem/stacks.h"

bool tly__stacks_engine;
static uintptr_t je_lo, je_hi; /* jemalloc's executable segments, [lo, hi) */
static struct tly__stack_counts before, at_peak, now;
static struct tly__stacks_window window;
static bool closed;

static bool in_jemalloc(uintptr_t ip)
{
    return ip >= je_lo && ip < je_hi;
}

static const char *slot_name(unsigned slot)
{
    (void)slot;
    return "tally";
}

static const struct tly__stacks_ops ops = {
    .in_jemalloc = in_jemalloc,
    .slot_name = slot_name,
};

static uintptr_t root(const struct tly__tls *t)
{
    return TLY__STACK_ROOT_TAG | (uintptr_t)tly__stage_of(t);
}

/* A tly__lib_fn: a new large block's stack into tly__tls.stack (inside the hook), no library. */
static unsigned alloc_stack(size_t usize)
{
    (void)usize;
    static const struct tly__leaf leaf = {0, true};
    unsigned slot;
    tly__tls.stack = tly__stacks_take(&leaf, TLY__LIB_NONE, &slot, root(&tly__tls));
    return TLY__LIB_NONE;
}

/*
 * A copy of TLY_MEM_LARGE bytes or more has its stack taken. Smaller ones are sampled by their bytes:
 * a thread's small copies in a stage add up until they reach TLY_MEM_LARGE, and the copy that makes
 * them reach it has its stack taken and charged with all of them (bytes and count). So a
 * stage's small copies add up on its stacks, less what each thread has not yet carried over (under
 * TLY_MEM_LARGE a thread and stage); a site's own share of them is an estimate, good where its copies
 * are many (the bytes of the copies between two samples go to the site of the second).
 */
void tly__stacks_engine_copy(size_t n, uintptr_t ra)
{
    struct tly__tls *t = &tly__tls;
    if (t->in_hook)
        return;
    uint64_t count = 1;
    if (n < TLY_MEM_LARGE) {
        enum tly_stage s = tly__stage_of(t);
        uint64_t sum = t->small_copied[s] + n;
        t->small_copies[s]++;
        if (sum < TLY_MEM_LARGE) {
            t->small_copied[s] = (uint32_t)sum;
            return;
        }
        count = t->small_copies[s];
        t->small_copied[s] = t->small_copies[s] = 0;
        n = sum;
    }
    t->in_hook = 1; /* whatever the unwinder allocates is the tracker's */
    struct tly__leaf leaf = {ra, false};
    unsigned slot;
    tly__stacks_copied(tly__stacks_take(&leaf, TLY__LIB_NONE, &slot, root(t)), n, count);
    t->in_hook = 0;
}

/* jemalloc's executable segments, from the object that holds mallocx. */
static int find_jemalloc(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    uintptr_t base = *(const uintptr_t *)arg;
    if (info->dlpi_addr != base)
        return 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
        je_lo = je_lo == 0 || lo < je_lo ? lo : je_lo;
        je_hi = hi > je_hi ? hi : je_hi;
    }
    return 1;
}

bool tly_stacks_start(void)
{
    if (tly__stacks_engine)
        return true;
    const char *v = tly__getenv("TALLY_PROFILE_STACKS");
    if ((v && strcmp(v, "0") == 0) || tly__stacks_on)
        return false; /* off, or the preload's (one user of the stacks a process) */
    Dl_info info;
    if (dladdr((void *)mallocx, &info) == 0 || info.dli_fbase == NULL)
        return false;
    uintptr_t base = (uintptr_t)info.dli_fbase;
    dl_iterate_phdr(find_jemalloc, &base);
    if (je_hi == 0)
        return false;
    tly__stacks_start(&ops);
    atomic_store_explicit(&tly__lib_of, alloc_stack, memory_order_release);
    tly__stacks_engine = true;
    return true;
}

void tly_stacks_window_open(void)
{
    if (!tly__stacks_engine)
        return;
    tly__stacks_now(&before);
    tly__stacks_cost(&window.taken[0], &window.taken_ns[0]);
    closed = false;
}

void tly_stacks_window_close(void)
{
    if (!tly__stacks_engine)
        return;
    tly__stacks_at_peak(&at_peak);
    tly__stacks_now(&now);
    window = (struct tly__stacks_window){&before,
                                         &at_peak,
                                         &now,
                                         tly__stacks_count(),
                                         tly__stacks_dropped(),
                                         {window.taken[0], 0},
                                         {window.taken_ns[0], 0}};
    tly__stacks_cost(&window.taken[1], &window.taken_ns[1]);
    closed = true;
}

char *tly_stacks_json(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL)
        return NULL;
    fputs("{\n", f);
    tly__stacks_emit(f, tly__stacks_engine && closed ? &window : NULL);
    fputs("\n}\n", f);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}
