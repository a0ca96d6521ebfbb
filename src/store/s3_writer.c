/*
 * The S3 store's writer. Nothing is visible under a key before the writer commits:
 *
 *   tly_writer_add      the pieces are referenced and streamed as the request body; an object
 *                       over the part size is a multipart upload whose parts are cut from them
 *   tly_writer_writev   the pieces are copied (stage put) into blocks of a part of at most
 *                       part_size bytes, uploaded when it fills: at most two parts per writer,
 *                       or in_flight + 1 (tly_writer_parts_in_flight); with tly_writer_keep_head
 *                       the first is kept until the commit (5 MiB where the object may outgrow a
 *                       part, so that the next parts go out as they fill)
 *
 * A small object is one PUT at commit, a large one a multipart upload completed at commit and
 * aborted on any failure. An upload a crash left behind is aborted by tly_store_gc (s3_list.c).
 */
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tally/error.h"
#include "store/s3_store.h"
#include "store/s3_xml.h"

#define PARTS_MAX 10000               /* parts in one upload */
#define BLOCK_MIN ((size_t)64 * 1024) /* writev blocks: large enough to be attributed exactly, */
#define BLOCK_MAX ((size_t)2 << 20)   /* powers of two (no size-class rounding) up to this */
#define HEAD_MIN ((size_t)5 << 20)    /* S3's least part (all but the last) */

struct part {
    struct tly__s3_req req;
    struct iovec *iov; /* its slice of the object: the caller's pieces and owned blocks */
    int niov;
    void **blocks; /* owned blocks (writev copies), freed when the part is answered */
    int nblocks;
    bool reaped;
    bool held; /* the first part, kept to be patched and sent at commit (tly_writer_keep_head) */
};

struct s3_writer {
    struct tly_writer base;
    struct tly__s3 *st;
    char *key; /* the full key */
    /* the bytes not yet in a part, in order */
    struct iovec *pend;
    int npend, pend_cap;
    uint64_t pend_bytes;
    void **blocks; /* owned blocks among pend */
    int nblocks, blocks_cap;
    char *tail; /* the owned block being filled: pend's last piece while set */
    size_t tail_cap;
    size_t owned; /* capacity of the blocks among pend */
    /* the multipart upload, once the object outgrew one part */
    char *upload_id;
    struct part **parts;
    int nparts, parts_cap;
    bool keep_head;  /* the first part waits for the commit (tly_writer_keep_head) */
    size_t head_cap; /* and its size: the part size, or S3's least where the object outgrows a part */
    int in_flight;   /* copied parts uploading at once at most (tly_writer_parts_in_flight; default 1) */
    int err;         /* the first failure; every later call returns it */
    char msg[512];
};

static int wfail(struct s3_writer *w, int err)
{
    if (w->err == 0) {
        w->err = err;
        snprintf(w->msg, sizeof w->msg, "%s", tly_errmsg());
    }
    return err;
}

static int wfailed(struct s3_writer *w)
{
    return tly_fail(w->err, "%s", w->msg);
}

static bool grow(void **arr, int *cap, int need, size_t elem)
{
    if (need <= *cap)
        return true;
    int c = *cap ? *cap * 2 : 16;
    while (c < need)
        c *= 2;
    void *p = realloc(*arr, (size_t)c * elem);
    if (p == NULL)
        return false;
    *arr = p;
    *cap = c;
    return true;
}

static int pend_push(struct s3_writer *w, void *p, size_t n)
{
    if (!grow((void **)&w->pend, &w->pend_cap, w->npend + 1, sizeof *w->pend))
        return wfail(w, tly_fail(-ENOMEM, "s3 %s: out of memory", w->key));
    w->pend[w->npend++] = (struct iovec){p, n};
    return 0;
}

