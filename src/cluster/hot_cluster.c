/*
 * hot_cluster.c: hot restart in cluster mode, one state machine spanning
 * the exec (m->hot.state). Unlike Puma, the workers keep serving across it:
 *
 *   old image  IDLE -> PREFLIGHT   on_restart hook; run the new binary with
 *                                  --check in the background (a bad config or
 *                                  broken build fails here, nothing changes)
 *              PREFLIGHT -> exec   stop the mold; hand over listeners, the
 *                                  control listener and token, the operations
 *                                  log, and every booted worker (pid, index,
 *                                  channel); exec in place (signals held).
 *   new image  ADOPTING            the old workers become handles marked
 *                                  old_image and superseded (serving, not
 *                                  counted), so the respawn loop boots a full
 *                                  new set beside them.
 *              ADOPTING -> done    every new worker booted: the old ones stop
 *                                  gracefully; SUCCEEDED.
 *              ADOPTING -> FAILED  a new worker cannot boot: the new ones are
 *                                  stopped, the old ones are the workers again
 *                                  and keep serving; in the log, stats and
 *                                  /operation.
 * If the preflight rejects the release or the exec itself fails, FAILED in
 * the old image, which goes on as before. Owns the worker and master
 * records of SERVAL_INHERIT (through handover.h, which owns the variable).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster/handover.h"
#include "cluster/hot_restart.h"
#include "cluster/master_internal.h"
#include "core/log.h"
#include "core/time.h"
#include "os/chan.h"

static void worker_records(sv_master_t *m, sv_buf_t *env, int *keep, int *nkeep)
{
    for (int i = 0; i < m->nw; i++) {
        sv_whandle_t *h = m->w[i];
        if (h->pid <= 0 || h->chan < 0 || !h->booted) {
            /* nothing to keep of a worker still booting: the new image boots its own */
            sv_master_kill_worker(m, h, SV_DEATH_STOPPED);
            continue;
        }
        char rec[400];
        snprintf(rec, sizeof(rec), "worker");
        sv_msg_put_int(rec, sizeof(rec), "pid", h->pid);
        sv_msg_put_int(rec, sizeof(rec), "index", h->index);
        sv_msg_put_int(rec, sizeof(rec), "phase", h->phase);
        sv_msg_put_int(rec, sizeof(rec), "fd", h->chan);
        sv_msg_put_int(rec, sizeof(rec), "started", (int64_t)h->started_wall);
        sv_msg_put_int(rec, sizeof(rec), "stopping", h->stopping);
        sv_msg_put_int(rec, sizeof(rec), "requests", (int64_t)h->st.requests_count);
        sv_handover_add(env, rec);
        keep[(*nkeep)++] = h->chan;
    }
    char rec[300];
    snprintf(rec, sizeof(rec), "master");
    static const char *const keys[SV_DEATH_CAUSES] = {"d_stopped", "d_crash", "d_boot", "d_timeout", "d_lost"};
    for (int c = 0; c < SV_DEATH_CAUSES; c++)
        sv_msg_put_int(rec, sizeof(rec), keys[c], (int64_t)m->deaths[c]);
    sv_msg_put_int(rec, sizeof(rec), "spawned", (int64_t)m->spawned_total);
    sv_handover_add(env, rec);
}

/* -> FAILED; the next step reports it. */
static void fail(sv_master_t *m, const char *err)
{
    sv_log_error("! Hot restart failed: %s; the running workers keep serving", err);
    sv_master_op_failed(m, "%s", err);
    m->hot.state = HOT_FAILED;
}

