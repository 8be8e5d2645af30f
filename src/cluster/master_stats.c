/*
 * master_stats.c: what the master reports: the control-server commands,
 * Puma-shaped stats JSON with serval's extras, Prometheus metrics, and the
 * per-worker memory readings they include.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cluster/certs.h"
#include "cluster/master_internal.h"
#include "cluster/state.h"
#include "core/json.h"
#include "core/time.h"
#include "os/chan.h"

void sv_master_parse_ping(sv_whandle_t *h, const char *msg)
{
    sv_wstatus_t *s = &h->st;
    s->backlog = (int)sv_msg_int(msg, "backlog", 0);
    s->running = (int)sv_msg_int(msg, "running", 0);
    s->pool_capacity = (int)sv_msg_int(msg, "pool_capacity", 0);
    s->busy_threads = (int)sv_msg_int(msg, "busy_threads", 0);
    s->max_threads = (int)sv_msg_int(msg, "max_threads", 0);
    s->requests_count = (uint64_t)sv_msg_int(msg, "requests_count", 0);
    s->connections = (int)sv_msg_int(msg, "connections", 0);
    if (!h->has_status || s->backlog > s->backlog_max)
        s->backlog_max = s->backlog; /* the max since the last stats read, as Puma */
    int rmax = (int)sv_msg_int(msg, "reactor_max", 0);
    if (!h->has_status || rmax > s->reactor_max)
        s->reactor_max = rmax; /* the max since the last stats read */
    s->app_ms = (uint64_t)sv_msg_int(msg, "app_ms", 0);
    s->rebalanced = (uint64_t)sv_msg_int(msg, "rebalanced", 0);
    h->has_status = true;
}

void sv_master_sample_memory(sv_master_t *m)
{
    for (int i = 0; i < m->nw; i++)
        if (m->w[i]->pid > 0)
            sv_proc_memory(m->w[i]->pid, &m->w[i]->mem);
}

/* ---- stats ----------------------------------------------------------------------- */

static void iso(sv_json_t *w, const char *key, time_t t)
{
    char buf[32];
    sv_json_key(w, key);
    sv_json_str(w, sv_iso8601(buf, sizeof(buf), t));
}

static void kv_int(sv_json_t *w, const char *key, int64_t v)
{
    sv_json_key(w, key);
    sv_json_int(w, v);
}

static void mem_json(sv_json_t *w, const sv_mem_t *mem)
{
    sv_json_obj(w);
    kv_int(w, "rss", (int64_t)mem->rss);
    kv_int(w, "pss", (int64_t)mem->pss);
    kv_int(w, "shared", (int64_t)mem->shared);
    kv_int(w, "private", (int64_t)mem->private_);
    sv_json_obj_end(w);
}

static void last_status_json(sv_json_t *w, sv_whandle_t *h)
{
    sv_json_obj(w);
    if (h->has_status) {
        const sv_wstatus_t *s = &h->st;
        kv_int(w, "backlog", s->backlog);
        kv_int(w, "running", s->running);
        kv_int(w, "pool_capacity", s->pool_capacity);
        kv_int(w, "busy_threads", s->busy_threads);
        kv_int(w, "backlog_max", s->backlog_max);
        kv_int(w, "max_threads", s->max_threads);
        kv_int(w, "requests_count", (int64_t)s->requests_count);
        kv_int(w, "reactor_max", s->reactor_max);
        kv_int(w, "connections", s->connections);
        kv_int(w, "connections_rebalanced", (int64_t)s->rebalanced);
        h->st.reactor_max = s->connections;
        h->st.backlog_max = s->backlog;
    }
    sv_json_obj_end(w);
}

static void worker_json(sv_master_t *m, sv_json_t *w, sv_whandle_t *h, uint64_t total_requests)
{
    sv_json_obj(w);
    iso(w, "started_at", h->started_wall);
    sv_json_key(w, "pid");
    if (h->pid > 0)
        sv_json_int(w, h->pid);
    else
        sv_json_null(w);
    kv_int(w, "index", h->index);
    kv_int(w, "phase", h->phase);
    sv_json_key(w, "booted");
    sv_json_bool(w, h->booted);
    iso(w, "last_checkin", h->checkin_wall);
    sv_json_key(w, "last_status");
    last_status_json(w, h);
    /* serval's extras */
    sv_json_key(w, "memory");
    mem_json(w, &h->mem);
    kv_int(w, "generation", h->generation);
    sv_json_key(w, "forked_from");
    sv_json_str(w, h->generation ? "mold" : "master");
    kv_int(w, "forked_from_pid", h->forked_from);
    sv_json_key(w, "state");
    sv_json_str(w, h->stopping ? "stopping" : h->superseded ? "superseded" : h->booted ? "serving" : "booting");
    sv_json_key(w, "old_image");
    sv_json_bool(w, h->old_image);
    sv_json_key(w, "requests_share");
    sv_json_double(w, total_requests ? (double)h->st.requests_count / (double)total_requests : 0.0);
    sv_json_obj_end(w);
    (void)m;
}

