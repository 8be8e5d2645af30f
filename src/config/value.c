/*
 * value.c: sv_value_t, the values a puma.rb statement evaluates to, and the
 * textual syntax every reader of them shares.
 *
 * Owns a value's lifetime (free, deep copy), how it is shown in messages
 * (Ruby's inspect, or the bare text a flag's user typed), Ruby's
 * conversions (Integer(), Float(), .to_i, .to_s, ...), and the number
 * syntax: whole numbers with '_' separators, plain decimals, sizes with
 * 1024-based units, and their formatting back for --help and messages.
 * No directive is known here.
 */
#include "config/internal.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/json.h"

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
    if (isinf(f)) {
        snprintf(out, cap, "%sInfinity", f < 0 ? "-" : "");
        return;
    }
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
int sv_cfg_parse_size(const char *s, int64_t *out)
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
void sv_cfg_fmt_num(double v, char *out, size_t cap)
{
    if (v == floor(v) && fabs(v) < 1e15)
        snprintf(out, cap, "%.0f", v);
    else
        snprintf(out, cap, "%g", v);
}

/* 65536 -> "64KB" where exact, for --help. */
void sv_cfg_fmt_bytes(int64_t v, char *out, size_t cap)
{
    static const struct {
        int shift;
        const char *unit;
    } units[] = {{30, "GB"}, {20, "MB"}, {10, "KB"}};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (v > 0 && v % ((int64_t)1 << units[i].shift) == 0) {
            snprintf(out, cap, "%lld%s", (long long)(v >> units[i].shift), units[i].unit);
            return;
        }
    }
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
