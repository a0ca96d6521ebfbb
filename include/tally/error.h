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
    TLY_EINTERNAL,       /**< a bug: an invariant did not hold */
    TLY_ELAST
};

/** A short, static description of @p err (a TLY_E* code or -errno). */
const char *tly_strerror(int err);

/** The calling thread's last detailed error message ("" when none). Valid until its next error. */
const char *tly_errmsg(void);

/** Clear the calling thread's error message. */
void tly_errclear(void);

/*
 * Setting the message, for libtally and for programs built on it that report their own errors the
 * same way (the tally command, scenario programs): a function fails with `return tly_fail(...)`,
 * and each caller on the way up may put its context in front with tly_err_prefix(). A message
 * names what failed (file, key, option, HTTP status) and never holds a secret.
 */

/** Set the calling thread's message from @p fmt and return @p err (a TLY_E* code or -errno). */
int tly_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** As tly_fail(-errno, ...) with ": <strerror(errno)>" appended; reads errno first (EIO when 0). */
int tly_fail_errno(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** Put "<fmt>: " in front of the calling thread's current message (context added on the way up). */
void tly_err_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#ifdef __cplusplus
}
#endif

#endif
