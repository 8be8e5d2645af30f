/*
 * request.c: what an app sees of a request and builds of a response.
 * serval_request_t and serval_response_t are both the connection itself.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/time.h"
#include "server/internal.h"

#define CONN(x) ((sv_conn_t *)(x))

/* ---- request ------------------------------------------------------------ */

static char *head(const sv_conn_t *c)
{
    return c->rbuf.data;
}

/* Path and query are copied to scratch so the target stays intact. */
static void split_target(sv_conn_t *c)
{
    const char *t = head(c) + c->req.target.off;
    size_t n = c->req.target.len;
    size_t start = 0;
    /* absolute-form: scheme://authority/path */
    const char *sep = memmem(t, n, "://", 3);
    if (t[0] != '/' && sep) {
        const char *slash = memchr(sep + 3, '/', n - (size_t)(sep + 3 - t));
        start = slash ? (size_t)(slash - t) : n;
    }
    const char *q = memchr(t + start, '?', n - start);
    size_t plen = q ? (size_t)(q - t) - start : n - start;
    sv_buf_reset(&c->scratch);
    c->path_off = 0;
    if (plen == 0)
        sv_buf_putc(&c->scratch, '/');
    else
        sv_buf_append(&c->scratch, t + start, plen);
    sv_buf_putc(&c->scratch, '\0');
    c->query_off = (uint32_t)c->scratch.len;
    if (q)
        sv_buf_append(&c->scratch, q + 1, n - (size_t)(q + 1 - t));
    sv_buf_putc(&c->scratch, '\0');
}

void sv_req_prepare(sv_conn_t *c)
{
    c->path_off = UINT32_MAX; /* split lazily: most apps never ask */
    char *b = head(c);
    /* the parser is past these bytes: terminate each span in place */
    b[c->req.target.off + c->req.target.len] = '\0';
    for (int i = 0; i < c->req.nheaders; i++) {
        sv_http_header_t *h = &c->req.headers[i];
        b[h->name.off + h->name.len] = '\0';
        if (h->value.len)
            b[h->value.off + h->value.len] = '\0';
    }
}

const char *serval_request_method(const serval_request_t *req)
{
    return sv_http_method_name(CONN(req)->req.method);
}

const char *serval_request_target(const serval_request_t *req)
{
    return head(CONN(req)) + CONN(req)->req.target.off;
}

static void ensure_split(const serval_request_t *req)
{
    if (CONN(req)->path_off == UINT32_MAX)
        split_target(CONN(req));
}

const char *serval_request_path(const serval_request_t *req)
{
    ensure_split(req);
    return CONN(req)->scratch.data + CONN(req)->path_off;
}

const char *serval_request_query(const serval_request_t *req)
{
    ensure_split(req);
    return CONN(req)->scratch.data + CONN(req)->query_off;
}

const char *serval_request_version(const serval_request_t *req)
{
    return CONN(req)->req.minor == 0 ? "HTTP/1.0" : "HTTP/1.1";
}

static const char *value_of(const sv_conn_t *c, const sv_http_header_t *h)
{
    return h->value.len ? head(c) + h->value.off : "";
}

const char *serval_request_header(const serval_request_t *req, const char *name)
{
    const sv_conn_t *c = CONN(req);
    for (int i = 0; i < c->req.nheaders; i++) {
        const sv_http_header_t *h = &c->req.headers[i];
        if (strcasecmp(head(c) + h->name.off, name) == 0)
            return value_of(c, h);
    }
    return NULL;
}

size_t serval_request_header_count(const serval_request_t *req)
{
    return (size_t)CONN(req)->req.nheaders;
}

int serval_request_header_at(const serval_request_t *req, size_t i, const char **name, const char **value)
{
    const sv_conn_t *c = CONN(req);
    if (i >= (size_t)c->req.nheaders)
        return -EINVAL;
    *name = head(c) + c->req.headers[i].name.off;
    *value = value_of(c, &c->req.headers[i]);
    return 0;
}

int64_t serval_request_content_length(const serval_request_t *req)
{
    return CONN(req)->req.content_length;
}

const void *serval_request_body(const serval_request_t *req, size_t *len)
{
    const sv_conn_t *c = CONN(req);
    if (c->streaming_body) {
        *len = 0;
        return NULL;
    }
    *len = c->body.len;
    return c->body.len ? c->body.data : "";
}

