/*
 * request.c: what an app sees of a request and builds of a response.
 * serval_request_t and serval_response_t are both the connection itself.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/time.h"
#include "server/internal.h"

#define CONN(x) ((sv_conn_t *)(x))

/* ---- request ------------------------------------------------------------ */

static char *head(const sv_conn_t *c)
{
    return c->x->rbuf.data;
}

/* Path and query are copied to scratch so the target stays intact. */
static void split_target(sv_conn_t *c)
{
    const char *t = head(c) + c->x->req.target.off;
    size_t n = c->x->req.target.len;
    size_t start = 0;
    /* absolute-form: scheme://authority/path */
    const char *sep = memmem(t, n, "://", 3);
    if (t[0] != '/' && sep) {
        const char *slash = memchr(sep + 3, '/', n - (size_t)(sep + 3 - t));
        start = slash ? (size_t)(slash - t) : n;
    }
    const char *q = memchr(t + start, '?', n - start);
    size_t plen = q ? (size_t)(q - t) - start : n - start;
    c->x->scratch.len = c->x->scratch_keep; /* the authority stays */
    c->x->path_off = c->x->scratch_keep;
    if (plen == 0)
        sv_buf_putc(&c->x->scratch, '/');
    else
        sv_buf_append(&c->x->scratch, t + start, plen);
    sv_buf_putc(&c->x->scratch, '\0');
    c->x->query_off = (uint32_t)c->x->scratch.len;
    if (q)
        sv_buf_append(&c->x->scratch, q + 1, n - (size_t)(q + 1 - t));
    sv_buf_putc(&c->x->scratch, '\0');
}

void sv_req_prepare(sv_conn_t *c)
{
    c->x->path_off = UINT32_MAX; /* split lazily: most apps never ask */
    c->x->fwd[0] = '\0';         /* the client a forwarded-for header names, too (remote.c) */
    char *b = head(c);
    sv_buf_reset(&c->x->scratch);
    c->x->scratch_keep = 0;
    if (c->x->req.authority.len) {
        /* absolute form: the target's authority is the Host the app sees (RFC 9112 3.2.2) */
        if (sv_buf_append(&c->x->scratch, b + c->x->req.authority.off, c->x->req.authority.len) == 0 &&
            sv_buf_putc(&c->x->scratch, '\0') == 0)
            c->x->scratch_keep = (uint32_t)c->x->scratch.len;
        else
            sv_buf_reset(&c->x->scratch);
    }
    /* the parser is past these bytes: terminate each span in place */
    b[c->x->req.target.off + c->x->req.target.len] = '\0';
    for (int i = 0; i < c->x->req.nheaders; i++) {
        sv_http_header_t *h = &c->x->req.headers[i];
        b[h->name.off + h->name.len] = '\0';
        if (h->value.len)
            b[h->value.off + h->value.len] = '\0';
    }
}

const char *serval_request_method(const serval_request_t *req)
{
    return sv_http_method_name(CONN(req)->x->req.method);
}

const char *serval_request_target(const serval_request_t *req)
{
    return head(CONN(req)) + CONN(req)->x->req.target.off;
}

static void ensure_split(const serval_request_t *req)
{
    if (CONN(req)->x->path_off == UINT32_MAX)
        split_target(CONN(req));
}

const char *serval_request_path(const serval_request_t *req)
{
    ensure_split(req);
    return CONN(req)->x->scratch.data + CONN(req)->x->path_off;
}

const char *serval_request_query(const serval_request_t *req)
{
    ensure_split(req);
    return CONN(req)->x->scratch.data + CONN(req)->x->query_off;
}

const char *serval_request_version(const serval_request_t *req)
{
    return CONN(req)->x->req.minor == 0 ? "HTTP/1.0" : "HTTP/1.1";
}

static const char *value_of(const sv_conn_t *c, const sv_http_header_t *h)
{
    if (c->x->scratch_keep && strcasecmp(head(c) + h->name.off, "host") == 0)
        return c->x->scratch.data;
    return h->value.len ? head(c) + h->value.off : "";
}

