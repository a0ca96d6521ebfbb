/*
 * .npy files, the command line's interchange format: read by mapping the file (the array is not
 * copied into memory), written as header + data from the engine's result, atomically (temporary
 * file, then rename).
 */
#include <ctype.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "tally/checked.h"
#include "tally/error.h"
#include "npy.h"

static const char magic[] = "\x93NUMPY";

/*
 * The header is the repr() of a Python dict, as numpy writes it: {'descr': '<f4', 'fortran_order':
 * False, 'shape': (3, 4), } padded with spaces and a newline. It is read strictly: exactly those
 * three keys, each once; True or False; a tuple of non-negative integers whose product, times the
 * item size, fits (tally/checked.h); nothing after the dict but the padding.
 */
struct hdr {
    const char *p, *end, *path;
};

static void skip_ws(struct hdr *h)
{
    while (h->p < h->end && (*h->p == ' ' || *h->p == '\t' || *h->p == '\n' || *h->p == '\r'))
        h->p++;
}

static bool eat(struct hdr *h, char c)
{
    skip_ws(h);
    if (h->p < h->end && *h->p == c) {
        h->p++;
        return true;
    }
    return false;
}

/* A quoted string ('...' or "...", no escapes) into @p buf of @p cap bytes. */
static int quoted(struct hdr *h, const char *what, char *buf, size_t cap)
{
    skip_ws(h);
    char q = h->p < h->end ? *h->p : 0;
    if (q != '\'' && q != '"')
        return tly_fail(TLY_EFORMAT, "%s: .npy header: %s is not a quoted string", h->path, what);
    const char *start = ++h->p;
    while (h->p < h->end && *h->p != q && *h->p != '\\' && (unsigned char)*h->p >= 0x20)
        h->p++;
    if (h->p >= h->end || *h->p != q)
        return tly_fail(TLY_EFORMAT, "%s: .npy header: %s is not a closed string", h->path, what);
    size_t n = (size_t)(h->p - start);
    h->p++;
    if (n >= cap)
        return tly_fail(TLY_EFORMAT, "%s: .npy header: %s '%.*s...' is too long", h->path, what, 16, start);
    memcpy(buf, start, n); /* header text, not payload */
    buf[n] = '\0';
    return 0;
}

static int parse_descr(struct hdr *h, struct tly_npy *out)
{
    char descr[32];
    skip_ws(h);
    if (h->p < h->end && *h->p == '[')
        return tly_fail(TLY_EUNSUPPORTED, "%s: 'descr' is a structured dtype: not supported", h->path);
    int err = quoted(h, "'descr'", descr, sizeof descr);
    if (!err && (err = tly_dtype_from_numpy(descr, &out->dtype)) != 0)
        tly_err_prefix("%s", h->path);
    return err;
}

static int parse_fortran(struct hdr *h)
{
    skip_ws(h);
    size_t left = (size_t)(h->end - h->p);
    for (int truth = 0; truth < 2; truth++) {
        const char *word = truth ? "True" : "False";
        size_t k = strlen(word);
        if (left >= k && memcmp(h->p, word, k) == 0 &&
            (left == k || !(isalnum((unsigned char)h->p[k]) || h->p[k] == '_'))) {
            h->p += k;
            return truth ? tly_fail(TLY_EUNSUPPORTED, "%s: Fortran-order .npy is not supported (save it in C order)",
                                    h->path)
                         : 0;
        }
    }
    return tly_fail(TLY_EFORMAT, "%s: .npy header: 'fortran_order' must be True or False", h->path);
}

/* A non-negative decimal integer (Python 2 may add an L) that fits in an int64. */
static int dim(struct hdr *h, uint64_t *out)
{
    skip_ws(h);
    uint64_t v = 0;
    const char *start = h->p;
    while (h->p < h->end && isdigit((unsigned char)*h->p)) {
        if (!tly_mul_u64(v, 10, &v) || !tly_add_u64(v, (uint64_t)(*h->p - '0'), &v) || v > TLY_MAX_ARRAY_BYTES)
            return tly_fail(TLY_EFORMAT, "%s: .npy shape: dimension %.*s... is more than 2^63-1", h->path, 24, start);
        h->p++;
    }
    if (h->p == start)
        return tly_fail(TLY_EFORMAT, "%s: .npy header: 'shape' is not a tuple of non-negative integers", h->path);
    if (h->p < h->end && *h->p == 'L')
        h->p++;
    *out = v;
    return 0;
}

