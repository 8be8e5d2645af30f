/*
 * directives.c: the directive table with its defaults, and the setters and
 * JSON of the directives that live in sv_config_t alone (process model,
 * logging, timeouts, restarts, recycling).
 *
 * One row per directive: its setter, the field it writes, bounds, argument
 * shape, default text and help; sv_config_defaults below holds the
 * defaults. The file parser, the flag and env overlay (through
 * sv_cfg_apply_at), --help and the stats JSON (config.c) all read this
 * table, so a directive added here is parsed, overridable, documented and
 * reported at once. The rows' other setters: bind, port and ssl_bind in
 * binds.c; the control app in control_app.c; set_remote_address and
 * bind_to_activated_sockets in edge.c; Puma's compatibility directives in
 * compat.c. The argument readers they all use are in args.c.
 */
#include "config/internal.h"

#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/json.h"

/* A year: every duration stays representable in milliseconds as an int. */
#define DUR_MAX 31536000.0
#define NOLIM HUGE_VAL
#define MIB (1024.0 * 1024.0)
#define GIB (1024.0 * 1024.0 * 1024.0)

/* ---- generic setters ------------------------------------------------- */

static void store_int(sv_config_t *c, const sv_directive_t *d, int64_t v)
{
    if (d->kind == SV_F_INT)
        *SV_CFG_FIELD(c, d, int) = (int)v;
    else if (d->kind == SV_F_I64)
        *SV_CFG_FIELD(c, d, int64_t) = v;
    else
        *SV_CFG_FIELD(c, d, size_t) = (size_t)v;
}

static int set_int(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n, const sv_site_t *s)
{
    int64_t v = 0;
    int rc = sv_cfg_want_nargs(d, n, 1, 1, s);
    if (rc == 0)
        rc = (d->flags & SV_D_BYTES) ? sv_cfg_want_size(d, &a[0], s, &v) : sv_cfg_want_int(d, &a[0], s, &v);
    if (rc == 0)
        rc = sv_cfg_check_range(d, d->name, (double)v, d->lo, d->hi, s);
    if (rc == 0)
        store_int(c, d, v);
    return rc;
}

static int set_dur(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n, const sv_site_t *s)
{
    double v = 0;
    int rc = sv_cfg_want_nargs(d, n, 1, 1, s);
    if (rc == 0)
        rc = sv_cfg_want_seconds(d, &a[0], s, &v);
    if (rc == 0)
        rc = sv_cfg_check_range(d, d->name, v, d->lo, d->hi, s);
    if (rc == 0)
        *SV_CFG_FIELD(c, d, double) = v;
    return rc;
}

static int set_bool(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n, const sv_site_t *s)
{
    bool v;
    int rc = sv_cfg_get_bool_arg(d, a, n, s, &v);
    if (rc == 0)
        *SV_CFG_FIELD(c, d, bool) = v;
    return rc;
}

static int set_str(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n, const sv_site_t *s)
{
    const char *v = NULL;
    int rc = sv_cfg_want_nargs(d, n, 1, 1, s);
    if (rc == 0)
        rc = sv_cfg_want_str(d, &a[0], s, &v);
    return rc ? rc : sv_cfg_replace_str(SV_CFG_FIELD(c, d, char *), v, s);
}

/* ---- directive setters ----------------------------------------------- */

static int set_workers(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n, const sv_site_t *s)
{
    int rc = sv_cfg_want_nargs(d, n, 1, 1, s);
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
        sv_cfg_fmt_num(a[0].f, shown, sizeof(shown));
        sv_cfg_warn(c, s->where, "workers %s taken as %lld, as Puma does (count.to_i)", shown, (long long)whole.i);
        return set_int(c, d, &whole, 1, s);
    }
    if (a[0].type != SV_V_INT && !(a[0].type == SV_V_FLOAT && a[0].f == floor(a[0].f)) &&
        !(a[0].type == SV_V_STR && sv_cfg_parse_whole(a[0].s, &(int64_t){0}) == 0))
        return sv_cfg_type_error(d, &a[0], s->raw ? "a whole number" : "a whole number or :auto", s);
    return set_int(c, d, a, n, s);
}

