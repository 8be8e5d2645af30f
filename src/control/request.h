/*
 * request.h: one control request, parsed and judged without any socket, so
 * the fuzzer and the unit tests drive exactly what the server runs.
 *
 * Strict by design (the control server is not a general HTTP server):
 *   - request line: METHOD SP /target SP HTTP/1.0|HTTP/1.1 CRLF, one space
 *     each; method GET only (another token is 405); every line ends in CRLF,
 *     a bare LF is 400 at once;
 *   - header lines NAME: VALUE with a token name, no obs-fold, no control
 *     bytes; one Host and one Origin at most; no body (Transfer-Encoding or
 *     a Content-Length other than 0 is 400);
 *   - the path is one of the table's paths exactly (else 404).
 * Then, in this order: Host/Origin (when the policy checks them), token
 * (403, auth_failed), path (404), read-only (404 "not available" on a
 * data_only server, in Puma's JSON shape).
 */
#ifndef SV_CONTROL_REQUEST_H
#define SV_CONTROL_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

#include "control/commands.h"

typedef struct sv_control_policy {
    const char *token;  /* NULL or "" = no authentication */
    bool data_only;     /* only sv_command_read_only() commands */
    bool check_origin;  /* Host and Origin, when present, must name this server (token-less full app) */
    int port;           /* the listener's TCP port a Host/Origin port must equal; 0 = any (unix socket) */
} sv_control_policy_t;

typedef struct sv_control_req {
    int status;               /* 0 = perform cmd; else answer this status with body why */
    const char *why;          /* static text for an error status */
    bool auth_failed;         /* wrong or missing token: logged and answered late */
    bool foreign;             /* refused for its Host or Origin: logged */
    const sv_command_t *read_only_refused; /* 404: this command on a data_only server */
    bool http10;
    const sv_command_t *cmd;  /* status 0 */
    size_t query_off, query_len; /* the query string (without '?') inside the input */
    size_t target_off, target_len; /* for log lines */
} sv_control_req_t;

/*
 * Judge the bytes received so far: 0 = the head is not complete yet (read
 * more); 1 = *r is filled (a complete head, or an error found early such
 * as a bare LF). Pure: reads in[0..len) only.
 */
int sv_control_request(const sv_control_policy_t *p, const char *in, size_t len, sv_control_req_t *r);

/* Host (or Origin authority) value names this server: an IP literal or localhost, port equal when given. */
bool sv_control_host_ok(const char *v, size_t n, int port);

#endif
