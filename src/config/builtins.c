/*
 * builtins.c: the Ruby methods and constants puma.rb files call around
 * their directives, and nothing more: conversions and predicates on values,
 * File paths, CPU counts. Anything else is a soft failure: the statement
 * that needs it is skipped with a warning naming it.
 */
#include "config/parse_internal.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/err.h"

typedef struct call_ctx {
    parser_t *P;
    const node_t *n;
    const char *name; /* "to_i", "File.join" */
    sv_value_t *self; /* the receiver, NULL for a function */
    sv_value_t *args;
    int nargs;
} call_ctx_t;

typedef int (*builtin_fn)(call_ctx_t *x, sv_value_t *out);

/* ---- helpers --------------------------------------------------------- */

static int give_copy(parser_t *P, sv_value_t *v, const sv_value_t *src)
{
    sv_cfg_value_free(v);
    return sv_cfg_value_copy(v, src) < 0 ? sv_poom(P) : 0;
}

/* NoMethodError, as Ruby would raise it: a mistake in the file. */
static int no_method(call_ctx_t *x)
{
    char shown[80];
    sv_cfg_value_inspect(x->self, shown, sizeof(shown));
    return sv_perr(x->P, x->n->line, "undefined method '%s' for %s", x->name, shown);
}

static int want_string_arg(call_ctx_t *x, int i, const char **out)
{
    const sv_value_t *v = &x->args[i];
    *out = "";
    if (v->type != SV_V_STR && v->type != SV_V_SYM) {
        char shown[80];
        sv_cfg_value_inspect(v, shown, sizeof(shown));
        return sv_perr(x->P, x->n->line, "%s expects a string, got %s", x->name, shown);
    }
    *out = v->s;
    return 0;
}

static bool blank(const sv_value_t *v)
{
    switch (v->type) {
    case SV_V_NIL: return true;
    case SV_V_BOOL: return !v->b;
    case SV_V_STR:
        for (const char *p = v->s; *p; p++)
            if (!strchr(" \t\n\r\f\v", *p))
                return false;
        return true;
    case SV_V_ARRAY:
    case SV_V_HASH: return v->npairs == 0;
    default: return false;
    }
}

/* ---- methods on values ----------------------------------------------- */

static int m_convert(call_ctx_t *x, sv_value_t *out)
{
    char err[160];
    int rc = sv_cfg_convert(x->self, x->name, err, sizeof(err));
    if (rc == -ENOMEM)
        return sv_poom(x->P);
    if (rc)
        return sv_perr(x->P, x->n->line, "%s", err);
    *out = *x->self;
    memset(x->self, 0, sizeof(*x->self));
    return 0;
}

static int m_identity(call_ctx_t *x, sv_value_t *out)
{
    *out = *x->self;
    memset(x->self, 0, sizeof(*x->self));
    return 0;
}

static int m_predicate(call_ctx_t *x, sv_value_t *out)
{
    const char *m = x->name;
    const sv_value_t *v = x->self;
    if (!strcmp(m, "nil?"))
        sv_value_set_bool(out, v->type == SV_V_NIL);
    else if (!strcmp(m, "blank?"))
        sv_value_set_bool(out, blank(v));
    else if (!strcmp(m, "present?"))
        sv_value_set_bool(out, !blank(v));
    else if (!strcmp(m, "presence"))
        return blank(v) ? 0 : give_copy(x->P, out, v);
    else if (!strcmp(m, "empty?") && (v->type == SV_V_STR || v->type == SV_V_ARRAY || v->type == SV_V_HASH))
        sv_value_set_bool(out, v->type == SV_V_STR ? !v->s[0] : v->npairs == 0);
    else
        return no_method(x);
    return 0;
}

