#include "http_get.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/err.h"
#include "core/time.h"
#include "os/listen.h"
#include "tls/tls.h"

static int remaining_ms(int64_t deadline)
{
    int64_t left = deadline - sv_now_ms();
    return left > 0 ? (int)left : 0;
}

/* Wait for events on fd until deadline: 0 when ready, -ETIMEDOUT, or -errno. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, remaining_ms(deadline));
        if (n > 0)
            return 0;
        if (n == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return SV_ERRNO();
    }
}

/* Start a non-blocking connect and wait for its outcome. */
static int connect_addr(int family, const struct sockaddr *sa, socklen_t len, int64_t deadline)
{
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return SV_ERRNO();
    int rc = 0;
    if (connect(fd, sa, len) < 0) {
        rc = errno == EINPROGRESS ? wait_fd(fd, POLLOUT, deadline) : SV_ERRNO();
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (rc == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
            rc = SV_ERRNO();
        else if (rc == 0 && soerr)
            rc = -soerr;
    }
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return fd;
}

static int connect_unix(const sv_bind_t *b, int64_t deadline)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", b->path);
    return connect_addr(AF_UNIX, (const struct sockaddr *)&sun, sizeof(sun), deadline);
}

static int connect_tcp(const sv_bind_t *b, int64_t deadline, char *why, size_t whylen)
{
    struct addrinfo hints = {.ai_family = b->ipv6 ? AF_INET6 : AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV};
    char port[8];
    snprintf(port, sizeof(port), "%d", b->port);
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(b->host, port, &hints, &res);
    if (gai != 0) {
        snprintf(why, whylen, "%s", gai_strerror(gai));
        return -EHOSTUNREACH;
    }
    int rc = -ECONNREFUSED;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        rc = connect_addr(ai->ai_family, ai->ai_addr, ai->ai_addrlen, deadline);
        if (rc >= 0 || rc == -ETIMEDOUT)
            break;
    }
    freeaddrinfo(res);
    if (rc < 0)
        snprintf(why, whylen, "%s", rc == -ETIMEDOUT ? "timed out" : sv_strerror(rc));
    return rc;
}

static int connect_until(const char *url, int64_t deadline, char *err, size_t errlen)
{
    sv_bind_t b;
    char why[300];
    if (sv_bind_parse(url, &b, why, sizeof(why)) < 0) {
        const char *reason = strstr(why, "': "); /* past the parser's "bad bind 'URL'" */
        snprintf(err, errlen, "servalctl: bad control url '%s': %s", url, reason ? reason + 3 : why);
        return SV_ECONFIG;
    }
    int rc = b.kind == SV_BIND_UNIX ? connect_unix(&b, deadline) : connect_tcp(&b, deadline, why, sizeof(why));
    if (rc < 0 && b.kind == SV_BIND_UNIX)
        snprintf(why, sizeof(why), "%s", rc == -ETIMEDOUT ? "timed out" : sv_strerror(rc));
    if (rc < 0)
        snprintf(err, errlen, "servalctl: cannot connect to %s: %s (is serval running?)", url, why);
    return rc;
}

int ctl_connect(const char *url, int timeout_ms, char *err, size_t errlen)
{
    return connect_until(url, sv_now_ms() + timeout_ms, err, errlen);
}

/* One send or recv, through TLS for an ssl:// URL: >0, 0 EOF, -EAGAIN (*events: what to wait for), <0. */
static ssize_t io(int fd, void *tls, bool out, char *buf, size_t len, short *events)
{
    bool want_out = out;
    ssize_t n;
    if (tls) {
        want_out = false;
        n = out ? sv_tls_send(tls, buf, len, &want_out) : sv_tls_recv(tls, buf, len, &want_out);
    } else {
        n = out ? send(fd, buf, len, MSG_NOSIGNAL) : recv(fd, buf, len, 0);
        n = n >= 0 ? n : errno == EINTR ? -EAGAIN : SV_ERRNO();
    }
    *events = want_out ? POLLOUT : POLLIN;
    return n;
}

