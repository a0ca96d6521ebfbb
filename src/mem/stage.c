/* Stages: names and the thread-local scope. */
#include <string.h>

#include "mem/internal.h"

__thread struct tly__tls tly__tls __attribute__((tls_model("initial-exec")));

static const char *const stage_names[TLY_NSTAGES] = {
    [TLY_PLAN] = "plan",         [TLY_GATHER] = "gather", [TLY_ENCODE] = "encode",   [TLY_PUT] = "put",
    [TLY_GET] = "get",           [TLY_DECODE] = "decode", [TLY_SCATTER] = "scatter", [TLY_META] = "meta",
    [TLY_SIGN] = "sign",         [TLY_HTTP] = "http",     [TLY_POOL] = "pool",       [TLY_HARNESS] = "harness",
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

enum tly_stage tly_stage_enter(enum tly_stage s)
{
    enum tly_stage prev = tly__stage_of(&tly__tls);
    tly__tls.stage1 = (unsigned)s < TLY_UNSTAGED ? (uint8_t)(s + 1) : 0;
    return prev;
}

void tly_stage_leave(enum tly_stage prev)
{
    tly__tls.stage1 = (unsigned)prev < TLY_UNSTAGED ? (uint8_t)(prev + 1) : 0;
}

/*
 * Install the hooks before main() and before most other constructors, so that as few blocks as
 * possible are allocated untracked. This lives beside the stage functions so that any program
 * using libtally (a static library) links it in.
 */
__attribute__((constructor(101))) static void tly__mem_ctor(void)
{
    tly__counters_boot();
    tly__hooks_boot();
    tly__plant_boot();
}