static int m_number(call_ctx_t *x, sv_value_t *out)
{
    const char *m = x->name;
    const sv_value_t *v = x->self;
    if (v->type != SV_V_INT && v->type != SV_V_FLOAT)
        return no_method(x);
    double f = v->type == SV_V_INT ? (double)v->i : v->f;
    if (!strcmp(m, "zero?"))
        sv_value_set_bool(out, f == 0);
    else if (!strcmp(m, "positive?"))
        sv_value_set_bool(out, f > 0);
    else if (!strcmp(m, "negative?"))
        sv_value_set_bool(out, f < 0);
    else if ((!strcmp(m, "even?") || !strcmp(m, "odd?")) && v->type == SV_V_INT)
        sv_value_set_bool(out, (v->i % 2 == 0) == (m[0] == 'e'));
    else if (!strcmp(m, "abs") && v->type == SV_V_INT)
        sv_value_set_int(out, v->i < 0 ? -v->i : v->i);
    else if (v->type == SV_V_INT && strcmp(m, "abs"))
        sv_value_set_int(out, v->i); /* floor, ceil, round of an integer */
    else if (!isfinite(f) || fabs(f) > 9e18)
        return sv_perr(x->P, x->n->line, "%s: number out of range", m);
    else if (!strcmp(m, "abs")) {
        sv_cfg_value_free(out);
        out->type = SV_V_FLOAT;
        out->f = fabs(f);
    } else
        sv_value_set_int(out, (int64_t)(m[0] == 'f' ? floor(f) : m[0] == 'c' ? ceil(f) : round(f)));
    return 0;
}

static int m_include(call_ctx_t *x, sv_value_t *out)
{
    const sv_value_t *v = x->self, *a = &x->args[0];
    bool hit = false;
    if (v->type == SV_V_ARRAY) {
        for (int i = 0; i < v->npairs && !hit; i++)
            hit = sv_values_equal(&v->pairs[i].val, a);
    } else if (v->type == SV_V_RANGE) {
        if (sv_case_match(x->P, v, a, &hit))
            return x->P->err;
    } else if (v->type == SV_V_STR) {
        const char *s = NULL;
        if (want_string_arg(x, 0, &s))
            return x->P->err;
        hit = strstr(v->s, s) != NULL;
    } else if (v->type == SV_V_HASH) {
        for (int i = 0; i < v->npairs && !hit; i++)
            hit = (a->type == SV_V_STR || a->type == SV_V_SYM) && !strcmp(v->pairs[i].key, a->s);
    } else {
        return no_method(x);
    }
    sv_value_set_bool(out, hit);
    return 0;
}

static int m_array(call_ctx_t *x, sv_value_t *out)
{
    const char *m = x->name;
    const sv_value_t *v = x->self;
    if (!strcmp(m, "size") || !strcmp(m, "length") || !strcmp(m, "count")) {
        if (v->type == SV_V_STR)
            sv_value_set_int(out, (int64_t)strlen(v->s));
        else if (v->type == SV_V_ARRAY || v->type == SV_V_HASH)
            sv_value_set_int(out, v->npairs);
        else
            return no_method(x);
        return 0;
    }
    if (v->type != SV_V_ARRAY)
        return no_method(x);
    if (v->npairs == 0)
        return 0; /* [].max, [].first: nil */
    if (!strcmp(m, "first") || !strcmp(m, "last"))
        return give_copy(x->P, out, &v->pairs[m[0] == 'f' ? 0 : v->npairs - 1].val);
    const sv_value_t *best = &v->pairs[0].val;
    for (int i = 1; i < v->npairs; i++) {
        const sv_value_t *e = &v->pairs[i].val;
        double a, b;
        if (e->type == SV_V_STR && best->type == SV_V_STR) {
            int c = strcmp(e->s, best->s);
            best = (m[1] == 'a' ? c > 0 : c < 0) ? e : best;
            continue;
        }
        if ((e->type != SV_V_INT && e->type != SV_V_FLOAT) || (best->type != SV_V_INT && best->type != SV_V_FLOAT))
            return sv_perr(x->P, x->n->line, "%s: the array holds values that do not compare", m);
        a = e->type == SV_V_INT ? (double)e->i : e->f;
        b = best->type == SV_V_INT ? (double)best->i : best->f;
        best = (m[1] == 'a' ? a > b : a < b) ? e : best;
    }
    return give_copy(x->P, out, best);
}

