/*
 * refork.c: the refork operation (fork_worker), one state machine; and the
 * automatic refork at worker 0's request thresholds. The mold it uses is
 * the mold machine's (molds.c).
 *
 *   WAIT_MOLD  a new mold is made from the warmed worker 0 (which pauses only
 *              for its requests in flight and a fork; its on_refork hook
 *              runs); if worker 0 cannot make it, the refork fails and
 *              nothing changes.
 *   ROLL       phase += 1 (worker 0 joins the new phase as it is); the other
 *              workers are replaced surge-style by forks of the new mold, as
 *              in a phased restart (phased.c), so capacity never drops.
 * Automatic refork: when worker 0 has served each of fork_worker's request
 * thresholds in turn (Pitchfork-style list; Puma's single value works).
 */
#include <stdio.h>

#include "cluster/master_internal.h"
#include "core/log.h"

/* ---- the refork operation ----------------------------------------------------------- */

static void refork_start(sv_master_t *m)
{
    m->refork = (struct refork_state){.state = REFORK_FAILED, .next_threshold = m->refork.next_threshold,
                                      .counted_pid = m->refork.counted_pid};
    if (!m->rt->cfg.fork_worker) {
        sv_master_op_failed(m, "refork not available (fork_worker is off)");
        return;
    }
    sv_whandle_t *w0 = sv_molds_source(m);
    if (!w0) {
        sv_master_op_failed(m, "worker 0 is not serving");
        return;
    }
    sv_log("- Starting worker refork from worker 0 (PID: %d, %llu requests served)", (int)w0->pid,
           (unsigned long long)w0->st.requests_count);
    /* a fresh mold of worker 0 as it is now (a mold on its way would carry its state of then) */
    m->refork.lost_before = m->molding.lost_total;
    sv_mold_machine.start(m);
    if (!m->molding.next_gen) {
        sv_master_op_failed(m, "could not ask worker 0 for a mold");
        return;
    }
    m->refork.mold_gen = m->molding.next_gen;
    m->refork.state = REFORK_WAIT_MOLD;
}

/* WAIT_MOLD -> ROLL: phase += 1, worker 0 joins it as it is (it is the source), the others roll. */
static void begin_roll(sv_master_t *m)
{
    m->refork.state = REFORK_ROLL;
    unsigned prev = m->phase;
    m->phase++;
    sv_app_set_phase(m->phase);
    int total = 0;
    for (int i = 0; i < m->nw; i++) {
        sv_whandle_t *h = m->w[i];
        if (h->index == 0 && !h->stopping && !h->superseded)
            h->phase = m->phase;
        else if (!h->stopping)
            total++;
    }
    static const sv_roll_spec_t spec = {.name = "Refork", .label = "refork", .stop_reason = "refork",
                                        .keep_index0 = true};
    sv_roll_begin(m, total, prev, &spec);
    sv_log("- Starting worker refork, phase: %u (mold %u)", m->phase, m->mold.generation);
}

/*
 * IDLE --start--> WAIT_MOLD (or FAILED: no fork_worker, no worker 0)
 * WAIT_MOLD --mold ready--> ROLL; --worker 0 could not make it--> FAILED
 * ROLL --the roll's result--> done
 */
static sv_step_t refork_step(sv_master_t *m)
{
    switch (m->refork.state) {
    case REFORK_IDLE: return SV_STEP_SUCCEEDED;
    case REFORK_FAILED: m->refork.state = REFORK_IDLE; return SV_STEP_FAILED;
    case REFORK_WAIT_MOLD: {
        /* the mold machine times an unanswered request out (a loss) */
        const char *why = "";
        int r = sv_molds_outcome(m, m->refork.mold_gen, m->refork.lost_before, &why);
        if (r < 0) {
            m->refork.state = REFORK_IDLE;
            return sv_master_op_failed(m, "no mold: %s", why);
        }
        if (r == 0)
            return SV_STEP_RUNNING;
        begin_roll(m); /* and roll at once */
    }
        __attribute__((fallthrough));
    case REFORK_ROLL: {
        sv_step_t r = sv_roll_step(m);
        if (r != SV_STEP_RUNNING)
            m->refork.state = REFORK_IDLE;
        return r;
    }
    }
    return SV_STEP_RUNNING;
}

static void refork_boot_failure(sv_master_t *m, sv_whandle_t *h, const char *reason)
{
    if (m->refork.state == REFORK_ROLL)
        sv_roll_boot_failure(m, h, reason);
}

const sv_machine_t sv_refork_machine = {
    .start = refork_start,
    .step = refork_step,
    .boot_failure = refork_boot_failure,
};

void sv_refork_check_auto(sv_master_t *m, sv_whandle_t *h)
{
    const sv_config_t *c = &m->rt->cfg;
    if (!c->fork_worker || h->index != 0 || h->stopping || h->superseded || !h->booted)
        return;
    if (m->refork.counted_pid != h->pid) { /* a new worker 0 counts from its own start */
        m->refork.counted_pid = h->pid;
        m->refork.next_threshold = 0;
    }
    int i = m->refork.next_threshold;
    if (i >= c->n_refork_thresholds || (int64_t)h->st.requests_count < c->refork_thresholds[i])
        return;
    m->refork.next_threshold = i + 1;
    char err[64];
    sv_log("- Worker 0 reached %lld requests: automatic refork", (long long)c->refork_thresholds[i]);
    sv_master_request(m, SV_OP_REFORK, "auto", err, sizeof(err));
}
