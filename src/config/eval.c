/*
 * eval.c: expression trees into values, and the few Ruby methods and
 * constants that real puma.rb files use around their directives.
 *
 * What serval does not know (a method, a constant, a block) fails softly
 * (sv_psoft): the statement is skipped with a warning. What is certainly a
 * mistake (an undefined local variable, Integer("abc")) is an error.
 */
#include "config/parse_internal.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/err.h"

/* ---- values ---------------------------------------------------------- */

bool sv_truthy(const sv_value_t *v)
{
    return !(v->type == SV_V_NIL || (v->type == SV_V_BOOL && !v->b));
}

static bool is_num(const sv_value_t *v)
{
    return v->type == SV_V_INT || v->type == SV_V_FLOAT;
}

static double num(const sv_value_t *v)
{
    return v->type == SV_V_INT ? (double)v->i : v->f;
}

void sv_value_set_int(sv_value_t *v, int64_t i)
{
    sv_cfg_value_free(v);
    v->type = SV_V_INT;
    v->i = i;
}

void sv_value_set_float(sv_value_t *v, double f)
{
    sv_cfg_value_free(v);
    v->type = SV_V_FLOAT;
    v->f = f;
}

void sv_value_set_bool(sv_value_t *v, bool b)
{
    sv_cfg_value_free(v);
    v->type = SV_V_BOOL;
    v->b = b;
}

int sv_value_set_str(parser_t *P, sv_value_t *v, char *s)
{
    sv_cfg_value_free(v);
    if (!s)
        return sv_poom(P);
    v->type = SV_V_STR;
    v->s = s;
    return 0;
}

bool sv_values_equal(const sv_value_t *a, const sv_value_t *b)
{
    if (is_num(a) && is_num(b)) {
        if (a->type == SV_V_INT && b->type == SV_V_INT)
            return a->i == b->i;
        return !(num(a) < num(b) || num(a) > num(b));
    }
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case SV_V_NIL: return true;
    case SV_V_BOOL: return a->b == b->b;
    case SV_V_STR:
    case SV_V_SYM: return !strcmp(a->s, b->s);
    case SV_V_ARRAY:
        if (a->npairs != b->npairs)
            return false;
        for (int i = 0; i < a->npairs; i++)
            if (!sv_values_equal(&a->pairs[i].val, &b->pairs[i].val))
                return false;
        return true;
    default: return false;
    }
}

static void shown(const sv_value_t *v, char *out, size_t cap)
{
    sv_cfg_value_inspect(v, out, cap);
}

/* <0, 0, >0 into *cmp; numbers with numbers, strings with strings, as Ruby allows. */
static int compare(parser_t *P, const node_t *n, const sv_value_t *a, const sv_value_t *b, int *cmp)
{
    if (is_num(a) && is_num(b)) {
        double x = num(a), y = num(b);
        *cmp = a->type == SV_V_INT && b->type == SV_V_INT ? (a->i > b->i) - (a->i < b->i) : (x > y) - (x < y);
        return 0;
    }
    if (a->type == SV_V_STR && b->type == SV_V_STR) {
        *cmp = strcmp(a->s, b->s);
        return 0;
    }
    char x[64], y[64];
    shown(a, x, sizeof(x));
    shown(b, y, sizeof(y));
    return sv_perr(P, n->line, "comparison of %s with %s failed (hint: ENV values are strings: "
                               "convert with .to_i or Integer())", x, y);
}

/* Ruby's to_s, as interpolation uses it: nil is "", :sym is "sym". */
char *sv_to_text(const sv_value_t *v)
{
    char tmp[128];
    if (v->type == SV_V_STR || v->type == SV_V_SYM)
        return strdup(v->s);
    if (v->type == SV_V_NIL)
        return strdup("");
    sv_cfg_value_inspect(v, tmp, sizeof(tmp));
    return strdup(tmp);
}

/* ---- variables ------------------------------------------------------- */

var_t *sv_find_var(parser_t *P, const char *name)
{
    for (int i = 0; i < P->nvars; i++)
        if (!strcmp(P->vars[i].name, name))
            return &P->vars[i];
    return NULL;
}

int sv_set_var(parser_t *P, const char *name, sv_value_t *val, int line)
{
    var_t *v = sv_find_var(P, name);
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
        v->line = line;
        v->referenced = false;
        P->nvars++;
    }
    sv_cfg_value_free(&v->val);
    v->val = *val;
    v->unknown_line = 0;
    memset(val, 0, sizeof(*val));
    return 0;
fail:
    sv_cfg_value_free(val);
    return sv_perr(P, line, "out of memory");
}

bool sv_is_def(const parser_t *P, const char *name)
{
    for (int i = 0; i < P->ndefs; i++)
        if (!strcmp(P->defs[i], name))
            return true;
    return false;
}