static int initiate(struct s3_writer *w)
{
    struct tly__s3_req r;
    int err = tly__s3_req_init(w->st, &r, "POST", "CreateMultipartUpload", w->key, "uploads=");
    if (err)
        return err;
    r.resp = TLY__S3_RESP_BUF;
    err = tly__s3_run(w->st, &r);
    struct tly__s3_xml x = {0};
    if (!err && (err = tly__s3_xml_parse(r.buf, r.buf_n, &x)) != 0)
        tly_err_prefix("s3 CreateMultipartUpload %s", r.what);
    if (!err && (x.upload_id == NULL || x.upload_id[0] == '\0'))
        err = tly_fail(TLY_EHTTP, "s3 CreateMultipartUpload %s: no UploadId in the reply", r.what);
    if (!err) {
        w->upload_id = x.upload_id;
        x.upload_id = NULL;
    }
    tly__s3_xml_free(&x);
    tly__s3_req_clear(&r);
    return err;
}

static void free_blocks(void **blocks, int n)
{
    TLY_STAGE(TLY_PUT)
    {
        for (int i = 0; i < n; i++)
            free(blocks[i]);
    }
}

/* Wait for part @p p's answer; free its blocks; a failure becomes the writer's. */
static void reap(struct s3_writer *w, struct part *p)
{
    if (p->reaped)
        return;
    tly__s3_http_wait(w->st->http, &p->req);
    p->reaped = true;
    if (!tly__s3_req_ok(&p->req))
        wfail(w, tly__s3_req_fail(&p->req));
    else if (p->req.etag[0] == '\0')
        wfail(w, tly_fail(TLY_EHTTP, "s3 UploadPart %s: no ETag in the reply", p->req.what));
    free_blocks(p->blocks, p->nblocks);
    free(p->blocks);
    p->blocks = NULL;
    p->nblocks = 0;
}

/* Upload part @p p as part number @p number. */
static int send_part(struct s3_writer *w, struct part *p, int number)
{
    char *q = tly__s3_upload_query(w->upload_id, number);
    int err = q ? tly__s3_req_init(w->st, &p->req, "PUT", "UploadPart", w->key, q) : tly_fail(-ENOMEM, "out of memory");
    free(q);
    if (!err)
        err = tly__s3_req_body(w->st, &p->req, p->iov, p->niov);
    if (err) {
        p->reaped = true; /* never sent; its blocks are freed with the writer */
        return wfail(w, err);
    }
    p->held = false;
    p->reaped = false;
    tly__s3_http_submit(w->st->http, &p->req);
    return 0;
}

/* The pending bytes become the next part, uploaded now (and the upload begun if it was not). */
static int cut_part(struct s3_writer *w)
{
    w->tail = NULL;
    if (w->upload_id == NULL) {
        int err = initiate(w);
        if (err)
            return wfail(w, err);
    }
    if (w->nparts == PARTS_MAX)
        return wfail(w, tly_fail(TLY_EUSAGE, "s3 %s: more than %d parts of %zu bytes (raise TALLY_PART_SIZE)", w->key,
                                 PARTS_MAX, w->st->part_size));
    struct part *p = calloc(1, sizeof *p);
    if (p == NULL || !grow((void **)&w->parts, &w->parts_cap, w->nparts + 1, sizeof *w->parts)) {
        free(p);
        return wfail(w, tly_fail(-ENOMEM, "s3 %s: out of memory", w->key));
    }
    w->parts[w->nparts++] = p;
    p->iov = w->pend;
    p->niov = w->npend;
    p->blocks = w->blocks;
    p->nblocks = w->nblocks;
    w->pend = NULL;
    w->npend = w->pend_cap = 0;
    w->pend_bytes = 0;
    w->blocks = NULL;
    w->nblocks = w->blocks_cap = 0;
    w->owned = 0;
    /* Bounded memory: at most in_flight copied parts upload while the next one fills (the oldest
     * answered first). */
    int uploading = 0;
    for (int i = w->nparts - 2; p->nblocks && i >= 0; i--)
        if (w->parts[i]->nblocks && !w->parts[i]->reaped && !w->parts[i]->held && ++uploading >= w->in_flight)
            reap(w, w->parts[i]);
    if (w->keep_head && w->nparts == 1) {
        p->held = p->reaped = true; /* sent at commit, once patched */
        return 0;
    }
    return send_part(w, p, w->nparts);
}

/* Where the part being filled is cut: the kept first part's size, or the part size. */
static size_t part_cap(const struct s3_writer *w)
{
    return w->keep_head && w->nparts == 0 ? w->head_cap : w->st->part_size;
}

