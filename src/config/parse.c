/*
 * parse.c: the puma.rb subset.
 *
 * A lazy lexer feeds a recursive-descent parser that builds a small tree per
 * statement, then evaluates it. Building the tree first matters for trailing
 * modifiers: in `pidfile ENV.fetch("PIDFILE") if ENV["PIDFILE"]` Ruby never
 * evaluates the fetch when the condition is false, and neither may we.
 * Lexing lazily matters for Ruby blocks: the body of `on_worker_boot do
 * |i| ... end` is never lexed, so the error names the hook, not a '|'.
 */
#include "config/internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

typedef enum tok_type {
    T_EOF = 0, T_NL, T_SEMI,
    T_IDENT, /* also keywords; see is_kw */
    T_CONST,
    T_LABEL, /* auth_token: */
    T_INT, T_FLOAT, T_DSTR, T_SSTR, T_SYM,
    T_LPAREN, T_RPAREN, T_LBRACK, T_RBRACK, T_LBRACE, T_RBRACE, T_COMMA, T_DOT,
    T_ASSIGN, T_ARROW, T_OROR, T_ANDAND, T_EQ, T_NE, T_BANG, T_MINUS,
    T_OTHER, /* any other character: an error wherever the parser meets it */
} tok_type_t;

typedef struct tok {
    tok_type_t type;
    const char *p; /* in the source; strings include their quotes */
    size_t n;
    int line;
    bool space; /* whitespace before it: `port (80)` is not `port(80)` */
    int64_t i;
    double f;
} tok_t;

typedef enum node_kind {
    N_LIT,
    N_VAR,
    N_ENV,     /* ENV[a] */
    N_FETCH,   /* ENV.fetch(a[, b]) or ENV.fetch(a) { b } */
    N_INTEGER, /* Integer(a) */
    N_FLOATF,  /* Float(a) */
    N_METHOD,  /* a.name */
    N_OR,
    N_AND,
    N_EQ,
    N_NE,
    N_NOT,
    N_HASH, /* pairs: a linked list of N_PAIR */
    N_PAIR, /* name => a, next */
} node_kind_t;

typedef struct node node_t;
struct node {
    node_kind_t kind;
    int line;
    struct parser *owner;
    sv_value_t lit;
    char *name;
    node_t *a, *b, *next;
};

/* Bounds on recursion in parsing, evaluating and freeing: a config never nears them. */
#define MAX_NESTING 64
#define MAX_NODES 4096

typedef struct var {
    char *name;
    sv_value_t val;
} var_t;

typedef struct parser {
    const char *path;  /* file messages: "path:line: " */
    const char *where; /* or a fixed prefix (sv_config_apply, flags) */
    bool raw;
    const char *p; /* next unlexed character */
    int line;
    bool line_start;
    int depth; /* inside (), [] or {}: newlines do not end anything */
    int nesting; /* open parentheses, negations and if-blocks */
    int nodes;   /* tree nodes alive */
    tok_t tok;
    tok_t ahead;
    bool have_ahead;
    sv_config_t *cfg;
    sv_diag_t *diag;
    var_t *vars;
    int nvars, capvars;
    int err;
} parser_t;

static const char *const keywords[] = {
    "if", "unless", "else", "elsif", "end", "do", "then", "true", "false", "nil", "and", "or",
    "not", "while", "until", "case", "when", "def", "class", "module", "begin", "rescue",
    "return", "yield", "self", "ensure", "for", "in", "next", "break", "redo", "retry", "super",
    "undef", "alias", "defined?", "__FILE__", "__LINE__", "__dir__",
};

static void node_free(node_t *n);
static int parse_expr(parser_t *P, node_t **out);
static int parse_body(parser_t *P, bool active, const char *opener, int open_line);

/* ---- errors ---------------------------------------------------------- */

static int perr(parser_t *P, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int perr(parser_t *P, int line, const char *fmt, ...)
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

static int oom(parser_t *P)
{
    perr(P, P->tok.line, "out of memory");
    return P->err;
}

/* ---- lexer ----------------------------------------------------------- */

static bool is_ident_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_ident_char(char c)
{
    return is_ident_start(c) || (c >= '0' && c <= '9');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool tok_is(const tok_t *t, const char *word)
{
    return t->type == T_IDENT && strlen(word) == t->n && !memcmp(t->p, word, t->n);
}

static bool is_kw(const tok_t *t)
{
    if (t->type != T_IDENT)
        return false;
    for (size_t i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++)
        if (tok_is(t, keywords[i]))
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
        return perr(P, t->line, "malformed number '%.*s' (serval reads decimal numbers only)",
                    (int)(P->p - t->p), t->p);
    }
    errno = 0;
    if (is_float) {
        t->type = T_FLOAT;
        t->f = strtod(buf, NULL);
    } else {
        t->type = T_INT;
        t->i = strtoll(buf, NULL, 10);
    }
    if (errno == ERANGE)
        return perr(P, t->line, "number %s is too large", buf);
    return 0;
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
        if (q == '"' && s[0] == '#' && s[1] == '{')
            return perr(P, line,
                        "string interpolation #{...} is not supported (hint: write the value out, "
                        "or assign it to a variable and pass the variable)");
        if (*s == '\n')
            line++;
        s++;
    }
    if (!*s)
        return perr(P, t->line, "unterminated string (a %c opened here is never closed)", q);
    P->p = s + 1;
    P->line = line;
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
    if (*s == ':')
        return perr(P, t->line, "'::' is not supported (serval reads a declarative subset of Ruby)");
    if (!is_ident_start(*s))
        return perr(P, t->line, "unexpected ':' (symbols look like :forever)");
    while (is_ident_char(*s))
        s++;
    if (*s == '!' || *s == '?')
        s++;
    t->type = T_SYM;
    t->p = P->p + 1;
    t->n = (size_t)(s - t->p);
    P->p = s;
    return 0;
}

