/*
 * master.c: the cluster master. Owns the worker table (sv_whandle_t, one
 * per worker process and its channel, with its deadline timer), the
 * operation log's driving, and the one place a command becomes an action
 * (sv_master_act). Binds nothing itself (runtime did), runs no app code
 * unless preloading, forks and supervises workers. Its event loop sleeps
 * until something happens (a signal, a worker's message or EOF, a control
 * client) or a timer is due (a worker's boot, check-in or stop deadline,
 * the respawn back-off, periodic samples); after each turn it reacts:
 * reap, recycle, step the running operation's machine, cull, respawn.
 */
#include "cluster/master.h"

#include <errno.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cluster/certs.h"
#include "cluster/handover.h"
#include "cluster/master_internal.h"
#include "cluster/state.h"
#include "cluster/worker.h"
#include "cluster/proto.h"
#include "core/log.h"
#include "core/time.h"
#include "os/chan.h"
#include "os/fd.h"
#include "os/notify.h"
#include "os/sig.h"

#define RESPAWN_BACKOFF_MAX_MS 30000
/* A worker whose channel closed but that was not reaped: looked for with kill(pid, 0) this often. */
#define LOST_CHILD_GRACE_MS 2000
/* A fork or socketpair failed: the respawn loop tries again this much later. */
#define SPAWN_RETRY_MS 100
#define MEM_SAMPLE_MS 2000
#define STATUS_EVERY_MS 1000

/* ---- worker table ---------------------------------------------------------- */

static void on_deadline(sv_loop_t *loop, sv_timer_t *t, void *arg);

static sv_whandle_t *add_handle(sv_master_t *m, int index)
{
    if (m->nw == m->cap) {
        int cap = m->cap ? m->cap * 2 : 16;
        sv_whandle_t **w = realloc(m->w, (size_t)cap * sizeof(sv_whandle_t *));
        if (!w)
            return NULL;
        m->w = w;
        m->cap = cap;
    }
    sv_whandle_t *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->master = m;
    h->index = index;
    h->chan = -1;
    h->child_fd = -1;
    h->phase = m->phase;
    h->spawned_ms = h->checkin_ms = sv_now_ms();
    sv_timer_init(&h->deadline, on_deadline, h);
    h->seq = ++m->handle_seq;
    h->started_wall = h->checkin_wall = time(NULL);
    /* the table stays ordered by index (old before new within an index) */
    int pos = m->nw;
    while (pos > 0 && m->w[pos - 1]->index > index)
        pos--;
    memmove(&m->w[pos + 1], &m->w[pos], (size_t)(m->nw - pos) * sizeof(sv_whandle_t *));
    m->w[pos] = h;
    m->nw++;
    sv_master_rearm(m, h); /* the boot deadline */
    return h;
}

/* A worker index nobody serves any more must not look like an idle peer to the others. */
static void release_load_slot(sv_master_t *m, int index)
{
    if (!m->load || index >= SV_LOAD_SLOTS)
        return;
    for (int i = 0; i < m->nw; i++)
        if (m->w[i]->index == index)
            return;
    __atomic_store_n(&m->load[index].max, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&m->load[index].busy, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&m->load[index].accepted, 0, __ATOMIC_RELAXED);
}

static void remove_handle(sv_master_t *m, sv_whandle_t *h)
{
    for (int i = 0; i < m->nw; i++) {
        if (m->w[i] != h)
            continue;
        memmove(&m->w[i], &m->w[i + 1], (size_t)(m->nw - i - 1) * sizeof(sv_whandle_t *));
        m->nw--;
        break;
    }
    sv_loop_timer_stop(m->loop, &h->deadline);
    if (h->chan >= 0) {
        sv_loop_unwatch(m->loop, h->chan);
        close(h->chan);
    }
    if (h->child_fd >= 0)
        close(h->child_fd);
    int index = h->index;
    free(h);
    release_load_slot(m, index);
}

int sv_master_active_count(const sv_master_t *m)
{
    int n = 0;
    for (int i = 0; i < m->nw; i++)
        if (!m->w[i]->stopping && !m->w[i]->superseded)
            n++;
    return n;
}

sv_whandle_t *sv_master_find_index(const sv_master_t *m, int index, bool want_booted_current)
{
    for (int i = 0; i < m->nw; i++) {
        sv_whandle_t *h = m->w[i];
        if (h->index != index || h->stopping || h->superseded)
            continue;
        if (!want_booted_current || (h->booted && h->phase == m->phase))
            return h;
    }
    return NULL;
}

static sv_whandle_t *by_chan(sv_master_t *m, int fd)
{
    for (int i = 0; i < m->nw; i++)
        if (m->w[i]->chan == fd)
            return m->w[i];
    return NULL;
}

static sv_whandle_t *by_pid(sv_master_t *m, pid_t pid)
{
    for (int i = 0; pid > 0 && i < m->nw; i++)
        if (m->w[i]->pid == pid)
            return m->w[i];
    return NULL;
}

bool sv_master_all_current_booted(const sv_master_t *m)
{
    int n = 0;
    for (int i = 0; i < m->nw; i++) {
        const sv_whandle_t *h = m->w[i];
        if (h->stopping || h->superseded)
            continue;
        if (!h->booted || h->phase != m->phase)
            return false;
        n++;
    }
    return n >= m->target;
}

/* ---- spawning ---------------------------------------------------------------- */