static int writer_add(struct tly_writer *base, const struct iovec *iov, int niov)
{
    struct s3_writer *w = (struct s3_writer *)base;
    w->tail = NULL;
    for (int i = 0; i < niov && !w->err; i++) {
        char *p = iov[i].iov_base;
        for (size_t len = iov[i].iov_len; len > 0 && !w->err;) {
            size_t part = part_cap(w), k = part - w->pend_bytes < len ? part - w->pend_bytes : len;
            if (pend_push(w, p, k) == 0) {
                w->pend_bytes += k;
                p += k;
                len -= k;
                if (w->pend_bytes == part)
                    cut_part(w);
            }
        }
    }
    return w->err ? wfailed(w) : 0;
}

/*
 * A new owned block for @p want bytes (or a part of them): a power of two from BLOCK_MIN to
 * BLOCK_MAX, growing with what the part already holds (few blocks for a large part, little waste
 * for a small object), no further than the part's end.
 */
static int new_block(struct s3_writer *w, size_t want)
{
    size_t room = part_cap(w) - w->pend_bytes, goal = want > w->owned ? want : w->owned, cap = BLOCK_MIN;
    while (cap < goal && cap < BLOCK_MAX)
        cap *= 2;
    if (cap > room)
        cap = room;
    char *b;
    TLY_STAGE(TLY_PUT)
    {
        b = malloc(cap);
    }
    if (b == NULL || !grow((void **)&w->blocks, &w->blocks_cap, w->nblocks + 1, sizeof *w->blocks)) {
        free_blocks((void **)&b, b != NULL);
        return wfail(w, tly_fail(-ENOMEM, "s3 %s: out of memory for a %zu-byte block", w->key, cap));
    }
    w->blocks[w->nblocks++] = b;
    w->owned += cap;
    if (pend_push(w, b, 0))
        return w->err;
    w->tail = b;
    w->tail_cap = cap;
    return 0;
}

static int writer_writev(struct tly_writer *base, const struct iovec *iov, int niov)
{
    struct s3_writer *w = (struct s3_writer *)base;
    for (int i = 0; i < niov && !w->err; i++) {
        const char *p = iov[i].iov_base;
        for (size_t len = iov[i].iov_len; len > 0 && !w->err;) {
            if ((w->tail == NULL || w->pend[w->npend - 1].iov_len == w->tail_cap) && new_block(w, len))
                break;
            struct iovec *last = &w->pend[w->npend - 1];
            size_t k = w->tail_cap - last->iov_len < len ? w->tail_cap - last->iov_len : len;
            TLY_STAGE(TLY_PUT)
            {
                tly_copy(w->tail + last->iov_len, p, k);
            }
            last->iov_len += k;
            w->pend_bytes += k;
            p += k;
            len -= k;
            if (w->pend_bytes == part_cap(w))
                cut_part(w);
        }
    }
    return w->err ? wfailed(w) : 0;
}

static void writer_free(struct s3_writer *w)
{
    for (int i = 0; i < w->nparts; i++) {
        struct part *p = w->parts[i];
        free_blocks(p->blocks, p->nblocks);
        free(p->blocks);
        free(p->iov);
        tly__s3_req_clear(&p->req);
        free(p);
    }
    free(w->parts);
    free_blocks(w->blocks, w->nblocks);
    free(w->blocks);
    free(w->pend);
    free(w->upload_id);
    free(w->key);
    free(w);
}

/* Abort the multipart upload (best effort: what fails here, `tally gc` cleans up). */
static void abort_upload(struct s3_writer *w)
{
    for (int i = 0; i < w->nparts; i++)
        reap(w, w->parts[i]);
    if (w->upload_id == NULL)
        return;
    struct tly__s3_req r;
    char *q = tly__s3_upload_query(w->upload_id, 0);
    if (q && tly__s3_req_init(w->st, &r, "DELETE", "AbortMultipartUpload", w->key, q) == 0) {
        tly__s3_run(w->st, &r);
        tly__s3_req_clear(&r);
    }
    free(q);
}

static void writer_abort(struct tly_writer *base)
{
    struct s3_writer *w = (struct s3_writer *)base;
    char saved[1024]; /* the caller's error message outlives the clean-up's own failures */
    snprintf(saved, sizeof saved, "%s", tly_errmsg());
    abort_upload(w);
    writer_free(w);
    tly_fail(0, "%s", saved);
}

