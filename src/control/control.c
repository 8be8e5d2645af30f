#include "control/control.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/time.h"
#include "os/listen.h"
#include "tls/tls.h"

#define MAX_CLIENTS 64
#define CLIENT_TIMEOUT_MS 5000
#define REQUEST_MAX 8192

typedef struct client {
    int fd;
    void *tls;      /* ssl:// control URL: the client's TLS object */
    int64_t deadline_ms;
    char in[REQUEST_MAX + 1];
    size_t in_len;
    sv_buf_t out;
    size_t out_off;
} client_t;

struct sv_control {
    sv_listener_t l;
    sv_tls_t *tls;  /* ssl:// control URL: its contexts (not reloaded by /reload-certs) */
    char token[160];
    bool auth;
    sv_loop_t *loop;
    sv_control_cb cb;
    void *arg;
    client_t clients[MAX_CLIENTS];
    char display[600];
};

void sv_control_random_token(char *buf)
{
    unsigned char r[16];
    if (getrandom(r, sizeof(r), 0) != sizeof(r)) {
        /* getrandom cannot fail for 16 bytes after boot; keep a fallback anyway */
        for (size_t i = 0; i < sizeof(r); i++)
            r[i] = (unsigned char)(rand() ^ (int)sv_now_ns());
    }
    for (size_t i = 0; i < sizeof(r); i++)
        snprintf(buf + 2 * i, 3, "%02x", r[i]);
}

/* Constant-time comparison: the time taken does not depend on where they differ. */
static bool token_equal(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    unsigned char diff = (unsigned char)(alen != blen);
    for (size_t i = 0; i < blen; i++)
        diff |= (unsigned char)((i < alen ? a[i] : 0) ^ b[i]);
    return diff == 0;
}

/* Puma accepts the token among other parameters, separated by & or ;. */
static bool authorized(const sv_control_t *c, const char *query)
{
    if (!c->auth)
        return true;
    bool ok = false;
    for (const char *p = query; p && *p;) {
        size_t n = strcspn(p, "&;");
        if (n > 6 && !strncmp(p, "token=", 6))
            ok |= token_equal(p + 6, n - 6, c->token);
        p += n + (p[n] ? 1 : 0);
    }
    return ok;
}

static void client_close(sv_control_t *c, client_t *cl)
{
    if (cl->fd < 0)
        return;
    sv_loop_unwatch(c->loop, cl->fd);
    if (cl->tls) {
        sv_tls_conn_shutdown(cl->tls);
        sv_tls_conn_free(cl->tls);
        cl->tls = NULL;
    }
    close(cl->fd);
    cl->fd = -1;
    sv_buf_free(&cl->out);
}

static void respond(client_t *cl, bool http10, int status, const char *ctype, const char *body, size_t len,
                    int op_id)
{
    const char *reason = status == 200 ? "OK" : status == 403 ? "Forbidden" : status == 404 ? "Not Found"
                         : status == 503 ? "Service Unavailable" : status == 400 ? "Bad Request" : "Error";
    sv_buf_printf(&cl->out, "HTTP/1.%d %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n", http10 ? 0 : 1,
                  status, reason, ctype, len);
    if (op_id > 0)
        sv_buf_printf(&cl->out, "X-Serval-Operation: %d\r\n", op_id);
    sv_buf_puts(&cl->out, "Connection: close\r\n\r\n");
    sv_buf_append(&cl->out, body, len);
}

static void json_error(sv_buf_t *b, const char *cmd)
{
    sv_buf_puts(b, "{ \"error\": \"");
    for (const char *p = cmd; *p; p++)
        sv_buf_putc(b, *p == '-' ? '_' : *p);
    sv_buf_puts(b, " not available\" }");
}

static void dispatch(sv_control_t *c, client_t *cl, const char *path, const char *query, bool http10)
{
    if (!authorized(c, query)) {
        respond(cl, http10, 403, "text/plain", "Invalid auth token", 18, 0);
        return;
    }
    const sv_command_t *cmd = sv_command_by_path(path);
    if (!cmd) {
        respond(cl, http10, 404, "text/plain", "Unsupported action", 18, 0);
        return;
    }
    sv_buf_t body = SV_BUF_INIT;
    int op_id = 0;
    int status = c->cb(c->arg, cmd->cmd, query, &body, &op_id);
    if (status == 404 && body.len == 0)
        json_error(&body, cmd->name);
    if (body.len == 0 && !cmd->returns_data)
        sv_buf_puts(&body, "{ \"status\": \"ok\" }");
    const char *ctype = cmd->cmd == SV_CMD_METRICS ? "text/plain; version=0.0.4" : "application/json";
    respond(cl, http10, status, ctype, body.data ? body.data : "", body.len, op_id);
    sv_buf_free(&body);
}

