/*
 * A regressed library, named with where it copies now: the run's own call stacks (the preload's
 * "stacks": issue 21) give the site that copied the most for that library, and its line says it, so a
 * maintainer reading the gate's output knows which function to look at. The baseline keeps no
 * stacks (they would change with every build of the libraries), so this is the site that copies
 * most now, not a difference of sites.
 */
#include <stdio.h>
#include <string.h>

#include "report/check.h"

/* The site of library @p lib that copied the most in run entry @p e (NULL: none). */
static json_t *top_copy_site(json_t *e, const char *lib)
{
    json_t *best = NULL, *s;
    size_t i;
    json_array_foreach(json_object_get(json_object_get(json_object_get(e, "stacks"), "copies"), "sites"), i, s)
    {
        if (strcmp(json_string_value(json_object_get(s, "library")) ?: "", lib) != 0)
            continue;
        if (best == NULL ||
            json_integer_value(json_object_get(s, "bytes")) > json_integer_value(json_object_get(best, "bytes")))
            best = s;
    }
    return best;
}

void tly_h_check_name_sites(json_t *lines, size_t from, json_t *e)
{
    for (size_t i = from; i < json_array_size(lines); i++) {
        json_t *l = json_array_get(lines, i);
        const char *owner = json_string_value(json_object_get(l, "owner"));
        if (strcmp(json_string_value(json_object_get(l, "kind")) ?: "", TLY_H_REGRESSION) != 0 || owner == NULL ||
            strncmp(owner, "library ", 8) != 0)
            continue;
        json_t *site = top_copy_site(e, owner + 8);
        json_t *frames = json_object_get(site, "frames");
        size_t n = json_array_size(frames);
        if (n == 0)
            continue;
        /* the innermost frames: the caller of the copy, and the two calls above it */
        char text[600] = "copied most at ";
        size_t len = strlen(text);
        for (size_t k = n > 3 ? n - 3 : 0; k < n && len < sizeof text - 1; k++)
            len += (size_t)snprintf(text + len, sizeof text - len, "%s%s", k > (n > 3 ? n - 3 : 0) ? " > " : "",
                                    json_string_value(json_array_get(frames, k)) ?: "?");
        if (len < sizeof text - 1)
            snprintf(text + len, sizeof text - len, " (%.1f MiB)",
                     (double)json_integer_value(json_object_get(site, "bytes")) / 1048576.0);
        json_object_set_new(l, "site", json_deep_copy(frames));
        json_object_set_new(l, "reason", json_string(text));
    }
}
