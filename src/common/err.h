/* Internal error helpers: record a detailed message for tly_errmsg() and return the code. */
#ifndef TLY__COMMON_ERR_H
#define TLY__COMMON_ERR_H

#include "tally/error.h"

/** Set the thread's message from @p fmt and return @p err (a TLY_E* code or -errno). */
int tly__fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** As tly__fail(-errno, ...), with ": <strerror>" appended; reads errno first. */
int tly__fail_errno(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** Put @p prefix + ": " in front of the thread's current message (to add context on the way up). */
void tly__err_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