static void child_setup(sv_master_t *m, int keep_fd)
{
    sv_sig_reset(); /* closes the parent's self-pipe */
    sv_log_after_fork();
    sv_notify_forget();
    sv_rt_keep_only(m->rt, keep_fd);
}

static void on_chan(sv_loop_t *loop, int fd, short revents, void *arg);

static void start_worker_process(sv_master_t *m, sv_whandle_t *h, int child_end)
{
    sv_worker_args_t a = {.rt = m->rt,
                          .index = h->index,
                          .phase = h->phase,
                          .chan = child_end,
                          .master_pid = (int)getppid(),
                          .load = h->index < SV_LOAD_SLOTS ? m->load : NULL,
                          .n_load = SV_LOAD_SLOTS,
                          .fork_worker = m->rt->cfg.fork_worker && h->index == 0};
    sv_worker_main(&a);
}

bool sv_master_fork_handle(sv_master_t *m, sv_whandle_t *h, int child_fd)
{
    if (!m->before_fork_done) {
        sv_app_hook(&m->rt->app, SV_HOOK_BEFORE_FORK, -1);
        m->before_fork_done = true;
    }
    sv_app_hook(&m->rt->app, SV_HOOK_ON_WORKER_FORK, h->index);
    if (m->rt->cfg.nakayoshi_fork)
        malloc_trim(0);
    pid_t pid = fork();
    if (pid == 0) {
        child_setup(m, child_fd);
        start_worker_process(m, h, child_fd);
    }
    close(child_fd);
    if (pid < 0) {
        sv_log_error("! Complete inability to spawn new workers detected: fork: %s", strerror(errno));
        return false;
    }
    h->pid = pid;
    h->forked_from = getpid();
    h->generation = 0;
    sv_app_hook(&m->rt->app, SV_HOOK_AFTER_WORKER_FORK, h->index);
    return true;
}

/* Wake the loop by then for the respawn loop (a back-off's end, a retry): the earliest asked for wins. */
static void respawn_by(sv_master_t *m, int64_t after_ms)
{
    sv_timer_t *t = &m->respawn_timer;
    if (sv_timer_armed(t) && t->at_ms <= sv_now_ns() / 1000000 + after_ms)
        return;
    sv_loop_timer_start(m->loop, t, after_ms, 0);
}

sv_whandle_t *sv_master_spawn(sv_master_t *m, int index, const char *why)
{
    int fds[2];
    if (sv_chan_pair(fds) < 0) {
        sv_log_error("! cannot create a worker channel: %s", strerror(errno));
        respawn_by(m, SPAWN_RETRY_MS);
        return NULL;
    }
    sv_whandle_t *h = add_handle(m, index);
    if (!h) {
        close(fds[0]);
        close(fds[1]);
        respawn_by(m, SPAWN_RETRY_MS);
        return NULL;
    }
    h->chan = fds[0];
    h->op_id = m->ops.current ? m->ops.current->id : 0;
    if (m->rt->cfg.max_requests > 0) {
        int64_t j = m->rt->cfg.max_requests_jitter;
        h->recycle_after = m->rt->cfg.max_requests - (j > 0 ? (int64_t)(random() % (j + 1)) : 0);
    }
    sv_loop_watch(m->loop, h->chan, POLLIN, on_chan, m);
    m->spawned_total++;
    sv_log_debug("- spawning worker %d (%s)", index, why);
    if (sv_molds_spawn(m, h, fds[1]))
        return h;
    if (!sv_master_fork_handle(m, h, fds[1])) {
        remove_handle(m, h);
        respawn_by(m, SPAWN_RETRY_MS);
        return NULL;
    }
    return h;
}

sv_whandle_t *sv_master_adopt_handle(sv_master_t *m, int index, pid_t pid, int chan)
{
    sv_whandle_t *h = add_handle(m, index);
    if (!h)
        return NULL;
    h->pid = pid;
    h->chan = chan;
    sv_fd_cloexec(chan, true);
    sv_loop_watch(m->loop, chan, POLLIN, on_chan, m);
    return h;
}

/* Spawn at the smallest free index until the target is met (an index in back-off: when it ends). */
static void ensure_workers(sv_master_t *m)
{
    int64_t now = sv_now_ms();
    while (sv_master_active_count(m) < m->target) {
        int index = 0;
        while (index < SV_MAX_INDEX - 1 && sv_master_find_index(m, index, false))
            index++;
        if (now < m->respawn_at[index]) {
            respawn_by(m, m->respawn_at[index] - now);
            return;
        }
        if (!sv_master_spawn(m, index, "missing"))
            return;
    }
}

/*
 * Cull above the target: youngest (or oldest) first; worker 0 stays with
 * fork_worker. Not while an operation runs: its workers (a booting
 * replacement, an old worker waiting for its replacement) are the
 * operation's to stop; a lower target applies when it has finished.
 */
static void cull_workers(sv_master_t *m)
{
    if (m->ops.current)
        return;
    while (sv_master_active_count(m) > m->target) {
        sv_whandle_t *pick = NULL;
        for (int i = 0; i < m->nw; i++) {
            sv_whandle_t *h = m->w[i];
            if (h->stopping || h->superseded || (m->rt->cfg.fork_worker && h->index == 0))
                continue;
            bool oldest = m->rt->cfg.worker_culling_strategy == SV_CULL_OLDEST;
            /* by creation order: spawn times on the coarse clock tie within a few ms */
            if (!pick || (oldest ? h->seq < pick->seq : h->seq > pick->seq))
                pick = h;
        }
        if (!pick)
            return;
        sv_log("- Worker %d (PID: %d) terminating", pick->index, (int)pick->pid);
        sv_master_stop_worker(m, pick, "culled");
    }
}