/* Wait for and parse more body bytes on the app's thread. */
static int pull_body(sv_conn_t *c)
{
    if (!c->continue_sent && c->req.expect_continue) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        (void)!send(c->fd, cont, sizeof(cont) - 1, MSG_NOSIGNAL);
        c->continue_sent = true;
    }
    int64_t deadline = sv_now_ms() + c->srv->o.first_data_timeout_ms;
    while (c->body.len == c->body_off && !c->msg_done) {
        if (c->rpos < c->rbuf.len) {
            if (sv_conn_parse(c) == SV_HTTP_ERROR) {
                c->body_error = c->parser.error_status;
                return c->body_error == 413 ? -EMSGSIZE : -EPROTO;
            }
            continue;
        }
        int n = sv_conn_read(c);
        if (n > 0)
            continue;
        if (n == 0)
            return -EPIPE;
        if (n != -EAGAIN)
            return n;
        int64_t left = deadline - sv_now_ms();
        if (left <= 0) {
            c->body_error = 408;
            return -ETIMEDOUT;
        }
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        poll(&p, 1, (int)(left > 1000 ? 1000 : left));
    }
    return 0;
}

long serval_request_read(serval_request_t *req, void *buf, size_t cap)
{
    sv_conn_t *c = CONN(req);
    if (c->streaming_body && c->body.len == c->body_off) {
        sv_buf_reset(&c->body);
        c->body_off = 0;
        int rc = pull_body(c);
        if (rc < 0)
            return rc;
    }
    size_t left = c->body.len - c->body_off;
    size_t n = left < cap ? left : cap;
    memcpy(buf, c->body.data + c->body_off, n);
    c->body_off += n;
    return (long)n;
}

const char *serval_request_peer(const serval_request_t *req)
{
    sv_conn_t *c = CONN(req);
    if (c->peer[0])
        return c->peer;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t len = sizeof(ss);
    char ip[INET6_ADDRSTRLEN] = "?";
    if (c->is_unix || getpeername(c->fd, (struct sockaddr *)&ss, &len) < 0) {
        snprintf(c->peer, sizeof(c->peer), "unix");
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
        snprintf(c->peer, sizeof(c->peer), "[%s]:%d", ip, ntohs(a->sin6_port));
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
        snprintf(c->peer, sizeof(c->peer), "%s:%d", ip, ntohs(a->sin_port));
    }
    return c->peer;
}

/* ---- response head ------------------------------------------------------ */

const char *sv_res_date(void)
{
    static __thread time_t cached;
    static __thread char date[32];
    time_t now = time(NULL);
    if (now != cached) {
        sv_http_date(date, now);
        cached = now;
    }
    return date;
}

void sv_res_begin(sv_conn_t *c)
{
    c->status = 200;
    c->res_mode = RES_NONE;
    sv_buf_reset(&c->res_headers);
    c->res_has_ctype = false;
    c->head_written = false;
    c->chunked_out = false;
    c->res_bytes = 0;
}

static bool body_allowed(int status)
{
    return status >= 200 && status != 204 && status != 304;
}

static bool is_head(const sv_conn_t *c)
{
    return c->req.method == HTTP_HEAD;
}

static void decide_close(sv_conn_t *c)
{
    sv_server_t *s = c->srv;
    if (!c->req.keep_alive || c->req.upgrade || atomic_load_explicit(&s->draining, memory_order_relaxed) ||
        (s->o.max_keep_alive > 0 && c->served + 1 >= (unsigned)s->o.max_keep_alive) ||
        (c->streaming_body && !c->msg_done))
        c->close_after = true;
}

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

static char *put_int(char *p, int64_t v)
{
    char tmp[24];
    int n = 0;
    uint64_t u = v < 0 ? 0 : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    while (n)
        *p++ = tmp[--n];
    return p;
}

/*
 * Append the status line and headers to c->out. content_length -1 means the
 * body is streamed (chunked for HTTP/1.1, close-delimited for 1.0).
 */
