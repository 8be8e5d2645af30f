/*
 * config/parse_internal.h: the puma.rb reader's parts, shared by lex.c,
 * expr.c, eval.c and parse.c only.
 *
 * lex.c turns source into tokens lazily (a skipped Ruby block is lexed
 * leniently and never evaluated); expr.c builds a small tree per
 * expression; eval.c evaluates a tree into an sv_value_t; parse.c reads
 * statements, applies directives and collects warnings.
 *
 * Two kinds of failure: P->err = SV_ECONFIG is a hard error (a typo, a
 * syntax error, a bad value); P->err = SOFT_FAIL means valid Ruby that
 * serval cannot evaluate (a method it does not know). parse.c turns a soft
 * failure into a warning and skips the statement.
 */
#ifndef SV_CONFIG_PARSE_INTERNAL_H
#define SV_CONFIG_PARSE_INTERNAL_H

#include "config/internal.h"

/* Not an SV_E* code: never leaves parse.c. */
#define SOFT_FAIL (-100000)

/* Bounds on recursion in parsing, evaluating and freeing: a config never nears them. */
#define MAX_NESTING 64
#define MAX_NODES 4096

typedef enum tok_type {
    T_EOF = 0, T_NL, T_SEMI,
    T_IDENT, /* also keywords; see sv_tok_is_kw */
    T_CONST,
    T_LABEL, /* auth_token: */
    T_INT, T_FLOAT, T_DSTR, T_SSTR, T_SYM, T_WORDS, /* %w[a b] */
    T_LPAREN, T_RPAREN, T_LBRACK, T_RBRACK, T_LBRACE, T_RBRACE, T_COMMA, T_DOT, T_SAFENAV, /* &. */
    T_ASSIGN, T_OPASSIGN, /* ||= &&= += -= *= /= */
    T_ARROW, T_OROR, T_ANDAND, T_EQ, T_NE, T_BANG, T_MINUS, T_PLUS, T_STAR, T_SLASH, T_PERCENT,
    T_LT, T_LE, T_GT, T_GE, T_DOT2, T_DOT3, T_QUESTION, T_COLON, T_COLON2, T_PIPE,
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
    N_CALL,    /* a.name(args) (a NULL: a function such as Integer()); name "Etc.nprocessors" for constants */
    N_OR,
    N_AND,
    N_NOT,
    N_BIN,     /* a op b: == != < <= > >= + - * / % */
    N_NEG,
    N_IF,      /* a ? b : c (also if/unless/case as values) */
    N_RANGE,   /* a..b, a...b; either may be NULL */
    N_ARRAY,   /* elements: a, chained by next */
    N_HASH,    /* pairs: a linked list of N_PAIR */
    N_PAIR,    /* name => a, next */
    N_INTERP,  /* "x#{a}y": parts chained from a */
    N_ASSIGN,  /* name = a, as a value */
    N_UNSUP,   /* valid Ruby serval cannot evaluate; name says what */
} node_kind_t;

typedef struct node node_t;
struct node {
    node_kind_t kind;
    int line;
    int op;    /* N_BIN: the token type; N_RANGE: 1 when exclusive; N_CALL: 1 for &. */
    struct parser *owner;
    sv_value_t lit;
    char *name;
    node_t *a, *b, *c, *args, *next;
};

typedef struct var {
    char *name;
    sv_value_t val;
    int unknown_line; /* its assignment could not be evaluated there (0: known) */
    int line;         /* its first assignment */
    bool referenced;  /* named in an expression after it, run or not */
} var_t;

