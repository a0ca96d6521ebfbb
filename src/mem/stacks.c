/*
 * Call stacks, taken and interned inside the hooks (see stacks.h), for the preload and the engine.
 *
 * A stack is a list of words, innermost first: native return addresses (libgcc's unwind, STACK_DEPTH
 * of them at most), where a frame is the interpreter's _PyEval_EvalFrameDefault the Python frames it
 * runs (TAG | code object, instruction index) in its place, and for the engine a root word (its stage)
 * last. The tracker's own frames and jemalloc's inner ones are left off the leaf (struct tly__leaf): a
 * stack ends in the allocator's entry (malloc) or in the copy's caller.
 *
 * Interned in static storage (no malloc here): a table of stacks, a pool of their words, an index by
 * hash. One spinlock guards interning; a thread that finds it held by itself (a signal handler that
 * interrupted it) takes id 0, as does a stack the table has no room for.
 *
 * Live bytes by stack, at the peak: each stack keeps its live bytes and the peak epoch (counters.c's
 * count of peaks) of its last change. A change after a newer peak first saves the live bytes as the
 * stack's bytes at the peak; a stack unchanged since the latest peak held then what it holds now. So
 * no table is walked at a peak. Changes are atomic but the save and the add are two steps: two
 * threads moving the same stack across a peak can misplace one block's bytes (as the libraries'
 * split of the peak can, read while other threads move).
 */
#include <pthread.h>
#include <string.h>
#include <unwind.h>

#include "mem/internal.h"
#include "mem/stacks.h"

#define WORDS_MAX (TLY__STACKS_MAX * 24)
#define INDEX_CAP (TLY__STACKS_MAX * 4) /* a power of two */
#define PY_MAX 64
#define CAP_WORDS (TLY__STACK_DEPTH + 2 * PY_MAX + 1)

struct stack {
    _Atomic int64_t live, blocks;
    _Atomic uint32_t epoch; /* tly__peak_epoch at the last change */
    int64_t at_peak, at_peak_blocks;
    _Atomic uint64_t copy_bytes, copies, alloc_bytes, allocs;
    uint64_t hash;
    unsigned gen; /* the objects table's generation when it was taken */
    uint32_t off;
    uint16_t n;
    uint8_t slot;
    bool truncated;
};

bool tly__stacks_on;
static const struct tly__stacks_ops *ops;
static struct stack stacks[TLY__STACKS_MAX];
static uintptr_t words[WORDS_MAX];
static uint32_t index_[INDEX_CAP];
static _Atomic unsigned nstacks = 1; /* id 0: no room */
static size_t words_used;
static _Atomic uint64_t dropped;
static _Atomic uint64_t captures, capture_ns; /* what taking stacks cost: how many, how long in all */
static tly__spin mu = TLY__SPIN_INIT;
static __thread bool holding __attribute__((tls_model("initial-exec")));

struct capture {
    uintptr_t ip[TLY__STACK_DEPTH];
    unsigned n;
    bool truncated;
    struct tly__leaf leaf; /* what is left of the leaf rule: ra is 0 once it was met */
    bool je_seen;
    uintptr_t je_last; /* the outermost jemalloc frame met before the first frame outside it */
};

static _Unwind_Reason_Code cap_step(struct _Unwind_Context *ctx, void *arg)
{
    struct capture *c = arg;
    uintptr_t ip = (uintptr_t)_Unwind_GetIP(ctx);
    if (ip == 0)
        return _URC_END_OF_STACK;
    if (c->n == 0) {
        if (c->leaf.ra != 0) { /* the tracker's frames, up to its caller's */
            if (ip != c->leaf.ra)
                return _URC_NO_REASON;
            c->leaf.ra = 0;
        }
        bool je = ops->in_jemalloc && ops->in_jemalloc(ip - 1);
        if (je || (ops->in_allocator && ops->in_allocator(ip - 1)) || (c->leaf.through_allocator && !c->je_seen)) {
            if (je) {
                c->je_seen = true;
                c->je_last = ip;
            }
            return _URC_NO_REASON;
        }
        if (c->je_last)
            c->ip[c->n++] = c->je_last;
    }
    if (c->n == TLY__STACK_DEPTH) {
        c->truncated = true;
        return _URC_END_OF_STACK;
    }
    c->ip[c->n++] = ip;
    return _URC_NO_REASON;
}

