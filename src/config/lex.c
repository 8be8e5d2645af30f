/*
 * lex.c: puma.rb source into tokens, lazily, one at a time.
 *
 * Lexing lazily matters for Ruby blocks: the body of `on_worker_boot do |i|
 * ... end` is lexed leniently (P->lenient) while it is skipped, so Ruby that
 * serval does not read (`|i|`, `@config`, `$stdout`) never stops the file.
 */
#include "config/parse_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

static const char *const keywords[] = {
    "if", "unless", "else", "elsif", "end", "do", "then", "true", "false", "nil", "and", "or",
    "not", "while", "until", "case", "when", "def", "class", "module", "begin", "rescue",
    "return", "yield", "self", "ensure", "for", "in", "next", "break", "redo", "retry", "super",
    "undef", "alias", "defined?", "__FILE__", "__LINE__",
};

/* ---- errors ---------------------------------------------------------- */

int sv_perr(parser_t *P, int line, const char *fmt, ...)
{
    if (P->err)
        return P->err;
    char msg[SV_DIAG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (P->where)
        P->err = sv_cfg_diag(P->diag, "%.*s: %.*s", SV_DIAG_MAX / 4, P->where, SV_DIAG_MAX / 2, msg);
    else
        P->err = sv_cfg_diag(P->diag, "%.*s:%d: %.*s", SV_DIAG_MAX / 4, P->path, line, SV_DIAG_MAX / 2, msg);
    return P->err;
}

int sv_psoft(parser_t *P, const char *fmt, ...)
{
    if (P->err)
        return P->err;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(P->soft, sizeof(P->soft), fmt, ap);
    va_end(ap);
    P->err = SOFT_FAIL;
    return P->err;
}

int sv_poom(parser_t *P)
{
    sv_perr(P, P->tok.line, "out of memory");
    return P->err;
}

/* In lenient mode a lexing problem is just an odd token; fmt has one %.*s for n, a. */
__attribute__((format(printf, 3, 0))) static int lex_fail(parser_t *P, tok_t *t, const char *fmt, const char *a,
                                                          int n)
{
    if (P->lenient) {
        t->type = T_OTHER;
        t->n = (size_t)(P->p - t->p);
        if (t->n == 0) {
            P->p++;
            t->n = 1;
        }
        return 0;
    }
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    return sv_perr(P, t->line, fmt, n, a);
#pragma GCC diagnostic pop
}

/* ---- characters ------------------------------------------------------ */

static bool is_ident_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (unsigned char)c >= 0x80;
}

static bool is_ident_char(char c)
{
    return is_ident_start(c) || (c >= '0' && c <= '9');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

bool sv_tok_is(const tok_t *t, const char *word)
{
    return t->type == T_IDENT && strlen(word) == t->n && !memcmp(t->p, word, t->n);
}

bool sv_tok_is_kw(const tok_t *t)
{
    if (t->type != T_IDENT)
        return false;
    for (size_t i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++)
        if (sv_tok_is(t, keywords[i]))
            return true;
    return false;
}

/* Skips "=begin ... =end" when the lexer sits at the start of "=begin". */
static void skip_embedded_doc(parser_t *P)
{
    while (*P->p) {
        const char *eol = strchr(P->p, '\n');
        bool is_end = !strncmp(P->p, "=end", 4) && (P->p[4] == '\0' || P->p[4] == '\n' ||
                                                    P->p[4] == ' ' || P->p[4] == '\t');
        P->p = eol ? eol + 1 : P->p + strlen(P->p);
        if (eol)
            P->line++;
        if (is_end)
            return;
    }
}

/* Whitespace, comments and line continuations; reports whether any was seen. */
static bool skip_blank(parser_t *P)
{
    bool space = false;
    for (;;) {
        char c = *P->p;
        if (P->line_start && !strncmp(P->p, "=begin", 6)) {
            skip_embedded_doc(P);
            space = true;
            continue; /* still at the start of a line */
        }
        if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') {
            P->p++;
        } else if (c == '\\' && P->p[1] == '\n') {
            P->p += 2;
            P->line++;
        } else if (c == '#') {
            while (*P->p && *P->p != '\n')
                P->p++;
        } else {
            return space;
        }
        space = true;
        P->line_start = false;
    }
}

