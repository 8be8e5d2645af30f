/*
 * molds.c: fork_worker's mold from the master's side, one state machine
 * (the mold process itself is mold.c; the refork operation is refork.c).
 * Owns m->mold (the ready mold: pid, channel, generation) and m->molding
 * (the machine: its state, the mold being made, failures).
 *
 *   NONE      no mold, none asked for (no worker 0 yet, or stopped)
 *   MAKING    worker 0 was asked for one (make-mold + its channel); none ready
 *   READY     a mold forks workers 1..
 *   RENEWING  a mold is ready and a newer one is being made: spawns wait
 *             for the newer (it carries newer code or state)
 *   FALLBACK  MOLD_FAILURES_MAX losses in a row: workers fork from the
 *             master until a new worker 0 boots
 *
 *   event (in mold_on)            from                  to
 *   ASK: a worker 0 booted, or    NONE, READY           MAKING, RENEWING
 *     a spawn needs a mold        FALLBACK (new w0)     MAKING
 *   READY: mold-ready gen=next    MAKING, RENEWING      READY (the old mold retires)
 *   LOST: worker 0 refused        MAKING, RENEWING,     ask again: MAKING (or NONE
 *     (mold-failed), no answer    READY                 without worker 0), or
 *     in MOLD_REQUEST_TIMEOUT_MS,                       FALLBACK after
 *     a channel closed                                  MOLD_FAILURES_MAX
 *   KILL: stop, halt, hot restart any                   NONE
 *
 * A spawn (sv_molds_spawn) goes to the READY mold; in MAKING or RENEWING
 * it waits (h->mold_pending) and goes when the mold is ready, or to the
 * master when none can be made. The mold and the workers it forks are
 * reparented to the master (the subreaper), which reaps them.
 *
 * Behind the machine interface (master_internal.h): start asks for a fresh
 * mold of worker 0 as it is now, running its on_refork hook (a refork);
 * booted and boot_failure are worker 0's; no step: the request's time limit
 * is a timer (molding.request_timer), armed with each make-mold.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster/master_internal.h"
#include "cluster/proto.h"
#include "core/log.h"
#include "core/time.h"
#include "os/chan.h"

#define MOLD_FAILURES_MAX 3
#define MOLD_REQUEST_TIMEOUT_MS 15000

typedef enum mold_event { EV_ASK, EV_ASK_REFORK, EV_READY, EV_LOST, EV_KILL } mold_event_t;

static const char *const state_names[] = {"none", "making", "ready", "renewing", "fallback"};

const char *sv_molds_state_name(const sv_master_t *m)
{
    return state_names[m->molding.state];
}

sv_whandle_t *sv_molds_source(const sv_master_t *m)
{
    for (int i = 0; i < m->nw; i++) {
        sv_whandle_t *h = m->w[i];
        if (h->index == 0 && h->booted && !h->stopping && !h->superseded && h->chan >= 0)
            return h;
    }
    return NULL;
}

static bool worker0_booting(const sv_master_t *m)
{
    for (int i = 0; i < m->nw; i++) {
        const sv_whandle_t *h = m->w[i];
        if (h->index == 0 && !h->booted && !h->stopping && !h->superseded)
            return true;
    }
    return false;
}

/* ---- the two molds: the ready one and the one being made ------------------------ */

static void retire_ready(sv_master_t *m)
{
    sv_mold_handle_t *mold = &m->mold;
    if (mold->chan >= 0) {
        sv_loop_unwatch(m->loop, mold->chan);
        close(mold->chan); /* the mold exits when its channel closes */
    }
    if (mold->pid > 0)
        kill(mold->pid, SIGTERM);
    memset(mold, 0, sizeof(*mold));
    mold->chan = -1;
}

static void cancel_next(sv_master_t *m)
{
    sv_loop_timer_stop(m->loop, &m->molding.request_timer);
    if (m->molding.next_chan >= 0) {
        sv_loop_unwatch(m->loop, m->molding.next_chan);
        close(m->molding.next_chan); /* a mold forked from it anyway exits at once */
    }
    m->molding.next_chan = -1;
    m->molding.next_gen = 0;
}

