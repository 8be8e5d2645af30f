#include "json_read.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

typedef struct parser {
    jr_doc_t *d;
    char *p;
    char *end;
    int depth;
} parser_t;

static int parse_value(parser_t *ps);

static void skip_ws(parser_t *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static int new_node(jr_doc_t *d, jr_type_t type)
{
    if (d->n == d->cap) {
        int cap = d->cap ? d->cap * 2 : 64;
        jr_node_t *nodes = realloc(d->nodes, (size_t)cap * sizeof(*nodes));
        if (!nodes)
            return -ENOMEM;
        d->nodes = nodes;
        d->cap = cap;
    }
    jr_node_t *n = &d->nodes[d->n];
    memset(n, 0, sizeof(*n));
    n->type = type;
    n->first_child = -1;
    n->next = -1;
    return d->n++;
}

static bool literal(parser_t *ps, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
        return false;
    ps->p += n;
    return true;
}

static int hex4(const char *s, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        unsigned digit;
        if (c >= '0' && c <= '9')
            digit = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            digit = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            digit = (unsigned)(c - 'A' + 10);
        else
            return SV_EPARSE;
        v = v * 16 + digit;
    }
    *out = v;
    return 0;
}

static char *put_utf8(char *w, unsigned cp)
{
    if (cp < 0x80) {
        *w++ = (char)cp;
    } else if (cp < 0x800) {
        *w++ = (char)(0xC0 | (cp >> 6));
        *w++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *w++ = (char)(0xE0 | (cp >> 12));
        *w++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *w++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *w++ = (char)(0xF0 | (cp >> 18));
        *w++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *w++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *w++ = (char)(0x80 | (cp & 0x3F));
    }
    return w;
}

/* After "\u" at *r: decode one code point (joining a surrogate pair) and advance *r. */
static int unicode_escape(parser_t *ps, char **r, unsigned *cp)
{
    if (ps->end - *r < 4 || hex4(*r, cp) < 0)
        return SV_EPARSE;
    *r += 4;
    if (*cp >= 0xD800 && *cp < 0xDC00 && ps->end - *r >= 6 && (*r)[0] == '\\' && (*r)[1] == 'u') {
        unsigned lo;
        if (hex4(*r + 2, &lo) == 0 && lo >= 0xDC00 && lo < 0xE000) {
            *cp = 0x10000 + ((*cp - 0xD800) << 10) + (lo - 0xDC00);
            *r += 6;
        }
    }
    if (*cp >= 0xD800 && *cp < 0xE000)
        *cp = 0xFFFD; /* a lone surrogate */
    return 0;
}

static char escaped_char(char c)
{
    switch (c) {
    case '"': return '"';
    case '\\': return '\\';
    case '/': return '/';
    case 'b': return '\b';
    case 'f': return '\f';
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    default: return 0;
    }
}

/*
 * Decode the string at ps->p (on the opening quote) in place: the decoded
 * form is never longer than the source, so it is written over it and
 * NUL-terminated where the closing quote was (or earlier).
 */
static int parse_string(parser_t *ps, const char **out)
{
    char *r = ps->p + 1;
    char *w = r;
    *out = w;
    while (r < ps->end && *r != '"') {
        unsigned char c = (unsigned char)*r;
        if (c < 0x20)
            return SV_EPARSE;
        if (c != '\\') {
            *w++ = *r++;
            continue;
        }
        if (++r >= ps->end)
            return SV_EPARSE;
        if (*r == 'u') {
            unsigned cp;
            r++;
            if (unicode_escape(ps, &r, &cp) < 0)
                return SV_EPARSE;
            w = put_utf8(w, cp);
            continue;
        }
        char e = escaped_char(*r++);
        if (!e)
            return SV_EPARSE;
        *w++ = e;
    }
    if (r >= ps->end)
        return SV_EPARSE;
    *w = '\0';
    ps->p = r + 1;
    return 0;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* JSON's number grammar, stricter than strtod (no hex, inf, nan, leading +). */
static int parse_number(parser_t *ps, double *out)
{
    char *s = ps->p;
    char *p = s;
    if (p < ps->end && *p == '-')
        p++;
    if (p < ps->end && *p == '0')
        p++;
    else if (p < ps->end && is_digit(*p))
        while (p < ps->end && is_digit(*p))
            p++;
    else
        return SV_EPARSE;
    if (p < ps->end && *p == '.') {
        if (++p >= ps->end || !is_digit(*p))
            return SV_EPARSE;
        while (p < ps->end && is_digit(*p))
            p++;
    }
    if (p < ps->end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < ps->end && (*p == '+' || *p == '-'))
            p++;
        if (p >= ps->end || !is_digit(*p))
            return SV_EPARSE;
        while (p < ps->end && is_digit(*p))
            p++;
    }
    char saved = *p; /* the copy is NUL-terminated, so *p is readable */
    *p = '\0';
    *out = strtod(s, NULL);
    *p = saved;
    ps->p = p;
    return 0;
}

