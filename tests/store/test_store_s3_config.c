/*
 * store: the S3 store's configuration (no server needed) — URLs, the AWS environment, path-style
 * and virtual-hosted addressing, limits, and S3's XML replies parsed with expat.
 */
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"
#include "store/s3_internal.h"
#include "support.h"
#include "tally/error.h"

static const char *const vars[] = {
    "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID",     "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_REGION",       "AWS_DEFAULT_REGION",  "TALLY_S3_ADDRESSING",   "TALLY_PART_SIZE",       "TALLY_IO_CONCURRENCY",
    "AWS_CA_BUNDLE",    "TALLY_S3_CA_BUNDLE",  "TALLY_S3_SIGN_PAYLOAD", "TALLY_S3_RETRIES",
};

/* Each test runs in a process of its own: a clean AWS environment with example credentials, and
 * libcurl's one-time set-up done before the leak check starts. */
static void setup(void)
{
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
        unsetenv(vars[i]);
    setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", 1);
    struct tly_store *st;
    cr_assert_eq(tly_store_open("s3://tally/warm-up", NULL, &st), 0, "%s", tly_errmsg());
    tly_store_close(st);
}

TestSuite(store_s3_config, .init = setup);

static void expect_url(const char *store_url, const char *key, const char *url, const char *host)
{
    struct tly_store *st;
    cr_assert_eq(tly_store_open(store_url, NULL, &st), 0, "%s", tly_errmsg());
    char *u, *h;
    cr_assert_eq(tly__s3_object_url(st, key, &u, &h), 0);
    cr_expect_str_eq(u, url);
    cr_expect_str_eq(h, host);
    free(u);
    free(h);
    tly_store_close(st);
}

TLY_TEST(store_s3_config, path_style_with_an_endpoint)
{
    setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:7480", 1);
    expect_url("s3://tally/a/b", "c/0/1", "http://127.0.0.1:7480/tally/a/b/c/0/1", "127.0.0.1:7480");
    expect_url("s3://tally//a/b/", ".zarray", "http://127.0.0.1:7480/tally/a/b/.zarray", "127.0.0.1:7480");
    expect_url("s3://tally", "x y+z", "http://127.0.0.1:7480/tally/x%20y%2Bz", "127.0.0.1:7480");
    setenv("AWS_ENDPOINT_URL_S3", "https://s3.example.net/ignored/path", 1);
    expect_url("s3://tally/p", "k", "https://s3.example.net/tally/p/k", "s3.example.net");
}

TLY_TEST(store_s3_config, virtual_hosted_with_an_endpoint)
{
    setenv("AWS_ENDPOINT_URL", "http://localhost:7480", 1);
    setenv("TALLY_S3_ADDRESSING", "virtual", 1);
    expect_url("s3://tally/a", "0.0", "http://tally.localhost:7480/a/0.0", "tally.localhost:7480");
}

TLY_TEST(store_s3_config, aws_by_default)
{
    expect_url("s3://tally/a", "0.0", "https://tally.s3.us-east-1.amazonaws.com/a/0.0",
               "tally.s3.us-east-1.amazonaws.com");
    setenv("AWS_DEFAULT_REGION", "eu-west-1", 1);
    expect_url("s3://tally/a", "0.0", "https://tally.s3.eu-west-1.amazonaws.com/a/0.0",
               "tally.s3.eu-west-1.amazonaws.com");
    setenv("AWS_REGION", "ap-south-1", 1); /* AWS_REGION wins */
    expect_url("s3://tally/a", "0.0", "https://tally.s3.ap-south-1.amazonaws.com/a/0.0",
               "tally.s3.ap-south-1.amazonaws.com");
    /* no wildcard certificate covers a bucket with dots: path-style */
    expect_url("s3://my.bucket/a", "0.0", "https://s3.ap-south-1.amazonaws.com/my.bucket/a/0.0",
               "s3.ap-south-1.amazonaws.com");
    setenv("TALLY_S3_ADDRESSING", "path", 1);
    expect_url("s3://tally/a", "0.0", "https://s3.ap-south-1.amazonaws.com/tally/a/0.0", "s3.ap-south-1.amazonaws.com");
}

