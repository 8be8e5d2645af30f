/*
 * certs.h: the TLS certificates of a master or single process: reload on
 * request (/reload-certs, SIGWINCH, a phased restart), ticket key rotation,
 * and their part of /stats and /metrics. The contexts themselves are in
 * src/tls; this is the glue to the runtime's listeners.
 */
#ifndef SV_CLUSTER_CERTS_H
#define SV_CLUSTER_CERTS_H

#include "cluster/runtime.h"
#include "core/buf.h"
#include "core/json.h"

/*
 * Reload every ssl:// listener's certificates and keys from disk. All or
 * nothing: a bad file is refused with one line on stderr and the old
 * certificates keep serving. Workers pick the new ones up within ~100 ms.
 * Writes a JSON answer into out (may be NULL); returns an HTTP status.
 */
int sv_certs_reload(sv_runtime_t *rt, const char *trigger, sv_buf_t *out);
/* The same, quietly nothing without an ssl:// listener (a phased restart). */
void sv_certs_reload_if_tls(sv_runtime_t *rt, const char *trigger);
/* Any ssl:// listener at all (else no key rotation to run). */
bool sv_certs_any(const sv_runtime_t *rt);
/* Ticket key rotation on schedule: runtime's timer (sv_rt_timers_start) calls it every second. */
void sv_certs_tick(int64_t now_ms);
/* The "tls" key of /stats (nothing without an ssl:// listener). */
void sv_certs_stats(const sv_runtime_t *rt, sv_json_t *w);
/* serval_tls_* lines of /metrics (nothing without an ssl:// listener). */
void sv_certs_metrics(const sv_runtime_t *rt, sv_buf_t *out);

#endif
