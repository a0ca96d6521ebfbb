/*
 * The S3 store's contract for writing a whole array (S3 has no rename, so no swap):
 *
 *   1. PUT PREFIX/.tally-incomplete (the marker) with If-None-Match: * — only when no marker is
 *      there: one writer holds an array at a time. The marker names the write (a random id, pid, host,
 *      process start time). A marker whose writer is provably gone (this host, that process no longer
 *      runs) is taken over with If-Match on its ETag, so of two writers racing for it one wins;
 *   2. to replace an array: DELETE its metadata (zarr.json, .zarray) first, then every other object
 *      under the prefix but the marker;
 *   3. the caller writes the chunks; at the commit, before .zattrs and the metadata, the marker is
 *      read back: a write that no longer holds it publishes nothing. The metadata carries the write's
 *      id (x-amz-meta-tally-write);
 *   4. DELETE the marker (publish).
 *
 * So at every moment the prefix is the old array (interrupted before 2), no array at all with the
 * marker ("incomplete array (an interrupted write): run tally gc"), or the whole new array: metadata
 * is only ever written after every chunk, never beside a mix of old and new chunks, and never by a
 * second writer. gc deletes an incomplete array (its objects, the marker last) and a marker left
 * beside published metadata.
 *
 * A read remembers the version of the metadata it opened (ETag, writer id, Last-Modified) and, when
 * it has read every chunk, asks again (tly_store_unchanged): an overwrite deletes the metadata before
 * it touches a chunk, so metadata that is still the same version proves every chunk read was the
 * opened array's; otherwise the read fails ("replaced while it was read") instead of returning a mix
 * or the fill value for chunks an overwrite had deleted.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "tally/error.h"
#include "store/s3_store.h"

static const char marker_text[] = "tally: an array is being written here; until its metadata is written this is no "
                                  "array. An interrupted write leaves this: `tally gc URL` cleans up.\n";

/* 1 when @p key exists, 0 when it does not, or the error of a HEAD that failed any other way. */
static int there(struct tly_store *base, const char *key)
{
    uint64_t n;
    int err = tly__s3_size(base, key, &n);
    if (err == TLY_ENOTFOUND) {
        tly_errclear();
        return 0;
    }
    return err ? err : 1;
}

int tly__s3_probe(struct tly_store *base, enum tly_store_state *out)
{
    int r = there(base, "zarr.json");
    if (r == 0)
        r = there(base, ".zarray");
    if (r < 0)
        return r;
    if (r == 1) {
        *out = TLY_STORE_ARRAY;
        return 0;
    }
    if ((r = there(base, TLY__S3_MARKER)) < 0)
        return r;
    *out = r ? TLY_STORE_INCOMPLETE : TLY_STORE_ABSENT;
    return 0;
}

/* The start time of process @p pid (field 22 of /proc/PID/stat, in clock ticks since boot), or 0. */
static unsigned long long start_time(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
    unsigned long long t = 0;
    for (int field = 2; p && field < 22; field++)
        p = strchr(p + 1, ' ');
    if (p)
        t = strtoull(p + 1, NULL, 10);
    return t;
}

/* The value after "\nNAME: " in @p text, up to the line's end, into @p out ("" when absent). */
static void field(const char *text, const char *name, char *out, size_t cap)
{
    char pat[32];
    snprintf(pat, sizeof pat, "\n%s: ", name);
    const char *p = strstr(text, pat);
    out[0] = '\0';
    if (p == NULL)
        return;
    p += strlen(pat);
    size_t n = strcspn(p, "\n");
    snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), p);
    for (char *c = out; *c; c++) /* it came from the store: printed, so printable */
        if (*c < 0x20 || *c > 0x7e)
            *c = '?';
}

/* The marker's text and ETag (into @p etag); NULL with the error set (TLY_ENOTFOUND: none). */
static char *marker_get(struct tly__s3 *st, char etag[128], int *err)
{
    char *text = NULL;
    size_t n;
    *err = tly__s3_get_tagged(st, TLY__S3_MARKER, &text, &n, etag);
    return *err ? NULL : text;
}

/* PUT the marker @p text with a condition: If-None-Match: * (@p if_match NULL) or If-Match. Returns
 * 0, 1 when the condition failed (HTTP 412), or another error. */
static int marker_put(struct tly__s3 *st, const char *text, const char *if_match)
{
    return tly__s3_put_if(st, TLY__S3_MARKER, text, strlen(text), if_match, if_match ? NULL : "*");
}

/* Whether the marker @p text names this write (a retried PUT may find its own marker). */
static bool ours(const struct tly__s3 *st, const char *text)
{
    char id[64];
    field(text, "writer", id, sizeof id);
    return st->write_id[0] && strcmp(id, st->write_id) == 0;
}

