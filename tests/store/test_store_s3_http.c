/*
 * store: the S3 store's HTTP edge cases against a scripted server on loopback (no S3 needed) —
 * retries, a 200 to a range, bodies longer or shorter than asked, a download resumed where it was
 * cut, a CompleteMultipartUpload whose 200 carries an error, a HEAD's 404 told apart by a probe.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tally/error.h"
#include "store/internal.h"
#include "store/s3_str.h"
#include "support.h"
#include "tally/error.h"

#define MAXREQ 64

/*
 * The server answers the n-th request with replies[n] (the last one again past the end): a raw
 * HTTP response, or "!RST" (reset the connection), or "!CUT" + a response (send it, then reset:
 * a body shorter than its Content-Length). Request heads are kept for the checks.
 */
struct fake {
    int lfd, port;
    pthread_t th;
    const char *const *replies;
    int nreplies;
    int served;
    char heads[MAXREQ][1024];
    size_t body_bytes;
};

static struct fake *srv;

static ssize_t read_head(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    while (n + 1 < cap) {
        ssize_t k = recv(fd, buf + n, 1, 0); /* a byte at a time: the head ends exactly at \r\n\r\n */
        if (k <= 0)
            return -1;
        n += (size_t)k;
        buf[n] = '\0';
        if (n >= 4 && memcmp(buf + n - 4, "\r\n\r\n", 4) == 0)
            return (ssize_t)n;
    }
    return -1;
}

static void reset(int fd)
{
    struct linger l = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
}

static void *serve(void *arg)
{
    struct fake *f = arg;
    for (;;) {
        int fd = accept(f->lfd, NULL, NULL);
        if (fd < 0)
            return NULL;
        for (;;) {
            char head[8192];
            if (read_head(fd, head, sizeof head) < 0) {
                close(fd);
                break;
            }
            const char *cl = strcasestr(head, "\r\ncontent-length:");
            for (long left = cl ? atol(cl + 17) : 0; left > 0;) {
                char buf[65536];
                ssize_t k = recv(fd, buf, left < (long)sizeof buf ? (size_t)left : sizeof buf, 0);
                if (k <= 0)
                    break;
                left -= k;
                f->body_bytes += (size_t)k;
            }
            int n = f->served++;
            snprintf(f->heads[n < MAXREQ ? n : MAXREQ - 1], sizeof f->heads[0], "%.1000s", head);
            const char *r = f->replies[n < f->nreplies ? n : f->nreplies - 1];
            if (strcmp(r, "!RST") == 0) {
                reset(fd);
                break;
            }
            bool cut = strncmp(r, "!CUT", 4) == 0;
            if (cut)
                r += 4;
            if (send(fd, r, strlen(r), MSG_NOSIGNAL) < 0 || cut) {
                usleep(20000);
                reset(fd);
                break;
            }
        }
    }
}

/*
 * The server, once per test process (in the suite's set-up: a thread started later would take the
 * stack glibc cached from the store's loop thread, and the next loop thread's fresh stack would show
 * as bytes held in stage http); AWS_ENDPOINT_URL points at it.
 */
