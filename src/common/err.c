#include "tally/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define MSG_CAP 1024

static __thread char msg[MSG_CAP] __attribute__((tls_model("initial-exec")));

static const char *const names[] = {
    [TLY_EFORMAT - TLY_EFORMAT] = "malformed input",   [TLY_EUNSUPPORTED - TLY_EFORMAT] = "not supported",
    [TLY_ECODEC - TLY_EFORMAT] = "codec error",        [TLY_EHTTP - TLY_EFORMAT] = "HTTP request failed",
    [TLY_EAUTH - TLY_EFORMAT] = "credentials refused", [TLY_ENOTFOUND - TLY_EFORMAT] = "not found",
    [TLY_EEXISTS - TLY_EFORMAT] = "already exists",    [TLY_EUSAGE - TLY_EFORMAT] = "bad usage",
    [TLY_EINTERNAL - TLY_EFORMAT] = "internal error",
};

const char *tly_strerror(int err)
{
    if (err == 0)
        return "success";
    if (err >= TLY_EFORMAT && err < TLY_ELAST)
        return names[err - TLY_EFORMAT];
    if (err < 0 && err > -4096)
        return strerror(-err);
    return "unknown error";
}

const char *tly_errmsg(void)
{
    return msg;
}

void tly_errclear(void)
{
    msg[0] = '\0';
}

int tly_fail(int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return err;
}

int tly_fail_errno(const char *fmt, ...)
{
    int e = errno ? errno : EIO;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof msg)
        snprintf(msg + n, sizeof msg - (size_t)n, ": %s", strerror(e));
    return -e;
}

/* Append @p s to the message at @p at, truncating at the buffer's end; returns the new length. */
static size_t append(size_t at, const char *s)
{
    size_t k = strlen(s);
    if (at + k > sizeof msg - 1)
        k = sizeof msg - 1 - at;
    memcpy(msg + at, s, k); /* message text, not payload */
    msg[at + k] = '\0';
    return at + k;
}

void tly_err_prefix(const char *fmt, ...)
{
    char old[MSG_CAP];
    memcpy(old, msg, sizeof old); /* message text, not payload */
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0 || old[0] == '\0')
        return;
    size_t at = (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1;
    append(append(at, ": "), old);
}