static int m_string(call_ctx_t *x, sv_value_t *out)
{
    const char *m = x->name;
    const sv_value_t *v = x->self;
    if (v->type != SV_V_STR && !(v->type == SV_V_SYM && strcmp(m, "strip")))
        return no_method(x);
    char *s = strdup(v->s);
    if (s && !strcmp(m, "strip")) {
        char *b = s, *e = s + strlen(s);
        while (*b && strchr(" \t\n\r\f\v", *b))
            b++;
        while (e > b && strchr(" \t\n\r\f\v", e[-1]))
            e--;
        memmove(s, b, (size_t)(e - b));
        s[e - b] = '\0';
    }
    bool down = m[0] == 'd';
    for (char *p = s; p && *p && strcmp(m, "strip"); p++) {
        if (down && *p >= 'A' && *p <= 'Z')
            *p = (char)(*p + 32);
        else if (!down && *p >= 'a' && *p <= 'z')
            *p = (char)(*p - 32);
    }
    sv_vtype_t type = v->type;
    int rc = sv_value_set_str(x->P, out, s);
    out->type = type;
    return rc;
}

static int m_affix(call_ctx_t *x, sv_value_t *out)
{
    const char *a = NULL;
    if (x->self->type != SV_V_STR)
        return no_method(x);
    if (want_string_arg(x, 0, &a))
        return x->P->err;
    size_t ls = strlen(x->self->s), la = strlen(a);
    bool hit = la <= ls && !memcmp(x->name[0] == 's' ? x->self->s : x->self->s + ls - la, a, la);
    sv_value_set_bool(out, hit);
    return 0;
}

static int m_split(call_ctx_t *x, sv_value_t *out)
{
    const char *sep = NULL;
    if (x->self->type != SV_V_STR)
        return no_method(x);
    if (x->nargs == 1 && want_string_arg(x, 0, &sep))
        return x->P->err;
    bool ws = !sep || !strcmp(sep, " ");
    out->type = SV_V_ARRAY;
    const char *s = x->self->s;
    while (*s) {
        if (ws)
            while (*s && strchr(" \t\n\r\f\v", *s))
                s++;
        if (!*s)
            break;
        const char *e = ws ? s + strcspn(s, " \t\n\r\f\v") : (*sep ? strstr(s, sep) : s + 1);
        if (!e)
            e = s + strlen(s);
        sv_pair_t *np = realloc(out->pairs, (size_t)(out->npairs + 1) * sizeof(*np));
        char *w = strndup(s, (size_t)(e - s));
        if (!np || !w) {
            free(w);
            if (np)
                out->pairs = np;
            return sv_poom(x->P);
        }
        out->pairs = np;
        memset(&np[out->npairs], 0, sizeof(*np));
        np[out->npairs].val.type = SV_V_STR;
        np[out->npairs].val.s = w;
        out->npairs++;
        s = *e ? e + (ws ? 0 : (*sep ? strlen(sep) : 0)) : e;
    }
    return 0;
}

static int m_index(call_ctx_t *x, sv_value_t *out)
{
    const sv_value_t *v = x->self, *k = &x->args[0];
    if (v->type == SV_V_ARRAY && k->type == SV_V_INT) {
        int64_t i = k->i < 0 ? k->i + v->npairs : k->i;
        return i >= 0 && i < v->npairs ? give_copy(x->P, out, &v->pairs[i].val) : 0;
    }
    if (v->type == SV_V_HASH && (k->type == SV_V_STR || k->type == SV_V_SYM)) {
        for (int i = 0; i < v->npairs; i++)
            if (!strcmp(v->pairs[i].key, k->s))
                return give_copy(x->P, out, &v->pairs[i].val);
        return 0;
    }
    return no_method(x);
}

/* ---- functions ------------------------------------------------------- */

