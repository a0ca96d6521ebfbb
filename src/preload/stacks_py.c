/*
 * The Python frames of a stack: CPython 3.11's, read as py-spy reads them, from inside the process.
 *
 * The thread's own PyThreadState (PyGILState_GetThisThreadState: a thread-specific value, NULL
 * before the interpreter starts and after it ends) leads, through its _PyCFrame, to the innermost
 * _PyInterpreterFrame; each frame's `previous` leads outwards. A frame names its code object and
 * its last instruction; `is_entry` marks the first frame of each C call of _PyEval_EvalFrameDefault,
 * which is how the native and the Python frames are joined (stacks.c). The layout is 3.11's, from
 * its headers at build time (Py_BUILD_CORE: only types and offsets are used, no function of
 * libpython is linked); a process whose Py_Version is not 3.11 gets no Python frames.
 *
 * Nothing here runs Python code or allocates. A thread's frames only change while it runs Python,
 * so its own are stable while it is in a hook, with or without the GIL. A frame is named (file,
 * line, function) when a new stack is interned, while the frame runs and its code object is alive:
 * the strings are read in place (compact ASCII, or an existing UTF-8 copy), the line by
 * PyCode_Addr2Line (a walk of the code's line table), into a text pool kept for the report.
 */
#include <dlfcn.h>
#include <link.h>
#include <string.h>

#include "preload/preload.h"
#include "preload/stacks.h"

#define TEXTS_MAX 8192 /* a power of two */
#define POOL_BYTES (512 * 1024)

struct text {
    uintptr_t code, lasti;
    uint32_t off; /* into pool; 0: empty slot */
};

static struct text texts[TEXTS_MAX];
static char pool[POOL_BYTES] = "?";
static size_t pool_used = 2;

static size_t text_slot(uintptr_t code, uintptr_t lasti)
{
    uint64_t x = (uint64_t)code * 0x9e3779b97f4a7c15ULL ^ lasti;
    x ^= x >> 29;
    return (size_t)x & (TEXTS_MAX - 1);
}

const char *tly__py_text(uintptr_t code, uintptr_t lasti)
{
    for (size_t i = text_slot(code, lasti), k = 0; k < TEXTS_MAX; i = (i + 1) & (TEXTS_MAX - 1), k++) {
        if (texts[i].off == 0)
            break;
        if (texts[i].code == code && texts[i].lasti == lasti)
            return pool + texts[i].off;
    }
    return "[python frame]";
}

#ifdef TLY_HAVE_PY311

#define Py_BUILD_CORE 1
#include <Python.h>
#include <internal/pycore_code.h>
#include <internal/pycore_frame.h>

static PyThreadState *(*this_state)(void);
static int (*addr2line)(PyCodeObject *, int);
static uintptr_t eval_lo, eval_hi;
static bool active;

bool tly__py_boot(void)
{
    const unsigned long *version = dlsym(RTLD_DEFAULT, "Py_Version");
    void *eval = dlsym(RTLD_DEFAULT, "_PyEval_EvalFrameDefault");
    this_state = (PyThreadState * (*)(void)) dlsym(RTLD_DEFAULT, "PyGILState_GetThisThreadState");
    addr2line = (int (*)(PyCodeObject *, int))dlsym(RTLD_DEFAULT, "PyCode_Addr2Line");
    if (!version || (*version >> 16) != 0x030b || !eval || !this_state || !addr2line)
        return active = false;
    Dl_info info;
    const ElfW(Sym) *sym = NULL;
    if (!dladdr1(eval, &info, (void **)&sym, RTLD_DL_SYMENT) || sym == NULL || sym->st_size == 0)
        return active = false;
    eval_lo = (uintptr_t)eval;
    eval_hi = eval_lo + sym->st_size;
    return active = true;
}

bool tly__py_active(void)
{
    return active;
}

bool tly__py_is_eval(uintptr_t ip)
{
    return ip >= eval_lo && ip < eval_hi;
}

static const char *utf8_of(PyObject *s, size_t *len);

static uint64_t hash_bytes(uint64_t h, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 0x100000001b3ULL;
    return h;
}

/* What tells a code object from another one later allocated at its address (freed objects' addresses
 * come back at once): its file's and function's names, read in place, and its first line, hashed into
 * 32 bits kept beside the instruction index. */
