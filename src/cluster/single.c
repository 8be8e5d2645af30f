/*
 * single.c: single mode. One process loads the app and serves; its main
 * thread's event loop handles signals, the control server, its timers
 * (tmp_restart, the systemd watchdog, TLS key rotation, the lame duck's
 * end) and the serving tick (the server's sweep of its connections, the
 * drain, a restart when every thread is lost to app_timeout). Owns single
 * mode's operation log.
 */
#include "cluster/single.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster/certs.h"
#include "cluster/handover.h"
#include "cluster/hot_restart.h"
#include "cluster/state.h"
#include "cluster/worker.h"
#include "control/control.h"
#include "core/log.h"
#include "core/time.h"
#include "os/loop.h"
#include "os/notify.h"
#include "os/proc.h"
#include "os/sig.h"

/*
 * The server's sweep of its connections' deadlines, and the checks that go
 * with it: a sweep, not a timer per connection, because thousands of
 * deadlines are written lock-free by the serving threads (architecture.md,
 * "The event loop").
 */
#define SINGLE_TICK_MS 20

typedef enum single_state { S_RUN, S_STOP, S_RESTART } single_state_t;
typedef struct single single_t;
static void begin_stop(single_t *s, single_state_t next, const char *why);

struct single {
    sv_runtime_t *rt;
    sv_server_t *srv;
    sv_loop_t *loop;
    sv_control_t *control;
    single_state_t state;
    int64_t drain_started_ms;
    int64_t lame_duck_until_ms; /* shutdown_delay: a TERM arrived; stop at this time (0: none) */
    sv_timer_t lame_duck_timer; /* fires then: the graceful stop */
    sv_timer_t tick_timer;   /* the server's sweep, the drain check */
    sv_rt_timers_t timers;   /* TLS key rotation, the systemd watchdog, tmp_restart (runtime.h) */
    sv_oplog_t ops;
    bool lost_all;           /* restarting because every thread is stuck past app_timeout */
    bool booted;             /* on_booted ran: a failed boot runs on_stopped */
    bool wrote_pidfile;      /* a failed boot removes it */
};

/*
 * A hot restart is checked (new binary, config, app init) before anything
 * drains: a release that would not come up changes nothing.
 */
static int request_restart(single_t *s, const char *trigger)
{
    if (s->state != S_RUN || s->lame_duck_until_ms)
        return s->ops.current ? s->ops.current->id : 0;
    int id = sv_oplog_begin(&s->ops, SV_OP_HOT, trigger);
    char err[600];
    if (s->rt->cfg.hot_restart_preflight && sv_hot_restart_preflight(s->rt, true, err, sizeof(err)) < 0) {
        sv_log_error("! Hot restart failed: %s; serving on", err);
        sv_oplog_finish_current(&s->ops, false, err);
        return id;
    }
    begin_stop(s, S_RESTART, trigger);
    return id;
}

static void begin_stop(single_t *s, single_state_t next, const char *why)
{
    if (s->state != S_RUN)
        return;
    s->state = next;
    s->drain_started_ms = sv_now_ms();
    if (next == S_STOP) {
        sv_notify("STOPPING=1");
        sv_log("- Gracefully stopping, waiting for requests to finish");
        sv_server_stop_accepting(s->srv, true); /* new connections are refused */
    } else {
        sv_notify_reloading();
        sv_log("* Restarting... (%s)", why);
        sv_server_stop_accepting(s->srv, false); /* new connections wait in the backlog */
    }
    sv_server_drain(s->srv);
}

static void on_lame_duck_over(sv_loop_t *loop, sv_timer_t *t, void *arg)
{
    single_t *s = arg;
    (void)loop, (void)t;
    if (s->state == S_RUN)
        begin_stop(s, S_STOP, "shutdown_delay over");
}