void sv_master_stop_worker(sv_master_t *m, sv_whandle_t *h, const char *reason)
{
    if (h->stopping)
        return;
    h->stopping = true;
    h->stop_ms = sv_now_ms();
    snprintf(h->stop_reason, sizeof(h->stop_reason), "%s", reason);
    /* a worker still booting has nothing to finish */
    if (!h->booted) {
        sv_master_kill_worker(m, h, SV_DEATH_STOPPED);
        return;
    }
    sv_master_rearm(m, h); /* the stop deadline */
    if (h->chan < 0 || sv_chan_send(h->chan, sv_proto_name(SV_PROTO_STOP), -1, 0) < 0) {
        if (h->pid > 0)
            kill(h->pid, SIGTERM);
    }
}

void sv_master_kill_worker(sv_master_t *m, sv_whandle_t *h, sv_death_t cause)
{
    if (!h->kill_sent)
        h->kill_cause = cause;
    h->kill_sent = true;
    if (!h->stopping) { /* on its way out: no longer a worker to count, cull or replace */
        h->stopping = true;
        h->stop_ms = sv_now_ms();
    }
    if (h->pid > 0)
        kill(h->pid, SIGKILL);
    if (h->pid <= 0) { /* never reported (or never forked): drop it, it dies of the closed channel */
        if (h->child_fd >= 0)
            close(h->child_fd);
        h->child_fd = -1;
        h->mold_pending = false;
    }
    if (h->chan >= 0 && h->pid <= 0) {
        sv_loop_unwatch(m->loop, h->chan);
        close(h->chan);
        h->chan = -1;
        h->exited = true;
    }
    sv_master_rearm(m, h); /* no deadline left but the look for a lost child */
}

void sv_master_fire_booted(sv_master_t *m)
{
    if (m->booted_announced)
        return;
    m->booted_announced = true;
    sv_app_hook(&m->rt->app, SV_HOOK_ON_BOOTED, -1);
    sv_notify("READY=1\nMAINPID=%d", (int)getpid());
}

static const sv_machine_t *const machines[SV_OP_KINDS];

/* ---- worker messages ------------------------------------------------------------ */

static void on_boot_failure(sv_master_t *m, sv_whandle_t *h, const char *reason)
{
    if (m->ops.current && m->ops.current->id == m->started_op && machines[m->ops.current->kind]->boot_failure)
        machines[m->ops.current->kind]->boot_failure(m, h, reason);
    sv_mold_machine.boot_failure(m, h, reason); /* workers waiting for worker 0's mold */
}

/* The running operation's machine learns of an exit before the handle goes. */
static void on_exited(sv_master_t *m, sv_whandle_t *h)
{
    if (m->ops.current && m->ops.current->id == m->started_op && machines[m->ops.current->kind]->exited)
        machines[m->ops.current->kind]->exited(m, h);
}

static void on_booted(sv_master_t *m, sv_whandle_t *h, const char *msg)
{
    if (h->pid <= 0)
        h->pid = (pid_t)sv_msg_int(msg, "pid", 0);
    h->booted = true;
    h->booted_ms = h->checkin_ms = sv_now_ms();
    h->checkin_wall = time(NULL);
    m->boot_failures[h->index] = 0;
    double secs = (double)(h->booted_ms - h->spawned_ms) / 1000.0;
    sv_log("- Worker %d (PID: %d) booted in %.2fs, phase: %u", h->index, (int)h->pid, secs, h->phase);
    if (h->stopping) /* told to stop while it booted */
        sv_chan_send(h->chan, sv_proto_name(SV_PROTO_STOP), -1, 0);
    sv_master_rearm(m, h); /* the check-in deadline */
    if (m->ops.current && m->ops.current->id == m->started_op && machines[m->ops.current->kind]->booted)
        machines[m->ops.current->kind]->booted(m, h);
    sv_mold_machine.booted(m, h); /* a new worker 0: molds come from it */
}

/*
 * A boot failure feeds the respawn back-off once, as soon as the master
 * knows of it: the worker's message, or its exit when it sent none. The
 * message stops counting the worker at once, so the back-off must be in
 * place by then, or ensure_workers replaces a worker that is slow to exit
 * (a big heap to unmap, a sanitizer's checks at exit) again and again with
 * no back-off at all. Returns the back-off.
 */
static int64_t count_boot_failure(sv_master_t *m, sv_whandle_t *h)
{
    if (h->failure_counted)
        return h->backoff_ms;
    h->failure_counted = true;
    int fails = ++m->boot_failures[h->index];
    int64_t delay = fails <= 1 ? 0 : 500LL << (fails - 2 < 6 ? fails - 2 : 6);
    h->backoff_ms = delay > RESPAWN_BACKOFF_MAX_MS ? RESPAWN_BACKOFF_MAX_MS : delay;
    m->respawn_at[h->index] = sv_now_ms() + h->backoff_ms;
    return h->backoff_ms;
}

