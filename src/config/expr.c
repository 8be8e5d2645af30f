/*
 * expr.c: Ruby expressions into trees, by recursive descent.
 *
 * A tree is built first and evaluated later (eval.c), because Ruby never
 * evaluates what a false condition guards: in `pidfile ENV.fetch("PIDFILE")
 * if ENV["PIDFILE"]` the fetch must not run, and neither may we.
 *
 * Precedence, loosest first, as in Ruby: not/and/or, ?:, .. ..., ||, &&,
 * == !=, < <= > >=, + -, * / %, unary ! -, then .method calls.
 */
#include "config/parse_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

static int parse_ternary(parser_t *P, node_t **out);
static int parse_unary(parser_t *P, node_t **out);

/* ---- tree ------------------------------------------------------------ */

node_t *sv_node_new(parser_t *P, node_kind_t kind, int line)
{
    if (P->nodes >= MAX_NODES) {
        sv_perr(P, line, "expression too long (more than %d parts)", MAX_NODES);
        return NULL;
    }
    node_t *n = calloc(1, sizeof(*n));
    if (!n) {
        sv_poom(P);
        return NULL;
    }
    n->kind = kind;
    n->line = line;
    n->owner = P;
    P->nodes++;
    return n;
}

void sv_node_free(node_t *n)
{
    while (n) {
        node_t *next_node = n->next;
        n->owner->nodes--;
        sv_cfg_value_free(&n->lit);
        free(n->name);
        sv_node_free(n->a);
        sv_node_free(n->b);
        sv_node_free(n->c);
        sv_node_free(n->args);
        free(n);
        n = next_node;
    }
}

static node_t *unary_node(parser_t *P, node_kind_t kind, int line, node_t *a)
{
    node_t *n = sv_node_new(P, kind, line);
    if (!n) {
        sv_node_free(a);
        return NULL;
    }
    n->a = a;
    return n;
}

static node_t *binary_node(parser_t *P, node_kind_t kind, int line, node_t *a, node_t *b)
{
    node_t *n = unary_node(P, kind, line, a);
    if (!n) {
        sv_node_free(b);
        return NULL;
    }
    n->b = b;
    return n;
}

/* A node that evaluates softly to "serval cannot evaluate what". */
static int unsup_node(parser_t *P, int line, const char *what, node_t **out)
{
    node_t *n = sv_node_new(P, N_UNSUP, line);
    if (!n)
        return P->err;
    if (!(n->name = strdup(what))) {
        sv_node_free(n);
        return sv_poom(P);
    }
    *out = n;
    return 0;
}

/* ---- skipping Ruby --------------------------------------------------- */

static bool ends_value(const tok_t *t)
{
    switch (t->type) {
    case T_CONST: case T_INT: case T_FLOAT: case T_DSTR: case T_SSTR: case T_SYM: case T_WORDS:
    case T_RPAREN: case T_RBRACK: case T_RBRACE: case T_OTHER: return true;
    case T_IDENT:
        return !sv_tok_is_kw(t) || sv_tok_is(t, "end") || sv_tok_is(t, "true") || sv_tok_is(t, "false") ||
               sv_tok_is(t, "nil") || sv_tok_is(t, "self");
    default: return false;
    }
}

/* +1 for what opens a group ending in `end` or a bracket, -1 for what closes one. */
static int group_delta(const tok_t *t, const tok_t *prev)
{
    static const char *const always[] = {"do", "case", "def", "class", "module", "begin", "for"};
    static const char *const unless_modifier[] = {"if", "unless", "while", "until"};
    if (t->type == T_LPAREN || t->type == T_LBRACK || t->type == T_LBRACE)
        return 1;
    if (t->type == T_RPAREN || t->type == T_RBRACK || t->type == T_RBRACE || sv_tok_is(t, "end"))
        return -1;
    for (size_t i = 0; i < sizeof(always) / sizeof(always[0]); i++)
        if (sv_tok_is(t, always[i]))
            return 1;
    for (size_t i = 0; i < sizeof(unless_modifier) / sizeof(unless_modifier[0]); i++)
        if (sv_tok_is(t, unless_modifier[i]))
            return ends_value(prev) ? 0 : 1; /* `x if y` is a modifier, `x = if y` opens */
    return 0;
}

bool sv_at_stmt_end(const tok_t *t)
{
    return t->type == T_NL || t->type == T_SEMI || t->type == T_EOF || sv_tok_is(t, "end") ||
           sv_tok_is(t, "else") || sv_tok_is(t, "elsif") || sv_tok_is(t, "when");
}