/* shutdown_delay: as in the master (master.c, stop_or_lame_duck). */
static void stop_or_lame_duck(single_t *s, const char *trigger)
{
    double delay = s->rt->cfg.shutdown_delay;
    bool second = s->lame_duck_until_ms != 0;
    if (s->state != S_RUN || delay <= 0 || second || !strcmp(trigger, "INT")) {
        if (second && s->state == S_RUN)
            sv_log("- Lame duck cut short (%s)", trigger);
        begin_stop(s, S_STOP, trigger);
        return;
    }
    s->lame_duck_until_ms = sv_now_ms() + (int64_t)(delay * 1000);
    sv_timer_init(&s->lame_duck_timer, on_lame_duck_over, s);
    sv_loop_timer_start(s->loop, &s->lame_duck_timer, (int64_t)(delay * 1000), 0);
    sv_notify("STATUS=lame duck: readiness 503, still serving");
    sv_log("- Lame duck for %g s (%s): /readyz answers 503, serving goes on; the graceful stop follows "
           "(TERM again to stop now)", delay, trigger);
}

/*
 * The one place where an operator's command becomes an action in single
 * mode, whether it came as a signal (the command table's signal column) or
 * a control request. Returns the operation id of a restart, else 0.
 */
static int act(single_t *s, sv_control_cmd_t cmd, const char *trigger)
{
    switch (cmd) {
    case SV_CMD_STOP: stop_or_lame_duck(s, trigger); return 0;
    case SV_CMD_HALT:
        sv_log("* Stopping immediately!");
        sv_state_remove(s->rt);
        sv_rt_remove_pidfile(s->rt);
        sv_control_close(s->control, true);
        sv_rt_close_listeners(s->rt, true);
        _exit(0);
    case SV_CMD_PHASED_RESTART:
        if (strcmp(trigger, "control") != 0)
            sv_log("* phased-restart called but not available in single mode, restarting normally.");
        return request_restart(s, trigger);
    case SV_CMD_RESTART: return request_restart(s, trigger);
    case SV_CMD_RELOAD_CERTS: sv_certs_reload(s->rt, trigger, NULL); return 0;
    case SV_CMD_INFO:
        sv_state_log_backtrace("main");
        sv_server_dump_threads(s->srv);
        return 0;
    case SV_CMD_REOPEN_LOG:
        if (s->rt->cfg.stdout_redirect || s->rt->cfg.stderr_redirect)
            sv_rt_reopen_logs(s->rt);
        else
            begin_stop(s, S_STOP, trigger); /* Puma: HUP without a log file stops */
        return 0;
    default: return 0; /* refork, TTIN, TTOU: cluster only */
    }
}

static void on_signal_cb(sv_loop_t *loop, int fd, short revents, void *arg)
{
    single_t *s = arg;
    int sigs[64];
    int n = sv_sig_drain(sigs, 64);
    (void)loop, (void)fd, (void)revents;
    for (int i = 0; i < n; i++) {
        const sv_command_t *c = sv_command_by_signal(sigs[i]);
        if (!c)
            continue;
        char trigger[16];
        if (c->cmd == SV_CMD_STOP)
            snprintf(trigger, sizeof(trigger), "%s", sv_sig_name(sigs[i]));
        else if (c->cmd == SV_CMD_REOPEN_LOG)
            snprintf(trigger, sizeof(trigger), "SIGHUP");
        else
            snprintf(trigger, sizeof(trigger), "SIG%s", sv_sig_name(sigs[i]));
        act(s, c->cmd, trigger);
    }
}

