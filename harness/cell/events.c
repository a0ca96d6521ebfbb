/*
 * A window's trace: the event ring (tally/timing.h) as Chrome trace events for its cell, read after
 * the window closed — a slice per stage scope, chunk (key, bytes), codec call, wait and S3 request
 * (method, key, status, bytes, retries) on the thread that made it; copies as instants; flows from
 * a chunk's encode to its put and from a put to the requests it sent. Slices on one track nest: an
 * S3 request sits on its worker's track when it nests there (one at a time, inside a put); requests
 * a worker has in flight together go on lanes of that worker ("worker 1 · requests 2"), each inside
 * the span of the put that sent it. Times are whole nanoseconds from the window's start ("ts_ns",
 * "dur_ns"; trace.json writes Chrome's "ts" and "dur" in µs). report/trace.c adds the process and
 * the memory counters.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cell/result.h"

#define MAX_THREADS 256
#define MAX_DEPTH 64
#define LANE_TID 0x40000000u

enum cat { C_STAGE, C_CHUNK, C_CODEC, C_WAIT, C_HTTP };
static const char *const cat_names[] = {"stage", "chunk", "codec", "wait", "http"};

struct slice {
    uint32_t tid; /* its track (a lane's own id for a request on a lane) */
    uint32_t worker_tid;
    uint64_t t0, t1;
    enum cat cat;
    uint8_t stage;
    char name[80];
    json_t *args;
};

struct open {
    enum cat cat;
    uint8_t stage;
    bool before; /* begun before the window (its end names it) */
    const struct tly_event *ev;
    uint64_t t0; /* 0: its event's time */
};

/* A stage scope entered again this soon after the same scope at the same depth ended (put_chunk's
 * writer_add then writer_commit) continues that slice: one put, not two a hair apart. */
#define REENTER_NS 20000

struct thr {
    uint32_t tid;
    bool worker, started;
    int first_stage; /* the stage it started in (-1: not seen) */
    int order;
    int lanes;
    struct open stack[MAX_DEPTH];
    int depth;
    size_t last;    /* the slice this thread closed last, + 1 (0: none) */
    int last_depth; /* the depth it was at */
};

struct build {
    uint64_t t0, t1; /* the window */
    struct thr thr[MAX_THREADS];
    int nthr;
    struct slice *s;
    size_t n, cap;
    json_t *out; /* the Chrome events */
    int flow_id;
};

/* Nanoseconds since the window opened (the trace's times are whole ns; trace.json writes them in µs). */
static json_int_t ns(const struct build *b, uint64_t t)
{
    return t > b->t0 ? (json_int_t)(t - b->t0) : 0;
}

static struct thr *thread_of(struct build *b, uint32_t tid)
{
    for (int i = 0; i < b->nthr; i++)
        if (b->thr[i].tid == tid)
            return &b->thr[i];
    if (b->nthr == MAX_THREADS)
        return NULL;
    struct thr *t = &b->thr[b->nthr];
    *t = (struct thr){.tid = tid, .first_stage = -1, .order = b->nthr};
    b->nthr++;
    return t;
}

static struct slice *add_slice(struct build *b, uint32_t tid, uint64_t t0, uint64_t t1, enum cat c, uint8_t stage,
                               const char *name, json_t *args)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1024;
        struct slice *s = realloc(b->s, cap * sizeof *s);
        if (s == NULL) {
            json_decref(args);
            return NULL;
        }
        b->s = s;
        b->cap = cap;
    }
    struct slice *s = &b->s[b->n++];
    *s = (struct slice){.tid = tid,
                        .worker_tid = tid,
                        .t0 = t0 < b->t0 ? b->t0 : t0,
                        .t1 = t1,
                        .cat = c,
                        .stage = stage,
                        .args = args ? args : json_object()};
    if (s->t1 < s->t0)
        s->t1 = s->t0;
    snprintf(s->name, sizeof s->name, "%s", name);
    return s;
}

/* Close the top item of @p t at @p now into a slice. */
static void close_top(struct build *b, struct thr *t, uint64_t now)
{
    struct open *o = &t->stack[--t->depth];
    const struct tly_event *e = o->ev;
    char name[80];
    if (e == NULL && o->cat != C_STAGE)
        return;
    json_t *args = NULL;
    switch (o->cat) {
    case C_STAGE:
        snprintf(name, sizeof name, "%s", tly_stage_name((enum tly_stage)o->stage));
        break;
    case C_CHUNK:
        snprintf(name, sizeof name, "chunk %s", e->text);
        args = json_pack("{s:s, s:I, s:I}", "key", e->text, "bytes", (json_int_t)e->a, "index", (json_int_t)e->b);
        break;
    default:
        snprintf(name, sizeof name, "%s", e->text);
        args = json_pack("{s:I}", "bytes_in", (json_int_t)e->a);
        break;
    }
    if (o->cat == C_STAGE && o->stage == TLY_UNSTAGED)
        return; /* a thread between scopes: not a slice */
    if (add_slice(b, t->tid, o->t0 ? o->t0 : e && !o->before ? e->t_ns : b->t0, now, o->cat, o->stage, name, args))
        t->last = b->n, t->last_depth = t->depth;
}

