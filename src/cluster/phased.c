/*
 * phased.c: the phased (rolling) restart, and the neutral roll it shares
 * with a refork: "replace every old worker, a batch at a time".
 *
 * States (m->phased.state):
 *
 *   IDLE     --start-->  ROLLING   phase += 1; chdir to the restart directory
 *                                  by path (a re-pointed `current` symlink
 *                                  selects the new release); every worker of
 *                                  an older phase is now "old".
 *   ROLLING  --step--->  ROLLING   surge (default): while fewer than
 *                                  `phased_restart_batch` new workers boot,
 *                                  spawn the next old worker's replacement
 *                                  beside it (lowest index first); when one
 *                                  has booted, stop the old worker of its
 *                                  index. Capacity never drops below N.
 *                                  stop-first (Puma's order): stop up to batch
 *                                  old workers; the respawn loop boots their
 *                                  replacements. Capacity N - batch.
 *   ROLLING  --step--->  IDLE      no old worker left, every worker booted:
 *                                  SUCCEEDED.
 *   ROLLING  --a replacement cannot boot--> FAILED, and the next step
 *                                  returns FAILED: replacements still booting
 *                                  are stopped, the old workers count again,
 *                                  the phase goes back to theirs (unless new
 *                                  workers already serve: batch > 1). No
 *                                  retry loop; a later restart tries again.
 *
 * With fork_worker the new worker 0 is booted first (from the master, so it
 * loads the new release) and the others are forked from its mold (molds.c).
 * The roll knows nothing of reforks: refork.c begins it with its own spec
 * (names, and worker 0 kept).
 */
#include <stdio.h>
#include <string.h>

#include "cluster/certs.h"
#include "cluster/master_internal.h"
#include "core/log.h"
#include "core/time.h"

static int count_old(const sv_master_t *m)
{
    int n = 0;
    for (int i = 0; i < m->nw; i++) {
        const sv_whandle_t *h = m->w[i];
        if (h->phase < m->phase && !h->stopping)
            n++;
    }
    return n;
}

/* done/total: replaced so far, and those plus the old workers still serving (one that died meanwhile drops out). */
static void progress(sv_master_t *m)
{
    m->phased.total = m->phased.replaced + count_old(m);
    sv_oplog_progress(&m->ops, m->phased.replaced, m->phased.total);
}

void sv_roll_begin(sv_master_t *m, int total, unsigned prev_phase, const sv_roll_spec_t *spec)
{
    /* a new worker 0 boots first with fork_worker, unless worker 0 is kept: then its mold is ready already */
    m->phased = (struct phased_state){.state = PHASED_ROLLING, .total = total,
                                      .fork_worker = m->rt->cfg.fork_worker && !spec->keep_index0,
                                      .spec = *spec, .prev_phase = prev_phase};
    m->booted_announced = false;
    sv_oplog_progress(&m->ops, 0, total);
}

static void phased_start(sv_master_t *m)
{
    unsigned prev = m->phase;
    int total = count_old(m);
    m->phase++;
    sv_app_set_phase(m->phase);
    /* a new release gets a fresh start: earlier boot failures were another release's */
    memset(m->boot_failures, 0, sizeof(m->boot_failures));
    memset(m->respawn_at, 0, sizeof(m->respawn_at));
    static const sv_roll_spec_t spec = {.name = "Phased restart", .label = "phased upgrade",
                                        .stop_reason = "phased restart", .keep_index0 = false};
    sv_roll_begin(m, total, prev, &spec);
    sv_log("- Starting phased worker restart, phase: %u", m->phase);
    sv_rt_chdir_restart_dir(m->rt);
    /* new certificates on disk come with the new workers (a bad one is refused; the old ones serve on) */
    sv_certs_reload_if_tls(m->rt, "phased restart");
}

/* New-phase workers still booting (in flight). */
static int booting_new(const sv_master_t *m)
{
    int n = 0;
    for (int i = 0; i < m->nw; i++) {
        const sv_whandle_t *h = m->w[i];
        if (h->phase == m->phase && !h->booted && !h->stopping)
            n++;
    }
    return n;
}

/* The old worker of this index that a replacement supersedes. */
static sv_whandle_t *old_at(sv_master_t *m, int index)
{
    for (int i = 0; i < m->nw; i++) {
        sv_whandle_t *h = m->w[i];
        if (h->index == index && h->phase < m->phase && !h->stopping)
            return h;
    }
    return NULL;
}

/* Next old worker without a replacement in progress, lowest index first (worker 0 first). */
static sv_whandle_t *next_old(sv_master_t *m)
{
    for (int i = 0; i < m->nw; i++) {
        sv_whandle_t *h = m->w[i];
        if (h->phase < m->phase && !h->stopping && !h->superseded)
            return h;
    }
    return NULL;
}

