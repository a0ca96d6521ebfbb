/* Data types: numpy type strings, Zarr v3 names, byte order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tally/error.h"
#include "tally/plan.h"

struct v3name {
    const char *name;
    char kind;
    uint8_t size;
};

static const struct v3name v3names[] = {
    {"bool", 'b', 1},   {"int8", 'i', 1},    {"int16", 'i', 2},   {"int32", 'i', 4},
    {"int64", 'i', 8},  {"uint8", 'u', 1},   {"uint16", 'u', 2},  {"uint32", 'u', 4},
    {"uint64", 'u', 8}, {"float32", 'f', 4}, {"float64", 'f', 8},
};

static bool valid(char kind, unsigned size)
{
    switch (kind) {
    case 'b':
        return size == 1;
    case 'i':
    case 'u':
        return size == 1 || size == 2 || size == 4 || size == 8;
    case 'f':
        return size == 4 || size == 8;
    default:
        return false;
    }
}

static const char *kind_name(char kind)
{
    switch (kind) {
    case 'O':
        return "object dtype";
    case 'U':
    case 'S':
    case 'a':
        return "string dtype";
    case 'V':
        return "structured/void dtype";
    case 'c':
        return "complex dtype";
    case 'M':
    case 'm':
        return "datetime/timedelta dtype";
    default:
        return "dtype";
    }
}

/* A size numpy has (for a kind tally reads) that tally does not: named as numpy names it; else NULL. */
static const char *numpy_only(char kind, unsigned long size)
{
    if (kind == 'f' && size == 2)
        return "float16 (half precision)";
    if (kind == 'f' && (size == 12 || size == 16))
        return size == 16 ? "float128 (x87 extended precision)" : "float96 (x87 extended precision)";
    return NULL;
}

int tly_dtype_from_numpy(const char *s, struct tly_dtype *out)
{
    if (s == NULL || strlen(s) < 2)
        return tly_fail(TLY_EFORMAT, "dtype '%s' is not a numpy type string", s ? s : "(null)");
    char endian = s[0], kind = s[1];
    if (endian == '=')
        endian = tly_dtype_swapped(&(struct tly_dtype){'u', 2, '<'}) ? '>' : '<';
    if (endian != '<' && endian != '>' && endian != '|')
        return tly_fail(TLY_EFORMAT, "dtype '%s': unknown byte order '%c'", s, s[0]);
    /* digits only: strtoul alone would take " 4", "+4" and "-4" */
    size_t ndig = strspn(s + 2, "0123456789");
    unsigned long size = ndig > 0 && ndig < 6 ? strtoul(s + 2, NULL, 10) : 0;
    bool known_kind = kind == 'b' || kind == 'i' || kind == 'u' || kind == 'f';
    if (!known_kind)
        return tly_fail(TLY_EUNSUPPORTED, "dtype '%s' is not supported: %s (only bool, int, uint, float32/64)", s,
                        kind_name(kind));
    if (ndig == 0 || s[2 + ndig] != '\0' || size == 0)
        return tly_fail(TLY_EFORMAT, "dtype '%s' is not a numpy type string (want e.g. <f4, >i8, |u1)", s);
    if (!valid(kind, (unsigned)size)) {
        const char *what = numpy_only(kind, size);
        if (what)
            return tly_fail(TLY_EUNSUPPORTED, "dtype '%s' is not supported: %s (only bool, int, uint, float32/64)", s,
                            what);
        return tly_fail(TLY_EFORMAT, "dtype '%s' is not a numpy type: there is no %lu-byte %s", s, size,
                        kind == 'f'   ? "float"
                        : kind == 'b' ? "bool"
                                      : "integer");
    }
    if (size == 1)
        endian = '|';
    else if (endian == '|')
        return tly_fail(TLY_EFORMAT, "dtype '%s': a %lu-byte type needs a byte order", s, size);
    *out = (struct tly_dtype){kind, (uint8_t)size, endian};
    return 0;
}

const char *tly_dtype_numpy(const struct tly_dtype *dt, char *buf)
{
    snprintf(buf, 8, "%c%c%u", dt->size == 1 ? '|' : dt->endian, dt->kind, (unsigned)dt->size);
    return buf;
}

int tly_dtype_from_v3(const char *name, struct tly_dtype *out)
{
    for (size_t i = 0; i < sizeof v3names / sizeof v3names[0]; i++)
        if (strcmp(v3names[i].name, name) == 0) {
            *out = (struct tly_dtype){v3names[i].kind, v3names[i].size, v3names[i].size == 1 ? '|' : '<'};
            return 0;
        }
    return tly_fail(TLY_EUNSUPPORTED,
                    "data_type '%s' is not supported (only bool, int8..int64, uint8..uint64, "
                    "float32, float64)",
                    name);
}

const char *tly_dtype_v3_name(const struct tly_dtype *dt)
{
    for (size_t i = 0; i < sizeof v3names / sizeof v3names[0]; i++)
        if (v3names[i].kind == dt->kind && v3names[i].size == dt->size)
            return v3names[i].name;
    return "?";
}

bool tly_dtype_swapped(const struct tly_dtype *dt)
{
    if (dt->size == 1)
        return false;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return dt->endian == '>';
#else
    return dt->endian == '<';
#endif
}
