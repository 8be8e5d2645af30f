/*
 * replace.c: replacing a worker after an app call ran past app_timeout, the
 * surge way. The worker reports `app-timeout` (it has already answered 504
 * and logged the request and the stack); the master marks it superseded, so
 * the respawn step boots a new worker at its index while it keeps serving
 * with its other threads. Once the new one has booted, the old one is told to
 * stop: it stops accepting, its other requests finish or the cleanup grace
 * (app_timeout ..., cleanup: S) ends, and it exits; the master kills it if it
 * is still there a little after that.
 */
#include <stdio.h>

#include "cluster/master_internal.h"
#include "core/log.h"
#include "os/chan.h"

void sv_replace_on_app_timeout(sv_master_t *m, sv_whandle_t *h, const char *msg)
{
    m->app_timeouts += (unsigned long)sv_msg_int(msg, "new", 1);
    if (m->state != M_RUN || h->stopping || h->superseded)
        return; /* going away already (stop, restart, or a replacement under way) */
    sv_log_error("! Worker %d (PID: %d) had a request past app_timeout: booting its replacement", h->index,
                 (int)h->pid);
    h->superseded = true;
    h->replace_stuck = true;
    snprintf(h->stop_reason, sizeof(h->stop_reason), "app timeout");
}

void sv_replace_step(sv_master_t *m)
{
    for (int i = 0; i < m->nw; i++) {
        sv_whandle_t *h = m->w[i];
        if (!h->replace_stuck || h->stopping || !h->superseded)
            continue;
        if (sv_master_find_index(m, h->index, true)) {
            sv_log("- Worker %d (PID: %d) replaced after an app timeout: stopping it (cleanup grace %g s)", h->index,
                   (int)h->pid, m->rt->cfg.app_timeout_cleanup);
            sv_master_stop_worker(m, h, "app timeout");
        } else if (m->boot_failures[h->index] > 0) {
            /* no replacement can boot: a worker short of a thread beats no worker */
            sv_log_error("! Worker %d (PID: %d): its replacement failed to boot; it keeps serving", h->index,
                         (int)h->pid);
            h->superseded = false;
            h->replace_stuck = false;
        }
    }
}

double sv_replace_grace(const sv_master_t *m, const sv_whandle_t *h)
{
    /* the worker leaves by itself at the end of the cleanup grace; a second more to do so */
    return h->replace_stuck ? m->rt->cfg.app_timeout_cleanup + 2 : m->rt->cfg.worker_shutdown_timeout;
}
