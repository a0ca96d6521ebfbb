/*
 * The pointer table: for every live block of TLY_MEM_LARGE bytes or more, the stage (and, under the
 * preload, the library) that allocated it, its usable size and the bytes asked for, so that its free
 * is charged there, in the units it was charged in.
 *
 * Open addressing with linear probing and backward-shift deletion, in mmap'd memory (this runs
 * inside the allocation hooks: it must not call malloc). One mutex: large blocks are rare next to
 * small ones and each already costs a page fault or more.
 */
#include <pthread.h>
#include <sys/mman.h>

#include "mem/internal.h"

struct ent {
    uintptr_t key;  /* 0 = empty */
    uint64_t meta;  /* usize << 16 | lib << 8 | stage (a usable size needs far fewer than 48 bits) */
    uint64_t req;   /* the bytes asked for (at most usize) */
    uint64_t stack; /* the preload's stack id (0: none) */
};

static uint64_t pack(size_t usize, enum tly_stage s, unsigned lib)
{
    return (uint64_t)usize << 16 | (uint64_t)(lib & 0xff) << 8 | (uint64_t)s;
}

static void unpack(uint64_t meta, enum tly_stage *s, unsigned *lib)
{
    *s = (enum tly_stage)(meta & 0xff);
    *lib = (unsigned)(meta >> 8 & 0xff);
}

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct ent *tab;
static size_t cap; /* a power of two */
static size_t count;

static size_t slot_of(uintptr_t p, size_t mask)
{
    uint64_t x = (uint64_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x & mask;
}

static struct ent *map_table(size_t n)
{
    void *m = mmap(NULL, n * sizeof(struct ent), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return m == MAP_FAILED ? NULL : m;
}

static void insert_raw(struct ent *t, size_t mask, uintptr_t key, uint64_t meta, uint64_t req, uint64_t stack)
{
    size_t i = slot_of(key, mask);
    while (t[i].key != 0 && t[i].key != key)
        i = (i + 1) & mask;
    t[i].key = key;
    t[i].meta = meta;
    t[i].req = req;
    t[i].stack = stack;
}

/* Grow to twice the size; false when the kernel refuses memory (the entry is then not recorded). */
static bool grow(void)
{
    size_t ncap = cap ? cap * 2 : 4096;
    struct ent *nt = map_table(ncap);
    if (nt == NULL)
        return false;
    for (size_t i = 0; i < cap; i++)
        if (tab[i].key)
            insert_raw(nt, ncap - 1, tab[i].key, tab[i].meta, tab[i].req, tab[i].stack);
    if (tab)
        munmap(tab, cap * sizeof(struct ent));
    tab = nt;
    cap = ncap;
    return true;
}

static struct ent *find(uintptr_t key)
{
    if (cap == 0)
        return NULL;
    size_t mask = cap - 1;
    for (size_t i = slot_of(key, mask);; i = (i + 1) & mask) {
        if (tab[i].key == key)
            return &tab[i];
        if (tab[i].key == 0)
            return NULL;
    }
}

static void erase(struct ent *e)
{
    size_t mask = cap - 1;
    size_t i = (size_t)(e - tab);
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (tab[j].key == 0)
            break;
        size_t home = slot_of(tab[j].key, mask);
        /* Move j back into the hole at i unless its home lies cyclically in (i, j]. */
        bool stays = (i <= j) ? (i < home && home <= j) : (i < home || home <= j);
        if (!stays) {
            tab[i] = tab[j];
            i = j;
        }
    }
    tab[i].key = 0;
    count--;
}

void tly__ptab_put(uintptr_t p, size_t usize, size_t req, enum tly_stage s, unsigned lib, uint32_t stack)
{
    pthread_mutex_lock(&mu);
    if ((count + 1) * 2 > cap && !grow()) {
        pthread_mutex_unlock(&mu);
        return;
    }
    struct ent *e = find(p);
    if (e == NULL)
        count++;
    insert_raw(tab, cap - 1, p, pack(usize, s, lib), req, stack);
    pthread_mutex_unlock(&mu);
}

bool tly__ptab_take(uintptr_t p, size_t *usize, size_t *req, enum tly_stage *s, unsigned *lib, uint32_t *stack)
{
    pthread_mutex_lock(&mu);
    struct ent *e = find(p);
    if (e) {
        *usize = (size_t)(e->meta >> 16);
        *req = (size_t)e->req;
        *stack = (uint32_t)e->stack;
        unpack(e->meta, s, lib);
        erase(e);
    }
    pthread_mutex_unlock(&mu);
    return e != NULL;
}

bool tly__ptab_resize(uintptr_t p, size_t new_usize, size_t new_req, size_t *old_usize, size_t *old_req,
                      enum tly_stage *s, unsigned *lib, uint32_t *stack)
{
    pthread_mutex_lock(&mu);
    struct ent *e = find(p);
    if (e) {
        unpack(e->meta, s, lib);
        *old_usize = (size_t)(e->meta >> 16);
        *old_req = (size_t)e->req;
        *stack = (uint32_t)e->stack;
        e->meta = pack(new_usize, *s, *lib);
        e->req = new_req;
    }
    pthread_mutex_unlock(&mu);
    return e != NULL;
}

size_t tly__ptab_count(void)
{
    pthread_mutex_lock(&mu);
    size_t n = count;
    pthread_mutex_unlock(&mu);
    return n;
}