static void on_message(sv_master_t *m, sv_whandle_t *h, const char *msg)
{
    switch (sv_proto_verb(msg)) {
    case SV_PROTO_PING:
        sv_master_parse_ping(h, msg);
        h->checkin_ms = sv_now_ms();
        h->checkin_wall = time(NULL);
        sv_master_rearm(m, h);
        sv_refork_check_auto(m, h);
        break;
    case SV_PROTO_HELLO:
        if (h->pid <= 0)
            h->pid = (pid_t)sv_msg_int(msg, "pid", 0);
        h->generation = (unsigned)sv_msg_int(msg, "gen", h->generation); /* the mold it came from */
        break;
    case SV_PROTO_BOOTED: on_booted(m, h, msg); break;
    case SV_PROTO_BOOT_FAILED: {
        char reason[300] = "";
        sv_msg_get(msg, "reason", reason, sizeof(reason));
        h->kill_cause = SV_DEATH_BOOT;
        /* it is on its way out: no longer a worker to count or cull */
        h->stopping = true;
        h->stop_ms = sv_now_ms();
        snprintf(h->stop_reason, sizeof(h->stop_reason), "boot failed");
        sv_master_rearm(m, h);
        on_boot_failure(m, h, reason);
        if (!h->op_failure)
            count_boot_failure(m, h);
        break;
    }
    case SV_PROTO_STOPPING:
        if (!h->stopping) {
            h->stopping = true;
            h->stop_ms = sv_now_ms();
            snprintf(h->stop_reason, sizeof(h->stop_reason), "external TERM");
            sv_master_rearm(m, h);
        }
        break;
    case SV_PROTO_APP_TIMEOUT: sv_replace_on_app_timeout(m, h, msg); break;
    case SV_PROTO_MOLD_FAILED: sv_molds_on_worker0_msg(m, msg); break;
    default: break; /* a verb of a newer version, or not for the master: ignored */
    }
}

static void on_chan(sv_loop_t *loop, int fd, short revents, void *arg)
{
    sv_master_t *m = arg;
    sv_whandle_t *h = by_chan(m, fd);
    (void)revents;
    if (!h) {
        sv_loop_unwatch(loop, fd);
        return;
    }
    char msg[SV_CHAN_MSG_MAX];
    for (int k = 0; k < 64; k++) {
        int n = sv_chan_recv(fd, msg, sizeof(msg), NULL);
        if (n == -EAGAIN)
            return;
        if (n <= 0) { /* the worker is gone (or going): waitpid will tell how */
            sv_loop_unwatch(loop, fd);
            close(fd);
            h->chan = -1;
            h->chan_closed_ms = sv_now_ms();
            sv_master_rearm(m, h); /* if no reap comes, look for it in LOST_CHILD_GRACE_MS */
            return;
        }
        on_message(m, h, msg);
    }
}

/* ---- reaping ---------------------------------------------------------------- */

static sv_death_t classify(const sv_whandle_t *h, int status)
{
    if ((h->kill_sent && h->kill_cause != SV_DEATH_STOPPED) || h->kill_cause == SV_DEATH_BOOT)
        return h->kill_cause;
    if (!h->booted)
        return h->stopping ? SV_DEATH_STOPPED : SV_DEATH_BOOT;
    if (h->stopping && WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return SV_DEATH_STOPPED;
    if (h->stopping && h->kill_sent)
        return SV_DEATH_TIMEOUT;
    return SV_DEATH_CRASH;
}

static void log_death(sv_master_t *m, sv_whandle_t *h, sv_death_t cause, int status)
{
    char desc[96];
    sv_proc_describe_status(status, desc, sizeof(desc));
    if (cause == SV_DEATH_BOOT && h->op_failure) {
        /* an operation took this failure and stopped: it is no crash loop of the respawns */
        sv_log_error("! Worker %d (PID: %d) failed to boot (%s)", h->index, (int)h->pid, desc);
    } else if (cause == SV_DEATH_BOOT) {
        int64_t delay = count_boot_failure(m, h);
        sv_log_error("! Worker %d (PID: %d) failed to boot (%s)%s", h->index, (int)h->pid, desc,
                     delay ? "; retrying with back-off" : "");
        on_boot_failure(m, h, desc);
    } else if (cause == SV_DEATH_CRASH) {
        sv_log_error("! Worker %d (PID: %d) died: %s; replacing it", h->index, (int)h->pid, desc);
    } else if (cause == SV_DEATH_TIMEOUT) {
        sv_log_error("! Worker %d (PID: %d) was killed: %s", h->index, (int)h->pid, desc);
    } else {
        sv_log_debug("- Worker %d (PID: %d) exited: %s (%s)", h->index, (int)h->pid, desc, h->stop_reason);
    }
}

static void reap(sv_master_t *m)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid == m->mold.pid) {
            sv_molds_on_exit(m, pid);
            continue;
        }
        if (pid == m->hot.preflight_pid) {
            m->hot.preflight_reaped = true;
            m->hot.preflight_status = status;
            continue;
        }
        sv_whandle_t *h = by_pid(m, pid);
        if (!h) {
            char desc[96];
            sv_log_debug("! reaped unknown child process pid=%d status=%s", (int)pid,
                         sv_proc_describe_status(status, desc, sizeof(desc)));
            continue;
        }
        sv_death_t cause = classify(h, status);
        m->deaths[cause]++;
        log_death(m, h, cause, status);
        on_exited(m, h);
        remove_handle(m, h);
    }
    /* workers whose channel closed and that never had a pid, or that their deadline found gone */
    for (int i = m->nw - 1; i >= 0; i--) {
        sv_whandle_t *h = m->w[i];
        if (h->exited || (h->chan < 0 && h->pid <= 0)) {
            on_exited(m, h);
            remove_handle(m, h);
        }
    }
}