static void on_mold_chan(sv_loop_t *loop, int fd, short revents, void *arg);
static void lost(sv_master_t *m, const char *why);

/* The mold asked for is not ready in MOLD_REQUEST_TIMEOUT_MS: lost. */
static void on_request_timeout(sv_loop_t *loop, sv_timer_t *t, void *arg)
{
    sv_master_t *m = arg;
    (void)loop, (void)t;
    if (m->molding.next_gen)
        lost(m, "worker 0 did not answer");
}

/* make-mold to worker 0, with the new mold's channel. False: no worker 0 to ask, or it could not be told. */
static bool ask(sv_master_t *m, bool refork)
{
    sv_whandle_t *w0 = sv_molds_source(m);
    int fds[2];
    if (!w0 || sv_chan_pair(fds) < 0)
        return false;
    unsigned gen = ++m->molding.generation;
    char msg[96];
    snprintf(msg, sizeof(msg), "%s gen=%u refork=%d", sv_proto_name(SV_PROTO_MAKE_MOLD), gen, refork);
    if (sv_chan_send(w0->chan, msg, fds[1], 1000) < 0) {
        close(fds[0]);
        close(fds[1]);
        return false;
    }
    close(fds[1]);
    m->molding.next_chan = fds[0];
    m->molding.next_gen = gen;
    sv_timer_t *t = &m->molding.request_timer;
    if (!sv_timer_armed(t))
        sv_timer_init(t, on_request_timeout, m);
    sv_loop_timer_start(m->loop, t, MOLD_REQUEST_TIMEOUT_MS, 0);
    sv_loop_watch(m->loop, fds[0], POLLIN, on_mold_chan, m);
    sv_log_debug("- asked worker 0 (PID: %d) for mold %u", (int)w0->pid, gen);
    return true;
}

/* ---- spawns --------------------------------------------------------------------- */

static void send_spawn(sv_master_t *m, sv_whandle_t *h)
{
    char msg[200];
    snprintf(msg, sizeof(msg), "%s index=%d phase=%u gen=%u", sv_proto_name(SV_PROTO_SPAWN), h->index, h->phase,
             m->mold.generation);
    int fd = h->child_fd;
    h->child_fd = -1;
    h->mold_pending = false;
    if (sv_chan_send(m->mold.chan, msg, fd, 1000) < 0) {
        /* the mold is gone: the master forks it rather than lose the worker */
        sv_master_fork_handle(m, h, fd);
        return;
    }
    close(fd);
    h->sent_to_mold = true;
    h->generation = m->mold.generation;
    h->forked_from = m->mold.pid;
}

/*
 * Spawns that waited for a mold go now: to the mold that has just become
 * ready, or to the master when the mold they waited for will not come (the
 * master loads the app as it is on disk: never older code than a stale mold).
 */
static void flush_pending(sv_master_t *m, bool to_master)
{
    bool to_mold = !to_master && m->molding.state == SV_MOLD_READY;
    for (int i = 0; i < m->nw; i++) {
        sv_whandle_t *h = m->w[i];
        if (!h->mold_pending)
            continue;
        if (to_mold) {
            send_spawn(m, h);
        } else {
            int fd = h->child_fd;
            h->child_fd = -1;
            h->mold_pending = false;
            sv_master_fork_handle(m, h, fd);
        }
    }
}