static int parse_shape(struct hdr *h, struct tly_npy *out)
{
    if (!eat(h, '('))
        return tly_fail(TLY_EFORMAT, "%s: .npy header: 'shape' is not a tuple", h->path);
    out->rank = 0;
    while (!eat(h, ')')) {
        if (out->rank == TLY_MAX_RANK)
            return tly_fail(TLY_EUNSUPPORTED, "%s: .npy shape has more than %d dimensions", h->path, TLY_MAX_RANK);
        int err = dim(h, &out->shape[out->rank++]);
        if (err)
            return err;
        if (!eat(h, ',')) {
            if (eat(h, ')'))
                break;
            return tly_fail(TLY_EFORMAT, "%s: .npy header: 'shape' is not a tuple of integers", h->path);
        }
    }
    return 0;
}

static int parse_header(const char *path, const char *text, size_t n, struct tly_npy *out)
{
    struct hdr h = {text, text + n, path};
    static const char *const keys[] = {"descr", "fortran_order", "shape"};
    bool seen[3] = {false, false, false};
    if (!eat(&h, '{'))
        return tly_fail(TLY_EFORMAT, "%s: .npy header is not a dict", path);
    while (!eat(&h, '}')) {
        char key[32];
        int err = quoted(&h, "a key", key, sizeof key), k = 0;
        while (!err && k < 3 && strcmp(key, keys[k]) != 0)
            k++;
        if (!err && k == 3)
            err = tly_fail(TLY_EFORMAT, "%s: .npy header: unknown key '%s' (want descr, fortran_order, shape)", path,
                           key);
        if (!err && seen[k])
            err = tly_fail(TLY_EFORMAT, "%s: .npy header: '%s' given twice", path, key);
        if (!err && !eat(&h, ':'))
            err = tly_fail(TLY_EFORMAT, "%s: .npy header: no ':' after '%s'", path, key);
        if (!err)
            err = k == 0 ? parse_descr(&h, out) : k == 1 ? parse_fortran(&h) : parse_shape(&h, out);
        if (err)
            return err;
        seen[k] = true;
        if (!eat(&h, ',')) {
            if (eat(&h, '}'))
                break;
            return tly_fail(TLY_EFORMAT, "%s: .npy header: no ',' or '}' after '%s'", path, key);
        }
    }
    skip_ws(&h);
    if (h.p != h.end)
        return tly_fail(TLY_EFORMAT, "%s: .npy header: text after the dict", path);
    for (int k = 0; k < 3; k++)
        if (!seen[k])
            return tly_fail(TLY_EFORMAT, "%s: .npy header has no '%s'", path, keys[k]);
    uint64_t bytes;
    if (!tly_product_u64(out->dtype.size, out->shape, out->rank, TLY_MAX_ARRAY_BYTES, &bytes))
        return tly_fail(TLY_EFORMAT, "%s: .npy shape of %d-byte elements is more than 2^63-1 bytes", path,
                        out->dtype.size);
    return 0;
}

uint64_t tly_npy_bytes(const struct tly_npy *npy)
{
    uint64_t n;
    return tly_product_u64(npy->dtype.size, npy->shape, npy->rank, UINT64_MAX, &n) ? n : UINT64_MAX;
}

int tly_npy_parse(const char *path, const void *buf, size_t size, struct tly_npy *out)
{
    memset(out, 0, sizeof *out);
    const unsigned char *b = buf;
    size_t hlen = 0, hstart = 0;
    if (size < 10 || memcmp(b, magic, 6) != 0)
        return tly_fail(TLY_EFORMAT, "%s: not a .npy file (bad magic)", path);
    if (b[6] == 1) {
        hlen = (size_t)b[8] | (size_t)b[9] << 8;
        hstart = 10;
    } else if ((b[6] == 2 || b[6] == 3) && size >= 12) {
        hlen = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
        hstart = 12;
    } else {
        return tly_fail(TLY_EUNSUPPORTED, "%s: .npy format version %d", path, b[6]);
    }
    if (hlen > size - hstart)
        return tly_fail(TLY_EFORMAT, "%s: .npy header runs past the end of the file", path);
    int err = parse_header(path, (const char *)b + hstart, hlen, out);
    if (err)
        return err;
    size_t data = size - hstart - hlen;
    if (tly_npy_bytes(out) > data)
        return tly_fail(TLY_EFORMAT, "%s: %zu bytes of data, the header's shape needs %llu (truncated)", path, data,
                        (unsigned long long)tly_npy_bytes(out));
    out->data = b + hstart + hlen;
    return 0;
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
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return tly_fail(TLY_EFORMAT, "%s: not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    void *m = size ? mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
    close(fd);
    if (m == MAP_FAILED)
        return size ? tly_fail_errno("%s: mmap", path) : tly_fail(TLY_EFORMAT, "%s: empty file", path);
    int err = tly_npy_parse(path, m, size, out);
    if (err) {
        munmap(m, size);
        return err;
    }
    out->map = m;
    out->map_bytes = size;
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