const char *serval_request_header(const serval_request_t *req, const char *name)
{
    const sv_conn_t *c = CONN(req);
    for (int i = 0; i < c->x->req.nheaders; i++) {
        const sv_http_header_t *h = &c->x->req.headers[i];
        if (strcasecmp(head(c) + h->name.off, name) == 0)
            return value_of(c, h);
    }
    return NULL;
}

size_t serval_request_header_count(const serval_request_t *req)
{
    return (size_t)CONN(req)->x->req.nheaders;
}

int serval_request_header_at(const serval_request_t *req, size_t i, const char **name, const char **value)
{
    const sv_conn_t *c = CONN(req);
    if (i >= (size_t)c->x->req.nheaders)
        return -EINVAL;
    *name = head(c) + c->x->req.headers[i].name.off;
    *value = value_of(c, &c->x->req.headers[i]);
    return 0;
}

int64_t serval_request_content_length(const serval_request_t *req)
{
    return CONN(req)->x->req.content_length;
}

const void *serval_request_body(const serval_request_t *req, size_t *len)
{
    sv_conn_t *c = CONN(req);
    *len = (size_t)c->x->body_len;
    if (c->x->body_fd < 0)
        return c->x->body_len ? c->x->body.data : "";
    if (!c->x->body_map) {
        /* a body in the temp file is mapped on demand: page cache, not this process's heap */
        void *m = mmap(NULL, (size_t)c->x->body_len, PROT_READ, MAP_PRIVATE, c->x->body_fd, 0);
        if (m == MAP_FAILED) {
            *len = 0;
            return NULL;
        }
        c->x->body_map = m;
    }
    return c->x->body_map;
}

long serval_request_read(serval_request_t *req, void *buf, size_t cap)
{
    sv_conn_t *c = CONN(req);
    int64_t left = c->x->body_len - c->x->body_off;
    size_t n = (uint64_t)left < cap ? (size_t)left : cap;
    if (n == 0)
        return 0;
    if (c->x->body_fd >= 0) {
        ssize_t got;
        do {
            got = pread(c->x->body_fd, buf, n, (off_t)c->x->body_off);
        } while (got < 0 && errno == EINTR);
        if (got <= 0)
            return got < 0 ? SV_ERRNO() : -EIO;
        n = (size_t)got;
    } else {
        memcpy(buf, c->x->body.data + c->x->body_off, n);
    }
    c->x->body_off += (int64_t)n;
    return (long)n;
}

/* serval_request_peer: remote.c */

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
    c->x->status = 200;
    c->x->res_mode = RES_NONE;
    sv_buf_reset(&c->x->res_headers);
    c->x->res_has_ctype = false;
    c->x->head_written = false;
    c->x->framing = (sv_http_framing_t){0};
    c->x->res_failed = false;
    c->x->res_bytes = 0;
}

static void decide_close(sv_conn_t *c)
{
    sv_server_t *s = c->srv;
    bool server_close = atomic_load_explicit(&s->draining, memory_order_relaxed) ||
                        (s->o.max_keep_alive > 0 && c->served + 1 >= (unsigned)s->o.max_keep_alive);
    if (!sv_http_keep_alive(c->x->req.keep_alive, c->x->req.upgrade, server_close))
        c->x->close_after = true;
}

/*
 * Append the head to c->x->out and fix the response's framing. content_length
 * -1 means the body is streamed.
 */
static int write_head(sv_conn_t *c, int64_t content_length)
{
    c->x->framing = sv_http_res_framing(c->x->req.method, c->x->req.minor, c->x->status, content_length);
    decide_close(c);
    if (c->x->framing.close_delimited)
        c->x->close_after = true;
    /* a worker over its share moves this client (rebalance.c); a stream's end is unknown, so never a stream */
    if (!c->x->close_after && content_length >= 0 && sv_rebalance_shed(c))
        c->x->close_after = true;
    sv_http_res_head_t h = {.status = c->x->status,
                            .minor = c->x->req.minor,
                            .headers = c->x->res_headers.data,
                            .headers_len = c->x->res_headers.len,
                            .content_length = content_length,
                            .close = c->x->close_after,
                            .date = sv_res_date()};
    int rc = sv_http_write_head(&c->x->out, &h, &c->x->framing);
    if (rc == 0)
        c->x->head_written = true;
    return rc;
}

