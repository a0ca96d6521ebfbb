/*
 * jemalloc's experimental allocation hooks, and their installation at start-up.
 *
 * jemalloc does not publish the hook types (include/jemalloc/internal/hook.h): they are declared
 * here to match 5.3's ABI, and the running jemalloc's version is checked before installing them.
 * A probe allocation then proves that the hooks really run (they do not when ASan, valgrind or
 * glibc own malloc); otherwise tracking is off and the reason is kept for tly_mem_untracked_reason().
 */
#include <stdlib.h>
#include <string.h>

#include <jemalloc/jemalloc.h>

#include "mem/internal.h"

/* --- jemalloc 5.3 hook ABI (internal/hook.h) --- */
enum je_hook_alloc {
    je_hook_alloc_malloc,
    je_hook_alloc_posix_memalign,
    je_hook_alloc_aligned_alloc,
    je_hook_alloc_calloc,
    je_hook_alloc_memalign,
    je_hook_alloc_valloc,
    je_hook_alloc_mallocx,
    je_hook_alloc_realloc,
    je_hook_alloc_rallocx,
};

typedef void (*je_hook_alloc_fn)(void *extra, int type, void *result, uintptr_t result_raw, uintptr_t args_raw[3]);
typedef void (*je_hook_dalloc_fn)(void *extra, int type, void *address, uintptr_t args_raw[3]);
typedef void (*je_hook_expand_fn)(void *extra, int type, void *address, size_t old_usize, size_t new_usize,
                                  uintptr_t result_raw, uintptr_t args_raw[4]);

struct je_hooks {
    je_hook_alloc_fn alloc_hook;
    je_hook_dalloc_fn dalloc_hook;
    je_hook_expand_fn expand_hook;
    void *extra;
};
/* --- end of the ABI --- */

#define JE_ABI_VERSION "5.3."

static bool tracking;
static const char *untracked_reason = "not started";
static char reason_buf[160];

static size_t requested(int type, const uintptr_t a[3])
{
    switch (type) {
    case je_hook_alloc_posix_memalign:
        return a[2];
    case je_hook_alloc_aligned_alloc:
    case je_hook_alloc_memalign:
    case je_hook_alloc_realloc:
    case je_hook_alloc_rallocx:
        return a[1];
    case je_hook_alloc_calloc:
        return a[0] * a[1];
    default: /* malloc, valloc, mallocx */
        return a[0];
    }
}

static void on_alloc(void *extra, int type, void *result, uintptr_t result_raw, uintptr_t args[3])
{
    (void)extra;
    /* posix_memalign reports its return code in result_raw and leaves *memptr unset on failure. */
    if (result == NULL || (type == je_hook_alloc_posix_memalign && result_raw != 0))
        return;
    struct tly__tls *t = &tly__tls;
    if (t->in_hook)
        return;
    t->in_hook = 1;
    tly__account_alloc(t, result, sallocx(result, 0), requested(type, args));
    t->in_hook = 0;
}

static void on_dalloc(void *extra, int type, void *address, uintptr_t args[3])
{
    (void)extra, (void)type, (void)args;
    if (address == NULL)
        return;
    struct tly__tls *t = &tly__tls;
    if (t->in_hook)
        return;
    t->in_hook = 1;
    tly__account_free(t, address, sallocx(address, 0));
    t->in_hook = 0;
}

static void on_expand(void *extra, int type, void *address, size_t old_usize, size_t new_usize, uintptr_t result_raw,
                      uintptr_t args[4])
{
    (void)extra, (void)type, (void)result_raw;
    struct tly__tls *t = &tly__tls;
    if (t->in_hook || old_usize == new_usize)
        return;
    t->in_hook = 1;
    /* realloc, rallocx and xallocx in place: args {ptr, size, ...}; xallocx's size is its least */
    tly__account_resize(t, address, old_usize, new_usize, (size_t)args[1]);
    t->in_hook = 0;
}

static void off(const char *why)
{
    tracking = false;
    untracked_reason = why;
}

void tly__hooks_boot(void)
{
#ifdef TLY_SANITIZE
    off("sanitizer build: ASan replaces malloc, so jemalloc's hooks cannot run");
    return;
#endif
    const char *env = tly__getenv("TALLY_TRACK");
    if (env && strcmp(env, "0") == 0) {
        off("TALLY_TRACK=0");
        return;
    }
    const char *version = NULL;
    size_t len = sizeof version;
    if (mallctl("version", &version, &len, NULL, 0) != 0 || version == NULL) {
        off("jemalloc's mallctl does not answer");
        return;
    }
    if (strncmp(version, JE_ABI_VERSION, strlen(JE_ABI_VERSION)) != 0) {
        snprintf(reason_buf, sizeof reason_buf, "jemalloc %s: the hook ABI is declared for %sx", version,
                 JE_ABI_VERSION);
        off(reason_buf);
        return;
    }
    struct je_hooks hooks = {on_alloc, on_dalloc, on_expand, NULL};
    void *handle = NULL;
    size_t hlen = sizeof handle;
    if (mallctl("experimental.hooks.install", &handle, &hlen, &hooks, sizeof hooks) != 0 || handle == NULL) {
        off("jemalloc refused experimental.hooks.install");
        return;
    }
    /* Probe: does malloc reach jemalloc (and so the hooks)? Not under ASan, valgrind or glibc. */
    int64_t before = tly_mem_live_bytes();
    void *volatile probe = malloc(TLY_MEM_LARGE);
    bool seen = tly_mem_live_bytes() != before;
    free(probe);
    if (!seen) {
        mallctl("experimental.hooks.remove", NULL, NULL, &handle, sizeof handle);
        off("malloc is not jemalloc's (valgrind, a sanitizer or a missing -ljemalloc): the hooks never ran");
        return;
    }
    tly__crosscheck_boot();
    tracking = true;
    untracked_reason = NULL;
}

bool tly_mem_tracking(void)
{
    return tracking;
}

const char *tly_mem_untracked_reason(void)
{
    return untracked_reason;
}

const char *tly_mem_allocator_version(void)
{
    const char *version = NULL;
    size_t len = sizeof version;
    return mallctl("version", &version, &len, NULL, 0) == 0 ? version : NULL;
}