/* Integer(x), Float(x); with `exception: false`, nil instead of an error. */
static int f_convert(call_ctx_t *x, sv_value_t *out)
{
    bool quiet = false;
    if (x->nargs == 2) {
        const sv_value_t *h = &x->args[1];
        for (int i = 0; h->type == SV_V_HASH && i < h->npairs; i++)
            quiet = !strcmp(h->pairs[i].key, "exception") && !sv_truthy(&h->pairs[i].val);
        if (!quiet)
            return sv_perr(x->P, x->n->line, "%s(): serval reads one argument (and exception: false)", x->name);
    }
    char err[160];
    *out = x->args[0];
    memset(&x->args[0], 0, sizeof(x->args[0]));
    int rc = sv_cfg_convert(out, x->name, err, sizeof(err));
    if (rc == -ENOMEM)
        return sv_poom(x->P);
    if (rc && quiet) {
        sv_cfg_value_free(out);
        return 0;
    }
    return rc ? sv_perr(x->P, x->n->line, "%s", err) : 0;
}

static int f_string(call_ctx_t *x, sv_value_t *out)
{
    return sv_value_set_str(x->P, out, sv_to_text(&x->args[0]));
}

/* Ruby's File.expand_path, lexically: "." and ".." resolved, no symlinks followed. */
static char *expand_path(const char *p, const char *base)
{
    char cwd[PATH_MAX];
    sv_buf_t b = SV_BUF_INIT;
    const char *home = getenv("HOME");
    if (p[0] == '~' && (p[1] == '/' || !p[1]) && home)
        sv_buf_printf(&b, "%s/%s", home, p + 1);
    else if (p[0] == '/')
        sv_buf_puts(&b, p);
    else if (base && base[0] == '/')
        sv_buf_printf(&b, "%s/%s", base, p);
    else if (getcwd(cwd, sizeof(cwd)))
        sv_buf_printf(&b, "%s/%s%s%s", cwd, base ? base : "", base ? "/" : "", p);
    if (!b.data)
        return NULL;
    char *out = malloc(strlen(b.data) + 2);
    size_t n = 0;
    for (char *seg = b.data; out && *seg;) {
        char *end = seg + strcspn(seg, "/");
        size_t len = (size_t)(end - seg);
        if (len == 2 && !memcmp(seg, "..", 2)) {
            while (n > 0 && out[--n] != '/')
                ;
        } else if (len > 0 && !(len == 1 && *seg == '.')) {
            out[n++] = '/';
            memcpy(out + n, seg, len);
            n += len;
        }
        seg = *end ? end + 1 : end;
    }
    if (out) {
        if (n == 0)
            out[n++] = '/';
        out[n] = '\0';
    }
    sv_buf_free(&b);
    return out;
}

/* The config file's directory, absolute; the current one for flags. */
static char *config_dir(parser_t *P)
{
    char *abs = expand_path(P->where || !P->path ? "." : P->path, NULL);
    if (!abs || P->where || !P->path)
        return abs;
    char *slash = strrchr(abs, '/');
    if (slash == abs)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    return abs;
}

static int f_file(call_ctx_t *x, sv_value_t *out)
{
    const char *fn = x->name;
    const char *a = NULL, *b = NULL;
    if (!strcmp(fn, "__dir__") || !strcmp(fn, "Dir.pwd"))
        return sv_value_set_str(x->P, out, fn[0] == '_' ? config_dir(x->P) : expand_path(".", NULL));
    if (!strcmp(fn, "__FILE__"))
        return sv_value_set_str(x->P, out, strdup(x->P->where || !x->P->path ? "-" : x->P->path));
    if (want_string_arg(x, 0, &a) || (x->nargs == 2 && want_string_arg(x, 1, &b)))
        return x->P->err;
    if (!strcmp(fn, "File.expand_path") || !strcmp(fn, "File.absolute_path")) {
        char *base = b ? expand_path(b, NULL) : NULL;
        int rc = b && !base ? sv_poom(x->P) : sv_value_set_str(x->P, out, expand_path(a, base));
        free(base);
        return rc;
    }
    if (!strcmp(fn, "File.dirname") || !strcmp(fn, "File.basename")) {
        char *s = strdup(a);
        size_t l = s ? strlen(s) : 0;
        while (l > 1 && s[l - 1] == '/')
            s[--l] = '\0';
        char *slash = s ? strrchr(s, '/') : NULL;
        if (s && fn[5] == 'd' && !slash)
            snprintf(s, l + 1, "%s", l ? "." : "");
        else if (s && fn[5] == 'd')
            slash[slash == s] = '\0'; /* "/x" -> "/", "/a/b" -> "/a" */
        else if (s && slash && l > 1)
            memmove(s, slash + 1, strlen(slash));
        return sv_value_set_str(x->P, out, s);
    }
    struct stat st;
    bool ok = stat(a, &st) == 0;
    if (!strcmp(fn, "File.file?"))
        ok = ok && S_ISREG(st.st_mode);
    else if (!strcmp(fn, "File.directory?") || !strcmp(fn, "Dir.exist?"))
        ok = ok && S_ISDIR(st.st_mode);
    sv_value_set_bool(out, ok);
    return 0;
}

