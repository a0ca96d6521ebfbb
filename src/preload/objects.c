/*
 * The process's shared objects: where their code lies, what they are called, which library slot
 * they are charged to; and the bounded unwind that finds, for a large block or a copy, the first
 * frame outside the plumbing (libc, jemalloc, libstdc++, libgcc_s, ld.so and this preload).
 *
 * An interpreter (python3.x, libpython, node) is a runtime: an extension that asks it for memory
 * through its C API (numcodecs' PyBytes_FromStringAndSize for a compressed chunk) is charged for it,
 * when its frame lies within RUNTIME_DEPTH frames above the interpreter's first; the interpreter is
 * charged when none does (its own objects, pure Python code).
 *
 * This runs inside the allocation hooks: static storage only, no malloc. The code ranges come from
 * dl_iterate_phdr and are rebuilt when an address misses them and the loader has added or removed
 * objects since (Python imports its extension modules late). A rebuild fills the table nobody
 * reads, then swaps it in; a thread that finds a rebuild under way takes the miss instead of
 * waiting (a thread inside dlopen may hold the loader's lock and be allocating).
 */
#include <dlfcn.h>
#include <link.h>
#include <string.h>
#include <unwind.h>

#include <jemalloc/jemalloc.h>

#include "preload/preload.h"
#include "preload/stacks.h"

#define MAX_RANGES 1024
#define POOL_BYTES (96 * 1024)
#define MAX_DEPTH 48
#define RUNTIME_DEPTH 8
#define NAME_CAP 64
#define PATH_CAP 512

enum kind { K_MISS = -1, K_LIB, K_PLUMBING, K_SELF, K_JEMALLOC, K_RUNTIME };

struct range {
    uintptr_t lo, hi; /* one executable segment */
    uintptr_t base;   /* the object's load address (dlpi_addr) */
    uint32_t path;    /* offset into the table's pool */
    uint8_t kind;
    uint8_t slot; /* TLY__LIB_NONE until the object is first charged */
};

struct table {
    size_t n, pool_used;
    unsigned long long adds, subs; /* the loader's counters when it was built */
    struct range r[MAX_RANGES];
    char pool[POOL_BYTES];
};

static struct table tables[2];
static struct table *cur;              /* guarded by mu, as are the slots cached in it */
static _Atomic unsigned table_gen = 1; /* bumped when cur changes: the threads' copy caches go stale */
static tly__spin mu = TLY__SPIN_INIT;
static atomic_flag building = ATOMIC_FLAG_INIT;

/* mu is held by this thread: a copy made by a signal handler that interrupted it (every copy is
 * looked up now, however small) must not spin on the lock its own thread holds. */
static __thread bool holding_mu __attribute__((tls_model("initial-exec")));

static void lock_mu(void)
{
    tly__spin_lock(&mu);
    holding_mu = true;
}

static void unlock_mu(void)
{
    holding_mu = false;
    tly__spin_unlock(&mu);
}

static char slot_names[TLY__LIB_MAX][NAME_CAP];
static char slot_paths[TLY__LIB_MAX][PATH_CAP];

static uintptr_t je_lo, je_hi, self_lo, self_hi;

static bool in_segments(const struct dl_phdr_info *info, uintptr_t a)
{
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && a >= lo && a < lo + ph->p_memsz)
            return true;
    }
    return false;
}

/* An object's path; the executable has none in the loader's list. */
static const char *object_path(const struct dl_phdr_info *info)
{
    const char *path = info->dlpi_name;
    return path && *path ? path : tly__pl_exe[0] ? tly__pl_exe : "[executable]";
}