/* The preflight passed: hand everything over and exec. Returns only on failure. */
static void exec_new_image(sv_master_t *m)
{
    sv_runtime_t *rt = m->rt;
    char err[600];
    sv_app_hook(&rt->app, SV_HOOK_ON_RESTART, -1);
    sv_molds_kill(m);
    sv_control_settle(m->control, SV_CONTROL_SETTLE_MS);
    sv_buf_t env = SV_BUF_INIT;
    /* every listener, the control listener, every worker's channel: sized to the table */
    int *keep = malloc(sizeof(int) * (size_t)(rt->n_listeners + 1 + m->nw));
    int nkeep = 0;
    if (!keep) {
        fail(m, "out of memory");
        return;
    }
    sv_handover_common_records(rt, m->control, &m->ops, &env);
    for (int i = 0; i < rt->n_listeners; i++)
        if (rt->listeners[i].fd >= 0)
            keep[nkeep++] = rt->listeners[i].fd;
    if (m->control)
        keep[nkeep++] = sv_control_fd(m->control);
    worker_records(m, &env, keep, &nkeep);
    int rc = sv_hot_restart_exec(rt, &env, keep, nkeep);
    sv_buf_free(&env);
    free(keep);
    snprintf(err, sizeof(err), "cannot execute %.300s: %s", rt->exe, strerror(-rc));
    fail(m, err);
}

/* The preflight's time limit: the step after this turn kills it and fails. */
static void on_preflight_timeout(sv_loop_t *loop, sv_timer_t *t, void *arg)
{
    sv_master_t *m = arg;
    (void)loop, (void)t;
    m->hot.preflight_expired = true;
}

static void hot_start(sv_master_t *m)
{
    sv_runtime_t *rt = m->rt;
    m->hot.state = HOT_IDLE;
    sv_oplog_progress(&m->ops, 0, m->target);
    sv_log("* Restarting... (hot restart: the workers keep serving until the new ones have booted)");
    if (!rt->cfg.hot_restart_preflight) {
        exec_new_image(m);
        return;
    }
    /* checked in the background: the master goes on supervising meanwhile */
    pid_t pid = sv_hot_restart_preflight_start(rt, rt->cfg.preload, &m->hot.preflight_fd);
    if (pid < 0) {
        fail(m, "cannot run the preflight check");
        return;
    }
    m->hot.preflight_pid = pid;
    m->hot.preflight_expired = false;
    sv_timer_init(&m->hot.preflight_timer, on_preflight_timeout, m);
    sv_loop_timer_start(m->loop, &m->hot.preflight_timer, SV_PREFLIGHT_TIMEOUT_MS, 0);
    m->hot.state = HOT_PREFLIGHT;
}

static void adopt_worker(sv_master_t *m, const char *rec, bool supersede)
{
    int fd = (int)sv_msg_int(rec, "fd", -1);
    pid_t pid = (pid_t)sv_msg_int(rec, "pid", 0);
    if (fd < 0 || pid <= 0)
        return;
    int index = (int)sv_msg_int(rec, "index", 0);
    /* spawn would fork; build the handle through the table directly */
    sv_whandle_t *h = sv_master_adopt_handle(m, index, pid, fd);
    if (!h) {
        close(fd);
        return;
    }
    h->phase = (unsigned)sv_msg_int(rec, "phase", 0);
    h->started_wall = (time_t)sv_msg_int(rec, "started", (int64_t)time(NULL));
    h->booted = true;
    h->old_image = true;
    h->superseded = supersede;
    h->st.requests_count = (uint64_t)sv_msg_int(rec, "requests", 0);
    if (sv_msg_int(rec, "stopping", 0)) {
        h->stopping = true;
        h->stop_ms = sv_now_ms();
    }
    sv_master_rearm(m, h); /* a check-in (or stop) deadline, not a boot one */
}

void sv_hot_cluster_adopt(sv_master_t *m)
{
    bool running = m->ops.current && m->ops.current->kind == SV_OP_HOT;
    if (running) /* its start step ran in the image before the exec */
        m->started_op = m->ops.current->id;
    int n = 0;
    char *rec;
    while ((rec = sv_handover_take_next(m->rt, "worker")) != NULL) {
        adopt_worker(m, rec, running);
        free(rec);
        n++;
    }
    char *mrec = NULL;
    if (sv_handover_take(m->rt, "master", &mrec, 1) == 1) {
        static const char *const keys[SV_DEATH_CAUSES] = {"d_stopped", "d_crash", "d_boot", "d_timeout", "d_lost"};
        for (int c = 0; c < SV_DEATH_CAUSES; c++)
            m->deaths[c] = (unsigned long)sv_msg_int(mrec, keys[c], 0);
        m->spawned_total = (unsigned long)sv_msg_int(mrec, "spawned", 0);
        free(mrec);
    }
    if (n > 0)
        sv_log("* Adopted %d worker%s from before the hot restart; booting %d new", n, n == 1 ? "" : "s",
               m->target);
    /* the running hot restart goes on here (with nothing to overlap if every worker was booting) */
    m->hot.state = running ? HOT_ADOPTING : HOT_IDLE;
}

