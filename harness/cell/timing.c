/*
 * Where a window's time went: the stage-time table (busy and waiting seconds per stage, and the
 * shares they are of the wall time and of the workers' time), the waits by reason, and the
 * bottleneck verdict derived from them by one written rule (tly_h_bottleneck; README's "Where the
 * time goes" states it).
 */
#include <math.h>
#include <string.h>

#include "cell/result.h"

/* Stages whose busy time is the engine's work (not the caller's, not a thread between scopes). */
static bool engine_stage(int s)
{
    return s != TLY_CALLER && s != TLY_UNSTAGED;
}

json_t *tly_h_time_json(const struct tly_time_snapshot *a, const struct tly_time_snapshot *b, double wall_s,
                        const struct tly_io_stats *io, bool remote, json_t **stage_time)
{
    double workers = io && io->workers ? (double)io->workers : 1.0, wall = wall_s > 0 ? wall_s : 1e-9;
    json_t *st = json_object();
    for (int s = 0; s < TLY_NSTAGES; s++) {
        double busy = (double)(b->busy_ns[s] - a->busy_ns[s]) / 1e9;
        double waiting = (double)(b->waiting_ns[s] - a->waiting_ns[s]) / 1e9;
        if (busy <= 0 && waiting <= 0)
            continue;
        json_object_set_new(st, tly_stage_name((enum tly_stage)s),
                            json_pack("{s:f, s:f, s:f, s:f}", "busy_s", busy, "waiting_s", waiting, "busy_fraction",
                                      busy / (wall * workers), "busy_threads", busy / wall));
    }
    *stage_time = st;
    json_t *waits = json_object();
    for (int w = 0; w < TLY_NWAITS; w++) {
        char k[32];
        snprintf(k, sizeof k, "%s_s", tly_wait_name((enum tly_wait)w));
        json_object_set_new(waits, k, json_real((double)(b->wait_ns[w] - a->wait_ns[w]) / 1e9));
    }
    uint64_t reqs = b->http_requests - a->http_requests;
    double in_flight = reqs ? (double)(int64_t)(b->http_in_flight_ns - a->http_in_flight_ns) / 1e9 : 0.0;
    return json_pack("{s:f, s:I, s:i, s:i, s:i, s:I, s:b, s:f, s:o, s:I, s:f}", "wall_s", wall_s, "workers",
                     (json_int_t)(io ? io->workers : 0), "threads", io ? io->threads : 0, "chunk_threads",
                     io && io->chunk_threads > 0 ? io->chunk_threads : 1, "io_concurrency", io ? io->io_concurrency : 0,
                     "chunks", (json_int_t)(io ? io->chunks : 0), "remote", remote, "worker_s",
                     (double)(b->worker_ns - a->worker_ns) / 1e9, "waits", waits, "http_requests", (json_int_t)reqs,
                     "http_in_flight", in_flight > 0 ? in_flight / wall : 0.0);
}

static double num(json_t *o, const char *k)
{
    return json_number_value(json_object_get(o, k));
}

static double busy_of(json_t *stage_time, const char *stage)
{
    return num(json_object_get(stage_time, stage), "busy_s");
}

/* "0.96 of 1 thread" */
static void of_threads(char *buf, size_t cap, double busy_threads, double capacity)
{
    snprintf(buf, cap, "%.2f of %.0f thread%s", busy_threads, capacity, capacity == 1 ? "" : "s");
}

/* The share of the machine's CPU time above which a run is bound by its CPUs (rule 0). */
#define MACHINE_BUSY 0.85

