/*
 * The shared objects' names (objects.c): a library's short name, and which objects are plumbing
 * (charged past) or an interpreter (a runtime: its caller charged when it has one nearby). Pure
 * functions on paths; they run inside the hooks, so no malloc.
 */
#include <string.h>

#include "preload/preload.h"

void tly__obj_copy_str(char *dst, size_t cap, const char *src, size_t n)
{
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n); /* a name, not payload */
    dst[n] = '\0';
}

/* The file name, without the directory or version and ABI suffixes; a Python extension module in
 * a package is named for its top-level package (numpy's _multiarray_umath.cpython-311-... -> numpy). */
void tly__obj_short_name(const char *path, char *out, size_t cap)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (strstr(base, ".cpython-") || strstr(base, ".abi3.so") || strstr(base, ".pypy")) {
        const char *pkg = strstr(path, "-packages/");
        const char *end = pkg ? strchr(pkg + strlen("-packages/"), '/') : NULL;
        if (end) {
            pkg += strlen("-packages/");
            tly__obj_copy_str(out, cap, pkg, (size_t)(end - pkg));
        } else {
            tly__obj_copy_str(out, cap, base, strcspn(base, "."));
        }
        return;
    }
    for (const char *p = base; (p = strstr(p, ".so")) != NULL; p += 3)
        if (p[3] == '\0' || p[3] == '.') {
            tly__obj_copy_str(out, cap, base, (size_t)(p - base));
            return;
        }
    tly__obj_copy_str(out, cap, base, strlen(base));
}

/* @p path's file name begins with one of @p names (@p n of them). */
static bool named(const char *path, const char *const *names, size_t n)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    for (size_t i = 0; i < n; i++)
        if (strncmp(base, names[i], strlen(names[i])) == 0)
            return true;
    return false;
}

bool tly__obj_plumbing(const char *path)
{
    static const char *const names[] = {"libc.so",       "libjemalloc", "libstdc++",  "libgcc_s",        "ld-linux",
                                        "libpthread.so", "libdl.so",    "linux-vdso", "libtally-preload"};
    return named(path, names, sizeof names / sizeof names[0]);
}

bool tly__obj_runtime(const char *path)
{
    static const char *const names[] = {"python3", "libpython", "node", "libnode"};
    return named(path, names, sizeof names / sizeof names[0]);
}
