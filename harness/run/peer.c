/*
 * tally peer: the local cells run by the peer (Debian's zarr-python 2.13, /usr/bin/python3), each in a
 * process of its own, measured by harness/peer_zarr_python.py; rows added to the same tables.
 */
#include <getopt.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "harness.h"
#include "run/matrix.h"
#include "tally/error.h"

static json_t *run_peer(const char *script, json_t *cell)
{
    char *spec = json_dumps(cell, JSON_COMPACT);
    char *argv[] = {"/usr/bin/python3", (char *)script, spec, NULL};
    struct tly_h_child ch;
    json_t *res = NULL;
    if (tly_h_spawn(argv[0], argv, NULL, 0, false, &ch) == 0 && WIFEXITED(ch.status) && WEXITSTATUS(ch.status) == 0)
        res = json_loads(ch.out ? ch.out : "", 0, NULL);
    tly_h_child_free(&ch);
    free(spec);
    return res;
}

int tly_h_cmd_peer(int argc, char **argv)
{
    static const struct option opts[] = {
        {"filter", required_argument, NULL, 'f'}, {"out", required_argument, NULL, 'o'}, {NULL, 0, NULL, 0}};
    const char *filter = NULL, *out = "reports/latest";
    for (int ch; (ch = tly_h_getopt(argc, argv, opts)) != -1;) {
        if (ch == 'f')
            filter = optarg;
        else if (ch == 'o')
            out = optarg;
        else
            return tly_h_usage_error("peer");
    }
    if (optind != argc)
        return tly_h_usage_error("peer");
    char path[TLY_H_PATH], script[TLY_H_PATH];
    tly_h_matrix_default(path);
    tly_h_project_file("harness/run/peer_zarr_python.py", script);
    json_t *cells;
    if (tly_h_matrix_load(path, &cells) != 0) {
        fprintf(stderr, "tally peer: %s\n", tly_errmsg());
        return TLY_EXIT_ERROR;
    }
    regex_t re;
    if (filter && regcomp(&re, filter, REG_EXTENDED | REG_NOSUB) != 0) {
        fprintf(stderr, "tally peer: --filter '%s' is not a regular expression\n", filter);
        json_decref(cells);
        return TLY_EXIT_ERROR;
    }
    json_t *peers = json_array();
    int errors = 0;
    size_t i;
    json_t *c;
    json_array_foreach(cells, i, c)
    {
        const char *name = json_string_value(json_object_get(c, "scenario"));
        const char *store = json_string_value(json_object_get(c, "store"));
        if (json_object_get(c, "program") || !store || strcmp(store, "local") != 0)
            continue;
        if (filter && regexec(&re, name, 0, NULL, 0) != 0)
            continue;
        json_t *r = run_peer(script, c);
        if (r == NULL) {
            fprintf(stderr, "tally peer: %s: zarr-python did not run (is python3-zarr installed?)\n", name);
            r = json_pack("{s:s, s:s, s:s}", "scenario", name, "status", "failed", "reason", "the peer did not run");
            errors++;
        }
        fprintf(stderr, "peer %s: %s\n", name, json_string_value(json_object_get(r, "status")));
        json_array_append_new(peers, r);
    }
    if (filter)
        regfree(&re);
    json_decref(cells);
    snprintf(path, sizeof path, "%s/peer.json", out);
    int rc = json_dump_file(peers, path, JSON_INDENT(1)) == 0 ? TLY_EXIT_OK : TLY_EXIT_ERROR;
    json_decref(peers);
    if (rc != TLY_EXIT_OK) {
        fprintf(stderr, "tally peer: cannot write %s\n", path);
        return rc;
    }
    printf("tally peer: %s\n", path);
    /* fold the peer rows into the reports when the run's results are there */
    snprintf(path, sizeof path, "%s/results.json", out);
    if (access(path, R_OK) == 0) {
        char *args[] = {"report", (char *)out, NULL};
        optind = 1;
        rc = tly_h_cmd_report(2, args);
    }
    return errors ? TLY_EXIT_ERROR : rc;
}
