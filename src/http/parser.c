/* parser.c: HTTP/1.x request parsing over llhttp, bytes in, request fields out (parser.h); no sockets. */
#include "http/parser.h"

#include <string.h>

#include "http/response.h"
#include <strings.h>

static sv_http_parser_t *P(llhttp_t *ll)
{
    return (sv_http_parser_t *)ll->data;
}

static int fail(sv_http_parser_t *p, int status, const char *reason)
{
    p->error_status = status;
    p->error_reason = reason;
    return HPE_USER;
}

static uint32_t offset_of(const sv_http_parser_t *p, const char *at)
{
    return (uint32_t)((size_t)(at - p->base) + p->base_off);
}

static int on_message_begin(llhttp_t *ll)
{
    sv_http_parser_t *p = P(ll);
    sv_http_header_t *headers = p->req->headers;
    memset(p->req, 0, sizeof(*p->req));
    p->req->headers = headers;
    p->in_head = true;
    return 0;
}

static int on_url(llhttp_t *ll, const char *at, size_t n)
{
    sv_http_parser_t *p = P(ll);
    sv_span_t *t = &p->req->target;
    if (t->len == 0)
        t->off = offset_of(p, at);
    t->len += (uint32_t)n;
    if (t->len > p->limits.max_request_line)
        return fail(p, 414, "request-target too long");
    return 0;
}

static int on_header_field(llhttp_t *ll, const char *at, size_t n)
{
    sv_http_parser_t *p = P(ll);
    sv_http_req_t *r = p->req;
    /* Chunked trailers are dropped: the head is fixed once the app has it, and
     * data_off is meaningless in the body phase. */
    if (p->head_done)
        return 0;
    if (r->nheaders == 0 || p->last_was_value) {
        if (r->nheaders >= p->limits.max_headers)
            return fail(p, 431, "too many header fields");
        sv_http_header_t *h = &r->headers[r->nheaders++];
        h->name.off = offset_of(p, at);
        h->name.len = (uint32_t)n;
        h->value.off = h->value.len = 0;
        p->last_was_value = false;
        return 0;
    }
    r->headers[r->nheaders - 1].name.len += (uint32_t)n;
    return 0;
}

static int on_header_value(llhttp_t *ll, const char *at, size_t n)
{
    sv_http_parser_t *p = P(ll);
    if (p->head_done)
        return 0;
    sv_http_header_t *h = &p->req->headers[p->req->nheaders - 1];
    uint32_t off = offset_of(p, at);
    if (!p->last_was_value) {
        h->value.off = off;
        h->value.len = (uint32_t)n;
        p->last_was_value = true;
        return 0;
    }
    /* A value split across reads continues where it left off; a gap is a fold. */
    if (n > 0 && off != h->value.off + h->value.len)
        return fail(p, 400, "obsolete line folding in header");
    h->value.len += (uint32_t)n;
    return 0;
}

/* Trim trailing whitespace llhttp leaves in values; NUL-free by construction. */
static void trim_values(sv_http_parser_t *p, const char *head)
{
    for (int i = 0; i < p->req->nheaders; i++) {
        sv_span_t *v = &p->req->headers[i].value;
        while (v->len > 0 && (head[v->off + v->len - 1] == ' ' || head[v->off + v->len - 1] == '\t'))
            v->len--;
    }
}

bool sv_span_ieq(const char *base, sv_span_t s, const char *name)
{
    size_t n = strlen(name);
    return s.len == n && strncasecmp(base + s.off, name, n) == 0;
}

/*
 * Transfer-Encoding: llhttp frames by it when "chunked" is last; serval
 * decodes nothing else, so any other coding would reach the app still
 * encoded (RFC 9112 6.1: 501). In HTTP/1.0 its framing is faulty (400).
 */
static int check_transfer_encoding(sv_http_parser_t *p, const char *head, const sv_http_header_t *h, int seen)
{
    if (p->req->minor == 0)
        return fail(p, 400, "Transfer-Encoding in an HTTP/1.0 request");
    if (seen > 0)
        return fail(p, 400, "more than one Transfer-Encoding header");
    if (sv_span_ieq(head, h->value, "chunked"))
        return 0;
    const char *v = head + h->value.off;
    size_t n = h->value.len;
    bool chunked_last = n > 7 && strncasecmp(v + n - 7, "chunked", 7) == 0 &&
                        (v[n - 8] == ',' || v[n - 8] == ' ' || v[n - 8] == '\t');
    if (!chunked_last)
        return fail(p, 400, "Transfer-Encoding without chunked last");
    return fail(p, 501, "Transfer-Encoding other than chunked");
}