/* ---- tokens ---------------------------------------------------------- */

/* Digits with Ruby's '_' separators, copied into buf without them. */
static const char *copy_digits(const char *s, char *buf, size_t *n, size_t cap)
{
    while (is_digit(*s) || (*s == '_' && is_digit(s[1]))) {
        if (*s != '_' && *n < cap - 1)
            buf[(*n)++] = *s;
        s++;
    }
    return s;
}

static int lex_number(parser_t *P, tok_t *t)
{
    char buf[80];
    size_t n = 0;
    bool is_float = false;
    const char *s = copy_digits(P->p, buf, &n, sizeof(buf));
    if (*s == '.' && is_digit(s[1])) {
        is_float = true;
        if (n < sizeof(buf) - 1)
            buf[n++] = '.';
        s = copy_digits(s + 1, buf, &n, sizeof(buf));
    }
    if ((*s == 'e' || *s == 'E') && (is_digit(s[1]) || ((s[1] == '-' || s[1] == '+') && is_digit(s[2])))) {
        is_float = true;
        if (n < sizeof(buf) - 3) {
            buf[n++] = 'e';
            if (s[1] == '-' || s[1] == '+')
                buf[n++] = s[1];
        }
        s = copy_digits(s + (s[1] == '-' || s[1] == '+' ? 2 : 1), buf, &n, sizeof(buf));
    }
    buf[n] = '\0';
    P->p = s;
    t->n = (size_t)(s - t->p);
    if (is_ident_char(*s) || n >= sizeof(buf) - 1) {
        while (is_ident_char(*P->p))
            P->p++;
        return lex_fail(P, t, "malformed number '%.*s' (serval reads decimal numbers only)", t->p,
                        (int)(P->p - t->p));
    }
    errno = 0;
    if (is_float) {
        t->type = T_FLOAT;
        t->f = strtod(buf, NULL);
    } else {
        t->type = T_INT;
        /* Ruby reads 0600 as octal, as umask and mode values are written */
        bool octal = buf[0] == '0' && n > 1 && strspn(buf, "01234567") == n;
        if (buf[0] == '0' && n > 1 && !octal)
            return lex_fail(P, t, "malformed number '%.*s' (a leading 0 makes it octal: digits 0-7 only)", t->p,
                            (int)t->n);
        t->i = strtoll(buf, NULL, octal ? 8 : 10);
    }
    if (errno == ERANGE)
        return lex_fail(P, t, "number %.*s is too large", buf, (int)n);
    return 0;
}

/* The end of a #{...} starting at s (after the '{'): nested braces and strings skipped. */
static const char *interp_end(const char *s, int *line)
{
    int depth = 1;
    while (*s) {
        if (*s == '\n')
            (*line)++;
        if (*s == '"' || *s == '\'') {
            char q = *s++;
            while (*s && *s != q) {
                if (*s == '\\' && s[1])
                    s++;
                else if (*s == '\n')
                    (*line)++;
                s++;
            }
            if (!*s)
                return NULL;
        } else if (*s == '{') {
            depth++;
        } else if (*s == '}' && --depth == 0) {
            return s;
        }
        s++;
    }
    return NULL;
}

static int lex_string(parser_t *P, tok_t *t)
{
    char q = *P->p;
    const char *s = P->p + 1;
    int line = P->line;
    t->type = q == '"' ? T_DSTR : T_SSTR;
    while (*s && *s != q) {
        if (*s == '\\' && s[1]) {
            if (s[1] == '\n')
                line++;
            s += 2;
            continue;
        }
        if (q == '"' && s[0] == '#' && s[1] == '{') {
            const char *e = interp_end(s + 2, &line);
            if (!e) {
                s += strlen(s); /* an unclosed #{ runs to the end: the string is unterminated */
                break;
            }
            s = e + 1;
            continue;
        }
        if (*s == '\n')
            line++;
        s++;
    }
    if (!*s) {
        P->p = s;
        P->line = line;
        return lex_fail(P, t, "unterminated string (a %.*s opened here is never closed)", &q, 1);
    }
    P->p = s + 1;
    P->line = line;
    t->n = (size_t)(P->p - t->p);
    return 0;
}