/* "GET /path?query HTTP/1.x" */
static void handle_request(sv_control_t *c, client_t *cl)
{
    char *line_end = strstr(cl->in, "\r\n");
    if (line_end)
        *line_end = '\0';
    char *sp1 = strchr(cl->in, ' ');
    char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp1 || !sp2 || strncmp(cl->in, "GET", 3) != 0) {
        respond(cl, true, 400, "text/plain", "Bad Request", 11, 0);
        return;
    }
    *sp2 = '\0';
    bool http10 = strncmp(sp2 + 1, "HTTP/1.0", 8) == 0;
    char *path = sp1 + 1;
    char *q = strchr(path, '?');
    if (q)
        *q++ = '\0';
    dispatch(c, cl, path, q ? q : "", http10);
}

static void on_client(sv_loop_t *loop, int fd, short revents, void *arg);

/* recv/send, or through TLS: >0 bytes, 0 EOF, -EAGAIN (*want_out: waiting to write), <0 error. */
static ssize_t client_io(client_t *cl, bool out, char *buf, size_t len, bool *want_out)
{
    if (cl->tls)
        return out ? sv_tls_send(cl->tls, buf, len, want_out) : sv_tls_recv(cl->tls, buf, len, want_out);
    *want_out = out;
    ssize_t n = out ? send(cl->fd, buf, len, MSG_NOSIGNAL) : recv(cl->fd, buf, len, 0);
    return n >= 0 ? n : (errno == EINTR || errno == EAGAIN) ? -EAGAIN : -errno;
}

static void client_write(sv_control_t *c, client_t *cl)
{
    while (cl->out_off < cl->out.len) {
        bool want_out = false;
        ssize_t n = client_io(cl, true, cl->out.data + cl->out_off, cl->out.len - cl->out_off, &want_out);
        if (n == -EAGAIN) {
            sv_loop_events(c->loop, cl->fd, want_out ? POLLOUT : POLLIN);
            return;
        }
        if (n <= 0)
            break;
        cl->out_off += (size_t)n;
    }
    client_close(c, cl);
}

static void on_client(sv_loop_t *loop, int fd, short revents, void *arg)
{
    sv_control_t *c = arg;
    client_t *cl = NULL;
    for (int i = 0; i < MAX_CLIENTS && !cl; i++)
        if (c->clients[i].fd == fd)
            cl = &c->clients[i];
    (void)loop;
    if (!cl)
        return;
    if (cl->out.len) {
        client_write(c, cl);
        return;
    }
    bool want_out = false;
    size_t got = 0;
    ssize_t n;
    /* poll is level-triggered on the fd, not on what TLS has decrypted already: take that too */
    do {
        n = client_io(cl, false, cl->in + cl->in_len + got, REQUEST_MAX - cl->in_len - got, &want_out);
        if (n > 0)
            got += (size_t)n;
    } while (n > 0 && cl->tls && sv_tls_pending(cl->tls) && cl->in_len + got < REQUEST_MAX);
    if (got == 0 && n == -EAGAIN) {
        sv_loop_events(c->loop, fd, want_out ? POLLIN | POLLOUT : POLLIN);
        return;
    }
    if (got == 0 || (revents & (POLLERR | POLLNVAL))) {
        client_close(c, cl);
        return;
    }
    n = (ssize_t)got;
    cl->in_len += (size_t)n;
    cl->in[cl->in_len] = '\0';
    if (strstr(cl->in, "\r\n\r\n") || strstr(cl->in, "\n\n")) {
        handle_request(c, cl);
        client_write(c, cl);
    } else if (cl->in_len >= REQUEST_MAX) {
        client_close(c, cl);
    }
}

static void on_accept(sv_loop_t *loop, int fd, short revents, void *arg)
{
    sv_control_t *c = arg;
    (void)revents;
    for (int k = 0; k < 16; k++) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0)
            return;
        client_t *cl = NULL;
        for (int i = 0; i < MAX_CLIENTS && !cl; i++)
            if (c->clients[i].fd < 0)
                cl = &c->clients[i];
        if (!cl) { /* full: the owner's loop must stay responsive */
            close(cfd);
            continue;
        }
        memset(cl, 0, sizeof(*cl));
        if (c->tls && !(cl->tls = sv_tls_conn_new(c->tls, cfd))) {
            close(cfd);
            continue;
        }
        cl->fd = cfd;
        cl->deadline_ms = sv_now_ms() + CLIENT_TIMEOUT_MS;
        sv_loop_watch(loop, cfd, POLLIN, on_client, c);
    }
}

