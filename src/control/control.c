/*
 * control.c: the control server's sockets (control.h): its listeners, its
 * clients with their buffers and deadline timers, the held 403s and the
 * rate-limited refusal log. Requests are parsed and judged in request.c;
 * the actions are the owner's callback.
 */
#include "control/control.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/time.h"
#include "http/parser.h"
#include "http/response.h"
#include "os/listen.h"
#include "tls/tls.h"

#define MAX_CLIENTS SV_CONTROL_CLIENTS
#define REQUEST_MAX SV_CONTROL_REQUEST_MAX
#define LOG_EVERY_MS 1000

enum { L_MAIN, L_DATA, L_COUNT };

typedef enum client_state {
    C_FREE = 0,
    C_READING, /* waiting for the request head */
    C_DELAYED, /* a 403 for a bad token, held until release_ms */
    C_WRITING,
} client_state_t;

typedef struct client {
    struct sv_control *ctl;
    int fd;
    void *tls;           /* an ssl:// control URL: the client's TLS object */
    client_state_t state;
    int listener;        /* L_MAIN or L_DATA */
    int64_t accepted_ms; /* eviction order */
    sv_timer_t timer;    /* C_READING, C_WRITING: the deadline (the client is dropped); C_DELAYED: the release */
    char peer[64];
    char in[REQUEST_MAX + 1];
    size_t in_len;
    sv_buf_t out;
    size_t out_off;
} client_t;

typedef struct listener {
    sv_listener_t l;
    sv_control_policy_t policy;
    char display[600];
} listener_t;

