/*
 * The measured windows of one process (docs/impl-protocol.md, "Marks"): the whole-process window,
 * opened by the constructor (and again in a fork's child, for the child), and any number of named
 * windows the marks open inside it, one after another or nested (WIN_MAX open at once).
 *
 * src/mem keeps one process-wide peak (and one timeline), restarted by tly_mem_reset_peaks() when a
 * window opens. So that an enclosing window keeps its own figure, every open window carries the
 * peak figures of the counters' earlier stretches: before a restart, the counters' peak (with its
 * split by stage and library) is folded into each open window's carried figures (the higher peak
 * wins, own peaks are the maximum); a window that closes folds its carried figures into the
 * counters' last stretch. The counters are not restarted when a window closes: what they held since
 * the inner window opened is within every window still open. The timeline is not carried: an
 * enclosing window's timeline starts where the last window inside it opened ("timeline_t0_ns").
 *
 * Closing a window takes every figure first (into static storage) and only then writes the result,
 * whose allocations would otherwise be in the figures.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "preload/preload.h"
#include "preload/stacks.h"

#define WIN_MAX 8
#define TL_CAP (TLY_TIMELINE_CAP + 2)

struct carried {
    bool set;
    struct tly_mem_snapshot s; /* only the peak figures are kept */
    struct tly__lib_counters l[TLY__LIB_MAX];
};