TLY_TEST(store_s3_config, missing_credentials_name_the_variables)
{
    unsetenv("AWS_SECRET_ACCESS_KEY");
    struct tly_store *st;
    cr_expect_eq(tly_store_open("s3://tally/a", NULL, &st), TLY_EAUTH);
    cr_expect(strstr(tly_errmsg(), "AWS_ACCESS_KEY_ID") && strstr(tly_errmsg(), "AWS_SECRET_ACCESS_KEY"), "%s",
              tly_errmsg());
}

TLY_TEST(store_s3_config, bad_urls_and_settings_are_usage_errors)
{
    static const char *const urls[] = {"s3://",     "s3:///a",           "s3://Bad_Bucket!/a",
                                       "s3://ab/a", "s3://tally/a/../b", "s3://tally/a//b"};
    struct tly_store *st;
    for (size_t i = 0; i < sizeof urls / sizeof *urls; i++)
        cr_expect_eq(tly_store_open(urls[i], NULL, &st), TLY_EUSAGE, "%s", urls[i]);
    setenv("AWS_ENDPOINT_URL", "127.0.0.1:7480", 1);
    cr_expect_eq(tly_store_open("s3://tally/a", NULL, &st), TLY_EUSAGE, "an endpoint without a scheme");
    cr_expect(strstr(tly_errmsg(), "AWS_ENDPOINT_URL") != NULL, "%s", tly_errmsg());
    setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:7480", 1);
    setenv("TALLY_S3_ADDRESSING", "sideways", 1);
    cr_expect_eq(tly_store_open("s3://tally/a", NULL, &st), TLY_EUSAGE);
    unsetenv("TALLY_S3_ADDRESSING");
    setenv("TALLY_PART_SIZE", "1M", 1);
    cr_expect_eq(tly_store_open("s3://tally/a", NULL, &st), TLY_EUSAGE, "a part under S3's 5 MiB");
    cr_expect(strstr(tly_errmsg(), "TALLY_PART_SIZE") != NULL, "%s", tly_errmsg());
    setenv("TALLY_PART_SIZE", "lots", 1);
    cr_expect_eq(tly_store_open("s3://tally/a", NULL, &st), TLY_EUSAGE);
    unsetenv("TALLY_PART_SIZE");
    cr_expect_eq(tly_store_open("s3://tally/a", &(struct tly_store_opts){.part_size = 1000}, &st), TLY_EUSAGE);
    cr_expect_eq(tly_store_open("gs://tally/a", NULL, &st), TLY_EUSAGE, "other schemes stay unsupported");
}

TLY_TEST(store_s3_config, part_size_and_concurrency_from_env_and_options)
{
    setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:7480", 1);
    struct tly_store *st;
    cr_assert_eq(tly_store_open("s3://tally/a", NULL, &st), 0, "%s", tly_errmsg());
    cr_expect_eq(st->opts.part_size, 8u << 20, "8 MiB by default");
    cr_expect_eq(st->opts.io_concurrency, 32, "32 transfers by default");
    cr_expect_str_eq(tly_store_kind(st), "s3");
    cr_expect_str_eq(tly_store_url(st), "s3://tally/a");
    tly_store_close(st);
    setenv("TALLY_PART_SIZE", "16MiB", 1);
    setenv("TALLY_IO_CONCURRENCY", "4", 1);
    cr_assert_eq(tly_store_open("s3://tally/a", NULL, &st), 0, "%s", tly_errmsg());
    cr_expect_eq(st->opts.part_size, 16u << 20);
    cr_expect_eq(st->opts.io_concurrency, 4);
    tly_store_close(st);
    cr_assert_eq(
        tly_store_open("s3://tally/a", &(struct tly_store_opts){.part_size = 6u << 20, .io_concurrency = 2}, &st), 0);
    cr_expect_eq(st->opts.part_size, 6u << 20, "options win over the environment");
    cr_expect_eq(st->opts.io_concurrency, 2);
    tly_store_close(st);
}

