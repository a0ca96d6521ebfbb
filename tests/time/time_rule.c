/*
 * The bottleneck rule (harness/cell/timing.c) on synthetic stage-time tables: each branch, in its
 * order, with the figures its sentence names. Nothing is measured here.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "cell/result.h"

/* A table: wall 1 s, 2 threads, 8 chunks, 2 workers each 1 s, and the waits and stages given. */
static json_t *time_of(double ticket, double gate, double io, double cpu, bool remote, double in_flight, int chunks)
{
    return json_pack("{s:f, s:i, s:i, s:i, s:i, s:b, s:f, s:{s:f, s:f, s:f, s:f, s:f}, s:i, s:f}", "wall_s", 1.0,
                     "workers", 2, "threads", 2, "io_concurrency", 8, "chunks", chunks, "remote", remote, "worker_s",
                     2.0, "waits", "ticket_s", ticket, "gate_s", gate, "io_s", io, "poll_s", 0.0, "cpu_s", cpu,
                     "http_requests", 10, "http_in_flight", in_flight);
}

static json_t *stage(double busy, double waiting)
{
    return json_pack("{s:f, s:f, s:f, s:f}", "busy_s", busy, "waiting_s", waiting, "busy_fraction", busy / 2,
                     "busy_threads", busy);
}

static const char *verdict(json_t *st, json_t *time, char *sentence, size_t cap)
{
    static char resource[32];
    json_t *b = tly_h_bottleneck(st, time);
    snprintf(resource, sizeof resource, "%s", json_string_value(json_object_get(b, "resource")));
    snprintf(sentence, cap, "%s", json_string_value(json_object_get(b, "sentence")));
    json_decref(b);
    json_decref(st);
    json_decref(time);
    return resource;
}

Test(rule, memory_first_when_tickets_held_a_quarter_of_the_workers_time)
{
    char s[400];
    json_t *st = json_pack("{s:o, s:o}", "encode", stage(1.0, 0), "pool", stage(0, 0.76));
    cr_expect_str_eq(verdict(st, time_of(0.76, 0, 0, 0, false, 0, 8), s, sizeof s), "memory");
    cr_expect(strstr(s, "memory-bound: workers waited 38% of the time for tickets; raise --memory-limit"), "%s", s);
}

Test(rule, remote_memory_says_the_tickets_were_held_by_requests_out)
{
    char s[400];
    json_t *st = json_pack("{s:o, s:o}", "decode", stage(0.5, 0), "pool", stage(0, 1.0));
    cr_expect_str_eq(verdict(st, time_of(1.0, 0, 0.6, 0, true, 6.5, 8), s, sizeof s), "memory");
    cr_expect(strstr(s, "memory-bound: workers waited 50% of the time for tickets, held while their requests were out "
                        "(6.5 in flight on average, workers waited 30% of the time for HTTP answers); raise "
                        "--memory-limit"),
              "%s", s);
}

Test(rule, encode_when_the_codec_fills_three_quarters_of_its_threads)
{
    char s[400];
    json_t *st = json_pack("{s:o, s:o}", "encode", stage(1.96, 0), "put", stage(0.29, 0));
    cr_expect_str_eq(verdict(st, time_of(0.1, 0, 0, 0, false, 0, 8), s, sizeof s), "encode");
    cr_expect(strstr(s, "encode-bound: encode busy 1.96 of 2 threads; put idle 71%; raise --threads"), "%s", s);
}

Test(rule, one_chunk_the_codec_capacity_is_one_thread)
{
    char s[400];
    json_t *st = json_pack("{s:o, s:o}", "decode", stage(0.9, 0), "get", stage(0.05, 0.02));
    cr_expect_str_eq(verdict(st, time_of(0, 0, 0.02, 0, false, 0, 1), s, sizeof s), "decode");
    cr_expect(strstr(s, "decode busy 0.90 of 1 thread;") && strstr(s, "more chunks would use the idle threads"), "%s",
              s);
}