static void link_child(jr_doc_t *d, int parent, int *last, int child)
{
    if (*last < 0)
        d->nodes[parent].first_child = child;
    else
        d->nodes[*last].next = child;
    *last = child;
    d->nodes[parent].count++;
}

/* Elements of an array or members of an object, after the opening bracket. */
static int parse_container(parser_t *ps, int self, bool object)
{
    char close = object ? '}' : ']';
    int last = -1;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        return self;
    }
    for (;;) {
        const char *key = NULL;
        skip_ws(ps);
        if (object) {
            if (ps->p >= ps->end || *ps->p != '"' || parse_string(ps, &key) < 0)
                return SV_EPARSE;
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p++ != ':')
                return SV_EPARSE;
        }
        int child = parse_value(ps);
        if (child < 0)
            return child;
        ps->d->nodes[child].key = key;
        link_child(ps->d, self, &last, child);
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == close) {
            ps->p++;
            return self;
        }
        return SV_EPARSE;
    }
}

static int parse_scalar(parser_t *ps)
{
    char c = *ps->p;
    int self;
    if (c == '"') {
        const char *s;
        if (parse_string(ps, &s) < 0)
            return SV_EPARSE;
        if ((self = new_node(ps->d, JR_STRING)) >= 0)
            ps->d->nodes[self].str = s;
        return self;
    }
    bool truth = literal(ps, "true");
    if (truth || literal(ps, "false")) {
        if ((self = new_node(ps->d, JR_BOOL)) >= 0)
            ps->d->nodes[self].boolean = truth;
        return self;
    }
    if (literal(ps, "null"))
        return new_node(ps->d, JR_NULL);
    double v;
    if (parse_number(ps, &v) < 0)
        return SV_EPARSE;
    if ((self = new_node(ps->d, JR_NUMBER)) >= 0)
        ps->d->nodes[self].num = v;
    return self;
}

static int parse_value(parser_t *ps)
{
    skip_ws(ps);
    if (ps->p >= ps->end)
        return SV_EPARSE;
    char c = *ps->p;
    if (c != '{' && c != '[')
        return parse_scalar(ps);
    if (ps->depth >= JR_MAX_DEPTH)
        return SV_EPARSE;
    int self = new_node(ps->d, c == '{' ? JR_OBJECT : JR_ARRAY);
    if (self < 0)
        return self;
    ps->p++;
    ps->depth++;
    int rc = parse_container(ps, self, c == '{');
    ps->depth--;
    return rc;
}

int jr_parse(jr_doc_t *d, const char *text, size_t len)
{
    memset(d, 0, sizeof(*d));
    d->text = malloc(len + 1);
    if (!d->text)
        return -ENOMEM;
    memcpy(d->text, text, len);
    d->text[len] = '\0';
    parser_t ps = {.d = d, .p = d->text, .end = d->text + len};
    int rc = parse_value(&ps);
    if (rc >= 0) {
        skip_ws(&ps);
        rc = ps.p == ps.end ? 0 : SV_EPARSE;
    }
    if (rc < 0)
        d->n = 0;
    return rc < 0 ? rc : 0;
}

void jr_free(jr_doc_t *d)
{
    free(d->nodes);
    free(d->text);
    memset(d, 0, sizeof(*d));
}

const jr_node_t *jr_root(const jr_doc_t *d)
{
    return d->n > 0 ? &d->nodes[0] : NULL;
}

const jr_node_t *jr_get(const jr_doc_t *d, const jr_node_t *obj, const char *key)
{
    if (!obj || obj->type != JR_OBJECT)
        return NULL;
    for (int i = obj->first_child; i >= 0; i = d->nodes[i].next)
        if (!strcmp(d->nodes[i].key, key))
            return &d->nodes[i];
    return NULL;
}

const jr_node_t *jr_path(const jr_doc_t *d, const jr_node_t *node, const char *path)
{
    char key[128];
    while (node && *path) {
        size_t n = strcspn(path, ".");
        if (n >= sizeof(key))
            return NULL;
        memcpy(key, path, n);
        key[n] = '\0';
        node = jr_get(d, node, key);
        path += n + (path[n] == '.');
    }
    return node;
}

const jr_node_t *jr_at(const jr_doc_t *d, const jr_node_t *arr, int i)
{
    if (!arr || (arr->type != JR_ARRAY && arr->type != JR_OBJECT) || i < 0)
        return NULL;
    int k = arr->first_child;
    while (k >= 0 && i-- > 0)
        k = d->nodes[k].next;
    return k >= 0 ? &d->nodes[k] : NULL;
}

int64_t jr_int(const jr_node_t *node, int64_t def)
{
    return node && node->type == JR_NUMBER ? (int64_t)node->num : def;
}

double jr_num(const jr_node_t *node, double def)
{
    return node && node->type == JR_NUMBER ? node->num : def;
}

const char *jr_str(const jr_node_t *node, const char *def)
{
    return node && node->type == JR_STRING ? node->str : def;
}

bool jr_bool(const jr_node_t *node, bool def)
{
    return node && node->type == JR_BOOL ? node->boolean : def;
}

bool jr_is_null(const jr_node_t *node)
{
    return node && node->type == JR_NULL;
}
