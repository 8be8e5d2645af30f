/*
 * args.c: reading a directive's arguments, and the one-line diagnostics.
 *
 * Every setter checks its arguments through the readers here (count, type,
 * bounds), so a mistake reads the same for every directive, whether it came
 * from the file ("workers expects a whole number or :auto, got \"abc\"") or
 * from a flag or env var ("'abc' is not a whole number"). Diagnostics are
 * one line each: an error in the caller's sv_diag_t, warnings collected in
 * the config for sv_config_load to print.
 */
#include "config/internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/json.h"

/* ---- diagnostics ----------------------------------------------------- */

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

/* ---- argument readers ------------------------------------------------ */

/* A file shows Ruby's view of the value; a flag or env var shows what was typed. */
int sv_cfg_type_error(const sv_directive_t *d, const sv_value_t *v, const char *what, const sv_site_t *s)
{
    char shown[160];
    if (s->raw) {
        sv_cfg_value_raw(v, shown, sizeof(shown));
        return sv_cfg_fail(s, "'%s' is not %s", shown, what);
    }
    sv_cfg_value_inspect(v, shown, sizeof(shown));
    if (v->type == SV_V_NIL)
        return sv_cfg_fail(s, "%s expects %s, got nil (hint: ENV[\"NAME\"] is nil when NAME is unset: "
                              "ENV.fetch(\"NAME\", DEFAULT) gives a default)", d->name, what);
    return sv_cfg_fail(s, "%s expects %s, got %s", d->name, what, shown);
}

int sv_cfg_want_nargs(const sv_directive_t *d, int n, int lo, int hi, const sv_site_t *s)
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
int sv_cfg_want_int(const sv_directive_t *d, const sv_value_t *v, const sv_site_t *s, int64_t *out)
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
    return sv_cfg_type_error(d, v, "a whole number", s);
}

int sv_cfg_want_size(const sv_directive_t *d, const sv_value_t *v, const sv_site_t *s, int64_t *out)
{
    if (v->type == SV_V_INT) {
        *out = v->i;
        return 0;
    }
    if (v->type == SV_V_STR && sv_cfg_parse_size(v->s, out) == 0)
        return 0;
    return sv_cfg_type_error(d, v, "a size (bytes, or with a unit: 64KB, 1MB, 2GB)", s);
}

int sv_cfg_want_seconds(const sv_directive_t *d, const sv_value_t *v, const sv_site_t *s, double *out)
{
    if (v->type == SV_V_INT || v->type == SV_V_FLOAT) {
        *out = v->type == SV_V_INT ? (double)v->i : v->f;
        return 0;
    }
    if (v->type == SV_V_STR && sv_cfg_parse_number(v->s, out) == 0)
        return 0;
    return sv_cfg_type_error(d, v, "a number of seconds", s);
}

int sv_cfg_want_bool(const sv_directive_t *d, const sv_value_t *v, const sv_site_t *s, bool *out)
{
    if (v->type == SV_V_BOOL || v->type == SV_V_NIL) {
        *out = v->type == SV_V_BOOL && v->b;
        return 0;
    }
    if (v->type == SV_V_STR && (!strcmp(v->s, "true") || !strcmp(v->s, "false"))) {
        *out = !strcmp(v->s, "true");
        return 0;
    }
    return sv_cfg_type_error(d, v, "true or false", s);
}

/* Symbols pass too: `environment :production` reads naturally. */
int sv_cfg_want_str(const sv_directive_t *d, const sv_value_t *v, const sv_site_t *s, const char **out)
{
    if (v->type != SV_V_STR && v->type != SV_V_SYM)
        return sv_cfg_type_error(d, v, "a string", s);
    if (!v->s[0] && !(d->flags & SV_D_EMPTY_OK))
        return sv_cfg_fail(s, "%s must not be empty", d->name);
    *out = v->s;
    return 0;
}

/* One of a fixed set of words, as :symbol or "string"; *idx is its index. */
int sv_cfg_want_choice(const sv_directive_t *d, const sv_value_t *v, const char *const *words, int nwords,
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
    return sv_cfg_type_error(d, v, what, s);
}

/* Bounds from the table; label names the quantity ("threads minimum"). */
int sv_cfg_check_range(const sv_directive_t *d, const char *label, double v, double lo, double hi,
                       const sv_site_t *s)
{
    char got[48], lim[48];
    sv_cfg_fmt_num(v, got, sizeof(got));
    bool gt = d->flags & SV_D_GT;
    if (gt ? !(v > lo) : v < lo) {
        sv_cfg_fmt_num(lo, lim, sizeof(lim));
        return sv_cfg_fail(s, "%s must be %s %s (got %s)", label, gt ? "greater than" : "at least", lim, got);
    }
    if (v > hi) {
        sv_cfg_fmt_num(hi, lim, sizeof(lim));
        return sv_cfg_fail(s, "%s must be at most %s (got %s)", label, lim, got);
    }
    return 0;
}

int sv_cfg_replace_str(char **field, const char *v, const sv_site_t *s)
{
    char *copy = v ? strdup(v) : NULL;
    if (v && !copy)
        return sv_cfg_fail(s, "out of memory");
    free(*field);
    *field = copy;
    return 0;
}

/* `preload_app!` alone means true, as in Puma. */
int sv_cfg_get_bool_arg(const sv_directive_t *d, const sv_value_t *a, int n, const sv_site_t *s, bool *v)
{
    *v = true;
    int rc = sv_cfg_want_nargs(d, n, (d->flags & SV_D_ARG_REQ) ? 1 : 0, 1, s);
    if (rc == 0 && n == 1)
        rc = sv_cfg_want_bool(d, &a[0], s, v);
    return rc;
}