static void push(struct thr *t, enum cat c, uint8_t stage, const struct tly_event *e)
{
    if (t->depth < MAX_DEPTH)
        t->stack[t->depth++] = (struct open){c, stage, false, e, 0};
}

/* Pop to the innermost open item of category @p c (and stage, for stages), closing what is above it
 * at @p now; an end with no beginning in the window began when the window opened. */
static struct open *pop_to(struct build *b, struct thr *t, enum cat c, int stage, uint64_t now)
{
    int k = t->depth - 1;
    while (k >= 0 && !(t->stack[k].cat == c && (stage < 0 || t->stack[k].stage == stage)))
        k--;
    if (k < 0) {
        while (t->depth > 0)
            close_top(b, t, now);
        push(t, c, (uint8_t)(stage < 0 ? 0 : stage), NULL);
        t->stack[t->depth - 1].before = true;
        return &t->stack[t->depth - 1];
    }
    while (t->depth - 1 > k)
        close_top(b, t, now);
    return &t->stack[k];
}

/* Requests begun and not yet answered, by id. */
struct req {
    uint64_t id;
    const struct tly_event *begin;
};

static void http_end(struct build *b, struct req *reqs, size_t *nreq, const struct tly_event *e)
{
    size_t k = *nreq;
    while (k-- > 0)
        if (reqs[k].id == e->a)
            break;
    if (k == (size_t)-1)
        return; /* queued before the window */
    const struct tly_event *s = reqs[k].begin;
    reqs[k] = reqs[--*nreq];
    char method[16] = "", name[80];
    const char *key = s->text, *sp = strchr(s->text, ' ');
    if (sp) {
        snprintf(method, sizeof method, "%.*s", (int)(sp - s->text), s->text);
        key = sp + 1;
    }
    snprintf(name, sizeof name, "%s %s %u", method, key, (unsigned)e->c);
    json_t *args = json_pack("{s:s, s:s, s:i, s:I, s:I, s:i, s:i}", "method", method, "key", key, "status", (int)e->c,
                             "bytes", (json_int_t)e->b, "body_bytes", (json_int_t)s->b, "attempts", (int)e->stage,
                             "retries", e->stage > 0 ? (int)e->stage - 1 : 0);
    add_slice(b, s->tid, s->t_ns, e->t_ns, C_HTTP, 0, name, args);
}

