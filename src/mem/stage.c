/* Stages: names, the thread-local scope, and its inheritance by new threads. */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "mem/internal.h"

__thread struct tly__tls tly__tls __attribute__((tls_model("initial-exec")));

static const char *const stage_names[TLY_NSTAGES] = {
    [TLY_PLAN] = "plan",         [TLY_GATHER] = "gather", [TLY_ENCODE] = "encode",   [TLY_PUT] = "put",
    [TLY_GET] = "get",           [TLY_DECODE] = "decode", [TLY_SCATTER] = "scatter", [TLY_META] = "meta",
    [TLY_SIGN] = "sign",         [TLY_HTTP] = "http",     [TLY_POOL] = "pool",       [TLY_CALLER] = "caller",
    [TLY_UNSTAGED] = "unstaged",
};

const char *tly_stage_name(enum tly_stage s)
{
    return (unsigned)s < TLY_NSTAGES ? stage_names[s] : "?";
}

int tly_stage_from_name(const char *name)
{
    for (int s = 0; s < TLY_NSTAGES; s++)
        if (strcmp(stage_names[s], name) == 0)
            return s;
    return -1;
}

enum tly_stage tly_stage_current(void)
{
    return tly__stage_of(&tly__tls);
}

/* A transition to another stage is where time is charged (time.c): the interval that ends was spent
 * in the stage being left. A scope of the stage the thread is already in costs nothing more. */
enum tly_stage tly_stage_enter(enum tly_stage s)
{
    struct tly__tls *t = &tly__tls;
    uint8_t to = (unsigned)s < TLY_UNSTAGED ? (uint8_t)(s + 1) : 0;
    enum tly_stage prev = tly__stage_of(t);
    if (to != t->stage1 && tly__time_enabled)
        tly__time_switch(t, prev, to ? (enum tly_stage)(to - 1) : TLY_UNSTAGED, true);
    t->stage1 = to;
    return prev;
}

void tly_stage_leave(enum tly_stage prev)
{
    struct tly__tls *t = &tly__tls;
    uint8_t to = (unsigned)prev < TLY_UNSTAGED ? (uint8_t)(prev + 1) : 0;
    if (to != t->stage1 && tly__time_enabled)
        tly__time_switch(t, tly__stage_of(t), to ? (enum tly_stage)(to - 1) : TLY_UNSTAGED, false);
    t->stage1 = to;
}

/*
 * A thread starts in the stage of the thread that created it. Threads that libraries start on our
 * behalf (c-blosc's decoders, inside stage decode) are then charged to the stage that asked for
 * the work, and a small block allocated by one and freed by the other stays in one stage (blocks
 * under TLY_MEM_LARGE are charged to the freeing thread's stage). This definition in the program
 * comes before libc's in symbol lookup, for the shared libraries too; it hands the thread to the
 * next pthread_create (libc's, or a sanitizer's).
 */
typedef int (*tly__create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

struct tly__start {
    void *(*fn)(void *);
    void *arg;
    uint8_t stage1;
};

static void *tly__thread_start(void *p)
{
    struct tly__start st = *(struct tly__start *)p;
    free(p); /* unstaged, as it was allocated */
    tly__tls.stage1 = st.stage1;
    tly__time_thread_start(&tly__tls);
    /* The thread ends in its last stage: what thread-local destructors free was mostly allocated
     * there (a resolver thread's getaddrinfo state, in http). */
    return st.fn(st.arg);
}

int pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
    static _Atomic(tly__create_fn) next;
    tly__create_fn create = atomic_load_explicit(&next, memory_order_acquire);
    if (create == NULL) {
#ifdef TLY_SANITIZE
        /* clang links ASan's runtime into the executable, and RTLD_NEXT would pass over its
         * interceptor: ASan would not know the thread, and LSan would not scan its stack (what only
         * a thread's stack holds would read as leaked). gcc's libasan is the next object anyway. */
        create = (tly__create_fn)dlsym(RTLD_DEFAULT, "__interceptor_pthread_create");
        if (create == NULL)
#endif
            create = (tly__create_fn)dlsym(RTLD_NEXT, "pthread_create");
        if (create == NULL)
            return EAGAIN;
        atomic_store_explicit(&next, create, memory_order_release);
    }
    /* The thread's bookkeeping (this record, glibc's thread control block and its TLS vector, kept
     * with a cached stack after the thread ends) is nobody's pipeline work: unstaged. */
    uint8_t stage1 = tly__tls.stage1;
    tly__tls.stage1 = 0;
    struct tly__start *st = malloc(sizeof *st);
    int rc = EAGAIN;
    if (st != NULL) {
        *st = (struct tly__start){fn, arg, stage1};
        rc = create(t, attr, tly__thread_start, st);
        if (rc != 0)
            free(st);
    }
    tly__tls.stage1 = stage1;
    return rc;
}

/*
 * Install the hooks before main() and before most other constructors, so that as few blocks as
 * possible are allocated untracked. This lives beside the stage functions so that any program
 * using libtally (a static library) links it in.
 */
__attribute__((constructor(101))) static void tly__mem_ctor(void)
{
    tly__counters_boot();
    tly__time_boot();
    tly__hooks_boot();
    tly__plant_boot();
}