static int add_object(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct table *t = arg;
    t->adds = info->dlpi_adds;
    t->subs = info->dlpi_subs;
    const char *path = object_path(info);
    enum kind k = K_LIB;
    if (in_segments(info, (uintptr_t)&tly__obj_boot))
        k = K_SELF;
    else if (in_segments(info, (uintptr_t)&mallctl))
        k = K_JEMALLOC;
    else if (tly__obj_plumbing(path))
        k = K_PLUMBING;
    else if (tly__obj_runtime(path))
        k = K_RUNTIME;
    size_t len = strlen(path);
    if (len >= PATH_CAP)
        len = PATH_CAP - 1;
    if (t->pool_used + len + 1 > POOL_BYTES)
        return 0; /* out of room: its addresses will miss, and be charged as [unknown] */
    uint32_t off = (uint32_t)t->pool_used;
    tly__obj_copy_str(t->pool + off, len + 1, path, len);
    t->pool_used += len + 1;
    for (int i = 0; i < info->dlpi_phnum && t->n < MAX_RANGES; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        t->r[t->n++] = (struct range){lo, lo + ph->p_memsz, info->dlpi_addr, off, (uint8_t)k, TLY__LIB_NONE};
    }
    return 0;
}

struct loaded {
    char (*names)[NAME_CAP];
    size_t n, cap;
};

static int add_loaded(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct loaded *l = arg;
    const char *path = object_path(info);
    char name[NAME_CAP];
    tly__obj_short_name(path, name, sizeof name);
    if (name[0] == '\0' || strncmp(name, "linux-vdso", 10) == 0)
        return 0;
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->names[i], name) == 0)
            return 0;
    if (l->n < l->cap)
        tly__obj_copy_str(l->names[l->n++], NAME_CAP, name, strlen(name));
    return 0;
}

size_t tly__obj_loaded(char (*out)[64], size_t cap)
{
    _Static_assert(NAME_CAP == 64, "tly__obj_loaded's names are NAME_CAP bytes");
    struct loaded l = {out, 0, cap};
    dl_iterate_phdr(add_loaded, &l);
    return l.n;
}

static void build(struct table *t)
{
    t->n = 0;
    t->pool_used = 0;
    dl_iterate_phdr(add_object, t);
    for (size_t i = 1; i < t->n; i++) { /* insertion sort by address: a few hundred ranges, rarely */
        struct range x = t->r[i];
        size_t j = i;
        for (; j > 0 && t->r[j - 1].lo > x.lo; j--)
            t->r[j] = t->r[j - 1];
        t->r[j] = x;
    }
}

static int read_gen(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    unsigned long long *g = arg;
    g[0] = info->dlpi_adds;
    g[1] = info->dlpi_subs;
    return 1; /* the first object says it: stop */
}

static int refresh(void);

/* The ranges of @p old missing from @p now (both sorted): objects unloaded, logged for the stacks'
 * report (an address may be another object's by then). Only the builder reads @p old here. */
static void log_gone(const struct table *old, const struct table *now, unsigned gen)
{
    size_t j = 0;
    for (size_t i = 0; i < old->n; i++) {
        const struct range *r = &old->r[i];
        while (j < now->n && now->r[j].lo < r->lo)
            j++;
        bool kept = j < now->n && now->r[j].lo == r->lo && now->r[j].hi == r->hi &&
                    strcmp(now->pool + now->r[j].path, old->pool + r->path) == 0;
        if (!kept)
            tly__gone_add(r->lo, r->hi, r->base, old->pool + r->path, gen);
    }
}

unsigned tly__obj_gen(void)
{
    return atomic_load_explicit(&table_gen, memory_order_relaxed);
}

void tly__obj_sync(void)
{
    refresh();
}

/* Rebuild the table when the loader's objects changed: REFRESH_CHANGED, REFRESH_SAME (the table is the
 * loader's list), or REFRESH_BUSY (another thread is rebuilding). */
enum { REFRESH_BUSY = -1, REFRESH_SAME, REFRESH_CHANGED };

