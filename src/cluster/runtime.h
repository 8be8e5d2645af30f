/*
 * runtime.h: what a serval process sets up before it becomes single mode or
 * a cluster master: the saved command line and environment (for re-exec),
 * configuration, working directory, log redirection, listeners (opened, or
 * adopted from a hot restart), the app, pid file, and the boot banner.
 */
#ifndef SV_CLUSTER_RUNTIME_H
#define SV_CLUSTER_RUNTIME_H

#include <stdbool.h>
#include <time.h>

#include "app/app.h"
#include "config/config.h"
#include "http/proxy.h"
#include "os/activation.h"
#include "os/listen.h"
#include "os/loop.h"
#include "server/server.h"

typedef struct sv_runtime {
    sv_config_t cfg;
    int argc;
    char **argv;             /* copy of the original argv */
    char **envp;             /* the startup environment, without SERVAL_INHERIT */
    char exe[4096];          /* path to re-exec */
    char restart_dir[4096];  /* where a restart chdirs (symlinks unresolved) */
    time_t started_at;
    sv_listener_t listeners[SV_CONFIG_MAX_BINDS];
    int n_listeners;
    sv_app_t app;
    bool app_loaded;
    char control_token[128];
    /* records a hot restart handed over (SERVAL_INHERIT): handover.c's, taken by their owners */
    char **handover;
    int n_handover, cap_handover;
    bool hot_restarted;      /* this image was exec'd by a hot restart */
    sv_remote_t remote;      /* set_remote_address, for the serving processes (sv_rt_server_opts) */
    sv_activated_t activated[SV_CONFIG_MAX_BINDS]; /* systemd socket activation (boot only; edge.c) */
    int n_activated;
    int64_t tmp_restart_mtime;  /* plugin :tmp_restart: last mtime seen */
} sv_runtime_t;

/*
 * Parse flags and config, save what a re-exec needs, chdir, redirect logs.
 * On a config error prints one line to stderr and returns SV_ECONFIG; for
 * -h/-V/--check prints and returns 1 (exit 0).
 */
int sv_rt_init(sv_runtime_t *rt, int argc, char **argv);
/* Open (or adopt inherited) listeners; one line on stderr on failure. */
int sv_rt_open_listeners(sv_runtime_t *rt);
/* Load the app .so (no init); one line on stderr on failure. */
int sv_rt_load_app(sv_runtime_t *rt);
/* The boot banner up to the listener lines. */
void sv_rt_banner(const sv_runtime_t *rt, bool cluster);
void sv_rt_banner_listeners(const sv_runtime_t *rt);
/* Reopen stdout/stderr redirect files (HUP). */
void sv_rt_reopen_logs(const sv_runtime_t *rt);
/* pid file: write at boot, remove at exit (tolerates a missing file). */
void sv_rt_write_pidfile(const sv_runtime_t *rt);
void sv_rt_remove_pidfile(const sv_runtime_t *rt);
/* Close listeners; unlink unix socket files we created if unlink_paths. */
void sv_rt_close_listeners(sv_runtime_t *rt, bool unlink_paths);
/* chdir to restart_dir by path (follows a re-pointed symlink); logs the change. */
void sv_rt_chdir_restart_dir(sv_runtime_t *rt);
/* The tag shown in titles: config tag, else basename of the directory. */
const char *sv_rt_tag(const sv_runtime_t *rt, char *buf, size_t cap);
/*
 * The timers a master and a single process share: TLS ticket key rotation
 * (every second, with an ssl:// listener), the systemd watchdog (half of
 * WatchdogSec), and the plugin :tmp_restart poll (every 2 s: touched(arg)
 * when tmp/restart.txt was touched since).
 */
typedef struct sv_rt_timers {
    sv_runtime_t *rt;
    sv_timer_t certs, watchdog, tmp_restart;
    void (*touched)(void *arg);
    void *arg;
} sv_rt_timers_t;
void sv_rt_timers_start(sv_rt_timers_t *t, sv_runtime_t *rt, sv_loop_t *loop, void (*touched)(void *arg),
                        void *arg);
/*
 * In a forked child (worker, mold): the fd keep list. stdio, the listeners,
 * chan (its channel to the master, -1 for none) and the app's fds (opened
 * in init or a hook) stay; every other fd closes, whoever opened it.
 */
void sv_rt_keep_only(const sv_runtime_t *rt, int chan);
/* Set the serval_context() for this process's role. */
void sv_rt_set_context(const sv_runtime_t *rt, serval_role_t role, int index, unsigned phase);

/* Server options from the configuration (listeners and app of rt). */
void sv_rt_server_opts(sv_runtime_t *rt, sv_server_opts_t *o);
/* A drain is over: no connection left, or force_shutdown_after passed. */
bool sv_rt_drain_done(const sv_runtime_t *rt, sv_server_t *srv, int64_t drain_started_ms, int64_t now_ms);

#endif