/* The variable the file assigns whose name is closest to a misspelt one, or NULL. */
static const char *closest_var(const parser_t *P, const char *name)
{
    const char *best = NULL;
    size_t best_d = 3, len = strlen(name);
    for (int i = 0; i < P->nvars; i++) {
        size_t d = sv_cfg_edit_distance(name, P->vars[i].name);
        if (d < best_d && d * 3 <= len) {
            best = P->vars[i].name;
            best_d = d;
        }
    }
    return best;
}

static int eval_var(parser_t *P, const node_t *n, sv_value_t *out)
{
    const var_t *v = sv_find_var(P, n->name);
    if (v && v->unknown_line)
        return sv_psoft(P, "%s could not be evaluated at line %d", n->name, v->unknown_line);
    if (v)
        return sv_cfg_value_copy(out, &v->val) < 0 ? sv_poom(P) : 0;
    /* the guards configs put around JRuby and Windows: serval is on Linux, as MRI would be */
    if (!strcmp(n->name, "RUBY_ENGINE") || !strcmp(n->name, "RUBY_PLATFORM")) {
        struct utsname u;
        char plat[128];
        snprintf(plat, sizeof(plat), "%s-linux", uname(&u) == 0 ? u.machine : "x86_64");
        out->type = SV_V_STR;
        out->s = strdup(n->name[5] == 'E' ? "ruby" : plat);
        return out->s ? 0 : sv_poom(P);
    }
    /* Puma's docs suggest max_keep_alive Float::INFINITY */
    if (!strcmp(n->name, "Float::INFINITY")) {
        out->type = SV_V_FLOAT;
        out->f = HUGE_VAL;
        return 0;
    }
    if (n->name[0] >= 'A' && n->name[0] <= 'Z')
        return sv_psoft(P, "the constant %s is not known to serval", n->name);
    if (sv_is_def(P, n->name))
        return sv_psoft(P, "%s is a method defined in the file, which serval does not run", n->name);
    const char *close = closest_var(P, n->name);
    if (close)
        return sv_perr(P, n->line, "undefined local variable '%s' (did you mean '%s'? or assign it first: %s = value)",
                       n->name, close, n->name);
    /* `environment production`: a word meant as a string */
    return sv_perr(P, n->line, "undefined local variable '%s' (assign it first: %s = value; or, meant as a string, "
                               "quote it: \"%s\")", n->name, n->name, n->name);
}

/* ---- ENV ------------------------------------------------------------- */

static int eval_string_key(parser_t *P, const node_t *n, sv_value_t *key)
{
    if (sv_eval(P, n, key))
        return P->err;
    if (key->type == SV_V_STR)
        return 0;
    char s[96];
    shown(key, s, sizeof(s));
    sv_cfg_value_free(key);
    return sv_perr(P, n->line, "ENV keys are strings, got %s", s);
}

static int eval_env(parser_t *P, const node_t *n, sv_value_t *out)
{
    sv_value_t key = {0};
    if (eval_string_key(P, n->a, &key)) {
        sv_cfg_value_free(&key); /* what sv_eval left there, as its contract says */
        return P->err;
    }
    const char *v = getenv(key.s);
    int rc = 0;
    if (v)
        rc = sv_value_set_str(P, out, strdup(v));
    else if (n->kind == N_FETCH && n->b)
        rc = sv_eval(P, n->b, out);
    else if (n->kind == N_FETCH)
        rc = sv_perr(P, n->line, "ENV variable %s is not set (hint: give a default, ENV.fetch(\"%s\", value))",
                     key.s, key.s);
    else
        out->type = SV_V_NIL;
    sv_cfg_value_free(&key);
    return rc;
}

/* ---- operators ------------------------------------------------------- */

static int eval_logic(parser_t *P, const node_t *n, sv_value_t *out)
{
    if (sv_eval(P, n->a, out))
        return P->err;
    bool t = sv_truthy(out);
    if (n->kind == N_NOT) {
        sv_value_set_bool(out, !t);
        return 0;
    }
    /* || and && yield an operand, as in Ruby: ENV["X"] || 3 is 3 or the string */
    if ((n->kind == N_OR && t) || (n->kind == N_AND && !t))
        return 0;
    sv_cfg_value_free(out);
    return sv_eval(P, n->b, out);
}

static int arith_fail(parser_t *P, const node_t *n, const sv_value_t *a, const sv_value_t *b)
{
    char x[64], y[64];
    shown(a, x, sizeof(x));
    shown(b, y, sizeof(y));
    return sv_perr(P, n->line, "cannot compute %s %s %s (hint: ENV values are strings: convert with .to_i "
                               "or Integer())", x, n->op == T_PLUS ? "+" : n->op == T_MINUS ? "-" :
                               n->op == T_STAR ? "*" : n->op == T_SLASH ? "/" : "%", y);
}

