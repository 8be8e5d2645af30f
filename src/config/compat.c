/*
 * compat.c: what a Puma user's config brings that serval does not do as
 * Puma does. The directives read for compatibility only (daemonize,
 * queue_requests, ...: each maps onto serval or warns), and every name that
 * is not a directive: Puma's hooks and Ruby calls, which are skipped with a
 * warning saying what to do instead, and typos, which are errors with the
 * closest directive as a suggestion. docs/configuration.md lists them all.
 */
#include "config/internal.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* ---- Puma directives read for compatibility ---------------------------- */

/*
 * Each either maps onto what serval does, or warns that the value asked for
 * is not what serval does; none is silently ignored.
 */
int sv_cfg_set_compat_bool(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n,
                           const sv_site_t *s)
{
    bool v;
    int rc = sv_cfg_get_bool_arg(d, a, n, s, &v);
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
    } else if (!strcmp(d->name, "allow_underscore_headers")) {
        if (!v)
            sv_cfg_warn(c, s->where, "allow_underscore_headers false is not honoured: serval hands the app every "
                                     "header under its own name, and X_Forwarded_For never stands for "
                                     "X-Forwarded-For (hint: drop such headers in the app)");
    } else if (!strcmp(d->name, "queue_requests")) {
        if (!v)
            sv_cfg_warn(c, s->where, "queue_requests false is not honoured: serval always reads a request in "
                                     "its event loop before a thread takes it (hint: delete the line)");
    }
    return 0;
}

/* Puma's request-body limit: serval's max_body_size (nil = unlimited). */
int sv_cfg_set_content_length_limit(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n,
                                    const sv_site_t *s)
{
    int64_t v = 0;
    int rc = sv_cfg_want_nargs(d, n, 1, 1, s);
    if (rc == 0 && a[0].type != SV_V_NIL)
        rc = sv_cfg_want_size(d, &a[0], s, &v);
    if (rc == 0)
        rc = sv_cfg_check_range(d, d->name, (double)v, 0, HUGE_VAL, s);
    if (rc == 0)
        c->max_body_size = v;
    return rc;
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
    {"max_io_threads", "serval has no IO-bound thread class: every app call holds one of threads MAX; raise "
                       "that instead"},
    {"idle_timeout", "serval does not stop itself when idle; use systemd socket activation for that"},
    {"supported_http_methods", "serval passes every method to the app: reject methods there (501)"},
    {"state_permission", "not supported by serval yet: the state file is created 0644; set the directory's "
                         "permissions instead"},
};

size_t sv_cfg_edit_distance(const char *a, const char *b)
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
    const sv_directive_t *dir;
    for (size_t i = 0; (dir = sv_cfg_directive_at(i)); i++) {
        if (dir->flags & SV_D_HIDDEN)
            continue;
        size_t d = sv_cfg_edit_distance(name, dir->name);
        if (d < best_d && d * 3 <= len) {
            best = dir->name;
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