bool sv_molds_spawn(sv_master_t *m, sv_whandle_t *h, int child_fd)
{
    if (!m->rt->cfg.fork_worker || h->index == 0)
        return false;
    switch (m->molding.state) {
    case SV_MOLD_FALLBACK: return false;
    case SV_MOLD_READY:
        h->child_fd = child_fd;
        send_spawn(m, h);
        return true;
    case SV_MOLD_NONE:
        /* worker 0 makes one now, or will when it has booted */
        if (!ask(m, false) && !worker0_booting(m))
            return false; /* nothing to make a mold from: fork from the master */
        if (m->molding.next_gen)
            m->molding.state = SV_MOLD_MAKING;
        break;
    case SV_MOLD_MAKING:
    case SV_MOLD_RENEWING: break;
    }
    h->child_fd = child_fd;
    h->mold_pending = true;
    return true;
}

/* ---- the machine ------------------------------------------------------------------ */

/* The one transition function. */
static void mold_on(sv_master_t *m, mold_event_t ev, const char *why, const char *msg)
{
    struct molding *s = &m->molding;
    switch (ev) {
    case EV_ASK:
    case EV_ASK_REFORK:
        if (ev == EV_ASK_REFORK) /* one on its way carries worker 0's state of then: a fresh one */
            cancel_next(m);
        if (s->state == SV_MOLD_FALLBACK) {
            s->state = SV_MOLD_NONE;
            s->failures = 0;
        }
        if (!s->next_gen && !ask(m, ev == EV_ASK_REFORK)) {
            s->state = m->mold.ready ? SV_MOLD_READY : SV_MOLD_NONE;
            flush_pending(m, true);
            return;
        }
        s->state = m->mold.ready ? SV_MOLD_RENEWING : SV_MOLD_MAKING;
        return;
    case EV_READY: {
        sv_whandle_t *w0 = sv_molds_source(m);
        int fd = s->next_chan;
        unsigned gen = s->next_gen;
        retire_ready(m); /* the previous generation retires */
        sv_loop_timer_stop(m->loop, &s->request_timer);
        m->mold = (sv_mold_handle_t){.pid = (pid_t)sv_msg_int(msg, "pid", 0), .chan = fd, .ready = true,
                                     .generation = gen, .source_pid = w0 ? w0->pid : 0};
        s->next_chan = -1;
        s->next_gen = 0;
        s->failures = 0;
        s->state = SV_MOLD_READY;
        sv_log("- Mold %u (PID: %d) forked from worker 0%s", gen, (int)m->mold.pid, w0 ? "" : " (gone since)");
        flush_pending(m, false);
        return;
    }
    case EV_LOST:
        /* whichever was lost, what was asked for is void: the next try starts from worker 0 as it is */
        cancel_next(m);
        s->lost_total++;
        snprintf(s->lost_why, sizeof(s->lost_why), "%s", why);
        if (++s->failures >= MOLD_FAILURES_MAX) {
            sv_log_error("! the mold failed %d times (%s); forking workers from the master until worker 0 is "
                         "replaced", s->failures, why);
            retire_ready(m);
            s->state = SV_MOLD_FALLBACK;
            flush_pending(m, true);
            return;
        }
        s->state = m->mold.ready ? SV_MOLD_READY : SV_MOLD_NONE;
        if (ask(m, false)) {
            s->state = m->mold.ready ? SV_MOLD_RENEWING : SV_MOLD_MAKING;
            return;
        }
        flush_pending(m, true); /* nothing to fork from but the master */
        return;
    case EV_KILL:
        retire_ready(m);
        cancel_next(m);
        s->state = SV_MOLD_NONE;
        return;
    }
}

static void lost(sv_master_t *m, const char *why)
{
    mold_on(m, EV_LOST, why, NULL);
}

static void spawned_msg(sv_master_t *m, const char *msg, bool failed)
{
    int index = (int)sv_msg_int(msg, "index", -1);
    for (int i = 0; i < m->nw; i++) {
        sv_whandle_t *h = m->w[i];
        if (h->index != index || !h->sent_to_mold || h->pid > 0)
            continue;
        if (failed) {
            sv_log_error("! mold could not fork worker %d: %s", index, msg);
            sv_master_kill_worker(m, h, SV_DEATH_BOOT);
        } else {
            h->pid = (pid_t)sv_msg_int(msg, "pid", 0);
        }
        return;
    }
}