/* Two-character operators first, then single characters. */
static int lex_punct(parser_t *P, tok_t *t)
{
    static const struct {
        const char *s;
        tok_type_t type;
    } ops[] = {
        {"||", T_OROR}, {"&&", T_ANDAND}, {"==", T_EQ}, {"!=", T_NE}, {"=>", T_ARROW},
        {"(", T_LPAREN}, {")", T_RPAREN}, {"[", T_LBRACK}, {"]", T_RBRACK}, {"{", T_LBRACE},
        {"}", T_RBRACE}, {",", T_COMMA}, {".", T_DOT}, {"=", T_ASSIGN}, {"!", T_BANG},
        {"-", T_MINUS}, {";", T_SEMI},
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
    return lex_punct(P, t);
}

/* Advance; inside brackets a newline is only whitespace. */
static int next(parser_t *P)
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

static const tok_t *peek(parser_t *P)
{
    if (!P->have_ahead) {
        if (lex(P, &P->ahead) < 0)
            P->ahead.type = T_EOF;
        P->have_ahead = true;
    }
    return &P->ahead;
}

static void skip_newlines(parser_t *P)
{
    while (!P->err && P->tok.type == T_NL)
        next(P);
}

/* How a token reads in "unexpected ..." messages. */
static void describe(const tok_t *t, char *out, size_t cap)
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

static int unexpected(parser_t *P, const char *expected)
{
    char what[80];
    describe(&P->tok, what, sizeof(what));
    if (expected)
        return perr(P, P->tok.line, "syntax error: unexpected %s (expected %s)", what, expected);
    return perr(P, P->tok.line, "syntax error: unexpected %s", what);
}

static int expect(parser_t *P, tok_type_t type, const char *what)
{
    if (P->err)
        return P->err;
    if (P->tok.type != type)
        return unexpected(P, what);
    return next(P);
}

/* ---- values ---------------------------------------------------------- */

static bool truthy(const sv_value_t *v)
{
    return !(v->type == SV_V_NIL || (v->type == SV_V_BOOL && !v->b));
}

static int set_str_value(sv_value_t *v, sv_vtype_t type, const char *s, size_t n)
{
    memset(v, 0, sizeof(*v));
    v->type = type;
    v->s = strndup(s, n);
    return v->s ? 0 : -ENOMEM;
}

/* ---- tree ------------------------------------------------------------ */

static node_t *node_new(parser_t *P, node_kind_t kind, int line)
{
    if (P->nodes >= MAX_NODES) {
        perr(P, line, "expression too long (more than %d parts)", MAX_NODES);
        return NULL;
    }
    node_t *n = calloc(1, sizeof(*n));
    if (!n) {
        oom(P);
        return NULL;
    }
    n->kind = kind;
    n->line = line;
    n->owner = P;
    P->nodes++;
    return n;
}

static void node_free(node_t *n)
{
    while (n) {
        node_t *next_node = n->next;
        n->owner->nodes--;
        sv_cfg_value_free(&n->lit);
        free(n->name);
        node_free(n->a);
        node_free(n->b);
        free(n);
        n = next_node;
    }
}

static node_t *unary_node(parser_t *P, node_kind_t kind, int line, node_t *a)
{
    node_t *n = node_new(P, kind, line);
    if (!n) {
        node_free(a);
        return NULL;
    }
    n->a = a;
    return n;
}

static node_t *binary_node(parser_t *P, node_kind_t kind, int line, node_t *a, node_t *b)
{
    node_t *n = unary_node(P, kind, line, a);
    if (!n) {
        node_free(b);
        return NULL;
    }
    n->b = b;
    return n;
}

/* ---- strings --------------------------------------------------------- */

static char dq_escape(char c)
{
    static const char from[] = "ntr0esabfv", to[] = "\n\t\r\0\033 \a\b\f\v";
    const char *hit = c ? strchr(from, c) : NULL;
    return hit ? to[hit - from] : c; /* Ruby keeps an unknown escape's character: "\d" is "d" */
}

/* The text of a string token, escapes applied. */
static int decode_string(const tok_t *t, sv_value_t *out)
{
    const char *s = t->p + 1, *end = t->p + t->n - 1;
    char *d = malloc(t->n);
    if (!d)
        return -ENOMEM;
    size_t n = 0;
    for (; s < end; s++) {
        if (*s != '\\' || s + 1 >= end) {
            d[n++] = *s;
        } else if (t->type == T_SSTR) {
            /* single quotes only escape \\ and \' */
            if (s[1] == '\\' || s[1] == '\'')
                s++;
            d[n++] = *s;
        } else if (s[1] == '\n') {
            s++;
        } else {
            d[n++] = dq_escape(*++s);
        }
    }
    d[n] = '\0';
    memset(out, 0, sizeof(*out));
    out->type = SV_V_STR;
    out->s = d;
    return 0;
}

/* ---- expressions ----------------------------------------------------- */

static int lit_node(parser_t *P, node_t **out)
{
    const tok_t *t = &P->tok;
    node_t *n = node_new(P, N_LIT, t->line);
    if (!n)
        return P->err;
    int rc = 0;
    if (t->type == T_INT) {
        n->lit.type = SV_V_INT;
        n->lit.i = t->i;
    } else if (t->type == T_FLOAT) {
        n->lit.type = SV_V_FLOAT;
        n->lit.f = t->f;
    } else if (t->type == T_SYM) {
        rc = set_str_value(&n->lit, SV_V_SYM, t->p, t->n);
    } else if (t->type == T_DSTR || t->type == T_SSTR) {
        rc = decode_string(t, &n->lit);
    } else {
        n->lit.type = tok_is(t, "nil") ? SV_V_NIL : SV_V_BOOL;
        n->lit.b = tok_is(t, "true");
    }
    if (rc < 0) {
        node_free(n);
        return oom(P);
    }
    *out = n;
    return next(P);
}

static int enter(parser_t *P)
{
    if (++P->nesting > MAX_NESTING)
        return perr(P, P->tok.line, "nested too deeply (more than %d levels)", MAX_NESTING);
    return 0;
}

/* ( expr ) with newlines ignored inside. */
static int parse_paren_expr(parser_t *P, node_t **out)
{
    *out = NULL;
    P->depth++;
    next(P);
    int rc = enter(P);
    if (rc == 0)
        rc = parse_expr(P, out);
    P->nesting--;
    P->depth--;
    if (rc == 0 && P->tok.type != T_RPAREN)
        rc = unexpected(P, "')'");
    if (rc == 0)
        rc = next(P);
    if (rc) {
        node_free(*out);
        *out = NULL;
    }
    return rc;
}

/* The optional `{ expr }` after ENV.fetch(...): Ruby's default block. */
static int parse_fetch_block(parser_t *P, node_t *fetch)
{
    int line = P->tok.line;
    P->depth++;
    next(P);
    if (P->tok.type == T_OTHER && *P->tok.p == '|') {
        P->depth--;
        return perr(P, line, "ENV.fetch's block takes no parameters here: write ENV.fetch(\"X\") { default }");
    }
    node_t *b = NULL;
    int rc = parse_expr(P, &b);
    P->depth--;
    if (rc == 0 && P->tok.type != T_RBRACE)
        rc = unexpected(P, "'}' closing ENV.fetch's block");
    if (rc) {
        node_free(b);
        return rc;
    }
    node_free(fetch->b); /* as in Ruby, the block supersedes a default argument */
    fetch->b = b;
    return next(P);
}

static int parse_fetch(parser_t *P, node_t **out, int line)
{
    if (P->tok.type != T_LPAREN)
        return unexpected(P, "'(' after ENV.fetch");
    node_t *n = node_new(P, N_FETCH, line);
    if (!n)
        return P->err;
    P->depth++;
    next(P);
    int rc = parse_expr(P, &n->a);
    if (rc == 0 && P->tok.type == T_COMMA) {
        next(P);
        rc = parse_expr(P, &n->b);
    }
    P->depth--;
    if (rc == 0 && P->tok.type != T_RPAREN)
        rc = unexpected(P, "')' closing ENV.fetch(");
    if (rc == 0)
        rc = next(P);
    if (rc == 0 && P->tok.type == T_LBRACE)
        rc = parse_fetch_block(P, n);
    if (rc) {
        node_free(n);
        return rc;
    }
    *out = n;
    return 0;
}

/* ENV["X"], ENV.fetch("X"), ENV.fetch("X", d), ENV.fetch("X") { d } */
static int parse_env(parser_t *P, node_t **out)
{
    int line = P->tok.line;
    next(P);
    if (P->tok.type == T_LBRACK) {
        P->depth++;
        next(P);
        node_t *key = NULL;
        int rc = parse_expr(P, &key);
        P->depth--;
        if (rc == 0 && P->tok.type != T_RBRACK)
            rc = unexpected(P, "']' closing ENV[");
        if (rc == 0 && !(*out = unary_node(P, N_ENV, line, key)))
            return P->err;
        if (rc)
            node_free(key);
        return rc ? rc : next(P);
    }
    if (P->tok.type == T_DOT) {
        next(P);
        if (tok_is(&P->tok, "fetch")) {
            next(P);
            return parse_fetch(P, out, line);
        }
    }
    return perr(P, line, "unsupported use of ENV (serval reads ENV[\"X\"], ENV.fetch(\"X\"), "
                         "ENV.fetch(\"X\", default) and ENV.fetch(\"X\") { default })");
}

/* Integer(expr) and Float(expr). */
static int parse_conversion(parser_t *P, node_kind_t kind, node_t **out)
{
    int line = P->tok.line;
    next(P);
    if (P->tok.type != T_LPAREN)
        return unexpected(P, kind == N_INTEGER ? "'(' after Integer" : "'(' after Float");
    node_t *a = NULL;
    int rc = parse_paren_expr(P, &a);
    if (rc)
        return rc;
    *out = unary_node(P, kind, line, a);
    return *out ? 0 : P->err;
}

static int parse_name(parser_t *P, node_t **out)
{
    if (tok_is(&P->tok, "true") || tok_is(&P->tok, "false") || tok_is(&P->tok, "nil"))
        return lit_node(P, out);
    if (P->tok.type == T_CONST && P->tok.n == 3 && !memcmp(P->tok.p, "ENV", 3))
        return parse_env(P, out);
    if (P->tok.type == T_CONST && P->tok.n == 7 && !memcmp(P->tok.p, "Integer", 7))
        return parse_conversion(P, N_INTEGER, out);
    if (P->tok.type == T_CONST && P->tok.n == 5 && !memcmp(P->tok.p, "Float", 5))
        return parse_conversion(P, N_FLOATF, out);
    if (is_kw(&P->tok))
        return unexpected(P, "a value");
    node_t *n = node_new(P, N_VAR, P->tok.line);
    if (!n)
        return P->err;
    if (!(n->name = strndup(P->tok.p, P->tok.n))) {
        node_free(n);
        return oom(P);
    }
    *out = n;
    return next(P);
}

static int parse_primary(parser_t *P, node_t **out)
{
    if (P->err)
        return P->err;
    switch (P->tok.type) {
    case T_INT:
    case T_FLOAT:
    case T_SYM:
    case T_DSTR:
    case T_SSTR: return lit_node(P, out);
    case T_IDENT:
    case T_CONST: return parse_name(P, out);
    case T_LPAREN: return parse_paren_expr(P, out);
    case T_LBRACE:
        return perr(P, P->tok.line, "a hash can only be given directly as a directive's argument");
    default: return unexpected(P, "a value");
    }
}

static const char *const methods[] = {"to_i", "to_f", "to_s", "to_sym", "to_str"};

static int parse_method(parser_t *P, node_t **n)
{
    int line = P->tok.line;
    next(P);
    const tok_t *t = &P->tok;
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        if (tok_is(t, methods[i])) {
            node_t *m = unary_node(P, N_METHOD, line, *n);
            *n = m;
            if (!m || !(m->name = strdup(methods[i])))
                return oom(P);
            next(P);
            if (P->tok.type == T_LPAREN && !P->tok.space && peek(P)->type == T_RPAREN) {
                next(P);
                next(P);
            }
            return P->err;
        }
    }
    char what[80];
    describe(t, what, sizeof(what));
    return perr(P, line, "unsupported method %s (serval knows .to_i, .to_f, .to_s, .to_sym)", what);
}