/* Replacements that booted: their old worker stops now. */
static void retire_replaced(sv_master_t *m)
{
    for (int i = 0; i < m->nw; i++) {
        sv_whandle_t *h = m->w[i];
        if (h->phase != m->phase || !h->booted || h->stopping)
            continue;
        sv_whandle_t *old = old_at(m, h->index);
        if (old && old->superseded) {
            sv_log("- Stopping %d for %s...", (int)old->pid, m->phased.spec.label);
            sv_master_stop_worker(m, old, m->phased.spec.stop_reason);
            m->phased.replaced++;
            progress(m);
        }
    }
}

static void surge_step(sv_master_t *m)
{
    int batch = m->rt->cfg.phased_restart_batch;
    /* fork_worker: the others wait for the new worker 0 (their mold's source) */
    if (m->phased.fork_worker && !sv_master_find_index(m, 0, true) && booting_new(m) > 0)
        return;
    while (booting_new(m) < batch) {
        sv_whandle_t *old = next_old(m);
        if (!old)
            return;
        old->superseded = true;
        if (!sv_master_spawn(m, old->index, m->phased.spec.label)) {
            old->superseded = false;
            return;
        }
        if (m->phased.fork_worker && old->index == 0)
            return; /* worker 0 alone first */
    }
}

static void stop_first_step(sv_master_t *m)
{
    int batch = m->rt->cfg.phased_restart_batch;
    int in_flight = booting_new(m) + m->target - sv_master_active_count(m);
    while (in_flight < batch) {
        sv_whandle_t *old = next_old(m);
        if (!old)
            return;
        sv_log("- Stopping %d for %s...", (int)old->pid, m->phased.spec.label);
        sv_master_stop_worker(m, old, m->phased.spec.stop_reason);
        m->phased.replaced++;
        progress(m);
        in_flight++;
        if (m->phased.fork_worker && old->index == 0)
            return;
    }
}

sv_step_t sv_roll_step(sv_master_t *m)
{
    switch (m->phased.state) {
    case PHASED_FAILED: m->phased.state = PHASED_IDLE; return SV_STEP_FAILED;
    case PHASED_IDLE: return SV_STEP_SUCCEEDED;
    case PHASED_ROLLING: break;
    }
    if (m->rt->cfg.phased_restart_surge) {
        retire_replaced(m);
        surge_step(m);
    } else {
        stop_first_step(m);
    }
    progress(m);
    if (count_old(m) > 0 || !sv_master_all_current_booted(m))
        return SV_STEP_RUNNING;
    sv_log("- %s complete, phase: %u", m->phased.spec.name, m->phase);
    m->phased.state = PHASED_IDLE;
    sv_master_fire_booted(m);
    return SV_STEP_SUCCEEDED;
}

void sv_roll_boot_failure(sv_master_t *m, sv_whandle_t *h, const char *reason)
{
    if (m->phased.state != PHASED_ROLLING || h->phase != m->phase)
        return;
    sv_master_op_failed(m, "worker %d of phase %u could not boot: %s", h->index, m->phase, reason);
    sv_log_error("! %s failed: %s; the old workers keep serving", m->phased.spec.name, m->op_error);
    m->phased.state = PHASED_FAILED;
    h->op_failure = true;
    /*
     * Exactly the old generation serves on: replacements still booting would
     * only fail the same way; the old workers count as the workers again; the
     * phase goes back, so a worker respawned for capacity (from the old mold
     * with fork_worker) is labelled as what it is.
     */
    unsigned failed_phase = m->phase;
    for (int i = 0; i < m->nw; i++) {
        sv_whandle_t *w = m->w[i];
        if (w->phase == failed_phase && !w->booted && w != h)
            sv_master_stop_worker(m, w, "restart failed");
        if (w->phase < failed_phase)
            w->superseded = false;
    }
    /*
     * When a replacement had booted (and its old worker stopped: batch > 1),
     * the cluster now mixes both and keeps the new phase, labels true. A
     * refork's worker 0 joined the new phase without being replaced.
     */
    bool mixed = false;
    for (int i = 0; i < m->nw; i++) {
        const sv_whandle_t *w = m->w[i];
        if (w->phase == failed_phase && w->booted && !w->stopping && !(m->phased.spec.keep_index0 && w->index == 0))
            mixed = true;
    }
    if (!mixed) {
        m->phase = m->phased.prev_phase;
        for (int i = 0; i < m->nw; i++)
            if (m->w[i]->phase == failed_phase && !m->w[i]->stopping)
                m->w[i]->phase = m->phase;
        sv_app_set_phase(m->phase);
    }
}

static sv_step_t phased_step(sv_master_t *m)
{
    return sv_roll_step(m);
}

const sv_machine_t sv_phased_machine = {
    .start = phased_start,
    .step = phased_step,
    .boot_failure = sv_roll_boot_failure,
};
