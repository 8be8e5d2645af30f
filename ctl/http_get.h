/*
 * http_get.h: servalctl's side of the control protocol.
 *
 * One request per connection, as pumactl does it:
 *     GET /stats?token=T HTTP/1.0\r\n\r\n
 * then the whole response is read until the server closes the connection.
 * URLs are the control server's: tcp://HOST:PORT (a name, an IPv4 address,
 * or [IPv6]), unix://PATH and ssl://HOST:PORT (TLS, the certificate not verified).
 *
 * On failure the functions return a negative code and put the one line that
 * servalctl prints into err, already worded for the user, e.g.
 *     servalctl: cannot connect to tcp://127.0.0.1:9293: Connection refused (is serval running?)
 *     Server closed connection before responding
 */
#ifndef SV_CTL_HTTP_GET_H
#define SV_CTL_HTTP_GET_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

#define CTL_RESPONSE_MAX (64u << 20)

typedef struct ctl_reply {
    int status;        /* the HTTP status code */
    int op_id;         /* X-Serval-Operation, 0 when absent */
    sv_buf_t raw;      /* the whole response, owned */
    const char *body;  /* into raw, NUL-terminated */
    size_t body_len;
} ctl_reply_t;

/*
 * Connect to url within timeout_ms. Returns a non-blocking fd (O_NONBLOCK,
 * O_CLOEXEC) owned by the caller, or a negative code: SV_ECONFIG for a URL
 * that does not parse, -errno when the connection fails.
 */
int ctl_connect(const char *url, int timeout_ms, char *err, size_t errlen);

/*
 * GET target ("/stats?token=T") from url. The whole exchange, connect
 * included, must finish within timeout_ms. Returns 0 with *reply filled
 * (any HTTP status; release it with ctl_reply_free), or a negative code:
 * ctl_connect's, -ETIMEDOUT, SV_EPROTO for an empty or malformed answer,
 * -ENOMEM, SV_ELIMIT for a response past CTL_RESPONSE_MAX.
 */
int ctl_http_get(const char *url, const char *target, int timeout_ms, ctl_reply_t *reply, char *err,
                 size_t errlen);

void ctl_reply_free(ctl_reply_t *r);

#endif