static int setup_listener(sv_control_t *c, const sv_control_opts_t *o, char *err, size_t errlen)
{
    char url[600];
    snprintf(url, sizeof(url), "%s", o->url);
    /* a control socket is private unless the URL says otherwise */
    if (!strncmp(url, "unix://", 7) && !strstr(url, "mode="))
        snprintf(url + strlen(url), sizeof(url) - strlen(url), "%smode=0600", strchr(url, '?') ? "&" : "?");
    int rc;
    if (o->inherited_fd >= 0) {
        rc = sv_listener_adopt(&c->l, url, o->inherited_fd, err, errlen);
        c->l.created_path = o->inherited_created;
    } else {
        rc = sv_listener_open(&c->l, url, err, errlen);
        if (rc < 0 && errlen)
            snprintf(err + strlen(err), errlen - strlen(err), " (control server)");
    }
    if (rc >= 0 && c->l.bind.ssl && !(c->tls = sv_tls_new(url, err, errlen))) {
        sv_listener_close(&c->l, true);
        return SV_ECONFIG;
    }
    return rc;
}

sv_control_t *sv_control_open(const sv_control_opts_t *o, sv_loop_t *loop, sv_control_cb cb, void *arg,
                              char *err, size_t errlen)
{
    sv_control_t *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (int i = 0; i < MAX_CLIENTS; i++)
        c->clients[i].fd = -1;
    c->loop = loop;
    c->cb = cb;
    c->arg = arg;
    c->auth = o->token && o->token[0];
    snprintf(c->token, sizeof(c->token), "%s", o->token ? o->token : "");
    if (setup_listener(c, o, err, errlen) < 0) {
        free(c);
        return NULL;
    }
    sv_listener_display(&c->l, c->display, sizeof(c->display));
    sv_loop_watch(loop, c->l.fd, POLLIN, on_accept, c);
    return c;
}

void sv_control_tick(sv_control_t *c, int64_t now_ms)
{
    for (int i = 0; c && i < MAX_CLIENTS; i++)
        if (c->clients[i].fd >= 0 && c->clients[i].deadline_ms <= now_ms)
            client_close(c, &c->clients[i]);
}

int sv_control_fd(const sv_control_t *c)
{
    return c ? c->l.fd : -1;
}

bool sv_control_created_path(const sv_control_t *c)
{
    return c && c->l.created_path;
}

const char *sv_control_display(const sv_control_t *c)
{
    return c->display;
}

void sv_control_close(sv_control_t *c, bool unlink_path)
{
    if (!c)
        return;
    for (int i = 0; i < MAX_CLIENTS; i++)
        client_close(c, &c->clients[i]);
    sv_loop_unwatch(c->loop, c->l.fd);
    sv_listener_close(&c->l, unlink_path);
    sv_tls_free(c->tls);
    free(c);
}

void sv_control_settle(sv_control_t *c, int budget_ms)
{
    if (!c)
        return;
    int64_t deadline = sv_now_ms() + budget_ms;
    for (;;) {
        struct pollfd pfd[MAX_CLIENTS];
        int n = 0;
        for (int i = 0; i < MAX_CLIENTS; i++) {
            const client_t *cl = &c->clients[i];
            if (cl->fd >= 0)
                pfd[n++] = (struct pollfd){.fd = cl->fd, .events = cl->out.len ? POLLOUT : POLLIN};
        }
        int64_t left = deadline - sv_now_ms();
        if (n == 0 || left <= 0)
            break;
        int r = poll(pfd, (nfds_t)n, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        for (int i = 0; i < n; i++)
            if (pfd[i].revents)
                on_client(c->loop, pfd[i].fd, pfd[i].revents, c);
    }
    for (int i = 0; i < MAX_CLIENTS; i++)
        client_close(c, &c->clients[i]);
}

void sv_control_forget(sv_control_t *c)
{
    if (!c)
        return;
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (c->clients[i].fd >= 0)
            close(c->clients[i].fd);
    if (c->l.fd >= 0)
        close(c->l.fd);
}