/* ---- deadlines: one timer per worker ------------------------------------------- */

/*
 * The worker's next deadline, 0 for none: stop (stopping), boot (not
 * booted), check-in (serving), each ending in SIGKILL; and, once its
 * channel closed without a reap, a look whether it is gone at all (a
 * worker that is not our child any more).
 */
static int64_t deadline_of(const sv_master_t *m, const sv_whandle_t *h)
{
    const sv_config_t *c = &m->rt->cfg;
    int64_t at = 0;
    if (h->exited)
        return 0;
    if (h->kill_sent)
        at = 0;
    else if (h->stopping)
        at = h->stop_ms + (int64_t)(sv_replace_grace(m, h) * 1000);
    else if (!h->booted)
        at = h->spawned_ms + (int64_t)(c->worker_boot_timeout * 1000);
    else
        at = h->checkin_ms + (int64_t)(c->worker_timeout * 1000);
    if (h->chan < 0 && h->pid > 0) {
        int64_t look = h->chan_closed_ms + LOST_CHILD_GRACE_MS;
        if (!at || look < at)
            at = look;
    }
    return at;
}

/* Arm h's timer for its next deadline, computed against now (the clock its fields were set with). */
static void rearm_at(sv_master_t *m, sv_whandle_t *h, int64_t now)
{
    int64_t at = deadline_of(m, h);
    if (!at) {
        sv_loop_timer_stop(m->loop, &h->deadline);
        return;
    }
    sv_loop_timer_start(m->loop, &h->deadline, at > now ? at - now : 0, 0);
}

void sv_master_rearm(sv_master_t *m, sv_whandle_t *h)
{
    rearm_at(m, h, sv_now_ms());
}

static void on_deadline(sv_loop_t *loop, sv_timer_t *t, void *arg)
{
    sv_whandle_t *h = arg;
    sv_master_t *m = h->master;
    const sv_config_t *c = &m->rt->cfg;
    int64_t now = sv_now_ms();
    (void)loop, (void)t;
    if (h->chan < 0 && h->pid > 0 && !h->exited && now - h->chan_closed_ms >= LOST_CHILD_GRACE_MS) {
        if (!sv_proc_alive(h->pid)) { /* not our child any more: no reap will come */
            m->deaths[SV_DEATH_LOST]++;
            h->exited = true; /* dropped after this turn */
            return;
        }
        h->chan_closed_ms = now; /* look again later */
    }
    if (h->kill_sent || h->exited) {
        rearm_at(m, h, now);
        return;
    }
    if (h->stopping && now - h->stop_ms >= (int64_t)(sv_replace_grace(m, h) * 1000)) {
        sv_log_error("! Worker %d (PID: %d) did not stop within %g seconds, killing it", h->index, (int)h->pid,
                     sv_replace_grace(m, h));
        sv_master_kill_worker(m, h, SV_DEATH_TIMEOUT);
    } else if (!h->booted && !h->stopping && now - h->spawned_ms >= (int64_t)(c->worker_boot_timeout * 1000)) {
        sv_log_error("! Terminating timed out worker (Worker %d failed to boot within %g seconds): %d", h->index,
                     c->worker_boot_timeout, (int)h->pid);
        sv_master_kill_worker(m, h, SV_DEATH_BOOT);
        on_boot_failure(m, h, "boot timeout");
    } else if (h->booted && !h->stopping && now - h->checkin_ms >= (int64_t)(c->worker_timeout * 1000)) {
        sv_log_error("! Terminating timed out worker (Worker %d failed to check in within %g seconds): %d",
                     h->index, c->worker_timeout, (int)h->pid);
        sv_master_kill_worker(m, h, SV_DEATH_TIMEOUT);
    } else {
        rearm_at(m, h, now); /* early by the coarse clock's tick, or its state changed: the next one */
    }
}

/* ---- operations ---------------------------------------------------------------- */

static const sv_machine_t *const machines[SV_OP_KINDS] = {
    [SV_OP_HOT] = &sv_hot_machine,
    [SV_OP_PHASED] = &sv_phased_machine,
    [SV_OP_REFORK] = &sv_refork_machine,
    [SV_OP_RECYCLE] = &sv_recycle_machine,
};

sv_step_t sv_master_op_failed(sv_master_t *m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->op_error, sizeof(m->op_error), fmt, ap);
    va_end(ap);
    return SV_STEP_FAILED;
}

/* Start the next operation, step the running one, and end it on its machine's result. */
static void step_operations(sv_master_t *m)
{
    if (!m->ops.current && !sv_oplog_next(&m->ops))
        return;
    sv_op_t *op = m->ops.current;
    const sv_machine_t *mc = machines[op->kind];
    if (!m->notified_reloading) {
        sv_notify_reloading();
        m->notified_reloading = true;
    }
    if (op->id != m->started_op) {
        m->started_op = op->id;
        m->op_error[0] = '\0';
        mc->start(m); /* a hot restart's start may exec: this image ends there */
    }
    sv_step_t r = mc->step(m);
    if (r != SV_STEP_RUNNING && m->ops.current == op) {
        sv_oplog_finish_current(&m->ops, r == SV_STEP_SUCCEEDED,
                                r == SV_STEP_FAILED && m->op_error[0] ? m->op_error : NULL);
        /* a queued one starts on the next turn, at once (after this turn's cull and respawn) */
        if (m->ops.queued)
            sv_loop_timer_start(m->loop, &m->again_timer, 0, 0);
    }
}