/* The ETag S3 gives a multipart object: MD5 of the parts' binary MD5s, "-", the number of parts. */
static bool multipart_etag(const struct s3_writer *w, char *out, size_t cap)
{
    unsigned char *md5s = malloc((size_t)w->nparts * 16), md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    bool ok = md5s != NULL;
    for (int i = 0; ok && i < w->nparts; i++) {
        const char *e = w->parts[i]->req.etag;
        ok = strlen(e) == 34 && e[0] == '"' && e[33] == '"'; /* a plain MD5, not an encrypted object's */
        for (int k = 0; ok && k < 16; k++)
            ok = sscanf(e + 1 + 2 * k, "%2hhx", &md5s[16 * i + k]) == 1;
    }
    ok = ok && EVP_Digest(md5s, (size_t)w->nparts * 16, md, &mdlen, EVP_md5(), NULL) == 1;
    free(md5s);
    if (!ok)
        return false;
    int n = snprintf(out, cap, "\"");
    for (unsigned i = 0; i < mdlen; i++)
        n += snprintf(out + n, cap - (size_t)n, "%02x", md[i]);
    snprintf(out + n, cap - (size_t)n, "-%d\"", w->nparts);
    return true;
}

/*
 * A CompleteMultipartUpload sent again after its answer was lost (by our retry, or by libcurl's own
 * on a kept-alive connection found dead) finds NoSuchUpload: the first try may have completed it.
 * It did when the object under the key has exactly this upload's ETag.
 */
static bool completed_already(struct s3_writer *w)
{
    char want[64];
    struct tly__s3_req r;
    if (!multipart_etag(w, want, sizeof want) || tly__s3_req_init(w->st, &r, "HEAD", "HEAD", w->key, NULL) != 0)
        return false;
    bool done = tly__s3_run(w->st, &r) == 0 && strcmp(r.etag, want) == 0;
    tly__s3_req_clear(&r);
    return done;
}

static int complete(struct s3_writer *w)
{
    struct tly__s3_str xml = {0};
    tly__s3_str_add(&xml, "<CompleteMultipartUpload>", 25);
    for (int i = 0; i < w->nparts; i++)
        tly__s3_str_addf(&xml, "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>", i + 1, w->parts[i]->req.etag);
    tly__s3_str_add(&xml, "</CompleteMultipartUpload>", 26);
    char *q = tly__s3_upload_query(w->upload_id, 0);
    struct tly__s3_req r;
    int err = q && !xml.oom ? tly__s3_req_init(w->st, &r, "POST", "CompleteMultipartUpload", w->key, q)
                            : tly_fail(-ENOMEM, "out of memory");
    free(q);
    if (!err) {
        struct iovec iov = {xml.p, xml.n};
        r.resp = TLY__S3_RESP_BUF;
        r.body_may_hold_error = true;
        err = tly__s3_req_body(w->st, &r, &iov, 1);
        if (!err)
            err = tly__s3_run(w->st, &r);
        if (err && strcmp(r.code, "NoSuchUpload") == 0 && completed_already(w)) {
            tly_errclear();
            err = 0;
        }
        tly__s3_req_clear(&r);
    }
    tly__s3_str_free(&xml);
    return err;
}

static int writer_commit(struct tly_writer *base)
{
    struct s3_writer *w = (struct s3_writer *)base;
    int err = w->err;
    if (!err && w->upload_id == NULL) { /* one part's worth or less: a single PUT */
        struct tly__s3_req r;
        err = tly__s3_req_init(w->st, &r, "PUT", "PUT", w->key, NULL);
        if (!err && (err = tly__s3_req_body(w->st, &r, w->pend, w->npend)) == 0)
            err = tly__s3_run(w->st, &r);
        tly__s3_req_clear(&r);
        if (err)
            wfail(w, err);
    } else if (!err) {
        if (w->pend_bytes > 0)
            cut_part(w);
        if (!w->err && w->nparts > 0 && w->parts[0]->held)
            send_part(w, w->parts[0], 1);
        for (int i = 0; i < w->nparts; i++)
            reap(w, w->parts[i]);
        if (!w->err && (err = complete(w)) != 0)
            wfail(w, err);
    }
    err = w->err;
    if (err) {
        char msg[sizeof w->msg];
        snprintf(msg, sizeof msg, "%s", w->msg);
        abort_upload(w);
        writer_free(w);
        return tly_fail(err, "%s", msg);
    }
    writer_free(w);
    return 0;
}