static int parse_postfix(parser_t *P, node_t **out)
{
    int rc = parse_primary(P, out);
    while (rc == 0 && P->tok.type == T_DOT)
        rc = parse_method(P, out);
    if (rc) {
        node_free(*out);
        *out = NULL;
    }
    return rc;
}

static int parse_unary(parser_t *P, node_t **out)
{
    int line = P->tok.line;
    if (P->tok.type == T_BANG || tok_is(&P->tok, "not")) {
        next(P);
        node_t *a = NULL;
        int rc = enter(P);
        if (rc == 0)
            rc = parse_unary(P, &a);
        P->nesting--;
        if (rc)
            return P->err;
        *out = unary_node(P, N_NOT, line, a);
        return *out ? 0 : P->err;
    }
    if (P->tok.type == T_MINUS) {
        next(P);
        if (P->tok.type != T_INT && P->tok.type != T_FLOAT)
            return unexpected(P, "a number after '-'");
        P->tok.i = -P->tok.i;
        P->tok.f = -P->tok.f;
    }
    return parse_postfix(P, out);
}

typedef int (*subparse_fn)(parser_t *P, node_t **out);

/* One left-associative level: operand (op operand)*, op being op1/word or op2. */
static int parse_binary(parser_t *P, node_t **out, subparse_fn sub, tok_type_t op1, const char *word,
                        tok_type_t op2)
{
    int rc = sub(P, out);
    while (rc == 0 && (P->tok.type == op1 || P->tok.type == op2 || (word && tok_is(&P->tok, word)))) {
        static const node_kind_t kinds[] = {[T_OROR] = N_OR, [T_ANDAND] = N_AND, [T_EQ] = N_EQ, [T_NE] = N_NE};
        node_kind_t kind = kinds[P->tok.type == T_IDENT ? op1 : P->tok.type];
        int line = P->tok.line;
        next(P);
        skip_newlines(P);
        node_t *r = NULL;
        if ((rc = sub(P, &r)) == 0 && !(*out = binary_node(P, kind, line, *out, r)))
            return P->err;
    }
    if (rc) {
        node_free(*out);
        *out = NULL;
    }
    return rc;
}

