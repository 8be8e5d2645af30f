/*
 * worker.c: a cluster worker's main thread: boot (app, on_worker_boot,
 * serving threads), then its event loop: the self-pipe and the channel to
 * the master (stop, make-mold) as watchers, the check-in and the serving
 * tick as timers, until its drain is done.
 */
#include "cluster/worker.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster/mold.h"
#include "cluster/state.h"
#include "cluster/proto.h"
#include "core/log.h"
#include "core/time.h"
#include "os/chan.h"
#include "os/loop.h"
#include "os/proc.h"
#include "os/sig.h"

/* The server's sweep of its connections' deadlines (sv_server_tick), and the drain check. */
#define WORKER_TICK_MS 20

typedef struct worker {
    const sv_worker_args_t *a;
    sv_runtime_t *rt;
    sv_server_t *srv;
    int chan;
    bool stopping;
    bool master_gone;
    int64_t stop_started_ms;
    int64_t boot_started_ms;
    sv_loop_t *loop;
    sv_timer_t ping_timer;   /* every worker_check_interval until the stop */
    sv_timer_t tick_timer;   /* the server's sweep (deadlines of its connections) and the drain check */
    uint64_t app_timeouts;   /* reported to the master so far */
} worker_t;

static void fail_boot(worker_t *w, const char *reason)
{
    sv_proto_msg_t msg;
    sv_proto_new(&msg, SV_PROTO_BOOT_FAILED);
    sv_proto_int(&msg, "pid", getpid());
    sv_proto_int(&msg, "index", w->a->index);
    sv_proto_str(&msg, "reason", reason);
    sv_proto_send(w->chan, &msg, -1, 1000);
    sv_log_error("! Unable to start worker %d: %s", w->a->index, reason);
    exit(1);
}

static void setup_signals(void)
{
    sv_sig_open();
    sv_sig_catch(SIGTERM);
    sv_sig_catch(SIGHUP);
    sv_sig_catch(SIGQUIT);
    sv_sig_catch(SIGPWR);
    sv_sig_ignore(SIGINT); /* Ctrl-C reaches the master, which stops workers in order */
    sv_sig_ignore(SIGPIPE);
    int ignored[] = {SIGUSR1, SIGUSR2, SIGURG, SIGTTIN, SIGTTOU};
    for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++)
        sv_sig_ignore(ignored[i]);
}

/* Load the app afresh unless this process inherited an initialised copy. */
static void load_app(worker_t *w)
{
    sv_runtime_t *rt = w->rt;
    char err[600];
    if (rt->app_loaded && rt->app.initialized)
        return;
    /*
     * A phased restart may have re-pointed the release the master loaded its
     * hooks from. dlopen matches by name, so the inherited copy must go first
     * or the same path would give back the old code.
     */
    bool reloaded = false;
    if (rt->app_loaded && sv_app_file_changed(&rt->app, rt->cfg.app_path)) {
        reloaded = true;
        sv_app_unload(&rt->app);
        rt->app_loaded = false;
    }
    if (!rt->app_loaded) {
        if (sv_app_load(&rt->app, rt->cfg.app_path, err, sizeof(err)) < 0)
            fail_boot(w, err);
        rt->app_loaded = true;
        if (reloaded && !sv_app_code_is_current(&rt->app))
            sv_log_error("! worker %d: the old copy of %s could not be unloaded; it keeps serving the old code",
                         w->a->index, rt->cfg.app_path);
    }
    if (sv_app_init(&rt->app, err, sizeof(err)) < 0)
        fail_boot(w, err);
}

static void status_msg(sv_server_t *srv, char *buf, size_t cap)
{
    sv_server_stats_t st;
    sv_server_stats(srv, &st);
    snprintf(buf, cap,
             "%s pid=%d backlog=%d running=%d pool_capacity=%d busy_threads=%d max_threads=%d "
             "requests_count=%llu connections=%d reactor_max=%d app_ms=%llu rebalanced=%llu",
             sv_proto_name(SV_PROTO_PING), (int)getpid(), st.backlog, st.running, st.pool_capacity, st.busy_threads, st.max_threads,
             (unsigned long long)st.requests_count, st.connections, st.connections_max,
             (unsigned long long)(st.app_ns_total / 1000000), (unsigned long long)st.connections_rebalanced);
}

