/*
 * Site budgets: limits on the bytes of call-stack sites (a result's "stacks", written by the preload,
 * or by the engine for tally's own cells, whose outermost frame is the stage: "stage gather").
 * {"sites": {"hold_here": {"at_peak_bytes": 120000000, "copied_bytes": 0}}}: the bytes live at the
 * peak (copied in the window) of every listed site whose frames include one containing the text, added
 * up. A site past the ones the result lists (its "other_bytes") is not seen; a result without stacks
 * (TALLY_PROFILE_STACKS=0) has no figure: the budget fails as missing.
 */
#include <string.h>

#include "cell/cell.h"
#include "harness.h"

static const char *const site_figures[] = {"at_peak_bytes", "copied_bytes", NULL};

int tly_h_budgets_sites_validate(json_t *sites, const char *where)
{
    if (!json_is_object(sites))
        return tly_fail(TLY_EFORMAT, "%s: budgets.sites must be an object (frame text -> figure -> limit)", where);
    const char *text, *k;
    json_t *lim, *v;
    json_object_foreach(sites, text, lim)
    {
        if (*text == '\0')
            return tly_fail(TLY_EFORMAT, "%s: budgets.sites: an empty frame text matches every site", where);
        if (!json_is_object(lim))
            return tly_fail(TLY_EFORMAT, "%s: budgets.sites.%s must be an object", where, text);
        json_object_foreach(lim, k, v)
        {
            if (!tly_h_word_in(site_figures, k))
                return tly_fail(TLY_EFORMAT, "%s: budgets.sites.%s: unknown figure '%s' (at_peak_bytes, copied_bytes)",
                                where, text, k);
            if (!json_is_number(v))
                return tly_fail(TLY_EFORMAT, "%s: budgets.sites.%s.%s must be a number", where, text, k);
        }
    }
    return 0;
}

static bool names(json_t *site, const char *text)
{
    size_t i;
    json_t *fr;
    json_array_foreach(json_object_get(site, "frames"), i, fr)
    {
        if (json_is_string(fr) && strstr(json_string_value(fr), text))
            return true;
    }
    return false;
}

/* The bytes of the sites of @p block ("peak" or "copies") naming @p text; NULL without stacks. */
static json_t *site_bytes(json_t *result, const char *block, const char *text)
{
    json_t *st = json_object_get(result, "stacks");
    json_t *b = json_is_object(st) && json_is_true(json_object_get(st, "enabled")) ? json_object_get(st, block) : NULL;
    json_t *sites = json_object_get(b, "sites");
    if (!json_is_array(sites))
        return NULL;
    long long sum = 0;
    size_t i;
    json_t *s;
    json_array_foreach(sites, i, s)
    {
        json_t *bytes = json_object_get(s, "bytes");
        if (json_is_integer(bytes) && names(s, text))
            sum += (long long)json_integer_value(bytes);
    }
    return json_integer(sum);
}

void tly_h_budgets_sites_check(json_t *sites, json_t *result, json_t *lines, bool *all_ok)
{
    const char *text, *k;
    json_t *lim, *v;
    json_object_foreach(sites, text, lim)
    {
        json_object_foreach(lim, k, v)
        {
            json_t *actual = site_bytes(result, strcmp(k, "copied_bytes") == 0 ? "copies" : "peak", text);
            bool ok = actual && json_integer_value(actual) <= json_number_value(v);
            json_t *line = json_pack("{s:s, s:f, s:o, s:b, s:n, s:s}", "name", k, "limit", json_number_value(v),
                                     "actual", actual ? actual : json_null(), "ok", ok, "stage", "site", text);
            json_array_append_new(lines, line);
            *all_ok &= ok;
        }
    }
}
