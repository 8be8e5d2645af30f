/*
 * mold.c: the fork_worker mold, from worker 0's side and its own.
 *
 * worker 0, on "make-mold gen=G refork=0|1" (+ the mold's channel):
 *   quiesce the server (no request inside the app, no lock held by a
 *   serving thread), run on_refork for a refork, fork a detached child
 *   (it is reparented to the master, the subreaper), resume serving. The
 *   pause lasts as long as the requests already in the app, and a fork.
 * the mold (single-threaded, idle, holding worker 0's warmed memory):
 *   "mold-ready pid= gen=" once, then for each "spawn index= phase="
 *   (+ the new worker's channel) fork a detached worker and answer
 *   "spawned index= pid=". It exits when its channel closes or on TERM.
 */
#include "cluster/mold.h"

#include <errno.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster/proto.h"
#include "core/log.h"
#include "os/chan.h"
#include "os/loop.h"
#include "os/proc.h"
#include "os/sig.h"

#define QUIESCE_TIMEOUT_MS 10000

static void spawn_worker(const sv_worker_args_t *tmpl, int mold_chan, const char *msg, int worker_chan)
{
    sv_runtime_t *rt = tmpl->rt;
    int index = (int)sv_msg_int(msg, "index", -1);
    if (worker_chan < 0 || index < 0) {
        if (worker_chan >= 0)
            close(worker_chan);
        sv_proto_sendf(mold_chan, SV_PROTO_SPAWN_FAILED, " index=%d reason=bad-request", index);
        return;
    }
    sv_app_hook(&rt->app, SV_HOOK_ON_WORKER_FORK, index);
    if (rt->cfg.nakayoshi_fork)
        malloc_trim(0);
    pid_t pid = sv_proc_fork_detached();
    if (pid == 0) {
        sv_log_after_fork();
        sv_rt_keep_only(rt, worker_chan); /* the mold's channel and anything else of the mold's go */
        sv_worker_args_t a = *tmpl;
        a.index = index;
        a.phase = (unsigned)sv_msg_int(msg, "phase", 0);
        a.chan = worker_chan;
        a.generation = (unsigned)sv_msg_int(msg, "gen", 0);
        a.fork_worker = false;
        sv_worker_main(&a);
    }
    close(worker_chan);
    if (pid < 0) {
        sv_proto_sendf(mold_chan, SV_PROTO_SPAWN_FAILED, " index=%d reason=fork:%d", index, -pid);
        return;
    }
    sv_app_hook(&rt->app, SV_HOOK_AFTER_WORKER_FORK, index);
    sv_proto_sendf(mold_chan, SV_PROTO_SPAWNED, " index=%d pid=%d", index, (int)pid);
}

typedef struct mold {
    const sv_worker_args_t *tmpl;
    int chan;
} mold_t;

/* The master's requests, one at a time: it waits for each answer before the next spawn. */
static void on_master(sv_loop_t *loop, int fd, short revents, void *arg)
{
    mold_t *md = arg;
    char msg[SV_CHAN_MSG_MAX];
    (void)loop, (void)revents;
    for (;;) {
        int wfd;
        int n = sv_chan_recv(fd, msg, sizeof(msg), &wfd);
        if (n == -EAGAIN)
            return;
        if (n <= 0)
            _exit(0); /* the master is gone or let us go */
        sv_proto_verb_t v = sv_proto_verb(msg);
        if (v == SV_PROTO_SPAWN) {
            spawn_worker(md->tmpl, md->chan, msg, wfd); /* takes wfd */
            continue;
        }
        if (wfd >= 0)
            close(wfd);
        if (v == SV_PROTO_REOPEN_LOGS)
            sv_rt_reopen_logs(md->tmpl->rt);
    }
}

static _Noreturn void mold_main(const sv_worker_args_t *tmpl, int chan, unsigned gen)
{
    char tag[256];
    mold_t md = {.tmpl = tmpl, .chan = chan};
    sv_rt_set_context(tmpl->rt, SERVAL_ROLE_MOLD, -1, tmpl->phase);
    sv_proc_set_title("serval: mold %u: %d [%s]", gen, tmpl->master_pid, sv_rt_tag(tmpl->rt, tag, sizeof(tag)));
    sv_sig_default(SIGTERM);
    sv_sig_ignore(SIGINT);
    sv_sig_ignore(SIGHUP);
    sv_sig_ignore(SIGPIPE);
    /* a mold never serves: it only forks, one request at a time; its loop watches one channel */
    sv_loop_t *loop = sv_loop_new();
    if (!loop || sv_loop_watch(loop, chan, POLLIN, on_master, &md) < 0)
        _exit(1);
    sv_proto_sendf(chan, SV_PROTO_MOLD_READY, " pid=%d gen=%u", (int)getpid(), gen);
    sv_loop_run(loop); /* nothing stops it: the mold ends in on_master */
    _exit(0);
}

void sv_mold_fork_from_worker(const sv_worker_args_t *a, sv_server_t *srv, const char *msg, int mold_chan)
{
    unsigned gen = (unsigned)sv_msg_int(msg, "gen", 0);
    bool refork = sv_msg_int(msg, "refork", 0) == 1;
    if (mold_chan < 0) {
        sv_proto_sendf(a->chan, SV_PROTO_MOLD_FAILED, " gen=%u reason=no-channel", gen);
        return;
    }
    if (sv_server_quiesce(srv, QUIESCE_TIMEOUT_MS) < 0) {
        sv_proto_sendf(a->chan, SV_PROTO_MOLD_FAILED, " gen=%u reason=worker-0-busy", gen);
        close(mold_chan);
        return;
    }
    /* the app is quiet here: on_refork may close what must not be shared */
    if (refork)
        sv_app_hook(&a->rt->app, SV_HOOK_ON_REFORK, a->index);
    if (a->rt->cfg.nakayoshi_fork)
        malloc_trim(0);
    pid_t pid = sv_proc_fork_detached();
    if (pid == 0) {
        /* the mold: only this thread exists; drop worker 0's connections and fds */
        sv_server_forget_in_child(srv);
        sv_sig_reset();
        sv_log_after_fork();
        sv_rt_keep_only(a->rt, mold_chan); /* worker 0's channel, self-pipe, anything else of its own go */
        mold_main(a, mold_chan, gen);
    }
    sv_server_unquiesce(srv);
    close(mold_chan);
    if (pid < 0)
        sv_proto_sendf(a->chan, SV_PROTO_MOLD_FAILED, " gen=%u reason=fork:%d", gen, -pid);
}
