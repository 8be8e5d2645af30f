/*
 * runtime.c: a process's setup before it becomes single mode or a master
 * (runtime.h): command line, environment, configuration, log redirects,
 * listeners (adopting those a hot restart handed over, handover.h), the
 * app, pid file, banner; the timers a master and a single process share
 * (sv_rt_timers_start: TLS key rotation, the watchdog, tmp_restart); and a
 * forked child's fd keep list (sv_rt_keep_only).
 */
#include "cluster/runtime.h"

#include "cluster/activate.h"
#include "cluster/certs.h"
#include "cluster/handover.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/time.h"
#include "os/backtrace.h"
#include "os/chan.h"
#include "os/fd.h"
#include "os/file.h"
#include "os/notify.h"
#include "os/proc.h"
#include "tls/tls.h"

extern char **environ;

static char **copy_strings(char **src, int n, const char *skip_prefix)
{
    char **dst = calloc((size_t)n + 1, sizeof(char *));
    int k = 0;
    for (int i = 0; dst && i < n; i++)
        if (!skip_prefix || strncmp(src[i], skip_prefix, strlen(skip_prefix)) != 0)
            dst[k++] = strdup(src[i]);
    return dst;
}

/*
 * The path to re-exec keeps symlinks unresolved, so a deploy that re-points
 * a symlink to a new build is picked up by a hot restart.
 */
/* dir/name into out; empty when it does not fit. */
static void join_path(char *out, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap)
        out[0] = '\0';
}

static void find_exe(sv_runtime_t *rt, const char *argv0)
{
    char cwd[4096];
    if (argv0 && strchr(argv0, '/')) {
        if (argv0[0] == '/' || !getcwd(cwd, sizeof(cwd)))
            snprintf(rt->exe, sizeof(rt->exe), "%s", argv0);
        else
            join_path(rt->exe, sizeof(rt->exe), cwd, argv0);
        if (access(rt->exe, X_OK) == 0)
            return;
    }
    const char *path = getenv("PATH");
    char *dirs = path ? strdup(path) : NULL, *save = NULL;
    for (char *d = dirs ? strtok_r(dirs, ":", &save) : NULL; d; d = strtok_r(NULL, ":", &save)) {
        join_path(rt->exe, sizeof(rt->exe), d, argv0);
        if (access(rt->exe, X_OK) == 0) {
            free(dirs);
            return;
        }
    }
    free(dirs);
    sv_proc_exe_path(rt->exe, sizeof(rt->exe));
}

static void set_restart_dir(sv_runtime_t *rt, const char *startup_cwd)
{
    const char *dir = rt->cfg.directory;
    struct stat a, b;
    const char *pwd = getenv("PWD");
    if (dir && dir[0] == '/')
        snprintf(rt->restart_dir, sizeof(rt->restart_dir), "%s", dir);
    else if (dir)
        join_path(rt->restart_dir, sizeof(rt->restart_dir), startup_cwd, dir);
    else if (pwd && pwd[0] == '/' && stat(pwd, &a) == 0 && stat(".", &b) == 0 && a.st_ino == b.st_ino &&
             a.st_dev == b.st_dev)
        snprintf(rt->restart_dir, sizeof(rt->restart_dir), "%s", pwd); /* keeps /srv/app/current */
    else
        snprintf(rt->restart_dir, sizeof(rt->restart_dir), "%s", startup_cwd);
}

static int open_redirect(const char *path, int target, bool append)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0644);
    if (fd < 0)
        return SV_ERRNO();
    dup2(fd, target);
    close(fd);
    char when[32], line[96];
    snprintf(line, sizeof(line), "=== serval startup: %s ===\n", sv_iso8601(when, sizeof(when), time(NULL)));
    sv_fd_write_all(target, line, strlen(line));
    return 0;
}

static int redirect_logs(const sv_runtime_t *rt, bool force_append)
{
    bool append = rt->cfg.redirect_append || force_append;
    if (rt->cfg.stdout_redirect && open_redirect(rt->cfg.stdout_redirect, 1, append) < 0) {
        fprintf(stderr, "serval: cannot open stdout_redirect '%s': %s\n", rt->cfg.stdout_redirect, strerror(errno));
        return SV_ECONFIG;
    }
    if (rt->cfg.stderr_redirect && open_redirect(rt->cfg.stderr_redirect, 2, append) < 0) {
        fprintf(stderr, "serval: cannot open stderr_redirect '%s': %s\n", rt->cfg.stderr_redirect, strerror(errno));
        return SV_ECONFIG;
    }
    return 0;
}

