/*
 * hot_restart.h: re-exec in place (same pid) keeping the listening sockets.
 *
 * The handover is one environment variable, SERVAL_INHERIT, holding records
 * separated by ';', each an sv_msg line (no cap on their number; past 96 KiB
 * they ride in an inherited memfd and the variable reads "@FD"):
 *   listener fd= uri= created= [activated=1]   a listening socket (CLOEXEC cleared); activated: systemd's
 *   control fd= uri= created= token=   the control server's listener and token
 *   worker pid= index= phase= fd= started= stopping= requests=   (cluster) a booted worker
 *   op id= kind= state= current= queued= started_ms= finished_ms= done= total= trigger= error=
 *   opcount next_id= okK= failK=   the operations log and its counters
 *   master d_stopped= d_crash= d_boot= d_timeout= d_lost= spawned=   (cluster) counters
 * Exactly the fds named there survive the exec; every other fd is CLOEXEC.
 * The handled signals are blocked across the exec (os/sig.h).
 */
#ifndef SV_CLUSTER_HOT_RESTART_H
#define SV_CLUSTER_HOT_RESTART_H

#include "cluster/ops.h"
#include "cluster/runtime.h"
#include "control/control.h"
#include "core/buf.h"

/*
 * Run the new binary with --check (same arguments), waiting up to 20 s; 0
 * if it accepts the configuration and loads the app, else SV_ECONFIG with its
 * first error line in err. with_init also runs the app's init and fini in
 * that check process: where the new image itself inits the app (single mode,
 * preload), a release that cannot init is caught before the exec.
 */
int sv_hot_restart_preflight(const sv_runtime_t *rt, bool with_init, char *err, size_t errlen);
/* The preflight's time limit: killed and counted as a rejection past it. */
#define SV_PREFLIGHT_TIMEOUT_MS 20000
/* The same without waiting: start the check; poll it with sv_hot_restart_preflight_poll. */
pid_t sv_hot_restart_preflight_start(const sv_runtime_t *rt, bool with_init, int *err_fd);
/*
 * 1 accepted, 0 still running, <0 rejected (reason in err). Reaps the child
 * when done, unless the caller's reaper did: then pass its wait status in
 * *reaped (else reaped is NULL). expired: SV_PREFLIGHT_TIMEOUT_MS has
 * passed (the caller's clock or timer): a check still running is killed.
 */
int sv_hot_restart_preflight_poll(pid_t pid, int err_fd, bool expired, const int *reaped, char *err, size_t errlen);
/* Append the listener, control and ops records to env (';'-separated). */
void sv_hot_restart_common_records(const sv_runtime_t *rt, const sv_control_t *control, const sv_oplog_t *ops,
                                   sv_buf_t *env);
/*
 * chdir to the restart directory and exec with the records in env, keeping
 * keep_fds open. Returns only on failure (a negative code; fds are back to
 * CLOEXEC).
 */
int sv_hot_restart_exec(sv_runtime_t *rt, const sv_buf_t *env, const int *keep_fds, int n_keep);
/*
 * Single mode: on_restart hook and fini (if app_quiet: no request is still
 * inside the app), exec. The caller ran the preflight before draining.
 * Returns only on failure.
 */
void sv_hot_restart_exec_single(sv_runtime_t *rt, sv_control_t *control, sv_oplog_t *ops, bool app_quiet);
/* In the new image: take the ops records. */
void sv_hot_restart_adopt_ops(sv_runtime_t *rt, sv_oplog_t *ops);

#endif