/*
 * Puma's counts are of the workers that serve: a worker told to stop (it
 * drains, then exits) is counted apart, under "stopping_workers", so an
 * operation that reports succeeded shows no old worker.
 */
static int old_workers(const sv_master_t *m)
{
    int n = 0;
    for (int i = 0; i < m->nw; i++)
        if (!m->w[i]->stopping && (m->w[i]->phase < m->phase || m->w[i]->old_image || m->w[i]->superseded))
            n++;
    return n;
}

static int stopping_workers(const sv_master_t *m)
{
    int n = 0;
    for (int i = 0; i < m->nw; i++)
        n += m->w[i]->stopping;
    return n;
}

static void cluster_extras(sv_master_t *m, sv_json_t *w)
{
    sv_json_key(w, "versions");
    sv_json_obj(w);
    sv_json_key(w, "serval");
    sv_json_str(w, SERVAL_VERSION);
    kv_int(w, "app_abi", SERVAL_ABI_VERSION);
    sv_json_obj_end(w);
    sv_json_key(w, "mode");
    sv_json_str(w, "cluster");
    kv_int(w, "target_workers", m->target);
    kv_int(w, "stopping_workers", stopping_workers(m));
    sv_json_key(w, "restart");
    sv_oplog_json(&m->ops, w);
    sv_mem_t mold_mem = {0};
    sv_json_key(w, "mold");
    if (m->mold.pid > 0) {
        sv_json_obj(w);
        kv_int(w, "pid", m->mold.pid);
        kv_int(w, "generation", m->mold.generation);
        sv_json_key(w, "ready");
        sv_json_bool(w, m->mold.ready);
        sv_json_key(w, "state");
        sv_json_str(w, sv_molds_state_name(m));
        sv_proc_memory(m->mold.pid, &mold_mem);
        sv_json_key(w, "memory");
        mem_json(w, &mold_mem);
        sv_json_obj_end(w);
    } else {
        sv_json_null(w);
    }
    sv_mem_t self = {0};
    sv_proc_memory(getpid(), &self);
    uint64_t total = self.pss + mold_mem.pss; /* every process of the cluster */
    for (int i = 0; i < m->nw; i++)
        total += m->w[i]->mem.pss;
    sv_json_key(w, "memory");
    sv_json_obj(w);
    sv_json_key(w, "master");
    mem_json(w, &self);
    kv_int(w, "total_pss", (int64_t)total);
    sv_json_obj_end(w);
    sv_json_key(w, "config");
    sv_config_to_json(&m->rt->cfg, w);
    static const char *const causes[SV_DEATH_CAUSES] = {"stopped", "crash", "boot_failure", "timeout", "lost"};
    sv_json_key(w, "worker_deaths");
    sv_json_obj(w);
    for (int c = 0; c < SV_DEATH_CAUSES; c++)
        kv_int(w, causes[c], (int64_t)m->deaths[c]);
    sv_json_obj_end(w);
    kv_int(w, "app_timeouts", (int64_t)m->app_timeouts);
    kv_int(w, "crashes", (int64_t)m->deaths[SV_DEATH_CRASH]);
}

static void stats_json(sv_master_t *m, sv_buf_t *out)
{
    sv_json_t w;
    sv_json_init(&w, out);
    int booted = 0;
    uint64_t total = 0;
    int serving = 0;
    for (int i = 0; i < m->nw; i++) {
        if (m->w[i]->stopping)
            continue;
        serving++;
        booted += m->w[i]->booted;
        total += m->w[i]->st.requests_count;
    }
    sv_json_obj(&w);
    iso(&w, "started_at", m->rt->started_at);
    kv_int(&w, "workers", serving);
    kv_int(&w, "phase", m->phase);
    kv_int(&w, "booted_workers", booted);
    kv_int(&w, "old_workers", old_workers(m));
    sv_json_key(&w, "worker_status");
    sv_json_arr(&w);
    for (int i = 0; i < m->nw; i++)
        if (!m->w[i]->stopping)
            worker_json(m, &w, m->w[i], total);
    sv_json_arr_end(&w);
    cluster_extras(m, &w);
    sv_certs_stats(m->rt, &w);
    sv_json_obj_end(&w);
}