void sv_rt_reopen_logs(const sv_runtime_t *rt)
{
    redirect_logs(rt, true);
}

static int check_only(sv_runtime_t *rt)
{
    sv_diag_t diag = {{0}};
    if (sv_rt_load_app(rt) < 0)
        return SV_ECONFIG;
    /* certificates and keys load, and match (a hot restart's preflight refuses a bad new certificate) */
    for (int i = 0; i < sv_config_bind_count(&rt->cfg); i++) {
        char err[600];
        const char *uri = sv_config_bind(&rt->cfg, i);
        if (!strncmp(uri, "ssl://", 6) && sv_tls_check(uri, err, sizeof(err)) < 0) {
            fprintf(stderr, "serval: %s\n", err);
            return SV_ECONFIG;
        }
    }
    /* a hot restart's preflight (SERVAL_CHECK_INIT set) runs while the old image holds the binds */
    const char *with_init = getenv("SERVAL_CHECK_INIT");
    if (!with_init && !sv_activate_expected(rt) && sv_config_check_binds(&rt->cfg, &diag) < 0) {
        fprintf(stderr, "%s\n", diag.msg);
        return SV_ECONFIG;
    }
    /* a hot restart's preflight: the new image will init the app itself (single mode, preload) */
    if (with_init && !strcmp(with_init, "1")) {
        char err[600];
        sv_rt_set_context(rt, SERVAL_ROLE_SINGLE, -1, 0);
        if (sv_app_init(&rt->app, err, sizeof(err)) < 0) {
            fprintf(stderr, "serval: %s\n", err);
            return SV_ECONFIG;
        }
        sv_app_fini(&rt->app);
    }
    if (rt->cfg.config_file)
        printf("serval: configuration OK (%s)\n", rt->cfg.config_file);
    else
        printf("serval: configuration OK\n");
    return 1;
}

int sv_rt_init(sv_runtime_t *rt, int argc, char **argv)
{
    memset(rt, 0, sizeof(*rt));
    rt->started_at = time(NULL);
    int envc = 0;
    while (environ[envc])
        envc++;
    rt->argc = argc;
    rt->argv = copy_strings(argv, argc, NULL);
    rt->envp = copy_strings(environ, envc, SV_HANDOVER_ENV "=");
    sv_activate_scrub_env(rt->envp); /* a hot restart's new image, same pid, must not take them again */
    sv_handover_read(rt);
    find_exe(rt, argv[0]);
    char startup_cwd[4096] = ".";
    if (!getcwd(startup_cwd, sizeof(startup_cwd)))
        snprintf(startup_cwd, sizeof(startup_cwd), ".");

    sv_config_action_t action;
    sv_diag_t diag;
    if (sv_config_load(&rt->cfg, argc, argv, &action, &diag) < 0) {
        fprintf(stderr, "%s\n", diag.msg);
        return SV_ECONFIG;
    }
    if (action == SV_CONFIG_HELP) {
        sv_config_print_help(argv[0]);
        return 1;
    }
    if (action == SV_CONFIG_VERSION) {
        printf("serval %s\n", SERVAL_VERSION);
        return 1;
    }
    if (rt->cfg.print_config) {
        sv_buf_t b = SV_BUF_INIT;
        sv_json_t w;
        sv_json_init(&w, &b);
        sv_config_to_json(&rt->cfg, &w);
        printf("%s\n", b.data ? b.data : "{}");
        sv_buf_free(&b);
        return 1;
    }
    if (rt->cfg.directory && chdir(rt->cfg.directory) < 0) {
        fprintf(stderr, "serval: cannot change to directory '%s': %s\n", rt->cfg.directory, strerror(errno));
        return SV_ECONFIG;
    }
    set_restart_dir(rt, startup_cwd);
    if (sv_config_check_paths(&rt->cfg, &diag) < 0) {
        fprintf(stderr, "%s\n", diag.msg);
        return SV_ECONFIG;
    }
    if (rt->cfg.check_only)
        return check_only(rt);
    const char *debug = getenv("SERVAL_DEBUG");
    sv_log_set_debug(debug && strcmp(debug, "0") != 0);
    sv_log_set_pid_prefix(rt->cfg.workers > 0);
    int rc = redirect_logs(rt, rt->hot_restarted);
    sv_log_set_format((sv_log_format_t)rt->cfg.log_format); /* after the redirect: auto asks isatty */
    return rc;
}

/* ---- listeners ----------------------------------------------------------- */