/* The native frames joined with the thread's Python frames into @p out (innermost first). */
static unsigned join(const struct capture *c, uintptr_t *out)
{
    struct tly__py_frame py[PY_MAX];
    unsigned npy = ops->py_active && ops->py_active() ? ops->py_frames(py, PY_MAX) : 0, k = 0, p = 0;
    for (unsigned i = 0; i < c->n; i++) {
        if (p < npy && ops->py_is_eval(c->ip[i] - 1)) {
            for (; p < npy; p++) { /* this evaluation's frames, down to the one it was entered with */
                out[k++] = TLY__STACK_PY_TAG | py[p].code;
                out[k++] = py[p].lasti;
                if (py[p].entry) {
                    p++;
                    break;
                }
            }
            continue;
        }
        out[k++] = c->ip[i];
    }
    for (; p < npy && c->truncated; p++) { /* the unwind stopped short: the outer Python frames still tell */
        out[k++] = TLY__STACK_PY_TAG | py[p].code;
        out[k++] = py[p].lasti;
    }
    return k;
}

static uint64_t hash_words(const uintptr_t *w, unsigned n, bool truncated)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ n ^ ((uint64_t)truncated << 32);
    for (unsigned i = 0; i < n; i++) {
        h ^= (uint64_t)w[i];
        h *= 0xff51afd7ed558ccdULL;
        h ^= h >> 33;
    }
    return h;
}

/* Under mu: the id of stack @p w, interned if new (0 when there is no room). */
static unsigned intern_locked(const uintptr_t *w, unsigned n, bool truncated, unsigned slot)
{
    uint64_t h = hash_words(w, n, truncated);
    size_t i = (size_t)h & (INDEX_CAP - 1);
    for (; index_[i] != 0; i = (i + 1) & (INDEX_CAP - 1)) {
        struct stack *s = &stacks[index_[i]];
        if (s->hash == h && s->n == n && s->truncated == truncated && memcmp(&words[s->off], w, n * sizeof *w) == 0)
            return index_[i];
    }
    unsigned id = atomic_load_explicit(&nstacks, memory_order_relaxed);
    if (id >= TLY__STACKS_MAX || words_used + n > WORDS_MAX)
        return 0;
    struct stack *s = &stacks[id];
    s->hash = h;
    s->off = (uint32_t)words_used;
    s->n = (uint16_t)n;
    s->slot = (uint8_t)slot;
    s->truncated = truncated;
    s->gen = ops->gen ? ops->gen() : 0;
    s->epoch = atomic_load_explicit(&tly__peak_epoch, memory_order_relaxed);
    for (unsigned k = 0; k < n; k++) { /* a new stack's Python frames are named now, while they run */
        words[words_used + k] = w[k];
        if ((w[k] & TLY__STACK_PY_TAG) && k + 1 < n) {
            ops->py_remember(w[k] & ~TLY__STACK_PY_TAG, w[k + 1]);
            words[words_used + k + 1] = w[k + 1];
            k++;
        }
    }
    words_used += n;
    index_[i] = id;
    atomic_store_explicit(&nstacks, id + 1, memory_order_release);
    return id;
}

unsigned tly__stacks_take(const struct tly__leaf *leaf, unsigned slot_given, unsigned *slot, uintptr_t root)
{
    if (holding)
        return 0; /* a signal handler on a thread that holds mu */
    uint64_t t0 = tly__now_ns();
    struct capture c;
    memset(&c, 0, sizeof c);
    c.leaf = *leaf;
    _Unwind_Backtrace(cap_step, &c);
    *slot = slot_given != TLY__LIB_NONE || ops->frames_slot == NULL ? slot_given : ops->frames_slot(c.ip, c.n);
    uintptr_t w[CAP_WORDS];
    unsigned n = join(&c, w);
    if (root != 0)
        w[n++] = root;
    tly__spin_lock(&mu);
    holding = true;
    unsigned id = intern_locked(w, n, c.truncated, *slot);
    holding = false;
    tly__spin_unlock(&mu);
    if (id == 0)
        atomic_fetch_add_explicit(&dropped, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&captures, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&capture_ns, tly__now_ns() - t0, memory_order_relaxed);
    return id;
}

void tly__stacks_copied(unsigned id, uint64_t n, uint64_t count)
{
    struct stack *s = &stacks[id < TLY__STACKS_MAX ? id : 0];
    atomic_fetch_add_explicit(&s->copy_bytes, n, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->copies, count, memory_order_relaxed);
}

/* A large block's bytes on its stack (see the top of the file); a new block or a growth is allocated
 * bytes too. */