int sv_master_request(sv_master_t *m, sv_op_kind_t kind, const char *trigger, char *err, size_t errlen)
{
    const sv_config_t *c = &m->rt->cfg;
    if (m->state != M_RUN || m->lame_duck_until_ms) {
        snprintf(err, errlen, "stopping");
        return 0;
    }
    if (kind == SV_OP_REFORK && !c->fork_worker) {
        sv_log("* refork called but not available.");
        snprintf(err, errlen, "refork not available");
        return 0;
    }
    if (kind == SV_OP_PHASED && c->preload) {
        sv_log("* phased-restart called but not available (preload_app loads the app in the master, so only a "
               "hot restart can load new code), restarting normally.");
        kind = SV_OP_HOT;
    }
    int id = sv_oplog_begin(&m->ops, kind, trigger);
    if (m->ops.queued && m->ops.queued->id == id)
        sv_log("* %s queued behind the running %s", sv_op_kind_name(kind), sv_op_kind_name(m->ops.current->kind));
    return id;
}

/* ---- signals ------------------------------------------------------------------ */

static void begin_stop(sv_master_t *m, const char *why)
{
    if (m->state == M_STOP)
        return;
    m->state = M_STOP;
    m->stop_ms = sv_now_ms();
    sv_notify("STOPPING=1");
    sv_log("- Gracefully shutting down workers... (%s)", why);
    /* workers close their copies after a last accept: then new connections are refused */
    sv_rt_close_listeners(m->rt, false);
    sv_molds_kill(m);
    for (int i = 0; i < m->nw; i++)
        sv_master_stop_worker(m, m->w[i], "shutdown");
}

/*
 * shutdown_delay: TERM (or /stop) first makes the cluster a lame duck:
 * readiness answers 503 so load balancers take it out of rotation while
 * every worker keeps serving, new connections and keep-alive ones alike.
 * The graceful stop begins when the delay is over, or at once on a second
 * TERM (or INT: a developer's Ctrl-C never waits).
 */
static void on_lame_duck_over(sv_loop_t *loop, sv_timer_t *t, void *arg)
{
    sv_master_t *m = arg;
    (void)loop, (void)t;
    if (m->state == M_RUN)
        begin_stop(m, "shutdown_delay over");
}

static void stop_or_lame_duck(sv_master_t *m, const char *trigger)
{
    double delay = m->rt->cfg.shutdown_delay;
    bool second = m->lame_duck_until_ms != 0;
    if (m->state != M_RUN || delay <= 0 || second || !strcmp(trigger, "INT")) {
        if (second && m->state == M_RUN)
            sv_log("- Lame duck cut short (%s)", trigger);
        begin_stop(m, trigger);
        return;
    }
    m->lame_duck_until_ms = sv_now_ms() + (int64_t)(delay * 1000);
    sv_timer_init(&m->lame_duck_timer, on_lame_duck_over, m);
    sv_loop_timer_start(m->loop, &m->lame_duck_timer, (int64_t)(delay * 1000), 0);
    sv_notify("STATUS=lame duck: readiness 503, still serving");
    sv_log("- Lame duck for %g s (%s): /readyz answers 503, workers keep serving; the graceful stop "
           "follows (TERM again to stop now)", delay, trigger);
}

static void halt(sv_master_t *m)
{
    sv_log("* Stopping immediately!");
    sv_molds_kill(m);
    for (int i = 0; i < m->nw; i++)
        if (m->w[i]->pid > 0)
            kill(m->w[i]->pid, SIGKILL);
    sv_state_remove(m->rt);
    sv_rt_remove_pidfile(m->rt);
    sv_control_close(m->control, true);
    sv_rt_close_listeners(m->rt, true);
    exit(0);
}

static void worker_count(sv_master_t *m, int delta)
{
    if (delta < 0 && m->target <= 1) {
        sv_log("* Worker count stays at 1 (TTOU refused: a cluster keeps at least one worker)");
        return;
    }
    m->target += delta;
    if (delta < 0 && m->ops.current)
        sv_log("- Worker count decreased to %d (applied when the running %s has finished)", m->target,
               sv_op_kind_name(m->ops.current->kind));
    else
        sv_log("- Worker count %s to %d", delta > 0 ? "increased" : "decreased", m->target);
}

/*
 * The one place where an operator's command becomes an action, whether it
 * came as a signal (the command table's signal column) or as a control
 * request (master_stats.c answers the data-only ones). trigger names the
 * source in the operation log. Returns the operation's id for a restart
 * command (0: refused, reason in err), else 0.
 */
