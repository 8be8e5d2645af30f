/*
 * handover.h: everything that crosses a hot restart's exec, in one module.
 *
 * The handover is one environment variable, SERVAL_INHERIT, holding records
 * separated by ';', each an sv_msg line (no cap on their number; past 96 KiB
 * they ride in an inherited memfd and the variable reads "@FD"):
 *   listener fd= uri= created= [activated=1]   a listening socket (CLOEXEC cleared); activated: systemd's
 *   control fd= uri= created= token=   the control server's listener and token
 *   tls fd=   the TLS shared block (ticket keys, certificate generation, counters)
 *   worker pid= index= phase= fd= started= stopping= requests=   (cluster) a booted worker
 *   op id= kind= state= current= queued= started_ms= finished_ms= done= total= trigger= error=
 *   opcount next_id= okK= failK=   the operations log and its counters
 *   master d_stopped= d_crash= d_boot= d_timeout= d_lost= spawned=   (cluster) counters
 * Exactly the fds named there survive the exec; every other fd is CLOEXEC.
 * The handled signals are blocked across the exec (os/sig.h).
 *
 * The old image builds the records (sv_handover_common_records, and the
 * hot machine's worker and master records through sv_handover_add), then
 * the variable (sv_handover_assignment); the new image reads it at boot
 * (sv_handover_read, from runtime.c), each owner takes its records by kind
 * (listeners and tls: runtime.c; control: state.c; op/opcount:
 * sv_handover_adopt_ops; worker/master: hot_cluster.c), and
 * sv_handover_drop closes the fds of any record left over.
 */
#ifndef SV_CLUSTER_HANDOVER_H
#define SV_CLUSTER_HANDOVER_H

#include "cluster/ops.h"
#include "cluster/runtime.h"
#include "control/control.h"
#include "core/buf.h"

#define SV_HANDOVER_ENV "SERVAL_INHERIT"

/* ---- the old image ---- */
/* Append one record (an sv_msg line) to env, ';'-separated. */
void sv_handover_add(sv_buf_t *env, const char *rec);
/* Append the listener, control, tls and ops records to env. */
void sv_handover_common_records(const sv_runtime_t *rt, const sv_control_t *control, const sv_oplog_t *ops,
                                sv_buf_t *env);
/*
 * "SERVAL_INHERIT=records" into assignment, or past 96 KiB "SERVAL_INHERIT=@FD"
 * with the records in a memfd (*memfd, not CLOEXEC: the caller closes it if
 * the exec fails). 0 or -errno.
 */
int sv_handover_assignment(const sv_buf_t *env, sv_buf_t *assignment, int *memfd);

/* ---- the new image ---- */
/* At boot: read and unset SERVAL_INHERIT (sets rt->hot_restarted). */
void sv_handover_read(sv_runtime_t *rt);
/* Take handover records whose verb is kind (removes them); returns count. The caller frees them. */
int sv_handover_take(sv_runtime_t *rt, const char *kind, char **out, int max);
/* The next record whose verb is kind (removed; the caller frees it), or NULL: no cap on how many. */
char *sv_handover_take_next(sv_runtime_t *rt, const char *kind);
/* Take the op and opcount records into ops. */
void sv_handover_adopt_ops(sv_runtime_t *rt, sv_oplog_t *ops);
/* Close the fds of records nobody took (they must not leak into workers); free the rest. */
void sv_handover_drop(sv_runtime_t *rt);

#endif