/* An absolute-form target's authority replaces Host (RFC 9112 3.2.2); record and check it. */
static int check_authority(sv_http_parser_t *p, const char *head)
{
    sv_http_req_t *r = p->req;
    const char *t = head + r->target.off;
    size_t n = r->target.len;
    if (n == 0 || t[0] == '/' || t[0] == '*')
        return 0;
    const char *sep = memmem(t, n, "://", 3);
    if (!sep)
        return 0;
    size_t start = (size_t)(sep + 3 - t), end = start;
    while (end < n && t[end] != '/' && t[end] != '?' && t[end] != '#')
        end++;
    if (end == start || !sv_http_host_ok(t + start, end - start))
        return fail(p, 400, "invalid authority in the request-target");
    r->authority.off = r->target.off + (uint32_t)start;
    r->authority.len = (uint32_t)(end - start);
    return 0;
}

/* Host (required once in 1.1), Expect and Transfer-Encoding are checked here; llhttp owns the rest of framing. */
static int check_headers(sv_http_parser_t *p, const char *head)
{
    sv_http_req_t *r = p->req;
    int hosts = 0, tes = 0;
    for (int i = 0; i < r->nheaders; i++) {
        const sv_http_header_t *h = &r->headers[i];
        if (h->name.len == 0) /* llhttp 8 accepts ": value" */
            return fail(p, 400, "empty header name");
        if (sv_span_ieq(head, h->name, "host")) {
            hosts++;
            if (!sv_http_host_ok(head + h->value.off, h->value.len))
                return fail(p, 400, "invalid Host value");
        } else if (sv_span_ieq(head, h->name, "expect")) {
            if (!sv_span_ieq(head, h->value, "100-continue"))
                return fail(p, 417, "unsupported Expect");
            r->expect_continue = true;
        } else if (sv_span_ieq(head, h->name, "transfer-encoding")) {
            int rc = check_transfer_encoding(p, head, h, tes++);
            if (rc)
                return rc;
        }
    }
    if (hosts > 1 || (hosts == 0 && r->minor == 1))
        return fail(p, 400, hosts ? "more than one Host header" : "missing Host header");
    return check_authority(p, head);
}

static int on_headers_complete(llhttp_t *ll)
{
    sv_http_parser_t *p = P(ll);
    sv_http_req_t *r = p->req;
    /* the head is whole in the buffer now: base - base_off is its start */
    const char *head = p->base - p->base_off;
    /* no version at all ("GET /", HTTP/0.9's form) is a malformed request line, not a version to refuse */
    if (strncmp(head + r->target.off + r->target.len, " HTTP/", 6) != 0)
        return fail(p, 400, "no HTTP version in the request line");
    if (ll->http_major != 1)
        return fail(p, 505, "HTTP version not supported");
    r->method = ll->method;
    r->minor = ll->http_minor;
    if (r->method == HTTP_CONNECT)
        return fail(p, 501, "CONNECT not supported");
    trim_values(p, head);
    int rc = check_headers(p, head);
    if (rc)
        return rc;
    r->chunked = (ll->flags & F_CHUNKED) != 0;
    /* llhttp takes any uint64_t; ours is signed with -1 meaning chunked */
    if (!r->chunked && ll->content_length > INT64_MAX)
        return fail(p, 413, "request body too large");
    r->content_length = r->chunked ? -1 : ((ll->flags & F_CONTENT_LENGTH) ? (int64_t)ll->content_length : 0);
    if (p->limits.max_body_size > 0 && r->content_length > p->limits.max_body_size)
        return fail(p, 413, "request body too large");
    r->upgrade = ll->upgrade != 0;
    r->keep_alive = llhttp_should_keep_alive(ll) != 0;
    if (!r->chunked && r->content_length == 0)
        r->expect_continue = false;
    p->head_done = true;
    p->in_head = false;
    /* without a body, run on to on_message_complete (which pauses) */
    return (r->chunked || r->content_length > 0) ? HPE_PAUSED : 0;
}

static int on_body(llhttp_t *ll, const char *at, size_t n)
{
    sv_http_parser_t *p = P(ll);
    p->req->body_received += (int64_t)n;
    if (p->limits.max_body_size > 0 && p->req->body_received > p->limits.max_body_size)
        return fail(p, 413, "request body too large");
    if (p->on_body && p->on_body(p->body_arg, at, n) < 0)
        return fail(p, 503, "no memory for the request body");
    return 0;
}

