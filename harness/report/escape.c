/*
 * One escaping function per output format: every string that reaches index.html, junit.xml and
 * check.xml, copies.md and the check's summary, or the terminal goes through the one for its sink
 * (JSON is jansson's). The strings come from results files, which a profiled program or an adapter
 * can write: none of them may become markup, break a document or drive the terminal. Each function
 * also replaces a byte that does not start valid UTF-8 (a message cut at a buffer's end).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "report/report.h"

/* The length of the UTF-8 character at @p s (1-4) with its code point in @p cp; 0 when the bytes are
 * not a valid, shortest-form character (or a surrogate). */
static size_t utf8_char(const unsigned char *s, uint32_t *cp)
{
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    size_t n = s[0] >= 0xc2 && s[0] <= 0xdf   ? 2
               : s[0] >= 0xe0 && s[0] <= 0xef ? 3
               : s[0] >= 0xf0 && s[0] <= 0xf4 ? 4
                                              : 0;
    if (n == 0)
        return 0;
    uint32_t c = s[0] & (0x7f >> n);
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = c << 6 | (s[i] & 0x3f);
    }
    static const uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
    if (c < least[n] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return n;
}

/* C0, DEL and C1: what a terminal obeys and XML refuses. */
static bool is_control(uint32_t c)
{
    return c < 0x20 || (c >= 0x7f && c <= 0x9f);
}

bool tly_h_text_has_controls(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        uint32_t c;
        size_t n = utf8_char(p, &c);
        if (n == 0 || is_control(c))
            return true;
        p += n;
    }
    return false;
}

/* Each character of @p s to @p put: a valid character with its code point, an invalid byte as 0 bytes. */
typedef void (*put_fn)(FILE *f, const unsigned char *at, size_t n, uint32_t cp);

static void each_char(FILE *f, const char *s, put_fn put)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    while (*p) {
        uint32_t c = 0;
        size_t n = utf8_char(p, &c);
        put(f, p, n, c);
        p += n ? n : 1;
    }
}

/* The reference for markup's specials <, > and & (NULL for another character): HTML, XML and Markdown's. */
static const char *markup_special(uint32_t c)
{
    return c == '<' ? "&lt;" : c == '>' ? "&gt;" : c == '&' ? "&amp;" : NULL;
}

/* HTML text and attribute values (quoted with ' or "): the five specials as references; a control
 * character or an invalid byte as U+FFFD, the replacement character. */
static void put_html(FILE *f, const unsigned char *at, size_t n, uint32_t c)
{
    if (n == 0 || (is_control(c) && c != '\t' && c != '\n'))
        fputs("\xef\xbf\xbd", f);
    else if (markup_special(c))
        fputs(markup_special(c), f);
    else if (c == '\'')
        fputs("&#39;", f);
    else if (c == '"')
        fputs("&quot;", f);
    else
        fwrite(at, 1, n, f);
}

void tly_h_html_text(FILE *f, const char *s)
{
    each_char(f, s, put_html);
}

/* XML 1.0 text and attribute values: the five specials as references, tab and line ends as character
 * references (an attribute keeps them), every other character XML refuses or discourages (C0, C1,
 * U+FFFE, U+FFFF) and an invalid byte as '?'. */
static void put_xml(FILE *f, const unsigned char *at, size_t n, uint32_t c)
{
    if (n && (c == '\t' || c == '\n' || c == '\r'))
        fprintf(f, "&#%u;", (unsigned)c);
    else if (n == 0 || is_control(c) || c == 0xfffe || c == 0xffff)
        fputc('?', f);
    else if (markup_special(c))
        fputs(markup_special(c), f);
    else if (c == '"')
        fputs("&quot;", f);
    else if (c == '\'')
        fputs("&apos;", f);
    else
        fwrite(at, 1, n, f);
}

void tly_h_xml_text(FILE *f, const char *s)
{
    each_char(f, s, put_xml);
}

/* Markdown (copies.md, the check's summary), in a table's cell or a code span: a control character or
 * an invalid byte as '?', a pipe escaped (it would end the cell), a backtick as ' (it would end the
 * span), HTML's specials as references. */
static void put_md(FILE *f, const unsigned char *at, size_t n, uint32_t c)
{
    if (n == 0 || is_control(c))
        fputc('?', f);
    else if (c == '|')
        fputs("\\|", f);
    else if (c == '`')
        fputc('\'', f);
    else if (markup_special(c))
        fputs(markup_special(c), f);
    else
        fwrite(at, 1, n, f);
}

void tly_h_md_text(FILE *f, const char *s)
{
    each_char(f, s, put_md);
}

/* The terminal: a control character's bytes (C1 as its two UTF-8 bytes) and an invalid byte as \xNN,
 * a backslash doubled (so that \xNN is never ambiguous). */
static size_t term_char(const unsigned char *at, size_t n, uint32_t c, char *out)
{
    if (n == 0)
        return (size_t)sprintf(out, "\\x%02x", at[0]);
    if (is_control(c)) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            k += (size_t)sprintf(out + k, "\\x%02x", at[i]);
        return k;
    }
    if (c == '\\')
        return (size_t)sprintf(out, "\\\\");
    memcpy(out, at, n); /* a character of a name, not payload */
    return n;
}

const char *tly_h_term(char *buf, size_t cap, const char *s)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t used = 0;
    if (cap == 0)
        return "";
    while (*p) {
        uint32_t c = 0;
        size_t n = utf8_char(p, &c);
        char piece[16];
        size_t k = term_char(p, n, c, piece);
        if (used + k >= cap)
            break;                    /* a whole character or nothing: the text stays valid */
        memcpy(buf + used, piece, k); /* text, not payload */
        used += k;
        p += n ? n : 1;
    }
    buf[used] = '\0';
    return buf;
}

void tly_h_term_text(FILE *f, const char *s)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    while (*p) {
        uint32_t c = 0;
        size_t n = utf8_char(p, &c);
        char piece[16];
        fwrite(piece, 1, term_char(p, n, c, piece), f);
        p += n ? n : 1;
    }
}

void tly_h_html_json(FILE *f, json_t *v)
{
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(9));
    for (const char *p = text ? text : "null"; *p; p++) {
        /* only inside JSON's strings can these be: as \u escapes they mean the same to JSON.parse */
        if (*p == '<')
            fputs("\\u003c", f);
        else if (*p == '>')
            fputs("\\u003e", f);
        else if (*p == '&')
            fputs("\\u0026", f);
        else
            fputc(*p, f);
    }
    free(text);
}

double tly_h_finite(double v)
{
    return isfinite(v) ? v : 0.0;
}