static int refresh(void)
{
    if (atomic_flag_test_and_set_explicit(&building, memory_order_acquire))
        return REFRESH_BUSY;
    unsigned long long g[2] = {0, 0};
    dl_iterate_phdr(read_gen, g);
    lock_mu();
    struct table *c = cur;
    bool changed = c == NULL || c->adds != g[0] || c->subs != g[1];
    unlock_mu();
    if (changed) {
        struct table *t = c == &tables[0] ? &tables[1] : &tables[0];
        build(t);
        lock_mu();
        cur = t;
        unsigned gen = atomic_fetch_add_explicit(&table_gen, 1, memory_order_relaxed) + 1;
        unlock_mu();
        if (c)
            log_gone(c, t, gen);
    }
    atomic_flag_clear_explicit(&building, memory_order_release);
    return changed ? REFRESH_CHANGED : REFRESH_SAME;
}

/* The slot of the object of range @p r (under mu): the slot of its short name, a new one, or OTHER. */
static unsigned slot_for(struct table *t, struct range *r)
{
    if (r->slot != TLY__LIB_NONE)
        return r->slot;
    char name[NAME_CAP];
    const char *path = t->pool + r->path;
    tly__obj_short_name(path, name, sizeof name);
    unsigned n = atomic_load_explicit(&tly__lib_count, memory_order_relaxed);
    for (unsigned i = TLY__SLOT_FIRST_LIB; i < n; i++)
        if (strcmp(slot_names[i], name) == 0)
            return r->slot = (uint8_t)i;
    if (n >= TLY__LIB_MAX)
        return r->slot = TLY__SLOT_OTHER;
    tly__obj_copy_str(slot_names[n], NAME_CAP, name, strlen(name));
    tly__obj_copy_str(slot_paths[n], PATH_CAP, path, strlen(path));
    atomic_store_explicit(&tly__lib_count, n + 1, memory_order_release);
    return r->slot = (uint8_t)n;
}

static int classify_locked(uintptr_t a, unsigned *slot)
{
    struct table *t = cur;
    if (t == NULL || t->n == 0)
        return K_MISS;
    size_t lo = 0, hi = t->n; /* the last range starting at or below a */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->r[mid].lo <= a)
            lo = mid;
        else
            hi = mid;
    }
    struct range *r = &t->r[lo];
    if (a < r->lo || a >= r->hi)
        return K_MISS;
    if (r->kind == K_LIB || r->kind == K_RUNTIME)
        *slot = slot_for(t, r);
    return r->kind;
}

static int classify(uintptr_t a, unsigned *slot)
{
    lock_mu();
    int k = classify_locked(a, slot);
    unlock_mu();
    if (k == K_MISS && refresh() == REFRESH_CHANGED) {
        lock_mu();
        k = classify_locked(a, slot);
        unlock_mu();
    }
    return k;
}

struct walk {
    unsigned slot, runtime_slot;
    int depth, runtime_left; /* runtime_left > 0: frames left to look for an extension above the interpreter */
};

/* One frame of the walk: true when it found the slot (or gave up). */
static bool step_ip(struct walk *w, uintptr_t ip)
{
    if (ip == 0 || ++w->depth > MAX_DEPTH)
        return true;
    unsigned slot = TLY__SLOT_UNKNOWN;
    int k = classify(ip - 1, &slot); /* ip - 1: inside the call, even when it is a function's last */
    if (k == K_LIB || (k == K_MISS && w->runtime_left == 0)) {
        w->slot = slot;
        return true;
    }
    if (k == K_RUNTIME && w->runtime_left == 0) {
        w->runtime_slot = slot;
        w->runtime_left = RUNTIME_DEPTH;
    } else if (w->runtime_left > 0 && --w->runtime_left == 0) {
        return true;
    }
    return false;
}

static _Unwind_Reason_Code step(struct _Unwind_Context *ctx, void *arg)
{
    return step_ip(arg, (uintptr_t)_Unwind_GetIP(ctx)) ? _URC_END_OF_STACK : _URC_NO_REASON;
}

