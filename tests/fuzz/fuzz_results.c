/*
 * libFuzzer: a results document (results.json) to the loader and its validator (tly_h_results_load,
 * as report and check read it) and, when it is accepted, to every report writer (copies.md,
 * index.html, trace.json, junit.xml) and to the gate against itself (check --update into a new
 * baseline, then check with --junit and --summary). What they write must be valid whatever the
 * document held (issue 25): index.html's tags and attributes are the writers' own (a '<' or a quote
 * from the input would make another) and its hover data hold no '<'; junit.xml and check.xml parse
 * (expat); trace.json loads back (jansson: no inf, no nan); copies.md, the summary and the check's
 * terminal text hold no control character. Seeds: tests/fuzz/corpus/results.
 */
#include <expat.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "report/report.h"
#include "tally/tally.h"

/* The two the tally command's main.c defines (not linked here), as it defines them. */
int tly_h_getopt(int argc, char **argv, const struct option *opts)
{
    return getopt_long(argc, argv, "", opts, NULL);
}

int tly_h_usage_error(const char *cmd)
{
    fprintf(stderr, "tally %s: usage\n", cmd);
    return TLY_EXIT_ERROR;
}

static char dir[64];

#define FAIL(...)                                                                                                      \
    do {                                                                                                               \
        fprintf(stderr, "fuzz_results: " __VA_ARGS__);                                                                 \
        fputc('\n', stderr);                                                                                           \
        abort();                                                                                                       \
    } while (0)

static char *slurp(const char *name, size_t *n)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        FAIL("%s was not written", name);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    rewind(f);
    char *b = malloc((size_t)len + 1);
    if (fread(b, 1, (size_t)len, f) != (size_t)len)
        FAIL("cannot read %s", name);
    fclose(f);
    b[len] = '\0';
    *n = (size_t)len;
    return b;
}

/* No control character but the line end (C0, DEL, C1 as UTF-8). */
static void no_controls(const char *name)
{
    size_t n;
    unsigned char *b = (unsigned char *)slurp(name, &n);
    for (size_t i = 0; i < n; i++)
        if ((b[i] < 0x20 && b[i] != '\n') || b[i] == 0x7f ||
            (b[i] == 0xc2 && i + 1 < n && b[i + 1] >= 0x80 && b[i + 1] <= 0x9f))
            FAIL("%s: a control character (0x%02x) at byte %zu", name, b[i], i);
    free(b);
}

static void xml_parses(const char *name)
{
    size_t n;
    char *b = slurp(name, &n);
    XML_Parser p = XML_ParserCreate(NULL);
    if (XML_Parse(p, b, (int)n, 1) == XML_STATUS_ERROR)
        FAIL("%s: not well-formed: %s at line %lu", name, XML_ErrorString(XML_GetErrorCode(p)),
             (unsigned long)XML_GetCurrentLineNumber(p));
    XML_ParserFree(p);
    free(b);
}

static bool listed(const char *const *list, const char *s, size_t n)
{
    for (; *list; list++)
        if (strlen(*list) == n && !strncmp(*list, s, n))
            return true;
    return false;
}

static const char *const tags[] = {"html",    "head", "meta", "title",   "style", "body", "svg",   "defs",
                                   "pattern", "rect", "h1",   "h3",      "p",     "span", "table", "tr",
                                   "th",      "td",   "a",    "section", "div",   "ul",   "li",    "b",
                                   "script",  "text", "line", "path",    "g",     NULL};
static const char *const attrs[] = {"charset",
                                    "class",
                                    "colspan",
                                    "d",
                                    "data-chart",
                                    "data-series",
                                    "data-stage",
                                    "fill-opacity",
                                    "fill",
                                    "font-size",
                                    "font-weight",
                                    "height",
                                    "href",
                                    "id",
                                    "patternTransform",
                                    "patternUnits",
                                    "role",
                                    "stroke-dasharray",
                                    "stroke-width",
                                    "stroke",
                                    "style",
                                    "text-anchor",
                                    "transform",
                                    "type",
                                    "viewBox",
                                    "visibility",
                                    "width",
                                    "x",
                                    "y",
                                    "x1",
                                    "x2",
                                    "y1",
                                    "y2",
                                    NULL};

/* index.html, tag by tag: every element and attribute one the writers make, every value quoted and
 * without '<', every '<' in text the start of such a tag; the hover data (JSON) without '<'. */
