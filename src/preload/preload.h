/*
 * Internal to src/preload: the parts of libtally-preload.so, the tracker loaded into a process that
 * was not built with tally (docs/impl-protocol.md). It adds to src/mem (the same hooks and
 * counters) what a foreign process needs: attribution by shared library, the interposed copies and
 * mappings, the marks and the result object.
 */
#ifndef TLY__PRELOAD_H
#define TLY__PRELOAD_H

#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "mem/internal.h"

/* Library slots with a fixed meaning; shared objects take the others as they are first charged. */
enum {
    TLY__SLOT_MMAP,    /* anonymous mappings outside jemalloc */
    TLY__SLOT_UNKNOWN, /* no frame in a known shared object (JIT code, an unwind that ran out) */
    TLY__SLOT_OTHER,   /* a library beyond TLY__LIB_MAX slots */
    TLY__SLOT_FIRST_LIB
};

/* Settings (preload.c), SIZE_MAX until the constructor has read them: nothing counts before. */
extern _Atomic size_t tly__pl_large;    /* TALLY_PROFILE_LARGE */
extern _Atomic size_t tly__pl_copy_min; /* TALLY_PROFILE_COPY_MIN */
extern _Atomic size_t tly__pl_mmap_min; /* TALLY_PROFILE_MMAP_MIN */
extern char tly__pl_exe[PATH_MAX];      /* the executable's path */
extern size_t tly__pl_settings[3];      /* large, copy_min, mmap_min as configured */
extern uint64_t tly__pl_array_bytes;    /* TALLY_PROFILE_ARRAY_BYTES: an unmarked window's array */
const char *tly__pl_out(void);          /* TALLY_PROFILE_OUT, or NULL */
bool tly__pl_may_write_unmarked(void);  /* see preload.c: the run's first process, and no mark wrote */
const char *tly__pl_untracked_reason(void);
/* @p name from the environment the process started with (libc's, not the program's getenv) */

/* objects_names.c: names of shared objects (no malloc: they run in the hooks) */
void tly__obj_copy_str(char *dst, size_t cap, const char *src, size_t n); /* at most cap - 1 bytes, terminated */
void tly__obj_short_name(const char *path, char *out, size_t cap);        /* libblosc.so.1 -> libblosc */
bool tly__obj_plumbing(const char *path); /* libc, jemalloc, libstdc++, libgcc_s, ld.so, the preload */
bool tly__obj_runtime(const char *path);  /* python3.x, libpython, node */

/* objects.c: the shared objects of the process, their short names and slots, the unwind */
int tly__obj_boot(void);                    /* -1 when jemalloc is not among the process's objects */
unsigned tly__obj_alloc_slot(size_t usize); /* a tly__lib_fn: the slot of a new block (in a hook) */
unsigned tly__obj_copy_slot(uintptr_t ra);  /* the slot of a copy made from @p ra; NONE: our own */
/* The same by @p ra's object alone, no unwind (plumbing and the interpreter charged themselves);
 * through a per-thread cache, without a lock when it hits: for every copy. */
unsigned tly__obj_copy_slot_fast(uintptr_t ra);
bool tly__obj_in_allocator(uintptr_t ra); /* @p ra is in jemalloc or in the preload */
bool tly__obj_in_jemalloc(uintptr_t ra);
/* The slot of the first frame outside the plumbing among return addresses @p ips (innermost first). */
unsigned tly__obj_frames_slot(const uintptr_t *ips, unsigned n);
/* The names of the objects loaded now (as the libraries are named), each once, into @p out (@p cap
 * of them, NAME_CAP bytes each); returns how many. Not in a hook: it walks the loader's list. */
size_t tly__obj_loaded(char (*out)[64], size_t cap);
/* The objects table's generation (bumped at each rebuild); tly__obj_sync rebuilds it now if the
 * loader's list changed (not in a hook). */
unsigned tly__obj_gen(void);
void tly__obj_sync(void);
/* gone.c: objects unloaded (found at a rebuild of generation @p gen): a stack interned before it
 * names its frames there by the object that was, not by what the loader put there since. */
void tly__gone_add(uintptr_t lo, uintptr_t hi, uintptr_t base, const char *path, unsigned gen);
/* The path of the object unloaded at a generation after @p since that held @p a; its base in @p base. */
const char *tly__gone_find(uintptr_t a, unsigned since, uintptr_t *base);
const char *tly__slot_name(unsigned slot);
const char *tly__slot_path(unsigned slot);

/* An interposed function's libc implementation: the atomic pointer real_F, a fallback until the
 * constructor has RESOLVEd it with dlsym(RTLD_NEXT) (interpose.c, markfd.c, release.c). */