static int write_head(sv_conn_t *c, int64_t content_length)
{
    decide_close(c);
    const char *reason = sv_http_reason(c->status);
    size_t rlen = strlen(reason);
    int rc = sv_buf_reserve(&c->out, 160 + rlen + c->res_headers.len);
    if (rc < 0)
        return rc;
    char *p = c->out.data + c->out.len;
    p = put(p, "HTTP/1.1 ", 9);
    p = put_int(p, c->status);
    *p++ = ' ';
    p = put(p, reason, rlen);
    p = put(p, "\r\n", 2);
    if (c->res_headers.len)
        p = put(p, c->res_headers.data, c->res_headers.len);
    if (content_length >= 0) {
        if (body_allowed(c->status)) { /* 204 and 304 carry none (RFC 9110 8.6) */
            p = put(p, "Content-Length: ", 16);
            p = put_int(p, content_length);
            p = put(p, "\r\n", 2);
        }
    } else if (c->req.minor >= 1) {
        p = put(p, "Transfer-Encoding: chunked\r\n", 28);
        c->chunked_out = true;
    } else {
        c->close_after = true;
    }
    p = put(p, "Date: ", 6);
    p = put(p, sv_res_date(), 29);
    if (c->close_after)
        p = put(p, "\r\nConnection: close\r\n\r\n", 23);
    else if (c->req.minor == 0)
        p = put(p, "\r\nConnection: keep-alive\r\n\r\n", 28);
    else
        p = put(p, "\r\n\r\n", 4);
    c->out.len = (size_t)(p - c->out.data);
    c->head_written = true;
    return 0;
}

/* ---- response ------------------------------------------------------------ */

int serval_response_status(serval_response_t *res, int status)
{
    sv_conn_t *c = CONN(res);
    if (c->res_mode != RES_NONE || status < 200 || status > 999)
        return -EINVAL;
    c->status = status;
    return 0;
}

static bool valid_value(const char *value)
{
    return value[strcspn(value, "\r\n")] == '\0';
}

static bool token_char(unsigned char ch)
{
    return ch > 32 && ch < 127 && !strchr("\"(),/:;<=>?@[\\]{}", ch);
}

static bool valid_header(const char *name, const char *value)
{
    if (!*name)
        return false;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (!token_char(*p))
            return false;
    if (!valid_value(value))
        return false;
    return strcasecmp(name, "content-length") && strcasecmp(name, "transfer-encoding") &&
           strcasecmp(name, "connection") && strcasecmp(name, "date");
}

int serval_response_header(serval_response_t *res, const char *name, const char *value)
{
    sv_conn_t *c = CONN(res);
    if (c->res_mode != RES_NONE || !name || !value || !valid_header(name, value))
        return -EINVAL;
    size_t nl = strlen(name), vl = strlen(value);
    int rc = sv_buf_reserve(&c->res_headers, nl + vl + 4);
    if (rc < 0)
        return rc;
    sv_buf_append(&c->res_headers, name, nl);
    sv_buf_append(&c->res_headers, ": ", 2);
    sv_buf_append(&c->res_headers, value, vl);
    sv_buf_append(&c->res_headers, "\r\n", 2);
    if (strcasecmp(name, "content-type") == 0)
        c->res_has_ctype = true;
    return 0;
}

int serval_response_body(serval_response_t *res, const void *data, size_t len)
{
    sv_conn_t *c = CONN(res);
    if (c->res_mode != RES_NONE || (len && !data))
        return -EINVAL;
    if (!body_allowed(c->status))
        len = 0;
    int rc = write_head(c, (int64_t)len);
    if (rc == 0 && !is_head(c) && len)
        rc = sv_buf_append(&c->out, data, len);
    if (rc < 0) {
        sv_buf_reset(&c->out);
        return rc;
    }
    c->res_bytes = (int64_t)len;
    c->res_mode = RES_DONE;
    return 0;
}

int serval_response_send(serval_response_t *res, int status, const char *content_type, const void *body,
                         size_t len)
{
    sv_conn_t *c = CONN(res);
    int rc = serval_response_status(res, status);
    if (rc == 0 && content_type) {
        /* the common case, without serval_response_header's name checks */
        if (!valid_value(content_type))
            return -EINVAL;
        size_t n = strlen(content_type);
        rc = sv_buf_reserve(&c->res_headers, n + 16);
        if (rc == 0) {
            sv_buf_append(&c->res_headers, "Content-Type: ", 14);
            sv_buf_append(&c->res_headers, content_type, n);
            sv_buf_append(&c->res_headers, "\r\n", 2);
            c->res_has_ctype = true;
        }
    }
    return rc ? rc : serval_response_body(res, body, len);
}