/* Control-server commands in single mode. */
static int control_cb(void *arg, sv_control_cmd_t cmd, const char *query, sv_buf_t *out, int *op_id)
{
    single_t *s = arg;
    switch (cmd) {
    case SV_CMD_STOP: act(s, cmd, "control"); return 200;
    case SV_CMD_HALT:
        sv_sig_post(SIGQUIT); /* after this answer is sent: the loop acts on it */
        return 200;
    case SV_CMD_RESTART:
    case SV_CMD_PHASED_RESTART:
        *op_id = act(s, cmd, "control");
        return 200;
    case SV_CMD_REFORK:
        sv_buf_puts(out, "{ \"error\": \"refork not available\" }");
        return 404;
    case SV_CMD_STATS:
        sv_state_single_stats(s->rt, s->srv, &s->ops, out);
        return 200;
    case SV_CMD_METRICS:
        sv_state_single_metrics(s->rt, s->srv, &s->ops, out);
        return 200;
    case SV_CMD_OPERATION:
        return sv_state_operation(&s->ops, query, out);
    case SV_CMD_GC:
        return 200;
    case SV_CMD_GC_STATS:
        sv_state_gc_stats(out);
        return 200;
    case SV_CMD_THREAD_BACKTRACES:
        sv_state_backtraces("single", s->srv, out);
        return 200;
    case SV_CMD_HEALTH:
    case SV_CMD_READY:
        if (s->state == S_RUN && s->lame_duck_until_ms) {
            sv_buf_puts(out, "{ \"status\": \"lame-duck\" }");
            return 503;
        }
        sv_buf_puts(out, s->state == S_RUN ? "{ \"status\": \"ok\" }" : "{ \"status\": \"draining\" }");
        return s->state == S_RUN ? 200 : 503;
    case SV_CMD_LIVE:
        sv_buf_puts(out, "{ \"status\": \"ok\" }");
        return 200;
    case SV_CMD_RELOAD_CERTS:
        return sv_certs_reload(s->rt, "control", out);
    default:
        return 404;
    }
}

static int start_server(single_t *s)
{
    sv_server_opts_t o;
    sv_rt_server_opts(s->rt, &o);
    s->srv = sv_server_new(&o);
    if (!s->srv || sv_server_start(s->srv) < 0) {
        fprintf(stderr, "serval: cannot start serving threads\n");
        return -1;
    }
    return 0;
}

static void finish(single_t *s)
{
    int stuck = sv_server_shutdown(s->srv, 1000);
    if (stuck) {
        /* the app still runs on those threads: no hook, no fini, no exec */
        sv_log_error("! forced shutdown abandoned %d request%s still in the app", stuck, stuck == 1 ? "" : "s");
        if (s->state == S_RESTART)
            sv_hot_restart_exec_single(s->rt, s->control, &s->ops, false);
        sv_state_remove(s->rt);
        sv_rt_remove_pidfile(s->rt);
        sv_rt_close_listeners(s->rt, true);
        _exit(0);
    }
    if (s->state == S_RESTART) {
        sv_hot_restart_exec_single(s->rt, s->control, &s->ops, true);
        /* the exec failed: serve again with fresh threads and epoll */
        sv_log_error("! hot restart failed; serving on");
        sv_server_free(s->srv);
        if (start_server(s) < 0)
            exit(1);
        s->state = S_RUN;
        s->lost_all = false;
        sv_notify("READY=1");
        return;
    }
    sv_app_hook(&s->rt->app, SV_HOOK_ON_STOPPED, -1);
    sv_app_fini(&s->rt->app);
    sv_control_close(s->control, true);
    sv_state_remove(s->rt);
    sv_rt_remove_pidfile(s->rt);
    sv_rt_close_listeners(s->rt, true);
    sv_log("- Goodbye!");
    exit(0);
}

static void setup_signals(single_t *s)
{
    sv_sig_open();
    int caught[] = {SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGHUP, SIGPWR, SIGWINCH};
    for (size_t i = 0; i < sizeof(caught) / sizeof(caught[0]); i++)
        sv_sig_catch(caught[i]);
    sv_sig_ignore(SIGPIPE);
    /* cluster-only signals must not stop (TTIN/TTOU default) a single process */
    sv_sig_ignore(SIGTTIN);
    sv_sig_ignore(SIGTTOU);
    sv_sig_ignore(SIGURG);
    sv_loop_watch(s->loop, sv_sig_fd(), POLLIN, on_signal_cb, s);
    sv_sig_ready(); /* after a hot restart: what arrived during the exec is in the pipe now */
}