/* File.read(path): a small text file (a PEM for ssl_bind's cert_pem/key_pem), relative to the current directory. */
#define FILE_READ_MAX (1 << 20)
static int f_read(call_ctx_t *x, sv_value_t *out)
{
    const char *path = NULL;
    if (want_string_arg(x, 0, &path))
        return x->P->err;
    FILE *f = fopen(path, "re");
    if (!f)
        return sv_perr(x->P, x->n->line, "File.read(\"%s\"): %s", path, strerror(errno));
    sv_buf_t b = SV_BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0 && b.len <= FILE_READ_MAX)
        sv_buf_append(&b, chunk, n);
    bool bad = ferror(f) || b.len > FILE_READ_MAX || (b.data && memchr(b.data, '\0', b.len));
    fclose(f);
    if (bad) {
        sv_buf_free(&b);
        return sv_perr(x->P, x->n->line, "File.read(\"%s\"): not a text file of at most 1 MB", path);
    }
    if (!b.data)
        sv_buf_puts(&b, "");
    return sv_value_set_str(x->P, out, b.data);
}

/* File.join("a/", "/b", "c") is "a/b/c". */
static int f_join(call_ctx_t *x, sv_value_t *out)
{
    sv_buf_t b = SV_BUF_INIT;
    for (int i = 0; i < x->nargs; i++) {
        const char *s = NULL;
        if (want_string_arg(x, i, &s)) {
            sv_buf_free(&b);
            return x->P->err;
        }
        bool slash_end = b.len > 0 && b.data[b.len - 1] == '/';
        if (i > 0 && slash_end && s[0] == '/')
            s++;
        else if (i > 0 && !slash_end && s[0] != '/')
            sv_buf_putc(&b, '/');
        sv_buf_puts(&b, s);
    }
    if (!b.data)
        sv_buf_puts(&b, "");
    return sv_value_set_str(x->P, out, b.data);
}

/* Distinct cores among the CPUs this process may use (hyperthreads counted once). */
static int physical_cpus(void)
{
    cpu_set_t set;
    char seen[64][64];
    int n = 0;
    if (sched_getaffinity(0, sizeof(set), &set) < 0)
        return sv_cfg_cpu_count();
    for (int cpu = 0; cpu < CPU_SETSIZE && n < 64; cpu++) {
        if (!CPU_ISSET(cpu, &set))
            continue;
        char path[96], line[64] = "";
        snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%d/topology/thread_siblings_list", cpu);
        FILE *f = fopen(path, "re");
        if (!f || !fgets(line, sizeof(line), f))
            snprintf(line, sizeof(line), "cpu%d", cpu);
        if (f)
            fclose(f);
        bool dup = false;
        for (int i = 0; i < n && !dup; i++)
            dup = !strcmp(seen[i], line);
        if (!dup)
            snprintf(seen[n++], sizeof(seen[0]), "%s", line);
    }
    return n > 0 ? n : 1;
}

