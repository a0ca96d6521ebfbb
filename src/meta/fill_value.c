/* Fill values, both ways: JSON (numbers, NaN/Infinity strings, v3 hex) <-> one element in the dtype's byte order. */
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meta/internal.h"

/* The NaNs numpy writes (quiet, no payload), so that "NaN" reads back bit for bit. */
#define NAN32 UINT64_C(0x7fc00000)
#define NAN64 UINT64_C(0x7ff8000000000000)

static uint64_t f32_bits(float f)
{
    union {
        float f;
        uint32_t u;
    } x = {.f = f};
    return x.u;
}

static uint64_t f64_bits(double d)
{
    union {
        double d;
        uint64_t u;
    } x = {.d = d};
    return x.u;
}

static double bits_f32(uint64_t u)
{
    union {
        uint32_t u;
        float f;
    } x = {.u = (uint32_t)u};
    return x.f;
}

static double bits_f64(uint64_t u)
{
    union {
        uint64_t u;
        double d;
    } x = {.u = u};
    return x.d;
}

/* Write the low dt->size bytes of @p v in the dtype's byte order: explicit, so the host's does not matter. */
static void store(uint64_t v, const struct tly_dtype *dt, uint8_t *out)
{
    for (unsigned i = 0; i < dt->size; i++) {
        unsigned at = dt->endian == '>' ? dt->size - 1 - i : i;
        out[at] = (uint8_t)(v >> (8 * i));
    }
}

static uint64_t load(const uint8_t *in, const struct tly_dtype *dt)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < dt->size; i++) {
        unsigned at = dt->endian == '>' ? dt->size - 1 - i : i;
        v |= (uint64_t)in[at] << (8 * i);
    }
    return v;
}

static int does_not_fit(const char *doc, json_t *v, const struct tly_dtype *dt)
{
    char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    int rc = tly_fail(TLY_EFORMAT, "%s: fill_value %s does not fit %s", doc, text ? text : "?", tly_dtype_v3_name(dt));
    free(text);
    return rc;
}

static int parse_bool(const char *doc, json_t *v, const struct tly_dtype *dt, uint64_t *bits)
{
    /* zarr-python 2 reads the value through numpy, which also takes 0 and 1. */
    if (json_is_boolean(v) || (json_is_integer(v) && (json_integer_value(v) == 0 || json_integer_value(v) == 1))) {
        *bits = json_is_true(v) || json_integer_value(v) == 1;
        return 0;
    }
    return json_is_number(v) ? does_not_fit(doc, v, dt)
                             : tly_fail(TLY_EFORMAT, "%s: fill_value must be a boolean", doc);
}

/* A decimal string from the loader's quoting of an integer above INT64_MAX: only uint64 holds one. */
static bool big_uint(json_t *v, uint64_t *out)
{
    const char *s = json_string_value(v);
    if (s == NULL || !isdigit((unsigned char)s[0]))
        return false;
    char *end;
    errno = 0;
    *out = strtoull(s, &end, 10);
    return *end == '\0' && errno == 0;
}

/* An integer value of @p v, from an integer or an integral real ("0.0"), or false. */
static bool integral(json_t *v, long long *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return true;
    }
    double d = json_real_value(v);
    if (!json_is_real(v) || d != floor(d) || d < -0x1p63 || d >= 0x1p63)
        return false;
    *out = (long long)d;
    return true;
}

static int parse_int(const char *doc, json_t *v, const struct tly_dtype *dt, uint64_t *bits)
{
    unsigned w = 8u * dt->size;
    long long x;
    if (dt->kind == 'u' && big_uint(v, bits))
        return w == 64 ? 0 : does_not_fit(doc, v, dt);
    if (!integral(v, &x))
        return json_is_number(v) ? does_not_fit(doc, v, dt)
                                 : tly_fail(TLY_EFORMAT, "%s: fill_value must be an integer", doc);
    bool fits = dt->kind == 'u' ? x >= 0 && (w == 64 || (uint64_t)x < UINT64_C(1) << w)
                                : w == 64 || (x >= -(INT64_C(1) << (w - 1)) && x < INT64_C(1) << (w - 1));
    if (!fits)
        return does_not_fit(doc, v, dt);
    *bits = (uint64_t)x;
    return 0;
}

/* v3 "0x..." with exactly two hex digits per byte: the element's bits. */
static int parse_hex(const char *doc, const char *s, const struct tly_dtype *dt, uint64_t *bits)
{
    size_t n = strlen(s + 2);
    char *end;
    errno = 0;
    *bits = strtoull(s + 2, &end, 16);
    if (n != 2u * dt->size || strspn(s + 2, "0123456789abcdefABCDEF") != n || *end != '\0' || errno != 0)
        return tly_fail(TLY_EFORMAT, "%s: fill_value '%s' must be 0x and %u hex digits", doc, s, 2u * dt->size);
    return 0;
}