static uint32_t ident(PyCodeObject *co)
{
    size_t n = 0;
    uint64_t h = 0xcbf29ce484222325ULL ^ (uint64_t)co->co_firstlineno;
    const char *s = utf8_of(co->co_filename, &n);
    h = s ? hash_bytes(h, s, n) : h;
    s = utf8_of(co->co_qualname, &n);
    h = s ? hash_bytes(h ^ 0xff, s, n) : h;
    return (uint32_t)(h ^ h >> 32);
}

unsigned tly__py_frames(struct tly__py_frame *out, unsigned cap)
{
    PyThreadState *ts = this_state();
    if (ts == NULL || ts->cframe == NULL)
        return 0;
    unsigned n = 0;
    for (_PyInterpreterFrame *f = ts->cframe->current_frame; f && n < cap; f = f->previous) {
        if (f->f_code == NULL || _PyFrame_IsIncomplete(f))
            continue;
        out[n].code = (uintptr_t)f->f_code;
        out[n].lasti = (uintptr_t)(uint32_t)_PyInterpreterFrame_LASTI(f) | (uintptr_t)ident(f->f_code) << 32;
        out[n].entry = f->is_entry;
        n++;
    }
    return n;
}

/* A str's characters, read in place; NULL when it has no UTF-8 form yet (making one allocates). */
static const char *utf8_of(PyObject *s, size_t *len)
{
    if (s == NULL || !PyUnicode_Check(s) || !PyUnicode_IS_READY(s))
        return NULL;
    if (PyUnicode_IS_COMPACT_ASCII(s)) {
        *len = (size_t)((PyASCIIObject *)s)->length;
        return (const char *)(((PyASCIIObject *)s) + 1);
    }
    PyCompactUnicodeObject *c = (PyCompactUnicodeObject *)s;
    if (c->utf8 == NULL)
        return NULL;
    *len = (size_t)c->utf8_length;
    return c->utf8;
}

/* A file name as a reader knows it: from the package under site-packages (zarr/core.py), the standard
 * library's from the library's directory, else as the code says. */
static const char *short_file(const char *f, size_t *len)
{
    static const char *const marks[] = {"-packages/", "/lib/python3.11/"};
    for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++) {
        const char *m = memmem(f, *len, marks[i], strlen(marks[i]));
        if (m) {
            m += strlen(marks[i]);
            *len -= (size_t)(m - f);
            return m;
        }
    }
    return f;
}

static void put(char *dst, size_t *at, size_t cap, const char *s, size_t n)
{
    for (size_t i = 0; i < n && *at + 1 < cap; i++)
        dst[(*at)++] = s[i] == ';' || s[i] == '\n' ? ':' : s[i]; /* folded stacks split on ';' */
}

void tly__py_remember(uintptr_t code, uintptr_t lasti)
{
    size_t i = text_slot(code, lasti);
    for (size_t k = 0; texts[i].off != 0; i = (i + 1) & (TEXTS_MAX - 1)) {
        if ((texts[i].code == code && texts[i].lasti == lasti) || ++k == TEXTS_MAX / 2)
            return; /* known, or the table is half full: later frames show as "[python frame]" */
    }
    PyCodeObject *co = (PyCodeObject *)code;
    char buf[512];
    size_t at = 0, flen = 0, nlen = 0;
    const char *file = utf8_of(co->co_filename, &flen);
    const char *name = utf8_of(co->co_qualname, &nlen);
    if (file)
        file = short_file(file, &flen);
    put(buf, &at, sizeof buf, file ? file : "?", file ? flen : 1);
    int line = addr2line(co, (int)((lasti & 0xffffffffu) * sizeof(_Py_CODEUNIT)));
    char num[24];
    int k = snprintf(num, sizeof num, ":%d ", line);
    put(buf, &at, sizeof buf, num, k > 0 ? (size_t)k : 0);
    put(buf, &at, sizeof buf, name ? name : "?", name ? nlen : 1);
    if (pool_used + at + 1 > POOL_BYTES)
        return;
    memcpy(pool + pool_used, buf, at); /* a name, not payload */
    pool[pool_used + at] = '\0';
    texts[i] = (struct text){code, lasti, (uint32_t)pool_used};
    pool_used += at + 1;
}

#else /* no Python 3.11 headers at build time: native frames only */

bool tly__py_boot(void)
{
    return false;
}

bool tly__py_active(void)
{
    return false;
}

bool tly__py_is_eval(uintptr_t ip)
{
    (void)ip;
    return false;
}

unsigned tly__py_frames(struct tly__py_frame *out, unsigned cap)
{
    (void)out;
    (void)cap;
    return 0;
}

void tly__py_remember(uintptr_t code, uintptr_t lasti)
{
    (void)code;
    (void)lasti;
}

#endif