static void on_tick(sv_loop_t *loop, sv_timer_t *t, void *arg)
{
    single_t *s = arg;
    sv_runtime_t *rt = s->rt;
    (void)loop, (void)t;
    int64_t now = sv_now_ms();
    sv_server_tick(s->srv, now);
    /* every thread lost past app_timeout: nothing serves any more; a fresh image will */
    int lost = sv_server_lost_threads(s->srv);
    if (s->state == S_RUN && lost > 0 && lost >= rt->cfg.max_threads) {
        sv_log_error("! app_timeout: all %d threads are stuck in the app; restarting (hot restart)", lost);
        s->lost_all = true;
        request_restart(s, "app_timeout");
    }
    /* then nothing can serve what is left: the cleanup grace bounds the wait */
    if (s->state != S_RUN && s->lost_all &&
        now - s->drain_started_ms >= (int64_t)(rt->cfg.app_timeout_cleanup * 1000))
        finish(s);
    else if (s->state != S_RUN && sv_rt_drain_done(rt, s->srv, s->drain_started_ms, now))
        finish(s);
}

static void on_tmp_restart(void *arg)
{
    single_t *s = arg;
    if (s->state == S_RUN)
        request_restart(s, "tmp_restart");
}

static void start_timers(single_t *s)
{
    sv_timer_init(&s->tick_timer, on_tick, s);
    sv_loop_timer_start(s->loop, &s->tick_timer, SINGLE_TICK_MS, SINGLE_TICK_MS);
    sv_rt_timers_start(&s->timers, s->rt, s->loop, on_tmp_restart, s);
}

/*
 * A boot that failed gives back what it took: the serving threads, the app
 * (on_stopped after on_booted, fini after a successful init), the control
 * server, the pid file it wrote, the listeners with the socket files this
 * process created, and the loop. Returns the exit status.
 */
static int abandon_boot(single_t *s)
{
    /* threads still in the app keep the server, and no hook or fini may run beside them */
    if (!s->srv || sv_server_shutdown(s->srv, 1000) == 0) {
        sv_server_free(s->srv);
        if (s->booted)
            sv_app_hook(&s->rt->app, SV_HOOK_ON_STOPPED, -1);
        if (s->rt->app.initialized)
            sv_app_fini(&s->rt->app);
    }
    sv_control_close(s->control, true);
    if (s->wrote_pidfile)
        sv_rt_remove_pidfile(s->rt);
    sv_rt_close_listeners(s->rt, true);
    sv_loop_free(s->loop);
    return 1;
}

int sv_single_run(sv_runtime_t *rt)
{
    single_t s = {.rt = rt, .state = S_RUN};
    char err[600], tag[256];
    bool failed = false;
    s.loop = sv_loop_new();
    if (!s.loop) {
        fprintf(stderr, "serval: out of memory\n");
        goto fail;
    }
    sv_oplog_init(&s.ops);
    sv_handover_adopt_ops(rt, &s.ops);
    sv_rt_set_context(rt, SERVAL_ROLE_SINGLE, -1, 0);
    sv_rt_banner(rt, false);
    sv_proc_set_title("serval %s (%s) [%s]", SERVAL_VERSION, sv_config_bind(&rt->cfg, 0),
                      sv_rt_tag(rt, tag, sizeof(tag)));
    setup_signals(&s);
    if (sv_notify_init())
        sv_log("* Enabling systemd notification integration");
    if (sv_rt_load_app(rt) < 0)
        goto fail;
    if (sv_app_init(&rt->app, err, sizeof(err)) < 0) {
        fprintf(stderr, "serval: %s\n", err);
        goto fail;
    }
    /* on_booted runs before the serving threads: hooks never overlap handle() */
    sv_app_hook(&rt->app, SV_HOOK_ON_BOOTED, -1);
    s.booted = true;
    if (start_server(&s) < 0)
        goto fail;
    sv_rt_write_pidfile(rt);
    s.wrote_pidfile = true;
    s.control = sv_state_control_open(rt, s.loop, control_cb, &s, &failed);
    if (failed && !rt->hot_restarted)
        goto fail;
    sv_handover_drop(rt);
    sv_state_write(rt);
    sv_rt_banner_listeners(rt);
    sv_log("Use Ctrl-C to stop");
    sv_oplog_finish_current(&s.ops, true, NULL);
    sv_notify("READY=1\nMAINPID=%d\nSTATUS=serval %s: single mode, serving", (int)getpid(), SERVAL_VERSION);
    start_timers(&s);
    sv_loop_run(s.loop); /* never stopped: the process ends in finish() or halt */
    return 0;
fail:
    return abandon_boot(&s);
}