/* Whether marker @p text names a write that runs on host @p host: that pid alive, started when it says. */
static bool running_here(const char *text, const char *host)
{
    char id[64], pid[24], h[256], start[32];
    field(text, "writer", id, sizeof id);
    field(text, "pid", pid, sizeof pid);
    field(text, "host", h, sizeof h);
    field(text, "start", start, sizeof start);
    long p = strtol(pid, NULL, 10);
    if (id[0] == '\0' || p <= 0 || strcmp(h, host) != 0 || (kill((pid_t)p, 0) != 0 && errno == ESRCH))
        return false;
    unsigned long long t = start_time(p);
    return t == 0 || t == strtoull(start, NULL, 10);
}

int tly__s3_gc_allowed(struct tly__s3 *st)
{
    char etag[128], host[256] = "";
    int err;
    gethostname(host, sizeof host - 1);
    char *have = marker_get(st, etag, &err);
    if (have == NULL) {
        if (err == TLY_ENOTFOUND)
            tly_errclear();
        return err == TLY_ENOTFOUND ? 0 : err;
    }
    char pid[24], since[32];
    field(have, "pid", pid, sizeof pid);
    field(have, "since", since, sizeof since);
    bool runs = running_here(have, host);
    free(have);
    if (!runs)
        return 0;
    return tly_fail(TLY_EEXISTS,
                    "s3://%s/%s: a write is running here (pid %s on this host, since %s): gc removes only what "
                    "writes that no longer run left",
                    st->bucket, st->prefix, pid, since);
}

/* Whether the write that left marker @p text is provably gone: it has no writer (tally before the
 * contract), or it ran on this host in a process that no longer runs. A write on another host, or one
 * whose process runs, holds the array. */
static bool gone(const char *text, const char *host)
{
    char id[64], h[256];
    field(text, "writer", id, sizeof id);
    field(text, "host", h, sizeof h);
    if (id[0] == '\0')
        return true;
    return strcmp(h, host) == 0 && !running_here(text, host);
}