unsigned tly__obj_frames_slot(const uintptr_t *ips, unsigned n)
{
    struct walk w = {TLY__SLOT_UNKNOWN, TLY__SLOT_UNKNOWN, 0, 0};
    for (unsigned i = 0; i < n && !step_ip(&w, ips[i]); i++)
        ;
    return w.slot != TLY__SLOT_UNKNOWN ? w.slot : w.runtime_slot;
}

/* The slot of the first frame outside the plumbing (an interpreter's caller when it has one nearby).
 * libgcc's unwinder reads .eh_frame (no frame pointers needed) and, warmed up by tly__obj_boot, does
 * not allocate. */
static unsigned unwind_slot(void)
{
    struct walk w = {TLY__SLOT_UNKNOWN, TLY__SLOT_UNKNOWN, 0, 0};
    _Unwind_Backtrace(step, &w);
    return w.slot != TLY__SLOT_UNKNOWN ? w.slot : w.runtime_slot;
}

unsigned tly__obj_alloc_slot(size_t usize)
{
    if (usize < atomic_load_explicit(&tly__pl_large, memory_order_relaxed))
        return TLY__LIB_NONE;
    return tly__stacks_on ? tly__stacks_alloc_slot() : unwind_slot();
}

unsigned tly__obj_copy_slot(uintptr_t ra)
{
    unsigned slot = TLY__SLOT_UNKNOWN;
    if (holding_mu)
        return TLY__SLOT_UNKNOWN; /* a signal handler's copy, on a thread inside the table's lock */
    switch (classify(ra - 1, &slot)) {
    case K_SELF:
        return TLY__LIB_NONE;
    case K_LIB:
    case K_MISS:
        return slot;
    default: /* jemalloc's realloc, libstdc++'s std::copy, the interpreter: charge who called them */
        return unwind_slot();
    }
}

/*
 * Every copy's slot, by its return address alone: a few-entry cache per thread of the code ranges
 * last met, before the table (a binary search under mu). No unwind: a copy made in the plumbing or
 * the interpreter is charged to that object (libstdc++, libjemalloc, python3.11); the large ones
 * are charged past it (tly__obj_copy_slot). An address in no object (JIT code) is cached as the gap
 * it lies in, and looked up again every GAP_USES copies, in case an object was loaded there since.
 */
#define CACHE_WAYS 4
#define GAP_USES 1024u

struct cached {
    uintptr_t lo, len;            /* [lo, lo + len) */
    unsigned gen, slot, gap_left; /* gap_left: 0 for an object's range */
};

static __thread struct {
    struct cached e[CACHE_WAYS];
    unsigned next;
} cache __attribute__((tls_model("initial-exec")));

/* Under mu: the range holding @p a, or its gap between ranges ([lo, hi), NULL returned). */
static struct range *find_locked(uintptr_t a, uintptr_t *lo, uintptr_t *hi)
{
    struct table *t = cur;
    *lo = 0;
    *hi = UINTPTR_MAX;
    if (t == NULL || t->n == 0)
        return NULL;
    size_t l = 0, h = t->n;
    while (h - l > 1) {
        size_t mid = l + (h - l) / 2;
        if (t->r[mid].lo <= a)
            l = mid;
        else
            h = mid;
    }
    struct range *r = &t->r[l];
    if (a >= r->lo && a < r->hi)
        return r;
    if (a < r->lo) { /* below the first range */
        *hi = r->lo;
    } else {
        *lo = r->hi;
        *hi = l + 1 < t->n ? t->r[l + 1].lo : UINTPTR_MAX;
    }
    return NULL;
}