static int set_threads(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n, const sv_site_t *s)
{
    int64_t lo = 0, hi = 0;
    int rc = sv_cfg_want_nargs(d, n, 1, 2, s);
    if (rc == 0)
        rc = sv_cfg_want_int(d, &a[0], s, &lo);
    hi = lo;
    if (rc == 0 && n == 2)
        rc = sv_cfg_want_int(d, &a[1], s, &hi);
    if (rc == 0)
        rc = sv_cfg_check_range(d, "threads minimum", (double)lo, 0, d->hi, s);
    if (rc == 0)
        rc = sv_cfg_check_range(d, "threads maximum", (double)hi, 1, d->hi, s);
    if (rc == 0 && lo > hi)
        rc = sv_cfg_fail(s, "threads minimum (%lld) must not exceed the maximum (%lld)", (long long)lo,
                         (long long)hi);
    if (rc == 0) {
        c->min_threads = (int)lo;
        c->max_threads = (int)hi;
    }
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
    int rc = sv_cfg_want_nargs(d, n, 0, SV_CONFIG_MAX_THRESHOLDS, s);
    for (int i = 0; i < n && rc == 0; i++)
        rc = sv_cfg_want_int(d, &a[i], s, &v[i]);
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


/* Puma keeps one setting: quiet is the opposite of log_requests. */
static int set_quiet(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n, const sv_site_t *s)
{
    bool v;
    int rc = sv_cfg_get_bool_arg(d, a, n, s, &v);
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
    int rc = sv_cfg_get_bool_arg(d, a, n, s, &v);
    if (rc == 0) {
        c->log_requests = v;
        c->quiet = !v;
    }
    return rc;
}

static int want_path_or_nil(const sv_directive_t *d, const sv_value_t *v, const sv_site_t *s, const char **out)
{
    *out = NULL;
    return v->type == SV_V_NIL ? 0 : sv_cfg_want_str(d, v, s, out);
}

static int set_redirect(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n, const sv_site_t *s)
{
    const char *out = NULL, *err = NULL;
    bool append = false;
    int rc = sv_cfg_want_nargs(d, n, 1, 3, s);
    if (rc == 0)
        rc = want_path_or_nil(d, &a[0], s, &out);
    if (rc == 0 && n >= 2)
        rc = want_path_or_nil(d, &a[1], s, &err);
    if (rc == 0 && n == 3)
        rc = sv_cfg_want_bool(d, &a[2], s, &append);
    if (rc == 0)
        rc = sv_cfg_replace_str(&c->stdout_redirect, out, s);
    if (rc == 0)
        rc = sv_cfg_replace_str(&c->stderr_redirect, err, s);
    if (rc == 0)
        c->redirect_append = append;
    return rc;
}

static int set_force_shutdown(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n,
                              const sv_site_t *s)
{
    static const char what[] = "a number of seconds, :forever or :immediately";
    int rc = sv_cfg_want_nargs(d, n, 1, 1, s);
    if (rc)
        return rc;
    if (a[0].type == SV_V_NIL || a[0].type == SV_V_BOOL || a[0].type == SV_V_HASH)
        return sv_cfg_type_error(d, &a[0], what, s);
    if (a[0].type == SV_V_SYM || (a[0].type == SV_V_STR && sv_cfg_parse_number(a[0].s, &(double){0}) < 0)) {
        if (strcmp(a[0].s, "forever") && strcmp(a[0].s, "immediately"))
            return sv_cfg_type_error(d, &a[0], what, s);
        c->force_shutdown_after = a[0].s[0] == 'f' ? -1 : 0;
        return 0;
    }
    return set_dur(c, d, a, n, s);
}

static int set_wait_less(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n,
                         const sv_site_t *s)
{
    int rc = sv_cfg_want_nargs(d, n, 0, 1, s);
    if (rc == 0 && n == 0)
        c->wait_for_less_busy_worker = 0.005;
    return rc || n == 0 ? rc : set_dur(c, d, a, n, s);
}

static int set_order(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n, const sv_site_t *s)
{
    static const char *const words[] = {"surge", "stop_first"};
    int idx = 0;
    int rc = sv_cfg_want_nargs(d, n, 1, 1, s);
    if (rc == 0)
        rc = sv_cfg_want_choice(d, &a[0], words, 2, s, &idx);
    if (rc == 0)
        c->phased_restart_surge = idx == 0;
    return rc;
}

static int set_log_format(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n,
                          const sv_site_t *s)
{
    int idx = 0;
    int rc = sv_cfg_want_nargs(d, n, 1, 1, s);
    if (rc == 0)
        rc = sv_cfg_want_choice(d, &a[0], sv_log_format_names, 3, s, &idx);
    if (rc == 0)
        c->log_format = idx;
    return rc;
}

static int set_culling(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n, const sv_site_t *s)
{
    static const char *const words[] = {"youngest", "oldest"};
    int idx = 0;
    int rc = sv_cfg_want_nargs(d, n, 1, 1, s);
    if (rc == 0)
        rc = sv_cfg_want_choice(d, &a[0], words, 2, s, &idx);
    if (rc == 0)
        c->worker_culling_strategy = idx == 0 ? SV_CULL_YOUNGEST : SV_CULL_OLDEST;
    return rc;
}

static int set_max_requests(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n,
                            const sv_site_t *s)
{
    int64_t max = 0, jitter = 0;
    int rc = sv_cfg_want_nargs(d, n, 1, 2, s);
    if (rc == 0)
        rc = sv_cfg_want_int(d, &a[0], s, &max);
    if (rc == 0 && n == 2)
        rc = sv_cfg_want_int(d, &a[1], s, &jitter);
    if (rc == 0)
        rc = sv_cfg_check_range(d, "max_requests", (double)max, 0, d->hi, s);
    if (rc == 0)
        rc = sv_cfg_check_range(d, "max_requests jitter", (double)jitter, 0, d->hi, s);
    if (rc == 0) {
        c->max_requests = max;
        c->max_requests_jitter = jitter;
    }
    return rc;
}

/* Puma's rackup file is no app: say so now rather than when dlopen fails on it. */
static int set_app(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n, const sv_site_t *s)
{
    size_t len = n == 1 && (a[0].type == SV_V_STR || a[0].type == SV_V_SYM) ? strlen(a[0].s) : 0;
    if (len >= 3 && !strcmp(a[0].s + len - 3, ".ru"))
        return sv_cfg_fail(s, "app '%s' is a Rack file, which serval cannot run (hint: app takes the path of an app "
                              "shared object, \"build/app.so\": see docs/apps.md)", a[0].s);
    return set_str(c, d, a, n, s);
}

/* Puma's docs suggest max_keep_alive Float::INFINITY: no limit, serval's 0. */
static int set_max_keep_alive(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n,
                              const sv_site_t *s)
{
    if (n == 1 && a[0].type == SV_V_FLOAT && isinf(a[0].f) && a[0].f > 0) {
        c->max_keep_alive = 0;
        return 0;
    }
    return set_int(c, d, a, n, s);
}

static int set_plugin(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n, const sv_site_t *s)
{
    int rc = sv_cfg_want_nargs(d, n, 1, 1, s);
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
    return sv_cfg_type_error(d, v, "a plugin name such as :tmp_restart", s);
}

/* ---- values shown in stats ------------------------------------------- */

static void show_field(const sv_config_t *c, const sv_directive_t *d, sv_json_t *w)
{
    switch (d->kind) {
    case SV_F_INT: sv_json_int(w, *SV_CFG_CFIELD(c, d, int)); break;
    case SV_F_I64: sv_json_int(w, *SV_CFG_CFIELD(c, d, int64_t)); break;
    case SV_F_SIZE: sv_json_uint(w, *SV_CFG_CFIELD(c, d, size_t)); break;
    case SV_F_DUR: sv_json_double(w, *SV_CFG_CFIELD(c, d, double)); break;
    case SV_F_BOOL: sv_json_bool(w, *SV_CFG_CFIELD(c, d, bool)); break;
    case SV_F_STR: sv_json_str(w, *SV_CFG_CFIELD(c, d, char *)); break;
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
    int rc = sv_cfg_want_nargs(d, n, 1, 2, s);
    if (rc == 0)
        rc = sv_cfg_want_seconds(d, &a[0], s, &t);
    if (rc == 0)
        rc = sv_cfg_check_range(d, "app_timeout", t, 0, d->hi, s);
    if (rc == 0 && n == 2 && a[1].type != SV_V_HASH)
        rc = sv_cfg_type_error(d, &a[1], "cleanup: SECONDS", s);
    for (int i = 0; rc == 0 && n == 2 && i < a[1].npairs; i++) {
        if (strcmp(a[1].pairs[i].key, "cleanup"))
            rc = sv_cfg_fail(s, "app_timeout: unknown option '%s' (known: cleanup)", a[1].pairs[i].key);
        if (rc == 0)
            rc = sv_cfg_want_seconds(d, &a[1].pairs[i].val, s, &cleanup);
        if (rc == 0)
            rc = sv_cfg_check_range(d, "app_timeout cleanup", cleanup, 0, d->hi, s);
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
    {"bind", sv_cfg_set_bind, sv_cfg_show_binds, SV_F_NONE, 0, 0, 0, 0, "\"URI\"", SV_CFG_DEFAULT_BIND,
     "listen on tcp://HOST:PORT, tcp://[IPV6]:PORT, unix://PATH[?mode=0600] or ssl://HOST:PORT?cert=PATH&key=PATH; repeatable"},
    {"ssl_bind", sv_cfg_set_ssl_bind, NULL, SV_F_NONE, 0, 0, 0, 0, "\"HOST\", PORT, { cert: \"PATH\", key: \"PATH\" }",
     "none", "listen on HOST:PORT with TLS (docs/tls.md has every option); same as bind \"ssl://...\""},
    {"port", sv_cfg_set_port, NULL, SV_F_NONE, 0, 0, 65535, 0, "PORT[, \"HOST\"]", "9292",
     "same as bind \"tcp://HOST:PORT\" (HOST defaults to 0.0.0.0)"},
    {"set_default_host", set_str, show_field, SV_F_STR, F(default_host), 0, 0, 0, "\"HOST\"", "\"0.0.0.0\"",
     "the host of a port directive in the file that names none (Puma's; -p and PORT keep 0.0.0.0)"},
    {"bind_to_activated_sockets", sv_cfg_set_activated_sockets, sv_cfg_show_activated_sockets, SV_F_NONE, 0, 0,
     0, 0, "[true|\"only\"]", "false",
     "listen on the sockets systemd passes (LISTEN_FDS) as well as the binds; \"only\": on those alone"},
    {"set_remote_address", sv_cfg_set_remote_address, sv_cfg_show_remote_address, SV_F_NONE, 0, 0, 0, 0,
     ":socket|\"ADDR\"|proxy_protocol: :v1|:v2|header: \"NAME\"[, trusted_proxies: [...]]", ":socket",
     "who the client is behind a load balancer: a PROXY header, or a forwarded-for header from trusted proxies"},
    /* app */
    {"app", set_app, show_field, SV_F_STR, F(app_path), 0, 0, 0, "\"PATH.so\"", "the built-in hello app",
     "the app shared object (the APP argument)"},
    {"directory", set_str, show_field, SV_F_STR, F(directory), 0, 0, 0, "\"DIR\"", "the starting directory",
     "directory the app runs in; hot restarts return to it"},
    {"environment", set_str, show_field, SV_F_STR, F(environment), 0, 0, 0, "\"ENV\"",
     "$APP_ENV, $RACK_ENV, $RAILS_ENV or development", "the app's environment"},
    {"tag", set_str, show_field, SV_F_STR, F(tag), 0, 0, SV_D_EMPTY_OK, "\"NAME\"", "the directory's name",
     "name shown in the process title"},
    /* control, state */
    {"activate_control_app", sv_cfg_set_control, sv_cfg_show_control, SV_F_NONE, 0, 0, 0, 0,
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
    {"shutdown_delay", set_dur, show_field, SV_F_DUR, F(shutdown_delay), 0, DUR_MAX, 0, "SECONDS", "0 (off)",
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
    {"max_keep_alive", set_max_keep_alive, show_field, SV_F_INT, F(max_keep_alive), 0, INT_MAX, 0, "N", NULL,
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
    {"daemonize", sv_cfg_set_compat_bool, NULL, SV_F_NONE, 0, 0, 0, SV_D_COMPAT, "[BOOL]", NULL, NULL},
    {"enable_keep_alives", sv_cfg_set_compat_bool, NULL, SV_F_NONE, 0, 0, 0, SV_D_COMPAT, "[BOOL]", NULL, NULL},
    {"drain_on_shutdown", sv_cfg_set_compat_bool, NULL, SV_F_NONE, 0, 0, 0, SV_D_COMPAT, "[BOOL]", NULL, NULL},
    {"raise_exception_on_sigterm", sv_cfg_set_compat_bool, NULL, SV_F_NONE, 0, 0, 0, SV_D_COMPAT, "[BOOL]", NULL, NULL},
    {"queue_requests", sv_cfg_set_compat_bool, NULL, SV_F_NONE, 0, 0, 0, SV_D_COMPAT, "[BOOL]", NULL, NULL},
    {"http_content_length_limit", sv_cfg_set_content_length_limit, NULL, SV_F_NONE, 0, 0, 0, SV_D_COMPAT | SV_D_BYTES,
     "SIZE|nil", NULL, NULL},
    {"allow_underscore_headers", sv_cfg_set_compat_bool, NULL, SV_F_NONE, 0, 0, 0, SV_D_COMPAT, "[BOOL]", NULL,
     NULL},
    {"clear_binds!", sv_cfg_set_clear_binds, NULL, SV_F_NONE, 0, 0, 0, SV_D_COMPAT, "", NULL, NULL},
    /* command-line only */
    {"control_url", sv_cfg_set_control_url, NULL, SV_F_NONE, 0, 0, 0, SV_D_HIDDEN, "\"URL\"", NULL, NULL},
    {"control_token", sv_cfg_set_control_token, NULL, SV_F_NONE, 0, 0, 0, SV_D_HIDDEN | SV_D_EMPTY_OK, "\"T\"", NULL,
     NULL},
    {"control_data_url", sv_cfg_set_control_data_url, NULL, SV_F_NONE, 0, 0, 0, SV_D_HIDDEN, "\"URL\"", NULL, NULL},
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

_Static_assert(NDIRECTIVES <= SV_CONFIG_MAX_DIRECTIVES, "sv_config_t.origin has no room for every directive");

size_t sv_cfg_directive_index(const sv_directive_t *d)
{
    return (size_t)(d - table);
}

const sv_directive_t *sv_cfg_directive_at(size_t i)
{
    return i < NDIRECTIVES ? &table[i] : NULL;
}

const sv_directive_t *sv_cfg_lookup(const char *name, bool hidden_ok)
{
    for (size_t i = 0; i < NDIRECTIVES; i++)
        if (!strcmp(table[i].name, name) && (hidden_ok || !(table[i].flags & SV_D_HIDDEN)))
            return &table[i];
    return NULL;
}

/* ---- defaults -------------------------------------------------------- */

/* The value of every field before env, file and flags; --help shows these. */
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