static int parse_eq(parser_t *P, node_t **out)
{
    return parse_binary(P, out, parse_unary, T_EQ, NULL, T_NE);
}

static int parse_and(parser_t *P, node_t **out)
{
    return parse_binary(P, out, parse_eq, T_ANDAND, "and", T_ANDAND);
}

static int parse_expr(parser_t *P, node_t **out)
{
    *out = NULL;
    return parse_binary(P, out, parse_and, T_OROR, "or", T_OROR);
}

/* ---- hashes ---------------------------------------------------------- */

/* key: value, :key => value, "key" => value */
static int parse_pair(parser_t *P, node_t **out)
{
    const tok_t *t = &P->tok;
    node_t *n = node_new(P, N_PAIR, t->line);
    if (!n)
        return P->err;
    int rc = 0;
    if (t->type == T_LABEL || t->type == T_SYM) {
        n->name = strndup(t->p, t->n);
    } else if (t->type == T_DSTR || t->type == T_SSTR) {
        sv_value_t v;
        if (decode_string(t, &v) == 0)
            n->name = v.s;
    } else {
        node_free(n);
        return unexpected(P, "a hash key such as auth_token:");
    }
    if (!n->name)
        rc = oom(P);
    bool label = t->type == T_LABEL;
    if (rc == 0)
        rc = next(P);
    if (rc == 0 && !label)
        rc = expect(P, T_ARROW, "'=>'");
    skip_newlines(P);
    if (rc == 0)
        rc = parse_expr(P, &n->a);
    if (rc) {
        node_free(n);
        return rc;
    }
    *out = n;
    return 0;
}