/* ---- XML replies ---- */

static int parse(const char *xml, struct tly__s3_xml *x)
{
    return tly__s3_xml_parse(xml, strlen(xml), x);
}

TLY_TEST(store_s3_config, xml_error_reply)
{
    struct tly__s3_xml x;
    cr_assert_eq(parse("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SignatureDoesNotMatch</Code>"
                       "<Message>The request signature\nwe calculated</Message><StringToSign>secret</StringToSign>"
                       "<RequestId>tx1</RequestId></Error>",
                       &x),
                 0);
    cr_expect_str_eq(x.root, "Error");
    cr_expect_str_eq(x.code, "SignatureDoesNotMatch");
    cr_expect_str_eq(x.message, "The request signature we calculated", "one line");
    tly__s3_xml_free(&x);
}

TLY_TEST(store_s3_config, xml_listings)
{
    struct tly__s3_xml x;
    cr_assert_eq(parse("<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>tally</Name>"
                       "<Prefix>a/</Prefix><KeyCount>3</KeyCount><IsTruncated>true</IsTruncated>"
                       "<NextContinuationToken>tok/en=</NextContinuationToken>"
                       "<Contents><Key>a/.zarray</Key><Size>10</Size></Contents>"
                       "<Contents><Key>a/0.0</Key><Owner><ID>x</ID></Owner></Contents>"
                       "<Contents><Key>a/b&amp;c</Key></Contents></ListBucketResult>",
                       &x),
                 0);
    cr_expect_str_eq(x.root, "ListBucketResult");
    cr_assert_eq(x.nkeys, 3);
    cr_expect_str_eq(x.keys[0], "a/.zarray");
    cr_expect_str_eq(x.keys[1], "a/0.0");
    cr_expect_str_eq(x.keys[2], "a/b&c", "entities decoded");
    cr_expect(x.truncated);
    cr_expect_str_eq(x.next_token, "tok/en=");
    tly__s3_xml_free(&x);

    cr_assert_eq(parse("<ListMultipartUploadsResult><Bucket>tally</Bucket><IsTruncated>false</IsTruncated>"
                       "<NextKeyMarker>a/1</NextKeyMarker><NextUploadIdMarker>2~y</NextUploadIdMarker>"
                       "<Upload><Key>a/0</Key><UploadId>2~x</UploadId><Initiator><ID>i</ID></Initiator></Upload>"
                       "<Upload><Key>a/1</Key><UploadId>2~y</UploadId></Upload>"
                       "<Upload><Key>a/2</Key></Upload></ListMultipartUploadsResult>",
                       &x),
                 0);
    cr_assert_eq(x.nkeys, 2, "an upload without an id is left out");
    cr_expect_str_eq(x.keys[1], "a/1");
    cr_expect_str_eq(x.upload_ids[0], "2~x");
    cr_expect_str_eq(x.upload_ids[1], "2~y");
    cr_expect(!x.truncated);
    cr_expect_str_eq(x.next_key_marker, "a/1");
    cr_expect_str_eq(x.next_upload_id_marker, "2~y");
    tly__s3_xml_free(&x);

    cr_assert_eq(parse("<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId>2~abc</UploadId>"
                       "</InitiateMultipartUploadResult>",
                       &x),
                 0);
    cr_expect_str_eq(x.upload_id, "2~abc");
    tly__s3_xml_free(&x);
}

TLY_TEST(store_s3_config, malformed_xml_is_a_format_error)
{
    struct tly__s3_xml x;
    cr_expect_eq(parse("<Error><Code>Slow", &x), TLY_EFORMAT);
    cr_expect(strstr(tly_errmsg(), "malformed XML") != NULL, "%s", tly_errmsg());
    tly__s3_xml_free(&x);
    cr_expect_eq(parse("", &x), TLY_EFORMAT);
    tly__s3_xml_free(&x);
}