/* Step 1: the marker, made this write's (a new id), or the error that says who holds the array. */
static int claim(struct tly__s3 *st)
{
    unsigned char rnd[16];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        return tly_fail(-errno, "s3://%s/%s: no random bytes for the write's id", st->bucket, st->prefix);
    for (int i = 0; i < 16; i++)
        snprintf(st->write_id + 2 * i, 3, "%02x", rnd[i]);
    char host[256] = "", since[32] = "", text[sizeof marker_text + 512];
    gethostname(host, sizeof host - 1);
    time_t now = time(NULL);
    struct tm tm;
    strftime(since, sizeof since, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
    snprintf(text, sizeof text, "%s\nwriter: %s\npid: %ld\nhost: %s\nstart: %llu\nsince: %s\n", marker_text,
             st->write_id, (long)getpid(), host, start_time((long)getpid()), since);
    int r = marker_put(st, text, NULL);
    for (int tries = 0; r == 1 && tries < 2; tries++) {
        char etag[128] = "";
        int err;
        char *have = marker_get(st, etag, &err);
        if (err == TLY_ENOTFOUND) { /* gone in between (published, or gc): try again */
            tly_errclear();
            r = marker_put(st, text, NULL);
            continue;
        }
        if (have == NULL)
            return err;
        if (ours(st, have)) { /* a retried PUT that had reached the store */
            free(have);
            return 0;
        }
        if (!gone(have, host) || etag[0] == '\0') {
            char pid[24], h[256], since_was[32];
            field(have, "pid", pid, sizeof pid);
            field(have, "host", h, sizeof h);
            field(have, "since", since_was, sizeof since_was);
            free(have);
            st->write_id[0] = '\0';
            return tly_fail(TLY_EEXISTS,
                            "s3://%s/%s: another write holds this array (pid %s on %s, since %s): two writers "
                            "never share an array; write again when it has ended, or, if it no longer runs, "
                            "`tally gc s3://%s/%s` first",
                            st->bucket, st->prefix, pid[0] ? pid : "?", h[0] ? h : "?", since_was[0] ? since_was : "?",
                            st->bucket, st->prefix);
        }
        free(have);
        /* take over an interrupted write's marker, If-Match its ETag: of two takers one wins. radosgw
         * 16 matches only the ETag without its quotes, RFC 9110 servers the quoted one: a marker that
         * changed matches neither, so asking both ways is safe */
        char bare[128];
        size_t n = strlen(etag);
        bool quoted = n >= 2 && etag[0] == '"' && etag[n - 1] == '"';
        snprintf(bare, sizeof bare, "%.*s", quoted ? (int)n - 2 : (int)n, etag + (quoted ? 1 : 0));
        r = marker_put(st, text, bare);
        if (r == 1 && quoted)
            r = marker_put(st, text, etag);
    }
    if (r == 1) {
        st->write_id[0] = '\0';
        return tly_fail(TLY_EEXISTS, "s3://%s/%s: another write took this array first: two writers never share one",
                        st->bucket, st->prefix);
    }
    if (r)
        st->write_id[0] = '\0';
    return r;
}

int tly__s3_stage(struct tly_store *base, bool replace)
{
    struct tly__s3 *st = tly__s3_of(base);
    int err = claim(st);
    if (err || !replace)
        return err;
    /* the metadata first: from here on the prefix is no array, never a mix */
    if ((err = tly__s3_del(base, "zarr.json")) != 0 || (err = tly__s3_del(base, ".zarray")) != 0)
        return err;
    static const char *const keep[] = {TLY__S3_MARKER, NULL};
    uint64_t n = 0;
    err = tly__s3_delete_all(st, keep, &n);
    if (err)
        tly_err_prefix("s3://%s/%s: deleting the old array", st->bucket, st->prefix);
    return err;
}

static bool metadata_key(const char *key)
{
    return strcmp(key, "zarr.json") == 0 || strcmp(key, ".zarray") == 0;
}

int tly__s3_commit_check(struct tly__s3 *st, const char *key)
{
    if (st->write_id[0] == '\0' || !(metadata_key(key) || strcmp(key, ".zattrs") == 0))
        return 0;
    char etag[128];
    int err;
    char *have = marker_get(st, etag, &err);
    bool held = have && ours(st, have);
    free(have);
    if (held)
        return 0;
    if (err && err != TLY_ENOTFOUND)
        return err;
    tly_errclear();
    return tly_fail(TLY_EEXISTS,
                    "s3://%s/%s: this write no longer holds the array (its marker was %s meanwhile: `tally gc` or "
                    "another writer): nothing of it is published",
                    st->bucket, st->prefix, err ? "removed" : "taken");
}

void tly__s3_opened(struct tly__s3 *st, const char *key, const struct tly__s3_req *r)
{
    if (!metadata_key(key))
        return;
    snprintf(st->opened_key, sizeof st->opened_key, "%s", key);
    snprintf(st->opened_version, sizeof st->opened_version, "%s|%s|%s", r->etag, r->meta_write_got, r->last_modified);
}

int tly__s3_unchanged(struct tly_store *base)
{
    struct tly__s3 *st = tly__s3_of(base);
    if (st->opened_key[0] == '\0')
        return 0;
    struct tly__s3_req r;
    int err = tly__s3_req_key(st, &r, "HEAD", "HEAD", st->opened_key, NULL);
    if (err)
        return err;
    err = tly__s3_run(st, &r);
    char now[sizeof st->opened_version];
    snprintf(now, sizeof now, "%s|%s|%s", r.etag, r.meta_write_got, r.last_modified);
    if (err == TLY_ENOTFOUND || (err == 0 && strcmp(now, st->opened_version) != 0)) {
        tly_errclear();
        err = tly_fail(-ESTALE,
                       "s3://%s/%s/%s: the array was replaced while it was read (its metadata %s during the read; "
                       "an overwrite ran): nothing of the read is kept, read it again",
                       st->bucket, st->prefix, st->opened_key, err ? "was deleted" : "changed");
    } else if (err) {
        tly_err_prefix("s3://%s/%s: checking the array was not replaced during the read", st->bucket, st->prefix);
    }
    tly__s3_req_clear(&r);
    return err;
}

int tly__s3_publish(struct tly_store *base)
{
    return tly__s3_del(base, TLY__S3_MARKER);
}

void tly__s3_discard(struct tly_store *base)
{
    /* The prefix stays marked incomplete (gc deletes what the write left), but no longer held: the
     * marker loses its writer, so this same process may write the array again (put --overwrite takes
     * over a marker without a writer). Best effort: a store that cannot be reached keeps the marker,
     * which is taken over once this process has ended. */
    struct tly__s3 *st = tly__s3_of(base);
    if (st->write_id[0] == '\0')
        return;
    char etag[128], why[1024]; /* the failed write's message is what the caller reports: kept */
    snprintf(why, sizeof why, "%s", tly_errmsg());
    int err;
    char *have = marker_get(st, etag, &err);
    bool mine = have && ours(st, have);
    free(have);
    st->write_id[0] = '\0'; /* before the PUT: the marker put back carries no writer */
    if (mine)
        (void)tly__s3_put_if(st, TLY__S3_MARKER, marker_text, sizeof marker_text - 1, NULL, NULL);
    tly_fail(0, "%s", why);
}

int tly__s3_gc_incomplete(struct tly__s3 *st, uint64_t *removed)
{
    int r = there(&st->base, TLY__S3_MARKER);
    if (r <= 0)
        return r;
    enum tly_store_state state;
    int err = tly__s3_probe(&st->base, &state);
    if (!err && state != TLY_STORE_ARRAY) {
        static const char *const keep[] = {TLY__S3_MARKER, NULL};
        err = tly__s3_delete_all(st, keep, removed);
    }
    if (!err && (err = tly__s3_del(&st->base, TLY__S3_MARKER)) == 0)
        (*removed)++;
    return err;
}