/* Pairs separated by commas, appended to hash->a. Stops before what follows. */
static int parse_pairs(parser_t *P, node_t *hash, bool braced)
{
    node_t **tail = &hash->a;
    for (;;) {
        if (braced && P->tok.type == T_RBRACE)
            return 0;
        int rc = parse_pair(P, tail);
        if (rc)
            return rc;
        if (!*tail)
            return oom(P); /* parse_pair sets *tail whenever it succeeds */
        tail = &(*tail)->next;
        if (P->tok.type != T_COMMA)
            return 0;
        next(P);
        skip_newlines(P);
    }
}

static int parse_hash(parser_t *P, node_t **out, bool braced)
{
    node_t *h = node_new(P, N_HASH, P->tok.line);
    if (!h)
        return P->err;
    if (braced) {
        P->depth++;
        next(P);
    }
    int rc = parse_pairs(P, h, braced);
    if (braced) {
        P->depth--;
        if (rc == 0 && P->tok.type != T_RBRACE)
            rc = unexpected(P, "',' or '}'");
        if (rc == 0)
            rc = next(P);
    }
    if (rc) {
        node_free(h);
        return rc;
    }
    *out = h;
    return 0;
}

static bool at_bare_hash(parser_t *P)
{
    tok_type_t t = P->tok.type;
    if (t == T_LABEL)
        return true;
    return (t == T_SYM || t == T_DSTR || t == T_SSTR) && peek(P)->type == T_ARROW;
}

/* ---- evaluation ------------------------------------------------------ */

static int eval(parser_t *P, const node_t *n, sv_value_t *out);

static var_t *find_var(parser_t *P, const char *name)
{
    for (int i = 0; i < P->nvars; i++)
        if (!strcmp(P->vars[i].name, name))
            return &P->vars[i];
    return NULL;
}

/* Takes ownership of *val. */
static int set_var(parser_t *P, const char *name, sv_value_t *val, int line)
{
    var_t *v = find_var(P, name);
    if (!v) {
        if (P->nvars == P->capvars) {
            int cap = P->capvars ? P->capvars * 2 : 8;
            var_t *nv = realloc(P->vars, (size_t)cap * sizeof(*nv));
            if (!nv)
                goto fail;
            P->vars = nv;
            P->capvars = cap;
        }
        v = &P->vars[P->nvars];
        if (!(v->name = strdup(name)))
            goto fail;
        memset(&v->val, 0, sizeof(v->val));
        P->nvars++;
    }
    sv_cfg_value_free(&v->val);
    v->val = *val;
    memset(val, 0, sizeof(*val));
    return 0;
fail:
    sv_cfg_value_free(val);
    return perr(P, line, "out of memory");
}

static int eval_string_key(parser_t *P, const node_t *n, sv_value_t *key)
{
    if (eval(P, n, key))
        return P->err;
    if (key->type == SV_V_STR)
        return 0;
    char shown[96];
    sv_cfg_value_inspect(key, shown, sizeof(shown));
    sv_cfg_value_free(key);
    return perr(P, n->line, "ENV keys are strings, got %s", shown);
}

static int eval_env(parser_t *P, const node_t *n, sv_value_t *out)
{
    sv_value_t key = {0};
    if (eval_string_key(P, n->a, &key))
        return P->err;
    const char *v = getenv(key.s);
    int rc = 0;
    if (v)
        rc = set_str_value(out, SV_V_STR, v, strlen(v)) < 0 ? oom(P) : 0;
    else if (n->kind == N_FETCH && n->b)
        rc = eval(P, n->b, out);
    else if (n->kind == N_FETCH)
        rc = perr(P, n->line, "ENV variable %s is not set (hint: give a default, ENV.fetch(\"%s\", value))",
                  key.s, key.s);
    else
        out->type = SV_V_NIL;
    sv_cfg_value_free(&key);
    return rc;
}

/* Integer(), Float() and the .to_* methods, by the value helpers. */
static int convert(parser_t *P, const node_t *n, const char *how, sv_value_t *v)
{
    char err[160];
    int rc = sv_cfg_convert(v, how, err, sizeof(err));
    if (rc == -ENOMEM)
        return oom(P);
    return rc ? perr(P, n->line, "%s", err) : 0;
}