#define REAL(f) atomic_load_explicit(&real_##f, memory_order_relaxed)
#define RESOLVE(var, name)                                                                                             \
    do {                                                                                                               \
        void *f = dlsym(RTLD_NEXT, name);                                                                              \
        if (f)                                                                                                         \
            atomic_store_explicit(&var, (__typeof__(atomic_load(&var)))f, memory_order_relaxed);                       \
    } while (0)

/* interpose.c, markfd.c */
void tly__interpose_boot(void);
void tly__markfd_boot(void);

/* release.c: anonymous resident bytes read just before memory goes back to the kernel */
struct tly__release {
    uint64_t t_ns; /* CLOCK_MONOTONIC */
    int64_t bytes;
};
void tly__release_boot(void);
void tly__release_seen(size_t len); /* before a release of @p len bytes (read when 1 MiB or more) */
/* The readings from @p t0_ns to @p t1_ns into @p out (at most @p cap); how many. */
size_t tly__release_window(uint64_t t0_ns, uint64_t t1_ns, struct tly__release *out, size_t cap);

/* marks.c */
extern _Atomic int tly__mark_fd;
extern pid_t tly__mark_pid; /* the process whose descriptor it is */
void tly__marks_boot(void);
bool tly__marks_fd_ours(int fd); /* @p fd is still the mark descriptor the preload opened */
ssize_t tly__marks_write(const void *buf, size_t n);

/* windows.c: the process's windows (see there) */
void tly__win_boot(void);
/* open a marked window named @p name (@p op when NULL or empty) */
void tly__win_begin(const char *name, const char *op, uint64_t array_bytes);
/* close the innermost marked window named @p name (the innermost marked one when NULL or empty) */
void tly__win_end(const char *name, uint64_t output_bytes);
/* the process ends by @p how ("exit", "_exit"): its windows close; @p wait false: not when busy */
void tly__win_exit(const char *how, bool wait);
/* the process is about to exec: its windows are written as they stand ("ended": "exec") */
void tly__win_exec(void);

/* exec.c: exec* interposed, so that a process's windows are written before its image goes */
void tly__exec_boot(void);

struct tly__stack_counts;

/* report.c: everything a closed window needs, taken before the report allocates anything */
struct tly__figures {
    bool marked, end_missing;
    char op[64], name[64];
    unsigned seq, depth; /* the window's number in the process image; windows around it */
    const char *ended;   /* how it closed: "end", "enclosing_end", "exit", "_exit", "exec" */
    uint64_t tl_t0_ns;   /* CLOCK_MONOTONIC of the timeline's t_s 0 */
    uint64_t array_bytes, output_bytes;
    unsigned marks_ignored;
    uint64_t t0_ns, t1_ns;
    struct tly_mem_snapshot before, after;
    struct tly_time_snapshot time_before, time_after; /* the marks' push/pop stages' time */
    struct tly__lib_counters lb[TLY__LIB_MAX], la[TLY__LIB_MAX];
    unsigned nslots;
    struct tly_mem_crosscheck xc;
    bool xc_ok;
    size_t tl_n;
    struct tly_mem_sample *tl;
    int64_t (*tl_lib)[TLY__LIB_MAX];
    /* stacks (stacks.h): at the window's start, at its peak and at its end; NULL when they are off */
    const struct tly__stack_counts *stk_before, *stk_peak, *stk_now;
    unsigned stk_n;
    uint64_t stk_dropped;
    uint64_t stk_taken[2], stk_taken_ns[2]; /* stacks taken and their time: at the start, at the close */
};

/* Write @p f to @p path (through PATH.tmp, renamed; removed when the write fails). Returns 0 or a
 * negative errno. Under tly__xfsz_hold(): a result over RLIMIT_FSIZE fails with EFBIG. */
int tly__report_write(const char *path, const struct tly__figures *f);

/* src/mem/stacks_report.c's JSON string (mem/stacks.h), for report.c and results.c */
void tly__jstr(FILE *f, const char *s);

/* results.c: the process block of each result, the results directory (TALLY_PROFILE_DIR) */
void tly__proc_boot(void);
void tly__proc_forked(void); /* in a fork's child: the process is a new one */
void tly__emit_header(FILE *f, const struct tly__figures *x);
void tly__result_provisional(const char *name, const char *op, bool marked, unsigned depth, unsigned seq,
                             uint64_t t0_ns);
bool tly__result_anywhere(void); /* TALLY_PROFILE_DIR or TALLY_PROFILE_OUT is set */
bool tly__result_dir_set(void);  /* TALLY_PROFILE_DIR is set */
void tly__result_write_dir(const struct tly__figures *x);
void tly__result_write_out(const struct tly__figures *x);

/* Around what the preload writes: SIGXFSZ blocked on this thread, and one raised meanwhile taken
 * off. hold returns whether one was pending already (the program's: release leaves it). */
bool tly__xfsz_hold(sigset_t *old);
void tly__xfsz_release(const sigset_t *old, bool was_pending);

#endif