/* ---- response ------------------------------------------------------------ */

int serval_response_status(serval_response_t *res, int status)
{
    sv_conn_t *c = CONN(res);
    if (c->x->res_mode != RES_NONE || status < 200 || status > 999)
        return -EINVAL;
    c->x->status = status;
    return 0;
}

static bool valid_value(const char *value)
{
    return sv_http_field_value_ok(value);
}

static bool valid_header(const char *name, const char *value)
{
    return sv_http_field_name_ok(name) && valid_value(value) && !sv_http_field_reserved(name);
}

int serval_response_header(serval_response_t *res, const char *name, const char *value)
{
    sv_conn_t *c = CONN(res);
    if (c->x->res_mode != RES_NONE || !name || !value || !valid_header(name, value))
        return -EINVAL;
    size_t nl = strlen(name), vl = strlen(value);
    int rc = sv_buf_reserve(&c->x->res_headers, nl + vl + 4);
    if (rc < 0)
        return rc;
    sv_buf_append(&c->x->res_headers, name, nl);
    sv_buf_append(&c->x->res_headers, ": ", 2);
    sv_buf_append(&c->x->res_headers, value, vl);
    sv_buf_append(&c->x->res_headers, "\r\n", 2);
    if (strcasecmp(name, "content-type") == 0)
        c->x->res_has_ctype = true;
    return 0;
}

int serval_response_body(serval_response_t *res, const void *data, size_t len)
{
    sv_conn_t *c = CONN(res);
    if (c->x->res_mode != RES_NONE || (len && !data))
        return -EINVAL;
    if (sv_http_status_bodiless(c->x->status))
        len = 0;
    int rc = write_head(c, (int64_t)len);
    if (rc == 0 && c->x->framing.send_body)
        rc = sv_buf_append(&c->x->out, data, len);
    if (rc < 0) {
        sv_buf_reset(&c->x->out);
        return rc;
    }
    c->x->res_bytes = (int64_t)len;
    c->x->res_mode = RES_DONE;
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
        rc = sv_buf_reserve(&c->x->res_headers, n + 16);
        if (rc == 0) {
            sv_buf_append(&c->x->res_headers, "Content-Type: ", 14);
            sv_buf_append(&c->x->res_headers, content_type, n);
            sv_buf_append(&c->x->res_headers, "\r\n", 2);
            c->x->res_has_ctype = true;
        }
    }
    return rc ? rc : serval_response_body(res, body, len);
}

/* Said at most once a minute: under a slow-read attack it would be said for every cut. */
static void spool_full_warning(sv_conn_t *c)
{
    static _Atomic int64_t last_ms;
    int64_t now = sv_now_ms(), prev = atomic_load(&last_ms);
    if (now - prev < 60000 || !atomic_compare_exchange_strong(&last_ms, &prev, now))
        return;
    sv_log_error("! %s %s: cut a streamed response to a slow client: max_response_buffer (%lld bytes of spooled "
                 "output) is full",
                 serval_request_method((serval_request_t *)c), serval_request_target((serval_request_t *)c),
                 (long long)c->srv->o.max_response_buffer);
}

/* Streamed body bytes, framed as the head said. */
static int emit_body(sv_conn_t *c, const void *data, size_t len)
{
    if (!c->x->framing.chunked)
        return sv_out_emit(c, data, len);
    char size[24];
    int n = snprintf(size, sizeof(size), "%zx\r\n", len);
    struct iovec iov[3] = {{.iov_base = size, .iov_len = (size_t)n},
                           {.iov_base = (void *)data, .iov_len = len},
                           {.iov_base = "\r\n", .iov_len = 2}};
    return sv_out_emitv(c, iov, 3);
}