static bool values_equal(const sv_value_t *a, const sv_value_t *b)
{
    if ((a->type == SV_V_INT || a->type == SV_V_FLOAT) && (b->type == SV_V_INT || b->type == SV_V_FLOAT)) {
        double x = a->type == SV_V_INT ? (double)a->i : a->f;
        double y = b->type == SV_V_INT ? (double)b->i : b->f;
        if (a->type == SV_V_INT && b->type == SV_V_INT)
            return a->i == b->i;
        return !(x < y || x > y);
    }
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case SV_V_NIL: return true;
    case SV_V_BOOL: return a->b == b->b;
    case SV_V_STR:
    case SV_V_SYM: return !strcmp(a->s, b->s);
    default: return false;
    }
}

static int eval_logic(parser_t *P, const node_t *n, sv_value_t *out)
{
    if (eval(P, n->a, out))
        return P->err;
    bool t = truthy(out);
    if (n->kind == N_NOT) {
        sv_cfg_value_free(out);
        out->type = SV_V_BOOL;
        out->b = !t;
        return 0;
    }
    /* || and && yield an operand, as in Ruby: ENV["X"] || 3 is 3 or the string */
    if ((n->kind == N_OR && t) || (n->kind == N_AND && !t))
        return 0;
    sv_cfg_value_free(out);
    return eval(P, n->b, out);
}

static int eval_compare(parser_t *P, const node_t *n, sv_value_t *out)
{
    sv_value_t a = {0}, b = {0};
    if (eval(P, n->a, &a) == 0 && eval(P, n->b, &b) == 0) {
        bool eq = values_equal(&a, &b);
        out->type = SV_V_BOOL;
        out->b = n->kind == N_EQ ? eq : !eq;
    }
    sv_cfg_value_free(&a);
    sv_cfg_value_free(&b);
    return P->err;
}

static int eval_hash(parser_t *P, const node_t *n, sv_value_t *out)
{
    int count = 0;
    for (const node_t *p = n->a; p; p = p->next)
        count++;
    out->type = SV_V_HASH;
    if (count && !(out->pairs = calloc((size_t)count, sizeof(*out->pairs))))
        return oom(P);
    for (const node_t *p = n->a; p; p = p->next) {
        sv_pair_t *pair = &out->pairs[out->npairs];
        if (!(pair->key = strdup(p->name)))
            return oom(P);
        out->npairs++;
        if (eval(P, p->a, &pair->val))
            return P->err;
    }
    return 0;
}

static int eval_var(parser_t *P, const node_t *n, sv_value_t *out)
{
    const var_t *v = find_var(P, n->name);
    if (!v)
        return perr(P, n->line, "undefined local variable '%s' (assign it first: %s = value)", n->name,
                    n->name);
    return sv_cfg_value_copy(out, &v->val) < 0 ? oom(P) : 0;
}

/* Evaluates n into *out, which the caller frees (also after an error). */
static int eval(parser_t *P, const node_t *n, sv_value_t *out)
{
    memset(out, 0, sizeof(*out));
    switch (n->kind) {
    case N_LIT: return sv_cfg_value_copy(out, &n->lit) < 0 ? oom(P) : 0;
    case N_VAR: return eval_var(P, n, out);
    case N_ENV:
    case N_FETCH: return eval_env(P, n, out);
    case N_INTEGER: return eval(P, n->a, out) ? P->err : convert(P, n, "Integer", out);
    case N_FLOATF: return eval(P, n->a, out) ? P->err : convert(P, n, "Float", out);
    case N_METHOD: return eval(P, n->a, out) ? P->err : convert(P, n, n->name, out);
    case N_OR:
    case N_AND:
    case N_NOT: return eval_logic(P, n, out);
    case N_EQ:
    case N_NE: return eval_compare(P, n, out);
    case N_HASH: return eval_hash(P, n, out);
    case N_PAIR: break;
    }
    return perr(P, n->line, "internal error: bad expression");
}

/* ---- statements ------------------------------------------------------ */

typedef struct call {
    node_t *args[SV_CFG_MAX_ARGS];
    int nargs;
    node_t *cond; /* trailing `if`/`unless`, or NULL */
    bool unless;
} call_t;

static void call_free(call_t *c)
{
    for (int i = 0; i < c->nargs; i++)
        node_free(c->args[i]);
    node_free(c->cond);
    memset(c, 0, sizeof(*c));
}

static bool at_stmt_end(const tok_t *t)
{
    return t->type == T_NL || t->type == T_SEMI || t->type == T_EOF || tok_is(t, "end") ||
           tok_is(t, "else") || tok_is(t, "elsif");
}

static bool at_args_end(const tok_t *t)
{
    return at_stmt_end(t) || tok_is(t, "if") || tok_is(t, "unless") || tok_is(t, "do") ||
           t->type == T_LBRACE || t->type == T_RPAREN;
}

static int push_arg(parser_t *P, call_t *c, node_t *n)
{
    if (c->nargs == SV_CFG_MAX_ARGS) {
        node_free(n);
        return perr(P, P->tok.line, "too many arguments (at most %d)", SV_CFG_MAX_ARGS);
    }
    c->args[c->nargs++] = n;
    return 0;
}