static int adopt(sv_runtime_t *rt, sv_listener_t *l, const char *uri, char **recs, int n, char *err,
                 size_t errlen)
{
    char ruri[512];
    for (int i = 0; i < n; i++) {
        if (!recs[i] || !sv_msg_get(recs[i], "uri", ruri, sizeof(ruri)) || strcmp(ruri, uri) != 0)
            continue;
        int fd = (int)sv_msg_int(recs[i], "fd", -1);
        int rc = sv_listener_adopt(l, uri, fd, err, errlen);
        l->created_path = sv_msg_int(recs[i], "created", 0) == 1;
        l->activated = sv_msg_int(recs[i], "activated", 0) == 1;
        free(recs[i]);
        recs[i] = NULL;
        return rc == 0 ? 1 : rc;
    }
    (void)rt;
    return 0;
}

/*
 * TLS contexts for the ssl:// listeners, built here, before any fork: the
 * master reads the certificates and keys, and every worker inherits them.
 * The shared block (ticket keys, certificate generation, counters) is the
 * one a hot restart handed over, if any.
 */
static int open_tls(sv_runtime_t *rt, char *err, size_t errlen)
{
    char *rec = NULL;
    int fd = -1;
    if (sv_handover_take(rt, "tls", &rec, 1) == 1) {
        fd = (int)sv_msg_int(rec, "fd", -1);
        free(rec);
    }
    bool any = false;
    for (int i = 0; i < rt->n_listeners; i++)
        any |= rt->listeners[i].bind.ssl;
    if (!any) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    int rc = sv_tls_shared_init(fd);
    if (rc < 0) {
        snprintf(err, errlen, "TLS: cannot create the shared ticket key block: %s", strerror(-rc));
        return rc;
    }
    for (int i = 0; i < rt->n_listeners; i++) {
        sv_listener_t *l = &rt->listeners[i];
        if (l->bind.ssl && !(l->tls = sv_tls_new(l->uri, err, errlen)))
            return SV_ECONFIG;
    }
    return 0;
}

int sv_rt_open_listeners(sv_runtime_t *rt)
{
    char *recs[SV_CONFIG_MAX_BINDS * 2];
    int nrec = sv_handover_take(rt, "listener", recs, SV_CONFIG_MAX_BINDS * 2);
    char err[600];
    int rc = rt->hot_restarted ? 0 : sv_activate_take(rt, err, sizeof(err));
    for (int i = 0; i < sv_config_bind_count(&rt->cfg) && rc >= 0; i++) {
        const char *uri = sv_config_bind(&rt->cfg, i);
        sv_listener_t *l = &rt->listeners[rt->n_listeners];
        if (sv_activate_skip_bind(rt, uri, recs, nrec))
            continue;
        rc = adopt(rt, l, uri, recs, nrec, err, sizeof(err));
        if (rc == 0)
            rc = sv_activate_adopt(rt, l, uri, err, sizeof(err));
        if (rc == 0)
            rc = sv_listener_open(l, uri, err, sizeof(err));
        if (rc >= 0) {
            rt->n_listeners++;
        } else if (rt->hot_restarted) {
            /* the old image's workers still serve: losing one new address beats losing all */
            sv_log_error("! %s; serving without it", err);
            rc = 0;
        }
    }
    if (rc >= 0)
        rc = sv_activate_rest(rt, recs, nrec, err, sizeof(err));
    if (rc == 0 && rt->n_listeners == 0) {
        snprintf(err, sizeof(err), "no address to listen on");
        rc = SV_ECONFIG;
    }
    for (int i = 0; i < nrec; i++) {
        if (!recs[i])
            continue;
        char ruri[512];
        sv_msg_get(recs[i], "uri", ruri, sizeof(ruri));
        sv_log("* Closing unused inherited connection: %s", ruri);
        close((int)sv_msg_int(recs[i], "fd", -1));
        free(recs[i]);
    }
    if (rc >= 0)
        rc = open_tls(rt, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "serval: %s\n", err);
        sv_rt_close_listeners(rt, true);
        return rc;
    }
    return 0;
}

void sv_rt_close_listeners(sv_runtime_t *rt, bool unlink_paths)
{
    for (int i = 0; i < rt->n_listeners; i++)
        sv_listener_close(&rt->listeners[i], unlink_paths);
}

int sv_rt_load_app(sv_runtime_t *rt)
{
    char err[600];
    if (rt->app_loaded)
        return 0;
    int rc = sv_app_load(&rt->app, rt->cfg.app_path, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "serval: %s\n", err);
        return rc;
    }
    rt->app_loaded = true;
    return 0;
}

/* ---- banner, files, titles ------------------------------------------------ */

