/**
 * tally/marks.h — marks for a program measured under the preload tracker (libtally-preload.so,
 * docs/impl-protocol.md): the window to measure, and the stage a thread works in.
 *
 * The preload defines these functions; a program that is not built with tally declares them here
 * weak, so it runs without the preload too: then they are NULL, and TLY_MARKS_AVAILABLE() is false.
 * Without marks the preload measures the whole process.
 *
 *     if (TLY_MARKS_AVAILABLE())
 *         tly_mark_begin("write", array_bytes);
 *
 * A position-independent executable must keep the weak references dynamic (binutils 2.40's ld does;
 * an older one may settle them as NULL at link time): link it with -Wl,-z,dynamic-undefined-weak,
 * or look the functions up with dlsym(RTLD_DEFAULT, ...).
 * Python: `lib = ctypes.CDLL(None)`; `lib.tly_mark_begin(b"write", ctypes.c_ulonglong(n))`.
 */
#ifndef TALLY_MARKS_H
#define TALLY_MARKS_H

#ifdef __cplusplus
extern "C" {
#endif

#ifdef TLY__MARKS_IMPL
#define TLY__MARKS_WEAK /* the preload's own definitions are strong */
#else
#define TLY__MARKS_WEAK __attribute__((weak))
#endif

/**
 * Open a measured window named @p op (any number, one after another or nested, 8 open at once with
 * the whole-process one): its peak starts from the live bytes now. @p op is "write", "read" or free
 * text; @p array_bytes is the array's size, the unit of the result's ratios.
 */
void tly_mark_begin(const char *op, unsigned long long array_bytes) TLY__MARKS_WEAK;

/** As tly_mark_begin(), with a name of its own (@p name NULL or "": the op's). */
void tly_mark_begin_named(const char *name, const char *op, unsigned long long array_bytes) TLY__MARKS_WEAK;

/**
 * Close the innermost open window and write its result (TALLY_PROFILE_DIR, and TALLY_PROFILE_OUT for
 * the process's first window). @p output_bytes: the heap bytes of a read's output allocated inside
 * the window (they are not counted as extra).
 */
void tly_mark_end(unsigned long long output_bytes) TLY__MARKS_WEAK;

/** Close the innermost open window named @p name (and any still open inside it). */
void tly_mark_end_named(const char *name, unsigned long long output_bytes) TLY__MARKS_WEAK;

/** Make the stage named @p stage (one of tally's: "encode", "put", ...) the calling thread's. */
void tly_mark_push(const char *stage) TLY__MARKS_WEAK;

/** Return the calling thread to the stage it had before its last tly_mark_push(). */
void tly_mark_pop(void) TLY__MARKS_WEAK;

/** True when the preload is loaded and the marks reach it. */
#define TLY_MARKS_AVAILABLE() (tly_mark_begin != 0)

#ifdef __cplusplus
}
#endif

#endif
