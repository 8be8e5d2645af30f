/*
 * response.h: HTTP/1.x response framing and serialisation on buffers. No
 * sockets: the serving code (src/server) asks here how a response is framed,
 * whether the connection stays open, and has heads, error answers, chunks and
 * 100 Continue appended to its output buffer; this file decides every byte
 * of framing serval puts on the wire, so it is unit-tested on its own
 * (tests/unit/test_http_response.c).
 *
 * Every writer appends to an sv_buf_t and returns 0, or -ENOMEM with the
 * buffer unchanged.
 */
#ifndef SV_HTTP_RESPONSE_H
#define SV_HTTP_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/*
 * How one response is framed: the one decision, per request method, request
 * version, status and body kind, of which headers announce the body, which
 * bytes carry it and when the response is complete.
 */
typedef struct sv_http_framing {
    bool send_body;       /* body bytes go on the wire (not HEAD, not 1xx/204/304) */
    bool length_header;   /* "Content-Length: N" */
    bool te_header;       /* "Transfer-Encoding: chunked" */
    bool chunked;         /* body bytes are sent as chunks, ended by the last chunk */
    bool close_delimited; /* the body ends when the connection closes: close after it */
} sv_http_framing_t;

/* A status that never has a body (RFC 9110 6.4.1): 1xx, 204, 304. */
bool sv_http_status_bodiless(int status);

/*
 * content_length >= 0: a body of that many bytes (send, body, file);
 * content_length < 0: a streamed body of unknown length. method is the
 * request's llhttp method, minor its HTTP/1.minor.
 *
 * - 204, 304: no body, no Content-Length, no Transfer-Encoding, whatever the
 *   app passes; complete once the head is out.
 * - HEAD: the headers a GET would get (Content-Length, or chunked for a 1.1
 *   stream), no body bytes; complete once the head is out.
 * - streamed to HTTP/1.1: chunked; to HTTP/1.0: close-delimited.
 */
sv_http_framing_t sv_http_res_framing(uint8_t method, uint8_t minor, int status, int64_t content_length);

/* What serval needs to write a response head. */
typedef struct sv_http_res_head {
    int status;
    uint8_t minor;          /* the request's HTTP/1.minor: 1.0 keep-alive is announced */
    const char *headers;    /* the app's "Name: value\r\n" lines, may be NULL */
    size_t headers_len;
    int64_t content_length; /* for length_header */
    bool close;             /* "Connection: close" */
    const char *date;       /* IMF-fixdate, 29 characters */
} sv_http_res_head_t;

/* Status line, the app's headers, framing headers, Date, Connection, blank line. */
int sv_http_write_head(sv_buf_t *out, const sv_http_res_head_t *h, const sv_http_framing_t *f);

/* serval's own short error answer (400, 408, 413, ...), always Connection: close. */
int sv_http_write_error(sv_buf_t *out, int status, const char *date);

/* "HTTP/1.1 100 Continue\r\n\r\n" */
int sv_http_write_continue(sv_buf_t *out);

/* One chunk (len > 0), or the last chunk with no trailers. */
int sv_http_write_chunk(sv_buf_t *out, const void *data, size_t len);
int sv_http_write_last_chunk(sv_buf_t *out);

/*
 * The keep-alive decision for a response: false (close after it) when the
 * request asked for it (Connection: close, HTTP/1.0 without keep-alive), an
 * upgrade was requested, or the server wants to (server_close: a drain,
 * max_keep_alive reached, a request body left unread, an error).
 */
bool sv_http_keep_alive(bool req_keep_alive, bool req_upgrade, bool server_close);

/* A header name is a token (RFC 9110 5.1). */
bool sv_http_field_name_ok(const char *name);
/*
 * A header value is VCHAR, obs-text, SP and HTAB only (RFC 9110 5.5): no
 * CR, LF, NUL or other control byte (0x00-0x1f but HTAB, 0x7f).
 */
bool sv_http_field_value_ok(const char *value);
/* Content-Length, Transfer-Encoding, Connection, Date: framing that serval owns. */
bool sv_http_field_reserved(const char *name);

/*
 * A Host value (or an absolute-form target's authority) is uri-host [":"
 * port] (RFC 9112 3.2, RFC 3986 3.2.2): a reg-name, an IPv4 address or a
 * bracketed IP literal, then optional digits; empty is allowed.
 */
bool sv_http_host_ok(const char *s, size_t len);

#endif