static void on_mold_chan(sv_loop_t *loop, int fd, short revents, void *arg)
{
    sv_master_t *m = arg;
    char msg[SV_CHAN_MSG_MAX];
    (void)revents;
    for (int k = 0; k < 32; k++) {
        int n = sv_chan_recv(fd, msg, sizeof(msg), NULL);
        if (n == -EAGAIN)
            return;
        if (n <= 0) {
            sv_loop_unwatch(loop, fd);
            if (fd == m->mold.chan) {
                m->mold.chan = -1;
                close(fd);
                m->mold.ready = false;
                m->mold.pid = 0;
                sv_log_error("! the mold exited; making another from worker 0");
                lost(m, "it exited");
            } else if (fd == m->molding.next_chan) {
                lost(m, "it exited before it was ready");
            } else {
                close(fd);
            }
            return;
        }
        switch (sv_proto_verb(msg)) {
        case SV_PROTO_MOLD_READY:
            if (fd == m->molding.next_chan && (unsigned)sv_msg_int(msg, "gen", 0) == m->molding.next_gen)
                mold_on(m, EV_READY, NULL, msg);
            break;
        case SV_PROTO_SPAWNED: spawned_msg(m, msg, false); break;
        case SV_PROTO_SPAWN_FAILED: spawned_msg(m, msg, true); break;
        default: break;
        }
    }
}

/* worker 0 could not make the mold (busy, fork failed) */
void sv_molds_on_worker0_msg(sv_master_t *m, const char *msg)
{
    char reason[96] = "";
    sv_msg_get(msg, "reason", reason, sizeof(reason));
    if (!m->molding.next_gen || (unsigned)sv_msg_int(msg, "gen", 0) != m->molding.next_gen)
        return;
    sv_log_error("! worker 0 could not make a mold: %s", reason);
    lost(m, reason);
}

void sv_molds_on_exit(sv_master_t *m, pid_t pid)
{
    /* the channel's EOF does the work; the pid only has to be reaped */
    if (pid == m->mold.pid && m->mold.chan < 0)
        m->mold.pid = 0;
}

void sv_molds_kill(sv_master_t *m)
{
    mold_on(m, EV_KILL, NULL, NULL);
}

int sv_molds_outcome(const sv_master_t *m, unsigned gen, unsigned lost_before, const char **why)
{
    if (m->molding.lost_total != lost_before) {
        *why = m->molding.lost_why;
        return -1;
    }
    if (m->molding.state == SV_MOLD_READY && m->mold.ready && m->mold.generation >= gen)
        return 1;
    return 0;
}

/* ---- the machine interface ------------------------------------------------------------ */

static void molds_start(sv_master_t *m)
{
    if (m->rt->cfg.fork_worker)
        mold_on(m, EV_ASK_REFORK, NULL, NULL);
}

/* A worker 0 that is not the mold's source booted (a new release, a replacement): molds come from it now. */
static void molds_booted(sv_master_t *m, sv_whandle_t *h)
{
    if (!m->rt->cfg.fork_worker || h->index != 0 || h->stopping || h->superseded || m->mold.source_pid == h->pid)
        return;
    m->molding.failures = 0;
    mold_on(m, EV_ASK, NULL, NULL);
}

/* Workers waiting for worker 0's mold must not wait on a worker 0 that cannot boot. */
static void molds_boot_failure(sv_master_t *m, sv_whandle_t *h, const char *reason)
{
    (void)reason;
    if (m->rt->cfg.fork_worker && h->index == 0 && m->molding.state != SV_MOLD_READY &&
        m->molding.state != SV_MOLD_RENEWING)
        flush_pending(m, true);
}

const sv_machine_t sv_mold_machine = {
    .start = molds_start,
    .step = NULL, /* driven by its channel, worker 0's messages and boots, and its request timer */
    .booted = molds_booted,
    .boot_failure = molds_boot_failure,
};