struct window {
    bool marked;
    char name[64], op[64];
    uint64_t array_bytes;
    unsigned seq;
    uint64_t t0_ns;
    struct tly_mem_snapshot before;
    struct tly__lib_counters lb[TLY__LIB_MAX];
    struct tly_time_snapshot time_before;
    uint64_t stk_taken, stk_taken_ns;
    struct carried c;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct window win[WIN_MAX];
static unsigned depth;    /* open windows; win[0] is the whole process's */
static pid_t owner;       /* the process whose windows they are: a fork's child opens its own */
static unsigned next_seq; /* the next window's number in this process image */
static unsigned ignored;  /* ends with no window to close, begins past WIN_MAX */
static uint64_t tl_t0_ns; /* when the timeline last restarted */
static bool out_done;     /* this process wrote a marked window to TALLY_PROFILE_OUT */
static struct tly__figures fig;
static struct tly_mem_sample tl[TL_CAP];
static int64_t tl_lib[TL_CAP][TLY__LIB_MAX];
static struct tly_mem_snapshot scratch;
static struct tly__lib_counters scratch_l[TLY__LIB_MAX];
/* stacks (when on): each window's at its start, and at its carried peak; the closing window's */
static struct tly__stack_counts stk_before[WIN_MAX], stk_carried[WIN_MAX], stk_peak, stk_now;

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

/* Fold the peak figures of @p s and @p l (one stretch of the counters) into @p c, and the stacks at the
 * counters' peak into @p sc when it is higher. */
static void fold(struct carried *c, const struct tly_mem_snapshot *s, const struct tly__lib_counters *l,
                 struct tly__stack_counts *sc)
{
    bool higher = !c->set || s->peak_bytes > c->s.peak_bytes;
    if (higher && tly__stacks_on)
        tly__stacks_at_peak(sc);
    for (int i = 0; i < TLY_NSTAGES; i++) {
        c->s.stage[i].peak_bytes =
            c->set ? max64(c->s.stage[i].peak_bytes, s->stage[i].peak_bytes) : s->stage[i].peak_bytes;
        if (higher)
            c->s.stage[i].at_peak_bytes = s->stage[i].at_peak_bytes;
    }
    for (unsigned i = 0; i < TLY__LIB_MAX; i++) {
        c->l[i].peak_bytes = c->set ? max64(c->l[i].peak_bytes, l[i].peak_bytes) : l[i].peak_bytes;
        if (higher)
            c->l[i].at_peak_bytes = l[i].at_peak_bytes;
    }
    if (higher) {
        c->s.peak_bytes = s->peak_bytes;
        c->s.peak_time_ns = s->peak_time_ns;
    }
    /* the reserved peak is a peak of its own: the highest of the stretches, whenever it was */
    c->s.reserved_peak_bytes =
        c->set ? max64(c->s.reserved_peak_bytes, s->reserved_peak_bytes) : s->reserved_peak_bytes;
    c->set = true;
}

/* The window's peak figures into @p s and @p l (the counters at its close): its carried ones and theirs. */
static void carry_into(struct carried *c, struct tly_mem_snapshot *s, struct tly__lib_counters *l,
                       struct tly__stack_counts *sc)
{
    if (!c->set)
        return;
    fold(c, s, l, sc);
    for (int i = 0; i < TLY_NSTAGES; i++) {
        s->stage[i].peak_bytes = c->s.stage[i].peak_bytes;
        s->stage[i].at_peak_bytes = c->s.stage[i].at_peak_bytes;
    }
    for (unsigned i = 0; i < TLY__LIB_MAX; i++) {
        l[i].peak_bytes = c->l[i].peak_bytes;
        l[i].at_peak_bytes = c->l[i].at_peak_bytes;
    }
    s->peak_bytes = c->s.peak_bytes;
    s->peak_time_ns = c->s.peak_time_ns;
    s->reserved_peak_bytes = c->s.reserved_peak_bytes;
}

static void open_window(bool marked, const char *name, const char *op, uint64_t array_bytes)
{
    struct window *w = &win[depth];
    memset(w, 0, sizeof *w);
    w->marked = marked;
    snprintf(w->name, sizeof w->name, "%s", name ? name : "");
    snprintf(w->op, sizeof w->op, "%s", op ? op : "");
    w->array_bytes = array_bytes;
    w->seq = next_seq++;
    w->t0_ns = tly__now_ns();
    /* first: what writing it allocates is the enclosing windows', not this one's */
    tly__result_provisional(w->name, w->op, w->marked, depth, w->seq, w->t0_ns);
    if (depth > 0) { /* the open windows keep what the counters held so far */
        tly__snapshot_libs(&scratch, scratch_l);
        for (unsigned i = 0; i < depth; i++)
            fold(&win[i].c, &scratch, scratch_l, &stk_carried[i]);
    }
    depth++;
    tly_mem_reset_peaks();
    tl_t0_ns = tly__now_ns();
    tly__snapshot_libs(&w->before, w->lb);
    if (tly__stacks_on) {
        tly__stacks_now(&stk_before[depth - 1]);
        tly__stacks_cost(&w->stk_taken, &w->stk_taken_ns);
    }
    tly_time_snapshot(&w->time_before);
}

/* The figures of window @p at, as if it closed now, into fig (nothing is written or allocated). */
static void take(unsigned at, uint64_t output_bytes, const char *ended)
{
    struct window *w = &win[at];
    memset(&fig, 0, sizeof fig);
    fig.t1_ns = tly__now_ns();
    tly_time_snapshot(&fig.time_after);
    tly__snapshot_libs(&fig.after, fig.la);
    carry_into(&w->c, &fig.after, fig.la, &stk_carried[at]);
    if (tly__stacks_on) { /* the stacks at the carried peak, or at the counters' */
        if (!w->c.set)
            tly__stacks_at_peak(&stk_peak);
        tly__stacks_now(&stk_now);
        fig.stk_before = &stk_before[at];
        fig.stk_peak = w->c.set ? &stk_carried[at] : &stk_peak;
        fig.stk_now = &stk_now;
        fig.stk_n = tly__stacks_count();
        fig.stk_dropped = tly__stacks_dropped();
        fig.stk_taken[0] = w->stk_taken;
        fig.stk_taken_ns[0] = w->stk_taken_ns;
        tly__stacks_cost(&fig.stk_taken[1], &fig.stk_taken_ns[1]);
    }
    fig.nslots = atomic_load_explicit(&tly__lib_count, memory_order_acquire);
    fig.xc_ok = tly_mem_crosscheck(&fig.xc) == 0;
    size_t n = tly__timeline_read(tl, tl_lib, TL_CAP);
    fig.tl_n = n < TL_CAP ? n : TL_CAP;
    fig.tl = tl;
    fig.tl_lib = tl_lib;
    fig.tl_t0_ns = tl_t0_ns;
    fig.marked = w->marked;
    memcpy(fig.name, w->name, sizeof fig.name); /* a name, not payload */
    memcpy(fig.op, w->op, sizeof fig.op);       /* a name, not payload */
    fig.array_bytes = w->array_bytes;
    fig.seq = w->seq;
    fig.depth = at;
    fig.t0_ns = w->t0_ns;
    fig.before = w->before;
    memcpy(fig.lb, w->lb, sizeof fig.lb); /* counters, not payload */
    fig.time_before = w->time_before;
    fig.output_bytes = output_bytes;
    fig.ended = ended;
    fig.end_missing = w->marked && strcmp(ended, "end") != 0;
    fig.marks_ignored = ignored;
}

/* Close the innermost window into fig. */
static void close_window(uint64_t output_bytes, const char *ended)
{
    take(--depth, output_bytes, ended);
}

/* The closed window's result: in TALLY_PROFILE_DIR, and in TALLY_PROFILE_OUT as it always was (the
 * process's first marked window directly inside the whole-process one; the whole-process window of
 * the run's first process, when no mark wrote the file). */
static void write_closed(void)
{
    tly__result_write_dir(&fig);
    bool to_out = fig.marked ? fig.depth == 1 && !out_done : fig.depth == 0 && tly__pl_may_write_unmarked();
    if (to_out)
        tly__result_write_out(&fig);
    if (fig.marked && fig.depth == 1)
        out_done = true;
}

void tly__win_begin(const char *name, const char *op, uint64_t array_bytes)
{
    pthread_mutex_lock(&mu);
    if (owner == getpid() && depth < WIN_MAX)
        open_window(true, name && *name ? name : op, op, array_bytes);
    else
        ignored++;
    pthread_mutex_unlock(&mu);
}

/* The innermost open window named @p name (any marked one when NULL); 0 when none. */
static unsigned find(const char *name)
{
    for (unsigned i = depth; i > 1; i--)
        if (name == NULL || strcmp(win[i - 1].name, name) == 0)
            return i;
    return 0;
}

void tly__win_end(const char *name, uint64_t output_bytes)
{
    pthread_mutex_lock(&mu);
    unsigned at = owner == getpid() ? find(name && *name ? name : NULL) : 0;
    if (at == 0)
        ignored++;
    while (at > 0 && depth >= at) { /* windows opened inside the one ended close with it, and say so */
        bool it = depth == at;
        close_window(it ? output_bytes : 0, it ? "end" : "enclosing_end");
        write_closed();
    }
    pthread_mutex_unlock(&mu);
}

/* The process ends (@p how: "exit", "_exit"): every window of its own closes, innermost first. */
void tly__win_exit(const char *how, bool wait)
{
    if (!tly__result_anywhere())
        return; /* nowhere to write: no figures to take */
    if (wait)
        pthread_mutex_lock(&mu);
    else if (pthread_mutex_trylock(&mu) != 0)
        return; /* _exit while another thread writes, or from a handler that interrupted one: leave it */
    while (owner == getpid() && depth > 0) {
        close_window(0, how);
        write_closed();
    }
    pthread_mutex_unlock(&mu);
}

/*
 * The process execs: its windows end with this image (the new one opens its own). Each is written to
 * TALLY_PROFILE_DIR as it stands, "ended": "exec", innermost first, and stays open: when the exec
 * fails the program goes on, and a later close writes the same file again. A vfork's child is not
 * their owner: it touches nothing (it shares its parent's memory).
 */
void tly__win_exec(void)
{
    if (owner != getpid() || !tly__result_dir_set())
        return;
    pthread_mutex_lock(&mu);
    for (unsigned i = depth; i-- > 0;) {
        take(i, 0, "exec");
        tly__result_write_dir(&fig);
    }
    pthread_mutex_unlock(&mu);
}

static void prefork(void)
{
    pthread_mutex_lock(&mu);
}

static void parent(void)
{
    pthread_mutex_unlock(&mu);
}

/* A fork's child is a process of its own: its parent's windows are not its to close; it opens its
 * whole-process window, from what it inherited. */
static void child(void)
{
    owner = getpid();
    depth = 0;
    next_seq = 0;
    out_done = false;
    tly__proc_forked();
    open_window(false, "process", NULL, tly__pl_array_bytes);
    pthread_mutex_unlock(&mu);
}

void tly__win_boot(void)
{
    pthread_atfork(prefork, parent, child);
    pthread_mutex_lock(&mu);
    owner = getpid();
    open_window(false, "process", NULL, tly__pl_array_bytes);
    pthread_mutex_unlock(&mu);
}

/*
 * _exit ends a process without its destructors: a fork's child that never execs ends so (Python's
 * multiprocessing workers, os._exit). Its windows are written first, as at exit, unless another
 * thread holds them (or a signal handler interrupted their writing): then only the provisional
 * results stay. A vfork's child (exec failed) is not their owner and writes nothing.
 */
__attribute__((noreturn)) static void exit_now(int status)
{
    tly__win_exit("_exit", false);
    for (;;)
        syscall(SYS_exit_group, status);
}

void _exit(int status)
{
    exit_now(status);
}

void _Exit(int status)
{
    exit_now(status);
}
