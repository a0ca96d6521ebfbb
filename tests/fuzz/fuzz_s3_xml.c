/*
 * libFuzzer: S3's XML replies (tly__s3_xml_parse: errors, listings, multipart uploads), and an error's
 * code and message sanitised as a message shows them (no control character survives). Seeds:
 * tests/fuzz/corpus/s3_xml.
 */
#include <assert.h>
#include <string.h>

#include "store/s3_str.h"
#include "store/s3_xml.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t n)
{
    struct tly__s3_xml x;
    tly__s3_xml_parse((const char *)data, n, &x);
    for (size_t i = 0; i < x.nkeys; i++)
        assert(x.keys[i] != NULL);
    const char *secrets[] = {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"};
    tly__s3_sanitize(x.code, sizeof x.code, 48, secrets, 2);
    tly__s3_sanitize(x.message, sizeof x.message, 200, secrets, 2);
    for (const char *p = x.message; *p; p++)
        assert((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
    assert(strstr(x.message, "AKIDEXAMPLE") == NULL);
    tly__s3_xml_free(&x);
    return 0;
}
