/*
 * phased.c: phased (rolling) restart, one state machine.
 *
 *   start:  phase += 1; chdir to the restart directory by path (a re-pointed
 *           `current` symlink selects the new release); every worker of an
 *           older phase is now "old".
 *   step:   surge (default): while fewer than `phased_restart_batch` new
 *           workers are booting, pick the next old worker by index and spawn
 *           its replacement beside it; when a replacement has booted (it
 *           accepts), tell the old worker of its index to stop. Capacity never
 *           drops below N.
 *           stop-first (Puma's order): stop up to batch old workers, the
 *           respawn loop boots their replacements; capacity N - batch.
 *   done:   no old worker left and every worker booted -> succeeded.
 *   failed: a replacement could not boot (crashed in init, exited,
 *           worker_boot_timeout) -> stop here: replacements still booting
 *           are killed, old workers keep serving, the failure is in the log,
 *           stats and /operation. No retry loop; a later restart tries again.
 *
 * With fork_worker the new worker 0 is booted first (from the master, so it
 * loads the new release) and the others are forked from its mold (refork.c).
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

void sv_phased_start(sv_master_t *m)
{
    m->phase++;
    sv_app_set_phase(m->phase);
    m->phased = (struct phased_state){.active = true, .total = count_old(m),
                                      .fork_worker = m->rt->cfg.fork_worker};
    m->booted_announced = false;
    sv_log("- Starting phased worker restart, phase: %u", m->phase);
    sv_rt_chdir_restart_dir(m->rt);
    /* new certificates on disk come with the new workers (a bad one is refused; the old ones serve on) */
    sv_certs_reload_if_tls(m->rt, "phased restart");
    sv_oplog_progress(&m->ops, 0, m->phased.total);
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
            sv_log("- Stopping %d for %s...", (int)old->pid, m->phased.refork ? "refork" : "phased upgrade");
            sv_master_stop_worker(m, old, m->phased.refork ? "refork" : "phased restart");
            m->phased.replaced++;
            sv_oplog_progress(&m->ops, m->phased.replaced, m->phased.total);
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
        if (!sv_master_spawn(m, old->index, "phased restart")) {
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
        sv_log("- Stopping %d for phased upgrade...", (int)old->pid);
        sv_master_stop_worker(m, old, "phased restart");
        m->phased.replaced++;
        sv_oplog_progress(&m->ops, m->phased.replaced, m->phased.total);
        in_flight++;
        if (m->phased.fork_worker && old->index == 0)
            return;
    }
}

bool sv_phased_step(sv_master_t *m, int64_t now_ms)
{
    (void)now_ms;
    if (m->phased.failed) {
        m->phased.active = false;
        return true;
    }
    if (m->rt->cfg.phased_restart_surge) {
        retire_replaced(m);
        surge_step(m);
    } else {
        stop_first_step(m);
    }
    if (count_old(m) == 0 && sv_master_all_current_booted(m)) {
        sv_log("- %s complete, phase: %u", m->phased.refork ? "Refork" : "Phased restart", m->phase);
        m->phased.active = false;
        sv_oplog_finish_current(&m->ops, true, NULL);
        sv_master_fire_booted(m);
        return true;
    }
    return false;
}

void sv_phased_on_boot_failure(sv_master_t *m, sv_whandle_t *h, const char *reason)
{
    if (h->phase != m->phase || m->phased.failed)
        return;
    char err[256];
    snprintf(err, sizeof(err), "worker %d of phase %u could not boot: %s", h->index, m->phase, reason);
    sv_log_error("! %s failed: %s; the old workers keep serving", m->phased.refork ? "Refork" : "Phased restart",
                 err);
    m->phased.failed = true;
    sv_oplog_finish_current(&m->ops, false, err);
    /* replacements still booting would only fail the same way */
    for (int i = 0; i < m->nw; i++) {
        sv_whandle_t *w = m->w[i];
        if (w->phase == m->phase && !w->booted && w != h)
            sv_master_stop_worker(m, w, "phased restart failed");
        if (w->phase < m->phase)
            w->superseded = false; /* old workers count as the workers again */
    }
    if (!m->rt->cfg.phased_restart_surge) /* stop-first lost a worker: do not hammer the broken release */
        m->respawn_at[h->index] = sv_now_ms() + 5000;
}