Test(rule, one_chunk_whose_codec_runs_on_its_threads_has_them_all)
{
    char s[400];
    json_t *st = json_pack("{s:o, s:o}", "encode", stage(1.7, 0), "put", stage(0.2, 0));
    json_t *t = time_of(0, 0, 0.1, 0, false, 0, 1);
    json_object_set_new(t, "chunk_threads", json_integer(2)); /* blosc's blocks on both threads */
    cr_expect_str_eq(verdict(st, t, s, sizeof s), "encode");
    cr_expect(strstr(s, "encode busy 1.70 of 2 threads;") && strstr(s, "raise --threads"), "%s", s);
    st = json_pack("{s:o, s:o}", "decode", stage(0.9, 0), "get", stage(0.05, 0.02));
    t = time_of(0, 0, 0.02, 0, false, 0, 1);
    json_object_set_new(t, "chunk_threads", json_integer(1)); /* a zstd frame: one thread by its format */
    verdict(st, t, s, sizeof s);
    cr_expect(strstr(s, "decode busy 0.90 of 1 thread;") && strstr(s, "one thread by its format"), "%s", s);
}

Test(rule, the_codec_gate_makes_it_codec_bound)
{
    char s[400];
    json_t *st = json_pack("{s:o, s:o}", "encode", stage(1.2, 0.6), "put", stage(0.1, 0.3));
    cr_expect_str_eq(verdict(st, time_of(0, 0.6, 0.3, 0, true, 2, 8), s, sizeof s), "encode");
    cr_expect(strstr(s, "30% of the time at the codec gate"), "%s", s);
}

Test(rule, http_when_workers_wait_for_answers_half_their_time)
{
    char s[400];
    json_t *st = json_pack("{s:o, s:o}", "encode", stage(0.3, 0), "put", stage(0.05, 1.5));
    cr_expect_str_eq(verdict(st, time_of(0, 0, 1.5, 0, true, 3.2, 8), s, sizeof s), "http");
    cr_expect(strstr(s, "http-bound: workers waited 75% of the time for HTTP answers, 3.2 requests in flight") &&
                  strstr(s, "the store's bandwidth is the limit"),
              "%s", s);
    st = json_pack("{s:o}", "put", stage(0.05, 1.5));
    verdict(st, time_of(0, 0, 1.5, 0, true, 7.5, 8), s, sizeof s);
    cr_expect(strstr(s, "raise --io-concurrency") && !strstr(s, "busy"), "the transfers all in flight: %s", s);
    st = json_pack("{s:o, s:o}", "get", stage(0.01, 1.8), "http", stage(0.9, 0.05));
    verdict(st, time_of(0, 0, 1.8, 0, true, 7.5, 1), s, sizeof s);
    cr_expect(strstr(s, "the S3 client's loop thread was busy 90% of the time: it is the limit"), "%s", s);
    st = json_pack("{s:o, s:o}", "get", stage(0.01, 1.8), "decode", stage(0.6, 0)); /* read-s3-zstd-one-chunk */
    verdict(st, time_of(0, 0, 1.8, 0, true, 1.0, 1), s, sizeof s);
    cr_expect(strstr(s, "1.0 requests in flight") && strstr(s, "a lone chunk streamed by one GET"), "%s", s);
    st = json_pack("{s:o, s:o}", "get", stage(0.01, 1.8), "decode", stage(0.6, 0)); /* verdict() took the last */
    verdict(st, time_of(0, 0, 1.8, 0, true, 1.0, 4), s, sizeof s);
    cr_expect(strstr(s, "the store's bandwidth is the limit"), "chunks of their own, one at a time: %s", s);
}

Test(rule, storage_locally)
{
    char s[400];
    json_t *st = json_pack("{s:o}", "put", stage(0.2, 1.2));
    cr_expect_str_eq(verdict(st, time_of(0, 0, 1.2, 0, false, 0, 8), s, sizeof s), "storage");
    cr_expect(strstr(s, "blocked in pread/pwrite 60%"), "%s", s);
}

