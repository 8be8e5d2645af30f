/*
 * urlencoded.c: percent-decoding, application/x-www-form-urlencoded fields
 * and Cookie headers, for apps (declared in serval.h). Bytes in, bytes out:
 * no socket, no allocation, no request, so every function is unit-tested on
 * strings and safe on any thread. Lengths are size_t throughout: a client
 * controls these inputs, and nothing here recurses or copies beyond cap.
 */
#include "serval.h"

#include <errno.h>
#include <string.h>

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (unsigned char)(c | 0x20);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/*
 * Decode the byte at src[*i] (advancing *i past it). Returns the byte, or -1
 * for a '%' without two hex digits after it.
 */
static int decode_at(const char *src, size_t len, size_t *i, int plus_is_space)
{
    unsigned char c = (unsigned char)src[*i];
    if (c == '+' && plus_is_space) {
        (*i)++;
        return ' ';
    }
    if (c != '%') {
        (*i)++;
        return c;
    }
    if (len - *i < 3)
        return -1;
    int hi = hex_value((unsigned char)src[*i + 1]);
    int lo = hex_value((unsigned char)src[*i + 2]);
    if (hi < 0 || lo < 0)
        return -1;
    *i += 3;
    return hi << 4 | lo;
}

/*
 * Two passes: measure and validate, then write. A failure therefore leaves
 * dst as it was, so a default the caller put there first survives a missing,
 * malformed or too long field.
 */
long serval_url_decode(char *dst, size_t cap, const char *src, size_t len, int plus_is_space)
{
    if (dst == NULL || (src == NULL && len > 0))
        return -EINVAL;
    size_t n = 0;
    for (size_t i = 0; i < len; n++) {
        if (decode_at(src, len, &i, plus_is_space) < 0)
            return -EINVAL;
    }
    if (n >= cap) /* keep room for the NUL */
        return -ENOSPC;
    n = 0;
    for (size_t i = 0; i < len;)
        dst[n++] = (char)decode_at(src, len, &i, plus_is_space);
    dst[n] = '\0';
    return (long)n;
}

int serval_form_next(const char *form, size_t len, size_t *pos, serval_form_pair_t *pair)
{
    if (form == NULL || pos == NULL || pair == NULL)
        return 0;
    size_t i = *pos;
    while (i < len && form[i] == '&')
        i++;
    if (i >= len) {
        *pos = len;
        return 0;
    }
    const char *field = form + i;
    const char *amp = memchr(field, '&', len - i);
    size_t flen = amp ? (size_t)(amp - field) : len - i;
    const char *eq = memchr(field, '=', flen);
    pair->name = field;
    pair->name_len = eq ? (size_t)(eq - field) : flen;
    pair->has_value = eq != NULL;
    pair->value = eq ? eq + 1 : field + flen;
    pair->value_len = eq ? flen - pair->name_len - 1 : 0;
    *pos = i + flen;
    return 1;
}

/* Does the encoded name (len bytes) decode to exactly want? */
static int name_matches(const char *enc, size_t len, const char *want)
{
    size_t j = 0;
    for (size_t i = 0; i < len;) {
        int c = decode_at(enc, len, &i, 1);
        if (c < 0 || want[j] == '\0' || (unsigned char)want[j] != c)
            return 0;
        j++;
    }
    return want[j] == '\0';
}

long serval_form_value(const char *form, size_t len, const char *name, size_t nth, char *buf,
                       size_t cap)
{
    if (form == NULL || name == NULL || buf == NULL)
        return -EINVAL;
    size_t pos = 0;
    serval_form_pair_t f;
    while (serval_form_next(form, len, &pos, &f)) {
        if (!name_matches(f.name, f.name_len, name))
            continue;
        if (nth-- == 0)
            return serval_url_decode(buf, cap, f.value, f.value_len, 1);
    }
    return -ENOENT;
}

static int is_cookie_space(char c)
{
    return c == ' ' || c == '\t';
}

/* Trim spaces around [*p, *p + *n). */
static void trim(const char **p, size_t *n)
{
    while (*n > 0 && is_cookie_space(**p)) {
        (*p)++;
        (*n)--;
    }
    while (*n > 0 && is_cookie_space((*p)[*n - 1]))
        (*n)--;
}

static long copy_out(char *buf, size_t cap, const char *v, size_t n)
{
    if (n >= cap)
        return -ENOSPC;
    memcpy(buf, v, n);
    buf[n] = '\0';
    return (long)n;
}

long serval_cookie_value(const char *header, size_t len, const char *name, char *buf, size_t cap)
{
    if (header == NULL || name == NULL || buf == NULL)
        return -EINVAL;
    size_t want = strlen(name);
    size_t i = 0;
    while (i < len) {
        const char *item = header + i;
        const char *semi = memchr(item, ';', len - i);
        size_t ilen = semi ? (size_t)(semi - item) : len - i;
        i += ilen + (semi != NULL);
        const char *eq = memchr(item, '=', ilen);
        if (eq == NULL)
            continue; /* not a cookie-pair: ignored, as browsers do */
        const char *n = item;
        size_t nlen = (size_t)(eq - item);
        const char *v = eq + 1;
        size_t vlen = ilen - nlen - 1;
        trim(&n, &nlen);
        trim(&v, &vlen);
        if (nlen != want || memcmp(n, name, want) != 0)
            continue;
        if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"') {
            v++;
            vlen -= 2;
        }
        return copy_out(buf, cap, v, vlen);
    }
    return -ENOENT;
}
