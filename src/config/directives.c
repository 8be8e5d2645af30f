/*
 * directives.c: the directive table and everything driven by it.
 *
 * One row per directive: its setter, the field it writes, bounds, argument
 * shape, default text and help. The file parser, the flag and env overlay
 * (through sv_cfg_apply_at), --help, and the stats JSON all read this table,
 * so a directive added here is parsed, overridable, documented and reported
 * at once.
 */
#include "config/internal.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "os/listen.h"
#include "tls/tls.h"

#define DEFAULT_BIND "tcp://0.0.0.0:9292"
/* A year: every duration stays representable in milliseconds as an int. */
#define DUR_MAX 31536000.0
#define NOLIM HUGE_VAL
#define KIB 1024.0
#define MIB (1024.0 * 1024.0)
#define GIB (1024.0 * 1024.0 * 1024.0)

#define FIELD(c, d, type) ((type *)(void *)((char *)(c) + (d)->off))
#define CFIELD(c, d, type) ((const type *)(const void *)((const char *)(c) + (d)->off))

/* ---- values ---------------------------------------------------------- */

void sv_cfg_value_free(sv_value_t *v)
{
    free(v->s);
    for (int i = 0; i < v->npairs; i++) {
        free(v->pairs[i].key);
        sv_cfg_value_free(&v->pairs[i].val);
    }
    free(v->pairs);
    memset(v, 0, sizeof(*v));
}

int sv_cfg_value_copy(sv_value_t *dst, const sv_value_t *src)
{
    *dst = *src;
    dst->s = NULL;
    dst->pairs = NULL;
    dst->npairs = 0;
    if (src->s && !(dst->s = strdup(src->s)))
        goto fail;
    if (src->npairs) {
        dst->pairs = calloc((size_t)src->npairs, sizeof(*dst->pairs));
        if (!dst->pairs)
            goto fail;
        for (int i = 0; i < src->npairs; i++, dst->npairs++) {
            dst->pairs[i].key = src->pairs[i].key ? strdup(src->pairs[i].key) : NULL;
            if ((src->pairs[i].key && !dst->pairs[i].key) ||
                sv_cfg_value_copy(&dst->pairs[i].val, &src->pairs[i].val) < 0) {
                free(dst->pairs[i].key);
                goto fail;
            }
        }
    }
    return 0;
fail:
    sv_cfg_value_free(dst);
    return -ENOMEM;
}

static void fmt_float(double f, char *out, size_t cap)
{
    /* Ruby always shows a float with a fraction: 2.0, not 2 */
    snprintf(out, cap, "%.15g", f);
    if (isfinite(f) && !strpbrk(out, ".e"))
        strncat(out, ".0", cap - strlen(out) - 1);
}

void sv_cfg_value_inspect(const sv_value_t *v, char *out, size_t cap)
{
    switch (v->type) {
    case SV_V_NIL: snprintf(out, cap, "nil"); break;
    case SV_V_BOOL: snprintf(out, cap, "%s", v->b ? "true" : "false"); break;
    case SV_V_INT: snprintf(out, cap, "%lld", (long long)v->i); break;
    case SV_V_FLOAT: fmt_float(v->f, out, cap); break;
    case SV_V_SYM: snprintf(out, cap, ":%s", v->s); break;
    case SV_V_HASH: snprintf(out, cap, "a hash"); break;
    case SV_V_ARRAY: snprintf(out, cap, "an array"); break;
    case SV_V_RANGE: snprintf(out, cap, "a range"); break;
    case SV_V_STR: {
        sv_buf_t b = SV_BUF_INIT;
        if (sv_json_escape(&b, v->s, strlen(v->s)) == 0)
            snprintf(out, cap, "%s", b.data);
        else
            snprintf(out, cap, "a string");
        sv_buf_free(&b);
        break;
    }
    }
}

void sv_cfg_value_raw(const sv_value_t *v, char *out, size_t cap)
{
    if (v->type == SV_V_STR || v->type == SV_V_SYM)
        snprintf(out, cap, "%s", v->s);
    else
        sv_cfg_value_inspect(v, out, cap);
}


/* ---- conversions ----------------------------------------------------- */

static int convert_fail(const sv_value_t *v, const char *what, char *err, size_t cap)
{
    char shown[96];
    sv_cfg_value_inspect(v, shown, sizeof(shown));
    snprintf(err, cap, "%s: cannot convert %s", what, shown);
    return -1;
}

static void become_int(sv_value_t *v, int64_t i)
{
    sv_cfg_value_free(v);
    v->type = SV_V_INT;
    v->i = i;
}

/* Integer(x) is strict, as Ruby raises on "abc" and nil; x.to_i is lenient. */
static int to_integer(sv_value_t *v, bool strict, char *err, size_t cap)
{
    int64_t i = 0;
    if (v->type == SV_V_INT)
        return 0;
    if (v->type == SV_V_FLOAT && isfinite(v->f) && fabs(v->f) < 9.2e18)
        i = (int64_t)v->f;
    else if (v->type == SV_V_STR && strict && sv_cfg_parse_whole(v->s, &i) < 0) /* fills i on success */
        return convert_fail(v, "Integer()", err, cap);
    else if (v->type == SV_V_STR && !strict)
        i = sv_cfg_lenient_int(v->s);
    else if (v->type != SV_V_STR && (strict || v->type != SV_V_NIL))
        return convert_fail(v, strict ? "Integer()" : ".to_i", err, cap);
    become_int(v, i);
    return 0;
}

static int to_float(sv_value_t *v, bool strict, char *err, size_t cap)
{
    double f = 0;
    if (v->type == SV_V_INT) {
        f = (double)v->i;
    } else if (v->type == SV_V_FLOAT) {
        f = v->f;
    } else if (v->type == SV_V_STR && sv_cfg_parse_number(v->s, &f) < 0) {
        if (strict)
            return convert_fail(v, "Float()", err, cap);
        f = strtod(v->s, NULL); /* Ruby's to_f: the leading number, else 0.0 */
    } else if (v->type != SV_V_STR && (strict || v->type != SV_V_NIL)) {
        return convert_fail(v, strict ? "Float()" : ".to_f", err, cap);
    }
    sv_cfg_value_free(v);
    v->type = SV_V_FLOAT;
    v->f = f;
    return 0;
}

static int to_s(sv_value_t *v, char *err, size_t cap)
{
    char tmp[64] = "";
    if (v->type == SV_V_STR || v->type == SV_V_SYM) {
        v->type = SV_V_STR;
        return 0;
    }
    if (v->type == SV_V_HASH)
        return convert_fail(v, ".to_s", err, cap);
    if (v->type != SV_V_NIL)
        sv_cfg_value_inspect(v, tmp, sizeof(tmp));
    char *s = strdup(tmp);
    if (!s)
        return -ENOMEM;
    sv_cfg_value_free(v);
    v->type = SV_V_STR;
    v->s = s;
    return 0;
}

int sv_cfg_convert(sv_value_t *v, const char *how, char *err, size_t cap)
{
    if (!strcmp(how, "Integer") || !strcmp(how, "to_i"))
        return to_integer(v, how[0] == 'I', err, cap);
    if (!strcmp(how, "Float") || !strcmp(how, "to_f"))
        return to_float(v, how[0] == 'F', err, cap);
    if (!strcmp(how, "to_sym")) {
        if (v->type != SV_V_STR && v->type != SV_V_SYM)
            return convert_fail(v, ".to_sym", err, cap);
        v->type = SV_V_SYM;
        return 0;
    }
    return to_s(v, err, cap);
}

/* ---- numbers --------------------------------------------------------- */

static const char *skip_ws(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    return s;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Digits with single '_' separators; returns the end, or NULL on overflow. */
static const char *scan_digits(const char *s, int64_t *v)
{
    *v = 0;
    for (; is_digit(*s) || (*s == '_' && is_digit(s[1]) && s[-1] != '_'); s++) {
        if (*s == '_')
            continue;
        if (*v > (INT64_MAX - (*s - '0')) / 10)
            return NULL;
        *v = *v * 10 + (*s - '0');
    }
    return s;
}

int sv_cfg_parse_whole(const char *s, int64_t *out)
{
    s = skip_ws(s);
    bool neg = *s == '-';
    if (*s == '-' || *s == '+')
        s++;
    if (!is_digit(*s))
        return -1;
    int64_t v;
    const char *end = scan_digits(s, &v);
    if (!end || *skip_ws(end))
        return -1;
    *out = neg ? -v : v;
    return 0;
}

int64_t sv_cfg_lenient_int(const char *s)
{
    s = skip_ws(s);
    bool neg = *s == '-';
    if (*s == '-' || *s == '+')
        s++;
    int64_t v;
    if (!is_digit(*s))
        return 0;
    if (!scan_digits(s, &v))
        return neg ? INT64_MIN : INT64_MAX;
    return neg ? -v : v;
}

int sv_cfg_parse_number(const char *s, double *out)
{
    char *end;
    errno = 0;
    double f = strtod(s, &end);
    if (end == s || *skip_ws(end) || errno || !isfinite(f))
        return -1;
    /* strtod also reads hex and "inf"; a config value is plain decimal */
    for (const char *p = skip_ws(s); p < end; p++)
        if (!is_digit(*p) && !strchr("+-.eE", *p))
            return -1;
    *out = f;
    return 0;
}

/* "65536", "64KB", "64k", "1 MB", "2GiB": 1024-based. */
static int parse_size(const char *s, int64_t *out)
{
    static const struct {
        const char *unit;
        int shift;
    } units[] = {
        {"", 0}, {"b", 0}, {"k", 10}, {"kb", 10}, {"kib", 10}, {"m", 20}, {"mb", 20},
        {"mib", 20}, {"g", 30}, {"gb", 30}, {"gib", 30}, {"t", 40}, {"tb", 40}, {"tib", 40},
    };
    int64_t v;
    const char *p = skip_ws(s);
    if (!is_digit(*p) || !(p = scan_digits(p, &v)))
        return -1;
    p = skip_ws(p);
    char unit[4] = "";
    size_t n = 0;
    while (n < 3 && ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
        unit[n++] = (char)(*p++ | 0x20);
    unit[n] = '\0';
    if (*skip_ws(p))
        return -1;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(unit, units[i].unit))
            continue;
        if (v > (INT64_MAX >> units[i].shift))
            return -1;
        *out = v << units[i].shift;
        return 0;
    }
    return -1;
}