/* Whether @p b is one of the @p n owned blocks @p blocks. */
static bool owned(void **blocks, int n, const void *b)
{
    for (int i = 0; i < n; i++)
        if (blocks[i] == b)
            return true;
    return false;
}

/* Bytes not yet sent (a single PUT's, or the held first part's) can change until the commit. */
static int writer_patch(struct tly_writer *base, uint64_t offset, const void *data, size_t n)
{
    struct s3_writer *w = (struct s3_writer *)base;
    if (w->err)
        return wfailed(w);
    struct iovec *iov = w->pend;
    int niov = w->npend, nb = w->nblocks;
    void **blocks = w->blocks;
    if (w->nparts > 0) {
        if (!w->parts[0]->held)
            return tly_fail(TLY_EUNSUPPORTED, "s3 %s: bytes %llu+%zu were sent already (no tly_writer_keep_head)",
                            w->key, (unsigned long long)offset, n);
        iov = w->parts[0]->iov;
        niov = w->parts[0]->niov;
        blocks = w->parts[0]->blocks;
        nb = w->parts[0]->nblocks;
    }
    const char *src = data;
    uint64_t at = 0;
    for (int i = 0; i < niov && n > 0; at += iov[i].iov_len, i++) {
        uint64_t end = at + iov[i].iov_len;
        if (offset >= end)
            continue;
        if (!owned(blocks, nb, iov[i].iov_base))
            return tly_fail(TLY_EUNSUPPORTED, "s3 %s: bytes at %llu are the caller's memory, not a copy", w->key,
                            (unsigned long long)offset);
        size_t k = end - offset < n ? (size_t)(end - offset) : n;
        memcpy((char *)iov[i].iov_base + (offset - at), src, k); /* a header or an index: not payload */
        src += k;
        offset += k;
        n -= k;
    }
    if (n > 0)
        return tly_fail(TLY_EUNSUPPORTED, "s3 %s: bytes at %llu are not in the part kept for patching", w->key,
                        (unsigned long long)offset);
    return 0;
}

/*
 * A kept first part of the part size held most of a frame that outgrew one part until the commit:
 * a 12.5 MB chunk of write-s3-blosc-v2-strided (an ~11 MB frame, 8 MiB parts) sent nothing before its
 * table was known, and the 64 MiB budget's four chunks in flight held 0.55-0.58 of the 100 MB array.
 * With a first part of 5 MiB, the next goes out once it fills.
 */
static void writer_keep_head(struct tly_writer *base, size_t head, uint64_t expect)
{
    struct s3_writer *w = (struct s3_writer *)base;
    size_t part = w->st->part_size, least = head > HEAD_MIN ? head : HEAD_MIN;
    w->keep_head = true;
    bool fresh = w->nparts == 0 && w->pend_bytes == 0; /* nothing appended yet, as the contract says */
    w->head_cap = fresh && expect > part && least < part ? least : part;
}

static void writer_in_flight(struct tly_writer *base, int n)
{
    ((struct s3_writer *)base)->in_flight = n > 1 ? n : 1;
}

static const struct tly_writer_ops s3_writer_ops = {writer_add,   writer_writev,    writer_commit,   writer_abort,
                                                    writer_patch, writer_keep_head, writer_in_flight};

int tly__s3_writer(struct tly_store *base, const char *key, struct tly_writer **out)
{
    struct tly__s3 *st = tly__s3_of(base);
    struct s3_writer *w = calloc(1, sizeof *w);
    if (w == NULL || (w->key = tly__s3_full_key(st, key)) == NULL) {
        free(w);
        return tly_fail(-ENOMEM, "out of memory");
    }
    w->base.ops = &s3_writer_ops;
    w->st = st;
    w->in_flight = 1;
    *out = &w->base;
    return 0;
}