/* arg, arg, ..., key: value, ... (a bare hash only last). */
static int parse_arglist(parser_t *P, call_t *c)
{
    for (;;) {
        node_t *n = NULL;
        int rc;
        if (at_bare_hash(P))
            rc = parse_hash(P, &n, false);
        else if (P->tok.type == T_LBRACE)
            rc = parse_hash(P, &n, true);
        else
            rc = parse_expr(P, &n);
        if (rc || (rc = push_arg(P, c, n)))
            return rc;
        if (P->tok.type != T_COMMA)
            return 0;
        next(P);
        skip_newlines(P);
    }
}

static int parse_call_args(parser_t *P, call_t *c)
{
    if (P->tok.type == T_LPAREN && !P->tok.space) {
        P->depth++;
        next(P);
        int rc = P->tok.type == T_RPAREN ? 0 : parse_arglist(P, c);
        P->depth--;
        if (rc == 0 && P->tok.type != T_RPAREN)
            rc = unexpected(P, "',' or ')'");
        return rc ? rc : next(P);
    }
    if (at_args_end(&P->tok))
        return 0;
    return parse_arglist(P, c);
}

static int parse_modifier(parser_t *P, call_t *c)
{
    if (tok_is(&P->tok, "if") || tok_is(&P->tok, "unless")) {
        c->unless = tok_is(&P->tok, "unless");
        next(P);
        if (parse_expr(P, &c->cond))
            return P->err;
    }
    if (!at_stmt_end(&P->tok))
        return unexpected(P, "end of line");
    return 0;
}

/* Whether a parsed statement runs: its block is active and its modifier holds. */
static int cond_holds(parser_t *P, const call_t *c, bool active, bool *run)
{
    *run = active;
    if (P->err || !active || !c->cond)
        return P->err;
    sv_value_t v;
    if (eval(P, c->cond, &v) == 0)
        *run = truthy(&v) != c->unless;
    sv_cfg_value_free(&v);
    return P->err;
}

/* The statement's trailing modifier, then whether it runs. */
static int finish_stmt(parser_t *P, call_t *c, bool active, bool *run)
{
    *run = false;
    int rc = parse_modifier(P, c);
    return rc ? rc : cond_holds(P, c, active, run);
}

static int apply_call(parser_t *P, const sv_directive_t *d, const call_t *c, int line)
{
    sv_value_t vals[SV_CFG_MAX_ARGS];
    int n = 0, rc = P->err;
    for (; n < c->nargs && rc == 0; n++)
        rc = eval(P, c->args[n], &vals[n]);
    if (rc == 0) {
        char where[SV_DIAG_MAX];
        if (P->where)
            snprintf(where, sizeof(where), "%s", P->where);
        else
            snprintf(where, sizeof(where), "%.*s:%d", SV_DIAG_MAX / 4, P->path, line);
        sv_site_t site = {P->diag, where, P->raw};
        rc = d->set(P->cfg, d, vals, n, &site);
        if (rc)
            P->err = rc;
    }
    while (n > 0)
        sv_cfg_value_free(&vals[--n]);
    return rc;
}

static int block_error(parser_t *P, const sv_directive_t *d, int line)
{
    return perr(P, line, "%s does not take a block: serval cannot run Ruby code (hint: see docs/configuration.md)",
                d->name);
}

static int parse_directive(parser_t *P, bool active)
{
    int line = P->tok.line;
    char name[128];
    snprintf(name, sizeof(name), "%.*s", (int)(P->tok.n < 100 ? P->tok.n : 100), P->tok.p);
    const sv_directive_t *d = sv_cfg_lookup(name, false);
    if (!d) {
        char msg[SV_DIAG_MAX];
        sv_cfg_unknown_message(name, msg, sizeof(msg));
        return perr(P, line, "%s", msg);
    }
    call_t c = {0};
    next(P);
    int rc = parse_call_args(P, &c);
    if (rc == 0 && (tok_is(&P->tok, "do") || P->tok.type == T_LBRACE))
        rc = block_error(P, d, line);
    bool run = false;
    if (rc == 0)
        rc = finish_stmt(P, &c, active, &run);
    if (rc == 0 && run)
        rc = apply_call(P, d, &c, line);
    call_free(&c);
    return rc;
}

static int parse_assign(parser_t *P, bool active)
{
    int line = P->tok.line;
    char *name = strndup(P->tok.p, P->tok.n);
    if (!name)
        return oom(P);
    call_t c = {0};
    next(P);
    next(P);
    skip_newlines(P);
    sv_value_t v = {0};
    int rc = parse_expr(P, &c.args[0]);
    c.nargs = rc == 0;
    bool run = false;
    if (rc == 0)
        rc = finish_stmt(P, &c, active, &run);
    if (rc == 0 && run)
        rc = eval(P, c.args[0], &v);
    /* Ruby defines a variable even where its assignment does not run: it is nil */
    if (rc == 0 && (run || !find_var(P, name)))
        rc = set_var(P, name, &v, line);
    sv_cfg_value_free(&v);
    call_free(&c);
    free(name);
    return rc;
}

/* `x` alone, a variable reference: Ruby evaluates it and drops the value. */
static int parse_expr_stmt(parser_t *P, bool active)
{
    call_t c = {0};
    int rc = parse_expr(P, &c.args[0]);
    c.nargs = rc == 0;
    bool run = false;
    if (rc == 0)
        rc = finish_stmt(P, &c, active, &run);
    sv_value_t v = {0};
    if (rc == 0 && run)
        rc = eval(P, c.args[0], &v);
    sv_cfg_value_free(&v);
    call_free(&c);
    return rc;
}

