/* The figures every result shares, derived in one place (see figures.h). */
#include "cell/figures.h"

#include <math.h>
#include <stdio.h>

#include "cell/result.h"

static json_int_t ival(json_t *r, const char *key, bool *present)
{
    json_t *v = json_object_get(r, key);
    if (present)
        *present = json_is_integer(v);
    return json_integer_value(v);
}

/* One peak: {before_bytes, peak_bytes, extra_bytes, extra_ratio}; the extra unclamped into @p extra. */
static json_t *peak(json_int_t before, json_int_t peak_bytes, json_int_t taken_off, json_int_t array, json_int_t *extra)
{
    *extra = peak_bytes - before - taken_off;
    json_int_t shown = *extra < 0 ? 0 : *extra;
    return json_pack("{s:I, s:I, s:I, s:o}", "before_bytes", before, "peak_bytes", peak_bytes, "extra_bytes", shown,
                     "extra_ratio", array ? json_real((double)shown / (double)array) : json_null());
}

/* Why the heap's requested peak and the resident one differ by more than TLY_H_PEAKS_APART x array. */
static void apart(json_t *r, double requested, double resident)
{
    char text[512];
    if (requested > resident)
        snprintf(text, sizeof text,
                 "the heap's requested peak extra (%.2f x array) is above the resident one (%.2f): memory was "
                 "allocated and not all touched when the heap peaked (a zero-filled or calloc'd buffer the kernel "
                 "maps lazily, an output not yet written), or was freed before it was all written",
                 requested, resident);
    else
        snprintf(text, sizeof text,
                 "the resident peak extra (%.2f x array) is above the heap's requested one (%.2f): memory freed "
                 "but not yet returned to the kernel, memory-mapped files written or copied into, or memory the "
                 "heap counters do not see (thread stacks, a JIT heap, an allocator of the program's own)",
                 resident, requested);
    json_object_set_new(r, TLY_K_PEAKS_NOTE, json_string(text));
}

void tly_h_figures(json_t *r, bool program_array)
{
    json_int_t array = ival(r, TLY_K_ARRAY, NULL);
    if (program_array && array > 0)
        json_object_set_new(r, TLY_K_OUTPUT, json_integer(array));
    json_int_t off = ival(r, TLY_K_OUTPUT, NULL), extra, rextra, sextra = 0;
    bool have_reserved, have_resident, have_rb;
    json_int_t rb = ival(r, TLY_K_RESERVED_BEFORE, &have_reserved), rp = ival(r, TLY_K_RESERVED_PEAK, NULL);
    json_int_t sb = ival(r, TLY_K_RESIDENT_BEFORE, &have_rb), sp = ival(r, TLY_K_RESIDENT_PEAK, &have_resident);
    have_resident = have_resident && have_rb;

    json_t *peaks = json_object();
    json_object_set_new(peaks, "requested",
                        peak(ival(r, TLY_K_BEFORE, NULL), ival(r, TLY_K_PEAK, NULL), off, array, &extra));
    json_object_set_new(peaks, "reserved", have_reserved ? peak(rb, rp, off, array, &rextra) : json_null());
    json_object_set_new(peaks, "resident", have_resident ? peak(sb, sp, off, array, &sextra) : json_null());
    if (!have_resident && !json_object_get(r, "resident_about"))
        json_object_set_new(peaks, "resident_about", json_string("not sampled for this result"));
    json_object_set_new(r, TLY_K_PEAKS, peaks);

    if (extra < 0) /* never a negative peak extra: say what it means instead */
        json_object_set_new(r, TLY_K_EXTRA_NOTE,
                            json_string(program_array ? "the process's peak is below one array: the array was not "
                                                        "all on its heap (memory-mapped, or never made whole)"
                                                      : "the window's peak is below what was live when it began "
                                                        "plus its output: it ended with less than it started with"));
    else
        json_object_del(r, TLY_K_EXTRA_NOTE);
    json_int_t shown = extra < 0 ? 0 : extra;
    json_object_set_new(r, TLY_K_EXTRA, json_integer(shown));
    if (array <= 0) {
        json_object_set_new(r, TLY_K_EXTRA_RATIO, json_null());
        json_object_set_new(r, TLY_K_EXTRA_COPIES, json_null());
        json_object_set_new(r, TLY_K_OVERHEAD_BOUND, json_false());
        return;
    }
    bool bound;
    json_object_set_new(r, TLY_K_EXTRA_RATIO, json_real((double)shown / (double)array));
    json_object_set_new(r, TLY_K_EXTRA_COPIES, json_integer(tly_h_extra_copies(shown, (uint64_t)array, &bound)));
    json_object_set_new(r, TLY_K_OVERHEAD_BOUND, json_boolean(bound));
    double req = (double)shown / (double)array, res = (double)(sextra < 0 ? 0 : sextra) / (double)array;
    if (have_resident && fabs(req - res) > TLY_H_PEAKS_APART)
        apart(r, req, res);
    else
        json_object_del(r, TLY_K_PEAKS_NOTE);
}