json_t *tly_h_bottleneck(json_t *stage_time, json_t *time)
{
    double wall = num(time, "wall_s"), worker_s = num(time, "worker_s");
    json_t *waits = json_object_get(time, "waits");
    double threads = num(time, "threads"), chunks = num(time, "chunks"), io_conc = num(time, "io_concurrency");
    bool remote = json_is_true(json_object_get(time, "remote"));
    if (wall <= 0 || worker_s <= 0 || threads <= 0)
        return json_pack("{s:s, s:s}", "resource", "unknown", "sentence",
                         "unknown: no worker time was measured (time accounting off, or no chunk)");
    double ticket = num(waits, "ticket_s") / worker_s, gate = num(waits, "gate_s") / worker_s;
    double io = num(waits, "io_s") / worker_s, cpu = num(waits, "cpu_s") / worker_s;
    /* codec work runs on a chunk's threads: a lone chunk's share of the idle ones where its codec
     * can use them (blosc's blocks, zstd's encode workers), one where it cannot (a zstd frame's decode) */
    double per_chunk = num(time, "chunk_threads") >= 1 ? num(time, "chunk_threads") : 1;
    double cap = chunks > 0 && chunks < threads ? fmin(threads, chunks * per_chunk) : threads;
    double enc = busy_of(stage_time, "encode") / wall, dec = busy_of(stage_time, "decode") / wall;
    const char *codec = enc >= dec ? "encode" : "decode";
    double codec_busy = enc >= dec ? enc : dec;
    const char *io_stage = json_object_get(stage_time, "put") ? "put" : "get";
    json_t *io_st = json_object_get(stage_time, io_stage);
    double io_idle = 1.0 - fmin(1.0, (num(io_st, "busy_s") + num(io_st, "waiting_s")) / wall);
    char text[400], a[64];
    const char *resource;
    /* the machine's CPUs where an S3 server on it shares them and the run measured its CPU too (the
     * bench against scripts/s3-server): its work is in no stage of this process, so the stage rules
     * below would name a wait (tickets, HTTP answers) that no budget or transfer can shorten */
    double cpus = num(time, "machine_cpus"), server = num(time, "server_cpu_s");
    double used = num(time, "process_cpu_s") + server;
    if (cpus > 0 && server > 0 && used >= MACHINE_BUSY * cpus * wall) {
        resource = "cpu";
        of_threads(a, sizeof a, codec_busy, cap);
        int n =
            snprintf(text, sizeof text,
                     "cpu-bound: the machine's %.0f CPUs were busy %.0f%% of the time (this process %.2f CPU-s, the "
                     "S3 server on the same machine %.2f, in %.2f s)",
                     cpus, 100 * fmin(1.0, used / (cpus * wall)), used - server, server, wall);
        if (codec_busy >= 0.005) /* none when there is no codec work */
            n += snprintf(text + n, sizeof text - (size_t)n, "; %s busy %s", codec, a);
        if (ticket >= 0.25)
            n += snprintf(text + n, sizeof text - (size_t)n,
                          "; workers waited %.0f%% of the time for tickets, but a larger budget adds no CPU",
                          100 * ticket);
        snprintf(text + n, sizeof text - (size_t)n, "; the CPUs are the limit");
    } else if (ticket >= 0.25) {
        resource = "memory";
        int n =
            snprintf(text, sizeof text, "memory-bound: workers waited %.0f%% of the time for tickets", 100 * ticket);
        double in_flight = num(time, "http_in_flight");
        if (remote && io >= 0.05) /* the budget was held by buffers waiting on the server */
            n += snprintf(text + n, sizeof text - (size_t)n,
                          ", held while their requests were out (%.1f in flight on average, workers waited %.0f%% "
                          "of the time for HTTP answers)",
                          in_flight, 100 * io);
        snprintf(text + n, sizeof text - (size_t)n, "; raise --memory-limit");
    } else if (codec_busy >= 0.75 * cap || gate >= 0.25) {
        resource = codec;
        of_threads(a, sizeof a, codec_busy, cap);
        int n = snprintf(text, sizeof text, "%s-bound: %s busy %s", codec, codec, a);
        if (gate >= 0.05)
            n += snprintf(text + n, sizeof text - (size_t)n, "; workers waited %.0f%% of the time at the codec gate",
                          100 * gate);
        snprintf(text + n, sizeof text - (size_t)n, "; %s idle %.0f%%; %s", io_stage, 100 * io_idle,
                 cap >= threads   ? "raise --threads"
                 : per_chunk <= 1 ? "a chunk's codec work runs on one thread by its format (a zstd frame decodes "
                                    "on one thread): more chunks would use the idle threads"
                                  : "more chunks would use the idle threads");
    } else if (io >= 0.5) {
        resource = remote ? "http" : "storage";
        char busy[96] = "";
        if (codec_busy >= 0.005) { /* "; encode busy 0.30 of 2 threads" (none when there is no codec work) */
            of_threads(a, sizeof a, codec_busy, cap);
            snprintf(busy, sizeof busy, "; %s busy %s", codec, a);
        }
        double in_flight = num(time, "http_in_flight");
        double loop = num(json_object_get(stage_time, "http"), "busy_s") / wall; /* one S3 loop thread */
        char advice[96];
        if (loop >= 0.75)
            snprintf(advice, sizeof advice, "the S3 client's loop thread was busy %.0f%% of the time: it is the limit",
                     100 * fmin(loop, 1.0));
        else if (remote && chunks == 1 && in_flight < 1.5) /* read.c: a lone streamed chunk is one GET */
            snprintf(advice, sizeof advice, "a lone chunk streamed by one GET: that one request's rate is the limit");
        else
            snprintf(advice, sizeof advice, "%s",
                     in_flight >= 0.75 * io_conc ? "raise --io-concurrency" : "the store's bandwidth is the limit");
        if (remote)
            snprintf(text, sizeof text,
                     "http-bound: workers waited %.0f%% of the time for HTTP answers, %.1f requests in flight on "
                     "average (--io-concurrency %.0f)%s; %s",
                     100 * io, in_flight, io_conc, busy, advice);
        else
            snprintf(text, sizeof text,
                     "storage-bound: workers were blocked in pread/pwrite %.0f%% of the time%s; the disk is the limit",
                     100 * io, busy);
    } else if (cpu >= 0.25) {
        resource = "cpu";
        char busy[96] = "";
        if (codec_busy >= 0.005) {
            of_threads(a, sizeof a, codec_busy, cap);
            snprintf(busy, sizeof busy, "; %s busy %s", codec, a);
        }
        snprintf(text, sizeof text,
                 "cpu-bound: workers waited %.0f%% of the time for a CPU inside get/put (runnable while every core "
                 "ran other work)%s; the machine is busier than --threads %.0f",
                 100 * cpu, busy, threads);
    } else {
        /* no resource saturated: name the busiest engine stage */
        const char *top = NULL;
        double top_busy = 0;
        const char *k;
        json_t *v;
        json_object_foreach(stage_time, k, v)
        {
            int s = tly_stage_from_name(k);
            if (s >= 0 && engine_stage(s) && num(v, "busy_s") > top_busy) {
                top = k;
                top_busy = num(v, "busy_s");
            }
        }
        double top_threads = top_busy / wall, all = threads > cap ? threads : cap;
        of_threads(a, sizeof a, top_threads, all);
        if (top && top_threads >= 0.75 * all) {
            resource = top;
            snprintf(text, sizeof text, "%s-bound: %s busy %s; raise --threads", top, top, a);
        } else {
            resource = "none";
            snprintf(text, sizeof text,
                     "not bound by one resource: %s busy %s; waits: tickets %.0f%%, codec gate %.0f%%, I/O %.0f%% "
                     "of the workers' time",
                     top ? top : "no stage", a, 100 * ticket, 100 * gate, 100 * io);
        }
    }
    json_t *out = json_pack("{s:s, s:s, s:{s:f, s:f, s:f, s:f, s:f, s:f}}", "resource", resource, "sentence", text,
                            "inputs", "ticket_share", ticket, "gate_share", gate, "io_share", io, "cpu_share", cpu,
                            "codec_busy_threads", codec_busy, "codec_capacity", cap);
    if (cpus > 0 && server > 0)
        json_object_set_new(json_object_get(out, "inputs"), "machine_cpu_share", json_real(used / (cpus * wall)));
    return out;
}

void tly_h_time_into(json_t *o, const struct tly_h_window *w, const struct tly_io_stats *io, bool remote)
{
    if (!tly_time_on()) {
        json_object_set_new(o, "stage_time", json_null());
        json_object_set_new(o, "bottleneck",
                            json_pack("{s:s, s:s}", "resource", "unknown", "sentence",
                                      "unknown: time accounting is off (TALLY_TRACK=0 or TALLY_TIME=0)"));
        return;
    }
    json_t *st = NULL, *time = tly_h_time_json(&w->time_before, &w->time_after, w->wall_s, io, remote, &st);
    json_object_set_new(o, "stage_time", st);
    json_object_set_new(o, "time", time);
    json_object_set_new(o, "bottleneck", tly_h_bottleneck(st, time));
}
