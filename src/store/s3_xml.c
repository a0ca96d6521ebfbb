/*
 * S3's XML replies, parsed with expat (the project's one XML library): errors, object and
 * multipart-upload listings, the upload id of a new multipart upload. One parser serves all of
 * them: it keeps the path of elements it is in and picks the few leaves each reply has.
 */
#include <errno.h>
#include <expat.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tally/error.h"
#include "store/s3_str.h"
#include "store/s3_xml.h"

#define MAX_DEPTH 8

struct parse {
    XML_Parser p;
    struct tly__s3_xml *out;
    int depth;                    /* elements open; deeper than MAX_DEPTH are ignored */
    char path[MAX_DEPTH][48];     /* their names */
    struct tly__s3_str text;      /* the current element's text */
    char *upload_key, *upload_id; /* the <Upload> being read */
    size_t keys_cap;
    bool oom;
};

static void on_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
    struct parse *ps = ud;
    (void)attrs;
    if (ps->depth < MAX_DEPTH)
        snprintf(ps->path[ps->depth], sizeof ps->path[0], "%s", name);
    if (ps->depth == 0)
        snprintf(ps->out->root, sizeof ps->out->root, "%s", name);
    ps->depth++;
    ps->text.n = 0;
}

static void on_text(void *ud, const XML_Char *s, int len)
{
    struct parse *ps = ud;
    if (ps->depth <= MAX_DEPTH && ps->text.n < 1 << 20) /* a leaf's text; a listing key is at most 1 KiB */
        tly__s3_str_add(&ps->text, s, (size_t)len);
}

static bool at(const struct parse *ps, int depth, const char *parent, const char *name)
{
    return ps->depth == depth && strcmp(ps->path[depth - 1], name) == 0 &&
           (parent == NULL || strcmp(ps->path[depth - 2], parent) == 0);
}

static char *text_dup(struct parse *ps)
{
    char *s = strndup(ps->text.p ? ps->text.p : "", ps->text.n);
    if (s == NULL)
        ps->oom = true;
    return s;
}

/* Control characters (a newline in a message) become spaces: a message is one line. */
static void copy_line(char *dst, size_t cap, const struct tly__s3_str *t)
{
    size_t n = t->n < cap - 1 ? t->n : cap - 1;
    for (size_t i = 0; i < n; i++)
        dst[i] = (unsigned char)t->p[i] < 0x20 ? ' ' : t->p[i];
    dst[n] = '\0';
}

static void push_key(struct parse *ps, char *key, char *upload_id)
{
    struct tly__s3_xml *x = ps->out;
    if (key == NULL) {
        free(key);
        free(upload_id);
        return;
    }
    if (x->nkeys == ps->keys_cap) {
        size_t cap = ps->keys_cap ? ps->keys_cap * 2 : 64;
        char **k = realloc(x->keys, cap * sizeof *k);
        if (k)
            x->keys = k;
        char **u = k ? realloc(x->upload_ids, cap * sizeof *u) : NULL;
        if (u)
            x->upload_ids = u;
        if (k == NULL || u == NULL) {
            ps->oom = true;
            free(key);
            free(upload_id);
            return;
        }
        ps->keys_cap = cap;
    }
    x->keys[x->nkeys] = key;
    x->upload_ids[x->nkeys++] = upload_id;
}

static void on_end(void *ud, const XML_Char *name)
{
    struct parse *ps = ud;
    struct tly__s3_xml *x = ps->out;
    (void)name;
    if (ps->text.oom)
        ps->oom = true;
    const char *root = x->root;
    if (ps->depth > MAX_DEPTH) {
        /* ignored */
    } else if (strcmp(root, "Error") == 0) {
        if (at(ps, 2, NULL, "Code"))
            copy_line(x->code, sizeof x->code, &ps->text);
        else if (at(ps, 2, NULL, "Message"))
            copy_line(x->message, sizeof x->message, &ps->text);
    } else if (at(ps, 2, NULL, "IsTruncated")) {
        x->truncated = ps->text.n == 4 && memcmp(ps->text.p, "true", 4) == 0;
    } else if (at(ps, 2, NULL, "NextContinuationToken")) {
        free(x->next_token);
        x->next_token = text_dup(ps);
    } else if (at(ps, 2, NULL, "NextKeyMarker")) {
        free(x->next_key_marker);
        x->next_key_marker = text_dup(ps);
    } else if (at(ps, 2, NULL, "NextUploadIdMarker")) {
        free(x->next_upload_id_marker);
        x->next_upload_id_marker = text_dup(ps);
    } else if (at(ps, 2, NULL, "UploadId") && strcmp(root, "InitiateMultipartUploadResult") == 0) {
        free(x->upload_id);
        x->upload_id = text_dup(ps);
    } else if (at(ps, 3, "Contents", "Key")) {
        push_key(ps, text_dup(ps), NULL);
    } else if (at(ps, 3, "Upload", "Key")) {
        free(ps->upload_key);
        ps->upload_key = text_dup(ps);
    } else if (at(ps, 3, "Upload", "UploadId")) {
        free(ps->upload_id);
        ps->upload_id = text_dup(ps);
    } else if (at(ps, 2, NULL, "Upload")) {
        if (ps->upload_id == NULL) { /* an upload without its id cannot be aborted: not listed */
            free(ps->upload_key);
            ps->upload_key = NULL;
        }
        push_key(ps, ps->upload_key, ps->upload_id);
        ps->upload_key = ps->upload_id = NULL;
    }
    ps->depth--;
    ps->text.n = 0;
}

int tly__s3_xml_parse(const char *xml, size_t n, struct tly__s3_xml *out)
{
    memset(out, 0, sizeof *out);
    struct parse ps = {.out = out};
    ps.p = XML_ParserCreate("UTF-8");
    if (ps.p == NULL)
        return tly_fail(-ENOMEM, "out of memory for an XML parser");
    XML_SetUserData(ps.p, &ps);
    XML_SetElementHandler(ps.p, on_start, on_end);
    XML_SetCharacterDataHandler(ps.p, on_text);
    int err = 0;
    if (n > (size_t)INT32_MAX)
        err = tly_fail(TLY_EFORMAT, "S3 reply: %zu bytes of XML is too large", n);
    else if (XML_Parse(ps.p, xml, (int)n, 1) != XML_STATUS_OK)
        err = ps.oom || XML_GetErrorCode(ps.p) == XML_ERROR_NO_MEMORY
                  ? tly_fail(-ENOMEM, "out of memory parsing an S3 reply")
                  : tly_fail(TLY_EFORMAT, "S3 reply: malformed XML at line %lu: %s",
                             (unsigned long)XML_GetCurrentLineNumber(ps.p), XML_ErrorString(XML_GetErrorCode(ps.p)));
    else if (ps.oom)
        err = tly_fail(-ENOMEM, "out of memory parsing an S3 reply");
    XML_ParserFree(ps.p);
    tly__s3_str_free(&ps.text);
    free(ps.upload_key);
    free(ps.upload_id);
    return err;
}

void tly__s3_xml_free(struct tly__s3_xml *x)
{
    for (size_t i = 0; i < x->nkeys; i++) {
        free(x->keys[i]);
        free(x->upload_ids[i]);
    }
    free(x->keys);
    free(x->upload_ids);
    free(x->upload_id);
    free(x->next_token);
    free(x->next_key_marker);
    free(x->next_upload_id_marker);
    memset(x, 0, sizeof *x);
}