static void html_is_the_writers(void)
{
    size_t n;
    char *b = slurp("index.html", &n), *p = b;
    while ((p = strchr(p, '<')) != NULL) {
        if (!strncmp(p, "<!doctype", 9)) {
            p += 9;
            continue;
        }
        bool end = p[1] == '/';
        char *name = p + 1 + end;
        size_t len = strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789");
        if (!listed(tags, name, len))
            FAIL("index.html: <%.*s at byte %td is not the writers' element", (int)(len ? len : 12), name, p - b);
        char *q = name + len;
        bool json = false;
        while (!end) {
            q += strspn(q, " \n");
            if (*q == '>' || !strncmp(q, "/>", 2))
                break;
            size_t an = strspn(q, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789");
            if (!listed(attrs, q, an) || q[an] != '=' || (q[an + 1] != '\'' && q[an + 1] != '"'))
                FAIL("index.html: attribute '%.*s' of <%.*s> at byte %td is not the writers'", (int)(an ? an : 12), q,
                     (int)len, name, q - b);
            char quote = q[an + 1], *v = q + an + 2, *close = strchr(v, quote);
            if (close == NULL || memchr(v, '<', (size_t)(close - v)))
                FAIL("index.html: the value of %.*s at byte %td is not closed or holds '<'", (int)an, q, q - b);
            json |= !strncmp(q, "type='application/json'", 23);
            q = close + 1;
        }
        if (!end && (!strncmp(name, "script", 6) || !strncmp(name, "style", 5))) {
            char *stop = strstr(q, len == 6 ? "</script>" : "</style>");
            if (stop == NULL)
                FAIL("index.html: <%.*s> is not closed", (int)len, name);
            if (json && memchr(q + 1, '<', (size_t)(stop - q - 1)))
                FAIL("index.html: a '<' inside the hover data at byte %td", q - b);
            p = stop;
            continue;
        }
        p = q;
    }
    free(b);
}

/* tally check ARGS..., its standard output into FILE (in the fuzzer's directory). */
static int check(const char *out, char **args, int n)
{
    char path[128], *argv[16] = {"check"};
    snprintf(path, sizeof path, "%s/%s", dir, out);
    fflush(stdout);
    int keep = dup(1);
    FILE *f = fopen(path, "w");
    dup2(fileno(f), 1);
    for (int i = 0; i < n; i++)
        argv[i + 1] = args[i];
    optind = 0; /* getopt starts afresh */
    int rc = tly_h_cmd_check(n + 1, argv);
    fflush(stdout);
    dup2(keep, 1);
    close(keep);
    fclose(f);
    return rc;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t n)
{
    if (!dir[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%.40s/fuzz-results-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (mkdtemp(dir) == NULL)
            abort();
    }
    char file[128], base[128], junit[128], xml[128], summary[128];
    snprintf(file, sizeof file, "%s/in.json", dir); /* the loader reads a file; one named .json is itself */
    FILE *f = fopen(file, "wb");
    if (f == NULL || fwrite(data, 1, n, f) != n || fclose(f) != 0)
        abort();
    char *paths[] = {file};
    json_t *doc = tly_h_results_load(paths, 1, "fuzz");
    if (doc == NULL)
        return 0; /* refused, with its reason said: what the fuzzer looks for is what is accepted */
    if (tly_h_report(dir, doc) != 0)
        FAIL("the reports of an accepted document were not written: %s", tly_errmsg());
    snprintf(junit, sizeof junit, "%s/junit.xml", dir);
    if (tly_h_write_junit(junit, tly_h_results_list(doc)) != 0)
        FAIL("junit.xml was not written: %s", tly_errmsg());
    json_decref(doc);
    html_is_the_writers();
    xml_parses("junit.xml");
    no_controls("copies.md");
    char trace[128];
    snprintf(trace, sizeof trace, "%s/trace.json", dir);
    json_error_t je;
    json_t *t = json_load_file(trace, 0, &je);
    if (t == NULL)
        FAIL("trace.json does not load: %s (line %d)", je.text, je.line);
    json_decref(t);
    /* the gate against itself: the run becomes a baseline, then is checked against it */
    snprintf(base, sizeof base, "%s/baseline.json", dir);
    snprintf(xml, sizeof xml, "%s/check.xml", dir);
    snprintf(summary, sizeof summary, "%s/summary.md", dir);
    unlink(base);
    unlink(summary);
    int rc = check("update.txt", (char *[]){"--baseline", base, "--update", file}, 4);
    if (rc == TLY_EXIT_OK) {
        rc = check("check.txt", (char *[]){"--baseline", base, "--junit", xml, "--summary", summary, file}, 7);
        if (rc == TLY_EXIT_ERROR)
            FAIL("check of a run against the baseline it wrote: exit 2");
        xml_parses("check.xml");
        no_controls("check.txt");
        no_controls("summary.md");
    }
    no_controls("update.txt");
    return 0;
}