int serval_response_write(serval_response_t *res, const void *data, size_t len)
{
    sv_conn_t *c = CONN(res);
    int rc = 0;
    /* the stream may reach the socket from here on (even from sv_out_emitv): the 504 no longer can */
    if (!sv_deadline_claim(c))
        return -ETIMEDOUT; /* app_timeout answered the client (504): nothing more of ours */
    if (c->x->res_mode == RES_NONE) {
        sv_conn_nodelay(c); /* chunks follow each other: Nagle would hold them for an ACK */
        rc = write_head(c, -1);
        c->x->res_mode = RES_STREAM;
    } else if (c->x->res_mode != RES_STREAM) {
        return -EINVAL;
    } else if (c->x->res_failed) {
        return -EPIPE;
    }
    if (rc == 0 && len && c->x->framing.send_body) {
        rc = emit_body(c, data, len);
        c->x->res_bytes += (int64_t)len;
    }
    /* a slow reader's backlog waits in the spool, not in this thread (spool.c) */
    if (rc == 0)
        rc = sv_conn_flush_wait(c, sv_out_wait_limit(c));
    if (rc < 0) {
        c->x->res_failed = true; /* the body is cut: it must not be ended as if whole */
        c->reset_on_close = rc == -ETIMEDOUT || rc == -ENOBUFS;
        if (rc == -ENOBUFS)
            spool_full_warning(c);
    }
    return rc;
}

int serval_response_file(serval_response_t *res, int fd, int64_t offset, int64_t length)
{
    sv_conn_t *c = CONN(res);
    struct stat st;
    if (c->x->res_mode != RES_NONE || fd < 0 || offset < 0 || fstat(fd, &st) < 0 || offset > st.st_size) {
        if (fd >= 0)
            close(fd);
        return -EINVAL;
    }
    /* compared, not added: offset + length may overflow */
    if (length < 0 || length > st.st_size - offset)
        length = st.st_size - offset;
    if (sv_http_status_bodiless(c->x->status))
        length = 0;
    int rc = write_head(c, length);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    c->x->res_mode = RES_FILE;
    c->x->res_bytes = length;
    if (!c->x->framing.send_body) {
        close(fd); /* HEAD, 204, 304, or empty: the head is the whole response */
        return 0;
    }
    c->x->file_fd = fd;
    c->x->file_off = offset;
    c->x->file_left = length;
    return 0;
}

void sv_res_finish(sv_conn_t *c)
{
    switch (c->x->res_mode) {
    case RES_NONE:
        sv_log_error("! %s %s: the app returned without a response; sent 500",
                     serval_request_method((serval_request_t *)c), serval_request_target((serval_request_t *)c));
        c->x->status = 500;
        sv_buf_reset(&c->x->res_headers);
        serval_response_header((serval_response_t *)c, "Content-Type", "text/plain");
        serval_response_body((serval_response_t *)c, "Internal Server Error\n", 22);
        break;
    case RES_STREAM:
        if (c->x->res_failed) {
            sv_out_release(c);
            sv_buf_reset(&c->x->out);
            c->x->out_off = 0;
            c->x->close_after = true;
        } else if (c->x->framing.chunked && sv_out_emit(c, "0\r\n\r\n", 5) < 0)
            c->x->close_after = true; /* the body cannot be ended: the client sees it cut */
        break;
    default:
        break;
    }
}

void sv_res_error(sv_conn_t *c, int status, const char *reason)
{
    sv_out_release(c);
    sv_buf_reset(&c->x->out);
    c->x->out_off = 0;
    c->x->close_after = true;
    c->x->res_pending = true;
    sv_http_write_error(&c->x->out, status, sv_res_date());
    if (sv_log_debug_enabled())
        sv_log_debug("- %d %s: %s", status, sv_http_reason(status), reason ? reason : "");
}

/* ---- request log ---------------------------------------------------------- */

void sv_req_log(sv_conn_t *c, int64_t app_ns)
{
    char when[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof(when), "%d/%b/%Y:%H:%M:%S +0000", &tm);
    char host[64];
    sv_remote_log_host(c, host, sizeof(host));
    sv_log("%s - - [%s] \"%s %s %s\" %d %lld %.4f", host, when, serval_request_method((serval_request_t *)c),
           serval_request_target((serval_request_t *)c), serval_request_version((serval_request_t *)c),
           c->x->status, (long long)c->x->res_bytes, (double)app_ns / 1e9);
}