/* The ring's events into slices, thread by thread. */
static void read_ring(struct build *b)
{
    uint64_t dropped = 0;
    size_t n = tly_trace_count(&dropped), nreq = 0;
    struct req *reqs = calloc(n ? n : 1, sizeof *reqs);
    for (size_t i = 0; reqs && i < n; i++) {
        const struct tly_event *e = tly_trace_event_at(i);
        struct thr *t = thread_of(b, e->tid);
        if (t == NULL || e->t_ns > b->t1)
            continue;
        if (t->first_stage < 0)
            t->first_stage = e->kind == TLY_EV_STAGE_BEGIN ? e->c : e->stage;
        switch (e->kind) {
        case TLY_EV_THREAD_START:
            t->started = true;
            t->first_stage = e->stage;
            if (e->stage != TLY_UNSTAGED)
                push(t, C_STAGE, e->stage, e);
            break;
        case TLY_EV_THREAD_EXIT:
            while (t->depth > 0)
                close_top(b, t, e->t_ns);
            break;
        case TLY_EV_STAGE_BEGIN: {
            struct slice *prev = t->last == b->n && t->last && t->last_depth == t->depth ? &b->s[b->n - 1] : NULL;
            push(t, C_STAGE, e->stage, e);
            if (prev && prev->cat == C_STAGE && prev->stage == e->stage && e->t_ns - prev->t1 <= REENTER_NS &&
                prev->tid == t->tid && t->depth > 0) {
                t->stack[t->depth - 1].t0 = prev->t0; /* the same scope again: continue its slice */
                json_decref(prev->args);
                b->n--;
                t->last = 0;
            }
            break;
        }
        case TLY_EV_STAGE_END:
            pop_to(b, t, C_STAGE, e->stage, e->t_ns);
            close_top(b, t, e->t_ns);
            break;
        case TLY_EV_CHUNK_BEGIN:
            push(t, C_CHUNK, e->stage, e);
            break;
        case TLY_EV_CODEC_BEGIN:
            push(t, C_CODEC, e->stage, e);
            break;
        case TLY_EV_CHUNK_END:
        case TLY_EV_CODEC_END: {
            enum cat c = e->kind == TLY_EV_CHUNK_END ? C_CHUNK : C_CODEC;
            struct open *o = pop_to(b, t, c, -1, e->t_ns);
            if (o->ev == NULL)
                o->ev = e; /* begun before the window: named by its end */
            size_t at = b->n;
            close_top(b, t, e->t_ns);
            if (c == C_CODEC && b->n > at)
                json_object_set_new(b->s[at].args, "bytes_out", json_integer((json_int_t)e->a));
            break;
        }
        case TLY_EV_WAIT: {
            char name[48];
            snprintf(name, sizeof name, "wait: %s", tly_wait_name((enum tly_wait)e->c));
            add_slice(b, t->tid, e->t_ns - e->a, e->t_ns, C_WAIT, e->stage, name,
                      json_pack("{s:s}", "for", tly_wait_name((enum tly_wait)e->c)));
            break;
        }
        case TLY_EV_COPY:
            json_array_append_new(b->out, json_pack("{s:s, s:s, s:s, s:s, s:I, s:i, s:I, s:{s:I, s:s}}", "name", "copy",
                                                    "cat", "copy", "ph", "i", "s", "t", "ts_ns", ns(b, e->t_ns), "pid",
                                                    0, "tid", (json_int_t)t->tid, "args", "bytes", (json_int_t)e->a,
                                                    "stage", tly_stage_name((enum tly_stage)e->stage)));
            break;
        case TLY_EV_WORKER:
            t->worker |= e->c != 0;
            break;
        case TLY_EV_HTTP_BEGIN:
            reqs[nreq++] = (struct req){e->a, e};
            break;
        case TLY_EV_HTTP_END:
            http_end(b, reqs, &nreq, e);
            break;
        }
    }
    for (int i = 0; i < b->nthr; i++)
        while (b->thr[i].depth > 0)
            close_top(b, &b->thr[i], b->t1);
    free(reqs);
}

/* Whether interval @p r nests with every slice of track @p tid (contains it, is inside it, or misses it). */
static bool nests(const struct build *b, uint32_t tid, const struct slice *r)
{
    for (size_t i = 0; i < b->n; i++) {
        const struct slice *s = &b->s[i];
        if (s == r || s->tid != tid)
            continue;
        bool apart = s->t1 <= r->t0 || r->t1 <= s->t0;
        bool in = s->t0 <= r->t0 && r->t1 <= s->t1, around = r->t0 <= s->t0 && s->t1 <= r->t1;
        if (!apart && !in && !around)
            return false;
    }
    return true;
}

/* Each request on its worker's track when it nests there, else on the first of the worker's lanes where it does. */
static void place_requests(struct build *b)
{
    for (size_t i = 0; i < b->n; i++) {
        struct slice *r = &b->s[i];
        if (r->cat != C_HTTP)
            continue;
        struct thr *w = thread_of(b, r->worker_tid);
        r->tid = r->worker_tid;
        for (int lane = 1; w && !nests(b, r->tid, r); lane++) {
            r->tid = LANE_TID + (uint32_t)w->order * 64 + (uint32_t)lane;
            if (lane > w->lanes)
                w->lanes = lane;
        }
    }
}

static void flow(struct build *b, uint32_t from_tid, uint64_t from_t, uint32_t to_tid, uint64_t to_t, const char *name)
{
    int id = ++b->flow_id;
    json_array_append_new(b->out,
                          json_pack("{s:s, s:s, s:s, s:i, s:I, s:i, s:I}", "name", name, "cat", "flow", "ph", "s", "id",
                                    id, "ts_ns", ns(b, from_t), "pid", 0, "tid", (json_int_t)from_tid));
    json_array_append_new(b->out,
                          json_pack("{s:s, s:s, s:s, s:s, s:i, s:I, s:i, s:I}", "name", name, "cat", "flow", "ph", "f",
                                    "bp", "e", "id", id, "ts_ns", ns(b, to_t), "pid", 0, "tid", (json_int_t)to_tid));
}

static bool is_encode(const struct slice *s)
{
    return (s->cat == C_STAGE && s->stage == TLY_ENCODE) || (s->cat == C_CODEC && strstr(s->name, "encode"));
}

