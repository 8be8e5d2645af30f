/*
 * state.h: what a serval process publishes about itself: the state file
 * (Puma's YAML keys, so pumactl -S works), the control server setup, and
 * single-mode stats and metrics.
 */
#ifndef SV_CLUSTER_STATE_H
#define SV_CLUSTER_STATE_H

#include "cluster/ops.h"
#include "cluster/runtime.h"
#include "control/control.h"
#include "core/buf.h"
#include "server/server.h"

/* Write the state file if state_path is set (sv_file_write_atomic; mode 0600 when it holds the token, else 0640). */
void sv_state_write(const sv_runtime_t *rt);
void sv_state_remove(const sv_runtime_t *rt);
/*
 * Start the control server if configured (adopting a handed-over listener
 * and token after a hot restart). Returns NULL when none is configured or it
 * cannot start (then a line went to stderr and *failed is set).
 */
sv_control_t *sv_state_control_open(sv_runtime_t *rt, sv_loop_t *loop, sv_control_cb cb, void *arg, bool *failed);
/* Single-mode /stats body. */
void sv_state_single_stats(const sv_runtime_t *rt, sv_server_t *srv, const sv_oplog_t *ops, sv_buf_t *out);
/* Single-mode /metrics body. */
void sv_state_single_metrics(const sv_runtime_t *rt, sv_server_t *srv, const sv_oplog_t *ops, sv_buf_t *out);
/* /operation?id=N body; returns 200 or 404. */
int sv_state_operation(sv_oplog_t *ops, const char *query, sv_buf_t *out);
/*
 * /gc-stats and /thread-backtraces bodies: the calling thread's stack, and
 * with srv (single mode) every serving thread's; frames named "func+0xOFF (file)".
 */
void sv_state_gc_stats(sv_buf_t *out);
void sv_state_backtraces(const char *label, sv_server_t *srv, sv_buf_t *out);

/* Log this thread's backtrace as "Thread: TID-n label" and indented frames (SIGPWR). */
void sv_state_log_backtrace(const char *label);

/* Prometheus exposition helpers. */
void sv_metric_head(sv_buf_t *out, const char *name, const char *type, const char *help);
void sv_metric(sv_buf_t *out, const char *name, const char *labels, double value);

#endif