typedef struct parser {
    const char *path;  /* file messages: "path:line: " */
    const char *where; /* or a fixed prefix (sv_config_apply, flags) */
    bool raw;
    const char *p; /* next unlexed character */
    int line;
    bool line_start;
    bool lenient; /* skipping Ruby: a lexing problem is a T_OTHER token, not an error */
    int depth;    /* inside (), [] or {}: newlines do not end anything */
    int nesting;  /* open parentheses, negations and if-blocks */
    int nodes;    /* tree nodes alive */
    tok_t tok;
    tok_t ahead;
    bool have_ahead;
    sv_config_t *cfg;
    sv_diag_t *diag;
    var_t *vars;
    int nvars, capvars;
    char **defs; /* methods the file defines with def */
    int ndefs;
    int err;
    char soft[SV_DIAG_MAX / 2]; /* why evaluation failed softly */
} parser_t;

/* ---- lex.c ---- */
int sv_perr(parser_t *P, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A soft failure (see above); returns SOFT_FAIL unless a hard error came first. */
int sv_psoft(parser_t *P, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int sv_poom(parser_t *P);
bool sv_tok_is(const tok_t *t, const char *word);
bool sv_tok_is_kw(const tok_t *t);
int sv_next(parser_t *P);
const tok_t *sv_peek(parser_t *P);
void sv_skip_newlines(parser_t *P);
void sv_describe(const tok_t *t, char *out, size_t cap);
int sv_unexpected(parser_t *P, const char *expected);
int sv_expect(parser_t *P, tok_type_t type, const char *what);
int sv_enter(parser_t *P);
/* Re-point the lexer at text (NUL-terminated) starting on line; returns the old state in *saved. */
void sv_lex_push(parser_t *P, const char *text, int line, parser_t *saved);
void sv_lex_pop(parser_t *P, const parser_t *saved);

/* ---- expr.c ---- */
node_t *sv_node_new(parser_t *P, node_kind_t kind, int line);
void sv_node_free(node_t *n);
int sv_parse_expr(parser_t *P, node_t **out);
/* An expression without `and`/`or`/`not` at its top: a directive argument. */
int sv_parse_arg(parser_t *P, node_t **out);
int sv_parse_hash(parser_t *P, node_t **out, bool braced);
bool sv_at_bare_hash(parser_t *P);
/* The text of a string token, escapes applied (no interpolation). */
int sv_decode_string(const tok_t *t, sv_value_t *out);
/*
 * Skip one balanced Ruby construct's tokens leniently: from the current token
 * to the end of the statement (stop_at_stmt_end), or just one bracketed group
 * or do...end block. Returns the error state.
 */
int sv_skip_ruby(parser_t *P, bool stop_at_stmt_end);
/* Whether t ends a statement: newline, ';', end of file, or end/else/elsif/when/'}' at its depth. */
bool sv_at_stmt_end(const tok_t *t);

/* ---- eval.c ---- */
bool sv_truthy(const sv_value_t *v);
int sv_eval(parser_t *P, const node_t *n, sv_value_t *out);
var_t *sv_find_var(parser_t *P, const char *name);
/* Takes ownership of *val. */
int sv_set_var(parser_t *P, const char *name, sv_value_t *val, int line);
/* Ruby's ===, as case/when uses it. */
int sv_case_match(parser_t *P, const sv_value_t *pattern, const sv_value_t *v, bool *match);
bool sv_is_def(const parser_t *P, const char *name);
bool sv_values_equal(const sv_value_t *a, const sv_value_t *b);
/* Ruby's to_s as interpolation uses it (nil is ""); malloc'd, NULL when out of memory. */
char *sv_to_text(const sv_value_t *v);
/* Replace *v (freeing what it held) with a scalar. */
void sv_value_set_int(sv_value_t *v, int64_t i);
void sv_value_set_float(sv_value_t *v, double f);
void sv_value_set_bool(sv_value_t *v, bool b);
/* Takes ownership of s; NULL (out of memory) reports it and returns the error state. */
int sv_value_set_str(parser_t *P, sv_value_t *v, char *s);

/* ---- builtins.c ---- */
/* A call: Integer(x), File.join(...), Etc.nprocessors, x.to_i, x.present?, ... */
int sv_eval_call(parser_t *P, const node_t *n, sv_value_t *out);

#endif
