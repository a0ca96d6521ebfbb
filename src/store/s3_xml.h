/* Internal to the S3 store: S3's XML replies (s3_xml.c), parsed with expat. */
#ifndef TLY__STORE_S3_XML_H
#define TLY__STORE_S3_XML_H

#include <stdbool.h>
#include <stddef.h>

/** What a reply holds, whichever it is: Error, ListBucketResult, ListMultipartUploadsResult,
 * InitiateMultipartUploadResult, CompleteMultipartUploadResult. */
struct tly__s3_xml {
    char root[48];               /* the root element's name */
    char code[64];               /* Error/Code */
    char message[256];           /* Error/Message, control characters replaced by spaces */
    char *upload_id;             /* InitiateMultipartUploadResult/UploadId */
    bool truncated;              /* IsTruncated */
    char *next_token;            /* NextContinuationToken */
    char *next_key_marker;       /* NextKeyMarker */
    char *next_upload_id_marker; /* NextUploadIdMarker */
    char **keys;                 /* Contents/Key or Upload/Key, in order */
    char **upload_ids;           /* Upload/UploadId, beside keys (ListMultipartUploads) */
    size_t nkeys;
};

/** Parse @p n bytes of XML into @p out. Returns 0, TLY_EFORMAT (malformed; message says where) or
 * -ENOMEM. Free @p out with tly__s3_xml_free() in either case. */
int tly__s3_xml_parse(const char *xml, size_t n, struct tly__s3_xml *out);

void tly__s3_xml_free(struct tly__s3_xml *x);

#endif