/* ---- metrics ------------------------------------------------------------------------ */

static void per_worker(sv_master_t *m, sv_buf_t *out, const char *name, const char *type, const char *help,
                       double (*get)(const sv_whandle_t *))
{
    sv_metric_head(out, name, type, help);
    for (int i = 0; i < m->nw; i++) {
        const sv_whandle_t *h = m->w[i];
        char labels[96];
        snprintf(labels, sizeof(labels), "worker=\"%d\",pid=\"%d\",phase=\"%u\"", h->index, (int)h->pid, h->phase);
        sv_metric(out, name, labels, get(h));
    }
}

static double g_requests(const sv_whandle_t *h) { return (double)h->st.requests_count; }
static double g_running(const sv_whandle_t *h) { return h->st.running; }
static double g_busy(const sv_whandle_t *h) { return h->st.busy_threads; }
static double g_capacity(const sv_whandle_t *h) { return h->st.pool_capacity; }
static double g_backlog(const sv_whandle_t *h) { return h->st.backlog; }
static double g_conns(const sv_whandle_t *h) { return h->st.connections; }
static double g_rebalanced(const sv_whandle_t *h) { return (double)h->st.rebalanced; }
static double g_rss(const sv_whandle_t *h) { return (double)h->mem.rss; }
static double g_pss(const sv_whandle_t *h) { return (double)h->mem.pss; }
static double g_shared(const sv_whandle_t *h) { return (double)h->mem.shared; }
static double g_private(const sv_whandle_t *h) { return (double)h->mem.private_; }
static double g_booted(const sv_whandle_t *h) { return h->booted; }
static double g_checkin(const sv_whandle_t *h) { return (double)h->checkin_wall; }

static void metrics(sv_master_t *m, sv_buf_t *out)
{
    int booted = 0;
    for (int i = 0; i < m->nw; i++)
        booted += m->w[i]->booted;
    sv_metric_head(out, "serval_up", "gauge", "1 while serval serves.");
    sv_metric(out, "serval_up", NULL, m->state == M_RUN);
    sv_metric_head(out, "serval_start_time_seconds", "gauge", "Start time of the master (unix seconds).");
    sv_metric(out, "serval_start_time_seconds", NULL, (double)m->rt->started_at);
    sv_metric_head(out, "serval_workers", "gauge", "Worker processes tracked.");
    sv_metric(out, "serval_workers", NULL, m->nw);
    sv_metric_head(out, "serval_workers_target", "gauge", "Configured worker count.");
    sv_metric(out, "serval_workers_target", NULL, m->target);
    sv_metric_head(out, "serval_workers_booted", "gauge", "Workers that have booted.");
    sv_metric(out, "serval_workers_booted", NULL, booted);
    sv_metric_head(out, "serval_workers_old", "gauge", "Workers still running old code during a restart.");
    sv_metric(out, "serval_workers_old", NULL, old_workers(m));
    sv_metric_head(out, "serval_phase", "gauge", "Phased restarts completed by this master.");
    sv_metric(out, "serval_phase", NULL, m->phase);
    per_worker(m, out, "serval_worker_requests_total", "counter", "Requests answered by a worker.", g_requests);
    per_worker(m, out, "serval_worker_threads_running", "gauge", "Serving threads started.", g_running);
    per_worker(m, out, "serval_worker_threads_busy", "gauge", "App calls running.", g_busy);
    per_worker(m, out, "serval_worker_pool_capacity", "gauge", "App calls that could start now.", g_capacity);
    per_worker(m, out, "serval_worker_backlog", "gauge", "Connections waiting in the listen queues.", g_backlog);
    per_worker(m, out, "serval_worker_connections", "gauge", "Open client connections.", g_conns);
    per_worker(m, out, "serval_worker_connections_rebalanced_total", "counter",
               "Keep-alive connections a worker closed after a response to move them to a less loaded worker.",
               g_rebalanced);
    per_worker(m, out, "serval_worker_booted", "gauge", "1 once the worker booted.", g_booted);
    per_worker(m, out, "serval_worker_last_checkin_seconds", "gauge", "Last check-in (unix seconds).", g_checkin);
    per_worker(m, out, "serval_worker_memory_rss_bytes", "gauge", "Resident set size.", g_rss);
    per_worker(m, out, "serval_worker_memory_pss_bytes", "gauge", "Proportional set size.", g_pss);
    per_worker(m, out, "serval_worker_memory_shared_bytes", "gauge", "Shared resident bytes.", g_shared);
    per_worker(m, out, "serval_worker_memory_private_bytes", "gauge", "Private resident bytes.", g_private);
    static const char *const causes[SV_DEATH_CAUSES] = {"stopped", "crash", "boot_failure", "timeout", "lost"};
    sv_metric_head(out, "serval_worker_deaths_total", "counter", "Worker exits by cause.");
    for (int c = 0; c < SV_DEATH_CAUSES; c++) {
        char labels[48];
        snprintf(labels, sizeof(labels), "cause=\"%s\"", causes[c]);
        sv_metric(out, "serval_worker_deaths_total", labels, (double)m->deaths[c]);
    }
    sv_metric_head(out, "serval_app_timeouts_total", "counter", "App calls that ran past app_timeout.");
    sv_metric(out, "serval_app_timeouts_total", NULL, (double)m->app_timeouts);
    sv_metric_head(out, "serval_crashes_total", "counter", "Workers that died of a crash while serving.");
    sv_metric(out, "serval_crashes_total", NULL, (double)m->deaths[SV_DEATH_CRASH]);
    sv_metric_head(out, "serval_restarts_total", "counter", "Restart operations by kind and outcome.");
    for (int k = 0; k < SV_OP_KINDS; k++)
        for (int ok = 1; ok >= 0; ok--) {
            char labels[96];
            snprintf(labels, sizeof(labels), "kind=\"%s\",outcome=\"%s\"", sv_op_kind_name((sv_op_kind_t)k),
                     ok ? "succeeded" : "failed");
            sv_metric(out, "serval_restarts_total", labels, (double)m->ops.outcomes[k][ok]);
        }
    sv_metric_head(out, "serval_restart_in_progress", "gauge", "1 while a restart operation runs.");
    sv_metric(out, "serval_restart_in_progress", NULL, m->ops.current != NULL);
    sv_certs_metrics(m->rt, out);
}

