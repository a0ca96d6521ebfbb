/*
 * .npy files, the command line's interchange format: read by mapping the file (the array is not
 * copied into memory), written as header + data from the engine's result, atomically (temporary
 * file, then rename).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "tally/error.h"
#include "npy.h"

static const char magic[] = "\x93NUMPY";

/* The value text after 'key': in the header dict, or NULL. */
static const char *dict_value(const char *h, const char *key)
{
    char pat[32];
    snprintf(pat, sizeof pat, "'%s'", key);
    const char *p = strstr(h, pat);
    if (p == NULL)
        return NULL;
    p += strlen(pat);
    while (isspace((unsigned char)*p))
        p++;
    if (*p != ':')
        return NULL;
    p++;
    while (isspace((unsigned char)*p))
        p++;
    return p;
}

static int parse_header(const char *path, const char *h, struct tly_npy *out)
{
    const char *v = dict_value(h, "descr");
    char descr[16];
    if (v == NULL || *v != '\'' || sscanf(v + 1, "%15[^']", descr) != 1)
        return tly_fail(TLY_EFORMAT, "%s: .npy header has no 'descr' string", path);
    int err = tly_dtype_from_numpy(descr, &out->dtype);
    if (err) {
        tly_err_prefix("%s", path);
        return err;
    }
    v = dict_value(h, "fortran_order");
    if (v == NULL)
        return tly_fail(TLY_EFORMAT, "%s: .npy header has no 'fortran_order'", path);
    if (strncmp(v, "True", 4) == 0)
        return tly_fail(TLY_EUNSUPPORTED, "%s: Fortran-order .npy is not supported (save it in C order)", path);
    v = dict_value(h, "shape");
    if (v == NULL || *v != '(')
        return tly_fail(TLY_EFORMAT, "%s: .npy header has no 'shape' tuple", path);
    out->rank = 0;
    for (v++;;) {
        while (isspace((unsigned char)*v) || *v == ',')
            v++;
        if (*v == ')')
            break;
        if (!isdigit((unsigned char)*v))
            return tly_fail(TLY_EFORMAT, "%s: .npy shape is not a tuple of integers", path);
        if (out->rank == TLY_MAX_RANK)
            return tly_fail(TLY_EUNSUPPORTED, "%s: more than %d dimensions", path, TLY_MAX_RANK);
        char *end;
        out->shape[out->rank++] = strtoull(v, &end, 10);
        v = end;
        if (*v == 'L')
            v++;
    }
    return 0;
}

uint64_t tly_npy_bytes(const struct tly_npy *npy)
{
    uint64_t n = npy->dtype.size;
    for (int d = 0; d < npy->rank; d++)
        n *= npy->shape[d];
    return n;
}

int tly_npy_map(const char *path, struct tly_npy *out)
{
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return tly_fail_errno("%s", path);
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int err = tly_fail_errno("%s: stat", path);
        close(fd);
        return err;
    }
    size_t size = (size_t)sb.st_size;
    void *m = size ? mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
    close(fd);
    if (m == MAP_FAILED)
        return size ? tly_fail_errno("%s: mmap", path) : tly_fail(TLY_EFORMAT, "%s: empty file", path);
    const unsigned char *b = m;
    int err = 0;
    size_t hlen = 0, hstart = 0;
    if (size < 10 || memcmp(b, magic, 6) != 0) {
        err = tly_fail(TLY_EFORMAT, "%s: not a .npy file (bad magic)", path);
    } else if (b[6] == 1) {
        hlen = (size_t)b[8] | (size_t)b[9] << 8;
        hstart = 10;
    } else if ((b[6] == 2 || b[6] == 3) && size >= 12) {
        hlen = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
        hstart = 12;
    } else {
        err = tly_fail(TLY_EUNSUPPORTED, "%s: .npy format version %d", path, b[6]);
    }
    if (!err && hstart + hlen > size)
        err = tly_fail(TLY_EFORMAT, "%s: .npy header runs past the end of the file", path);
    if (!err) {
        char *h = strndup((const char *)b + hstart, hlen);
        err = h ? parse_header(path, h, out) : tly_fail(-ENOMEM, "out of memory");
        free(h);
    }
    if (!err && hstart + hlen + tly_npy_bytes(out) > size)
        err = tly_fail(TLY_EFORMAT, "%s: %zu bytes of data, the header says %llu (truncated)", path,
                       size - hstart - hlen, (unsigned long long)tly_npy_bytes(out));
    if (err) {
        munmap(m, size);
        return err;
    }
    out->map = m;
    out->map_bytes = size;
    out->data = (const char *)m + hstart + hlen;
    return 0;
}