void tly__stacks_move(uint32_t id, int64_t d, int64_t blocks)
{
    if (id >= TLY__STACKS_MAX)
        return;
    struct stack *s = &stacks[id];
    uint32_t e = atomic_load_explicit(&tly__peak_epoch, memory_order_relaxed);
    uint32_t was = atomic_load_explicit(&s->epoch, memory_order_relaxed);
    if (was != e && atomic_compare_exchange_strong(&s->epoch, &was, e)) {
        s->at_peak = atomic_load_explicit(&s->live, memory_order_relaxed);
        s->at_peak_blocks = atomic_load_explicit(&s->blocks, memory_order_relaxed);
    }
    atomic_fetch_add_explicit(&s->live, d, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->blocks, blocks, memory_order_relaxed);
    if (d > 0 && blocks >= 0) {
        atomic_fetch_add_explicit(&s->alloc_bytes, (uint64_t)d, memory_order_relaxed);
        atomic_fetch_add_explicit(&s->allocs, (uint64_t)blocks, memory_order_relaxed);
    }
}

static void read_all(struct tly__stack_counts *out, bool at_peak)
{
    unsigned n = tly__stacks_count();
    uint32_t e = atomic_load_explicit(&tly__peak_epoch, memory_order_relaxed);
    for (unsigned i = 0; i < n; i++) {
        struct stack *s = &stacks[i];
        bool changed_since = atomic_load_explicit(&s->epoch, memory_order_relaxed) == e;
        if (at_peak && changed_since) {
            out->bytes[i] = s->at_peak;
            out->blocks[i] = s->at_peak_blocks;
        } else {
            out->bytes[i] = atomic_load_explicit(&s->live, memory_order_relaxed);
            out->blocks[i] = atomic_load_explicit(&s->blocks, memory_order_relaxed);
        }
        out->copy_bytes[i] = atomic_load_explicit(&s->copy_bytes, memory_order_relaxed);
        out->copies[i] = atomic_load_explicit(&s->copies, memory_order_relaxed);
        out->alloc_bytes[i] = atomic_load_explicit(&s->alloc_bytes, memory_order_relaxed);
        out->allocs[i] = atomic_load_explicit(&s->allocs, memory_order_relaxed);
    }
    for (unsigned i = n; i < TLY__STACKS_MAX; i++) { /* stacks interned since read as empty */
        out->bytes[i] = out->blocks[i] = 0;
        out->copy_bytes[i] = out->copies[i] = out->alloc_bytes[i] = out->allocs[i] = 0;
    }
}

void tly__stacks_now(struct tly__stack_counts *out)
{
    read_all(out, false);
}

void tly__stacks_at_peak(struct tly__stack_counts *out)
{
    read_all(out, true);
}

unsigned tly__stacks_count(void)
{
    return atomic_load_explicit(&nstacks, memory_order_acquire);
}

void tly__stacks_cost(uint64_t *n, uint64_t *ns)
{
    *n = atomic_load_explicit(&captures, memory_order_relaxed);
    *ns = atomic_load_explicit(&capture_ns, memory_order_relaxed);
}

uint64_t tly__stacks_dropped(void)
{
    return atomic_load_explicit(&dropped, memory_order_relaxed);
}

const uintptr_t *tly__stack_words(unsigned id, unsigned *n, unsigned *slot, bool *truncated, unsigned *gen)
{
    const struct stack *s = &stacks[id < TLY__STACKS_MAX ? id : 0];
    *gen = s->gen;
    *n = s->n;
    *slot = id == 0 ? TLY__LIB_NONE : s->slot;
    *truncated = s->truncated;
    return &words[s->off];
}

/* A fork's child has only the thread that forked: a lock another thread held is nobody's now (an
 * intern it left half done is past nstacks, never read). */
static void forked_child(void)
{
    holding = false;
    tly__spin_unlock(&mu);
}

const struct tly__stacks_ops *tly__stacks_ops(void)
{
    return ops;
}

void tly__stacks_start(const struct tly__stacks_ops *o)
{
    ops = o;
    /* The unwinder's first call binds its symbols and sets up its tables: here, not in a hook. */
    struct capture c;
    memset(&c, 0, sizeof c);
    _Unwind_Backtrace(cap_step, &c);
    pthread_atfork(NULL, NULL, forked_child);
    tly__stacks_on = true;
    atomic_store_explicit(&tly__stack_move, tly__stacks_move, memory_order_release);
}