/* Ruby's integer / and % round toward negative infinity. */
static int int_arith(parser_t *P, const node_t *n, int64_t x, int64_t y, sv_value_t *out)
{
    int64_t r = 0;
    bool over = false;
    switch (n->op) {
    case T_PLUS: over = __builtin_add_overflow(x, y, &r); break;
    case T_MINUS: over = __builtin_sub_overflow(x, y, &r); break;
    case T_STAR: over = __builtin_mul_overflow(x, y, &r); break;
    default:
        if (y == 0)
            return sv_perr(P, n->line, "divided by 0");
        if (x == INT64_MIN && y == -1)
            over = true;
        else if (n->op == T_SLASH)
            r = x / y - ((x % y != 0) && ((x < 0) != (y < 0)));
        else
            r = x % y + (((x % y != 0) && ((x < 0) != (y < 0))) ? y : 0);
    }
    if (over)
        return sv_perr(P, n->line, "number too large");
    sv_value_set_int(out, r);
    return 0;
}

static int arith(parser_t *P, const node_t *n, const sv_value_t *a, const sv_value_t *b, sv_value_t *out)
{
    if (n->op == T_PLUS && a->type == SV_V_STR && b->type == SV_V_STR) {
        size_t la = strlen(a->s), lb = strlen(b->s);
        char *s = malloc(la + lb + 1);
        if (s) {
            memcpy(s, a->s, la);
            memcpy(s + la, b->s, lb + 1);
        }
        return sv_value_set_str(P, out, s);
    }
    if (!is_num(a) || !is_num(b))
        return arith_fail(P, n, a, b);
    if (a->type == SV_V_INT && b->type == SV_V_INT)
        return int_arith(P, n, a->i, b->i, out);
    double x = num(a), y = num(b), r;
    switch (n->op) {
    case T_PLUS: r = x + y; break;
    case T_MINUS: r = x - y; break;
    case T_STAR: r = x * y; break;
    case T_SLASH: r = x / y; break;
    default: r = fmod(x, y); break;
    }
    sv_value_set_float(out, r);
    return 0;
}

static int eval_bin(parser_t *P, const node_t *n, sv_value_t *out)
{
    sv_value_t a = {0}, b = {0};
    int cmp = 0;
    if (sv_eval(P, n->a, &a) == 0 && sv_eval(P, n->b, &b) == 0) {
        switch (n->op) {
        case T_EQ: sv_value_set_bool(out, sv_values_equal(&a, &b)); break;
        case T_NE: sv_value_set_bool(out, !sv_values_equal(&a, &b)); break;
        case T_LT:
        case T_LE:
        case T_GT:
        case T_GE:
            if (compare(P, n, &a, &b, &cmp) == 0)
                sv_value_set_bool(out, n->op == T_LT ? cmp < 0 : n->op == T_LE ? cmp <= 0 : n->op == T_GT ? cmp > 0 : cmp >= 0);
            break;
        default: arith(P, n, &a, &b, out); break;
        }
    }
    sv_cfg_value_free(&a);
    sv_cfg_value_free(&b);
    return P->err;
}

/* ---- containers ------------------------------------------------------ */

static int push_elem(parser_t *P, sv_value_t *arr, sv_value_t *v)
{
    sv_pair_t *np = realloc(arr->pairs, (size_t)(arr->npairs + 1) * sizeof(*np));
    if (!np) {
        sv_cfg_value_free(v);
        return sv_poom(P);
    }
    arr->pairs = np;
    np[arr->npairs].key = NULL;
    np[arr->npairs].val = *v;
    arr->npairs++;
    memset(v, 0, sizeof(*v));
    return 0;
}

static int eval_array(parser_t *P, const node_t *n, sv_value_t *out)
{
    out->type = SV_V_ARRAY;
    for (const node_t *e = n->a; e; e = e->next) {
        sv_value_t v = {0};
        if (sv_eval(P, e, &v) || push_elem(P, out, &v)) {
            sv_cfg_value_free(&v);
            return P->err;
        }
    }
    return 0;
}

static int eval_range(parser_t *P, const node_t *n, sv_value_t *out)
{
    sv_value_t lo = {0}, hi = {0};
    out->type = SV_V_RANGE;
    out->b = n->op == 1;
    if ((n->a && sv_eval(P, n->a, &lo)) || push_elem(P, out, &lo) || (n->b && sv_eval(P, n->b, &hi)) ||
        push_elem(P, out, &hi)) {
        sv_cfg_value_free(&lo);
        sv_cfg_value_free(&hi);
        return P->err;
    }
    return 0;
}