const char *sv_rt_tag(const sv_runtime_t *rt, char *buf, size_t cap)
{
    if (rt->cfg.tag) {
        snprintf(buf, cap, "%s", rt->cfg.tag);
    } else {
        char tmp[4096];
        snprintf(tmp, sizeof(tmp), "%s", rt->restart_dir);
        snprintf(buf, cap, "%s", basename(tmp));
    }
    return buf;
}

void sv_rt_banner(const sv_runtime_t *rt, bool cluster)
{
    const sv_config_t *c = &rt->cfg;
    sv_log("serval starting in %s mode...", cluster ? "cluster" : "single");
    sv_log("* serval version: %s", SERVAL_VERSION);
    sv_log("*          App: %s", c->app_path ? c->app_path : "built-in hello");
    sv_log("*  Min threads: %d", c->min_threads);
    sv_log("*  Max threads: %d", c->max_threads);
    sv_log("*  Environment: %s", c->environment);
    if (cluster) {
        sv_log("*   Master PID: %d", (int)getpid());
        sv_log("*      Workers: %d", c->workers);
        sv_log("*     Restarts: (\u2714) hot (%s) phased (%s) refork", c->preload ? "\u2716" : "\u2714",
               c->fork_worker ? "\u2714" : "\u2716");
        if (c->preload)
            sv_log("* Preloading application");
    } else {
        sv_log("*          PID: %d", (int)getpid());
    }
}

void sv_rt_banner_listeners(const sv_runtime_t *rt)
{
    char buf[600];
    for (int i = 0; i < rt->n_listeners; i++) {
        const sv_listener_t *l = &rt->listeners[i];
        const char *how = l->activated && !rt->hot_restarted ? "Activated"
                          : l->inherited                     ? "Inherited"
                                                             : "Listening on";
        sv_log("* %s %s", how, sv_listener_display(l, buf, sizeof(buf)));
    }
}

void sv_rt_write_pidfile(const sv_runtime_t *rt)
{
    if (!rt->cfg.pidfile)
        return;
    char pid[32];
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    int rc = sv_file_write_atomic(rt->cfg.pidfile, pid, strlen(pid), 0644);
    if (rc < 0)
        sv_log_error("! cannot write pidfile %s: %s", rt->cfg.pidfile, sv_strerror(rc));
}

void sv_rt_remove_pidfile(const sv_runtime_t *rt)
{
    if (rt->cfg.pidfile)
        unlink(rt->cfg.pidfile);
}

void sv_rt_chdir_restart_dir(sv_runtime_t *rt)
{
    if (chdir(rt->restart_dir) < 0) {
        sv_log_error("! cannot change to %s: %s", rt->restart_dir, strerror(errno));
        return;
    }
    sv_log("+ Changing to %s", rt->restart_dir);
}

void sv_rt_set_context(const sv_runtime_t *rt, serval_role_t role, int index, unsigned phase)
{
    sv_app_set_context(role, index, phase, rt->cfg.workers, rt->cfg.max_threads, rt->cfg.environment,
                       rt->restart_dir, rt->cfg.app_path);
}

/* set_remote_address for the serving threads; NULL when the socket's peer is the client. */
static const sv_remote_t *remote_opts(sv_runtime_t *rt)
{
    const sv_config_t *c = &rt->cfg;
    sv_remote_t *r = &rt->remote;
    memset(r, 0, sizeof(*r));
    r->proxy_protocol = c->proxy_protocol;
    if (c->remote_address_value)
        snprintf(r->value, sizeof(r->value), "%s", c->remote_address_value);
    if (c->remote_address_header) {
        snprintf(r->header, sizeof(r->header), "%s", c->remote_address_header);
        /* checked when the config was read */
        sv_trusted_parse(c->trusted_proxies ? c->trusted_proxies : SV_TRUSTED_PROXIES_DEFAULT, r->trusted,
                         SV_TRUSTED_MAX, &r->ntrusted, NULL, 0);
    }
    return r->proxy_protocol || r->value[0] || r->header[0] ? r : NULL;
}

