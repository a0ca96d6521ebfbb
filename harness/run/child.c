/*
 * One cell in its own process. Parent side: start `tally scenario CELL` and take its result. Child
 * side: make the data, open the window, write or read through the engine, close the window, verify,
 * and describe what happened as a result object.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cell/result.h"
#include "run/run.h"

bool tly_h_s3_configured(void)
{
    return getenv("AWS_ENDPOINT_URL") && getenv("TALLY_S3_BUCKET");
}

static void say_status(const struct tly_h_child *ch, char *reason)
{
    if (WIFSIGNALED(ch->status))
        snprintf(reason, TLY_H_REASON, "the scenario died of signal %d: %s", WTERMSIG(ch->status),
                 tly_h_last_line(ch->err));
    else
        snprintf(reason, TLY_H_REASON, "%s", tly_h_last_line(ch->err));
}

json_t *tly_h_child_run(json_t *cell, const struct tly_h_env *env, int nenv, char *const *wrap, char *reason)
{
    char *spec = json_dumps(cell, JSON_COMPACT);
    const char *prog = json_string_value(json_object_get(cell, "program_path"));
    char file[] = "/tmp/tally-result-XXXXXX";
    int fd = wrap ? mkstemp(file) : -1;
    if (fd >= 0)
        close(fd);
    char *argv[16];
    int k = 0;
    for (; wrap && wrap[k] && k < 10; k++)
        argv[k] = wrap[k];
    argv[k++] = prog ? (char *)prog : (char *)tly_h_self();
    argv[k++] = prog ? "--scenario" : "scenario";
    argv[k++] = spec;
    argv[k] = NULL;
    struct tly_h_env all[8];
    int n = 0;
    for (; n < nenv && n < 7; n++)
        all[n] = env[n];
    if (fd >= 0)
        all[n++] = (struct tly_h_env){"TALLY_RESULT_FILE", file};
    struct tly_h_child ch;
    int rc = tly_h_spawn(argv[0], argv, all, n, true, &ch);
    free(spec);
    json_t *res = NULL;
    if (rc != 0)
        snprintf(reason, TLY_H_REASON, "%s: %s", argv[0], strerror(-rc));
    else if (ch.timed_out)
        snprintf(reason, TLY_H_REASON, "timeout: the cell ran past --cell-timeout and was killed: %s",
                 tly_h_last_line(ch.err));
    else if (!WIFEXITED(ch.status) || WEXITSTATUS(ch.status) != 0)
        say_status(&ch, reason);
    else if ((res = fd >= 0 ? json_load_file(file, 0, NULL) : json_loads(ch.out ? ch.out : "", 0, NULL)) == NULL)
        snprintf(reason, TLY_H_REASON, "the scenario printed no result object: %s", tly_h_last_line(ch.out));
    tly_h_child_free(&ch);
    if (fd >= 0)
        unlink(file);
    return res;
}

/* ---- the child side ---- */

struct place {
    char url[TLY_H_PATH], tmpdir[TLY_H_PATH];
};

static int make_url(const struct tly_h_cell *c, struct place *p)
{
    memset(p, 0, sizeof *p);
    if (strcmp(c->store, "s3") == 0) {
        if (!tly_h_s3_configured())
            return tly_fail(TLY_EUSAGE, "S3 cells need AWS_ENDPOINT_URL and TALLY_S3_BUCKET");
        return tly_h_pathf(p->url, "s3://%s/tally-run/%d-%s", getenv("TALLY_S3_BUCKET"), (int)getpid(), c->scenario);
    }
    const char *base = getenv("TMPDIR");
    int err = tly_h_pathf(p->tmpdir, "%s/tally-cell-XXXXXX", base && *base ? base : "/tmp");
    if (err)
        return err;
    if (mkdtemp(p->tmpdir) == NULL)
        return tly_fail_errno("%s", p->tmpdir);
    return tly_h_pathf(p->url, "%s/array", p->tmpdir);
}

static void cleanup(struct place *p)
{
    struct tly_store *st;
    if (p->url[0] && tly_store_open(p->url, NULL, &st) == 0) {
        tly_store_clear(st);
        tly_store_close(st);
    }
    if (p->tmpdir[0]) {
        rmdir(p->url);
        rmdir(p->tmpdir);
    }
}

/* After a write, outside the window: read the array back and compare with the data written. */
static bool read_back(const struct tly_h_cell *c, const char *url, const void *data, uint64_t bytes)
{
    struct tly_array *a;
    struct tly_region all;
    tly_region_all(&all, c->rank, c->shape);
    void *back;
    TLY_STAGE(TLY_CALLER)
    {
        back = tly_h_alloc_output(bytes);
    }
    bool ok = back && tly_array_open(url, &c->opts, &a) == 0;
    if (ok) {
        ok = tly_array_read(a, back, &all, NULL) == 0 && memcmp(back, data, bytes) == 0;
        tly_array_close(a);
    }
    TLY_STAGE(TLY_CALLER)
    {
        free(back);
    }
    return ok;
}

