/*
 * mem: allocations made inside libcurl, OpenSSL, zstd and c-blosc are seen by the hooks and land in
 * the stage the caller set. Each library's one-time set-up runs in the suite's .init, before the
 * leak check's baseline.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <blosc.h>
#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <zstd.h>

#include "support.h"

static void libs_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    blosc_init();
    /* OpenSSL fetches and caches its providers and algorithms on first use: do that here. */
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen;
    HMAC(EVP_sha256(), "key", 3, (const unsigned char *)"msg", 3, md, &mdlen);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    EVP_MD_CTX_free(ctx);
}

static void libs_fini(void)
{
    blosc_destroy();
    curl_global_cleanup();
}

TestSuite(libs, .init = libs_init, .fini = libs_fini);

TLY_TEST(libs, curl_allocations_land_in_http)
{
    TLY_REQUIRE_TRACKING();
    struct tly_mem_snapshot a, b;
    tly_mem_snapshot(&a);
    TLY_STAGE(TLY_HTTP)
    {
        CURL *h = curl_easy_init();
        cr_assert_not_null(h);
        curl_easy_setopt(h, CURLOPT_URL, "http://127.0.0.1:9/tally-attribution-test");
        curl_easy_setopt(h, CURLOPT_USERAGENT, "tally-test");
        struct curl_slist *hdr = curl_slist_append(NULL, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
        curl_slist_free_all(hdr);
        curl_easy_cleanup(h);
    }
    tly_mem_snapshot(&b);
    cr_expect_geq(TLY_DELTA(a, b, TLY_HTTP, allocs), 3, "curl_easy_init/setopt/slist allocate");
    cr_expect_geq(TLY_DELTA(a, b, TLY_HTTP, alloc_bytes), 4096, "a curl handle is kilobytes");
    cr_expect_eq(TLY_DELTA(a, b, TLY_HTTP, allocs), TLY_DELTA(a, b, TLY_HTTP, frees), "all freed in http");
}

TLY_TEST(libs, openssl_allocations_land_in_sign)
{
    TLY_REQUIRE_TRACKING();
    struct tly_mem_snapshot a, b;
    tly_mem_snapshot(&a);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    TLY_STAGE(TLY_SIGN)
    {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        cr_assert_not_null(ctx);
        cr_assert(EVP_DigestInit_ex(ctx, EVP_sha256(), NULL));
        cr_assert(EVP_DigestUpdate(ctx, "tally", 5));
        cr_assert(EVP_DigestFinal_ex(ctx, md, &mdlen));
        EVP_MD_CTX_free(ctx);
        cr_assert_not_null(HMAC(EVP_sha256(), "key", 3, (const unsigned char *)"msg", 3, md, &mdlen));
    }
    tly_mem_snapshot(&b);
    cr_expect_eq(mdlen, 32);
    cr_expect_geq(TLY_DELTA(a, b, TLY_SIGN, allocs), 2, "EVP_MD_CTX_new and HMAC allocate");
    cr_expect_eq(TLY_DELTA(a, b, TLY_SIGN, live_bytes), 0);
}

TLY_TEST(libs, zstd_allocations_land_in_encode_and_decode)
{
    TLY_REQUIRE_TRACKING();
    enum { N = 1 << 20 };
    char *src = malloc(N), *dst = malloc(ZSTD_compressBound(N)), *back = malloc(N);
    for (int i = 0; i < N; i++)
        src[i] = (char)(i % 251);
    struct tly_mem_snapshot a, b;
    tly_mem_snapshot(&a);
    size_t n = 0, m = 0;
    TLY_STAGE(TLY_ENCODE)
    {
        ZSTD_CCtx *c = ZSTD_createCCtx();
        n = ZSTD_compressCCtx(c, dst, ZSTD_compressBound(N), src, N, 3);
        ZSTD_freeCCtx(c);
    }
    TLY_STAGE(TLY_DECODE)
    {
        ZSTD_DCtx *d = ZSTD_createDCtx();
        m = ZSTD_decompressDCtx(d, back, N, dst, n);
        ZSTD_freeDCtx(d);
    }
    tly_mem_snapshot(&b);
    cr_assert(!ZSTD_isError(n) && m == N);
    cr_expect_eq(memcmp(src, back, N), 0);
    cr_expect_geq(TLY_DELTA(a, b, TLY_ENCODE, alloc_bytes), 256 << 10, "a level-3 CCtx's workspace is large");
    cr_expect_geq(TLY_DELTA(a, b, TLY_DECODE, alloc_bytes), 64 << 10, "a DCtx holds a window buffer");
    cr_expect_eq(TLY_DELTA(a, b, TLY_ENCODE, live_bytes), 0);
    cr_expect_eq(TLY_DELTA(a, b, TLY_DECODE, live_bytes), 0);
    free(src);
    free(dst);
    free(back);
}

TLY_TEST(libs, blosc_allocations_land_in_encode_and_decode)
{
    TLY_REQUIRE_TRACKING();
    enum { N = 4 << 20 };
    float *src = malloc(N), *back = malloc(N);
    char *dst = malloc(N + BLOSC_MAX_OVERHEAD);
    for (size_t i = 0; i < N / sizeof(float); i++)
        src[i] = (float)i;
    struct tly_mem_snapshot a, b;
    tly_mem_snapshot(&a);
    int n = 0, m = 0;
    TLY_STAGE(TLY_ENCODE)
    {
        n = blosc_compress_ctx(5, BLOSC_SHUFFLE, sizeof(float), N, src, dst, N + BLOSC_MAX_OVERHEAD, "lz4", 0, 1);
    }
    TLY_STAGE(TLY_DECODE)
    {
        m = blosc_decompress_ctx(dst, back, N, 1);
    }
    tly_mem_snapshot(&b);
    cr_assert_gt(n, 0);
    cr_assert_eq(m, N);
    cr_expect_eq(memcmp(src, back, N), 0);
    /* c-blosc 1.21 allocates its per-call temporaries (blocksize-sized, aligned) with posix_memalign. */
    cr_expect_geq(TLY_DELTA(a, b, TLY_ENCODE, allocs), 1, "blosc_compress_ctx allocates temporaries");
    cr_expect_geq(TLY_DELTA(a, b, TLY_ENCODE, alloc_bytes), 16 << 10);
    cr_expect_geq(TLY_DELTA(a, b, TLY_DECODE, allocs), 1, "blosc_decompress_ctx allocates temporaries");
    cr_expect_geq(TLY_DELTA(a, b, TLY_DECODE, alloc_bytes), 16 << 10);
    cr_expect_eq(TLY_DELTA(a, b, TLY_ENCODE, live_bytes), 0);
    cr_expect_eq(TLY_DELTA(a, b, TLY_DECODE, live_bytes), 0);
    free(src);
    free(back);
    free(dst);
}

struct in_thread {
    void *volatile p;
    enum tly_stage seen;
};

static void *allocate_in_thread(void *arg)
{
    struct in_thread *t = arg;
    t->seen = tly_stage_current();
    t->p = malloc(1000);
    return NULL;
}

/* A thread starts in its creator's stage, so the threads libraries start for us (c-blosc's
 * decoders) are charged to the stage that asked for the work; the thread's own bookkeeping is not. */
TLY_TEST(libs, threads_start_in_their_creators_stage)
{
    TLY_REQUIRE_TRACKING();
    struct in_thread t = {0};
    struct tly_mem_snapshot a, b;
    pthread_t th;
    tly_mem_snapshot(&a);
    TLY_STAGE(TLY_SCATTER)
    {
        cr_assert_eq(pthread_create(&th, NULL, allocate_in_thread, &t), 0);
        pthread_join(th, NULL);
    }
    tly_mem_snapshot(&b);
    cr_expect_eq(t.seen, TLY_SCATTER, "the thread began in stage %s", tly_stage_name(t.seen));
    cr_expect_eq(TLY_DELTA(a, b, TLY_SCATTER, allocs), 1, "only the thread's own malloc is scatter's");
    TLY_STAGE(TLY_SCATTER)
    {
        free(t.p);
    }

    /* c-blosc's threads: 4 MiB decoded on 4 of them, every block of theirs in decode and freed */
    enum { N = 4 << 20 };
    float *src = malloc(N), *back = malloc(N);
    char *dst = malloc(N + BLOSC_MAX_OVERHEAD);
    for (size_t i = 0; i < N / sizeof(float); i++)
        src[i] = (float)i;
    int n = blosc_compress_ctx(5, BLOSC_SHUFFLE, sizeof(float), N, src, dst, N + BLOSC_MAX_OVERHEAD, "lz4", 0, 1);
    cr_assert_gt(n, 0);
    int m = 0;
    tly_mem_snapshot(&a);
    TLY_STAGE(TLY_DECODE)
    {
        m = blosc_decompress_ctx(dst, back, N, 4);
    }
    tly_mem_snapshot(&b);
    cr_assert_eq(m, N);
    cr_expect_eq(memcmp(src, back, N), 0);
    cr_expect_geq(TLY_DELTA(a, b, TLY_DECODE, allocs), 8, "4 threads' contexts and temporaries in decode");
    cr_expect_eq(TLY_DELTA(a, b, TLY_DECODE, live_bytes), 0, "all freed, by the threads, in decode");
    free(src);
    free(back);
    free(dst);
}