int serval_response_write(serval_response_t *res, const void *data, size_t len)
{
    sv_conn_t *c = CONN(res);
    int rc = 0;
    if (c->res_mode == RES_NONE) {
        sv_conn_nodelay(c); /* chunks follow each other: Nagle would hold them for an ACK */
        rc = write_head(c, -1);
        c->res_mode = RES_STREAM;
    } else if (c->res_mode != RES_STREAM) {
        return -EINVAL;
    }
    if (rc == 0 && len && !is_head(c) && body_allowed(c->status)) {
        if (c->chunked_out)
            rc = sv_buf_printf(&c->out, "%zx\r\n", len);
        if (rc == 0)
            rc = sv_buf_append(&c->out, data, len);
        if (rc == 0 && c->chunked_out)
            rc = sv_buf_append(&c->out, "\r\n", 2);
        c->res_bytes += (int64_t)len;
    }
    if (rc == 0 && !sv_deadline_claim(c)) /* app_timeout already answered the client */
        rc = -ETIMEDOUT;
    return rc ? rc : sv_conn_flush_blocking(c);
}

int serval_response_file(serval_response_t *res, int fd, int64_t offset, int64_t length)
{
    sv_conn_t *c = CONN(res);
    struct stat st;
    if (c->res_mode != RES_NONE || fd < 0 || offset < 0 || fstat(fd, &st) < 0 || offset > st.st_size) {
        if (fd >= 0)
            close(fd);
        return -EINVAL;
    }
    if (length < 0 || offset + length > st.st_size)
        length = st.st_size - offset;
    int rc = write_head(c, length);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    c->res_mode = RES_FILE;
    c->res_bytes = length;
    if (is_head(c) || length == 0) {
        close(fd);
        return 0;
    }
    c->file_fd = fd;
    c->file_off = offset;
    c->file_left = length;
    return 0;
}

void sv_res_finish(sv_conn_t *c)
{
    /* the body broke while the app read it: the client hears why, not the app's guess */
    if (c->body_error && c->res_mode != RES_STREAM) {
        sv_res_error(c, c->body_error, c->parser.error_reason);
        return;
    }
    switch (c->res_mode) {
    case RES_NONE:
        sv_log_error("! %s %s: the app returned without a response; sent 500",
                     serval_request_method((serval_request_t *)c), serval_request_target((serval_request_t *)c));
        c->status = 500;
        sv_buf_reset(&c->res_headers);
        serval_response_header((serval_response_t *)c, "Content-Type", "text/plain");
        serval_response_body((serval_response_t *)c, "Internal Server Error\n", 22);
        break;
    case RES_STREAM:
        if (c->chunked_out && !is_head(c) && body_allowed(c->status))
            sv_buf_append(&c->out, "0\r\n\r\n", 5);
        break;
    default:
        break;
    }
    if (c->streaming_body && !c->msg_done)
        c->close_after = true;
}

void sv_res_error(sv_conn_t *c, int status, const char *reason)
{
    const char *text = sv_http_reason(status);
    sv_buf_reset(&c->out);
    c->out_off = 0;
    c->close_after = true;
    sv_buf_printf(&c->out,
                  "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                  "Date: %s\r\nConnection: close\r\n\r\n%s\n",
                  status, text, strlen(text) + 1, sv_res_date(), text);
    if (sv_log_debug_enabled())
        sv_log_debug("- %d %s: %s", status, text, reason ? reason : "");
}

/* ---- request log ---------------------------------------------------------- */

void sv_req_log(sv_conn_t *c, int64_t app_ns)
{
    char when[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof(when), "%d/%b/%Y:%H:%M:%S +0000", &tm);
    const char *peer = serval_request_peer((serval_request_t *)c);
    char host[64];
    snprintf(host, sizeof(host), "%s", peer);
    char *colon = strrchr(host, ':');
    if (colon && host[0] != '[')
        *colon = '\0';
    sv_log("%s - - [%s] \"%s %s %s\" %d %lld %.4f", host, when, serval_request_method((serval_request_t *)c),
           serval_request_target((serval_request_t *)c), serval_request_version((serval_request_t *)c),
           c->status, (long long)c->res_bytes, (double)app_ns / 1e9);
}