void tly_npy_unmap(struct tly_npy *npy)
{
    if (npy->map)
        munmap(npy->map, npy->map_bytes);
    npy->map = NULL;
}

/* The version-1 header for @p npy, padded so the data starts on a 64-byte boundary. */
static int format_header(const struct tly_npy *npy, char *buf, size_t cap, size_t *len)
{
    char dict[1024], descr[8];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                     tly_dtype_numpy(&npy->dtype, descr));
    for (int d = 0; d < npy->rank && n < (int)sizeof dict; d++)
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%llu,%s", (unsigned long long)npy->shape[d],
                      d + 1 < npy->rank ? " " : "");
    if (npy->rank > 1 && n > 0 && n < (int)sizeof dict)
        n--; /* numpy writes (3, 4), but (3,) for one dimension */
    n += snprintf(dict + n, sizeof dict - (size_t)n, "), }");
    if (n >= (int)sizeof dict)
        return tly_fail(TLY_EUSAGE, ".npy header too long");
    size_t total = 10 + (size_t)n + 1;
    size_t padded = (total + 63) / 64 * 64;
    if (padded > cap || padded - 10 > 65535)
        return tly_fail(TLY_EUSAGE, ".npy header too long");
    size_t hlen = padded - 10;
    memcpy(buf, magic, 6); /* header bytes, not payload */
    buf[6] = 1;
    buf[7] = 0;
    buf[8] = (char)(hlen & 0xff);
    buf[9] = (char)(hlen >> 8);
    memcpy(buf + 10, dict, (size_t)n); /* header bytes, not payload */
    memset(buf + 10 + n, ' ', hlen - (size_t)n - 1);
    buf[padded - 1] = '\n';
    *len = padded;
    return 0;
}

int tly_npy_write(const char *path, const struct tly_npy *npy, const void *data)
{
    char header[4096];
    size_t hlen = 0;
    int err = format_header(npy, header, sizeof header, &hlen);
    if (err)
        return err;
    char *tmp;
    if (asprintf(&tmp, "%s.tmp-%d", path, (int)getpid()) < 0)
        return tly_fail(-ENOMEM, "out of memory");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        err = tly_fail_errno("%s", tmp);
        free(tmp);
        return err;
    }
    struct iovec iov[2] = {{header, hlen}, {(void *)data, tly_npy_bytes(npy)}};
    uint64_t left = hlen + tly_npy_bytes(npy);
    while (left > 0 && !err) {
        ssize_t w = writev(fd, iov, 2);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            err = tly_fail_errno("%s: write", path);
            break;
        }
        left -= (uint64_t)w;
        for (int i = 0; i < 2 && w > 0; i++) {
            size_t k = (size_t)w < iov[i].iov_len ? (size_t)w : iov[i].iov_len;
            iov[i].iov_base = (char *)iov[i].iov_base + k;
            iov[i].iov_len -= k;
            w -= (ssize_t)k;
        }
    }
    if (close(fd) != 0 && !err)
        err = tly_fail_errno("%s: close", path);
    if (!err && rename(tmp, path) != 0)
        err = tly_fail_errno("%s: rename into place", path);
    if (err)
        unlink(tmp);
    free(tmp);
    return err;
}