/* ---- the control server's commands --------------------------------------------------- */

static int health(sv_master_t *m, sv_buf_t *out, bool ready)
{
    if (ready && m->state == M_RUN && m->lame_duck_until_ms) {
        sv_buf_puts(out, "{ \"status\": \"lame-duck\" }");
        return 503;
    }
    bool ok = m->state == M_RUN;
    if (ready) {
        int serving = 0;
        for (int i = 0; i < m->nw; i++)
            serving += m->w[i]->booted && !m->w[i]->stopping;
        ok = ok && serving > 0;
    }
    sv_buf_puts(out, ok ? "{ \"status\": \"ok\" }" : m->state == M_RUN ? "{ \"status\": \"booting\" }"
                                                                     : "{ \"status\": \"draining\" }");
    return ok ? 200 : 503;
}

static int request_op(sv_master_t *m, sv_op_kind_t kind, sv_buf_t *out, int *op_id)
{
    char err[128] = "";
    static const sv_control_cmd_t by_kind[SV_OP_KINDS] = {SV_CMD_RESTART, SV_CMD_PHASED_RESTART, SV_CMD_REFORK};
    int id = sv_master_act(m, by_kind[kind], "control", err, sizeof(err));
    if (!id) {
        sv_buf_printf(out, "{ \"error\": \"%s\" }", err);
        return kind == SV_OP_REFORK ? 404 : 503;
    }
    *op_id = id;
    return 200;
}

int sv_master_control(void *arg, sv_control_cmd_t cmd, const char *query, sv_buf_t *out, int *op_id)
{
    sv_master_t *m = arg;
    switch (cmd) {
    case SV_CMD_STOP:
    case SV_CMD_HALT:
    case SV_CMD_RELOAD_WORKER_DIRECTORY: sv_master_act(m, cmd, "control", NULL, 0); return 200;
    case SV_CMD_RESTART: return request_op(m, SV_OP_HOT, out, op_id);
    case SV_CMD_PHASED_RESTART: return request_op(m, SV_OP_PHASED, out, op_id);
    case SV_CMD_REFORK: return request_op(m, SV_OP_REFORK, out, op_id);
    case SV_CMD_STATS: stats_json(m, out); return 200;
    case SV_CMD_METRICS: metrics(m, out); return 200;
    case SV_CMD_GC: return 200;
    case SV_CMD_GC_STATS: sv_state_gc_stats(out); return 200;
    case SV_CMD_THREAD_BACKTRACES: sv_state_backtraces("master", NULL, out); return 200;
    case SV_CMD_HEALTH:
    case SV_CMD_READY: return health(m, out, true);
    case SV_CMD_LIVE: return health(m, out, false);
    case SV_CMD_OPERATION: return sv_state_operation(&m->ops, query, out);
    case SV_CMD_RELOAD_CERTS: return sv_certs_reload(m->rt, "control", out);
    default: return 404;
    }
}
