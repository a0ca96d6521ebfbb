/*
 * The preload's call stacks (see stacks.h): src/mem/stacks.c takes and interns them, as the preload
 * says here: its own and jemalloc's frames left off the leaf, a stack's library from its frames, the
 * Python 3.11 frames joined in (stacks_py.c), frames named by the objects the process has loaded,
 * or had (gone.c).
 */
#include <string.h>

#include "preload/preload.h"
#include "preload/stacks.h"

/* A stack the table had no room for has no library of its own. */
static const char *slot_name(unsigned slot)
{
    return tly__slot_name(slot == TLY__LIB_NONE ? TLY__SLOT_UNKNOWN : slot);
}

static const struct tly__stacks_ops ops = {
    .in_allocator = tly__obj_in_allocator,
    .in_jemalloc = tly__obj_in_jemalloc,
    .frames_slot = tly__obj_frames_slot,
    .gen = tly__obj_gen,
    .py_active = tly__py_active,
    .py_frames = tly__py_frames,
    .py_is_eval = tly__py_is_eval,
    .py_remember = tly__py_remember,
    .py_text = tly__py_text,
    .sync = tly__obj_sync,
    .gone_find = tly__gone_find,
    .slot_name = slot_name,
};

static const struct tly__leaf leaf = {0, false};

unsigned tly__stacks_alloc_slot(void)
{
    unsigned slot;
    tly__tls.stack = tly__stacks_take(&leaf, TLY__LIB_NONE, &slot, 0);
    return slot;
}

void tly__stacks_copy(unsigned slot, uint64_t n)
{
    unsigned s;
    tly__stacks_copied(tly__stacks_take(&leaf, slot, &s, 0), n, 1);
}

void tly__stacks_boot(void)
{
    const char *v = tly__getenv("TALLY_PROFILE_STACKS");
    if (v && strcmp(v, "0") == 0)
        return;
    tly__py_boot();
    tly__stacks_start(&ops);
}