/* Within each chunk: its first encode to the first put that starts at or after it; a put to each
 * request it sent that sits on a lane. */
static void flows(struct build *b)
{
    for (size_t i = 0; i < b->n; i++) {
        const struct slice *c = &b->s[i];
        if (c->cat == C_HTTP && c->tid != c->worker_tid) {
            flow(b, c->worker_tid, c->t0, c->tid, c->t0, "sent");
            continue;
        }
        if (c->cat != C_CHUNK)
            continue;
        const struct slice *enc = NULL, *put = NULL;
        for (size_t k = 0; k < b->n; k++) {
            const struct slice *s = &b->s[k];
            if (s->tid != c->tid || s->t0 < c->t0 || s->t1 > c->t1)
                continue;
            if (is_encode(s) && (!enc || s->t0 < enc->t0))
                enc = s;
        }
        for (size_t k = 0; enc && k < b->n; k++) {
            const struct slice *s = &b->s[k];
            if (s->tid == c->tid && s->cat == C_STAGE && s->stage == TLY_PUT && s->t0 >= enc->t0 && s->t1 <= c->t1 &&
                (!put || s->t0 < put->t0))
                put = s;
        }
        if (enc && put)
            flow(b, c->tid, enc->t0, c->tid, put->t0, "encode to put");
    }
}

static json_t *meta_event(const char *what, uint32_t tid, json_t *args)
{
    return json_pack("{s:s, s:s, s:i, s:I, s:o}", "name", what, "ph", "M", "pid", 0, "tid", (json_int_t)tid, "args",
                     args);
}

/* Thread names and order: main, the workers (each followed by its lanes), then the rest. */
static void thread_meta(struct build *b)
{
    uint32_t main_tid = (uint32_t)getpid();
    int nworker = 0, nother = 0, sort = 0;
    for (int pass = 0; pass < 3; pass++)
        for (int i = 0; i < b->nthr; i++) {
            struct thr *t = &b->thr[i];
            bool is_main = t->tid == main_tid;
            if ((pass == 0) != is_main || (pass == 1 && !t->worker) || (pass == 2 && (t->worker || is_main)))
                continue;
            char name[64];
            if (is_main)
                snprintf(name, sizeof name, "main%s", t->worker ? " (worker 0)" : "");
            else if (t->worker)
                snprintf(name, sizeof name, "worker %d", ++nworker);
            else if (t->first_stage == TLY_HTTP)
                snprintf(name, sizeof name, "S3 loop (http)");
            else
                snprintf(name, sizeof name, "thread %d (%s)", ++nother,
                         tly_stage_name((enum tly_stage)(t->first_stage < 0 ? TLY_UNSTAGED : t->first_stage)));
            json_array_append_new(b->out, meta_event("thread_name", t->tid, json_pack("{s:s}", "name", name)));
            json_array_append_new(b->out,
                                  meta_event("thread_sort_index", t->tid, json_pack("{s:i}", "sort_index", sort++)));
            for (int l = 1; l <= t->lanes; l++) {
                char lane[96];
                uint32_t tid = LANE_TID + (uint32_t)t->order * 64 + (uint32_t)l;
                snprintf(lane, sizeof lane, "%s · requests %d", name, l);
                json_array_append_new(b->out, meta_event("thread_name", tid, json_pack("{s:s}", "name", lane)));
                json_array_append_new(b->out,
                                      meta_event("thread_sort_index", tid, json_pack("{s:i}", "sort_index", sort++)));
            }
        }
}

json_t *tly_h_trace_events(uint64_t t0_ns, uint64_t t1_ns, uint64_t *dropped)
{
    struct build b = {.t0 = t0_ns, .t1 = t1_ns, .out = json_array()};
    tly_trace_count(dropped);
    read_ring(&b);
    place_requests(&b);
    thread_meta(&b);
    for (size_t i = 0; i < b.n; i++) {
        struct slice *s = &b.s[i];
        if (s->cat == C_HTTP && s->tid != s->worker_tid)
            json_object_set_new(s->args, "worker_tid", json_integer((json_int_t)s->worker_tid));
        json_array_append_new(b.out, json_pack("{s:s, s:s, s:s, s:I, s:I, s:i, s:I, s:o}", "name", s->name, "cat",
                                               cat_names[s->cat], "ph", "X", "ts_ns", ns(&b, s->t0), "dur_ns",
                                               (json_int_t)(s->t1 - s->t0), "pid", 0, "tid", (json_int_t)s->tid, "args",
                                               s->args));
    }
    flows(&b);
    free(b.s);
    return b.out;
}
