/*
 * control.h: the control server (Puma's control app).
 *
 * Served from the owning process's event loop (os/loop.h: the master's, or
 * single mode's) and never blocks it: sockets are non-blocking, each client
 * has a small buffer and a deadline timer, and a client that is slow or
 * silent is dropped when its timer fires. One request per connection.
 *
 *   GET /stats?token=T          200 JSON
 *   GET /stop?token=T           200 { "status": "ok" }
 *   wrong or missing token      403 Invalid auth token (answered late, logged)
 *   unknown path                404 Unsupported action
 *
 * Request parsing and the decision (Host/Origin, token, path, read-only) are
 * request.h, pure and fuzzed. Bounds (docs/control.md):
 *   SV_CONTROL_CLIENTS clients; when full, a new client evicts the oldest one
 *   that has not sent its request yet (so idle connections cannot lock
 *   operators out); the request head must arrive within
 *   SV_CONTROL_HEAD_TIMEOUT_MS of the accept, the answer leave within
 *   SV_CONTROL_TIMEOUT_MS; a failed authentication is answered after
 *   SV_CONTROL_AUTH_DELAY_MS (timer-driven, the loop never waits) and logged
 *   at most once a second with a count.
 *
 * Beside the main listener an optional second one (data_url) serves only the
 * read-only endpoints, without token: a probe address for a kubelet or a
 * load balancer next to the token-protected control app.
 *
 * The owner supplies the actions through one callback; the mapping of
 * command names, control paths and signals is the table in commands.h.
 */
#ifndef SV_CONTROL_CONTROL_H
#define SV_CONTROL_CONTROL_H

#include <stdbool.h>
#include <stdint.h>

#include "control/commands.h"
#include "control/request.h"
#include "core/buf.h"
#include "os/loop.h"

typedef struct sv_control sv_control_t;

/*
 * Perform cmd. For data commands write the body (JSON, or Prometheus text
 * for metrics) into out. Set *op_id for operations that start a restart.
 * Return the HTTP status: 200, 404 (not available here: out may hold a
 * JSON error), 503 (health: draining).
 */
typedef int (*sv_control_cb)(void *arg, sv_control_cmd_t cmd, const char *query, sv_buf_t *out, int *op_id);

#define SV_CONTROL_CLIENTS 64
#define SV_CONTROL_HEAD_TIMEOUT_MS 3000
#define SV_CONTROL_TIMEOUT_MS 5000
#define SV_CONTROL_AUTH_DELAY_MS 250
#define SV_CONTROL_REQUEST_MAX 8192
/* Room for a token and its NUL (config's SV_CONTROL_TOKEN_MAX must fit). */
#define SV_CONTROL_TOKEN_BYTES 128

typedef struct sv_control_opts {
    const char *url;      /* tcp://HOST:PORT, unix://PATH[?mode=0600] or ssl://HOST:PORT?cert=PATH&key=PATH */
    const char *token;    /* NULL = no authentication */
    bool data_only;       /* the main listener serves only read-only commands */
    const char *data_url; /* a second listener: read-only, no token; NULL = none */
    int inherited_fd;     /* a listener handed over by a hot restart, or -1 */
    bool inherited_created; /* the unix socket file was made by serval */
} sv_control_opts_t;

/* Open (or adopt) the listener and watch it in loop. One line in err on failure. */
sv_control_t *sv_control_open(const sv_control_opts_t *o, sv_loop_t *loop, sv_control_cb cb, void *arg,
                              char *err, size_t errlen);
/* The listening fd (for a hot-restart handover) and whether we made its socket file. */
int sv_control_fd(const sv_control_t *c);
bool sv_control_created_path(const sv_control_t *c);
/* The display URL ("http://127.0.0.1:9293", "unix:///path"). */
const char *sv_control_display(const sv_control_t *c);
/* The data_url listener's display URL, or NULL without one. */
const char *sv_control_data_display(const sv_control_t *c);
/* Close clients and listener; unlink a unix socket file we made if unlink_path. NULL-safe. */
void sv_control_close(sv_control_t *c, bool unlink_path);
/*
 * Before an exec. The listener and its queue survive it, the accepted
 * clients do not: answer each whose request is in or arrives within
 * budget_ms, then close them all (closing one with its request unread
 * would reset it, failing e.g. a `servalctl restart --wait` poll).
 */
#define SV_CONTROL_SETTLE_MS 200
void sv_control_settle(sv_control_t *c, int budget_ms);
/* A random 128-bit token as 32 hex characters into buf (33 bytes). */
void sv_control_random_token(char *buf);

#endif