/* %w[a b c] and %i[a b]: words between any bracket pair. */
static int lex_words(parser_t *P, tok_t *t)
{
    char open = P->p[2], close = open == '[' ? ']' : open == '(' ? ')' : open == '{' ? '}' : open == '<' ? '>' : open;
    const char *s = P->p + 3;
    while (*s && *s != close) {
        if (*s == '\n')
            P->line++;
        s++;
    }
    if (!*s) {
        P->p = s;
        return lex_fail(P, t, "unterminated %.*s list", t->p, 2);
    }
    t->type = T_WORDS;
    P->p = s + 1;
    t->n = (size_t)(P->p - t->p);
    return 0;
}

static int lex_ident(parser_t *P, tok_t *t)
{
    const char *s = P->p;
    while (is_ident_char(*s))
        s++;
    /* method names may end in ! or ?, as preload_app! does; != is an operator */
    if ((*s == '!' || *s == '?') && s[1] != '=')
        s++;
    t->type = (*t->p >= 'A' && *t->p <= 'Z') ? T_CONST : T_IDENT;
    t->n = (size_t)(s - t->p);
    if (s[0] == ':' && s[1] != ':' && s[-1] != '?' && s[-1] != '!') {
        t->type = T_LABEL;
        s++;
    }
    P->p = s;
    return 0;
}

static int lex_symbol(parser_t *P, tok_t *t)
{
    const char *s = P->p + 1;
    if (*s == ':') {
        t->type = T_COLON2;
        t->n = 2;
        P->p += 2;
        return 0;
    }
    if (*s == '"' || *s == '\'') { /* :"name" */
        P->p++;
        int rc = lex_string(P, t);
        if (rc == 0 && t->type != T_OTHER) {
            t->type = T_SYM;
            t->p += 1;
            t->n -= 2;
        }
        return rc;
    }
    if (!is_ident_start(*s)) {
        t->type = T_COLON;
        t->n = 1;
        P->p++;
        return 0;
    }
    while (is_ident_char(*s))
        s++;
    if (*s == '!' || *s == '?' || *s == '=')
        s += (*s != '=' || s[1] != '>'); /* :foo= but not :foo=> */
    t->type = T_SYM;
    t->p = P->p + 1;
    t->n = (size_t)(s - t->p);
    P->p = s;
    return 0;
}

/* Longer operators first, then single characters. */
static int lex_punct(parser_t *P, tok_t *t)
{
    static const struct {
        const char *s;
        tok_type_t type;
    } ops[] = {
        {"||=", T_OPASSIGN}, {"&&=", T_OPASSIGN}, {"...", T_DOT3}, {"+=", T_OPASSIGN}, {"-=", T_OPASSIGN},
        {"*=", T_OPASSIGN}, {"/=", T_OPASSIGN}, {"||", T_OROR}, {"&&", T_ANDAND}, {"==", T_EQ},
        {"!=", T_NE}, {"=>", T_ARROW}, {"<=", T_LE}, {">=", T_GE}, {"..", T_DOT2}, {"&.", T_SAFENAV},
        {"(", T_LPAREN}, {")", T_RPAREN}, {"[", T_LBRACK}, {"]", T_RBRACK}, {"{", T_LBRACE},
        {"}", T_RBRACE}, {",", T_COMMA}, {".", T_DOT}, {"=", T_ASSIGN}, {"!", T_BANG},
        {"-", T_MINUS}, {"+", T_PLUS}, {"*", T_STAR}, {"/", T_SLASH}, {"%", T_PERCENT}, {"<", T_LT},
        {">", T_GT}, {"?", T_QUESTION}, {"|", T_PIPE}, {";", T_SEMI},
    };
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        size_t n = strlen(ops[i].s);
        if (!strncmp(P->p, ops[i].s, n)) {
            t->type = ops[i].type;
            t->n = n;
            P->p += n;
            return 0;
        }
    }
    t->type = T_OTHER;
    t->n = 1;
    P->p++;
    /* @ivar, $gvar: one odd token, not one per character */
    if ((*t->p == '@' || *t->p == '$') && is_ident_char(*P->p)) {
        while (is_ident_char(*P->p) || *P->p == '@')
            P->p++;
        t->n = (size_t)(P->p - t->p);
    }
    return 0;
}