static int on_message_complete(llhttp_t *ll)
{
    P(ll)->msg_done = true;
    return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void sv_http_parser_init(sv_http_parser_t *p, const sv_http_limits_t *limits)
{
    memset(p, 0, sizeof(*p));
    p->limits = *limits;
    llhttp_init(&p->ll, HTTP_REQUEST, &settings);
    p->ll.data = p;
}

void sv_http_parser_begin(sv_http_parser_t *p, sv_http_req_t *req, sv_http_body_cb body_cb, void *arg)
{
    /* llhttp is paused at the end of the previous message (or fresh) */
    if (llhttp_get_errno(&p->ll) == HPE_PAUSED)
        llhttp_resume(&p->ll);
    p->req = req;
    p->on_body = body_cb;
    p->body_arg = arg;
    p->head_bytes = 0;
    p->in_head = false;
    p->head_done = p->msg_done = p->last_was_value = false;
    p->error_status = 0;
    p->error_reason = NULL;
    sv_http_header_t *headers = req->headers;
    memset(req, 0, sizeof(*req));
    req->headers = headers;
}

static sv_http_result_t map_error(sv_http_parser_t *p, llhttp_errno_t e)
{
    /* a callback of ours failed with its own status; llhttp may report it under its callback's code */
    if (e != HPE_USER && !p->error_status) {
        switch (e) {
        case HPE_INVALID_METHOD: p->error_status = 501; break;
        /* llhttp also reports a malformed version line (bare CR) this way */
        /* a version we could read and cannot serve is 505; no version at all is a malformed line */
        case HPE_INVALID_VERSION: p->error_status = p->ll.http_major >= 2 ? 505 : 400; break;
        default: p->error_status = 400;
        }
        p->error_reason = llhttp_get_error_reason(&p->ll);
    }
    return SV_HTTP_ERROR;
}

static sv_http_result_t head_too_large(sv_http_parser_t *p)
{
    p->error_status = 431;
    p->error_reason = "request header too large";
    return SV_HTTP_ERROR;
}

/*
 * llhttp 8 (no lenient flags for these) accepts a bare LF after the request
 * line and as the head's last line, and an obs-fold after an empty value:
 * framing a proxy may read differently, so every LF must follow a CR and
 * none may be followed by SP or HTAB.
 */
static bool head_lines_ok(const char *head, size_t len)
{
    for (const char *lf = memchr(head, '\n', len); lf; lf = memchr(lf + 1, '\n', len - (size_t)(lf + 1 - head))) {
        if (lf == head || lf[-1] != '\r')
            return false;
        if (lf + 1 < head + len && (lf[1] == ' ' || lf[1] == '\t'))
            return false;
    }
    return true;
}

sv_http_result_t sv_http_parse(sv_http_parser_t *p, const char *data, size_t len, size_t data_off,
                               size_t *consumed)
{
    *consumed = 0;
    if (p->error_status)
        return SV_HTTP_ERROR;
    if (p->msg_done)
        return SV_HTTP_DONE;
    if (llhttp_get_errno(&p->ll) == HPE_PAUSED)
        llhttp_resume(&p->ll);
    p->base = data;
    p->base_off = data_off;
    llhttp_errno_t e = llhttp_execute(&p->ll, data, len);
    size_t used = len;
    if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE)
        used = (size_t)(llhttp_get_error_pos(&p->ll) - data);
    else if (e != HPE_OK)
        return map_error(p, e);
    *consumed = used;
    if (!p->head_done || p->in_head) {
        p->head_bytes += used;
        if (p->head_bytes > p->limits.max_header_size)
            return head_too_large(p);
        return SV_HTTP_MORE;
    }
    if (p->req->head_len == 0) {
        /* no body: this call ran to the message's end, which is the head's end */
        p->req->head_len = data_off + used;
        if (p->req->head_len > p->limits.max_header_size)
            return head_too_large(p);
        if (!head_lines_ok(data - data_off, p->req->head_len)) {
            fail(p, 400, "bare LF or obs-fold in request head");
            return SV_HTTP_ERROR;
        }
        if (e == HPE_PAUSED_UPGRADE)
            p->msg_done = true;
        return p->msg_done ? SV_HTTP_DONE : SV_HTTP_HEAD;
    }
    if (e == HPE_PAUSED_UPGRADE)
        p->msg_done = true;
    /*
     * llhttp 8 ends a chunked body at "0\r\n\n" too; a proxy that wants
     * CRLF would read what follows as trailers: a smuggling gap. The byte
     * before the final LF may have come in the previous call.
     */
    if (p->msg_done && p->req->chunked && used > 0) {
        char before = used >= 2 ? data[used - 2] : p->prev_byte;
        if (data[used - 1] == '\n' && before != '\r') {
            fail(p, 400, "bare LF ends the chunked body");
            return SV_HTTP_ERROR;
        }
    }
    if (used > 0)
        p->prev_byte = data[used - 1];
    return p->msg_done ? SV_HTTP_DONE : SV_HTTP_MORE;
}

const char *sv_http_method_name(uint8_t method)
{
    return llhttp_method_name((llhttp_method_t)method);
}

const char *sv_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}