static __attribute__((noinline)) unsigned copy_slot_fill(uintptr_t a)
{
    if (holding_mu)
        return TLY__SLOT_UNKNOWN; /* a signal handler's copy, on a thread inside the table's lock */
    uintptr_t lo, hi;
    unsigned slot = TLY__SLOT_UNKNOWN, gen = 0;
    int fresh = REFRESH_SAME;
    for (int pass = 0; pass < 2; pass++) {
        lock_mu();
        gen = atomic_load_explicit(&table_gen, memory_order_relaxed);
        struct range *r = find_locked(a, &lo, &hi);
        if (r) {
            slot = r->kind == K_SELF ? TLY__LIB_NONE : slot_for(cur, r);
            lo = r->lo;
            hi = r->hi;
        }
        unlock_mu();
        if (r) {
            fresh = REFRESH_SAME;
            break;
        }
        if (pass || (fresh = refresh()) != REFRESH_CHANGED)
            break;
    }
    /* A gap is cached only while the table is known to be the loader's list: not while another thread
     * rebuilds it (an object just loaded there would be charged to [unknown] for GAP_USES copies). */
    if (fresh != REFRESH_BUSY) {
        cache.e[cache.next] = (struct cached){lo, hi - lo, gen, slot, slot == TLY__SLOT_UNKNOWN ? GAP_USES : 0};
        cache.next = (cache.next + 1) % CACHE_WAYS;
    }
    return slot;
}

unsigned tly__obj_copy_slot_fast(uintptr_t ra)
{
    uintptr_t a = ra - 1;
    if (a - self_lo < self_hi - self_lo)
        return TLY__LIB_NONE; /* the preload's own (a name copied under mu: never look it up) */
    unsigned gen = atomic_load_explicit(&table_gen, memory_order_relaxed);
    for (int i = 0; i < CACHE_WAYS; i++) {
        struct cached *e = &cache.e[i];
        if (a - e->lo < e->len && e->gen == gen) {
            if (TLY__LIKELY(e->gap_left == 0))
                return e->slot;
            if (--e->gap_left > 0)
                return e->slot;
            e->gen = 0; /* look again */
            break;
        }
    }
    return copy_slot_fill(a);
}

bool tly__obj_in_jemalloc(uintptr_t ra)
{
    return ra >= je_lo && ra < je_hi;
}

bool tly__obj_in_allocator(uintptr_t ra)
{
    return (ra >= je_lo && ra < je_hi) || (ra >= self_lo && ra < self_hi);
}

const char *tly__slot_name(unsigned slot)
{
    return slot < TLY__LIB_MAX ? slot_names[slot] : "?";
}

const char *tly__slot_path(unsigned slot)
{
    return slot < TLY__LIB_MAX ? slot_paths[slot] : "";
}

int tly__obj_boot(void)
{
    static const char *const fixed[TLY__SLOT_FIRST_LIB] = {
        [TLY__SLOT_MMAP] = "mmap", [TLY__SLOT_UNKNOWN] = "[unknown]", [TLY__SLOT_OTHER] = "[other]"};
    for (unsigned i = 0; i < TLY__SLOT_FIRST_LIB; i++)
        tly__obj_copy_str(slot_names[i], NAME_CAP, fixed[i], strlen(fixed[i]));
    refresh();
    lock_mu();
    const struct table *t = cur;
    for (size_t i = 0; t && i < t->n; i++) {
        const struct range *r = &t->r[i];
        uintptr_t *lo = r->kind == K_JEMALLOC ? &je_lo : r->kind == K_SELF ? &self_lo : NULL;
        uintptr_t *hi = r->kind == K_JEMALLOC ? &je_hi : r->kind == K_SELF ? &self_hi : NULL;
        if (lo == NULL)
            continue;
        if (*lo == 0 || r->lo < *lo)
            *lo = r->lo;
        if (r->hi > *hi)
            *hi = r->hi;
    }
    unlock_mu();
    atomic_store_explicit(&tly__lib_count, TLY__SLOT_FIRST_LIB, memory_order_release);
    /* The unwinder's first call binds its symbols and sets up its tables: do it here, not in a hook. */
    (void)unwind_slot();
    atomic_store_explicit(&tly__lib_of, tly__obj_alloc_slot, memory_order_release);
    return je_hi > je_lo ? 0 : -1;
}
