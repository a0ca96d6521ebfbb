/* The NCZarr adapter's cell file, data file (.npy) and working files; see nczarr.c for the adapter. */
#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nczarr.h"

/* ------------------------------------------------------------------------------------ reasons */
char nczarr_reason[4096];

int nczarr_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(nczarr_reason, sizeof nczarr_reason, fmt, ap);
    va_end(ap);
    return -1;
}

static const char *str_in(const char *file, json_t *o, const char *key, const char *const *allowed)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v)) {
        nczarr_fail("the cell file %s: %s is missing or not a string", file, key);
        return NULL;
    }
    const char *s = json_string_value(v);
    if (!allowed)
        return s;
    for (int i = 0; allowed[i]; i++)
        if (strcmp(s, allowed[i]) == 0)
            return s;
    nczarr_fail("the cell file %s: %s is \"%s\", not one of the matrix's values", file, key, s);
    return NULL;
}

static int dims_in(const char *file, json_t *o, const char *key, size_t *out, size_t min)
{
    json_t *a = json_object_get(o, key);
    if (!json_is_array(a) || json_array_size(a) == 0 || json_array_size(a) > MAXDIM)
        return nczarr_fail("the cell file %s: %s must be a list of 1 to %d integers", file, key, MAXDIM);
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *n = json_array_get(a, i);
        if (!json_is_integer(n) || json_integer_value(n) < (json_int_t)min)
            return nczarr_fail("the cell file %s: %s[%zu] must be an integer >= %zu", file, key, i, min);
        out[i] = (size_t)json_integer_value(n);
    }
    return (int)json_array_size(a);
}

static int int_in(json_t *o, const char *key, int dflt)
{
    json_t *v = o ? json_object_get(o, key) : NULL;
    if (json_is_integer(v))
        return (int)json_integer_value(v);
    if (json_is_boolean(v))
        return json_is_true(v);
    return dflt;
}

int nczarr_load_cell(const char *file, struct cell *c)
{
    static const char *const ops[] = {"write", "read", NULL}, *const stores[] = {"local", "s3", NULL},
                             *const formats[] = {"v2", "v3", NULL}, *const configured[] = NCZARR_CODECS;
    json_error_t err;
    memset(c, 0, sizeof *c);
    c->root = json_load_file(file, JSON_REJECT_DUPLICATES, &err);
    if (!c->root) {
        if (access(file, R_OK) != 0)
            return nczarr_fail("cannot read the cell file %s: %s", file, strerror(errno));
        return nczarr_fail("the cell file %s is not JSON: %s (line %d, column %d)", file, err.text, err.line,
                           err.column);
    }
    if (!json_is_object(c->root))
        return nczarr_fail("the cell file %s is not a JSON object", file);
    json_t *o = c->root;
    /* the codec names a cell may hold: tally's registry's (the cell's "codecs", written by tally run);
     * one of them the adapter does not configure is skipped (nczarr.c), not refused */
    const char *codecs[32];
    json_t *names = json_object_get(o, "codecs"), *name;
    size_t i, n_codecs = 0;
    if (names && !json_is_array(names))
        return nczarr_fail("the cell file %s: codecs is not a list of names", file);
    json_array_foreach(names, i, name)
    {
        if (!json_is_string(name) || n_codecs + 1 >= sizeof codecs / sizeof codecs[0])
            return nczarr_fail("the cell file %s: codecs is not a list of names", file);
        codecs[n_codecs++] = json_string_value(name);
    }
    for (i = 0; !names && configured[i]; i++) /* a cell written by hand: the codecs configured */
        codecs[n_codecs++] = configured[i];
    codecs[n_codecs] = NULL;
    if (!(c->scenario = str_in(file, o, "scenario", NULL)) || !(c->op = str_in(file, o, "op", ops)) ||
        !(c->store = str_in(file, o, "store", stores)) || !(c->format = str_in(file, o, "format", formats)) ||
        !(c->codec = str_in(file, o, "codec", codecs)) || !(c->dtype = str_in(file, o, "dtype", NULL)) ||
        !(c->data_path = str_in(file, o, "data_path", NULL)) || !(c->url = str_in(file, o, "url", NULL)))
        return -1;
    int n = dims_in(file, o, "shape", c->shape, 0);
    if (n < 0)
        return -1;
    int m = dims_in(file, o, "chunks", c->chunks, 1);
    if (m < 0)
        return -1;
    if (m != n)
        return nczarr_fail("the cell file %s: shape and chunks differ in length (%d, %d)", file, n, m);
    c->ndim = n;
    json_t *cc = json_object_get(o, "codec_config");
    if (cc) {
        json_t *id = json_object_get(cc, "id");
        if (!json_is_object(cc) || !json_is_string(id) || strcmp(json_string_value(id), c->codec) != 0)
            return nczarr_fail("the cell file %s: codec_config does not match codec \"%s\"", file, c->codec);
    }
    json_t *cn = cc ? json_object_get(cc, "cname") : NULL;
    c->cname = json_is_string(cn) ? json_string_value(cn) : "lz4";
    c->clevel = int_in(cc, "clevel", 5);
    c->shuffle = int_in(cc, "shuffle", 1);
    c->blocksize = int_in(cc, "blocksize", 0);
    c->level = int_in(cc, "level", 3);
    c->checksum = int_in(cc, "checksum", 0);
    json_t *v = json_object_get(o, "verify");
    c->verify = v ? json_is_true(v) : true;
    if (strcmp(c->store, "local") == 0 && c->url[0] != '/')
        return nczarr_fail("the cell file %s: a local url must be an absolute path, not \"%s\"", file, c->url);
    return 0;
}