/* 6 -> "6", 0.5 -> "0.5": bounds and values in messages. */
static void fmt_num(double v, char *out, size_t cap)
{
    if (v == floor(v) && fabs(v) < 1e15)
        snprintf(out, cap, "%.0f", v);
    else
        snprintf(out, cap, "%g", v);
}

/* 65536 -> "64KB" where exact, for --help. */
static void fmt_bytes(int64_t v, char *out, size_t cap)
{
    if (v > 0 && v % (int64_t)GIB == 0)
        snprintf(out, cap, "%lldGB", (long long)(v / (int64_t)GIB));
    else if (v > 0 && v % (int64_t)MIB == 0)
        snprintf(out, cap, "%lldMB", (long long)(v / (int64_t)MIB));
    else if (v > 0 && v % (int64_t)KIB == 0)
        snprintf(out, cap, "%lldKB", (long long)(v / (int64_t)KIB));
    else
        snprintf(out, cap, "%lld", (long long)v);
}

int sv_cfg_cpu_count(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* ---- arguments ------------------------------------------------------- */

int sv_cfg_diag(sv_diag_t *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->msg, sizeof(d->msg), fmt, ap);
    va_end(ap);
    for (char *p = d->msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return SV_ECONFIG;
}

int sv_cfg_fail(const sv_site_t *s, const char *fmt, ...)
{
    char msg[SV_DIAG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return sv_cfg_diag(s->diag, "%.*s: %.*s", SV_DIAG_MAX / 4, s->where, SV_DIAG_MAX / 2, msg);
}

void sv_cfg_warn(sv_config_t *c, const char *where, const char *fmt, ...)
{
    char msg[SV_DIAG_MAX];
    sv_diag_t line = {{0}};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    sv_cfg_diag(&line, "%.*s: warning: %.*s", SV_DIAG_MAX / 4, where, SV_DIAG_MAX / 2, msg);
    size_t have = c->warnings ? strlen(c->warnings) : 0, add = strlen(line.msg);
    char *w = realloc(c->warnings, have + add + 2);
    if (!w)
        return; /* a warning lost to a failed allocation at boot; the config itself is intact */
    memcpy(w + have, line.msg, add);
    w[have + add] = '\n';
    w[have + add + 1] = '\0';
    c->warnings = w;
    c->n_warnings++;
}

static int oom(const sv_site_t *s)
{
    return sv_cfg_fail(s, "out of memory");
}

/* A file shows Ruby's view of the value; a flag or env var shows what was typed. */
static int type_error(const sv_directive_t *d, const sv_value_t *v, const char *what, const sv_site_t *s)
{
    char shown[160];
    if (s->raw) {
        sv_cfg_value_raw(v, shown, sizeof(shown));
        return sv_cfg_fail(s, "'%s' is not %s", shown, what);
    }
    sv_cfg_value_inspect(v, shown, sizeof(shown));
    return sv_cfg_fail(s, "%s expects %s, got %s", d->name, what, shown);
}

int sv_cfg_type_error(const sv_directive_t *d, const sv_value_t *v, const char *what, const sv_site_t *s)
{
    return type_error(d, v, what, s);
}

static int want_nargs(const sv_directive_t *d, int n, int lo, int hi, const sv_site_t *s)
{
    if (n >= lo && n <= hi)
        return 0;
    if (lo == hi)
        return sv_cfg_fail(s, "%s expects %d argument%s, got %d", d->name, lo, lo == 1 ? "" : "s", n);
    if (n < lo)
        return sv_cfg_fail(s, "%s expects at least %d argument%s, got %d", d->name, lo, lo == 1 ? "" : "s", n);
    return sv_cfg_fail(s, "%s expects at most %d argument%s, got %d", d->name, hi, hi == 1 ? "" : "s", n);
}

/*
 * ENV values are strings, so "8080" counts as a whole number; so does a
 * whole Float (Concurrent.available_processor_count returns 2.0).
 */
static int want_int(const sv_directive_t *d, const sv_value_t *v, const sv_site_t *s, int64_t *out)
{
    if (v->type == SV_V_INT) {
        *out = v->i;
        return 0;
    }
    if (v->type == SV_V_FLOAT && isfinite(v->f) && fabs(v->f) < 9e15 && v->f == floor(v->f)) {
        *out = (int64_t)v->f;
        return 0;
    }
    if (v->type == SV_V_STR && sv_cfg_parse_whole(v->s, out) == 0)
        return 0;
    return type_error(d, v, "a whole number", s);
}

static int want_size(const sv_directive_t *d, const sv_value_t *v, const sv_site_t *s, int64_t *out)
{
    if (v->type == SV_V_INT) {
        *out = v->i;
        return 0;
    }
    if (v->type == SV_V_STR && parse_size(v->s, out) == 0)
        return 0;
    return type_error(d, v, "a size (bytes, or with a unit: 64KB, 1MB, 2GB)", s);
}

static int want_seconds(const sv_directive_t *d, const sv_value_t *v, const sv_site_t *s, double *out)
{
    if (v->type == SV_V_INT || v->type == SV_V_FLOAT) {
        *out = v->type == SV_V_INT ? (double)v->i : v->f;
        return 0;
    }
    if (v->type == SV_V_STR && sv_cfg_parse_number(v->s, out) == 0)
        return 0;
    return type_error(d, v, "a number of seconds", s);
}

static int want_bool(const sv_directive_t *d, const sv_value_t *v, const sv_site_t *s, bool *out)
{
    if (v->type == SV_V_BOOL || v->type == SV_V_NIL) {
        *out = v->type == SV_V_BOOL && v->b;
        return 0;
    }
    if (v->type == SV_V_STR && (!strcmp(v->s, "true") || !strcmp(v->s, "false"))) {
        *out = !strcmp(v->s, "true");
        return 0;
    }
    return type_error(d, v, "true or false", s);
}

/* Symbols pass too: `environment :production` reads naturally. */
static int want_str(const sv_directive_t *d, const sv_value_t *v, const sv_site_t *s, const char **out)
{
    if (v->type != SV_V_STR && v->type != SV_V_SYM)
        return type_error(d, v, "a string", s);
    if (!v->s[0] && !(d->flags & SV_D_EMPTY_OK))
        return sv_cfg_fail(s, "%s must not be empty", d->name);
    *out = v->s;
    return 0;
}

/* One of a fixed set of words, as :symbol or "string"; *idx is its index. */
static int want_choice(const sv_directive_t *d, const sv_value_t *v, const char *const *words, int nwords,
                       const sv_site_t *s, int *idx)
{
    char what[128] = "";
    for (int i = 0; i < nwords; i++) {
        if ((v->type == SV_V_SYM || v->type == SV_V_STR) && !strcmp(v->s, words[i])) {
            *idx = i;
            return 0;
        }
        size_t n = strlen(what);
        snprintf(what + n, sizeof(what) - n, "%s:%s", i == 0 ? "" : i == nwords - 1 ? " or " : ", ", words[i]);
    }
    return type_error(d, v, what, s);
}

/* Bounds from the table; label names the quantity ("threads minimum"). */
static int check_range(const sv_directive_t *d, const char *label, double v, double lo, double hi,
                       const sv_site_t *s)
{
    char got[48], lim[48];
    fmt_num(v, got, sizeof(got));
    bool gt = d->flags & SV_D_GT;
    if (gt ? !(v > lo) : v < lo) {
        fmt_num(lo, lim, sizeof(lim));
        return sv_cfg_fail(s, "%s must be %s %s (got %s)", label, gt ? "greater than" : "at least", lim, got);
    }
    if (v > hi) {
        fmt_num(hi, lim, sizeof(lim));
        return sv_cfg_fail(s, "%s must be at most %s (got %s)", label, lim, got);
    }
    return 0;
}

static int replace_str(char **field, const char *v, const sv_site_t *s)
{
    char *copy = v ? strdup(v) : NULL;
    if (v && !copy)
        return oom(s);
    free(*field);
    *field = copy;
    return 0;
}

/* ---- generic setters ------------------------------------------------- */

static void store_int(sv_config_t *c, const sv_directive_t *d, int64_t v)
{
    if (d->kind == SV_F_INT)
        *FIELD(c, d, int) = (int)v;
    else if (d->kind == SV_F_I64)
        *FIELD(c, d, int64_t) = v;
    else
        *FIELD(c, d, size_t) = (size_t)v;
}

static int set_int(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n, const sv_site_t *s)
{
    int64_t v = 0;
    int rc = want_nargs(d, n, 1, 1, s);
    if (rc == 0)
        rc = (d->flags & SV_D_BYTES) ? want_size(d, &a[0], s, &v) : want_int(d, &a[0], s, &v);
    if (rc == 0)
        rc = check_range(d, d->name, (double)v, d->lo, d->hi, s);
    if (rc == 0)
        store_int(c, d, v);
    return rc;
}

static int set_dur(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n, const sv_site_t *s)
{
    double v = 0;
    int rc = want_nargs(d, n, 1, 1, s);
    if (rc == 0)
        rc = want_seconds(d, &a[0], s, &v);
    if (rc == 0)
        rc = check_range(d, d->name, v, d->lo, d->hi, s);
    if (rc == 0)
        *FIELD(c, d, double) = v;
    return rc;
}

/* `preload_app!` alone means true, as in Puma. */
static int get_bool_arg(const sv_directive_t *d, const sv_value_t *a, int n, const sv_site_t *s, bool *v)
{
    *v = true;
    int rc = want_nargs(d, n, (d->flags & SV_D_ARG_REQ) ? 1 : 0, 1, s);
    if (rc == 0 && n == 1)
        rc = want_bool(d, &a[0], s, v);
    return rc;
}

static int set_bool(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n, const sv_site_t *s)
{
    bool v;
    int rc = get_bool_arg(d, a, n, s, &v);
    if (rc == 0)
        *FIELD(c, d, bool) = v;
    return rc;
}

static int set_str(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n, const sv_site_t *s)
{
    const char *v = NULL;
    int rc = want_nargs(d, n, 1, 1, s);
    if (rc == 0)
        rc = want_str(d, &a[0], s, &v);
    return rc ? rc : replace_str(FIELD(c, d, char *), v, s);
}

/* ---- directive setters ----------------------------------------------- */

static int set_workers(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n, const sv_site_t *s)
{
    int rc = want_nargs(d, n, 1, 1, s);
    if (rc)
        return rc;
    if ((a[0].type == SV_V_SYM || a[0].type == SV_V_STR) && !strcmp(a[0].s, "auto")) {
        int cpus = sv_cfg_cpu_count();
        c->workers = cpus > (int)d->hi ? (int)d->hi : cpus;
        return 0;
    }
    /* a CPU quota makes Concurrent.available_processor_count fractional: Puma takes count.to_i */
    if (a[0].type == SV_V_FLOAT && isfinite(a[0].f) && a[0].f >= 1 && a[0].f <= d->hi && a[0].f != floor(a[0].f)) {
        sv_value_t whole = {.type = SV_V_INT, .i = (int64_t)a[0].f};
        char shown[48];
        fmt_num(a[0].f, shown, sizeof(shown));
        sv_cfg_warn(c, s->where, "workers %s taken as %lld, as Puma does (count.to_i)", shown, (long long)whole.i);
        return set_int(c, d, &whole, 1, s);
    }
    if (a[0].type != SV_V_INT && !(a[0].type == SV_V_FLOAT && a[0].f == floor(a[0].f)) &&
        !(a[0].type == SV_V_STR && sv_cfg_parse_whole(a[0].s, &(int64_t){0}) == 0))
        return type_error(d, &a[0], s->raw ? "a whole number" : "a whole number or :auto", s);
    return set_int(c, d, a, n, s);
}

static int set_threads(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n, const sv_site_t *s)
{
    int64_t lo = 0, hi = 0;
    int rc = want_nargs(d, n, 1, 2, s);
    if (rc == 0)
        rc = want_int(d, &a[0], s, &lo);
    hi = lo;
    if (rc == 0 && n == 2)
        rc = want_int(d, &a[1], s, &hi);
    if (rc == 0)
        rc = check_range(d, "threads minimum", (double)lo, 0, d->hi, s);
    if (rc == 0)
        rc = check_range(d, "threads maximum", (double)hi, 1, d->hi, s);
    if (rc == 0 && lo > hi)
        rc = sv_cfg_fail(s, "threads minimum (%lld) must not exceed the maximum (%lld)", (long long)lo,
                         (long long)hi);
    if (rc == 0) {
        c->min_threads = (int)lo;
        c->max_threads = (int)hi;
    }
    return rc;
}

static int add_bind(sv_config_t *c, const char *uri, const sv_site_t *s)
{
    sv_bind_t b;
    char err[SV_DIAG_MAX / 2];
    if (sv_bind_parse(uri, &b, err, sizeof(err)) < 0)
        return sv_cfg_fail(s, "%s", err);
    if (b.ssl) {
        sv_tls_opts_t o;
        if (strlen(uri) > SV_TLS_URI_MAX)
            return sv_cfg_fail(s, "bind '%.80s...': longer than %d bytes (hint: shorter certificate paths, or a "
                                  "symlink to their directory)", uri, SV_TLS_URI_MAX);
        int rc = sv_tls_opts_parse(uri, &o, err, sizeof(err));
        if (rc == -ENOMEM)
            return oom(s);
        if (rc < 0)
            return sv_cfg_fail(s, "%s", err);
        sv_tls_opts_free(&o);
    }
    for (int i = 0; i < c->n_binds; i++)
        if (!strcmp(c->binds[i], uri))
            return sv_cfg_fail(s, "bind '%s' is given twice", uri);
    if (c->n_binds == SV_CONFIG_MAX_BINDS)
        return sv_cfg_fail(s, "too many binds (at most %d)", SV_CONFIG_MAX_BINDS);
    if (!(c->binds[c->n_binds] = strdup(uri)))
        return oom(s);
    c->n_binds++;
    return 0;
}

static int set_bind(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n, const sv_site_t *s)
{
    const char *uri = NULL;
    int rc = want_nargs(d, n, 1, 1, s);
    if (rc == 0)
        rc = want_str(d, &a[0], s, &uri);
    return rc ? rc : add_bind(c, uri, s);
}

static int set_port(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n, const sv_site_t *s)
{
    int64_t port = 0;
    const char *host = "0.0.0.0";
    int rc = want_nargs(d, n, 1, 2, s);
    if (rc == 0)
        rc = want_int(d, &a[0], s, &port);
    if (rc == 0)
        rc = check_range(d, d->name, (double)port, d->lo, d->hi, s);
    if (rc == 0 && n == 2)
        rc = want_str(d, &a[1], s, &host);
    if (rc)
        return rc;
    char uri[320];
    bool bracket = strchr(host, ':') && host[0] != '[';
    snprintf(uri, sizeof(uri), "tcp://%s%.260s%s:%lld", bracket ? "[" : "", host, bracket ? "]" : "",
             (long long)port);
    return add_bind(c, uri, s);
}

/* Append a %-encoded ssl:// query value (the separators and % itself). */
static void put_query_value(sv_buf_t *b, const char *v)
{
    for (const char *p = v; *p; p++) {
        if (strchr("%&=?# ", *p))
            sv_buf_printf(b, "%%%02X", (unsigned char)*p);
        else
            sv_buf_putc(b, *p);
    }
}

/*
 * Puma's ssl_bind HOST, PORT, { cert:, key:, ... }: builds the equivalent
 * ssl:// URI, so the options travel with the listener through a hot restart.
 * cert: and key: may repeat (in pairs, in order) for several certificates
 * picked by SNI.
 */
static int set_ssl_bind(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n, const sv_site_t *s)
{
    const char *host = "";
    int64_t port = 0;
    int rc = want_nargs(d, n, 3, 3, s);
    if (rc == 0)
        rc = want_str(d, &a[0], s, &host);
    if (rc == 0)
        rc = want_int(d, &a[1], s, &port);
    if (rc == 0)
        rc = check_range(d, "ssl_bind port", (double)port, 0, 65535, s);
    if (rc == 0 && a[2].type != SV_V_HASH)
        rc = type_error(d, &a[2], "a hash of options such as { cert: \"cert.pem\", key: \"key.pem\" }", s);
    if (rc)
        return rc;
    sv_buf_t uri = SV_BUF_INIT;
    bool bracket = strchr(host, ':') && host[0] != '[';
    sv_buf_printf(&uri, "ssl://%s%s%s:%lld", bracket ? "[" : "", host, bracket ? "]" : "", (long long)port);
    for (int i = 0; i < a[2].npairs; i++) {
        const sv_value_t *v = &a[2].pairs[i].val;
        char num[32];
        const char *str = NULL;
        if (v->type == SV_V_STR || v->type == SV_V_SYM)
            str = v->s;
        else if (v->type == SV_V_BOOL)
            str = v->b ? "true" : "false";
        else if (v->type == SV_V_INT)
            snprintf(num, sizeof(num), "%lld", (long long)v->i), str = num;
        else if (v->type == SV_V_NIL)
            continue;
        else if (v->type == SV_V_HASH && !strcmp(a[2].pairs[i].key, "reuse")) {
            /* Puma's reuse: { size: N, timeout: S } is written reuse=N,S (serval resumes by tickets: no cache to size) */
            int64_t size = -1, timeout = -1;
            for (int k = 0; k < v->npairs; k++) {
                if (v->pairs[k].val.type == SV_V_INT && !strcmp(v->pairs[k].key, "size"))
                    size = v->pairs[k].val.i;
                else if (v->pairs[k].val.type == SV_V_INT && !strcmp(v->pairs[k].key, "timeout"))
                    timeout = v->pairs[k].val.i;
            }
            if (size < 0 && timeout < 0)
                continue;
            num[0] = '\0';
            if (size >= 0)
                snprintf(num, sizeof(num), "%lld", (long long)size);
            if (timeout >= 0)
                snprintf(num + strlen(num), sizeof(num) - strlen(num), ",%lld", (long long)timeout);
            str = num;
        }
        if (!str) {
            sv_buf_free(&uri);
            return sv_cfg_fail(s, "ssl_bind: option %s expects a string", a[2].pairs[i].key);
        }
        const char *key = a[2].pairs[i].key;
        bool pem = !strcmp(key, "cert_pem") || !strcmp(key, "key_pem");
        if (pem) {
            /* Puma's inline PEM: kept in memory, named in the URI as cert=store:N (Puma's spelling) */
            int idx = sv_tls_store_pem(str);
            if (idx < 0) {
                sv_buf_free(&uri);
                return sv_cfg_fail(s, "ssl_bind: %s %s", key, *str ? "cannot be stored (too many inline PEMs)"
                                                                    : "is empty (hint: is its ENV variable set?)");
            }
            snprintf(num, sizeof(num), "store:%d", idx);
            str = num;
        }
        sv_buf_putc(&uri, strchr(uri.data, '?') ? '&' : '?');
        sv_buf_puts(&uri, pem ? (key[0] == 'c' ? "cert" : "key") : key);
        sv_buf_putc(&uri, '=');
        put_query_value(&uri, str);
    }
    rc = uri.data ? add_bind(c, uri.data, s) : oom(s);
    sv_buf_free(&uri);
    return rc;
}

static int check_thresholds(const int64_t *v, int n, const sv_site_t *s)
{
    for (int i = 0; i < n; i++) {
        if (v[i] < 1)
            return sv_cfg_fail(s, "fork_worker request counts must be at least 1 (got %lld; "
                                  "fork_worker 0 alone turns automatic refork off)",
                               (long long)v[i]);
        if (i > 0 && v[i] <= v[i - 1])
            return sv_cfg_fail(s, "fork_worker request counts must be strictly ascending (%lld after %lld)",
                               (long long)v[i], (long long)v[i - 1]);
    }
    return 0;
}

static int set_fork_worker(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n,
                           const sv_site_t *s)
{
    int64_t v[SV_CONFIG_MAX_THRESHOLDS] = {1000};
    int count = n ? n : 1;
    int rc = want_nargs(d, n, 0, SV_CONFIG_MAX_THRESHOLDS, s);
    for (int i = 0; i < n && rc == 0; i++)
        rc = want_int(d, &a[i], s, &v[i]);
    if (rc == 0 && n == 1 && v[0] == 0)
        count = 0;
    if (rc == 0)
        rc = check_thresholds(v, count, s);
    if (rc)
        return rc;
    c->fork_worker = true;
    c->n_refork_thresholds = count;
    memcpy(c->refork_thresholds, v, sizeof(v));
    return 0;
}

/*
 * A token travels unencoded in ?token=T and in the state file's YAML: it is
 * printable ASCII without space, '&', ';', '#', '%', '"', '\\' and at most
 * SV_CONTROL_TOKEN_MAX bytes. Nothing is ever cut silently.
 */
static int check_token(const char *token, const sv_site_t *s)
{
    size_t n = strlen(token);
    if (n > SV_CONTROL_TOKEN_MAX)
        return sv_cfg_fail(s, "control token is %zu bytes, the most is %d (hint: 32 random hex characters "
                              "are plenty; omit the token and serval makes one)", n, SV_CONTROL_TOKEN_MAX);
    for (const char *p = token; *p; p++)
        if (*p <= ' ' || *p > '~' || strchr("&;#%\"\\", *p))
            return sv_cfg_fail(s, "control token has a character that cannot travel in ?token= unencoded "
                                  "(position %zu; hint: use letters, digits and -._~)", (size_t)(p - token) + 1);
    return 0;
}

/* "" and "none" mean no authentication, as in Puma. */
static int store_token(sv_config_t *c, const char *token, const sv_site_t *s)
{
    c->control_no_token = token && (!token[0] || !strcmp(token, "none"));
    if (token && !c->control_no_token) {
        int rc = check_token(token, s);
        if (rc)
            return rc;
    }
    return replace_str(&c->control_token, c->control_no_token ? NULL : token, s);
}

static int check_control_url(const char *url, const sv_site_t *s)
{
    sv_bind_t b;
    char err[SV_DIAG_MAX / 2];
    if (!url)
        return sv_cfg_fail(s, "control URL missing (hint: tcp://127.0.0.1:PORT or unix://PATH)");
    if (!strcmp(url, "auto"))
        return sv_cfg_fail(s, "control URL 'auto' is not supported (hint: give a tcp://127.0.0.1:PORT "
                              "or unix://PATH URL)");
    if (sv_bind_parse(url, &b, err, sizeof(err)) < 0)
        return sv_cfg_fail(s, "control URL: %s", err);
    if (b.ssl) {
        sv_tls_opts_t o;
        int rc = sv_tls_opts_parse(url, &o, err, sizeof(err));
        if (rc < 0)
            return rc == -ENOMEM ? oom(s) : sv_cfg_fail(s, "control URL: %s", err);
        sv_tls_opts_free(&o);
    }
    return 0;
}

typedef struct control_opts {
    const char *token;
    bool no_token;
    bool data_only;
    bool allow_remote;
    const char *data_url;
} control_opts_t;

static int control_options(const sv_directive_t *d, const sv_value_t *h, control_opts_t *o, const sv_site_t *s)
{
    if (h->type != SV_V_HASH)
        return type_error(d, h, "a hash of options such as { auth_token: \"secret\" }", s);
    for (int i = 0; i < h->npairs; i++) {
        const char *k = h->pairs[i].key;
        const sv_value_t *v = &h->pairs[i].val;
        int rc = 0;
        if (!strcmp(k, "auth_token"))
            rc = v->type == SV_V_NIL ? 0 : want_str(&(sv_directive_t){.name = "auth_token", .flags = SV_D_EMPTY_OK},
                                                   v, s, &o->token);
        else if (!strcmp(k, "no_token"))
            rc = want_bool(&(sv_directive_t){.name = "no_token"}, v, s, &o->no_token);
        else if (!strcmp(k, "data_only"))
            rc = want_bool(&(sv_directive_t){.name = "data_only"}, v, s, &o->data_only);
        else if (!strcmp(k, "allow_remote"))
            rc = want_bool(&(sv_directive_t){.name = "allow_remote"}, v, s, &o->allow_remote);
        else if (!strcmp(k, "data_url"))
            rc = v->type == SV_V_NIL ? 0 : want_str(&(sv_directive_t){.name = "data_url"}, v, s, &o->data_url);
        else if (strcmp(k, "umask"))
            rc = sv_cfg_fail(s, "activate_control_app: unknown option '%s' (known: auth_token, no_token, "
                                "data_only, data_url, allow_remote, umask)", k);
        if (rc)
            return rc;
    }
    return 0;
}

static int set_control(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n, const sv_site_t *s)
{
    const char *url = "auto";
    control_opts_t o = {NULL, false, false, false, NULL};
    int rc = want_nargs(d, n, 0, 2, s);
    if (rc == 0 && n >= 1)
        rc = want_str(d, &a[0], s, &url);
    if (rc == 0 && n == 2)
        rc = control_options(d, &a[1], &o, s);
    if (rc == 0)
        rc = check_control_url(url, s);
    if (rc == 0 && o.data_url)
        rc = check_control_url(o.data_url, s);
    if (rc == 0)
        rc = replace_str(&c->control_url, url, s);
    if (rc == 0)
        rc = replace_str(&c->control_data_url, o.data_url, s);
    if (rc == 0)
        rc = store_token(c, o.no_token ? "none" : o.token, s);
    c->control_data_only = o.data_only;
    c->control_allow_remote = o.allow_remote;
    return rc;
}

/* The one argument of control_url/control_data_url: a string and a control URL serval can serve. */
static int get_control_url_arg(const sv_directive_t *d, const sv_value_t *a, int n, const sv_site_t *s,
                               const char **url)
{
    int rc = want_nargs(d, n, 1, 1, s);
    if (rc == 0)
        rc = want_str(d, &a[0], s, url);
    return rc ? rc : check_control_url(*url, s);
}

static int set_control_data_url(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n,
                                const sv_site_t *s)
{
    const char *url = NULL;
    int rc = get_control_url_arg(d, a, n, s, &url);
    return rc ? rc : replace_str(&c->control_data_url, url, s);
}

static int set_control_url(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n,
                           const sv_site_t *s)
{
    const char *url = NULL;
    int rc = get_control_url_arg(d, a, n, s, &url);
    return rc ? rc : replace_str(&c->control_url, url, s);
}

static int set_control_token(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n,
                             const sv_site_t *s)
{
    const char *token = NULL;
    int rc = want_nargs(d, n, 1, 1, s);
    if (rc == 0)
        rc = want_str(d, &a[0], s, &token);
    return rc ? rc : store_token(c, token, s);
}

/* Puma keeps one setting: quiet is the opposite of log_requests. */
static int set_quiet(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n, const sv_site_t *s)
{
    bool v;
    int rc = get_bool_arg(d, a, n, s, &v);
    if (rc == 0) {
        c->quiet = v;
        c->log_requests = !v;
    }
    return rc;
}

static int set_log_requests(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n,
                            const sv_site_t *s)
{
    bool v;
    int rc = get_bool_arg(d, a, n, s, &v);
    if (rc == 0) {
        c->log_requests = v;
        c->quiet = !v;
    }
    return rc;
}

static int want_path_or_nil(const sv_directive_t *d, const sv_value_t *v, const sv_site_t *s, const char **out)
{
    *out = NULL;
    return v->type == SV_V_NIL ? 0 : want_str(d, v, s, out);
}

static int set_redirect(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n, const sv_site_t *s)
{
    const char *out = NULL, *err = NULL;
    bool append = false;
    int rc = want_nargs(d, n, 1, 3, s);
    if (rc == 0)
        rc = want_path_or_nil(d, &a[0], s, &out);
    if (rc == 0 && n >= 2)
        rc = want_path_or_nil(d, &a[1], s, &err);
    if (rc == 0 && n == 3)
        rc = want_bool(d, &a[2], s, &append);
    if (rc == 0)
        rc = replace_str(&c->stdout_redirect, out, s);
    if (rc == 0)
        rc = replace_str(&c->stderr_redirect, err, s);
    if (rc == 0)
        c->redirect_append = append;
    return rc;
}

static int set_force_shutdown(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n,
                              const sv_site_t *s)
{
    static const char *const words[] = {"forever", "immediately"};
    int rc = want_nargs(d, n, 1, 1, s);
    if (rc)
        return rc;
    if (a[0].type == SV_V_NIL || a[0].type == SV_V_BOOL || a[0].type == SV_V_HASH)
        return type_error(d, &a[0], "a number of seconds, :forever or :immediately", s);
    if (a[0].type == SV_V_SYM || (a[0].type == SV_V_STR && sv_cfg_parse_number(a[0].s, &(double){0}) < 0)) {
        int idx = 0;
        if ((rc = want_choice(d, &a[0], words, 2, s, &idx)))
            return rc;
        c->force_shutdown_after = idx == 0 ? -1 : 0;
        return 0;
    }
    return set_dur(c, d, a, n, s);
}

static int set_wait_less(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n,
                         const sv_site_t *s)
{
    int rc = want_nargs(d, n, 0, 1, s);
    if (rc == 0 && n == 0)
        c->wait_for_less_busy_worker = 0.005;
    return rc || n == 0 ? rc : set_dur(c, d, a, n, s);
}

static int set_order(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n, const sv_site_t *s)
{
    static const char *const words[] = {"surge", "stop_first"};
    int idx = 0;
    int rc = want_nargs(d, n, 1, 1, s);
    if (rc == 0)
        rc = want_choice(d, &a[0], words, 2, s, &idx);
    if (rc == 0)
        c->phased_restart_surge = idx == 0;
    return rc;
}

static int set_log_format(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n,
                          const sv_site_t *s)
{
    int idx = 0;
    int rc = want_nargs(d, n, 1, 1, s);
    if (rc == 0)
        rc = want_choice(d, &a[0], sv_log_format_names, 3, s, &idx);
    if (rc == 0)
        c->log_format = idx;
    return rc;
}

static int set_culling(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n, const sv_site_t *s)
{
    static const char *const words[] = {"youngest", "oldest"};
    int idx = 0;
    int rc = want_nargs(d, n, 1, 1, s);
    if (rc == 0)
        rc = want_choice(d, &a[0], words, 2, s, &idx);
    if (rc == 0)
        c->worker_culling_strategy = idx == 0 ? SV_CULL_YOUNGEST : SV_CULL_OLDEST;
    return rc;
}

static int set_max_requests(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n,
                            const sv_site_t *s)
{
    int64_t max = 0, jitter = 0;
    int rc = want_nargs(d, n, 1, 2, s);
    if (rc == 0)
        rc = want_int(d, &a[0], s, &max);
    if (rc == 0 && n == 2)
        rc = want_int(d, &a[1], s, &jitter);
    if (rc == 0)
        rc = check_range(d, "max_requests", (double)max, 0, d->hi, s);
    if (rc == 0)
        rc = check_range(d, "max_requests jitter", (double)jitter, 0, d->hi, s);
    if (rc == 0) {
        c->max_requests = max;
        c->max_requests_jitter = jitter;
    }
    return rc;
}

static int set_plugin(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n, const sv_site_t *s)
{
    int rc = want_nargs(d, n, 1, 1, s);
    if (rc)
        return rc;
    const sv_value_t *v = &a[0];
    if ((v->type == SV_V_SYM || v->type == SV_V_STR) && !strcmp(v->s, "tmp_restart")) {
        c->tmp_restart = true;
        return 0;
    }
    if (v->type == SV_V_SYM || v->type == SV_V_STR) {
        sv_cfg_warn(c, s->where, "plugin :%s is a Ruby plugin, which serval cannot run: skipped (hint: only "
                                 "plugin :tmp_restart is built in; run what the plugin ran as its own service)",
                    v->s);
        return 0;
    }
    return type_error(d, v, "a plugin name such as :tmp_restart", s);
}

/* ---- Puma directives read for compatibility ---------------------------- */

/*
 * Each either maps onto what serval does, or warns that the value asked for
 * is not what serval does; none is silently ignored.
 */
static int set_compat_bool(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n,
                           const sv_site_t *s)
{
    bool v;
    int rc = get_bool_arg(d, a, n, s, &v);
    if (rc)
        return rc;
    if (!strcmp(d->name, "daemonize")) {
        if (v)
            return sv_cfg_fail(s, "daemonize is not supported by serval (hint: it was removed in Puma 5: run "
                                  "serval in the foreground under systemd or another supervisor)");
        sv_cfg_warn(c, s->where, "daemonize false does nothing: serval never daemonizes (hint: delete the line)");
    } else if (!strcmp(d->name, "enable_keep_alives")) {
        if (!v)
            c->max_keep_alive = 1; /* one request per connection: keep-alive off */
    } else if (!strcmp(d->name, "drain_on_shutdown")) {
        if (!v)
            sv_cfg_warn(c, s->where, "drain_on_shutdown false is not honoured: serval always finishes the "
                                     "requests it has accepted on a graceful stop (hint: force_shutdown_after)");
    } else if (!strcmp(d->name, "raise_exception_on_sigterm")) {
        if (v)
            sv_cfg_warn(c, s->where, "raise_exception_on_sigterm true is not honoured: serval exits 0 after a "
                                     "graceful stop on TERM (hint: delete the line)");
    } else if (!strcmp(d->name, "queue_requests")) {
        if (!v)
            sv_cfg_warn(c, s->where, "queue_requests false is not honoured: serval always reads a request in "
                                     "its event loop before a thread takes it (hint: delete the line)");
    }
    return 0;
}

/* Puma's request-body limit: serval's max_body_size (nil = unlimited). */
static int set_content_length_limit(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n,
                                    const sv_site_t *s)
{
    int64_t v = 0;
    int rc = want_nargs(d, n, 1, 1, s);
    if (rc == 0 && a[0].type != SV_V_NIL)
        rc = want_size(d, &a[0], s, &v);
    if (rc == 0)
        rc = check_range(d, d->name, (double)v, 0, NOLIM, s);
    if (rc == 0)
        c->max_body_size = v;
    return rc;
}

static int set_clear_binds(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n,
                           const sv_site_t *s)
{
    int rc = want_nargs(d, n, 0, 0, s);
    if (rc == 0)
        sv_cfg_clear_binds(c);
    return rc;
}

/* ---- values shown in stats ------------------------------------------- */

static void show_field(const sv_config_t *c, const sv_directive_t *d, sv_json_t *w)
{
    switch (d->kind) {
    case SV_F_INT: sv_json_int(w, *CFIELD(c, d, int)); break;
    case SV_F_I64: sv_json_int(w, *CFIELD(c, d, int64_t)); break;
    case SV_F_SIZE: sv_json_uint(w, *CFIELD(c, d, size_t)); break;
    case SV_F_DUR: sv_json_double(w, *CFIELD(c, d, double)); break;
    case SV_F_BOOL: sv_json_bool(w, *CFIELD(c, d, bool)); break;
    case SV_F_STR: sv_json_str(w, *CFIELD(c, d, char *)); break;
    case SV_F_NONE: sv_json_null(w); break;
    }
}

static void show_threads(const sv_config_t *c, const sv_directive_t *d, sv_json_t *w)
{
    sv_json_arr(w);
    sv_json_int(w, c->min_threads);
    sv_json_int(w, c->max_threads);
    sv_json_arr_end(w);
}

static void show_binds(const sv_config_t *c, const sv_directive_t *d, sv_json_t *w)
{
    sv_json_arr(w);
    for (int i = 0; i < sv_config_bind_count(c); i++)
        sv_json_str(w, sv_config_bind(c, i));
    sv_json_arr_end(w);
}

/* false when off, else the refork thresholds ([] = no automatic refork). */
static void show_fork_worker(const sv_config_t *c, const sv_directive_t *d, sv_json_t *w)
{
    if (!c->fork_worker) {
        sv_json_bool(w, false);
        return;
    }
    sv_json_arr(w);
    for (int i = 0; i < c->n_refork_thresholds; i++)
        sv_json_int(w, c->refork_thresholds[i]);
    sv_json_arr_end(w);
}

/* The token itself never leaves the process through stats. */
static void show_control(const sv_config_t *c, const sv_directive_t *d, sv_json_t *w)
{
    if (!c->control_url) {
        sv_json_null(w);
        return;
    }
    sv_json_obj(w);
    sv_json_key(w, "url");
    sv_json_str(w, c->control_url);
    sv_json_key(w, "auth");
    sv_json_str(w, c->control_no_token ? "none" : c->control_token ? "token" : "random");
    if (c->control_data_only) {
        sv_json_key(w, "data_only");
        sv_json_bool(w, true);
    }
    if (c->control_data_url) {
        sv_json_key(w, "data_url");
        sv_json_str(w, c->control_data_url);
    }
    sv_json_obj_end(w);
}

static void show_redirect(const sv_config_t *c, const sv_directive_t *d, sv_json_t *w)
{
    sv_json_obj(w);
    sv_json_key(w, "stdout");
    sv_json_str(w, c->stdout_redirect);
    sv_json_key(w, "stderr");
    sv_json_str(w, c->stderr_redirect);
    sv_json_key(w, "append");
    sv_json_bool(w, c->redirect_append);
    sv_json_obj_end(w);
}

static void show_force_shutdown(const sv_config_t *c, const sv_directive_t *d, sv_json_t *w)
{
    if (c->force_shutdown_after < 0)
        sv_json_str(w, "forever");
    else
        sv_json_double(w, c->force_shutdown_after);
}

static void show_order(const sv_config_t *c, const sv_directive_t *d, sv_json_t *w)
{
    sv_json_str(w, c->phased_restart_surge ? "surge" : "stop_first");
}

static void show_log_format(const sv_config_t *c, const sv_directive_t *d, sv_json_t *w)
{
    sv_json_str(w, sv_log_format_names[c->log_format]);
}

static void show_culling(const sv_config_t *c, const sv_directive_t *d, sv_json_t *w)
{
    sv_json_str(w, c->worker_culling_strategy == SV_CULL_OLDEST ? "oldest" : "youngest");
}

static void show_max_requests(const sv_config_t *c, const sv_directive_t *d, sv_json_t *w)
{
    sv_json_arr(w);
    sv_json_int(w, c->max_requests);
    sv_json_int(w, c->max_requests_jitter);
    sv_json_arr_end(w);
}

static void show_plugin(const sv_config_t *c, const sv_directive_t *d, sv_json_t *w)
{
    sv_json_arr(w);
    if (c->tmp_restart)
        sv_json_str(w, "tmp_restart");
    sv_json_arr_end(w);
}

/* `app_timeout 10` or `app_timeout 10, cleanup: 3` (Pitchfork's `timeout` shape). */
static int set_app_timeout(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n,
                           const sv_site_t *s)
{
    double t = 0, cleanup = c->app_timeout_cleanup;
    int rc = want_nargs(d, n, 1, 2, s);
    if (rc == 0)
        rc = want_seconds(d, &a[0], s, &t);
    if (rc == 0)
        rc = check_range(d, "app_timeout", t, 0, d->hi, s);
    if (rc == 0 && n == 2 && a[1].type != SV_V_HASH)
        rc = type_error(d, &a[1], "cleanup: SECONDS", s);
    for (int i = 0; rc == 0 && n == 2 && i < a[1].npairs; i++) {
        if (strcmp(a[1].pairs[i].key, "cleanup"))
            rc = sv_cfg_fail(s, "app_timeout: unknown option '%s' (known: cleanup)", a[1].pairs[i].key);
        if (rc == 0)
            rc = want_seconds(d, &a[1].pairs[i].val, s, &cleanup);
        if (rc == 0)
            rc = check_range(d, "app_timeout cleanup", cleanup, 0, d->hi, s);
    }
    if (rc == 0) {
        c->app_timeout = t;
        c->app_timeout_cleanup = cleanup;
    }
    return rc;
}

static void show_app_timeout(const sv_config_t *c, const sv_directive_t *d, sv_json_t *w)
{
    sv_json_obj(w);
    sv_json_key(w, "timeout");
    sv_json_double(w, c->app_timeout);
    sv_json_key(w, "cleanup");
    sv_json_double(w, c->app_timeout_cleanup);
    sv_json_obj_end(w);
}

/* ---- the table ------------------------------------------------------- */

#define F(field) offsetof(sv_config_t, field)

static const sv_directive_t table[] = {
    /* process model */
    {"workers", set_workers, show_field, SV_F_INT, F(workers), 0, 1024, 0, "N|:auto", NULL,
     "worker processes; 0 = single mode, :auto = one per CPU"},
    {"threads", set_threads, show_threads, SV_F_NONE, 0, 0, 1024, 0, "MIN, MAX", "0, 5",
     "threads per serving process (threads N means N, N)"},
    {"preload_app!", set_bool, show_field, SV_F_BOOL, F(preload), 0, 0, 0, "[BOOL]", NULL,
     "load the app in the master before forking workers"},
    {"fork_worker", set_fork_worker, show_fork_worker, SV_F_NONE, 0, 0, 0, 0, "[N, ...]",
     "off (N is 1000 when on)",
     "fork workers from worker 0; refork after N requests (several N: at each; 0 = never)"},
    {"nakayoshi_fork", set_bool, show_field, SV_F_BOOL, F(nakayoshi_fork), 0, 0, 0, "[BOOL]", NULL,
     "malloc_trim(0) before each fork"},
    {"worker_culling_strategy", set_culling, show_culling, SV_F_NONE, 0, 0, 0, 0, ":youngest|:oldest",
     ":youngest", "which workers stop first when the count drops"},
    {"silence_single_worker_warning", set_bool, show_field, SV_F_BOOL, F(silence_single_worker_warning), 0,
     0, 0, "", NULL, "no warning for workers 1"},
    /* sockets */
    {"bind", set_bind, show_binds, SV_F_NONE, 0, 0, 0, 0, "\"URI\"", DEFAULT_BIND,
     "listen on tcp://HOST:PORT, tcp://[IPV6]:PORT, unix://PATH[?mode=0600] or ssl://HOST:PORT?cert=PATH&key=PATH; repeatable"},
    {"ssl_bind", set_ssl_bind, NULL, SV_F_NONE, 0, 0, 0, 0, "\"HOST\", PORT, { cert: \"PATH\", key: \"PATH\" }",
     "none", "listen on HOST:PORT with TLS (docs/tls.md has every option); same as bind \"ssl://...\""},
    {"port", set_port, NULL, SV_F_NONE, 0, 0, 65535, 0, "PORT[, \"HOST\"]", "9292",
     "same as bind \"tcp://HOST:PORT\" (HOST defaults to 0.0.0.0)"},
    {"bind_to_activated_sockets", sv_cfg_set_activated_sockets, sv_cfg_show_activated_sockets, SV_F_NONE, 0, 0,
     0, 0, "[true|\"only\"]", "false",
     "listen on the sockets systemd passes (LISTEN_FDS) as well as the binds; \"only\": on those alone"},
    {"set_remote_address", sv_cfg_set_remote_address, sv_cfg_show_remote_address, SV_F_NONE, 0, 0, 0, 0,
     ":socket|\"ADDR\"|proxy_protocol: :v1|:v2|header: \"NAME\"[, trusted_proxies: [...]]", ":socket",
     "who the client is behind a load balancer: a PROXY header, or a forwarded-for header from trusted proxies"},
    /* app */
    {"app", set_str, show_field, SV_F_STR, F(app_path), 0, 0, 0, "\"PATH.so\"", "the built-in hello app",
     "the app shared object (the APP argument)"},
    {"directory", set_str, show_field, SV_F_STR, F(directory), 0, 0, 0, "\"DIR\"", "the starting directory",
     "directory the app runs in; hot restarts return to it"},
    {"environment", set_str, show_field, SV_F_STR, F(environment), 0, 0, 0, "\"ENV\"",
     "$APP_ENV, $RACK_ENV, $RAILS_ENV or development", "the app's environment"},
    {"tag", set_str, show_field, SV_F_STR, F(tag), 0, 0, SV_D_EMPTY_OK, "\"NAME\"", "the directory's name",
     "name shown in the process title"},
    /* control, state */
    {"activate_control_app", set_control, show_control, SV_F_NONE, 0, 0, 0, 0,
     "\"URL\"[, { auth_token: \"T\", no_token: true, data_only: true, data_url: \"URL\" }]", "off",
     "control server for servalctl and pumactl (random token unless given; docs/control.md)"},
    {"state_path", set_str, show_field, SV_F_STR, F(state_path), 0, 0, 0, "\"PATH\"", "none",
     "state file (YAML) for servalctl/pumactl -S"},
    {"pidfile", set_str, show_field, SV_F_STR, F(pidfile), 0, 0, 0, "\"PATH\"", "none",
     "write the master's pid to this file"},
    /* logging */
    {"quiet", set_quiet, show_field, SV_F_BOOL, F(quiet), 0, 0, 0, "[BOOL]", NULL,
     "no request log (the default)"},
    {"log_requests", set_log_requests, show_field, SV_F_BOOL, F(log_requests), 0, 0, 0, "[BOOL]", NULL,
     "log every request to stdout"},
    {"log_format", set_log_format, show_log_format, SV_F_NONE, 0, 0, 0, 0, "\"auto\"|\"iso8601\"|\"plain\"",
     "\"auto\"", "line prefix: ISO-8601 UTC timestamps (auto: unless stdout is a terminal); Puma's log_formatter"},
    {"stdout_redirect", set_redirect, show_redirect, SV_F_NONE, 0, 0, 0, 0, "\"OUT\"[, \"ERR\"[, APPEND]]",
     "none", "send stdout and stderr to files (nil leaves that stream alone; reopened on SIGHUP)"},
    /* client timeouts */
    {"persistent_timeout", set_dur, show_field, SV_F_DUR, F(persistent_timeout), 0, DUR_MAX, SV_D_GT,
     "SECONDS", NULL, "close a keep-alive connection idle this long"},
    {"first_data_timeout", set_dur, show_field, SV_F_DUR, F(first_data_timeout), 0, DUR_MAX, SV_D_GT,
     "SECONDS", NULL, "close a connection whose next request stalls this long (408 once headers are in)"},
    {"request_timeout", set_dur, show_field, SV_F_DUR, F(request_timeout), 0, DUR_MAX, SV_D_GT, "SECONDS",
     NULL, "a whole request head must arrive within this"},
    {"data_rate_grace_period", set_dur, show_field, SV_F_DUR, F(data_rate_grace_period), 0, DUR_MAX, SV_D_GT,
     "SECONDS", NULL, "window over which min_request_data_rate and min_response_data_rate are measured"},
    {"min_request_data_rate", set_int, show_field, SV_F_I64, F(min_request_data_rate), 0, NOLIM, SV_D_BYTES,
     "SIZE", NULL, "bytes per second a request body must keep up (408 below; 0 = off)"},
    {"min_response_data_rate", set_int, show_field, SV_F_I64, F(min_response_data_rate), 0, NOLIM, SV_D_BYTES,
     "SIZE", NULL, "bytes per second a client must read a waiting response at (closed below; 0 = off)"},
    {"shutdown_delay", set_dur, show_field, SV_F_DUR, F(shutdown_delay), 0, DUR_MAX, 0, "SECONDS", NULL,
     "on TERM, answer /readyz 503 and keep serving this long, then stop gracefully (lame duck)"},
    {"force_shutdown_after", set_force_shutdown, show_force_shutdown, SV_F_DUR, F(force_shutdown_after), 0,
     DUR_MAX, 0, "SECONDS|:forever|:immediately", ":forever",
     "on stop, abandon in-flight requests after this"},
    {"app_timeout", set_app_timeout, show_app_timeout, SV_F_NONE, 0, 0, DUR_MAX, 0, "SECONDS[, cleanup: SECONDS]",
     "0 (off), cleanup: 5", "an app call longer than this gets 504 (if nothing was sent) and its worker is replaced"},
    /* worker supervision */
    {"worker_timeout", set_dur, show_field, SV_F_DUR, F(worker_timeout), 6, DUR_MAX, 0, "SECONDS", NULL,
     "kill a worker that has not checked in for this long"},
    {"worker_boot_timeout", set_dur, show_field, SV_F_DUR, F(worker_boot_timeout), 0, DUR_MAX, SV_D_GT,
     "SECONDS", NULL, "kill a worker that has not booted within this"},
    {"worker_shutdown_timeout", set_dur, show_field, SV_F_DUR, F(worker_shutdown_timeout), 0, DUR_MAX, 0,
     "SECONDS", NULL, "SIGKILL a stopping worker after this"},
    {"worker_check_interval", set_dur, show_field, SV_F_DUR, F(worker_check_interval), 0, DUR_MAX, SV_D_GT,
     "SECONDS", NULL, "how often workers check in with the master"},
    {"wait_for_less_busy_worker", set_wait_less, show_field, SV_F_DUR, F(wait_for_less_busy_worker), 0, 1, 0,
     "[SECONDS]", NULL, "a busy worker waits up to this before accepting, so idle ones go first (0 = off)"},
    /* HTTP limits */
    {"max_keep_alive", set_int, show_field, SV_F_INT, F(max_keep_alive), 0, INT_MAX, 0, "N", NULL,
     "requests on one connection before it is closed (0 = unlimited)"},
    {"max_request_line", set_int, show_field, SV_F_SIZE, F(max_request_line), 64, 16 * MIB, SV_D_BYTES,
     "SIZE", NULL, "longest request line (414 beyond)"},
    {"max_header_size", set_int, show_field, SV_F_SIZE, F(max_header_size), 1024, 64 * MIB, SV_D_BYTES,
     "SIZE", NULL, "request line plus headers (431 beyond)"},
    {"max_headers", set_int, show_field, SV_F_INT, F(max_headers), 1, 10000, 0, "N", NULL,
     "header fields in one request (431 beyond)"},
    {"max_body_size", set_int, show_field, SV_F_I64, F(max_body_size), 0, NOLIM, SV_D_BYTES, "SIZE", NULL,
     "largest request body (413 beyond; 0 = unlimited)"},
    {"body_buffer_size", set_int, show_field, SV_F_SIZE, F(body_buffer_size), 1, GIB, SV_D_BYTES, "SIZE",
     NULL, "bodies up to this are held in memory; larger ones in a temp file"},
    {"body_memory_limit", set_int, show_field, SV_F_SIZE, F(body_memory_limit), 0, 64 * GIB, SV_D_BYTES, "SIZE",
     NULL, "request bodies held in memory per process; past it they go to temp files"},
    {"max_response_buffer", set_int, show_field, SV_F_I64, F(max_response_buffer), 0, NOLIM, SV_D_BYTES, "SIZE",
     NULL, "streamed output waiting in temp files for slow clients, per process; past it the app's write waits"},
    /* restarts */
    {"phased_restart_batch", set_int, show_field, SV_F_INT, F(phased_restart_batch), 1, 1024, 0, "N", NULL,
     "workers replaced at a time in a phased restart"},
    {"phased_restart_order", set_order, show_order, SV_F_NONE, 0, 0, 0, 0, ":surge|:stop_first", ":surge",
     "surge boots each new worker before its old one stops; stop_first is Puma's order"},
    {"hot_restart_preflight", set_bool, show_field, SV_F_BOOL, F(hot_restart_preflight), 0, 0, SV_D_ARG_REQ,
     "BOOL", NULL, "run the new binary with --check before a hot restart"},
    {"plugin", set_plugin, show_plugin, SV_F_NONE, 0, 0, 0, 0, ":tmp_restart", "none",
     "hot restart when tmp/restart.txt is touched"},
    /* recycling */
    {"max_requests", set_max_requests, show_max_requests, SV_F_NONE, 0, 0, NOLIM, 0, "N[, JITTER]", "0 (off)",
     "replace a worker after N requests, up to JITTER fewer at random"},
    {"max_worker_memory", set_int, show_field, SV_F_I64, F(max_worker_memory), 0, NOLIM, SV_D_BYTES, "SIZE",
     "0 (off)", "replace a worker whose PSS grows beyond this"},
    /* Puma directives read for compatibility (docs/configuration.md has the full list) */
    {"daemonize", set_compat_bool, NULL, SV_F_NONE, 0, 0, 0, SV_D_COMPAT, "[BOOL]", NULL, NULL},
    {"enable_keep_alives", set_compat_bool, NULL, SV_F_NONE, 0, 0, 0, SV_D_COMPAT, "[BOOL]", NULL, NULL},
    {"drain_on_shutdown", set_compat_bool, NULL, SV_F_NONE, 0, 0, 0, SV_D_COMPAT, "[BOOL]", NULL, NULL},
    {"raise_exception_on_sigterm", set_compat_bool, NULL, SV_F_NONE, 0, 0, 0, SV_D_COMPAT, "[BOOL]", NULL, NULL},
    {"queue_requests", set_compat_bool, NULL, SV_F_NONE, 0, 0, 0, SV_D_COMPAT, "[BOOL]", NULL, NULL},
    {"http_content_length_limit", set_content_length_limit, NULL, SV_F_NONE, 0, 0, 0, SV_D_COMPAT | SV_D_BYTES,
     "SIZE|nil", NULL, NULL},
    {"clear_binds!", set_clear_binds, NULL, SV_F_NONE, 0, 0, 0, SV_D_COMPAT, "", NULL, NULL},
    /* command-line only */
    {"control_url", set_control_url, NULL, SV_F_NONE, 0, 0, 0, SV_D_HIDDEN, "\"URL\"", NULL, NULL},
    {"control_token", set_control_token, NULL, SV_F_NONE, 0, 0, 0, SV_D_HIDDEN | SV_D_EMPTY_OK, "\"T\"", NULL,
     NULL},
    {"control_data_url", set_control_data_url, NULL, SV_F_NONE, 0, 0, 0, SV_D_HIDDEN, "\"URL\"", NULL, NULL},
    {"control_data_only", set_bool, NULL, SV_F_BOOL, F(control_data_only), 0, 0, SV_D_HIDDEN, "[BOOL]", NULL,
     NULL},
    {"control_allow_remote", set_bool, NULL, SV_F_BOOL, F(control_allow_remote), 0, 0, SV_D_HIDDEN, "[BOOL]",
     NULL, NULL},
    {"redirect_stdout", set_str, NULL, SV_F_STR, F(stdout_redirect), 0, 0, SV_D_HIDDEN, "\"PATH\"", NULL,
     NULL},
    {"redirect_stderr", set_str, NULL, SV_F_STR, F(stderr_redirect), 0, 0, SV_D_HIDDEN, "\"PATH\"", NULL,
     NULL},
    {"redirect_append", set_bool, NULL, SV_F_BOOL, F(redirect_append), 0, 0, SV_D_HIDDEN, "[BOOL]", NULL,
     NULL},
};

#define NDIRECTIVES (sizeof(table) / sizeof(table[0]))

const sv_directive_t *sv_cfg_lookup(const char *name, bool hidden_ok)
{
    for (size_t i = 0; i < NDIRECTIVES; i++)
        if (!strcmp(table[i].name, name) && (hidden_ok || !(table[i].flags & SV_D_HIDDEN)))
            return &table[i];
    return NULL;
}

/* ---- names that are not directives ----------------------------------- */

/* Puma hooks (old and new names) and the serval_app_t field that replaces each. */
static const struct {
    const char *puma;
    const char *serval;
} hooks[] = {
    {"on_worker_boot", "on_worker_boot"}, {"before_worker_boot", "on_worker_boot"},
    {"before_fork", "before_fork"}, {"on_worker_shutdown", "on_worker_shutdown"},
    {"before_worker_shutdown", "on_worker_shutdown"}, {"on_worker_fork", "on_worker_fork"},
    {"before_worker_fork", "on_worker_fork"}, {"after_worker_fork", "after_worker_fork"},
    {"after_worker_boot", "after_worker_fork"}, {"on_refork", "on_refork"}, {"before_refork", "on_refork"},
    {"out_of_band", "out_of_band"}, {"on_restart", "on_restart"}, {"before_restart", "on_restart"},
    {"on_booted", "on_booted"}, {"after_booted", "on_booted"}, {"on_stopped", "on_stopped"},
    {"after_stopped", "on_stopped"}, {"after_refork", NULL}, {"after_worker_shutdown", NULL},
    {"before_thread_start", NULL}, {"on_thread_start", NULL}, {"before_thread_exit", NULL},
    {"on_thread_exit", NULL},
};

/* The first rows of unsupported[]: Ruby calls rather than Puma directives. */
#define RUBY_CALLS 13

/*
 * Known Puma directives and Ruby calls serval does not take. Each is skipped
 * with a warning saying why and what to do instead; none is an error, so a
 * Puma user's file still starts (--strict makes them errors).
 */
static const struct {
    const char *name;
    const char *hint;
} unsupported[] = {
    /* Ruby, not configuration */
    {"require", "serval cannot load Ruby code: delete the line"},
    {"require_relative", "serval cannot load Ruby code: delete the line"},
    {"load", "serval reads one config file: pass it with -C"},
    {"puts", "Ruby output; serval does not run it"}, {"print", "Ruby output; serval does not run it"},
    {"p", "Ruby output; serval does not run it"}, {"pp", "Ruby output; serval does not run it"},
    {"warn", "Ruby output; serval does not run it"}, {"sleep", "serval does not run Ruby code"},
    {"at_exit", "serval does not run Ruby code"}, {"raise", "serval does not run Ruby code: check the "
                                                            "condition before starting serval"},
    {"abort", "serval does not run Ruby code"}, {"exit", "serval does not run Ruby code"},
    /* Ruby-only Puma directives */
    {"prune_bundler", "Ruby-only, for Bundler; serval does not need it: delete the line"},
    {"extra_runtime_dependencies", "Ruby-only, for Bundler; serval does not need it: delete the line"},
    {"rackup", "serval loads a shared object, not a Rack app: use app \"path.so\""},
    {"lowlevel_error_handler", "serval answers 500 itself when the app fails; handle errors in the app"},
    {"log_formatter", "it takes a Ruby block; for timestamps use log_format \"iso8601\" (the default when stdout is not a terminal)"},
    {"custom_logger", "it takes a Ruby object; serval writes its own log lines"},
    {"clean_thread_locals", "Ruby thread locals: serval apps keep per-thread state themselves"},
    {"io_selector_backend", "nio4r's backend: serval uses epoll"},
    {"mutate_stdout_and_stderr_to_sync_on_write", "Ruby IO buffering: serval's log writes are unbuffered"},
    {"silence_fork_callback_warning", "serval has no config-file hooks, so there is nothing to silence"},
    {"restart_command", "a hot restart re-executes the serval binary"},
    {"single", "serval runs no Ruby at boot; choose the mode with workers N"},
    {"cluster", "serval runs no Ruby at boot; choose the mode with workers N"},
    {"tcp_mode", "removed in Puma 6; serval speaks HTTP only"},
    {"tcp_mode!", "removed in Puma 6; serval speaks HTTP only"},
    {"debug", "set SERVAL_DEBUG=1 in the environment instead"},
    {"shutdown_debug", "serval has no Ruby thread dump; use servalctl thread-backtraces"},
    {"rack_url_scheme", "serval apps see the scheme of the listener; there is no Rack env"},
    {"fiber_per_request", "Ruby fibers: serval runs each request on a thread"},
    /* Puma features serval does not have */
    {"max_fast_inline", "serval's event loop hands a connection back after each request; see max_keep_alive"},
    {"early_hints", "103 Early Hints are not supported by serval"},
    {"idle_timeout", "serval does not stop itself when idle; use systemd socket activation for that"},
    {"supported_http_methods", "serval passes every method to the app: reject methods there (501)"},
    {"state_permission", "not supported by serval yet: the state file is created 0644; set the directory's "
                         "permissions instead"},
};

static size_t edit_distance(const char *a, const char *b)
{
    size_t lb = strlen(b), row[64];
    if (lb >= sizeof(row) / sizeof(row[0]) || strlen(a) >= 64)
        return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; a[i - 1]; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* The directive closest to a misspelling, or NULL when none is close. */
static const char *suggest(const char *name)
{
    const char *best = NULL;
    size_t best_d = 3, len = strlen(name);
    for (size_t i = 0; i < NDIRECTIVES; i++) {
        if (table[i].flags & SV_D_HIDDEN)
            continue;
        size_t d = edit_distance(name, table[i].name);
        if (d < best_d && d * 3 <= len) {
            best = table[i].name;
            best_d = d;
        }
    }
    return best;
}

int sv_cfg_unknown_message(const char *name, char *out, size_t cap)
{
    for (size_t i = 0; i < sizeof(hooks) / sizeof(hooks[0]); i++) {
        if (strcmp(name, hooks[i].puma))
            continue;
        if (hooks[i].serval)
            snprintf(out, cap, "%s takes a Ruby block, which serval cannot run: skipped (hint: hooks are C "
                               "functions of the app: use the C hook %s in its serval_app_t, see docs/hooks.md)",
                     name, hooks[i].serval);
        else
            snprintf(out, cap, "%s takes a Ruby block, which serval cannot run: skipped (hint: hooks are C "
                               "functions of the app, and serval has no %s hook: see docs/hooks.md)", name, name);
        return 1;
    }
    for (size_t i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++) {
        if (!strcmp(name, unsupported[i].name)) {
            if (i < RUBY_CALLS)
                snprintf(out, cap, "%s is Ruby, which serval cannot run: skipped (hint: %s)", name,
                         unsupported[i].hint);
            else
                snprintf(out, cap, "Puma's %s is not supported by serval: skipped (hint: %s)", name,
                         unsupported[i].hint);
            return 1;
        }
    }
    const char *close = suggest(name);
    if (close)
        snprintf(out, cap, "unknown directive '%s' (did you mean '%s'?)", name, close);
    else
        snprintf(out, cap, "unknown directive '%s' (hint: see docs/configuration.md)", name);
    return 0;
}

/* ---- lifetime -------------------------------------------------------- */

/* Every owned string field except binds, for free and copy. */
static const size_t str_fields[] = {
    F(config_file), F(app_path),      F(directory), F(environment),     F(tag),             F(control_url),
    F(control_token), F(state_path), F(pidfile),   F(stdout_redirect), F(stderr_redirect),
    F(warnings),       F(control_data_url),
    F(remote_address_header), F(remote_address_value), F(trusted_proxies),
};

#define NSTR (sizeof(str_fields) / sizeof(str_fields[0]))
#define STRF(c, i) ((char **)(void *)((char *)(c) + str_fields[i]))
#define CSTRF(c, i) ((char *const *)(const void *)((const char *)(c) + str_fields[i]))

void sv_config_defaults(sv_config_t *c)
{
    memset(c, 0, sizeof(*c));
    c->max_threads = 5;
    c->n_refork_thresholds = 1;
    c->refork_thresholds[0] = 1000;
    /* A config is built at boot: without memory for this there is nothing to run. */
    if (!(c->environment = strdup("development")))
        abort();
    c->quiet = true;
    c->persistent_timeout = 65;
    c->first_data_timeout = 30;
    c->request_timeout = 60;
    c->force_shutdown_after = -1;
    c->app_timeout_cleanup = 5;
    c->worker_timeout = 60;
    c->worker_boot_timeout = 60;
    c->worker_shutdown_timeout = 30;
    c->worker_check_interval = 5;
    c->wait_for_less_busy_worker = 0.005;
    c->max_keep_alive = 1000;
    c->max_request_line = 8 * 1024;
    c->max_header_size = 64 * 1024;
    c->max_headers = 100;
    c->max_body_size = 100 * 1024 * 1024;
    c->body_buffer_size = 1024 * 1024;
    c->body_memory_limit = 32 * 1024 * 1024;
    c->max_response_buffer = 256 * 1024 * 1024;
    c->min_request_data_rate = 240;
    c->min_response_data_rate = 240;
    c->data_rate_grace_period = 5;
    c->phased_restart_batch = 1;
    c->phased_restart_surge = true;
    c->hot_restart_preflight = true;
}

void sv_cfg_clear_binds(sv_config_t *c)
{
    for (int i = 0; i < c->n_binds; i++) {
        free(c->binds[i]);
        c->binds[i] = NULL;
    }
    c->n_binds = 0;
}

void sv_config_free(sv_config_t *c)
{
    for (size_t i = 0; i < NSTR; i++) {
        free(*STRF(c, i));
        *STRF(c, i) = NULL;
    }
    sv_cfg_clear_binds(c);
}

int sv_config_copy(sv_config_t *dst, const sv_config_t *src)
{
    *dst = *src;
    for (size_t i = 0; i < NSTR; i++)
        *STRF(dst, i) = NULL;
    for (int i = 0; i < SV_CONFIG_MAX_BINDS; i++)
        dst->binds[i] = NULL;
    for (size_t i = 0; i < NSTR; i++) {
        const char *s = *CSTRF(src, i);
        if (s && !(*STRF(dst, i) = strdup(s)))
            goto fail;
    }
    for (int i = 0; i < src->n_binds; i++)
        if (!(dst->binds[i] = strdup(src->binds[i])))
            goto fail;
    return 0;
fail:
    sv_config_free(dst);
    return -ENOMEM;
}

int sv_config_bind_count(const sv_config_t *c)
{
    return c->n_binds > 0 ? c->n_binds : 1;
}

const char *sv_config_bind(const sv_config_t *c, int i)
{
    if (c->n_binds == 0)
        return i == 0 ? DEFAULT_BIND : NULL;
    return i >= 0 && i < c->n_binds ? c->binds[i] : NULL;
}

/* ---- cross-field checks ---------------------------------------------- */

static int vfail(const sv_config_t *c, sv_diag_t *diag, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int vfail(const sv_config_t *c, sv_diag_t *diag, const char *fmt, ...)
{
    char msg[SV_DIAG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return sv_cfg_diag(diag, "%.*s: %.*s", SV_DIAG_MAX / 4, c->config_file ? c->config_file : "serval",
                       SV_DIAG_MAX / 2, msg);
}

/* A unix socket or a loopback address (127.0.0.0/8, ::1, localhost). */
static bool local_url(const char *url)
{
    sv_bind_t b;
    char err[128];
    if (sv_bind_parse(url, &b, err, sizeof(err)) < 0)
        return false;
    return b.kind == SV_BIND_UNIX || !strncmp(b.host, "127.", 4) || !strcmp(b.host, "::1") ||
           !strcmp(b.host, "localhost");
}

static int validate_process(const sv_config_t *c, sv_diag_t *diag)
{
    char a[48], b[48];
    if (c->min_threads > c->max_threads)
        return vfail(c, diag, "threads minimum (%d) must not exceed the maximum (%d)", c->min_threads,
                     c->max_threads);
    if (!(c->worker_timeout > c->worker_check_interval)) {
        fmt_num(c->worker_timeout, a, sizeof(a));
        fmt_num(c->worker_check_interval, b, sizeof(b));
        return vfail(c, diag, "worker_timeout (%s) must be greater than worker_check_interval (%s)", a, b);
    }
    if (c->fork_worker && c->workers < 1)
        return vfail(c, diag, "fork_worker needs cluster mode (hint: set workers 1 or more, or pass -w N)");
    if (c->max_requests > 0 && c->max_requests_jitter >= c->max_requests)
        return vfail(c, diag, "max_requests jitter (%lld) must be less than max_requests (%lld)",
                     (long long)c->max_requests_jitter, (long long)c->max_requests);
    if ((c->control_token || c->control_no_token) && !c->control_url)
        return vfail(c, diag, "a control token needs a control server (hint: activate_control_app \"URL\" "
                              "or --control-url URL)");
    if (c->control_data_url && !c->control_url)
        return vfail(c, diag, "a data_url needs a control server (hint: activate_control_app \"URL\", "
                              "{ data_url: \"tcp://0.0.0.0:9294\" }, or a data_only control app alone)");
    if (c->control_url && c->control_no_token && !c->control_data_only && !c->control_allow_remote &&
        !local_url(c->control_url))
        return vfail(c, diag, "control app %.60s has no token and can stop the server: bind loopback or a unix "
                              "socket (hint: add a token; data_only: true / --control-data-only; allow_remote: "
                              "true / --control-allow-remote behind a firewall)", c->control_url);
    return 0;
}

static int validate_limits(const sv_config_t *c, sv_diag_t *diag)
{
    if (c->max_body_size > 0 && (int64_t)c->body_buffer_size > c->max_body_size)
        return vfail(c, diag, "body_buffer_size (%zu) must not exceed max_body_size (%lld)", c->body_buffer_size,
                     (long long)c->max_body_size);
    if (c->max_request_line > c->max_header_size)
        return vfail(c, diag, "max_request_line (%zu) must not exceed max_header_size (%zu)",
                     c->max_request_line, c->max_header_size);
    return 0;
}

int sv_config_validate(const sv_config_t *c, sv_diag_t *diag)
{
    int rc = validate_process(c, diag);
    return rc ? rc : validate_limits(c, diag);
}

/* ---- JSON and help --------------------------------------------------- */

void sv_config_to_json(const sv_config_t *c, sv_json_t *w)
{
    sv_json_obj(w);
    for (size_t i = 0; i < NDIRECTIVES; i++) {
        if (!table[i].show || (table[i].flags & SV_D_HIDDEN))
            continue;
        sv_json_key(w, table[i].name);
        table[i].show(c, &table[i], w);
    }
    sv_json_obj_end(w);
}

/* A directive's default as --help shows it, read from sv_config_defaults. */
static void default_text(const sv_directive_t *d, const sv_config_t *defaults, char *out, size_t cap)
{
    if (d->def) {
        snprintf(out, cap, "%s", d->def);
    } else if (d->flags & SV_D_BYTES) {
        fmt_bytes(d->kind == SV_F_SIZE ? (int64_t)*CFIELD(defaults, d, size_t) : *CFIELD(defaults, d, int64_t),
                  out, cap);
    } else if (d->kind == SV_F_DUR) {
        fmt_num(*CFIELD(defaults, d, double), out, cap);
    } else {
        sv_buf_t b = SV_BUF_INIT;
        sv_json_t w;
        sv_json_init(&w, &b);
        d->show(defaults, d, &w);
        snprintf(out, cap, "%s", w.err || !b.data ? "?" : b.data);
        sv_buf_free(&b);
    }
}

void sv_config_print_help(const char *prog)
{
    sv_config_t defaults;
    sv_config_defaults(&defaults);
    printf("Usage: %s [options] [APP]\n\n"
           "APP is the path of an app shared object; without it serval serves its built-in hello app.\n\n"
           "Options:\n", prog ? prog : "serval");
    sv_cfg_print_flags(stdout);
    printf("\nConfig file directives (config/puma.rb), with their defaults:\n");
    for (size_t i = 0; i < NDIRECTIVES; i++) {
        const sv_directive_t *d = &table[i];
        if (d->flags & (SV_D_HIDDEN | SV_D_COMPAT))
            continue;
        char def[96], head[128];
        default_text(d, &defaults, def, sizeof(def));
        snprintf(head, sizeof(head), "%s %s", d->name, d->args);
        printf("  %-44s default: %s\n      %s\n", head, def, d->help);
    }
    printf("\nEnvironment: WEB_CONCURRENCY (workers, or auto), MIN_THREADS/PUMA_MIN_THREADS, "
           "MAX_THREADS/PUMA_MAX_THREADS,\n  PORT (the default bind's port), APP_ENV/RACK_ENV/RAILS_ENV "
           "(environment).\n"
           "Precedence: defaults < environment < config file < flags. See docs/configuration.md.\n");
    sv_config_free(&defaults);
}