/* if/unless COND [then] BODY [elsif COND BODY]* [else BODY] end */
static int parse_if(parser_t *P, bool active)
{
    int line = P->tok.line;
    bool unless = tok_is(&P->tok, "unless");
    const char *opener = unless ? "unless" : "if";
    bool taken = false;
    do {
        call_t c = {0};
        next(P);
        int rc = parse_expr(P, &c.cond);
        c.unless = unless;
        bool run = false;
        if (rc == 0)
            rc = cond_holds(P, &c, active && !taken, &run);
        call_free(&c);
        if (rc)
            return rc;
        if (tok_is(&P->tok, "then"))
            next(P);
        rc = enter(P);
        if (rc == 0)
            rc = parse_body(P, run, opener, line);
        P->nesting--;
        if (rc)
            return rc;
        taken = taken || run;
    } while (!unless && tok_is(&P->tok, "elsif"));
    if (tok_is(&P->tok, "else")) {
        next(P);
        if (parse_body(P, active && !taken, opener, line))
            return P->err;
    }
    if (!tok_is(&P->tok, "end"))
        return unexpected(P, "'end'");
    next(P);
    return at_stmt_end(&P->tok) ? P->err : unexpected(P, "end of line");
}

static int parse_statement(parser_t *P, bool active)
{
    const tok_t *t = &P->tok;
    if (tok_is(t, "if") || tok_is(t, "unless"))
        return parse_if(P, active);
    if ((t->type == T_IDENT || t->type == T_CONST) && !is_kw(t)) {
        if (peek(P)->type == T_ASSIGN)
            return parse_assign(P, active);
        char name[128];
        snprintf(name, sizeof(name), "%.*s", (int)(t->n < 100 ? t->n : 100), t->p);
        if (t->type == T_CONST || (find_var(P, name) && at_args_end(peek(P))))
            return parse_expr_stmt(P, active);
        return parse_directive(P, active);
    }
    if (t->type == T_LBRACE || t->type == T_OTHER || t->type == T_RPAREN || t->type == T_RBRACE ||
        t->type == T_RBRACK || is_kw(t))
        return unexpected(P, "a directive");
    return parse_expr_stmt(P, active);
}

/* Statements until end of file, or until end/else/elsif when opener is set. */
static int parse_body(parser_t *P, bool active, const char *opener, int open_line)
{
    for (;;) {
        while (!P->err && (P->tok.type == T_NL || P->tok.type == T_SEMI))
            next(P);
        if (P->err)
            return P->err;
        const tok_t *t = &P->tok;
        if (t->type == T_EOF) {
            if (opener)
                return perr(P, open_line, "'%s' has no matching 'end'", opener);
            return 0;
        }
        if (tok_is(t, "end") || tok_is(t, "else") || tok_is(t, "elsif")) {
            if (!opener)
                return unexpected(P, "a directive");
            return 0;
        }
        int rc = parse_statement(P, active);
        if (rc)
            return rc;
    }
}

/* ---- entry points ---------------------------------------------------- */

static void parser_init(parser_t *P, sv_config_t *c, const char *path, const char *text, sv_diag_t *diag)
{
    memset(P, 0, sizeof(*P));
    P->path = path;
    P->p = text;
    P->line = 1;
    P->line_start = true;
    P->cfg = c;
    P->diag = diag;
}

static void parser_free(parser_t *P)
{
    for (int i = 0; i < P->nvars; i++) {
        free(P->vars[i].name);
        sv_cfg_value_free(&P->vars[i].val);
    }
    free(P->vars);
}

int sv_config_parse_text(sv_config_t *c, const char *path, const char *text, sv_diag_t *diag)
{
    parser_t P;
    if (!strncmp(text, "\xEF\xBB\xBF", 3)) /* a UTF-8 byte order mark, as some editors write */
        text += 3;
    parser_init(&P, c, path, text, diag);
    if (next(&P) == 0)
        parse_body(&P, true, NULL, 0);
    parser_free(&P);
    return P.err;
}

int sv_cfg_apply_at(sv_config_t *c, const char *name, const char *args_src, const sv_site_t *s)
{
    const sv_directive_t *d = sv_cfg_lookup(name, true);
    if (!d)
        return sv_cfg_fail(s, "unknown directive '%s' (hint: see docs/configuration.md)", name);
    parser_t P;
    parser_init(&P, c, s->where, args_src ? args_src : "", s->diag);
    P.where = s->where;
    P.raw = s->raw;
    call_t call = {0};
    if (next(&P) == 0 && P.tok.type != T_EOF && parse_arglist(&P, &call) == 0 && P.tok.type != T_EOF)
        unexpected(&P, "',' or the end of the arguments");
    if (P.err == 0)
        apply_call(&P, d, &call, 1);
    call_free(&call);
    parser_free(&P);
    return P.err;
}

int sv_config_apply(sv_config_t *c, const char *name, const char *args_src, sv_diag_t *diag)
{
    sv_site_t s = {diag, "serval", false};
    return sv_cfg_apply_at(c, name, args_src, &s);
}