static void add_stacks(json_t *o)
{
    char *st = tly_stacks_json();
    json_t *sj = st ? json_loads(st, 0, NULL) : NULL;
    free(st);
    json_t *stacks = json_object_get(sj, "stacks");
    if (stacks)
        json_object_set(o, "stacks", stacks);
    json_decref(sj);
}

static json_t *describe(const struct tly_h_cell *c, struct tly_h_result *r, bool verified)
{
    json_t *o = tly_h_result_json(r, true);
    json_object_set_new(o, "scenario", json_string(c->scenario));
    json_object_set_new(o, "layout", json_string(c->layout));
    json_object_set_new(o, "threads", json_integer(c->opts.threads));
    json_object_set_new(o, "verified", json_boolean(verified));
    return o;
}

static int run_cell(const struct tly_h_cell *c, struct place *p, json_t **result)
{
    struct tly_meta m;
    int err = tly_h_cell_meta(c, &m);
    if (!err)
        err = make_url(c, p);
    if (err)
        return err;
    uint64_t bytes = tly_h_cell_bytes(c);
    struct tly_h_result r = {.op = c->op, .meta = &m, .store = c->store};
    void *data, *out = NULL;
    TLY_STAGE(TLY_CALLER)
    {
        data = malloc(bytes);
        if (data)
            tly_h_gen_all(data, bytes, &c->dtype);
    }
    if (data == NULL)
        return tly_fail(-ENOMEM, "out of memory for %llu bytes of data", (unsigned long long)bytes);
    tly_stacks_start();       /* the cell's call stacks (TALLY_PROFILE_STACKS=0: none) */
    tly_h_window_trace(true); /* the cell's trace, for trace.json and index.html */
    tly_h_window_resident(true);
    err = tly_h_measure_engine(c, p->url, &data, &r, &out);
    bool verified = false;
    if (!err)
        verified = !c->verify || (data            ? read_back(c, p->url, data, bytes)
                                  : c->has_region ? tly_h_gen_verify_region(out, &c->region, c->shape, &c->dtype)
                                                  : tly_h_gen_verify(out, bytes, &c->dtype));
    if (!err)
        TLY_STAGE(TLY_CALLER)
        {
            *result = describe(c, &r, verified);
        }
    free(data);
    free(out);
    if (!err && *result) /* the window's call stacks, named now that the cell's buffers are gone: naming
                          * (libdw) allocates several MB, which must not make the process's peak (heaptrack's) */
        add_stacks(*result);
    return err;
}

json_t *tly_h_cell_run(json_t *cell)
{
    struct tly_h_cell c;
    if (tly_h_cell_parse(cell, "the cell", &c) != 0)
        return NULL;
    struct place p = {0};
    json_t *o = NULL;
    int err = run_cell(&c, &p, &o);
    cleanup(&p);
    tly_h_cell_release(&c);
    return err ? NULL : o;
}

int tly_h_program_cell(int argc, char **argv, const char *prog, struct tly_h_cell *c)
{
    if (argc != 3 || strcmp(argv[1], "--scenario") != 0) {
        fprintf(stderr, "usage: %s --scenario CELL_JSON  (run by tally run)\n", prog);
        return TLY_EXIT_ERROR;
    }
    json_error_t je;
    json_t *j = json_loads(argv[2], 0, &je);
    int err = j ? tly_h_cell_parse(j, "the cell", c) : tly_fail(TLY_EFORMAT, "the cell is not JSON: %s", je.text);
    json_decref(j);
    if (err) {
        fprintf(stderr, "%s: %s\n", prog, tly_errmsg());
        return TLY_EXIT_ERROR;
    }
    return 0;
}

int tly_h_program_result(const char *prog, json_t *result)
{
    const char *file = getenv("TALLY_RESULT_FILE");
    int rc = TLY_EXIT_OK;
    if (file) {
        if (json_dump_file(result, file, JSON_COMPACT | JSON_REAL_PRECISION(6)) != 0) {
            fprintf(stderr, "%s: cannot write %s\n", prog, file);
            rc = TLY_EXIT_ERROR;
        }
    } else {
        json_dumpf(result, stdout, JSON_COMPACT | JSON_REAL_PRECISION(6));
        fputc('\n', stdout);
    }
    json_decref(result);
    return rc;
}