struct sv_control {
    listener_t ls[L_COUNT];
    int nls;
    char token[SV_CONTROL_TOKEN_BYTES];
    sv_loop_t *loop;
    sv_control_cb cb;
    void *arg;
    client_t clients[MAX_CLIENTS];
    /* refused requests since the last log line (rate-limited) */
    unsigned refused_auth, refused_origin, evicted;
    int64_t first_ms;    /* the first refusal counted since the last line */
    int64_t last_log_ms;
    sv_timer_t log_timer; /* the next line for refusals counted within LOG_EVERY_MS of the last */
    char last_refused[160];
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

/* One line a second at most, however fast the refusals come. */
static void log_refusals(sv_control_t *c, int64_t now, bool force)
{
    unsigned total = c->refused_auth + c->refused_origin + c->evicted;
    if (!total || (!force && now - c->last_log_ms < LOG_EVERY_MS))
        return;
    sv_log_error("! control: %u failed authentication(s), %u foreign Host/Origin, %u idle client(s) dropped "
                 "in %.1fs; last refused: %s",
                 c->refused_auth, c->refused_origin, c->evicted, (double)(now - c->first_ms) / 1000.0,
                 c->last_refused[0] ? c->last_refused : "none");
    c->refused_auth = c->refused_origin = c->evicted = 0;
    c->last_refused[0] = '\0';
    c->last_log_ms = now;
}

static void on_log_timer(sv_loop_t *loop, sv_timer_t *t, void *arg)
{
    (void)loop, (void)t;
    log_refusals(arg, sv_now_ms(), true);
}

/* Refusals were counted: a line now, or when LOG_EVERY_MS since the last one has passed. */
static void note_refused(sv_control_t *c, int64_t now)
{
    log_refusals(c, now, false);
    if (c->refused_auth + c->refused_origin + c->evicted && !sv_timer_armed(&c->log_timer))
        sv_loop_timer_start(c->loop, &c->log_timer, c->last_log_ms + LOG_EVERY_MS - now, 0);
}

static void client_close(sv_control_t *c, client_t *cl)
{
    if (cl->fd < 0)
        return;
    sv_loop_timer_stop(c->loop, &cl->timer);
    sv_loop_unwatch(c->loop, cl->fd);
    if (cl->tls) {
        sv_tls_conn_shutdown(cl->tls);
        sv_tls_conn_free(cl->tls);
        cl->tls = NULL;
    }
    close(cl->fd);
    cl->fd = -1;
    cl->state = C_FREE;
    sv_buf_free(&cl->out);
}

/* The head from src/http (the serving side's writer): status line, Content-Length, Date, Connection: close. */
static void respond(client_t *cl, bool http10, int status, const char *ctype, const char *body, size_t len,
                    int op_id)
{
    char extra[200], date[32];
    int n = snprintf(extra, sizeof(extra), "Content-Type: %s\r\n", ctype);
    if (op_id > 0)
        n += snprintf(extra + n, sizeof(extra) - (size_t)n, "X-Serval-Operation: %d\r\n", op_id);
    if (status == 405)
        n += snprintf(extra + n, sizeof(extra) - (size_t)n, "Allow: GET\r\n");
    sv_http_date(date, time(NULL));
    uint8_t minor = http10 ? 0 : 1;
    sv_http_framing_t f = sv_http_res_framing(HTTP_GET, minor, status, (int64_t)len);
    sv_http_res_head_t h = {.status = status, .minor = minor, .headers = extra, .headers_len = (size_t)n,
                            .content_length = (int64_t)len, .close = true, .date = date};
    sv_http_write_head(&cl->out, &h, &f);
    sv_buf_append(&cl->out, body, len);
}

/* Puma's words: { "error": "refork not available" }, with a reason when there is one. */
static void json_error(sv_buf_t *b, const char *cmd, const char *why)
{
    sv_buf_puts(b, "{ \"error\": \"");
    for (const char *p = cmd; *p; p++)
        sv_buf_putc(b, *p == '-' ? '_' : *p);
    sv_buf_puts(b, " not available");
    if (why)
        sv_buf_printf(b, " (%s)", why);
    sv_buf_puts(b, "\" }");
}

static void perform(sv_control_t *c, client_t *cl, const sv_control_req_t *r)
{
    const sv_command_t *cmd = r->cmd;
    /* the query ends where the request line's target ends: terminate it in place */
    char *query = cl->in + r->query_off;
    query[r->query_len] = '\0';
    sv_buf_t body = SV_BUF_INIT;
    int op_id = 0;
    int status = c->cb(c->arg, cmd->cmd, query, &body, &op_id);
    if (status == 404 && body.len == 0)
        json_error(&body, cmd->name, NULL);
    if (body.len == 0 && !cmd->returns_data)
        sv_buf_puts(&body, "{ \"status\": \"ok\" }");
    const char *ctype = cmd->cmd == SV_CMD_METRICS ? "text/plain; version=0.0.4" : "application/json";
    respond(cl, r->http10, status, ctype, body.data ? body.data : "", body.len, op_id);
    sv_buf_free(&body);
}

static void note_refusal(sv_control_t *c, client_t *cl, const sv_control_req_t *r)
{
    int64_t now = sv_now_ms();
    if (!c->refused_auth && !c->refused_origin && !c->evicted)
        c->first_ms = now;
    if (r->auth_failed)
        c->refused_auth++;
    else
        c->refused_origin++;
    int tlen = (int)(r->target_len < 60 ? r->target_len : 60);
    /* the target may hold a guessed token: log the path only */
    const char *t = cl->in + r->target_off;
    const char *q = memchr(t, '?', (size_t)tlen);
    snprintf(c->last_refused, sizeof(c->last_refused), "%s from %s GET %.*s", r->auth_failed ? "bad token" :
             "foreign Host/Origin", cl->peer, q ? (int)(q - t) : tlen, t);
    note_refused(c, now);
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
    if (cl->state != C_WRITING) /* the answer has its own time to leave */
        sv_loop_timer_start(c->loop, &cl->timer, SV_CONTROL_TIMEOUT_MS, 0);
    cl->state = C_WRITING;
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

/* A complete (or early-failed) request: answer now, or later for a bad token. */
static void handle_request(sv_control_t *c, client_t *cl, const sv_control_req_t *r)
{
    if (r->status == 0) {
        perform(c, cl, r);
        client_write(c, cl);
        return;
    }
    if (r->read_only_refused) {
        sv_buf_t body = SV_BUF_INIT;
        json_error(&body, r->read_only_refused->name, "data_only: a read-only control server");
        respond(cl, r->http10, r->status, "application/json", body.data, body.len, 0);
        sv_buf_free(&body);
    } else {
        respond(cl, r->http10, r->status, "text/plain", r->why, strlen(r->why), 0);
    }
    if (r->auth_failed || r->foreign)
        note_refusal(c, cl, r);
    if (!r->auth_failed) {
        client_write(c, cl);
        return;
    }
    /* slow down guessing without holding the loop: the client's timer releases the answer */
    cl->state = C_DELAYED;
    sv_loop_timer_start(c->loop, &cl->timer, SV_CONTROL_AUTH_DELAY_MS, 0);
    sv_loop_events(c->loop, cl->fd, 0);
}

static client_t *client_of(sv_control_t *c, int fd)
{
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (c->clients[i].fd == fd)
            return &c->clients[i];
    return NULL;
}

static void on_client(sv_loop_t *loop, int fd, short revents, void *arg)
{
    sv_control_t *c = arg;
    client_t *cl = client_of(c, fd);
    (void)loop;
    if (!cl)
        return;
    if (cl->state == C_DELAYED) { /* only a hang-up wakes a held client: it no longer waits */
        if (revents & (POLLHUP | POLLERR | POLLNVAL))
            client_close(c, cl);
        return;
    }
    if (cl->state == C_WRITING) {
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
    cl->in_len += got;
    cl->in[cl->in_len] = '\0';
    sv_control_req_t r;
    if (sv_control_request(&c->ls[cl->listener].policy, cl->in, cl->in_len, &r)) {
        handle_request(c, cl, &r);
    } else if (cl->in_len >= REQUEST_MAX) {
        respond(cl, true, 431, "text/plain", "Request Header Fields Too Large", 31, 0);
        client_write(c, cl);
    }
}

/*
 * A slot for a client of listener which: a free one while that listener holds
 * fewer than its share (all 64 alone, half each beside a data_url listener,
 * so a flood on the public probe port never takes the operator's slots), or
 * the slot of the listener's oldest client still waiting for its request head
 * (idle or trickling), closed. NULL when each of its slots is answering or
 * holding a delayed 403: then the new client is refused, so that parallel
 * token guesses stay bounded by the slots and the delay.
 */
static client_t *take_slot(sv_control_t *c, int which)
{
    client_t *oldest = NULL, *free_slot = NULL;
    int held = 0, share = MAX_CLIENTS / c->nls;
    for (int i = 0; i < MAX_CLIENTS; i++) {
        client_t *cl = &c->clients[i];
        if (cl->fd < 0) {
            free_slot = free_slot ? free_slot : cl;
            continue;
        }
        if (cl->listener != which)
            continue;
        held++;
        if (cl->state == C_READING && (!oldest || cl->accepted_ms < oldest->accepted_ms))
            oldest = cl;
    }
    if (free_slot && held < share)
        return free_slot;
    if (oldest) {
        client_close(c, oldest);
        if (!c->refused_auth && !c->refused_origin && !c->evicted)
            c->first_ms = sv_now_ms();
        c->evicted++;
        note_refused(c, sv_now_ms());
    }
    return oldest;
}

static void peer_name(const struct sockaddr_storage *ss, socklen_t len, char *out, size_t cap)
{
    char a[INET6_ADDRSTRLEN] = "";
    if (len && ss->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
        snprintf(out, cap, "%s:%d", a, ntohs(s4->sin_port));
    } else if (len && ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
        snprintf(out, cap, "[%s]:%d", a, ntohs(s6->sin6_port));
    } else {
        snprintf(out, cap, "unix socket");
    }
}

/* A held 403 is released; any other client past its deadline is dropped. */
static void on_client_timer(sv_loop_t *loop, sv_timer_t *t, void *arg)
{
    client_t *cl = arg;
    (void)loop, (void)t;
    if (cl->state == C_DELAYED)
        client_write(cl->ctl, cl);
    else
        client_close(cl->ctl, cl);
}

static void on_accept(sv_loop_t *loop, int fd, short revents, void *arg)
{
    sv_control_t *c = arg;
    (void)revents;
    int which = fd == c->ls[L_DATA].l.fd ? L_DATA : L_MAIN;
    for (int k = 0; k < 16; k++) {
        struct sockaddr_storage ss = {0};
        socklen_t sl = sizeof(ss);
        int cfd = accept4(fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0)
            return;
        client_t *cl = take_slot(c, which);
        if (!cl) { /* full of answers in flight: the owner's loop must stay responsive */
            close(cfd);
            continue;
        }
        memset(cl, 0, sizeof(*cl));
        cl->ctl = c;
        sv_timer_init(&cl->timer, on_client_timer, cl);
        if (c->ls[which].l.tls && !(cl->tls = sv_tls_conn_new(c->ls[which].l.tls, cfd, NULL))) {
            close(cfd);
            continue;
        }
        if (cl->tls) {
            /* the TLS 1.3 session ticket goes out just before the answer: Nagle would hold the answer for its ACK */
            int one = 1;
            setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }
        cl->fd = cfd;
        cl->state = C_READING;
        cl->listener = which;
        cl->accepted_ms = sv_now_ms();
        sv_loop_timer_start(loop, &cl->timer, SV_CONTROL_HEAD_TIMEOUT_MS, 0);
        peer_name(&ss, sl, cl->peer, sizeof(cl->peer));
        sv_loop_watch(loop, cfd, POLLIN, on_client, c);
    }
}

static int setup_listener(sv_listener_t *l, const char *uri, int inherited_fd, bool inherited_created, char *err,
                          size_t errlen)
{
    char url[600];
    snprintf(url, sizeof(url), "%s", uri);
    /* a control socket is private unless the URL says otherwise */
    if (!strncmp(url, "unix://", 7) && !strstr(url, "mode="))
        snprintf(url + strlen(url), sizeof(url) - strlen(url), "%smode=0600", strchr(url, '?') ? "&" : "?");
    int rc;
    if (inherited_fd >= 0) {
        rc = sv_listener_adopt(l, url, inherited_fd, err, errlen);
        l->created_path = inherited_created;
    } else {
        rc = sv_listener_open(l, url, err, errlen);
        if (rc < 0 && errlen)
            snprintf(err + strlen(err), errlen - strlen(err), " (control server)");
    }
    /* an ssl:// control URL: its own contexts (not reloaded by /reload-certs) */
    if (rc >= 0 && l->bind.ssl && !(l->tls = sv_tls_new(url, err, errlen))) {
        sv_listener_close(l, true);
        return SV_ECONFIG;
    }
    return rc;
}

static void set_policy(sv_control_t *c, listener_t *ls, const char *token, bool data_only)
{
    ls->policy.token = token;
    ls->policy.data_only = data_only;
    /* without a token only the request's naming of the server keeps a web page out */
    ls->policy.check_origin = !token && !data_only;
    int port = sv_listener_port(&ls->l);
    ls->policy.port = port > 0 ? port : 0;
    sv_listener_display(&ls->l, ls->display, sizeof(ls->display));
    sv_loop_watch(c->loop, ls->l.fd, POLLIN, on_accept, c);
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
    for (int i = 0; i < L_COUNT; i++)
        c->ls[i].l.fd = -1;
    c->loop = loop;
    sv_timer_init(&c->log_timer, on_log_timer, c);
    c->cb = cb;
    c->arg = arg;
    if (o->token && strlen(o->token) >= sizeof(c->token)) {
        snprintf(err, errlen, "control token longer than %d bytes", SV_CONTROL_TOKEN_BYTES - 1);
        free(c);
        return NULL;
    }
    snprintf(c->token, sizeof(c->token), "%s", o->token ? o->token : "");
    if (setup_listener(&c->ls[L_MAIN].l, o->url, o->inherited_fd, o->inherited_created, err, errlen) < 0) {
        free(c);
        return NULL;
    }
    if (o->data_url && setup_listener(&c->ls[L_DATA].l, o->data_url, -1, false, err, errlen) < 0) {
        sv_listener_close(&c->ls[L_MAIN].l, false);
        free(c);
        return NULL;
    }
    c->nls = o->data_url ? 2 : 1;
    set_policy(c, &c->ls[L_MAIN], c->token[0] ? c->token : NULL, o->data_only);
    if (o->data_url)
        set_policy(c, &c->ls[L_DATA], NULL, true);
    return c;
}

int sv_control_fd(const sv_control_t *c)
{
    return c ? c->ls[L_MAIN].l.fd : -1;
}

bool sv_control_created_path(const sv_control_t *c)
{
    return c && c->ls[L_MAIN].l.created_path;
}

const char *sv_control_display(const sv_control_t *c)
{
    return c->ls[L_MAIN].display;
}

const char *sv_control_data_display(const sv_control_t *c)
{
    return c && c->nls > 1 ? c->ls[L_DATA].display : NULL;
}

void sv_control_close(sv_control_t *c, bool unlink_path)
{
    if (!c)
        return;
    log_refusals(c, sv_now_ms(), true);
    sv_loop_timer_stop(c->loop, &c->log_timer);
    for (int i = 0; i < MAX_CLIENTS; i++)
        client_close(c, &c->clients[i]);
    for (int i = 0; i < c->nls; i++) {
        sv_loop_unwatch(c->loop, c->ls[i].l.fd);
        sv_listener_close(&c->ls[i].l, unlink_path);
        sv_tls_free(c->ls[i].l.tls);
    }
    free(c);
}

static int open_clients(const sv_control_t *c)
{
    int n = 0;
    for (int i = 0; i < MAX_CLIENTS; i++)
        n += c->clients[i].fd >= 0;
    return n;
}

void sv_control_settle(sv_control_t *c, int budget_ms)
{
    if (!c)
        return;
    /* the clients move to a loop of their own: nothing else of the owner's runs before its exec */
    sv_loop_t *own = c->loop, *settle = sv_loop_new();
    if (settle) {
        for (int i = 0; i < MAX_CLIENTS; i++) {
            client_t *cl = &c->clients[i];
            if (cl->fd < 0)
                continue;
            sv_loop_unwatch(own, cl->fd);
            sv_loop_timer_stop(own, &cl->timer);
        }
        c->loop = settle;
        for (int i = 0; i < MAX_CLIENTS; i++) {
            client_t *cl = &c->clients[i];
            if (cl->fd < 0)
                continue;
            sv_loop_watch(settle, cl->fd, cl->state == C_WRITING ? POLLOUT : POLLIN, on_client, c);
            sv_loop_timer_start(settle, &cl->timer, budget_ms, 0);
            if (cl->state == C_DELAYED)
                client_write(c, cl); /* no time left to make it wait */
        }
        int64_t deadline = sv_now_ms() + budget_ms;
        for (int64_t left = budget_ms; left > 0 && open_clients(c); left = deadline - sv_now_ms())
            sv_loop_run_once(settle, (int)left);
    }
    for (int i = 0; i < MAX_CLIENTS; i++)
        client_close(c, &c->clients[i]);
    c->loop = own;
    sv_loop_free(settle);
}

