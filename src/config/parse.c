/*
 * parse.c: puma.rb statements.
 *
 * Each statement is parsed into trees (expr.c), then evaluated (eval.c) only
 * where it runs: inside a taken branch, under a true modifier. Ruby that
 * serval cannot run is skipped with a warning naming file and line, and the
 * rest of the file applies:
 *   - hook blocks (on_worker_boot do ... end), require, Ruby-only and
 *     unsupported Puma directives: skipped whole, warned about wherever they
 *     stand (a property of the file, not of this environment);
 *   - def, begin, while, class ...: skipped whole, warned about;
 *   - a statement whose value needs what serval does not know (a method, a
 *     constant): warned about where it runs, then skipped; a variable it
 *     assigns is "unknown" from then on.
 * A misspelt directive, a syntax error or a bad value stays an error.
 */
#include "config/parse_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"

static int parse_body(parser_t *P, bool active, const char *opener, int open_line);

/* ---- warnings -------------------------------------------------------- */

static void warn_at(parser_t *P, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void warn_at(parser_t *P, int line, const char *fmt, ...)
{
    char where[SV_DIAG_MAX / 2], msg[SV_DIAG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (P->where)
        snprintf(where, sizeof(where), "%s", P->where);
    else
        snprintf(where, sizeof(where), "%.*s:%d", SV_DIAG_MAX / 4, P->path, line);
    sv_cfg_warn(P->cfg, where, "%s", msg);
}

/* A soft failure becomes a warning about what was skipped; a hard one stays. */
static int soften(parser_t *P, int line, const char *skipped)
{
    if (P->err != SOFT_FAIL)
        return P->err;
    P->err = 0;
    warn_at(P, line, "'%s' skipped: %s (serval evaluates a subset of Ruby, see docs/configuration.md)", skipped,
            P->soft);
    return 0;
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
        sv_node_free(c->args[i]);
    sv_node_free(c->cond);
    memset(c, 0, sizeof(*c));
}

static bool at_args_end(const tok_t *t)
{
    return sv_at_stmt_end(t) || sv_tok_is(t, "if") || sv_tok_is(t, "unless") || sv_tok_is(t, "do") ||
           t->type == T_LBRACE || t->type == T_RPAREN || t->type == T_RBRACE;
}

static int push_arg(parser_t *P, call_t *c, node_t *n)
{
    if (c->nargs == SV_CFG_MAX_ARGS) {
        sv_node_free(n);
        return sv_perr(P, P->tok.line, "too many arguments (at most %d)", SV_CFG_MAX_ARGS);
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
        if (sv_at_bare_hash(P))
            rc = sv_parse_hash(P, &n, false);
        else if (P->tok.type == T_LBRACE)
            rc = sv_parse_hash(P, &n, true);
        else
            rc = sv_parse_expr(P, &n); /* `quiet false or nil` reads as quiet(false or nil) */
        if (rc || (rc = push_arg(P, c, n)))
            return rc;
        if (P->tok.type != T_COMMA)
            return 0;
        sv_next(P);
        sv_skip_newlines(P);
    }
}

static int parse_call_args(parser_t *P, call_t *c)
{
    if (P->tok.type == T_LPAREN && !P->tok.space) {
        P->depth++;
        sv_next(P);
        int rc = P->tok.type == T_RPAREN ? 0 : parse_arglist(P, c);
        P->depth--;
        if (rc == 0 && P->tok.type != T_RPAREN)
            rc = sv_unexpected(P, "',' or ')'");
        return rc ? rc : sv_next(P);
    }
    if (at_args_end(&P->tok))
        return 0;
    return parse_arglist(P, c);
}

static int parse_modifier(parser_t *P, call_t *c)
{
    if (sv_tok_is(&P->tok, "if") || sv_tok_is(&P->tok, "unless")) {
        c->unless = sv_tok_is(&P->tok, "unless");
        sv_next(P);
        if (sv_parse_expr(P, &c->cond))
            return P->err;
    }
    if (!sv_at_stmt_end(&P->tok) && P->tok.type != T_RBRACE)
        return sv_unexpected(P, P->tok.type == T_ASSIGN ? "end of line; == compares, = assigns" : "end of line");
    return 0;
}

/* Whether a parsed statement runs: its block is active and its modifier holds. */
static int cond_holds(parser_t *P, const node_t *cond, bool unless, bool active, bool *run)
{
    *run = active;
    if (P->err || !active || !cond)
        return P->err;
    sv_value_t v;
    if (sv_eval(P, cond, &v) == 0)
        *run = sv_truthy(&v) != unless;
    sv_cfg_value_free(&v);
    return P->err;
}

/* The statement's trailing modifier, then whether it runs (a soft failure: it does not). */
static int finish_stmt(parser_t *P, call_t *c, bool active, bool *run, const char *what, int line)
{
    *run = false;
    int rc = parse_modifier(P, c);
    if (rc == 0 && cond_holds(P, c->cond, c->unless, active, run) == SOFT_FAIL) {
        *run = false;
        return soften(P, line, what);
    }
    return P->err;
}

static int apply_call(parser_t *P, const sv_directive_t *d, const call_t *c, int line)
{
    sv_value_t vals[SV_CFG_MAX_ARGS];
    int n = 0, rc = P->err;
    for (; n < c->nargs && rc == 0; n++)
        rc = sv_eval(P, c->args[n], &vals[n]);
    if (rc == SOFT_FAIL) {
        rc = soften(P, line, d->name);
    } else if (rc == 0) {
        char where[SV_DIAG_MAX];
        if (P->where)
            snprintf(where, sizeof(where), "%s", P->where);
        else
            snprintf(where, sizeof(where), "%.*s:%d", SV_DIAG_MAX / 4, P->path, line);
        sv_site_t site = {P->diag, where, P->raw};
        rc = d->set(P->cfg, d, vals, n, &site);
        if (rc == 0 && sv_cfg_set_origin(P->cfg, d, where) < 0)
            rc = sv_poom(P);
        if (rc)
            P->err = rc;
    }
    while (n > 0)
        sv_cfg_value_free(&vals[--n]);
    return rc;
}

/* The statement's text as far as its first line goes, for warnings. */
static void stmt_text(const parser_t *P, char *out, size_t cap)
{
    const char *s = P->tok.p;
    size_t n = strcspn(s, "\n");
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\r'))
        n--;
    if (n > 48)
        snprintf(out, cap, "%.45s...", s);
    else
        snprintf(out, cap, "%.*s", (int)n, s);
}

/* Ruby serval cannot run, skipped to the end of its statement with a warning. */
static int skip_ruby_stmt(parser_t *P, int line, const char *why)
{
    char text[64];
    stmt_text(P, text, sizeof(text));
    warn_at(P, line, "'%s' skipped: %s", text, why);
    return sv_skip_ruby(P, true);
}

static int parse_directive(parser_t *P, bool active)
{
    int line = P->tok.line;
    char name[128], msg[SV_DIAG_MAX];
    snprintf(name, sizeof(name), "%.*s", (int)(P->tok.n < 100 ? P->tok.n : 100), P->tok.p);
    const sv_directive_t *d = sv_cfg_lookup(name, false);
    if (!d && sv_is_def(P, name)) {
        snprintf(msg, sizeof(msg), "%s is a method defined in the file, which serval does not run", name);
        return skip_ruby_stmt(P, line, msg);
    }
    if (!d) {
        if (sv_cfg_unknown_message(name, msg, sizeof(msg)) == 0)
            return sv_perr(P, line, "%s", msg);
        warn_at(P, line, "%s", msg);
        return sv_skip_ruby(P, true);
    }
    call_t c = {0};
    sv_next(P);
    int rc = parse_call_args(P, &c);
    if (rc == 0 && (sv_tok_is(&P->tok, "do") || P->tok.type == T_LBRACE))
        rc = sv_perr(P, line, "%s does not take a block: serval cannot run Ruby code (hint: see "
                              "docs/configuration.md)", d->name);
    bool run = false;
    if (rc == 0)
        rc = finish_stmt(P, &c, active, &run, d->name, line);
    if (rc == 0 && run)
        rc = apply_call(P, d, &c, line);
    call_free(&c);
    return rc;
}

/* x = v, x ||= v, x += v: the value tree for the assignment. */
static int assign_value(parser_t *P, const char *name, const tok_t *op, node_t **out)
{
    node_t *rhs = NULL;
    int rc = sv_parse_expr(P, &rhs);
    if (rc || op->type == T_ASSIGN) {
        *out = rhs;
        return rc;
    }
    static const struct {
        char c;
        node_kind_t kind;
        tok_type_t bin;
    } ops[] = {{'|', N_OR, T_EOF}, {'&', N_AND, T_EOF}, {'+', N_BIN, T_PLUS}, {'-', N_BIN, T_MINUS},
               {'*', N_BIN, T_STAR}, {'/', N_BIN, T_SLASH}};
    node_t *var = sv_node_new(P, N_VAR, op->line), *n = NULL;
    if (var && !(var->name = strdup(name)))
        rc = sv_poom(P);
    for (size_t i = 0; rc == 0 && var && i < sizeof(ops) / sizeof(ops[0]); i++) {
        if (op->p[0] != ops[i].c)
            continue;
        if ((n = sv_node_new(P, ops[i].kind, op->line))) {
            n->op = ops[i].bin;
            n->a = var;
            n->b = rhs;
            var = rhs = NULL;
        }
    }
    /* `x ||= v` on a variable not yet assigned reads it as nil, as Ruby does */
    if (rc == 0 && n && !sv_find_var(P, name)) {
        sv_value_t nil = {0};
        rc = sv_set_var(P, name, &nil, op->line);
    }
    sv_node_free(var);
    sv_node_free(rhs);
    *out = n;
    return rc ? rc : n ? 0 : P->err;
}

static int parse_assign(parser_t *P, bool active)
{
    int line = P->tok.line;
    char *name = strndup(P->tok.p, P->tok.n);
    if (!name)
        return sv_poom(P);
    call_t c = {0};
    sv_next(P);
    tok_t op = P->tok;
    sv_next(P);
    sv_skip_newlines(P);
    sv_value_t v = {0};
    int rc = assign_value(P, name, &op, &c.args[0]);
    c.nargs = rc == 0;
    bool run = false, soft = false;
    char what[160];
    snprintf(what, sizeof(what), "%s = ...", name);
    if (rc == 0)
        rc = finish_stmt(P, &c, active, &run, what, line);
    if (rc == 0 && run && sv_eval(P, c.args[0], &v) == SOFT_FAIL) {
        rc = soften(P, line, what);
        soft = true;
    } else if (rc == 0) {
        rc = P->err;
    }
    /* Ruby defines a variable even where its assignment does not run: it is nil */
    if (rc == 0 && (run || !sv_find_var(P, name)))
        rc = sv_set_var(P, name, &v, line);
    if (rc == 0 && soft)
        sv_find_var(P, name)->unknown_line = line;
    sv_cfg_value_free(&v);
    call_free(&c);
    free(name);
    return rc;
}

/* Assigns names[i] from vals (one array value is spread, as Ruby does); soft: all unknown. */
static int multi_store(parser_t *P, char **names, int n, sv_value_t *vals, int nvals, bool run, bool soft, int line)
{
    const sv_value_t *src = vals;
    int have = nvals;
    if (nvals == 1 && vals[0].type == SV_V_ARRAY) {
        have = vals[0].npairs;
        src = NULL;
    }
    for (int i = 0; i < n && P->err == 0; i++) {
        sv_value_t v = {0};
        if (!run && sv_find_var(P, names[i]))
            continue;
        const sv_value_t *from = i >= have || !run || soft ? NULL : src ? &src[i] : &vals[0].pairs[i].val;
        if (from && sv_cfg_value_copy(&v, from) < 0)
            return sv_poom(P);
        if (sv_set_var(P, names[i], &v, line) == 0 && soft)
            sv_find_var(P, names[i])->unknown_line = line;
    }
    return P->err;
}

/* a, b = 1, 2 and a, b = some_array */
static int parse_multi_assign(parser_t *P, bool active)
{
    int line = P->tok.line, n = 0;
    char *names[SV_CFG_MAX_ARGS] = {0};
    call_t c = {0};
    int rc = 0;
    while (rc == 0 && P->tok.type == T_IDENT && !sv_tok_is_kw(&P->tok) && n < SV_CFG_MAX_ARGS) {
        if (!(names[n++] = strndup(P->tok.p, P->tok.n)))
            rc = sv_poom(P);
        sv_next(P);
        if (P->tok.type != T_COMMA)
            break;
        sv_next(P);
    }
    if (rc == 0 && P->tok.type != T_ASSIGN)
        rc = sv_unexpected(P, "'=' (a, b = values)");
    if (rc == 0) {
        sv_next(P);
        sv_skip_newlines(P);
        rc = parse_arglist(P, &c);
    }
    bool run = false;
    if (rc == 0)
        rc = finish_stmt(P, &c, active, &run, names[0], line);
    /* zeroed: a value whose evaluation failed is freed as nil */
    sv_value_t vals[SV_CFG_MAX_ARGS] = {{0}};
    int nvals = 0;
    bool soft = false;
    for (; rc == 0 && run && nvals < c.nargs; nvals++)
        rc = sv_eval(P, c.args[nvals], &vals[nvals]);
    if (rc == SOFT_FAIL) {
        soft = true;
        rc = soften(P, line, "a, b = ...");
    }
    if (rc == 0)
        rc = multi_store(P, names, n, vals, nvals, run, soft, line);
    while (nvals > 0)
        sv_cfg_value_free(&vals[--nvals]);
    for (int i = 0; i < n; i++)
        free(names[i]);
    call_free(&c);
    return rc ? rc : P->err;
}

/* ENV["X"] = v, ENV["X"] ||= v: set for serval and the app, as Puma's master does. */
static int parse_env_assign(parser_t *P, bool active)
{
    int line = P->tok.line;
    call_t c = {0};
    sv_next(P);
    P->depth++;
    sv_next(P);
    int rc = sv_parse_expr(P, &c.args[0]);
    P->depth--;
    c.nargs = rc == 0;
    if (rc == 0 && P->tok.type != T_RBRACK)
        rc = sv_unexpected(P, "']'");
    if (rc == 0)
        sv_next(P);
    bool or_assign = P->tok.type == T_OPASSIGN && P->tok.p[0] == '|';
    if (rc == 0 && P->tok.type != T_ASSIGN && !or_assign)
        rc = sv_unexpected(P, "'=' or '||=' after ENV[...]");
    if (rc == 0) {
        sv_next(P);
        sv_skip_newlines(P);
        rc = sv_parse_expr(P, &c.args[1]);
        c.nargs += rc == 0;
    }
    bool run = false;
    if (rc == 0)
        rc = finish_stmt(P, &c, active, &run, "ENV[...] = ...", line);
    sv_value_t k = {0}, v = {0};
    if (rc == 0 && run && sv_eval(P, c.args[0], &k) == 0 && k.type != SV_V_STR)
        sv_perr(P, line, "ENV keys are strings");
    if (P->err == 0 && run && !(or_assign && getenv(k.s)) && sv_eval(P, c.args[1], &v) == 0) {
        char *s = v.type == SV_V_NIL ? NULL : sv_to_text(&v);
        if (v.type == SV_V_NIL)
            unsetenv(k.s);
        else if (!s || setenv(k.s, s, 1) < 0)
            sv_poom(P);
        free(s);
    }
    rc = soften(P, line, "ENV[...] = ...");
    sv_cfg_value_free(&k);
    sv_cfg_value_free(&v);
    call_free(&c);
    return rc;
}

/* `x` alone, `x.foo(1)`: Ruby evaluates it and drops the value. */
static int parse_expr_stmt(parser_t *P, bool active)
{
    call_t c = {0};
    int line = P->tok.line;
    char text[64];
    stmt_text(P, text, sizeof(text));
    int rc = sv_parse_expr(P, &c.args[0]);
    c.nargs = rc == 0;
    bool run = false;
    if (rc == 0)
        rc = finish_stmt(P, &c, active, &run, text, line);
    sv_value_t v = {0};
    if (rc == 0 && run && sv_eval(P, c.args[0], &v) == SOFT_FAIL)
        rc = soften(P, line, text);
    sv_cfg_value_free(&v);
    call_free(&c);
    return rc ? rc : P->err;
}

/* The condition of an if/elsif/when: a soft failure skips every branch, with a warning. */
static int branch_cond(parser_t *P, const node_t *cond, bool unless, bool active, bool *run, bool *dead,
                       const char *opener, int line)
{
    if (cond_holds(P, cond, unless, active && !*dead, run) == SOFT_FAIL) {
        char what[64];
        snprintf(what, sizeof(what), "%s (all its branches)", opener);
        *dead = true;
        *run = false;
        return soften(P, line, what);
    }
    return P->err;
}

/* if/unless COND [then] BODY [elsif COND BODY]* [else BODY] end */
static int parse_if(parser_t *P, bool active)
{
    int line = P->tok.line;
    bool unless = sv_tok_is(&P->tok, "unless"), taken = false, dead = false;
    const char *opener = unless ? "unless" : "if";
    do {
        node_t *cond = NULL;
        int cline = P->tok.line;
        sv_next(P);
        int rc = sv_parse_expr(P, &cond);
        bool run = false;
        if (rc == 0)
            rc = branch_cond(P, cond, unless, active && !taken, &run, &dead, opener, cline);
        sv_node_free(cond);
        if (rc)
            return rc;
        if (sv_tok_is(&P->tok, "then"))
            sv_next(P);
        rc = sv_enter(P);
        if (rc == 0)
            rc = parse_body(P, run, opener, line);
        P->nesting--;
        if (rc)
            return rc;
        taken = taken || run;
    } while (!unless && sv_tok_is(&P->tok, "elsif"));
    if (sv_tok_is(&P->tok, "else")) {
        sv_next(P);
        if (parse_body(P, active && !taken && !dead, opener, line))
            return P->err;
    }
    if (!sv_tok_is(&P->tok, "end"))
        return sv_unexpected(P, "'end'");
    sv_next(P);
    return sv_at_stmt_end(&P->tok) ? P->err : sv_unexpected(P, "end of line");
}

/* when A, B [then]: whether one of the patterns matches the subject (or is true without one). */
static int when_matches(parser_t *P, const sv_value_t *subject, bool active, bool *dead, bool *run, int line)
{
    *run = false;
    bool more = true;
    while (more && P->err == 0) {
        node_t *pat = NULL;
        if (P->tok.type == T_STAR)
            return sv_perr(P, P->tok.line, "'when *LIST' is not supported (hint: list the values)");
        if (sv_parse_arg(P, &pat))
            return P->err;
        if (active && !*dead && !*run) {
            sv_value_t v = {0};
            if (sv_eval(P, pat, &v) == 0 && subject)
                sv_case_match(P, &v, subject, run);
            else if (P->err == 0)
                *run = sv_truthy(&v);
            sv_cfg_value_free(&v);
        }
        sv_node_free(pat);
        if (P->err == SOFT_FAIL) { /* soften now: the rest of the list still has to be read */
            *dead = true;
            *run = false;
            soften(P, line, "case (all its branches)");
        }
        if ((more = P->tok.type == T_COMMA)) {
            sv_next(P);
            sv_skip_newlines(P);
        }
    }
    if (sv_tok_is(&P->tok, "then"))
        sv_next(P);
    return P->err;
}

/* case [SUBJECT] (when A, B [then] BODY)+ [else BODY] end */
static int parse_case(parser_t *P, bool active)
{
    int line = P->tok.line;
    node_t *subj_node = NULL;
    sv_value_t subject = {0};
    bool dead = false, taken = false;
    sv_next(P);
    int rc = P->tok.type == T_NL || P->tok.type == T_SEMI ? 0 : sv_parse_expr(P, &subj_node);
    if (rc == 0 && active && subj_node && sv_eval(P, subj_node, &subject) == SOFT_FAIL) {
        dead = true;
        rc = soften(P, line, "case (all its branches)");
    }
    sv_node_free(subj_node);
    while (P->tok.type == T_NL || P->tok.type == T_SEMI)
        sv_next(P);
    if (rc == 0 && !sv_tok_is(&P->tok, "when"))
        rc = sv_unexpected(P, "'when'");
    rc = rc ? rc : sv_enter(P);
    while (rc == 0 && sv_tok_is(&P->tok, "when")) {
        bool run = false;
        int wline = P->tok.line;
        sv_next(P);
        rc = when_matches(P, subj_node ? &subject : NULL, active && !taken, &dead, &run, wline);
        if (rc == 0)
            rc = parse_body(P, run, "case", line);
        taken = taken || run;
    }
    P->nesting--;
    if (rc == 0 && sv_tok_is(&P->tok, "else")) {
        sv_next(P);
        rc = parse_body(P, active && !taken && !dead, "case", line);
    }
    sv_cfg_value_free(&subject);
    if (rc == 0 && !sv_tok_is(&P->tok, "end"))
        rc = sv_unexpected(P, "'when', 'else' or 'end'");
    if (rc == 0)
        sv_next(P);
    return rc ? rc : sv_at_stmt_end(&P->tok) ? P->err : sv_unexpected(P, "end of line");
}

/* def NAME ... end: remembered, so calls to it are skipped with a clear warning. */
static int parse_def(parser_t *P)
{
    int line = P->tok.line;
    const tok_t *name = sv_peek(P);
    char n[128];
    snprintf(n, sizeof(n), "%.*s", (int)(name->n < 100 ? name->n : 100), name->p);
    char **defs = realloc(P->defs, (size_t)(P->ndefs + 1) * sizeof(*defs));
    if (!defs)
        return sv_poom(P);
    P->defs = defs;
    if (!(P->defs[P->ndefs] = strdup(n)))
        return sv_poom(P);
    P->ndefs++;
    warn_at(P, line, "'def %s' skipped: serval does not run Ruby methods; statements calling %s are skipped "
                     "too", n, n);
    return sv_skip_ruby(P, true);
}

static bool is_ruby_block_kw(const tok_t *t)
{
    static const char *const kws[] = {"begin", "while", "until", "for", "class", "module"};
    for (size_t i = 0; i < sizeof(kws) / sizeof(kws[0]); i++)
        if (sv_tok_is(t, kws[i]))
            return true;
    return false;
}

static int parse_statement(parser_t *P, bool active)
{
    const tok_t *t = &P->tok;
    int line = t->line;
    if (sv_tok_is(t, "if") || sv_tok_is(t, "unless"))
        return parse_if(P, active);
    if (sv_tok_is(t, "case"))
        return parse_case(P, active);
    if (sv_tok_is(t, "def"))
        return parse_def(P);
    if (is_ruby_block_kw(t))
        return skip_ruby_stmt(P, line, "serval does not run Ruby code");
    if (t->type == T_OTHER && (*t->p == '@' || *t->p == '$'))
        return skip_ruby_stmt(P, line, "serval does not run Ruby code");
    if ((t->type == T_IDENT || t->type == T_CONST) && !sv_tok_is_kw(t)) {
        const tok_t *after = sv_peek(P);
        if (after->type == T_ASSIGN || (after->type == T_OPASSIGN && t->type == T_IDENT))
            return parse_assign(P, active);
        if (t->type == T_CONST && t->n == 3 && !memcmp(t->p, "ENV", 3) && after->type == T_LBRACK &&
            !after->space)
            return parse_env_assign(P, active);
        if (t->type == T_CONST)
            return skip_ruby_stmt(P, line, "serval does not run Ruby code");
        char name[128];
        snprintf(name, sizeof(name), "%.*s", (int)(t->n < 100 ? t->n : 100), t->p);
        if (after->type == T_COMMA && !after->space && !sv_cfg_lookup(name, false))
            return parse_multi_assign(P, active);
        if (sv_find_var(P, name) && (at_args_end(after) || after->type == T_DOT || after->type == T_SAFENAV))
            return parse_expr_stmt(P, active);
        return parse_directive(P, active);
    }
    static const tok_type_t value_starts[] = {T_INT, T_FLOAT, T_DSTR, T_SSTR, T_SYM, T_WORDS, T_LPAREN,
                                              T_LBRACK, T_BANG, T_MINUS};
    for (size_t i = 0; i < sizeof(value_starts) / sizeof(value_starts[0]); i++)
        if (t->type == value_starts[i] && !sv_tok_is_kw(t))
            return parse_expr_stmt(P, active);
    return sv_unexpected(P, "a directive");
}

/* Statements until end of file, or until end/else/elsif/when when opener is set. */
static int parse_body(parser_t *P, bool active, const char *opener, int open_line)
{
    for (;;) {
        while (!P->err && (P->tok.type == T_NL || P->tok.type == T_SEMI))
            sv_next(P);
        if (P->err)
            return P->err;
        const tok_t *t = &P->tok;
        if (t->type == T_EOF) {
            if (opener)
                return sv_perr(P, open_line, "'%s' has no matching 'end'", opener);
            return 0;
        }
        if (sv_tok_is(t, "end") || sv_tok_is(t, "else") || sv_tok_is(t, "elsif") || sv_tok_is(t, "when")) {
            if (!opener)
                return sv_unexpected(P, "a directive");
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
    for (int i = 0; i < P->ndefs; i++)
        free(P->defs[i]);
    free(P->defs);
}

/*
 * `workers = 4` is valid Ruby that Puma silently ignores: a local variable
 * that nothing reads, named like a directive, is almost surely that mistake.
 */
static void warn_directive_vars(parser_t *P)
{
    for (int i = 0; i < P->nvars && !P->err; i++) {
        const var_t *v = &P->vars[i];
        if (!v->referenced && sv_cfg_lookup(v->name, false))
            warn_at(P, v->line, "'%s = ...' sets a local variable that nothing reads, not the directive "
                                "(hint: %s VALUE, without '=')", v->name, v->name);
    }
}

int sv_config_parse_text(sv_config_t *c, const char *path, const char *text, sv_diag_t *diag)
{
    parser_t P;
    if (!strncmp(text, "\xEF\xBB\xBF", 3)) /* a UTF-8 byte order mark, as some editors write */
        text += 3;
    parser_init(&P, c, path, text, diag);
    if (sv_next(&P) == 0)
        parse_body(&P, true, NULL, 0);
    warn_directive_vars(&P);
    parser_free(&P);
    if (P.err == SOFT_FAIL) /* never left unsoftened; a safety net */
        P.err = sv_cfg_diag(diag, "%s: %s", path, P.soft);
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
    if (sv_next(&P) == 0 && P.tok.type != T_EOF && parse_arglist(&P, &call) == 0 && P.tok.type != T_EOF)
        sv_unexpected(&P, "',' or the end of the arguments");
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