static void on_ping(sv_loop_t *loop, sv_timer_t *t, void *arg)
{
    worker_t *w = arg;
    (void)loop, (void)t;
    /* all threads stuck in the app: stay silent so the master's worker_timeout acts */
    if (!sv_server_progressing(w->srv))
        return;
    char msg[SV_CHAN_MSG_MAX];
    status_msg(w->srv, msg, sizeof(msg));
    sv_chan_send(w->chan, msg, -1, 0);
}

static void begin_stop(worker_t *w, const char *why)
{
    if (w->stopping)
        return;
    w->stopping = true;
    w->stop_started_ms = sv_now_ms();
    sv_loop_timer_stop(w->loop, &w->ping_timer);
    sv_log_debug("- Worker %d stopping (%s)", w->a->index, why);
    /*
     * A worker replaced after an app timeout has threads it will never get
     * back: connections still queued on the shared listeners are left to the
     * other workers rather than taken and maybe never served.
     */
    sv_server_stop_accepting(w->srv, w->app_timeouts == 0);
    sv_server_drain(w->srv);
}

static void on_master_msg(sv_loop_t *loop, int chanfd, short revents, void *arg)
{
    worker_t *w = arg;
    char msg[SV_CHAN_MSG_MAX];
    int fd;
    (void)revents;
    for (;;) {
        int n = sv_chan_recv(chanfd, msg, sizeof(msg), &fd);
        if (n == -EAGAIN)
            return;
        if (n <= 0) {
            if (!w->master_gone)
                sv_log_error("! Detected parent died, dying");
            w->master_gone = true;
            sv_loop_unwatch(loop, chanfd);
            begin_stop(w, "master gone");
            return;
        }
        sv_proto_verb_t v = sv_proto_verb(msg);
        if (v == SV_PROTO_STOP)
            begin_stop(w, "told by master");
        else if (v == SV_PROTO_MAKE_MOLD && w->a->fork_worker && !w->stopping)
            sv_mold_fork_from_worker(w->a, w->srv, msg, fd);
        else if (fd >= 0)
            close(fd);
    }
}

static void on_signals(sv_loop_t *loop, int fd, short revents, void *arg)
{
    worker_t *w = arg;
    int sigs[64];
    (void)loop, (void)fd, (void)revents;
    int n = sv_sig_drain(sigs, 64);
    for (int i = 0; i < n; i++) {
        switch (sigs[i]) {
        case SIGTERM:
            /* not from the master (it uses the channel): tell it, so it does not count a crash */
            sv_proto_sendf(w->chan, SV_PROTO_STOPPING, " pid=%d", (int)getpid());
            begin_stop(w, "SIGTERM");
            break;
        case SIGQUIT:
            _exit(0);
        case SIGHUP:
            sv_rt_reopen_logs(w->rt);
            break;
        case SIGPWR:
            sv_state_log_backtrace("main");
            sv_server_dump_threads(w->srv);
            break;
        default:
            break;
        }
    }
}

/*
 * An app call ran past app_timeout: the master boots a replacement, then
 * stops this worker (app-timeout pid= index= new=N).
 */
static void report_app_timeouts(worker_t *w)
{
    uint64_t n = sv_server_app_timeouts(w->srv);
    if (n == w->app_timeouts)
        return;
    sv_proto_sendf(w->chan, SV_PROTO_APP_TIMEOUT, " pid=%d index=%d new=%llu", (int)getpid(), w->a->index,
                   (unsigned long long)(n - w->app_timeouts));
    w->app_timeouts = n;
}