/* PREFLIGHT -> the exec (or FAILED). */
static void preflight_step(sv_master_t *m)
{
    char err[600];
    int rc = sv_hot_restart_preflight_poll(m->hot.preflight_pid, m->hot.preflight_fd, m->hot.preflight_expired,
                                           m->hot.preflight_reaped ? &m->hot.preflight_status : NULL, err,
                                           sizeof(err));
    if (rc == 0)
        return;
    sv_loop_timer_stop(m->loop, &m->hot.preflight_timer);
    m->hot.preflight_pid = 0;
    m->hot.preflight_reaped = false;
    if (rc < 0)
        fail(m, err);
    else
        exec_new_image(m); /* returns only if the exec failed: FAILED */
}

/*
 * old image:  IDLE --start--> PREFLIGHT --check passed--> exec (this image ends)
 *                             PREFLIGHT --rejected, exec failed--> FAILED
 * new image:  ADOPTING --every new worker booted--> the old ones stop: SUCCEEDED
 *             ADOPTING --a new worker cannot boot--> FAILED (old ones serve on)
 */
static sv_step_t hot_step(sv_master_t *m)
{
    switch (m->hot.state) {
    case HOT_PREFLIGHT: preflight_step(m); return m->hot.state == HOT_FAILED ? hot_step(m) : SV_STEP_RUNNING;
    case HOT_FAILED: m->hot.state = HOT_IDLE; return SV_STEP_FAILED;
    case HOT_IDLE: return SV_STEP_FAILED; /* nothing runs: an exec that never happened */
    case HOT_ADOPTING: break;
    }
    int booted = 0;
    for (int i = 0; i < m->nw; i++)
        booted += !m->w[i]->old_image && m->w[i]->booted && !m->w[i]->stopping;
    sv_oplog_progress(&m->ops, booted < m->target ? booted : m->target, m->target);
    if (!sv_master_all_current_booted(m))
        return SV_STEP_RUNNING;
    int old = 0;
    for (int i = 0; i < m->nw; i++) {
        sv_whandle_t *h = m->w[i];
        if (h->old_image && !h->stopping) {
            sv_master_stop_worker(m, h, "hot restart");
            old++;
        }
    }
    sv_log("- Hot restart complete: %d new worker%s booted, %d old stopping", m->target, m->target == 1 ? "" : "s",
           old);
    m->hot.state = HOT_IDLE;
    sv_master_fire_booted(m);
    return SV_STEP_SUCCEEDED;
}

static void hot_boot_failure(sv_master_t *m, sv_whandle_t *h, const char *reason)
{
    if (m->hot.state != HOT_ADOPTING || h->old_image)
        return;
    char err[400];
    snprintf(err, sizeof(err), "new worker %d could not boot: %s", h->index, reason);
    h->op_failure = true;
    bool have_old = false;
    for (int i = 0; i < m->nw; i++)
        have_old |= m->w[i]->old_image && !m->w[i]->stopping;
    if (!have_old) {
        sv_log_error("! Hot restart: %s", err);
        sv_master_op_failed(m, "%s", err);
        m->hot.state = HOT_FAILED;
        return;
    }
    fail(m, err);
    for (int i = 0; i < m->nw; i++) {
        sv_whandle_t *w = m->w[i];
        if (w->old_image) {
            w->superseded = false;
            w->old_image = false; /* they are this image's workers now */
        } else if (w != h)
            sv_master_stop_worker(m, w, "hot restart failed");
    }
    /* the old workers fill the target: nothing respawns unless one of them dies */
}

const sv_machine_t sv_hot_machine = {
    .start = hot_start,
    .step = hot_step,
    .boot_failure = hot_boot_failure,
};
