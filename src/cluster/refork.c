/*
 * refork.c: fork_worker from the master's side: the mold's lifecycle and
 * the refork operation.
 *
 * The mold. Whenever a worker 0 boots that is not the mold's source, the
 * master asks it for a mold ("make-mold", with the mold's channel). Workers
 * 1.. are forked by the mold ("spawn", with the worker's channel); a spawn
 * asked for while a mold is being made waits for it. If the mold dies it is
 * made again from worker 0; after MOLD_FAILURES_MAX failures in a row, or
 * while there is no worker 0 to make one, workers are forked from the
 * master instead, so a worker is never lost for want of a mold. The mold
 * and its workers are reparented to the master (it is the subreaper), which
 * reaps and supervises them like any child.
 *
 * The refork operation.
 *   WAIT_MOLD  a new mold is made from the warmed worker 0 (which pauses only
 *              for its requests in flight and a fork); if worker 0 cannot
 *              make it, the refork fails and nothing changes.
 *   ROLL       phase += 1 (worker 0 joins the new phase as it is); the other
 *              workers are replaced surge-style by forks of the new mold, as
 *              in a phased restart (phased.c), so capacity never drops.
 * Automatic refork: when worker 0 has served each of fork_worker's request
 * thresholds in turn (Pitchfork-style list; Puma's single value works).
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

static sv_whandle_t *worker0(sv_master_t *m)
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

static bool mold_ready(const sv_master_t *m)
{
    return m->mold.pid > 0 && m->mold.ready && m->mold.chan >= 0;
}

static void close_mold(sv_master_t *m, sv_mold_handle_t *mold)
{
    if (mold->chan >= 0) {
        sv_loop_unwatch(m->loop, mold->chan);
        close(mold->chan); /* the mold exits when its channel closes */
    }
    if (mold->pid > 0)
        kill(mold->pid, SIGTERM);
    memset(mold, 0, sizeof(*mold));
    mold->chan = -1;
}

void sv_refork_kill_mold(sv_master_t *m)
{
    close_mold(m, &m->mold);
    if (m->mold_next_chan > 0) {
        sv_loop_unwatch(m->loop, m->mold_next_chan);
        close(m->mold_next_chan);
    }
    m->mold_next_chan = -1;
    m->mold_next_gen = 0;
}

/* ---- forking through the mold -------------------------------------------------- */

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

/* Spawns that waited for a mold go now: to the mold, or to the master without one. */
static void flush_pending(sv_master_t *m, bool to_master)
{
    for (int i = 0; i < m->nw; i++) {
        sv_whandle_t *h = m->w[i];
        if (!h->mold_pending)
            continue;
        if (to_master) {
            int fd = h->child_fd;
            h->child_fd = -1;
            h->mold_pending = false;
            sv_master_fork_handle(m, h, fd);
        } else {
            send_spawn(m, h);
        }
    }
}

static void on_mold_chan(sv_loop_t *loop, int fd, short revents, void *arg);

/* Ask worker 0 for a mold; refork=true runs its on_refork hook. */
static bool request_mold(sv_master_t *m, bool refork)
{
    sv_whandle_t *w0 = worker0(m);
    if (!w0 || m->mold_next_gen)
        return m->mold_next_gen != 0;
    int fds[2];
    if (sv_chan_pair(fds) < 0)
        return false;
    unsigned gen = ++m->mold_generation;
    char msg[96];
    snprintf(msg, sizeof(msg), "%s gen=%u refork=%d", sv_proto_name(SV_PROTO_MAKE_MOLD), gen, refork);
    if (sv_chan_send(w0->chan, msg, fds[1], 1000) < 0) {
        close(fds[0]);
        close(fds[1]);
        return false;
    }
    close(fds[1]);
    m->mold_next_chan = fds[0];
    m->mold_next_gen = gen;
    m->mold_requested_ms = sv_now_ms();
    sv_loop_watch(m->loop, fds[0], POLLIN, on_mold_chan, m);
    sv_log_debug("- asked worker 0 (PID: %d) for mold %u", (int)w0->pid, gen);
    return true;
}

