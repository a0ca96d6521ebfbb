/*
 * The planted defect (see plant.h): a known extra allocation and payload copy in one stage, so that
 * `tally selftest` can show the instrument finds it there and the stage's budget fails.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "mem/internal.h"
#include "mem/plant.h"

int tly__plant_stage = -1;
static size_t plant_bytes = (size_t)1 << 20;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static void *planted;

void tly__plant_set(int s, size_t bytes)
{
    pthread_mutex_lock(&mu);
    tly__plant_stage = s >= 0 && s < TLY_NSTAGES ? s : -1;
    if (bytes)
        plant_bytes = bytes;
    pthread_mutex_unlock(&mu);
}

void tly__plant_hit(void)
{
    static const char source[64 * 1024];
    pthread_mutex_lock(&mu);
    if (planted == NULL) {
        char *p = malloc(plant_bytes);
        for (size_t off = 0; p && off < plant_bytes; off += sizeof source) {
            size_t k = plant_bytes - off < sizeof source ? plant_bytes - off : sizeof source;
            tly_copy(p + off, source, k);
        }
        planted = p;
    }
    pthread_mutex_unlock(&mu);
}

void tly__plant_release(void)
{
    pthread_mutex_lock(&mu);
    free(planted);
    planted = NULL;
    pthread_mutex_unlock(&mu);
}

/* TALLY_PLANT=STAGE[:BYTES], read once at start-up. */
void tly__plant_boot(void)
{
    const char *env = tly__getenv("TALLY_PLANT");
    if (env == NULL || *env == '\0')
        return;
    char name[32];
    size_t n = strcspn(env, ":");
    if (n >= sizeof name)
        return;
    memcpy(name, env, n); /* a stage name, not payload */
    name[n] = '\0';
    size_t bytes = env[n] == ':' ? (size_t)strtoull(env + n + 1, NULL, 10) : 0;
    tly__plant_set(tly_stage_from_name(name), bytes);
}
