/*
 * Native frames named when a window's result is written (never in a hook): the function from
 * elfutils' libdwfl (the object's .symtab when it has one, so a static function is named, else its
 * dynamic symbols), its file and line from DWARF where the object carries it (or a debug file found
 * by build id), a C++ name demangled (libstdc++'s __cxa_demangle, when the process has it). Without
 * libdw at build time, dladdr alone names exported functions. A frame nothing names reads
 * lib+0xOFFSET; one whose object was unloaded since, [unloaded]+0xADDRESS. Nothing here fails a run.
 */
#include <dlfcn.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mem/internal.h"
#include "mem/stacks.h"

#ifdef TLY_HAVE_LIBDW
#include <elfutils/libdwfl.h>

static Dwfl *dwfl;
static char *debuginfo_path;
/* Debug files from this machine only: by build id under /usr/lib/debug (libc6-dbg, *-dbgsym), or the
 * object's own DWARF. Not dwfl_standard_find_debuginfo: it asks debuginfod servers, over the network,
 * through libcurl, whose start-up at exit meets an OpenSSL already shut down (a crash). */
static int find_debuginfo(Dwfl_Module *m, void **user, const char *name, Dwarf_Addr base, const char *file,
                          const char *debuglink, GElf_Word crc, char **debuginfo_file)
{
    return dwfl_build_id_find_debuginfo(m, user, name, base, file, debuglink, crc, debuginfo_file);
}

static const Dwfl_Callbacks callbacks = {
    .find_elf = dwfl_linux_proc_find_elf,
    .find_debuginfo = find_debuginfo,
    .debuginfo_path = &debuginfo_path,
};
#endif

typedef char *(*demangle_fn)(const char *, char *, size_t *, int *);
static demangle_fn demangle;

void tly__sym_begin(void)
{
    const struct tly__stacks_ops *o = tly__stacks_ops();
    if (o && o->sync)
        o->sync(); /* objects unloaded since the last rebuild are logged now (the preload's) */
    demangle = (demangle_fn)dlsym(RTLD_DEFAULT, "__cxa_demangle");
#ifdef TLY_HAVE_LIBDW
    dwfl = dwfl_begin(&callbacks);
    if (dwfl && (dwfl_linux_proc_report(dwfl, getpid()) != 0 || dwfl_report_end(dwfl, NULL, NULL) != 0)) {
        dwfl_end(dwfl);
        dwfl = NULL;
    }
#endif
}

void tly__sym_end(void)
{
#ifdef TLY_HAVE_LIBDW
    if (dwfl)
        dwfl_end(dwfl); /* its descriptors close here: none outlives the report */
    dwfl = NULL;
#endif
}

static const char *base_of(const char *path)
{
    const char *b = path ? strrchr(path, '/') : NULL;
    return b ? b + 1 : path ? path : "?";
}

static bool is_runtime(const char *path)
{
    const char *b = base_of(path);
    return strncmp(b, "python3", 7) == 0 || strncmp(b, "libpython", 9) == 0;
}

/* @p s into @p out with ';' (folded stacks' separator) and newlines made ':' */
static void clean(char *out)
{
    for (char *p = out; *p; p++)
        if (*p == ';' || *p == '\n')
            *p = ':';
}

static const char *nicer(const char *name, char **freeme)
{
    *freeme = NULL;
    if (name && demangle && strncmp(name, "_Z", 2) == 0) {
        int st = -1;
        char *d = demangle(name, NULL, NULL, &st);
        if (d && st == 0)
            return *freeme = d;
        free(d);
    }
    return name;
}

/*
 * A Python extension's function that no symbol names (Debian strips them; Cython's are static): the
 * start of the function holding @p a (its .eh_frame FDE, found by libgcc's unwinder) is looked for as the ml_meth of a
 * PyMethodDef ({name, meth, flags, doc}) in the module's data. Found: the name Python calls it by
 * (numcodecs' blosc "compress"). Only a function Python calls directly has one.
 */
struct ext_scan {
    uintptr_t base, target;
    const char *name;
};

static bool in_object(const struct dl_phdr_info *info, uintptr_t p, size_t n)
{
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && p >= lo && p + n <= lo + ph->p_memsz)
            return true;
    }
    return false;
}

static bool identifier(const struct dl_phdr_info *info, const char *s)
{
    for (size_t i = 0; i < 64; i++) {
        if (!in_object(info, (uintptr_t)(s + i), 1))
            return false;
        char c = s[i];
        if (c == '\0')
            return i > 0;
        if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
            return false;
    }
    return false;
}