static int eval_hash(parser_t *P, const node_t *n, sv_value_t *out)
{
    int count = 0;
    for (const node_t *p = n->a; p; p = p->next)
        count++;
    out->type = SV_V_HASH;
    if (count && !(out->pairs = calloc((size_t)count, sizeof(*out->pairs))))
        return sv_poom(P);
    for (const node_t *p = n->a; p; p = p->next) {
        sv_pair_t *pair = &out->pairs[out->npairs];
        if (!(pair->key = strdup(p->name)))
            return sv_poom(P);
        out->npairs++;
        if (sv_eval(P, p->a, &pair->val))
            return P->err;
    }
    return 0;
}

static int eval_interp(parser_t *P, const node_t *n, sv_value_t *out)
{
    sv_buf_t b = SV_BUF_INIT;
    int rc = sv_buf_puts(&b, "") < 0 ? sv_poom(P) : 0;
    for (const node_t *part = n->a; part && rc == 0; part = part->next) {
        sv_value_t v = {0};
        if ((rc = sv_eval(P, part, &v)) == 0) {
            if (v.type == SV_V_HASH || v.type == SV_V_RANGE)
                rc = sv_psoft(P, "a hash or range inside \"#{}\"");
            char *s = rc ? NULL : sv_to_text(&v);
            if (rc == 0 && (!s || sv_buf_puts(&b, s) < 0))
                rc = sv_poom(P);
            free(s);
        }
        sv_cfg_value_free(&v);
    }
    if (rc == 0)
        rc = sv_value_set_str(P, out, b.data);
    else
        sv_buf_free(&b);
    return rc;
}

/* Ruby's ===: ranges hold, arrays and others equal. */
int sv_case_match(parser_t *P, const sv_value_t *pattern, const sv_value_t *v, bool *match)
{
    *match = false;
    if (pattern->type != SV_V_RANGE) {
        *match = sv_values_equal(pattern, v);
        return 0;
    }
    const sv_value_t *lo = &pattern->pairs[0].val, *hi = &pattern->pairs[1].val;
    bool numeric = is_num(v) && (lo->type == SV_V_NIL || is_num(lo)) && (hi->type == SV_V_NIL || is_num(hi));
    bool text = v->type == SV_V_STR && (lo->type == SV_V_NIL || lo->type == SV_V_STR) &&
                (hi->type == SV_V_NIL || hi->type == SV_V_STR);
    if (!numeric && !text)
        return 0;
    int c = 0;
    node_t dummy = {.line = P->tok.line};
    if (lo->type != SV_V_NIL && (compare(P, &dummy, lo, v, &c) || c > 0))
        return P->err;
    if (hi->type != SV_V_NIL && (compare(P, &dummy, v, hi, &c) || (pattern->b ? c >= 0 : c > 0)))
        return P->err;
    *match = true;
    return 0;
}

/* Evaluates n into *out, which the caller frees (also after an error). */
int sv_eval(parser_t *P, const node_t *n, sv_value_t *out)
{
    memset(out, 0, sizeof(*out));
    if (P->err)
        return P->err;
    switch (n->kind) {
    case N_LIT: return sv_cfg_value_copy(out, &n->lit) < 0 ? sv_poom(P) : 0;
    case N_VAR: return eval_var(P, n, out);
    case N_ENV:
    case N_FETCH: return eval_env(P, n, out);
    case N_CALL: return sv_eval_call(P, n, out);
    case N_OR:
    case N_AND:
    case N_NOT: return eval_logic(P, n, out);
    case N_BIN: return eval_bin(P, n, out);
    case N_NEG:
        if (sv_eval(P, n->a, out))
            return P->err;
        if (out->type == SV_V_INT && out->i != INT64_MIN)
            out->i = -out->i;
        else if (out->type == SV_V_FLOAT)
            out->f = -out->f;
        else
            return sv_perr(P, n->line, "'-' needs a number");
        return 0;
    case N_IF: {
        if (sv_eval(P, n->a, out))
            return P->err;
        bool t = sv_truthy(out);
        sv_cfg_value_free(out);
        const node_t *branch = t ? n->b : n->c;
        return branch ? sv_eval(P, branch, out) : 0;
    }
    case N_RANGE: return eval_range(P, n, out);
    case N_ARRAY: return eval_array(P, n, out);
    case N_HASH: return eval_hash(P, n, out);
    case N_INTERP: return eval_interp(P, n, out);
    case N_ASSIGN: {
        sv_value_t v = {0};
        if (sv_eval(P, n->a, out) || sv_cfg_value_copy(&v, out) < 0)
            return P->err ? P->err : sv_poom(P);
        return sv_set_var(P, n->name, &v, n->line);
    }
    case N_UNSUP: return sv_psoft(P, "%s", n->name);
    case N_PAIR: break;
    }
    return sv_perr(P, n->line, "internal error: bad expression");
}
