/*
 * What every room of the harness shares (harness/README.md): exit statuses, paths, byte counts as
 * text, and the one place that starts child processes. The harness uses libtally's public API only.
 */
#ifndef TLY_H_HARNESS_H
#define TLY_H_HARNESS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

#include <jansson.h>

/** Exit statuses of the tally command. */
enum { TLY_EXIT_OK = 0, TLY_EXIT_BUDGET = 1, TLY_EXIT_ERROR = 2, TLY_EXIT_SKIP = 77 };

/** Room for a path the harness builds (longer ones are refused, never truncated). */
#define TLY_H_PATH 4096

/** printf into @p buf (TLY_H_PATH bytes); TLY_EUSAGE naming the start of the path when it does not fit. */
int tly_h_pathf(char *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** mkdir -p. 0 or an error naming the directory. */
int tly_h_mkdirs(const char *dir);

/** True when @p word is one of @p words (a NULL-terminated list). */
bool tly_h_word_in(const char *const *words, const char *word);

/** Human-readable bytes ("95.4 MiB") into @p buf. */
const char *tly_h_bytes(char *buf, size_t cap, double bytes);

/** The path of the running tally command (or scenario program). */
const char *tly_h_self(void);

/** The directory of the running program (where libtally-preload.so and scenario programs are built). */
const char *tly_h_self_dir(void);

/**
 * A file of the project by its path relative to the source tree ("scenarios/matrix.json",
 * "harness/impl/gdal.py") into @p out (TLY_H_PATH bytes): in the current directory when it is there,
 * else in the tree tally was built from.
 */
void tly_h_project_file(const char *rel, char *out);

/** Seconds on CLOCK_MONOTONIC. */
double tly_h_now_s(void);

/** Print "tally CMD: <the thread's error message, or the code's name>" on stderr; returns TLY_EXIT_ERROR. */
int tly_h_fail_cmd(const char *cmd, int err);

/** What a child process did. */
struct tly_h_child {
    char *out, *err; /**< everything it printed (malloc'd, NUL-terminated), or NULL when dropped */
    int status;      /**< its wait status */
    bool timed_out;  /**< it ran past tly_h_spawn_timeout()'s limit and was killed, with its process group */
};

/**
 * From now on, tly_h_spawn() gives each child at most @p seconds (0: no limit, the default): a child
 * still running then is killed with everything it started (it runs in a process group of its own
 * while a limit is set) and its tly_h_child says timed_out.
 */
void tly_h_spawn_timeout(double seconds);

/** A variable to set (value) or unset (NULL value) in a child's environment. */
struct tly_h_env {
    const char *name, *value;
};

/**
 * Run @p path (a bare name is looked up on PATH) with @p argv and @p env applied to its environment
 * (@p nenv entries), collecting stdout and stderr (@p keep_err false: stderr passes through to ours).
 * Returns 0, or -errno when it could not start.
 */
int tly_h_spawn(const char *path, char *const argv[], const struct tly_h_env *env, int nenv, bool keep_err,
                struct tly_h_child *out);

/** Told when a spawned program started (its pid), and when it ended, before it is reaped. */
struct tly_h_spawn_watch {
    void (*started)(pid_t pid, void *arg);
    void (*ended)(void *arg);
    void *arg;
};

/** Watch the next tly_h_spawn() (only that one): told when its child started and when it ended. */
void tly_h_spawn_watch_next(const struct tly_h_spawn_watch *watch);

/**
 * Run @p path as tly_h_spawn() does, but with our stdin, stdout and stderr (the program talks to the
 * user); its wait status into @p status. SIGTERM, SIGINT and SIGHUP sent to us while it runs are
 * passed on to it (not a terminal's, which reached it already), and we wait for it to end. Returns 0,
 * or -errno when it could not start (ENOENT: not found). @p watch (or NULL) is told when
 * it started and when it ended, before it is reaped.
 */
int tly_h_spawn_inherit(const char *path, char *const argv[], const struct tly_h_env *env, int nenv, int *status,
                        const struct tly_h_spawn_watch *watch);

/** Free what tly_h_spawn() collected. */
void tly_h_child_free(struct tly_h_child *c);

/** The machine: {"cpus", "mem_bytes", "cpu_model", "kernel"}; a new reference. */
json_t *tly_h_host_json(void);

/** Into @p doc: git_commit (the source tree's HEAD) and git_dirty (tracked files changed), or nulls
 *  when git cannot say. */
void tly_h_git_state(json_t *doc);

/** @p t as an ISO 8601 UTC date, "2026-12-07T14:30:50Z", into @p buf (32 bytes). */
void tly_h_utc_date(time_t t, char buf[32]);

/** The last non-empty line of @p s (for a one-line reason), in a static buffer; "no message" when none. */
const char *tly_h_last_line(const char *s);

#endif