/* concurrent-ruby's available_processor_count: the CPUs, or a smaller cgroup v2 quota. */
static double available_cpus(void)
{
    double cpus = sv_cfg_cpu_count();
    FILE *f = fopen("/sys/fs/cgroup/cpu.max", "re");
    long long quota = 0, period = 0;
    /* "max 100000" (no quota) fails the scan; "150000 100000" is 1.5 CPUs */
    if (f && fscanf(f, "%lld %lld", &quota, &period) == 2 && quota > 0 && period > 0 &&
        (double)quota / (double)period < cpus)
        cpus = (double)quota / (double)period;
    if (f)
        fclose(f);
    return cpus;
}

static int f_cpus(call_ctx_t *x, sv_value_t *out)
{
    const char *fn = x->name;
    if (strstr(fn, "available")) {
        sv_cfg_value_free(out);
        out->type = SV_V_FLOAT;
        out->f = available_cpus();
    } else {
        sv_value_set_int(out, strstr(fn, "physical") ? physical_cpus() : sv_cfg_cpu_count());
    }
    return 0;
}

static int f_false(call_ctx_t *x, sv_value_t *out)
{
    sv_value_set_bool(out, false);
    return 0;
}

static int f_env_key(call_ctx_t *x, sv_value_t *out)
{
    const char *k = NULL;
    if (want_string_arg(x, 0, &k))
        return x->P->err;
    sv_value_set_bool(out, getenv(k) != NULL);
    return 0;
}

/* ---- the table ------------------------------------------------------- */

static const struct builtin {
    const char *name;
    bool method;
    int min, max;
    builtin_fn fn;
} builtins[] = {
    {"to_i", true, 0, 0, m_convert}, {"to_f", true, 0, 0, m_convert}, {"to_s", true, 0, 0, m_convert},
    {"to_sym", true, 0, 0, m_convert}, {"to_str", true, 0, 0, m_convert},
    {"freeze", true, 0, 0, m_identity}, {"dup", true, 0, 0, m_identity}, {"itself", true, 0, 0, m_identity},
    {"nil?", true, 0, 0, m_predicate}, {"blank?", true, 0, 0, m_predicate},
    {"present?", true, 0, 0, m_predicate}, {"presence", true, 0, 0, m_predicate},
    {"empty?", true, 0, 0, m_predicate},
    {"zero?", true, 0, 0, m_number}, {"positive?", true, 0, 0, m_number}, {"negative?", true, 0, 0, m_number},
    {"even?", true, 0, 0, m_number}, {"odd?", true, 0, 0, m_number}, {"abs", true, 0, 0, m_number},
    {"floor", true, 0, 0, m_number}, {"ceil", true, 0, 0, m_number}, {"round", true, 0, 0, m_number},
    {"include?", true, 1, 1, m_include}, {"member?", true, 1, 1, m_include}, {"cover?", true, 1, 1, m_include},
    {"max", true, 0, 0, m_array}, {"min", true, 0, 0, m_array}, {"first", true, 0, 0, m_array},
    {"last", true, 0, 0, m_array}, {"size", true, 0, 0, m_array}, {"length", true, 0, 0, m_array},
    {"count", true, 0, 0, m_array},
    {"downcase", true, 0, 0, m_string}, {"upcase", true, 0, 0, m_string}, {"strip", true, 0, 0, m_string},
    {"start_with?", true, 1, 1, m_affix}, {"end_with?", true, 1, 1, m_affix},
    {"split", true, 0, 1, m_split}, {"[]", true, 1, 1, m_index},
    {"Integer", false, 1, 2, f_convert}, {"Float", false, 1, 2, f_convert}, {"String", false, 1, 1, f_string},
    {"__dir__", false, 0, 0, f_file}, {"__FILE__", false, 0, 0, f_file}, {"Dir.pwd", false, 0, 0, f_file},
    {"File.expand_path", false, 1, 2, f_file}, {"File.absolute_path", false, 1, 2, f_file},
    {"File.dirname", false, 1, 1, f_file}, {"File.basename", false, 1, 1, f_file},
    {"File.exist?", false, 1, 1, f_file}, {"File.file?", false, 1, 1, f_file},
    {"File.directory?", false, 1, 1, f_file}, {"Dir.exist?", false, 1, 1, f_file},
    {"File.join", false, 1, SV_CFG_MAX_ARGS, f_join},
    {"File.read", false, 1, 1, f_read},
    {"Etc.nprocessors", false, 0, 0, f_cpus}, {"Concurrent.processor_count", false, 0, 0, f_cpus},
    {"Concurrent.physical_processor_count", false, 0, 0, f_cpus},
    {"Concurrent.available_processor_count", false, 0, 0, f_cpus},
    {"ENV.key?", false, 1, 1, f_env_key},
    {"Gem.win_platform?", false, 0, 0, f_false},
};

