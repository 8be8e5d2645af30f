/*
 * recycle.c: replacing a worker over max_requests or max_worker_memory, one
 * at a time, surge-style; an operation of kind recycle (m->recycle.state).
 *
 *   IDLE       sv_recycle_check (after each turn of the master, while no
 *              operation runs: a check-in or a memory sample changed)
 *              finds a worker over its limit: the worker is superseded (it
 *              serves on, but no longer counts), so the respawn loop boots
 *              its replacement at the same index -> REPLACING.
 *   REPLACING  the replacement booted: the old worker stops -> SUCCEEDED.
 *              the old worker exited meanwhile (exited) -> SUCCEEDED.
 *              the replacement cannot boot: the old worker counts again
 *              -> FAILED ("replacement failed to boot").
 * With fork_worker, worker 0 (the mold's source) is left to refork.
 */
#include <stdio.h>

#include "cluster/master_internal.h"
#include "core/log.h"

void sv_recycle_check(sv_master_t *m)
{
    const sv_config_t *c = &m->rt->cfg;
    if (m->ops.current || (c->max_requests <= 0 && c->max_worker_memory <= 0))
        return;
    for (int i = 0; i < m->nw; i++) {
        sv_whandle_t *h = m->w[i];
        if (h->stopping || h->superseded || !h->booted || !h->has_status)
            continue;
        if (c->fork_worker && h->index == 0)
            continue; /* worker 0 is the mold's source; refork renews the others */
        bool by_req = h->recycle_after > 0 && (int64_t)h->st.requests_count >= h->recycle_after;
        bool by_mem = c->max_worker_memory > 0 && (int64_t)h->mem.pss > c->max_worker_memory;
        if (!by_req && !by_mem)
            continue;
        sv_log("- Recycling worker %d (PID: %d): %s", h->index, (int)h->pid,
               by_req ? "max_requests reached" : "over max_worker_memory");
        m->recycle.old = h;
        m->recycle.old_pid = h->pid;
        char err[64];
        if (!sv_master_request(m, SV_OP_RECYCLE, by_req ? "max_requests" : "max_worker_memory", err, sizeof(err)))
            m->recycle.old = NULL;
        return;
    }
}

static void recycle_start(sv_master_t *m)
{
    sv_whandle_t *h = m->recycle.old;
    bool alive = false;
    for (int i = 0; h && i < m->nw; i++)
        alive |= m->w[i] == h && h->pid == m->recycle.old_pid;
    if (!alive || h->stopping) { /* gone since it was picked */
        m->recycle.state = RECYCLE_IDLE;
        m->recycle.old = NULL;
        return;
    }
    h->superseded = true; /* the replacement is spawned now; h stops once it booted */
    snprintf(h->stop_reason, sizeof(h->stop_reason), "recycle");
    m->recycle.state = RECYCLE_REPLACING;
    sv_oplog_progress(&m->ops, 0, 1);
}

/* The worker being replaced is gone (crashed, killed): nothing is left to stop. */
static void recycle_exited(sv_master_t *m, sv_whandle_t *h)
{
    if (h == m->recycle.old)
        m->recycle.old = NULL;
}

static sv_step_t recycle_step(sv_master_t *m)
{
    if (m->recycle.state == RECYCLE_IDLE)
        return SV_STEP_SUCCEEDED;
    sv_whandle_t *h = m->recycle.old;
    if (!h || h->stopping) { /* it died or was stopped meanwhile: the respawn loop replaced it anyway */
        m->recycle.state = RECYCLE_IDLE;
        m->recycle.old = NULL;
        return SV_STEP_SUCCEEDED;
    }
    if (sv_master_find_index(m, h->index, true)) {
        sv_master_stop_worker(m, h, "recycled");
        sv_oplog_progress(&m->ops, 1, 1);
        m->recycle.state = RECYCLE_IDLE;
        m->recycle.old = NULL;
        return SV_STEP_SUCCEEDED;
    }
    if (m->boot_failures[h->index] > 0) { /* the replacement cannot boot: keep the old one */
        h->superseded = false;
        m->recycle.state = RECYCLE_IDLE;
        m->recycle.old = NULL;
        return sv_master_op_failed(m, "replacement failed to boot");
    }
    return SV_STEP_RUNNING;
}

const sv_machine_t sv_recycle_machine = {
    .start = recycle_start,
    .step = recycle_step,
    .boot_failure = NULL,
    .exited = recycle_exited,
};