int sv_skip_ruby(parser_t *P, bool stop_at_stmt_end)
{
    bool lenient = P->lenient;
    int saved_depth = P->depth, depth = 0, open_line = P->tok.line;
    tok_t prev = {.type = T_NL};
    P->lenient = true;
    P->depth = 0;
    while (!P->err) {
        const tok_t *t = &P->tok;
        if (t->type == T_EOF) {
            if (depth > 0)
                sv_perr(P, open_line, "this Ruby block has no matching 'end' or closing bracket");
            break;
        }
        if (depth == 0 && stop_at_stmt_end &&
            (sv_at_stmt_end(t) || t->type == T_RBRACE || t->type == T_RPAREN || t->type == T_RBRACK))
            break;
        int d = group_delta(t, &prev);
        depth += d;
        prev = *t;
        sv_next(P);
        if (depth <= 0 && d < 0 && !stop_at_stmt_end)
            break;
        if (depth < 0)
            depth = 0;
    }
    P->lenient = lenient;
    P->depth = saved_depth;
    return P->err;
}

/* ---- strings --------------------------------------------------------- */

static char dq_escape(char c)
{
    static const char from[] = "ntr0esabfv", to[] = "\n\t\r\0\033 \a\b\f\v";
    const char *hit = c ? strchr(from, c) : NULL;
    return hit ? to[hit - from] : c; /* Ruby keeps an unknown escape's character: "\d" is "d" */
}