static bool at_data_end(const parser_t *P)
{
    return P->line_start && !strncmp(P->p, "__END__", 7) &&
           (P->p[7] == '\0' || P->p[7] == '\n' || P->p[7] == '\r');
}

static int lex(parser_t *P, tok_t *t)
{
    memset(t, 0, sizeof(*t));
    t->space = skip_blank(P);
    t->p = P->p;
    t->line = P->line;
    char c = *P->p;
    if (c == '\0' || at_data_end(P)) {
        t->type = T_EOF;
        return 0;
    }
    P->line_start = false;
    if (c == '\n') {
        t->type = T_NL;
        t->n = 1;
        P->p++;
        P->line++;
        P->line_start = true;
        return 0;
    }
    if (is_digit(c))
        return lex_number(P, t);
    if (is_ident_start(c))
        return lex_ident(P, t);
    if (c == '"' || c == '\'')
        return lex_string(P, t);
    if (c == ':')
        return lex_symbol(P, t);
    if (c == '%' && (P->p[1] == 'w' || P->p[1] == 'i' || P->p[1] == 'W' || P->p[1] == 'I') && P->p[2] &&
        strchr("[({<|!/", P->p[2]))
        return lex_words(P, t);
    return lex_punct(P, t);
}

/* ---- the token stream ------------------------------------------------ */

/* Advance; inside brackets a newline is only whitespace. */
int sv_next(parser_t *P)
{
    do {
        if (P->have_ahead) {
            P->tok = P->ahead;
            P->have_ahead = false;
        } else if (lex(P, &P->tok) < 0) {
            P->tok.type = T_EOF;
            return P->err;
        }
    } while (P->tok.type == T_NL && P->depth > 0);
    return 0;
}

const tok_t *sv_peek(parser_t *P)
{
    if (!P->have_ahead) {
        if (lex(P, &P->ahead) < 0)
            P->ahead.type = T_EOF;
        P->have_ahead = true;
    }
    return &P->ahead;
}

void sv_skip_newlines(parser_t *P)
{
    while (!P->err && P->tok.type == T_NL)
        sv_next(P);
}

/* How a token reads in "unexpected ..." messages. */
void sv_describe(const tok_t *t, char *out, size_t cap)
{
    switch (t->type) {
    case T_EOF: snprintf(out, cap, "end of file"); break;
    case T_NL: snprintf(out, cap, "end of line"); break;
    case T_DSTR:
    case T_SSTR: snprintf(out, cap, "string %.*s", (int)(t->n > 40 ? 40 : t->n), t->p); break;
    case T_SYM: snprintf(out, cap, "symbol :%.*s", (int)t->n, t->p); break;
    case T_LABEL: snprintf(out, cap, "'%.*s:'", (int)t->n, t->p); break;
    default: snprintf(out, cap, "'%.*s'", (int)(t->n > 40 ? 40 : t->n), t->p); break;
    }
}

int sv_unexpected(parser_t *P, const char *expected)
{
    char what[80];
    sv_describe(&P->tok, what, sizeof(what));
    if (expected)
        return sv_perr(P, P->tok.line, "syntax error: unexpected %s (expected %s)", what, expected);
    return sv_perr(P, P->tok.line, "syntax error: unexpected %s", what);
}

int sv_expect(parser_t *P, tok_type_t type, const char *what)
{
    if (P->err)
        return P->err;
    if (P->tok.type != type)
        return sv_unexpected(P, what);
    return sv_next(P);
}

int sv_enter(parser_t *P)
{
    if (++P->nesting > MAX_NESTING)
        return sv_perr(P, P->tok.line, "nested too deeply (more than %d levels)", MAX_NESTING);
    return 0;
}

void sv_lex_push(parser_t *P, const char *text, int line, parser_t *saved)
{
    *saved = *P;
    P->p = text;
    P->line = line;
    P->line_start = false;
    P->have_ahead = false;
    P->depth = 0;
}

void sv_lex_pop(parser_t *P, const parser_t *saved)
{
    P->p = saved->p;
    P->line = saved->line;
    P->line_start = saved->line_start;
    P->tok = saved->tok;
    P->ahead = saved->ahead;
    P->have_ahead = saved->have_ahead;
    P->depth = saved->depth;
}