static bool stop_done(worker_t *w, int64_t now)
{
    if (!w->stopping)
        return false;
    if (sv_rt_drain_done(w->rt, w->srv, w->stop_started_ms, now))
        return true;
    /* replaced after an app timeout: its other requests get the cleanup grace, no more */
    if (w->app_timeouts && now - w->stop_started_ms >= (int64_t)(w->rt->cfg.app_timeout_cleanup * 1000))
        return true;
    /* an orphan does not wait for ever: the master would have killed it by now */
    return w->master_gone && now - w->stop_started_ms > (int64_t)(w->rt->cfg.worker_shutdown_timeout * 1000);
}

static void on_tick(sv_loop_t *loop, sv_timer_t *t, void *arg)
{
    worker_t *w = arg;
    (void)t;
    int64_t now = sv_now_ms();
    sv_server_tick(w->srv, now);
    report_app_timeouts(w);
    if (stop_done(w, now))
        sv_loop_stop(loop);
}

/* The main thread's loop: signals, the master's channel, check-ins, the server's sweep; until the drain is done. */
static void serve(worker_t *w)
{
    w->loop = sv_loop_new();
    if (!w->loop || sv_loop_watch(w->loop, sv_sig_fd(), POLLIN, on_signals, w) < 0 ||
        sv_loop_watch(w->loop, w->chan, POLLIN, on_master_msg, w) < 0) {
        sv_log_error("! Worker %d: out of memory for its loop", w->a->index);
        return;
    }
    sv_timer_init(&w->ping_timer, on_ping, w);
    sv_timer_init(&w->tick_timer, on_tick, w);
    int64_t every = (int64_t)(w->rt->cfg.worker_check_interval * 1000);
    /* the first check-in at once: the master learns the pool's shape */
    sv_loop_timer_start(w->loop, &w->ping_timer, 0, every > 0 ? every : 1);
    sv_loop_timer_start(w->loop, &w->tick_timer, 0, WORKER_TICK_MS);
    sv_loop_run(w->loop);
}

static void start_server(worker_t *w)
{
    sv_server_opts_t o;
    sv_rt_server_opts(w->rt, &o);
    o.load = w->a->load;
    o.n_load = w->a->n_load;
    o.load_index = w->a->index < w->a->n_load ? w->a->index : 0;
    if (!o.load || w->a->n_load < 2)
        o.load = NULL;
    w->srv = sv_server_new(&o);
    if (!w->srv || sv_server_start(w->srv) < 0)
        fail_boot(w, "cannot start serving threads");
}

_Noreturn void sv_worker_main(const sv_worker_args_t *a)
{
    worker_t w = {.a = a, .rt = a->rt, .chan = a->chan, .boot_started_ms = sv_now_ms()};
    char tag[256];
    sv_rt_set_context(a->rt, SERVAL_ROLE_WORKER, a->index, a->phase);
    sv_proc_set_title("serval: cluster worker %d: %d [%s]", a->index, a->master_pid,
                      sv_rt_tag(a->rt, tag, sizeof(tag)));
    setup_signals();
    sv_proto_sendf(w.chan, SV_PROTO_HELLO, " pid=%d index=%d phase=%u gen=%u", (int)getpid(), a->index, a->phase,
                   a->generation);
    load_app(&w);
    if (sv_app_hook(&a->rt->app, SV_HOOK_ON_WORKER_BOOT, a->index) < 0)
        fail_boot(&w, "on_worker_boot failed");
    start_server(&w);
    sv_proto_sendf(w.chan, SV_PROTO_BOOTED, " pid=%d index=%d phase=%u boot_ms=%lld", (int)getpid(), a->index,
                   a->phase, (long long)(sv_now_ms() - w.boot_started_ms));
    serve(&w);
    sv_loop_free(w.loop);
    w.loop = NULL;
    int stuck = sv_server_shutdown(w.srv, 1000);
    if (stuck) {
        sv_log_error("! Worker %d: forced shutdown abandoned %d request%s still in the app", a->index, stuck,
                     stuck == 1 ? "" : "s");
        _exit(0);
    }
    sv_app_hook(&a->rt->app, SV_HOOK_ON_WORKER_SHUTDOWN, a->index);
    sv_app_fini(&a->rt->app);
    exit(0);
}