void sv_rt_server_opts(sv_runtime_t *rt, sv_server_opts_t *o)
{
    const sv_config_t *c = &rt->cfg;
    memset(o, 0, sizeof(*o));
    o->listeners = rt->listeners;
    o->n_listeners = rt->n_listeners;
    o->min_threads = c->min_threads;
    o->max_threads = c->max_threads;
    o->limits = (sv_http_limits_t){.max_request_line = c->max_request_line,
                                   .max_header_size = c->max_header_size,
                                   .max_headers = c->max_headers,
                                   .max_body_size = c->max_body_size};
    o->body_buffer_size = c->body_buffer_size;
    o->body_memory_limit = c->body_memory_limit;
    o->max_response_buffer = c->max_response_buffer;
    o->min_request_data_rate = c->min_request_data_rate;
    o->min_response_data_rate = c->min_response_data_rate;
    o->data_rate_grace_ms = (int64_t)(c->data_rate_grace_period * 1000);
    o->max_keep_alive = c->max_keep_alive;
    o->persistent_timeout_ms = (int64_t)(c->persistent_timeout * 1000);
    o->first_data_timeout_ms = (int64_t)(c->first_data_timeout * 1000);
    o->request_timeout_ms = (int64_t)(c->request_timeout * 1000);
    o->write_timeout_ms = 10000;
    o->app_timeout_ms = (int64_t)(c->app_timeout * 1000);
    o->log_requests = c->log_requests;
    o->remote = remote_opts(rt);
    o->app = &rt->app;
    o->wait_for_less_busy = c->wait_for_less_busy_worker;
}

bool sv_rt_drain_done(const sv_runtime_t *rt, sv_server_t *srv, int64_t drain_started_ms, int64_t now_ms)
{
    if (sv_server_connections(srv) == 0)
        return true;
    double f = rt->cfg.force_shutdown_after;
    return f >= 0 && now_ms - drain_started_ms >= (int64_t)(f * 1000);
}

static bool tmp_restart_touched(sv_runtime_t *rt)
{
    if (!rt->cfg.tmp_restart)
        return false;
    struct stat st;
    if (stat("tmp/restart.txt", &st) < 0)
        return false;
    int64_t mt = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
    bool touched = rt->tmp_restart_mtime && mt > rt->tmp_restart_mtime;
    rt->tmp_restart_mtime = mt;
    return touched;
}

#define CERTS_TICK_MS 1000
#define TMP_RESTART_EVERY_MS 2000

static void on_certs(sv_loop_t *loop, sv_timer_t *t, void *arg)
{
    (void)loop, (void)t, (void)arg;
    sv_certs_tick(sv_now_ms());
}

static void on_watchdog(sv_loop_t *loop, sv_timer_t *t, void *arg)
{
    (void)loop, (void)t, (void)arg;
    sv_notify_watchdog();
}

static void on_tmp_restart(sv_loop_t *loop, sv_timer_t *t, void *arg)
{
    sv_rt_timers_t *tm = arg;
    (void)loop, (void)t;
    if (tmp_restart_touched(tm->rt))
        tm->touched(tm->arg);
}

void sv_rt_timers_start(sv_rt_timers_t *t, sv_runtime_t *rt, sv_loop_t *loop, void (*touched)(void *arg), void *arg)
{
    *t = (sv_rt_timers_t){.rt = rt, .touched = touched, .arg = arg};
    sv_timer_init(&t->certs, on_certs, t);
    sv_timer_init(&t->watchdog, on_watchdog, t);
    sv_timer_init(&t->tmp_restart, on_tmp_restart, t);
    if (sv_certs_any(rt))
        sv_loop_timer_start(loop, &t->certs, CERTS_TICK_MS, CERTS_TICK_MS);
    int64_t wd = sv_notify_watchdog_every_ms();
    if (wd > 0)
        sv_loop_timer_start(loop, &t->watchdog, 0, wd);
    if (rt->cfg.tmp_restart) {
        tmp_restart_touched(rt); /* the mtime to compare with */
        sv_loop_timer_start(loop, &t->tmp_restart, TMP_RESTART_EVERY_MS, TMP_RESTART_EVERY_MS);
    }
}

void sv_rt_keep_only(const sv_runtime_t *rt, int chan)
{
    const int *app;
    int n_app = sv_app_fds(&app);
    const int *unw;
    int n_unw = sv_bt_fds(&unw); /* libunwind's pipe: it writes to those numbers later (os/backtrace.h) */
    int *keep = malloc(sizeof(int) * (size_t)(rt->n_listeners + 1 + n_app + n_unw));
    if (!keep)
        return; /* CLOEXEC still guards an exec; nothing better to do in a fresh child */
    int n = 0;
    for (int i = 0; i < rt->n_listeners; i++)
        if (rt->listeners[i].fd >= 0)
            keep[n++] = rt->listeners[i].fd;
    if (chan >= 0)
        keep[n++] = chan;
    for (int i = 0; i < n_app; i++)
        keep[n++] = app[i];
    for (int i = 0; i < n_unw; i++)
        keep[n++] = unw[i];
    sv_fd_close_all_except(keep, n);
    free(keep);
}