bool sv_refork_spawn_from_mold(sv_master_t *m, sv_whandle_t *h, int child_fd)
{
    if (!m->rt->cfg.fork_worker || h->index == 0 || m->mold_fallback)
        return false;
    h->child_fd = child_fd;
    /* a mold being made wins over the current one: it carries newer code or state */
    if (mold_ready(m) && !m->mold_next_gen) {
        send_spawn(m, h);
        return true;
    }
    if (m->mold_next_gen || request_mold(m, false) || m->refork.state == REFORK_WAIT_MOLD || worker0_booting(m)) {
        h->mold_pending = true; /* worker 0's boot asks for the mold */
        return true;
    }
    if (mold_ready(m)) {
        send_spawn(m, h);
        return true;
    }
    h->child_fd = -1; /* no worker 0 to make a mold from: fork from the master */
    return false;
}

void sv_refork_on_worker_hello(sv_master_t *m, sv_whandle_t *h, const char *msg)
{
    (void)m;
    h->generation = (unsigned)sv_msg_int(msg, "gen", h->generation);
}

/* ---- mold messages and death ------------------------------------------------------ */

static void mold_ready_msg(sv_master_t *m, int fd, const char *msg)
{
    unsigned gen = (unsigned)sv_msg_int(msg, "gen", 0);
    if (fd != m->mold_next_chan || gen != m->mold_next_gen)
        return;
    sv_whandle_t *w0 = worker0(m);
    close_mold(m, &m->mold); /* the previous generation retires */
    m->mold = (sv_mold_handle_t){.pid = (pid_t)sv_msg_int(msg, "pid", 0), .chan = fd, .ready = true,
                                 .generation = gen, .source_pid = w0 ? w0->pid : 0, .ready_ms = sv_now_ms()};
    m->mold_next_chan = -1;
    m->mold_next_gen = 0;
    m->mold_failures = 0;
    sv_log("- Mold %u (PID: %d) forked from worker 0%s", gen, (int)m->mold.pid, w0 ? "" : " (gone since)");
    flush_pending(m, false);
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

static void mold_lost(sv_master_t *m, const char *why)
{
    bool was_next = m->mold_next_gen != 0;
    if (was_next) {
        sv_loop_unwatch(m->loop, m->mold_next_chan);
        close(m->mold_next_chan);
        m->mold_next_chan = -1;
        m->mold_next_gen = 0;
    }
    if (++m->mold_failures >= MOLD_FAILURES_MAX && !m->mold_fallback) {
        m->mold_fallback = true;
        sv_log_error("! the mold failed %d times (%s); forking workers from the master until worker 0 is replaced",
                     m->mold_failures, why);
    }
    if (m->refork.state == REFORK_WAIT_MOLD) {
        sv_master_op_failed(m, "no mold: %s", why);
        m->refork.state = REFORK_FAILED;
    }
    if (!m->mold_fallback && request_mold(m, false))
        return;
    flush_pending(m, true); /* nothing to fork from but the master */
}

static void on_mold_chan(sv_loop_t *loop, int fd, short revents, void *arg)
{
    sv_master_t *m = arg;
    char msg[SV_CHAN_MSG_MAX];
    (void)revents;
    for (int k = 0; k < 32; k++) {
        int rfd;
        int n = sv_chan_recv(fd, msg, sizeof(msg), &rfd);
        if (rfd >= 0)
            close(rfd);
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
                mold_lost(m, "it exited");
            } else if (fd == m->mold_next_chan) {
                mold_lost(m, "it exited before it was ready");
            } else {
                close(fd);
            }
            return;
        }
        switch (sv_proto_verb(msg)) {
        case SV_PROTO_MOLD_READY: mold_ready_msg(m, fd, msg); break;
        case SV_PROTO_SPAWNED: spawned_msg(m, msg, false); break;
        case SV_PROTO_SPAWN_FAILED: spawned_msg(m, msg, true); break;
        default: break;
        }
    }
}