static int parse_float_string(const char *doc, const char *s, bool hex, const struct tly_dtype *dt, uint64_t *bits)
{
    bool single = dt->size == 4;
    if (strcmp(s, "NaN") == 0)
        *bits = single ? NAN32 : NAN64;
    else if (strcmp(s, "Infinity") == 0 || strcmp(s, "-Infinity") == 0)
        *bits = single ? f32_bits(s[0] == '-' ? -INFINITY : INFINITY) : f64_bits(s[0] == '-' ? -INFINITY : INFINITY);
    else if (hex && strncmp(s, "0x", 2) == 0)
        return parse_hex(doc, s, dt, bits);
    else
        return tly_fail(TLY_EFORMAT, "%s: fill_value '%s' is not a number, \"NaN\", \"Infinity\" or \"-Infinity\"%s",
                        doc, s, hex ? " or 0x hex" : "");
    return 0;
}

static int parse_float(const char *doc, json_t *v, bool hex, const struct tly_dtype *dt, uint64_t *bits)
{
    if (json_is_string(v))
        return parse_float_string(doc, json_string_value(v), hex, dt, bits);
    if (!json_is_number(v))
        return tly_fail(TLY_EFORMAT, "%s: fill_value must be a number or a string", doc);
    double d = json_number_value(v);
    if (dt->size == 8) {
        *bits = f64_bits(d);
        return 0;
    }
    if (fabs(d) > FLT_MAX)
        return does_not_fit(doc, v, dt);
    *bits = f32_bits((float)d);
    return 0;
}

int tly__fill_parse(const char *doc, json_t *v, struct tly_meta *m)
{
    uint64_t bits = 0;
    m->has_fill = false;
    memset(m->fill, 0, sizeof m->fill);
    if (json_is_null(v))
        return 0;
    switch (m->dtype.kind) {
    case 'b':
        TLY__TRY(parse_bool(doc, v, &m->dtype, &bits));
        break;
    case 'f':
        TLY__TRY(parse_float(doc, v, m->zarr_format == 3, &m->dtype, &bits));
        break;
    default:
        TLY__TRY(parse_int(doc, v, &m->dtype, &bits));
    }
    store(bits, &m->dtype, m->fill);
    m->has_fill = true;
    return 0;
}

/*
 * The shortest decimal that reads back as @p v (in float precision when @p single), spelled as
 * Python's repr spells it: positional for exponents -4..15, else d.ddde+XX; always a '.' or an 'e',
 * so that it reads back as a float.
 */
static void shortest(double v, bool single, char *buf, size_t cap)
{
    char e[40];
    int p;
    for (p = 1; p < 17; p++) {
        snprintf(e, sizeof e, "%.*e", p - 1, v);
        if (single ? strtof(e, NULL) == (float)v : strtod(e, NULL) == v)
            break;
    }
    snprintf(e, sizeof e, "%.*e", p - 1, v);
    int exp = atoi(strchr(e, 'e') + 1);
    if (exp < -4 || exp >= 16) {
        snprintf(buf, cap, "%s", e);
        return;
    }
    int decimals = p - 1 - exp;
    snprintf(buf, cap, "%.*f%s", decimals > 0 ? decimals : 0, v, decimals > 0 ? "" : ".0");
}

static void float_json(uint64_t bits, const struct tly_dtype *dt, char *buf)
{
    double d = dt->size == 4 ? bits_f32(bits) : bits_f64(bits);
    if (isnan(d))
        snprintf(buf, TLY__FILL_CAP, "\"NaN\"");
    else if (isinf(d))
        snprintf(buf, TLY__FILL_CAP, "\"%sInfinity\"", d < 0 ? "-" : "");
    else
        shortest(d, dt->size == 4, buf, TLY__FILL_CAP);
}

void tly__fill_json(const struct tly_meta *m, char *buf)
{
    const struct tly_dtype *dt = &m->dtype;
    uint64_t bits = m->has_fill ? load(m->fill, dt) : 0;
    unsigned w = 8u * dt->size;
    if (!m->has_fill && m->zarr_format == 2)
        snprintf(buf, TLY__FILL_CAP, "null");
    else if (dt->kind == 'b')
        snprintf(buf, TLY__FILL_CAP, "%s", bits ? "true" : "false");
    else if (dt->kind == 'f')
        float_json(bits, dt, buf);
    else if (dt->kind == 'u')
        snprintf(buf, TLY__FILL_CAP, "%llu", (unsigned long long)bits);
    else /* sign-extend the element to 64 bits */
        snprintf(buf, TLY__FILL_CAP, "%lld", (long long)(w < 64 && bits >> (w - 1) ? bits | ~UINT64_C(0) << w : bits));
}

int tly__fill_field(const char *doc, json_t *root, struct tly_meta *m)
{
    json_t *v;
    int err = tly__json_field(doc, root, "fill_value", &v);
    return err ? err : tly__fill_parse(doc, v, m);
}