/* ------------------------------------------------------------------------------------ files */
static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    if (remove(path) != 0) {
        nczarr_fail("cleanup: cannot remove %s: %s", path, strerror(errno));
        return 1;
    }
    return 0;
}

int nczarr_remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return 0;
    return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -1;
}

char *nczarr_dataset_url(const char *dir)
{
    static const char mode[] = "#mode=nczarr,zarr,file";
    size_t n = strlen("file://") + strlen(dir) + sizeof mode;
    char *u = malloc(n);
    if (u)
        snprintf(u, n, "file://%s%s", dir, mode);
    return u;
}

/* The .npy data file: magic, version, header (descr, fortran_order, shape), then the bytes. */
void *nczarr_load_npy(const struct cell *c, size_t nbytes)
{
    FILE *f = fopen(c->data_path, "rb");
    if (!f) {
        if (errno == ENOENT)
            nczarr_fail("the data file %s does not exist", c->data_path);
        else
            nczarr_fail("cannot open the data file %s: %s", c->data_path, strerror(errno));
        return NULL;
    }
    unsigned char pre[12];
    char *header = NULL;
    void *data = NULL;
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        nczarr_fail("the data file %s is not a .npy file (no \\x93NUMPY magic)", c->data_path);
        goto out;
    }
    size_t hlen;
    if (pre[6] == 1) {
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
    } else if (pre[6] == 2 || pre[6] == 3) {
        if (fread(pre + 10, 1, 2, f) != 2) {
            nczarr_fail("the data file %s: truncated header", c->data_path);
            goto out;
        }
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
    } else {
        nczarr_fail("the data file %s: .npy format version %d", c->data_path, pre[6]);
        goto out;
    }
    if (hlen > 1 << 20 || !(header = calloc(1, hlen + 1)) || fread(header, 1, hlen, f) != hlen) {
        nczarr_fail("the data file %s: truncated or oversized header", c->data_path);
        goto out;
    }
    /* The header is a Python dict literal; the dtype and the order are checked, then the shape. */
    char want[160];
    snprintf(want, sizeof want, "'descr': '%s'", c->dtype);
    if (!strstr(header, want)) {
        nczarr_fail("the data file %s does not hold %s: its header is %s", c->data_path, c->dtype, header);
        goto out;
    }
    if (!strstr(header, "'fortran_order': False")) {
        nczarr_fail("the data file %s is in Fortran order", c->data_path);
        goto out;
    }
    char *sh = strstr(header, "'shape': (");
    if (!sh) {
        nczarr_fail("the data file %s: no shape in its header", c->data_path);
        goto out;
    }
    sh += strlen("'shape': (");
    for (int d = 0; d < c->ndim; d++) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(sh, &end, 10);
        if (end == sh || errno || v != c->shape[d]) {
            nczarr_fail("the data file %s: its shape (%s does not match the cell's", c->data_path, sh);
            goto out;
        }
        sh = end;
        while (*sh == ',' || *sh == ' ')
            sh++;
    }
    if (*sh != ')') {
        nczarr_fail("the data file %s: its shape has more dimensions than the cell's", c->data_path);
        goto out;
    }
    if (posix_memalign(&data, 64, nbytes ? nbytes : 1) != 0) {
        data = NULL;
        nczarr_fail("out of memory for the data (%zu bytes)", nbytes);
        goto out;
    }
    if (fread(data, 1, nbytes, f) != nbytes) {
        nczarr_fail("the data file %s holds fewer than the %zu bytes of its shape", c->data_path, nbytes);
        free(data);
        data = NULL;
    }
out:
    free(header);
    fclose(f);
    return data;
}