static int scan_object(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct ext_scan *x = arg;
    if (info->dlpi_addr != x->base)
        return 0;
    for (int i = 0; i < info->dlpi_phnum && x->name == NULL; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || (ph->p_flags & PF_X) || !(ph->p_flags & PF_W))
            continue;
        const uintptr_t *w = (const uintptr_t *)((info->dlpi_addr + ph->p_vaddr + 7) & ~(uintptr_t)7);
        size_t n = ph->p_memsz / sizeof *w;
        for (size_t k = 1; k + 1 < n; k++)
            if (w[k] == x->target && identifier(info, (const char *)w[k - 1])) {
                x->name = (const char *)w[k - 1];
                break;
            }
    }
    return 1;
}

/* libgcc's FDE lookup (exported, not in a public header): @p bases->func is the function's start. */
struct dwarf_eh_bases {
    void *tbase, *dbase, *func;
};
extern const void *_Unwind_Find_FDE(void *pc, struct dwarf_eh_bases *bases);

static const char *pymethod(uintptr_t a, uintptr_t base)
{
    struct dwarf_eh_bases b = {NULL, NULL, NULL};
    if (_Unwind_Find_FDE((void *)a, &b) == NULL || b.func == NULL)
        return NULL;
    struct ext_scan x = {base, (uintptr_t)b.func, NULL};
    dl_iterate_phdr(scan_object, &x);
    return x.name;
}

/* An extension module's name as Python knows it: numcodecs/blosc for .../numcodecs/blosc.cpython-311-...so */
static void module_of(const char *path, char *out, size_t cap)
{
    const char *p = strstr(path, "-packages/");
    p = p ? p + strlen("-packages/") : base_of(path);
    snprintf(out, cap, "%.*s", (int)strcspn(p, "."), p);
}

void tly__sym_name(uintptr_t ip, unsigned gen, char *out, size_t cap, bool *runtime)
{
    uintptr_t a = ip - 1; /* inside the call */
    const char *obj = NULL, *fn = NULL, *src = NULL;
    uintptr_t base = 0;
    int line = 0;
    *runtime = false;
    const struct tly__stacks_ops *o = tly__stacks_ops();
    const char *gone = o && o->gone_find ? o->gone_find(a, gen, &base) : NULL;
    if (gone) {
        snprintf(out, cap, "%s+0x%lx [unloaded]", base_of(gone), (unsigned long)(a - base));
        clean(out);
        return;
    }
#ifdef TLY_HAVE_LIBDW
    Dwfl_Module *m = dwfl ? dwfl_addrmodule(dwfl, a) : NULL;
    if (m) {
        Dwarf_Addr lo = 0;
        obj = dwfl_module_info(m, NULL, &lo, NULL, NULL, NULL, NULL, NULL);
        base = (uintptr_t)lo;
        fn = dwfl_module_addrname(m, a);
        Dwfl_Line *l = dwfl_module_getsrc(m, a);
        if (l)
            src = dwfl_lineinfo(l, NULL, &line, NULL, NULL, NULL);
    }
#endif
    Dl_info info;
    if ((obj == NULL || fn == NULL) && dladdr((void *)a, &info)) {
        if (obj == NULL) {
            obj = info.dli_fname;
            base = (uintptr_t)info.dli_fbase;
        }
        if (fn == NULL)
            fn = info.dli_sname;
    }
    const char *py =
        fn == NULL && obj && (strstr(obj, ".cpython-") || strstr(obj, ".abi3.so")) ? pymethod(a, base) : NULL;
    if (py) {
        char mod[128];
        module_of(obj, mod, sizeof mod);
        snprintf(out, cap, "%s %s", mod, py);
        clean(out);
        return;
    }
    char plain[256];
    if (fn && strchr(fn, '@')) { /* a versioned name: __libc_start_main@@GLIBC_2.34 */
        snprintf(plain, sizeof plain, "%.*s", (int)strcspn(fn, "@"), fn);
        fn = plain;
    }
    char *freeme;
    fn = nicer(fn, &freeme);
    if (obj == NULL)
        snprintf(out, cap, "[unloaded]+0x%lx", (unsigned long)ip);
    else if (fn && src && line > 0)
        snprintf(out, cap, "%s (%s:%d)", fn, base_of(src), line);
    else if (fn)
        snprintf(out, cap, "%s [%s]", fn, base_of(obj));
    else
        snprintf(out, cap, "%s+0x%lx", base_of(obj), (unsigned long)(a - base));
    *runtime = obj && is_runtime(obj);
    free(freeme);
    clean(out);
}