/* s..end (no quotes) with escapes applied, into a STR value. */
static int decode_range(const char *s, const char *end, bool dq, sv_value_t *out)
{
    char *d = malloc((size_t)(end - s) + 1);
    if (!d)
        return -ENOMEM;
    size_t n = 0;
    for (; s < end; s++) {
        if (*s != '\\' || s + 1 >= end) {
            d[n++] = *s;
        } else if (!dq) {
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

int sv_decode_string(const tok_t *t, sv_value_t *out)
{
    return decode_range(t->p + 1, t->p + t->n - 1, t->type == T_DSTR, out);
}

static int lit_str_node(parser_t *P, const char *s, const char *end, int line, node_t **out)
{
    node_t *n = sv_node_new(P, N_LIT, line);
    if (!n)
        return P->err;
    if (decode_range(s, end, true, &n->lit) < 0) {
        sv_node_free(n);
        return sv_poom(P);
    }
    *out = n;
    return 0;
}

/* The Ruby inside #{...}, parsed by the same parser from a copy of its text. */
static int interp_part(parser_t *P, const char *s, const char *end, int line, node_t **out)
{
    char *text = strndup(s, (size_t)(end - s));
    if (!text)
        return sv_poom(P);
    parser_t saved;
    sv_lex_push(P, text, line, &saved);
    int rc = sv_next(P);
    if (rc == 0)
        rc = P->tok.type == T_EOF ? sv_perr(P, line, "empty #{} in a string") : sv_parse_expr(P, out);
    if (rc == 0 && P->tok.type != T_EOF)
        rc = sv_unexpected(P, "'}' closing #{");
    sv_lex_pop(P, &saved);
    free(text);
    return rc;
}

/* "a#{b}c": literal and expression parts chained under an N_INTERP. */
static int interp_node(parser_t *P, const tok_t *t, node_t **out)
{
    node_t *n = sv_node_new(P, N_INTERP, t->line);
    if (!n)
        return P->err;
    node_t **tail = &n->a;
    const char *s = t->p + 1, *end = t->p + t->n - 1, *lit = s;
    int line = t->line, rc = 0;
    while (s < end && rc == 0) {
        if (*s == '\\' && s + 1 < end) {
            line += s[1] == '\n';
            s += 2;
            continue;
        }
        if (*s == '\n')
            line++;
        if (s[0] != '#' || s[1] != '{') {
            s++;
            continue;
        }
        if (s > lit && (rc = lit_str_node(P, lit, s, line, tail)) == 0 && *tail)
            tail = &(*tail)->next;
        int depth = 1, inner_line = line;
        const char *e = s + 2;
        for (char q = 0; e < end && depth > 0; e++) {
            if (q) {
                e += *e == '\\';
                q = *e == q ? 0 : q;
            } else if (*e == '"' || *e == '\'') {
                q = *e;
            } else {
                depth += (*e == '{') - (*e == '}');
                line += *e == '\n';
            }
        }
        if (rc == 0 && (rc = interp_part(P, s + 2, e - 1, inner_line, tail)) == 0 && *tail)
            tail = &(*tail)->next;
        s = lit = e;
    }
    if (rc == 0 && s > lit)
        rc = lit_str_node(P, lit, s, line, tail);
    if (rc) {
        sv_node_free(n);
        return rc;
    }
    *out = n;
    return 0;
}

static bool has_interp(const tok_t *t)
{
    if (t->type != T_DSTR)
        return false;
    for (const char *s = t->p + 1; s < t->p + t->n - 1; s++) {
        if (*s == '\\')
            s++;
        else if (s[0] == '#' && s[1] == '{')
            return true;
    }
    return false;
}

/* %w[a b] as an array of strings, %i[a b] of symbols. */
static int words_node(parser_t *P, const tok_t *t, node_t **out)
{
    node_t *n = sv_node_new(P, N_ARRAY, t->line);
    if (!n)
        return P->err;
    node_t **tail = &n->a;
    bool sym = t->p[1] == 'i' || t->p[1] == 'I';
    const char *s = t->p + 3, *end = t->p + t->n - 1;
    while (s < end) {
        while (s < end && (*s == ' ' || *s == '\n' || *s == '\t'))
            s++;
        const char *w = s;
        while (s < end && *s != ' ' && *s != '\n' && *s != '\t')
            s++;
        if (s == w)
            break;
        node_t *e = sv_node_new(P, N_LIT, t->line);
        if (!e || !(e->lit.s = strndup(w, (size_t)(s - w)))) {
            sv_node_free(e);
            sv_node_free(n);
            return P->err ? P->err : sv_poom(P);
        }
        e->lit.type = sym ? SV_V_SYM : SV_V_STR;
        *tail = e;
        tail = &e->next;
    }
    *out = n;
    return 0;
}

/* ---- primaries ------------------------------------------------------- */

static int lit_node(parser_t *P, node_t **out)
{
    const tok_t *t = &P->tok;
    if (has_interp(t))
        return interp_node(P, t, out) ? P->err : sv_next(P);
    if (t->type == T_WORDS)
        return words_node(P, t, out) ? P->err : sv_next(P);
    node_t *n = sv_node_new(P, N_LIT, t->line);
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
        n->lit.type = SV_V_SYM;
        rc = (n->lit.s = strndup(t->p, t->n)) ? 0 : -ENOMEM;
    } else if (t->type == T_DSTR || t->type == T_SSTR) {
        rc = sv_decode_string(t, &n->lit);
    } else {
        n->lit.type = sv_tok_is(t, "nil") ? SV_V_NIL : SV_V_BOOL;
        n->lit.b = sv_tok_is(t, "true");
    }
    if (rc < 0) {
        sv_node_free(n);
        return sv_poom(P);
    }
    *out = n;
    return sv_next(P);
}

/* ( expr ) with newlines ignored inside; `(a; b)` is not read. */
static int parse_paren_expr(parser_t *P, node_t **out)
{
    *out = NULL;
    P->depth++;
    sv_next(P);
    int rc = sv_enter(P);
    if (rc == 0)
        rc = sv_parse_expr(P, out);
    P->nesting--;
    P->depth--;
    if (rc == 0 && P->tok.type != T_RPAREN)
        rc = sv_unexpected(P, "')'");
    if (rc == 0)
        rc = sv_next(P);
    if (rc) {
        sv_node_free(*out);
        *out = NULL;
    }
    return rc;
}

/* Comma-separated arguments up to close, into a chain; a bare hash may come last. */
static int parse_list(parser_t *P, tok_type_t close, const char *what, node_t **chain)
{
    node_t **tail = chain;
    P->depth++;
    sv_next(P);
    int rc = sv_enter(P);
    while (rc == 0 && P->tok.type != close) {
        if (sv_at_bare_hash(P))
            rc = sv_parse_hash(P, tail, false);
        else
            rc = sv_parse_arg(P, tail);
        if (rc)
            break;
        if (!*tail) { /* every parser sets *out when it succeeds; the analyzer cannot see it */
            sv_poom(P);
            rc = SV_ECONFIG;
            break;
        }
        tail = &(*tail)->next;
        if (P->tok.type != T_COMMA)
            break;
        sv_next(P);
    }
    P->nesting--;
    P->depth--;
    if (rc == 0 && P->tok.type != close)
        rc = sv_unexpected(P, what);
    return rc ? rc : sv_next(P);
}

/* The optional `{ expr }` after ENV.fetch(...): Ruby's default block. */
static int parse_fetch_block(parser_t *P, node_t *fetch)
{
    int line = P->tok.line;
    P->depth++;
    sv_next(P);
    if (P->tok.type == T_PIPE) {
        P->depth--;
        return sv_perr(P, line, "ENV.fetch's block takes no parameters here: write ENV.fetch(\"X\") { default }");
    }
    P->depth--; /* the block's body may span lines, as statements do */
    sv_skip_newlines(P);
    node_t *b = NULL;
    int rc = sv_parse_expr(P, &b);
    sv_skip_newlines(P);
    if (rc == 0 && P->tok.type != T_RBRACE)
        rc = sv_unexpected(P, "'}' closing ENV.fetch's block");
    if (rc) {
        sv_node_free(b);
        return rc;
    }
    sv_node_free(fetch->b); /* as in Ruby, the block supersedes a default argument */
    fetch->b = b;
    return sv_next(P);
}

static int parse_fetch(parser_t *P, node_t **out, int line)
{
    if (P->tok.type != T_LPAREN)
        return sv_unexpected(P, "'(' after ENV.fetch");
    node_t *n = sv_node_new(P, N_FETCH, line);
    if (!n)
        return P->err;
    P->depth++;
    sv_next(P);
    int rc = sv_parse_arg(P, &n->a);
    if (rc == 0 && P->tok.type == T_COMMA) {
        sv_next(P);
        rc = sv_parse_arg(P, &n->b);
    }
    P->depth--;
    if (rc == 0 && P->tok.type != T_RPAREN)
        rc = sv_unexpected(P, "')' closing ENV.fetch(");
    if (rc == 0)
        rc = sv_next(P);
    if (rc == 0 && P->tok.type == T_LBRACE)
        rc = parse_fetch_block(P, n);
    if (rc) {
        sv_node_free(n);
        return rc;
    }
    *out = n;
    return 0;
}

/* ENV["X"], ENV.fetch("X"), ENV.fetch("X", d), ENV.fetch("X") { d }, ENV.key?("X") */
static int parse_env(parser_t *P, node_t **out)
{
    int line = P->tok.line;
    sv_next(P);
    if (P->tok.type == T_LBRACK) {
        P->depth++;
        sv_next(P);
        node_t *key = NULL;
        int rc = sv_parse_expr(P, &key);
        P->depth--;
        if (rc == 0 && P->tok.type != T_RBRACK)
            rc = sv_unexpected(P, "']' closing ENV[");
        if (rc == 0 && !(*out = unary_node(P, N_ENV, line, key)))
            return P->err;
        if (rc)
            sv_node_free(key);
        return rc ? rc : sv_next(P);
    }
    if (P->tok.type == T_DOT) {
        sv_next(P);
        if (sv_tok_is(&P->tok, "fetch")) {
            sv_next(P);
            return parse_fetch(P, out, line);
        }
        static const char *const keyq[] = {"key?", "has_key?", "include?", "member?"};
        for (size_t i = 0; i < sizeof(keyq) / sizeof(keyq[0]); i++) {
            if (!sv_tok_is(&P->tok, keyq[i]))
                continue;
            node_t *n = sv_node_new(P, N_CALL, line);
            if (!n || !(n->name = strdup("ENV.key?"))) {
                sv_node_free(n);
                return P->err ? P->err : sv_poom(P);
            }
            sv_next(P);
            int rc = P->tok.type == T_LPAREN ? parse_list(P, T_RPAREN, "')'", &n->args)
                                             : sv_unexpected(P, "'(' after ENV.key?");
            if (rc) {
                sv_node_free(n);
                return rc;
            }
            *out = n;
            return 0;
        }
    }
    return sv_perr(P, line, "unsupported use of ENV (serval reads ENV[\"X\"], ENV.fetch(\"X\"), "
                            "ENV.fetch(\"X\", default), ENV.fetch(\"X\") { default } and ENV.key?(\"X\"))");
}

/* name(args): a function call, Integer(x) and friends or a method the file defines. */
static int call_node(parser_t *P, const char *name, int line, node_t *recv, node_t **out)
{
    node_t *n = sv_node_new(P, N_CALL, line);
    if (!n) {
        sv_node_free(recv);
        return P->err;
    }
    n->a = recv;
    if (!(n->name = strdup(name))) {
        sv_node_free(n);
        return sv_poom(P);
    }
    int rc = 0;
    if (P->tok.type == T_LPAREN && !P->tok.space)
        rc = parse_list(P, T_RPAREN, "',' or ')'", &n->args);
    /* a { block } binds to the call; serval runs no blocks */
    if (rc == 0 && P->tok.type == T_LBRACE) {
        n->op |= 2;
        rc = sv_skip_ruby(P, false);
    }
    if (rc) {
        sv_node_free(n);
        return rc;
    }
    *out = n;
    return 0;
}

/* A variable (or a constant) read by name. */
static int var_node(parser_t *P, const char *name, int line, node_t **out)
{
    var_t *v = sv_find_var(P, name);
    if (v)
        v->referenced = true;
    node_t *n = sv_node_new(P, N_VAR, line);
    if (!n)
        return P->err;
    if (!(n->name = strdup(name))) {
        sv_node_free(n);
        return sv_poom(P);
    }
    *out = n;
    return 0;
}

/* Foo, Foo::Bar, Foo.bar(args), Foo::Bar.baz */
static int parse_constant(parser_t *P, node_t **out)
{
    char name[160];
    int line = P->tok.line;
    snprintf(name, sizeof(name), "%.*s", (int)(P->tok.n < 60 ? P->tok.n : 60), P->tok.p);
    sv_next(P);
    while (P->tok.type == T_COLON2 && !P->err) {
        sv_next(P);
        if (P->tok.type != T_CONST)
            return sv_unexpected(P, "a constant after '::'");
        size_t l = strlen(name);
        snprintf(name + l, sizeof(name) - l, "::%.*s", (int)(P->tok.n < 60 ? P->tok.n : 60), P->tok.p);
        sv_next(P);
    }
    if (P->tok.type == T_LPAREN && !P->tok.space) /* Integer(x), Float(x), String(x), Array(x) */
        return call_node(P, name, line, NULL, out);
    /* Foo.bar is a method on the constant: eval.c calls it as "Foo.bar" unless the file assigned Foo */
    return var_node(P, name, line, out);
}

/* x = value inside an expression: `case n = Integer(...)`, `if (x = ENV["X"])`. */
static int assign_node(parser_t *P, node_t **out)
{
    int line = P->tok.line;
    node_t *n = sv_node_new(P, N_ASSIGN, line);
    if (!n || !(n->name = strndup(P->tok.p, P->tok.n))) {
        sv_node_free(n);
        return P->err ? P->err : sv_poom(P);
    }
    sv_next(P);
    sv_next(P);
    sv_skip_newlines(P);
    int rc = parse_ternary(P, &n->a);
    /* Ruby defines the variable where it parses the assignment, nil until it runs */
    if (rc == 0 && !sv_find_var(P, n->name)) {
        sv_value_t nil = {0};
        rc = sv_set_var(P, n->name, &nil, line);
    }
    if (rc) {
        sv_node_free(n);
        return rc;
    }
    *out = n;
    return 0;
}

/* if/unless/case as a value: `n = if c then 1 else 2 end`. */
static int parse_if_value(parser_t *P, node_t **out);

static int parse_name(parser_t *P, node_t **out)
{
    const tok_t *t = &P->tok;
    if (sv_tok_is(t, "true") || sv_tok_is(t, "false") || sv_tok_is(t, "nil"))
        return lit_node(P, out);
    if (t->type == T_CONST && t->n == 3 && !memcmp(t->p, "ENV", 3))
        return parse_env(P, out);
    if (t->type == T_CONST)
        return parse_constant(P, out);
    if (sv_tok_is(t, "if") || sv_tok_is(t, "unless"))
        return parse_if_value(P, out);
    if (sv_tok_is(t, "case") || sv_tok_is(t, "begin")) {
        int line = t->line;
        char what[32];
        snprintf(what, sizeof(what), "%s ... end as a value", sv_tok_is(t, "case") ? "case" : "begin");
        int rc = sv_skip_ruby(P, false);
        return rc ? rc : unsup_node(P, line, what, out);
    }
    if (sv_tok_is(t, "__FILE__") || sv_tok_is(t, "__dir__")) {
        const char *fn = sv_tok_is(t, "__FILE__") ? "__FILE__" : "__dir__";
        int line = t->line;
        sv_next(P);
        return call_node(P, fn, line, NULL, out);
    }
    if (sv_tok_is(t, "defined?")) { /* serval has no Ruby constants or methods to look up */
        int line = t->line;
        sv_next(P);
        int rc = P->tok.type == T_LPAREN ? sv_skip_ruby(P, false) : sv_next(P);
        return rc ? rc : unsup_node(P, line, "defined?(...) (serval has no Ruby constants or methods)", out);
    }
    if (sv_tok_is_kw(t))
        return sv_unexpected(P, "a value");
    if (sv_peek(P)->type == T_ASSIGN)
        return assign_node(P, out);
    char name[128];
    int line = t->line;
    snprintf(name, sizeof(name), "%.*s", (int)(t->n < 100 ? t->n : 100), t->p);
    sv_next(P);
    if (P->tok.type == T_LPAREN && !P->tok.space)
        return call_node(P, name, line, NULL, out);
    return var_node(P, name, line, out);
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
    case T_SSTR:
    case T_WORDS: return lit_node(P, out);
    case T_IDENT:
    case T_CONST: return parse_name(P, out);
    case T_LPAREN: return parse_paren_expr(P, out);
    case T_LBRACK: {
        node_t *n = sv_node_new(P, N_ARRAY, P->tok.line);
        if (!n)
            return P->err;
        int rc = parse_list(P, T_RBRACK, "',' or ']'", &n->a);
        if (rc) {
            sv_node_free(n);
            return rc;
        }
        *out = n;
        return 0;
    }
    case T_DOT2:
    case T_DOT3: { /* a beginless range, (..5) */
        node_t *n = sv_node_new(P, N_RANGE, P->tok.line);
        if (!n)
            return P->err;
        n->op = P->tok.type == T_DOT3;
        sv_next(P);
        int rc = parse_unary(P, &n->b);
        if (rc) {
            sv_node_free(n);
            return rc;
        }
        *out = n;
        return 0;
    }
    case T_LBRACE:
        return sv_perr(P, P->tok.line, "a hash can only be given directly as a directive's argument");
    default: return sv_unexpected(P, "a value");
    }
}

/* .name, .name(args), &.name, [index] */
static int parse_method(parser_t *P, node_t **n)
{
    bool safe = P->tok.type == T_SAFENAV;
    int line = P->tok.line;
    sv_next(P);
    sv_skip_newlines(P);
    const tok_t *t = &P->tok;
    if (t->type != T_IDENT && t->type != T_CONST)
        return sv_unexpected(P, "a method name after '.'");
    char name[64];
    snprintf(name, sizeof(name), "%.*s", (int)(t->n < 60 ? t->n : 60), t->p);
    sv_next(P);
    node_t *recv = *n;
    *n = NULL;
    int rc = call_node(P, name, line, recv, n);
    if (rc == 0 && safe && *n)
        (*n)->op |= 1;
    return rc;
}

static int parse_postfix(parser_t *P, node_t **out)
{
    int rc = parse_primary(P, out);
    for (;;) {
        if (rc)
            break;
        if (P->tok.type == T_DOT || P->tok.type == T_SAFENAV) {
            rc = parse_method(P, out);
        } else if (P->tok.type == T_NL && (sv_peek(P)->type == T_DOT || sv_peek(P)->type == T_SAFENAV)) {
            sv_next(P); /* a method chain continued on the next line */
        } else if (P->tok.type == T_LBRACK && !P->tok.space) {
            node_t *recv = *out;
            node_t *n = sv_node_new(P, N_CALL, P->tok.line);
            if (!n || !(n->name = strdup("[]"))) {
                sv_node_free(n);
                sv_node_free(recv);
                *out = NULL;
                return P->err ? P->err : sv_poom(P);
            }
            n->a = recv;
            *out = n;
            rc = parse_list(P, T_RBRACK, "']'", &n->args);
        } else {
            break;
        }
    }
    if (rc) {
        sv_node_free(*out);
        *out = NULL;
    }
    return rc;
}

static int parse_unary(parser_t *P, node_t **out)
{
    int line = P->tok.line;
    *out = NULL;
    if (P->tok.type == T_BANG || P->tok.type == T_MINUS) {
        node_kind_t kind = P->tok.type == T_BANG ? N_NOT : N_NEG;
        sv_next(P);
        if (kind == N_NEG && (P->tok.type == T_INT || P->tok.type == T_FLOAT) && !P->tok.space) {
            P->tok.i = -P->tok.i; /* a negative literal, so -5.to_s is "-5" */
            P->tok.f = -P->tok.f;
            return parse_postfix(P, out);
        }
        node_t *a = NULL;
        int rc = sv_enter(P);
        if (rc == 0)
            rc = parse_unary(P, &a);
        P->nesting--;
        if (rc)
            return P->err;
        *out = unary_node(P, kind, line, a);
        return *out ? 0 : P->err;
    }
    return parse_postfix(P, out);
}

/* ---- binary operators ------------------------------------------------ */

typedef int (*subparse_fn)(parser_t *P, node_t **out);

static bool is_op(const tok_t *t, const tok_type_t *ops, const char *word)
{
    for (; *ops != T_EOF; ops++)
        if (t->type == *ops)
            return true;
    return word && sv_tok_is(t, word);
}

/* One left-associative level: operand (op operand)*. */
static int parse_level(parser_t *P, node_t **out, subparse_fn sub, const tok_type_t *ops, const char *word,
                       node_kind_t kind)
{
    int rc = sub(P, out);
    while (rc == 0 && is_op(&P->tok, ops, word)) {
        int op = P->tok.type, line = P->tok.line;
        sv_next(P);
        sv_skip_newlines(P);
        node_t *r = NULL;
        if ((rc = sub(P, &r)) == 0) {
            if (!(*out = binary_node(P, kind, line, *out, r)))
                return P->err;
            (*out)->op = op;
        }
    }
    if (rc) {
        sv_node_free(*out);
        *out = NULL;
    }
    return rc;
}

static int parse_mul(parser_t *P, node_t **out)
{
    static const tok_type_t ops[] = {T_STAR, T_SLASH, T_PERCENT, T_EOF};
    return parse_level(P, out, parse_unary, ops, NULL, N_BIN);
}

/* `foo -1` in an argument list is foo(-1); only a spaced or unspaced-both `-` subtracts. */
static int parse_add(parser_t *P, node_t **out)
{
    static const tok_type_t ops[] = {T_PLUS, T_MINUS, T_EOF};
    return parse_level(P, out, parse_mul, ops, NULL, N_BIN);
}

static int parse_cmp(parser_t *P, node_t **out)
{
    static const tok_type_t ops[] = {T_LT, T_LE, T_GT, T_GE, T_EOF};
    return parse_level(P, out, parse_add, ops, NULL, N_BIN);
}

static int parse_eq(parser_t *P, node_t **out)
{
    static const tok_type_t ops[] = {T_EQ, T_NE, T_EOF};
    return parse_level(P, out, parse_cmp, ops, NULL, N_BIN);
}

static int parse_andand(parser_t *P, node_t **out)
{
    static const tok_type_t ops[] = {T_ANDAND, T_EOF};
    return parse_level(P, out, parse_eq, ops, NULL, N_AND);
}

static int parse_oror(parser_t *P, node_t **out)
{
    static const tok_type_t ops[] = {T_OROR, T_EOF};
    return parse_level(P, out, parse_andand, ops, NULL, N_OR);
}

static bool range_end_follows(const tok_t *t)
{
    return !(sv_at_stmt_end(t) || t->type == T_RPAREN || t->type == T_RBRACK || t->type == T_COMMA ||
             t->type == T_RBRACE || sv_tok_is(t, "then") || sv_tok_is(t, "if") || sv_tok_is(t, "unless"));
}

static int parse_range(parser_t *P, node_t **out)
{
    int rc = parse_oror(P, out);
    if (rc || (P->tok.type != T_DOT2 && P->tok.type != T_DOT3))
        return rc;
    node_t *n = unary_node(P, N_RANGE, P->tok.line, *out);
    *out = n;
    if (!n)
        return P->err;
    n->op = P->tok.type == T_DOT3;
    sv_next(P);
    if (range_end_follows(&P->tok) && (rc = parse_oror(P, &n->b))) {
        sv_node_free(n);
        *out = NULL;
    }
    return rc;
}

static int parse_ternary(parser_t *P, node_t **out)
{
    int rc = parse_range(P, out);
    if (rc || P->tok.type != T_QUESTION)
        return rc;
    node_t *n = unary_node(P, N_IF, P->tok.line, *out);
    *out = n;
    if (!n)
        return P->err;
    sv_next(P);
    sv_skip_newlines(P);
    rc = sv_enter(P);
    if (rc == 0 && (rc = parse_ternary(P, &n->b)) == 0) {
        if (P->tok.type == T_COLON || P->tok.type == T_LABEL)
            rc = sv_expect(P, T_COLON, "':' of the ?: operator");
        else
            rc = sv_unexpected(P, "':' of the ?: operator");
    }
    sv_skip_newlines(P);
    if (rc == 0)
        rc = parse_ternary(P, &n->c);
    P->nesting--;
    if (rc) {
        sv_node_free(n);
        *out = NULL;
    }
    return rc;
}

int sv_parse_arg(parser_t *P, node_t **out)
{
    *out = NULL;
    return parse_ternary(P, out);
}

static int parse_not(parser_t *P, node_t **out)
{
    if (!sv_tok_is(&P->tok, "not"))
        return parse_ternary(P, out);
    int line = P->tok.line;
    sv_next(P);
    node_t *a = NULL;
    int rc = sv_enter(P);
    if (rc == 0)
        rc = parse_not(P, &a);
    P->nesting--;
    if (rc)
        return rc;
    *out = unary_node(P, N_NOT, line, a);
    return *out ? 0 : P->err;
}

/* `and` and `or` bind loosest, with equal precedence, left to right. */
int sv_parse_expr(parser_t *P, node_t **out)
{
    *out = NULL;
    int rc = parse_not(P, out);
    while (rc == 0 && (sv_tok_is(&P->tok, "and") || sv_tok_is(&P->tok, "or"))) {
        node_kind_t kind = sv_tok_is(&P->tok, "and") ? N_AND : N_OR;
        int line = P->tok.line;
        sv_next(P);
        sv_skip_newlines(P);
        node_t *r = NULL;
        if ((rc = parse_not(P, &r)) == 0 && !(*out = binary_node(P, kind, line, *out, r)))
            return P->err;
    }
    if (rc) {
        sv_node_free(*out);
        *out = NULL;
    }
    return rc;
}

/* ---- if as a value --------------------------------------------------- */

/* One branch's body: a single expression between newlines. */
static int branch_value(parser_t *P, node_t **out)
{
    sv_skip_newlines(P);
    if (sv_tok_is(&P->tok, "else") || sv_tok_is(&P->tok, "elsif") || sv_tok_is(&P->tok, "end")) {
        node_t *n = sv_node_new(P, N_LIT, P->tok.line); /* an empty branch is nil */
        *out = n;
        return n ? 0 : P->err;
    }
    int rc = sv_parse_expr(P, out);
    if (rc == 0 && (P->tok.type == T_SEMI || P->tok.type == T_NL))
        sv_skip_newlines(P);
    if (rc == 0 && !sv_tok_is(&P->tok, "else") && !sv_tok_is(&P->tok, "elsif") && !sv_tok_is(&P->tok, "end"))
        rc = sv_unexpected(P, "'else', 'elsif' or 'end' (a value if holds one expression per branch)");
    return rc;
}

static int parse_if_value(parser_t *P, node_t **out)
{
    int line = P->tok.line;
    bool unless = sv_tok_is(&P->tok, "unless");
    node_t *n = sv_node_new(P, N_IF, line);
    if (!n)
        return P->err;
    int rc = sv_enter(P);
    sv_next(P);
    if (rc == 0)
        rc = sv_parse_expr(P, &n->a);
    if (rc == 0 && unless && !(n->a = unary_node(P, N_NOT, line, n->a)))
        rc = P->err;
    if (rc == 0 && sv_tok_is(&P->tok, "then"))
        sv_next(P);
    if (rc == 0)
        rc = branch_value(P, &n->b);
    if (rc == 0 && !unless && sv_tok_is(&P->tok, "elsif")) {
        rc = parse_if_value(P, &n->c); /* consumes the shared 'end' */
        P->nesting--;
        if (rc) {
            sv_node_free(n);
            return rc;
        }
        *out = n;
        return 0;
    }
    if (rc == 0 && sv_tok_is(&P->tok, "else")) {
        sv_next(P);
        rc = branch_value(P, &n->c);
    }
    P->nesting--;
    if (rc == 0)
        rc = sv_tok_is(&P->tok, "end") ? sv_next(P) : sv_unexpected(P, "'end'");
    if (rc) {
        sv_node_free(n);
        return rc;
    }
    *out = n;
    return 0;
}

/* ---- hashes ---------------------------------------------------------- */

/* key: value, :key => value, "key" => value */
static int parse_pair(parser_t *P, node_t **out)
{
    const tok_t *t = &P->tok;
    node_t *n = sv_node_new(P, N_PAIR, t->line);
    if (!n)
        return P->err;
    int rc = 0;
    if (t->type == T_LABEL || t->type == T_SYM) {
        n->name = strndup(t->p, t->n);
    } else if (t->type == T_DSTR || t->type == T_SSTR) {
        sv_value_t v;
        if (sv_decode_string(t, &v) == 0)
            n->name = v.s;
    } else {
        sv_node_free(n);
        return sv_unexpected(P, "a hash key such as auth_token:");
    }
    if (!n->name)
        rc = sv_poom(P);
    bool label = t->type == T_LABEL;
    if (rc == 0)
        rc = sv_next(P);
    if (rc == 0 && !label)
        rc = sv_expect(P, T_ARROW, "'=>'");
    sv_skip_newlines(P);
    /* a hash as a value: ssl_bind's reuse: { size: 2000, timeout: 20 } */
    if (rc == 0)
        rc = P->tok.type == T_LBRACE ? sv_parse_hash(P, &n->a, true) : sv_parse_arg(P, &n->a);
    if (rc) {
        sv_node_free(n);
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
            return sv_poom(P); /* parse_pair sets *tail whenever it succeeds */
        tail = &(*tail)->next;
        if (P->tok.type != T_COMMA)
            return 0;
        sv_next(P);
        sv_skip_newlines(P);
    }
}

int sv_parse_hash(parser_t *P, node_t **out, bool braced)
{
    node_t *h = sv_node_new(P, N_HASH, P->tok.line);
    if (!h)
        return P->err;
    if (braced) {
        P->depth++;
        sv_next(P);
    }
    int rc = parse_pairs(P, h, braced);
    if (braced) {
        P->depth--;
        if (rc == 0 && P->tok.type != T_RBRACE)
            rc = sv_unexpected(P, "',' or '}'");
        if (rc == 0)
            rc = sv_next(P);
    }
    if (rc) {
        sv_node_free(h);
        return rc;
    }
    *out = h;
    return 0;
}

bool sv_at_bare_hash(parser_t *P)
{
    tok_type_t t = P->tok.type;
    if (t == T_LABEL)
        return true;
    return (t == T_SYM || t == T_DSTR || t == T_SSTR) && sv_peek(P)->type == T_ARROW;
}
