/**
 * tally/error.h — errors as values.
 *
 * Every fallible tally function returns 0 or a negative code: either -errno (a system error, e.g.
 * -ENOENT, -ENOSPC) or one of the TLY_E* codes below. tly_strerror() names a code; tly_errmsg()
 * gives the calling thread's last detailed message (what failed: key, stage, HTTP status, errno),
 * which never contains a secret.
 */
#ifndef TALLY_ERROR_H
#define TALLY_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

enum {
    TLY_EFORMAT = -1000, /**< malformed input: metadata, .npy header, chunk */
    TLY_EUNSUPPORTED,    /**< a valid feature tally does not implement (named in the message) */
    TLY_ECODEC,          /**< a codec failed to encode or decode */
    TLY_EHTTP,           /**< an HTTP request failed (status in the message) */
    TLY_EAUTH,           /**< credentials refused */
    TLY_ENOTFOUND,       /**< no such array, bucket or object */
    TLY_EEXISTS,         /**< the target exists and overwrite was not asked for */
    TLY_EUSAGE,          /**< a bad argument or option */
    TLY_EBUDGET,         /**< a budget failed (harness) */
    TLY_EINTERNAL,       /**< a bug: an invariant did not hold */
    TLY_ELAST
};

/** A short, static description of @p err (a TLY_E* code or -errno). */
const char *tly_strerror(int err);

/** The calling thread's last detailed error message ("" when none). Valid until its next error. */
const char *tly_errmsg(void);

/** Clear the calling thread's error message. */
void tly_errclear(void);

#ifdef __cplusplus
}
#endif

#endif