int sv_master_act(sv_master_t *m, sv_control_cmd_t cmd, const char *trigger, char *err, size_t errlen)
{
    switch (cmd) {
    case SV_CMD_STOP: stop_or_lame_duck(m, trigger); return 0;
    case SV_CMD_HALT: m->halting = true; return 0;
    case SV_CMD_RESTART: return sv_master_request(m, SV_OP_HOT, trigger, err, errlen);
    case SV_CMD_PHASED_RESTART: return sv_master_request(m, SV_OP_PHASED, trigger, err, errlen);
    case SV_CMD_REFORK: return sv_master_request(m, SV_OP_REFORK, trigger, err, errlen);
    case SV_CMD_RELOAD_WORKER_DIRECTORY: sv_rt_chdir_restart_dir(m->rt); return 0;
    case SV_CMD_WORKER_COUNT_UP: worker_count(m, 1); return 0;
    case SV_CMD_WORKER_COUNT_DOWN: worker_count(m, -1); return 0;
    case SV_CMD_REOPEN_LOG:
        if (!m->rt->cfg.stdout_redirect && !m->rt->cfg.stderr_redirect) {
            begin_stop(m, trigger); /* Puma: HUP without a log file stops */
            return 0;
        }
        sv_rt_reopen_logs(m->rt);
        for (int i = 0; i < m->nw; i++)
            if (m->w[i]->pid > 0)
                kill(m->w[i]->pid, SIGHUP);
        if (m->mold.chan >= 0) /* workers it forks later write to the new files */
            sv_chan_send(m->mold.chan, sv_proto_name(SV_PROTO_REOPEN_LOGS), -1, 0);
        return 0;
    case SV_CMD_RELOAD_CERTS: sv_certs_reload(m->rt, trigger, NULL); return 0;
    case SV_CMD_INFO:
        sv_state_log_backtrace("master");
        for (int i = 0; i < m->nw; i++)
            if (m->w[i]->pid > 0)
                kill(m->w[i]->pid, SIGPWR);
        return 0;
    default: return 0;
    }
}

static void on_signal(sv_master_t *m, int sig)
{
    char err[128], trigger[16];
    const sv_command_t *c = sv_command_by_signal(sig);
    if (!c)
        return; /* SIGCHLD: the loop reaps after every poll */
    snprintf(trigger, sizeof(trigger), "SIG%s", sv_sig_name(sig));
    /* a stop says which signal; the log and operations name it SIGUSR2 etc. */
    if (c->cmd == SV_CMD_STOP)
        snprintf(trigger, sizeof(trigger), "%s", sv_sig_name(sig));
    if (!sv_master_act(m, c->cmd, trigger, err, sizeof(err)) && c->operation)
        sv_log("* %s refused: %s", trigger, err);
}

static void on_signal_cb(sv_loop_t *loop, int fd, short revents, void *arg)
{
    int sigs[64];
    int n = sv_sig_drain(sigs, 64);
    (void)loop, (void)fd, (void)revents;
    for (int i = 0; i < n; i++)
        on_signal(arg, sigs[i]);
}

static void setup_signals(sv_master_t *m)
{
    sv_sig_open();
    int caught[] = {SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGURG, SIGTTIN, SIGTTOU, SIGHUP, SIGCHLD, SIGPWR,
                    SIGWINCH};
    for (size_t i = 0; i < sizeof(caught) / sizeof(caught[0]); i++)
        sv_sig_catch(caught[i]);
    sv_sig_ignore(SIGPIPE);
    sv_loop_watch(m->loop, sv_sig_fd(), POLLIN, on_signal_cb, m);
    sv_sig_ready(); /* after a hot restart: what arrived during the exec is in the pipe now */
}

/* ---- lifecycle ------------------------------------------------------------------ */

static void finish(sv_master_t *m)
{
    sv_app_hook(&m->rt->app, SV_HOOK_ON_STOPPED, -1);
    if (m->rt->app.initialized)
        sv_app_fini(&m->rt->app);
    sv_control_close(m->control, true);
    sv_state_remove(m->rt);
    sv_rt_remove_pidfile(m->rt);
    sv_rt_close_listeners(m->rt, true); /* closed at stop; this removes our socket files */
    sv_log("- Goodbye!");
    exit(0);
}

/* systemd: READY=1 again once an operation ends (a failed one too: we serve). */
static void notify_ready(sv_master_t *m)
{
    if (m->notified_reloading && !m->ops.current && m->state == M_RUN) {
        m->notified_reloading = false;
        sv_notify("READY=1");
    }
}

/* ---- periodic timers ------------------------------------------------------------ */

static void on_status_timer(sv_loop_t *loop, sv_timer_t *t, void *arg)
{
    sv_master_t *m = arg;
    (void)loop, (void)t;
    int booted = 0;
    for (int i = 0; i < m->nw; i++)
        booted += m->w[i]->booted && !m->w[i]->stopping;
    sv_notify("STATUS=serval %s: cluster: %d/%d workers booted, phase %u%s%s", SERVAL_VERSION, booted, m->target,
              m->phase, m->ops.current ? ", " : "", m->ops.current ? sv_op_kind_name(m->ops.current->kind) : "");
}

static void on_mem_timer(sv_loop_t *loop, sv_timer_t *t, void *arg)
{
    (void)loop, (void)t;
    sv_master_sample_memory(arg); /* a worker over max_worker_memory is recycled after this turn */
}

static void on_tmp_restart(void *arg)
{
    sv_master_t *m = arg;
    char err[64];
    if (m->state == M_RUN)
        sv_master_request(m, SV_OP_HOT, "tmp_restart", err, sizeof(err));
}