static int send_all(int fd, void *tls, const char *data, size_t len, int64_t deadline)
{
    size_t off = 0;
    while (off < len) {
        short events;
        ssize_t n = io(fd, tls, true, (char *)data + off, len - off, &events);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n != -EAGAIN)
            return n < 0 ? (int)n : -EPIPE;
        int rc = wait_fd(fd, events, deadline);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int recv_all(int fd, void *tls, sv_buf_t *out, int64_t deadline)
{
    for (;;) {
        if (out->len >= CTL_RESPONSE_MAX)
            return SV_ELIMIT;
        if (sv_buf_reserve(out, 16384) < 0)
            return -ENOMEM;
        short events;
        ssize_t n = io(fd, tls, false, out->data + out->len, out->cap - out->len - 1, &events);
        if (n > 0) {
            out->len += (size_t)n;
            out->data[out->len] = '\0';
            continue;
        }
        if (n == 0 || n == -ECONNRESET)
            return 0; /* what arrived before the end (or a reset) is the answer */
        if (n != -EAGAIN)
            return (int)n;
        int rc = wait_fd(fd, events, deadline);
        if (rc < 0)
            return rc;
    }
}

/* The value of header name in the head (headers end at the blank line), or NULL. */
static const char *header_value(const char *head, const char *head_end, const char *name, size_t *vlen)
{
    size_t nlen = strlen(name);
    for (const char *line = strchr(head, '\n'); line && line + 1 < head_end; line = strchr(line + 1, '\n')) {
        const char *h = line + 1;
        if ((size_t)(head_end - h) > nlen && !strncasecmp(h, name, nlen) && h[nlen] == ':') {
            const char *v = h + nlen + 1;
            v += strspn(v, " \t");
            *vlen = strcspn(v, "\r\n");
            return v;
        }
    }
    return NULL;
}

static int parse_reply(ctl_reply_t *r)
{
    const char *data = r->raw.data;
    int minor, status;
    if (sscanf(data, "HTTP/1.%d %3d", &minor, &status) != 2 || status < 100 || status > 999)
        return SV_EPROTO;
    const char *sep = strstr(data, "\r\n\r\n");
    size_t seplen = 4;
    if (!sep) {
        sep = strstr(data, "\n\n");
        seplen = 2;
    }
    if (!sep)
        return SV_EPROTO;
    r->status = status;
    r->body = sep + seplen;
    r->body_len = r->raw.len - (size_t)(r->body - data);
    size_t vlen = 0;
    const char *op = header_value(data, sep + 1, "X-Serval-Operation", &vlen);
    r->op_id = op ? atoi(op) : 0;
    return 0;
}

static int exchange(int fd, void *tls, const char *target, int64_t deadline, ctl_reply_t *reply)
{
    sv_buf_t req = SV_BUF_INIT;
    if (sv_buf_printf(&req, "GET %s HTTP/1.0\r\n\r\n", target) < 0)
        return -ENOMEM;
    int rc = send_all(fd, tls, req.data, req.len, deadline);
    sv_buf_free(&req);
    if (rc == 0)
        rc = recv_all(fd, tls, &reply->raw, deadline);
    if (rc == -EPIPE || rc == -ECONNRESET)
        rc = 0; /* closed before we finished writing: judged by what we got */
    if (rc == 0 && reply->raw.len == 0)
        rc = SV_EPROTO;
    else if (rc == 0)
        rc = parse_reply(reply);
    return rc;
}

int ctl_http_get(const char *url, const char *target, int timeout_ms, ctl_reply_t *reply, char *err,
                 size_t errlen)
{
    memset(reply, 0, sizeof(*reply));
    int64_t deadline = sv_now_ms() + timeout_ms;
    int fd = connect_until(url, deadline, err, errlen);
    if (fd < 0)
        return fd;
    sv_bind_t b;
    char why[300];
    void *tls = NULL;
    /* ssl:// control URL: TLS without verifying the server's certificate, as pumactl does */
    if (sv_bind_parse(url, &b, why, sizeof(why)) == 0 && b.ssl && !(tls = sv_tls_client_new(fd))) {
        close(fd);
        snprintf(err, errlen, "servalctl: cannot start TLS to %s", url);
        return -ENOMEM;
    }
    int rc = exchange(fd, tls, target, deadline, reply);
    sv_tls_conn_free(tls);
    close(fd);
    if (rc == SV_EPROTO && reply->raw.len == 0)
        snprintf(err, errlen, "Server closed connection before responding");
    else if (rc == SV_EPROTO)
        snprintf(err, errlen, "servalctl: malformed response from %s", url);
    else if (rc == -ETIMEDOUT)
        snprintf(err, errlen, "servalctl: no response from %s within %d s", url, (timeout_ms + 999) / 1000);
    else if (rc < 0)
        snprintf(err, errlen, "servalctl: reading from %s: %s", url, sv_strerror(rc));
    if (rc < 0)
        ctl_reply_free(reply);
    return rc;
}

void ctl_reply_free(ctl_reply_t *r)
{
    sv_buf_free(&r->raw);
    memset(r, 0, sizeof(*r));
}