static void start(void)
{
    static const char *const ok[] = {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"};
    srv = calloc(1, sizeof *srv);
    srv->replies = ok;
    srv->nreplies = 1;
    srv->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    cr_assert_eq(bind(srv->lfd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(srv->lfd, 16), 0);
    getsockname(srv->lfd, (struct sockaddr *)&a, &len);
    srv->port = ntohs(a.sin_port);
    char ep[64];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", srv->port);
    setenv("AWS_ENDPOINT_URL", ep, 1);
    pthread_create(&srv->th, NULL, serve, srv);
}

/* What the server answers from now on, counting requests from 0 (no request may be in flight). */
static void script(const char *const *replies, int n)
{
    srv->replies = replies;
    srv->nreplies = n;
    srv->served = 0;
    srv->body_bytes = 0;
}

static void setup(void)
{
    static const char *const vars[] = {"AWS_ENDPOINT_URL_S3",  "AWS_SESSION_TOKEN",    "AWS_REGION",
                                       "AWS_DEFAULT_REGION",   "TALLY_S3_ADDRESSING",  "TALLY_PART_SIZE",
                                       "TALLY_IO_CONCURRENCY", "TALLY_S3_SIGN_PAYLOAD"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
        unsetenv(vars[i]);
    setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", 1);
    setenv("TALLY_S3_BACKOFF_MS", "1", 1);
    setenv("TALLY_S3_RETRIES", "3", 1);
    /* libcurl's and OpenSSL's one-time set-up (a first request), before the leak check */
    start();
    struct tly_store *st;
    cr_assert_eq(tly_store_open("s3://tally/warm-up", NULL, &st), 0);
    uint64_t n;
    tly_store_size(st, "k", &n);
    tly_store_close(st);
}

TestSuite(store_s3_http, .init = setup, .timeout = 60);

static struct tly_store *open_store(void)
{
    struct tly_store *st;
    cr_assert_eq(tly_store_open("s3://tally/p", &(struct tly_store_opts){.part_size = 5u << 20}, &st), 0, "%s",
                 tly_errmsg());
    return st;
}

/* A response: status line, extra header lines ("" or "Name: value\r\n"...), body (its length added). */
static const char *reply(const char *status, const char *headers, const char *body)
{
    char *r;
    cr_assert(asprintf(&r, "HTTP/1.1 %s\r\n%sContent-Length: %zu\r\n\r\n%s", status, headers, strlen(body), body) > 0);
    return r; /* the test's process ends with the test */
}

#define SLOWDOWN reply("503 Slow Down", "", "<Error><Code>SlowDown</Code><Message>slow</Message></Error>")

TLY_TEST(store_s3_http, retries_then_succeeds)
{
    const char *const replies[] = {SLOWDOWN, reply("500 Oops", "", ""), "!RST", reply("200 OK", "", "hello")};
    script(replies, 4);
    struct tly_store *st = open_store();
    char *data;
    size_t n;
    cr_assert_eq(tly_store_get(st, "k", &data, &n), 0, "%s", tly_errmsg());
    cr_expect_str_eq(data, "hello");
    free(data);
    cr_expect_eq(srv->served, 4, "503 SlowDown, 500 and a reset were retried");
    cr_expect(strstr(srv->heads[0], "GET /tally/p/k HTTP/1.1") != NULL, "%s", srv->heads[0]);
    cr_expect(strcasestr(srv->heads[0], "x-amz-content-sha256: UNSIGNED-PAYLOAD") != NULL, "%s", srv->heads[0]);
    cr_expect(strcasestr(srv->heads[0], "authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/") != NULL);
    tly_store_close(st);
}

TLY_TEST(store_s3_http, gives_up_naming_the_attempts)
{
    const char *const replies[] = {SLOWDOWN, SLOWDOWN, SLOWDOWN, SLOWDOWN, "!RST"};
    script(replies, 5);
    struct tly_store *st = open_store();
    char *data;
    size_t n;
    cr_expect_eq(tly_store_get(st, "k", &data, &n), TLY_EHTTP);
    cr_expect(strstr(tly_errmsg(), "s3 GET s3://tally/p/k: HTTP 503 SlowDown: slow (after 4 attempts)") != NULL, "%s",
              tly_errmsg());
    cr_expect_eq(srv->served, 4);
    cr_expect_eq(tly_store_put(st, "k", "x", 1), TLY_EHTTP);
    cr_expect(strstr(tly_errmsg(), "s3 PUT s3://tally/p/k:") && strstr(tly_errmsg(), "(after 4 attempts)"), "%s",
              tly_errmsg());
    tly_store_close(st);
}

TLY_TEST(store_s3_http, range_reads_check_the_length)
{
    const char *const replies[] = {
        reply("200 OK", "", "0123456789"),          /* the Range ignored */
        reply("206 Partial Content", "", "345678"), /* longer than asked */
        reply("206 Partial Content", "", "34"),     /* the object ends early */
        reply("416 Requested Range Not Satisfiable", "", "<Error><Code>InvalidRange</Code></Error>"),
    };
    script(replies, 4);
    struct tly_store *st = open_store();
    char a[2], b[2];
    struct iovec iov[] = {{a, 2}, {b, 2}};
    cr_assert_eq(tly_store_readv(st, "k", 3, iov, 2), 0, "%s", tly_errmsg());
    cr_expect(memcmp(a, "34", 2) == 0 && memcmp(b, "56", 2) == 0, "a 200 to a range: the range taken from it");
    cr_expect(strcasestr(srv->heads[0], "range: bytes=3-6") != NULL, "%s", srv->heads[0]);
    cr_expect_eq(tly_store_readv(st, "k", 3, iov, 2), TLY_EFORMAT);
    cr_expect(strstr(tly_errmsg(), "more than the 4 bytes") != NULL, "%s", tly_errmsg());
    cr_expect_eq(tly_store_readv(st, "k", 3, iov, 2), TLY_EFORMAT);
    cr_expect(strstr(tly_errmsg(), "s3://tally/p/k") && strstr(tly_errmsg(), "truncated"), "%s", tly_errmsg());
    cr_expect_eq(tly_store_readv(st, "k", 30, iov, 2), TLY_EFORMAT);
    cr_expect(strstr(tly_errmsg(), "416 InvalidRange") != NULL, "%s", tly_errmsg());
    tly_store_close(st);
}

/* A chunk's header and its size by one GET: the 206's Content-Range says the size; a 200 (the Range
 * ignored) its Content-Length; a 416 (RGW's answer for an empty object) is asked again by HEAD. */
TLY_TEST(store_s3_http, read_head_takes_the_size_from_the_reply)
{
    const char *const replies[] = {
        reply("206 Partial Content", "Content-Range: bytes 0-3/10\r\n", "0123"),
        reply("206 Partial Content", "Content-Range: bytes 0-2/3\r\n", "012"), /* shorter than asked */
        reply("200 OK", "", "0123456789"),                                     /* the Range ignored */
        reply("416 Requested Range Not Satisfiable", "", "<Error><Code>InvalidRange</Code></Error>"),
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",                        /* HEAD: empty */
        reply("206 Partial Content", "", "0123"),                              /* no Content-Range: no size */
        reply("206 Partial Content", "Content-Range: bytes 0-3/10\r\n", "01"), /* cut short */
    };
    script(replies, 7);
    struct tly_store *st = open_store();
    char buf[4] = {0};
    uint64_t size = 0;
    cr_assert_eq(tly_store_read_head(st, "k", buf, 4, &size), 0, "%s", tly_errmsg());
    cr_expect_eq(size, 10);
    cr_expect(memcmp(buf, "0123", 4) == 0);
    cr_expect(strcasestr(srv->heads[0], "range: bytes=0-3") != NULL, "%s", srv->heads[0]);
    cr_assert_eq(tly_store_read_head(st, "k", buf, 4, &size), 0, "%s", tly_errmsg());
    cr_expect_eq(size, 3, "an object shorter than asked: read whole, its size said");
    cr_assert_eq(tly_store_read_head(st, "k", buf, 4, &size), 0, "%s", tly_errmsg());
    cr_expect_eq(size, 10, "a 200's Content-Length");
    cr_expect(memcmp(buf, "0123", 4) == 0);
    size = 99;
    cr_assert_eq(tly_store_read_head(st, "k", buf, 4, &size), 0, "%s", tly_errmsg());
    cr_expect_eq(size, 0, "416, then HEAD: an empty object");
    cr_expect_eq(srv->served, 5);
    cr_expect_eq(tly_store_read_head(st, "k", buf, 4, &size), TLY_EHTTP);
    cr_expect(strstr(tly_errmsg(), "without Content-Range") != NULL, "%s", tly_errmsg());
    cr_expect_eq(tly_store_read_head(st, "k", buf, 4, &size), TLY_EFORMAT);
    cr_expect(strstr(tly_errmsg(), "s3://tally/p/k") && strstr(tly_errmsg(), "truncated"), "%s", tly_errmsg());
    tly_store_close(st);
}

struct acc {
    char buf[64];
    size_t n;
};

static int acc_sink(void *arg, const void *data, size_t n)
{
    struct acc *a = arg;
    cr_assert_leq(a->n + n, sizeof a->buf);
    memcpy(a->buf + a->n, data, n);
    a->n += n;
    return 0;
}

TLY_TEST(store_s3_http, a_cut_download_resumes_where_it_stopped)
{
    const char *const replies[] = {
        "!CUTHTTP/1.1 200 OK\r\nContent-Length: 10\r\nETag: \"v1\"\r\n\r\n01234",
        "HTTP/1.1 206 Partial Content\r\nContent-Length: 5\r\nETag: \"v1\"\r\n\r\n56789",
        "!CUTHTTP/1.1 200 OK\r\nContent-Length: 10\r\nETag: \"v1\"\r\n\r\n0123",
        reply("200 OK", "", "0123456789"), /* the resuming Range ignored: what was handed over is skipped */
    };
    script(replies, 4);
    struct tly_store *st = open_store();
    struct acc a = {0};
    char unused[8];
    cr_assert_eq(tly_store_read_stream(st, "k", unused, sizeof unused, acc_sink, &a), 0, "%s", tly_errmsg());
    cr_expect_eq(a.n, 10);
    cr_expect(memcmp(a.buf, "0123456789", 10) == 0, "no byte twice: %.*s", (int)a.n, a.buf);
    cr_expect(strcasestr(srv->heads[1], "range: bytes=5-") && strcasestr(srv->heads[1], "if-match: \"v1\""), "%s",
              srv->heads[1]);
    struct acc b = {0};
    cr_assert_eq(tly_store_read_stream(st, "k", unused, sizeof unused, acc_sink, &b), 0, "%s", tly_errmsg());
    cr_expect(b.n == 10 && memcmp(b.buf, "0123456789", 10) == 0, "%.*s", (int)b.n, b.buf);
    tly_store_close(st);
}

TLY_TEST(store_s3_http, a_head_404_is_told_apart_by_one_probe)
{
    const char *const replies[] = {
        reply("404 Not Found", "", ""),
        reply("404 Not Found", "", "<Error><Code>NoSuchKey</Code><Message>no</Message></Error>"),
        reply("404 Not Found", "", "")};
    script(replies, 3);
    struct tly_store *st = open_store();
    uint64_t n;
    cr_expect_eq(tly_store_size(st, "a", &n), TLY_ENOTFOUND);
    cr_expect(strstr(tly_errmsg(), "NoSuchKey") != NULL, "%s", tly_errmsg());
    cr_expect(strncmp(srv->heads[1], "GET /tally/p/a", 14) == 0 && strcasestr(srv->heads[1], "range: bytes=0-0"), "%s",
              srv->heads[1]);
    cr_expect_eq(tly_store_size(st, "b", &n), TLY_ENOTFOUND);
    cr_expect_eq(srv->served, 3, "the bucket is known to exist: no second probe");
    tly_store_close(st);
}

TLY_TEST(store_s3_http, a_complete_whose_200_carries_an_error_fails_and_aborts)
{
    const char *complete = reply("200 OK", "", "<Error><Code>InternalError</Code><Message>try again</Message></Error>");
    const char *const replies[] = {
        reply("200 OK", "",
              "<InitiateMultipartUploadResult><UploadId>2~up/id+1</UploadId></InitiateMultipartUploadResult>"),
        reply("200 OK", "ETag: \"p1\"\r\n", ""),
        reply("200 OK", "ETag: \"p2\"\r\n", ""),
        complete,
        complete,
        complete,
        complete,
        "HTTP/1.1 204 No Content\r\n\r\n",
    };
    script(replies, 8);
    setenv("TALLY_IO_CONCURRENCY", "1", 1); /* the parts in order */
    struct tly_store *st = open_store();
    size_t size = (5u << 20) + 100;
    char *data = calloc(1, size);
    struct tly_writer *w;
    cr_assert_eq(tly_store_writer(st, "big", &w), 0);
    struct iovec iov = {data, size};
    cr_assert_eq(tly_writer_add(w, &iov, 1), 0, "%s", tly_errmsg());
    cr_expect_eq(tly_writer_commit(w), TLY_EHTTP);
    cr_expect(strstr(tly_errmsg(), "CompleteMultipartUpload s3://tally/p/big: HTTP 200 InternalError: try again") !=
                  NULL,
              "%s", tly_errmsg());
    cr_expect_eq(srv->served, 8, "initiate, 2 parts, 4 completes, abort");
    cr_expect(strncmp(srv->heads[0], "POST /tally/p/big?uploads= ", 27) == 0, "%s", srv->heads[0]);
    cr_expect(strncmp(srv->heads[1], "PUT /tally/p/big?partNumber=1&uploadId=2~up%2Fid%2B1 ", 53) == 0, "%s",
              srv->heads[1]);
    cr_expect(strstr(srv->heads[3], "POST /tally/p/big?uploadId=2~up%2Fid%2B1 ") != NULL, "%s", srv->heads[3]);
    cr_expect(strncmp(srv->heads[7], "DELETE /tally/p/big?uploadId=2~up%2Fid%2B1 ", 43) == 0, "%s", srv->heads[7]);
    cr_expect_eq(srv->body_bytes, size + 4 * strlen("<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>"
                                                    "\"p1\"</ETag></Part><Part><PartNumber>2</PartNumber><ETag>\"p2\""
                                                    "</ETag></Part></CompleteMultipartUpload>"));
    free(data);
    tly_store_close(st);
}

TLY_TEST(store_s3_http, a_complete_whose_answer_was_lost_is_recognised)
{
    const char *const replies[] = {
        reply("200 OK", "", "<InitiateMultipartUploadResult><UploadId>u1</UploadId></InitiateMultipartUploadResult>"),
        reply("200 OK", "ETag: \"00112233445566778899aabbccddeeff\"\r\n", ""),
        reply("200 OK", "ETag: \"ffeeddccbbaa99887766554433221100\"\r\n", ""),
        "!RST", /* completed, but the answer never came */
        reply("404 Not Found", "", "<Error><Code>NoSuchUpload</Code></Error>"),
        reply("200 OK", "ETag: \"2c9fc96c5e9c12cc2e04537710e74a63-2\"\r\n", ""), /* HEAD: this upload's ETag */
    };
    script(replies, 6);
    setenv("TALLY_IO_CONCURRENCY", "1", 1);
    struct tly_store *st = open_store();
    size_t size = (5u << 20) + 1;
    char *data = calloc(1, size);
    struct tly_writer *w;
    cr_assert_eq(tly_store_writer(st, "big", &w), 0);
    struct iovec iov = {data, size};
    cr_assert_eq(tly_writer_add(w, &iov, 1), 0, "%s", tly_errmsg());
    cr_expect_eq(tly_writer_commit(w), 0, "%s", tly_errmsg());
    cr_expect_eq(srv->served, 6);
    cr_expect(strncmp(srv->heads[5], "HEAD /tally/p/big ", 18) == 0, "%s", srv->heads[5]);
    free(data);
    tly_store_close(st);
}

/* Issue 15, D12: what a server says is shown without credentials, signatures or control characters. */
TLY_TEST(store_s3_http, server_text_is_sanitised)
{
    const char *secrets[] = {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", NULL};
    char s[256] = "denied: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/s3/aws4_request, "
                  "SignedHeaders=host, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7 "
                  "\x1b[31mred\x1b[0m \xc2\x9b"
                  "2J key AKIDEXAMPLE\ttab";
    tly__s3_sanitize(s, sizeof s, 200, secrets, 3);
    cr_expect_str_eq(s, "denied: AWS4-HMAC-SHA256 Credential=[redacted], SignedHeaders=host, Signature=[redacted] "
                        "?[31mred?[0m ??2J key [redacted] tab");
    char q[64] = "X-Amz-Signature=abcdef&X-Amz-Credential=AKID%2F2015";
    tly__s3_sanitize(q, sizeof q, 60, NULL, 0);
    cr_expect_str_eq(q, "X-Amz-Signature=[redacted]&X-Amz-Credential=[redacted]");
    char longer[256];
    memset(longer, 'x', 255);
    longer[255] = '\0';
    tly__s3_sanitize(longer, sizeof longer, 20, secrets, 2);
    cr_expect_str_eq(longer, "xxxxxxxxxxxxxxxxxxxx...", "capped");
}

TLY_TEST(store_s3_http, an_echoed_authorization_never_reaches_the_message)
{
    const char *r[] = {reply("403 Forbidden", "",
                             "<Error><Code>AccessDenied</Code><Message>you sent Credential=AKIDEXAMPLE/x, "
                             "Signature=0123abcd with wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY</Message></Error>")};
    script(r, 1);
    struct tly_store *st = open_store();
    char *data;
    size_t n;
    cr_expect_eq(tly_store_get(st, ".zarray", &data, &n), TLY_EAUTH);
    const char *m = tly_errmsg();
    cr_expect(strstr(m, "AccessDenied") != NULL && strstr(m, "AKIDEXAMPLE") == NULL && strstr(m, "0123abcd") == NULL &&
                  strstr(m, "EXAMPLEKEY") == NULL,
              "%s", m);
    tly_store_close(st);
}

/* Issue 15, D7: a declared 60 GiB metadata body is refused before anything is read or allocated. */
TLY_TEST(store_s3_http, a_huge_declared_body_is_refused_at_once)
{
    const char *r[] = {"!CUTHTTP/1.1 200 OK\r\nContent-Length: 64424509440\r\n\r\n{\"zarr_format\": 2"};
    script(r, 1);
    struct tly_store *st = open_store();
    char *data;
    size_t n;
    cr_expect_eq(tly_store_get(st, ".zarray", &data, &n), TLY_EFORMAT);
    cr_expect(strstr(tly_errmsg(), "64424509440") != NULL && strstr(tly_errmsg(), "TALLY_META_LIMIT") != NULL, "%s",
              tly_errmsg());
    cr_expect_eq(srv->served, 1, "not retried");
    tly_store_close(st);
}

/* A 200 (the whole object) for a range: read until the range is in, not to the object's end. */
TLY_TEST(store_s3_http, a_whole_object_for_a_range_is_read_only_as_far_as_needed)
{
    static char big[200000];
    memset(big, 'z', sizeof big - 1);
    const char *r[] = {reply("200 OK", "", big)};
    script(r, 1);
    struct tly_store *st = open_store();
    char buf[8];
    struct iovec iov = {buf, sizeof buf};
    cr_expect_eq(tly_store_readv(st, "0.0", 16, &iov, 1), 0, "%s", tly_errmsg());
    cr_expect_eq(memcmp(buf, "zzzzzzzz", 8), 0);
    cr_expect_eq(srv->served, 1);
    tly_store_close(st);
}