/* A wake-up only: the reactions after the turn do the work (a respawn, a queued operation). */
static void on_wake(sv_loop_t *loop, sv_timer_t *t, void *arg)
{
    (void)loop, (void)t, (void)arg;
}

static void init_timers(sv_master_t *m)
{
    sv_timer_init(&m->respawn_timer, on_wake, m);
    sv_timer_init(&m->again_timer, on_wake, m);
    sv_timer_init(&m->mem_timer, on_mem_timer, m);
    sv_timer_init(&m->status_timer, on_status_timer, m);
}

static void start_timers(sv_master_t *m, bool notify)
{
    sv_loop_timer_start(m->loop, &m->mem_timer, 0, MEM_SAMPLE_MS);
    if (notify)
        sv_loop_timer_start(m->loop, &m->status_timer, 0, STATUS_EVERY_MS);
    sv_rt_timers_start(&m->timers, m->rt, m->loop, on_tmp_restart, m);
}

/*
 * What the master does after every turn of its loop: a turn ends only
 * because something happened (a signal, a worker's message or EOF, a
 * control request, a timer), and this reacts to it in a fixed order.
 */
static void react(sv_master_t *m)
{
    if (m->halting)
        halt(m);
    reap(m);
    if (m->state == M_RUN) {
        sv_recycle_check(m); /* before the step: a recycle it begins starts now */
        step_operations(m);
        sv_replace_step(m);
        cull_workers(m);
        ensure_workers(m);
        if (!m->ops.current && sv_master_all_current_booted(m))
            sv_master_fire_booted(m);
    }
    notify_ready(m);
    if (m->state == M_STOP && m->nw == 0)
        finish(m);
}

static int boot(sv_master_t *m)
{
    sv_runtime_t *rt = m->rt;
    char err[600];
    sv_proc_subreaper();
    m->load = mmap(NULL, sizeof(sv_load_slot_t) * SV_LOAD_SLOTS, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m->load == MAP_FAILED)
        m->load = NULL;
    if (sv_rt_load_app(rt) < 0)
        return 1;
    if (rt->cfg.preload && sv_app_init(&rt->app, err, sizeof(err)) < 0) {
        fprintf(stderr, "serval: %s\n", err);
        /* after a hot restart the old workers serve on; the new ones will fail visibly */
        if (!rt->hot_restarted)
            return 1;
    }
    if (rt->cfg.workers == 1 && !rt->cfg.silence_single_worker_warning)
        sv_log("! WARNING: Detected running cluster mode with 1 worker. Running in single mode (-w 0) uses less "
               "memory; set silence_single_worker_warning to hide this.");
    sv_rt_write_pidfile(rt);
    m->wrote_pidfile = true;
    bool failed;
    m->control = sv_state_control_open(rt, m->loop, sv_master_control, m, &failed);
    if (failed && !rt->hot_restarted)
        return 1;
    sv_state_write(rt);
    sv_rt_banner_listeners(rt);
    sv_log("Use Ctrl-C to stop");
    return 0;
}

/*
 * A boot that failed gives back what it took (no worker was forked yet): the
 * app (fini after a preload's successful init), the control server, the pid
 * file it wrote, the listeners with the socket files this process created,
 * the load slots, the loop and the context. Returns the exit status.
 */
static int abandon_boot(sv_master_t *m, int rc)
{
    if (m->rt->app.initialized)
        sv_app_fini(&m->rt->app);
    sv_control_close(m->control, true);
    if (m->wrote_pidfile)
        sv_rt_remove_pidfile(m->rt);
    sv_rt_close_listeners(m->rt, true);
    if (m->load)
        munmap(m->load, sizeof(sv_load_slot_t) * SV_LOAD_SLOTS);
    sv_loop_free(m->loop);
    free(m);
    return rc;
}

int sv_master_run(sv_runtime_t *rt)
{
    sv_master_t *m = calloc(1, sizeof(*m));
    char tag[256];
    if (m)
        m->loop = sv_loop_new();
    if (!m || !m->loop) {
        fprintf(stderr, "serval: out of memory\n");
        free(m);
        return 1;
    }
    m->rt = rt;
    init_timers(m); /* armed by start_timers, or by whatever needs them first */
    m->target = rt->cfg.workers;
    m->mold.chan = m->molding.next_chan = -1;
    sv_oplog_init(&m->ops);
    sv_handover_adopt_ops(rt, &m->ops);
    sv_rt_set_context(rt, SERVAL_ROLE_MASTER, -1, 0);
    sv_rt_banner(rt, true);
    sv_proc_set_title("serval %s (%s) [%s]", SERVAL_VERSION, sv_config_bind(&rt->cfg, 0),
                      sv_rt_tag(rt, tag, sizeof(tag)));
    setup_signals(m);
    bool notify = sv_notify_init();
    if (notify)
        sv_log("* Enabling systemd notification integration");
    /* a hot restart in progress was announced by the image before the exec */
    m->notified_reloading = m->ops.current != NULL;
    int rc = boot(m);
    if (rc)
        return abandon_boot(m, rc);
    sv_hot_cluster_adopt(m);
    sv_handover_drop(rt);
    start_timers(m, notify);
    react(m); /* the first workers */
    for (;;) {
        /* no tick: until an fd is ready or the nearest deadline is due */
        sv_loop_run_once(m->loop, -1);
        react(m);
    }
}
