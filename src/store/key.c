/* Store keys: what a valid relative key is (store.c checks every key by it, s3_config.c an S3 prefix). */
#include <string.h>

#include "tally/store.h"

bool tly_store_key_valid(const char *key)
{
    if (key == NULL || key[0] == '\0' || key[0] == '/')
        return false;
    for (const char *p = key; *p;) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 0 || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        if (end == NULL)
            break;
        p = end + 1;
        if (*p == '\0')
            return false;
    }
    return strchr(key, '\\') == NULL;
}