Test(rule, cpu_when_workers_wait_to_run)
{
    char s[400];
    json_t *st = json_pack("{s:o}", "put", stage(0.6, 0.8));
    cr_expect_str_eq(verdict(st, time_of(0, 0, 0.2, 0.6, false, 0, 8), s, sizeof s), "cpu");
    cr_expect(strstr(s, "waited 30% of the time for a CPU"), "%s", s);
}

Test(rule, otherwise_the_busiest_stage_or_none)
{
    char s[400];
    json_t *st = json_pack("{s:o, s:o}", "scatter", stage(1.7, 0), "decode", stage(0.2, 0));
    cr_expect_str_eq(verdict(st, time_of(0, 0, 0, 0, false, 0, 8), s, sizeof s), "scatter");
    cr_expect(strstr(s, "scatter-bound: scatter busy 1.70 of 2 threads"), "%s", s);
    st = json_pack("{s:o, s:o}", "decode", stage(0.8, 0), "unstaged", stage(1.9, 0));
    cr_expect_str_eq(verdict(st, time_of(0.1, 0, 0.1, 0, false, 0, 8), s, sizeof s), "none");
    cr_expect(strstr(s, "not bound by one resource: decode busy 0.80 of 2 threads"), "unstaged is no stage's work: %s",
              s);
}

Test(rule, unknown_without_worker_time)
{
    char s[400];
    json_t *time = time_of(0, 0, 0, 0, false, 0, 8);
    json_object_set_new(time, "worker_s", json_real(0));
    cr_expect_str_eq(verdict(json_object(), time, s, sizeof s), "unknown");
}

/* The machine's CPU time where an S3 server on it shares the CPUs (the bench's, rule 0). */
static json_t *on_machine(json_t *t, double process, double server)
{
    json_object_update_new(
        t, json_pack("{s:i, s:f, s:f}", "machine_cpus", 2, "process_cpu_s", process, "server_cpu_s", server));
    return t;
}

Test(rule, cpu_first_when_the_process_and_its_s3_server_fill_the_machine)
{
    char s[400];
    json_t *st = json_pack("{s:o, s:o}", "decode", stage(1.33, 0), "pool", stage(0, 1.6));
    cr_expect_str_eq(verdict(st, on_machine(time_of(1.6, 0, 0.2, 0, true, 3.5, 256), 1.0, 0.8), s, sizeof s), "cpu");
    cr_expect(strstr(s, "cpu-bound: the machine's 2 CPUs were busy 90% of the time (this process 1.00 CPU-s, the S3 "
                        "server on the same machine 0.80, in 1.00 s); decode busy 1.33 of 2 threads; workers waited "
                        "80% of the time for tickets, but a larger budget adds no CPU; the CPUs are the limit"),
              "%s", s);
}

Test(rule, machine_cpu_under_its_share_leaves_the_stage_rules)
{
    char s[400];
    json_t *st = json_pack("{s:o, s:o}", "decode", stage(1.33, 0), "pool", stage(0, 1.6));
    /* 84% of the machine: the tickets' verdict stands */
    cr_expect_str_eq(verdict(st, on_machine(time_of(1.6, 0, 0.2, 0, true, 3.5, 256), 1.0, 0.68), s, sizeof s),
                     "memory");
    /* every CPU busy, but no server measured (a local run, or a server elsewhere): the stage rules */
    st = json_pack("{s:o, s:o}", "decode", stage(1.33, 0), "pool", stage(0, 1.6));
    cr_expect_str_eq(verdict(st, on_machine(time_of(1.6, 0, 0.2, 0, true, 3.5, 256), 2.0, 0), s, sizeof s), "memory");
}

Test(rule, cpu_with_no_codec_names_no_codec)
{
    char s[400];
    json_t *st = json_pack("{s:o}", "get", stage(0.3, 1.5));
    cr_expect_str_eq(verdict(st, on_machine(time_of(0, 0, 1.5, 0, true, 20, 256), 0.6, 1.3), s, sizeof s), "cpu");
    cr_expect(strstr(s,
                     "(this process 0.60 CPU-s, the S3 server on the same machine 1.30, in 1.00 s); the CPUs are the "
                     "limit") &&
                  !strstr(s, "busy 0.00"),
              "%s", s);
}