static const struct builtin *find_builtin(const char *name, bool method)
{
    for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++)
        if (builtins[i].method == method && !strcmp(builtins[i].name, name))
            return &builtins[i];
    return NULL;
}

static int eval_args(parser_t *P, const node_t *n, sv_value_t *args, int *nargs)
{
    *nargs = 0;
    for (const node_t *a = n->args; a; a = a->next) {
        if (*nargs == SV_CFG_MAX_ARGS)
            return sv_perr(P, n->line, "too many arguments (at most %d)", SV_CFG_MAX_ARGS);
        if (sv_eval(P, a, &args[(*nargs)++]))
            return P->err;
    }
    return 0;
}

static int call_unknown(parser_t *P, const node_t *n, const sv_value_t *self)
{
    char shown[64];
    sv_cfg_value_inspect(self, shown, sizeof(shown));
    return sv_psoft(P, "serval does not know the method .%s (called on %s)", n->name, shown);
}

/* Foo.bar on a constant the file did not assign: the function "Foo.bar" (Etc.nprocessors, File.join). */
static bool constant_receiver(parser_t *P, const node_t *n, char *qual, size_t cap)
{
    const node_t *r = n->a;
    if (!r || r->kind != N_VAR || r->name[0] < 'A' || r->name[0] > 'Z' || sv_find_var(P, r->name) ||
        !strncmp(r->name, "RUBY_", 5))
        return false;
    snprintf(qual, cap, "%s.%s", r->name, n->name);
    return true;
}

int sv_eval_call(parser_t *P, const node_t *n, sv_value_t *out)
{
    sv_value_t self = {0}, args[SV_CFG_MAX_ARGS];
    int nargs = 0;
    char qual[200];
    memset(out, 0, sizeof(*out));
    bool method = n->a && !constant_receiver(P, n, qual, sizeof(qual));
    const char *name = n->a && !method ? qual : n->name;
    if (n->op & 2)
        return sv_psoft(P, "%s%s takes a Ruby block, which serval cannot run", method ? "." : "", name);
    if (method && sv_eval(P, n->a, &self)) {
        sv_cfg_value_free(&self);
        return P->err;
    }
    if (method && (n->op & 1) && self.type == SV_V_NIL)
        return 0; /* x&.foo is nil when x is */
    int rc = eval_args(P, n, args, &nargs);
    const struct builtin *b = rc ? NULL : find_builtin(name, method);
    if (rc == 0 && !b && method)
        rc = call_unknown(P, n, &self);
    else if (rc == 0 && !b)
        rc = sv_is_def(P, name) ? sv_psoft(P, "%s is a method defined in the file, which serval does not run", name)
                                : sv_psoft(P, "serval does not know %s", name);
    if (rc == 0 && b && (nargs < b->min || nargs > b->max))
        rc = sv_perr(P, n->line, "%s%s takes %d%s argument%s, got %d", method ? "." : "", name, b->min,
                     b->max > b->min ? " or more" : "", b->max == 1 ? "" : "s", nargs);
    if (rc == 0 && b) {
        call_ctx_t x = {P, n, name, method ? &self : NULL, args, nargs};
        rc = b->fn(&x, out);
    }
    sv_cfg_value_free(&self);
    for (int i = 0; i < nargs; i++)
        sv_cfg_value_free(&args[i]);
    return rc ? rc : P->err;
}
