/*
 * hot_restart.h: re-exec in place (same pid) keeping the listening sockets,
 * the control listener and (cluster) the running workers. What crosses the
 * exec, and how, is handover.h's; this is the preflight and the exec.
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
/*
 * chdir to the restart directory and exec with the records in env
 * (handover.h), keeping keep_fds open. Returns only on failure (a negative code; fds are back to
 * CLOEXEC).
 */
int sv_hot_restart_exec(sv_runtime_t *rt, const sv_buf_t *env, const int *keep_fds, int n_keep);
/*
 * Single mode: on_restart hook and fini (if app_quiet: no request is still
 * inside the app), exec. The caller ran the preflight before draining.
 * Returns only on failure.
 */
void sv_hot_restart_exec_single(sv_runtime_t *rt, sv_control_t *control, sv_oplog_t *ops, bool app_quiet);

#endif
