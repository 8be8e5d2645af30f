/*
 * parser.h: HTTP/1.x request parsing over llhttp. No sockets: bytes in,
 * request fields out, so it can be unit-tested and fuzzed.
 *
 * The caller keeps the request head contiguous in one buffer (base) from the
 * first byte of the request until the request is done; the parser records
 * offsets into it, never pointers, so the buffer may move (realloc) between
 * calls. Body bytes are handed to the caller through on_body as they are
 * decoded (chunked framing removed) and may be discarded from the buffer.
 *
 * One request at a time: sv_http_parse stops right after a request's head
 * (SV_HTTP_HEAD) so the caller can decide how to take the body, and right
 * after its end (SV_HTTP_DONE) so pipelined requests are answered in order.
 * Any error maps to an HTTP status in p->error_status (400, 413, 414, 431,
 * 417, 501, 505); after an error the connection must be closed.
 */
#ifndef SV_HTTP_PARSER_H
#define SV_HTTP_PARSER_H

#include <llhttp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sv_http_limits {
    size_t max_request_line; /* request-target bytes -> 414 */
    size_t max_header_size;  /* request line + headers -> 431 */
    int max_headers;         /* -> 431 */
    int64_t max_body_size;   /* -> 413; 0 = unlimited */
} sv_http_limits_t;

typedef struct sv_span {
    uint32_t off;
    uint32_t len;
} sv_span_t;

typedef struct sv_http_header {
    sv_span_t name;
    sv_span_t value;
} sv_http_header_t;

/* The request being parsed. Offsets are relative to the head's buffer. */
typedef struct sv_http_req {
    uint8_t method;          /* llhttp_method_t */
    uint8_t minor;           /* 0 or 1 */
    bool keep_alive;         /* llhttp_should_keep_alive at head end */
    bool chunked;
    bool expect_continue;    /* Expect: 100-continue */
    bool upgrade;            /* Upgrade/CONNECT: the connection closes after it */
    int64_t content_length;  /* -1 chunked, 0 no body */
    sv_span_t target;
    sv_span_t authority;     /* an absolute-form target's host[:port]; len 0 otherwise */
    int nheaders;
    sv_http_header_t *headers; /* caller-provided array of max_headers */
    size_t head_len;         /* bytes of request line + headers, CRLFs included */
    int64_t body_received;   /* decoded body bytes so far */
} sv_http_req_t;

typedef enum sv_http_result {
    SV_HTTP_MORE = 0,  /* everything consumed, request incomplete */
    SV_HTTP_HEAD = 1,  /* head complete; *consumed stops right after it */
    SV_HTTP_DONE = 2,  /* request complete; *consumed stops right after it */
    SV_HTTP_ERROR = 3, /* see error_status and error_reason */
} sv_http_result_t;

/* Receives decoded body bytes (pointer into the buffer given to parse). */
typedef int (*sv_http_body_cb)(void *arg, const char *data, size_t len);

typedef struct sv_http_parser {
    llhttp_t ll;
    sv_http_limits_t limits;
    sv_http_req_t *req;
    const char *base;        /* buffer of the current parse call */
    size_t base_off;         /* offset of base within the head buffer */
    sv_http_body_cb on_body;
    void *body_arg;
    size_t head_bytes;       /* bytes of the current head seen */
    bool in_head;
    bool head_done;
    bool msg_done;
    bool last_was_value;     /* the previous callback was a header value */
    bool host_seen;
    char prev_byte;          /* last byte of the previous call (CR before a final LF) */
    int error_status;
    const char *error_reason;
} sv_http_parser_t;

void sv_http_parser_init(sv_http_parser_t *p, const sv_http_limits_t *limits);

/*
 * Begin a new request whose first byte is at offset 0 of the head buffer;
 * req->headers must point to limits.max_headers entries.
 */
void sv_http_parser_begin(sv_http_parser_t *p, sv_http_req_t *req, sv_http_body_cb on_body, void *arg);

/*
 * Feed len bytes at data, which sits at offset data_off of the head buffer
 * (during the body phase the offset is irrelevant and may be 0). Sets
 * *consumed to the bytes used; the rest belong to a later call (or to the
 * next pipelined request after SV_HTTP_DONE).
 */
sv_http_result_t sv_http_parse(sv_http_parser_t *p, const char *data, size_t len, size_t data_off,
                               size_t *consumed);

/* "GET" etc. */
const char *sv_http_method_name(uint8_t method);
/* "OK", "Not Found", ... ("Unknown" for others). */
const char *sv_http_reason(int status);

/* Case-insensitive comparison of a span in base with a NUL-terminated name. */
bool sv_span_ieq(const char *base, sv_span_t s, const char *name);

#endif