/* worker 0 could not make the mold (busy, fork failed) */
void sv_refork_on_mold_msg(sv_master_t *m, const char *msg, int fd)
{
    (void)fd;
    char reason[96] = "";
    sv_msg_get(msg, "reason", reason, sizeof(reason));
    if ((unsigned)sv_msg_int(msg, "gen", 0) != m->mold_next_gen)
        return;
    sv_log_error("! worker 0 could not make a mold: %s", reason);
    mold_lost(m, reason);
}

void sv_refork_on_mold_exit(sv_master_t *m, int status)
{
    (void)status;
    /* the channel's EOF does the work; the pid only has to be reaped */
    if (m->mold.chan < 0)
        m->mold.pid = 0;
}

void sv_refork_on_worker0_booted(sv_master_t *m, sv_whandle_t *h)
{
    if (!m->rt->cfg.fork_worker || h->index != 0 || h->stopping || h->superseded)
        return;
    /* a new worker 0 (new release, or a replacement) is the mold's new source */
    if (m->mold.source_pid != h->pid) {
        m->mold_fallback = false;
        m->mold_failures = 0;
        if (!request_mold(m, false))
            flush_pending(m, true);
    }
}

void sv_refork_on_boot_failure(sv_master_t *m, sv_whandle_t *h, const char *reason)
{
    (void)reason;
    /* workers waiting for worker 0's mold must not wait on a worker 0 that cannot boot */
    if (m->rt->cfg.fork_worker && h->index == 0 && !mold_ready(m))
        flush_pending(m, true);
}

/* ---- the refork operation ----------------------------------------------------------- */

static void refork_start(sv_master_t *m)
{
    m->refork = (struct refork_state){.state = REFORK_FAILED, .next_threshold = m->refork.next_threshold,
                                      .counted_pid = m->refork.counted_pid};
    if (!m->rt->cfg.fork_worker) {
        sv_master_op_failed(m, "refork not available (fork_worker is off)");
        return;
    }
    sv_whandle_t *w0 = worker0(m);
    if (!w0) {
        sv_master_op_failed(m, "worker 0 is not serving");
        return;
    }
    sv_log("- Starting worker refork from worker 0 (PID: %d, %llu requests served)", (int)w0->pid,
           (unsigned long long)w0->st.requests_count);
    /* a mold already on its way carries worker 0's state at request time; ask for a fresh one */
    if (m->mold_next_gen) {
        sv_loop_unwatch(m->loop, m->mold_next_chan);
        close(m->mold_next_chan);
        m->mold_next_chan = -1;
        m->mold_next_gen = 0;
    }
    if (!request_mold(m, true)) {
        sv_master_op_failed(m, "could not ask worker 0 for a mold");
        return;
    }
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
    sv_roll_begin(m, total, prev, "refork", true);
    sv_log("- Starting worker refork, phase: %u (mold %u)", m->phase, m->mold.generation);
}

/*
 * IDLE --start--> WAIT_MOLD (or FAILED: no fork_worker, no worker 0)
 * WAIT_MOLD --mold ready--> ROLL; --worker 0 could not make it--> FAILED
 * ROLL --the roll's result--> done
 */
static sv_step_t refork_step(sv_master_t *m, int64_t now_ms)
{
    switch (m->refork.state) {
    case REFORK_IDLE: return SV_STEP_SUCCEEDED;
    case REFORK_FAILED: m->refork.state = REFORK_IDLE; return SV_STEP_FAILED;
    case REFORK_WAIT_MOLD:
        if (m->mold_next_gen && now_ms - m->mold_requested_ms > MOLD_REQUEST_TIMEOUT_MS) {
            mold_lost(m, "worker 0 did not answer"); /* -> FAILED */
            return SV_STEP_RUNNING;
        }
        if (!mold_ready(m) || m->mold_next_gen)
            return SV_STEP_RUNNING;
        begin_roll(m); /* and roll at once */
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
