/*
 * remote.c: who the client is (set_remote_address, docs/proxy.md). The
 * socket's peer; or the client a PROXY protocol header names, read off the
 * raw socket before anything else (before TLS too); or, per request, the
 * client a forwarded-for header names when the peer is a trusted proxy.
 * serval_request_peer() and the request log read the result.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "core/err.h"
#include "core/log.h"
#include "core/time.h"
#include "http/proxy.h"
#include "server/internal.h"

#define CONN(x) ((sv_conn_t *)(x))

/*
 * What is peeked at for a PROXY header: a v1 line is at most 107 bytes, a
 * v2 header 16 plus its addresses and TLVs (AWS and GCP send a few hundred
 * bytes of those). A longer v2 header is refused rather than read in pieces.
 */
#define PROXY_PEEK_MAX 2048
/* Forwarded-for values are walked over their last this many bytes (the hops nearest us). */
#define FWD_MAX 2048
/* c->x->fwd once worked out, when the header names nobody: the peer stands */
#define NO_FWD "-"

/* The socket's peer: "1.2.3.4:5678", "[::1]:5678", "unix". */
static void socket_peer(const sv_conn_t *c, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t len = sizeof(ss);
    char ip[INET6_ADDRSTRLEN] = "?";
    if (c->is_unix || getpeername(c->fd, (struct sockaddr *)&ss, &len) < 0) {
        snprintf(out, cap, "unix");
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
        snprintf(out, cap, "[%s]:%d", ip, ntohs(a->sin6_port));
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
        snprintf(out, cap, "%s:%d", ip, ntohs(a->sin_port));
    }
}

static const char *conn_peer(sv_conn_t *c)
{
    if (!c->peer[0])
        socket_peer(c, c->peer, sizeof(c->peer));
    return c->peer;
}

/* ---- PROXY protocol ------------------------------------------------------- */

static _Atomic int64_t last_refusal_ms;
static _Atomic uint64_t refusals_unlogged;

/* At most one line a second, whatever a scanner or a misconfigured balancer sends. */
static void log_refusal(const sv_conn_t *c, const unsigned char *b, size_t n, const char *why)
{
    int64_t now = sv_now_ms(), last = atomic_load(&last_refusal_ms);
    if ((last && now - last < 1000) || !atomic_compare_exchange_strong(&last_refusal_ms, &last, now)) {
        atomic_fetch_add(&refusals_unlogged, 1);
        return;
    }
    uint64_t more = atomic_exchange(&refusals_unlogged, 0);
    char start[40], peer[64];
    size_t k = 0;
    for (size_t i = 0; i < n && i < 16 && k + 5 < sizeof(start); i++)
        k += (size_t)snprintf(start + k, sizeof(start) - k, b[i] >= 0x20 && b[i] < 0x7f && b[i] != '"' ? "%c" : "\\x%02x",
                              b[i]);
    start[k] = '\0';
    socket_peer(c, peer, sizeof(peer));
    int v = c->srv->o.remote->proxy_protocol;
    char also[64] = "";
    if (more)
        snprintf(also, sizeof(also), "; %llu more since the last such line", (unsigned long long)more);
    sv_log_error("! PROXY protocol: closed a connection from %s: %s (it began \"%s\"; set_remote_address "
                 "proxy_protocol: %s wants a PROXY header first on every connection%s)",
                 peer, why, start, v == SV_PROXY_V1 ? ":v1" : v == SV_PROXY_V2 ? ":v2" : ":any", also);
}

/*
 * The header is peeked at, and only its own bytes are consumed: whatever
 * follows (a TLS ClientHello, a request) stays in the socket for the reads
 * that come next. A partial header waits for more bytes like a partial
 * request, within first_data_timeout from the accept (the sweeper closes
 * it), holding no thread.
 */
int sv_remote_proxy(sv_conn_t *c)
{
    if (!c->proxy_wait)
        return 1;
    unsigned char b[PROXY_PEEK_MAX];
    ssize_t n;
    do {
        n = recv(c->fd, b, sizeof(b), MSG_PEEK);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EAGAIN ? 0 : SV_ERRNO();
    if (n == 0)
        return -ECONNRESET; /* closed before a header: a balancer's TCP check, say */
    sv_proxy_result_t r;
    long len = sv_proxy_parse(b, (size_t)n, c->srv->o.remote->proxy_protocol, &r);
    if (len == 0 && (size_t)n < sizeof(b)) {
        /* a peek shows the same partial header after the peer's FIN: ask whether it closed */
        struct pollfd p = {.fd = c->fd, .events = POLLRDHUP};
        if (poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)))
            return -ECONNRESET; /* closed inside its header: it can never be completed */
        return 0;
    }
    if (len <= 0) {
        log_refusal(c, b, (size_t)n, len == 0 ? "a PROXY v2 header longer than serval reads" : "no valid PROXY header");
        return SV_EPROTO;
    }
    ssize_t got;
    do {
        got = recv(c->fd, b, (size_t)len, 0);
    } while (got < 0 && errno == EINTR);
    if (got != len)
        return got < 0 ? SV_ERRNO() : -EIO; /* peeked bytes are there until read */
    c->bytes_recv += got;
    c->proxy_wait = false;
    if (!r.local)
        snprintf(c->peer, sizeof(c->peer), "%s", r.addr);
    return 1;
}

/* ---- forwarded-for headers -------------------------------------------------- */

/* Every field named name, joined with ", " in order; the last FWD_MAX bytes when longer. */
static size_t join_fields(const sv_conn_t *c, const char *name, char *out, size_t cap)
{
    size_t len = 0;
    for (int i = 0; i < c->x->req.nheaders; i++) {
        const sv_http_header_t *h = &c->x->req.headers[i];
        if (strcasecmp(c->x->rbuf.data + h->name.off, name) != 0)
            continue;
        const char *v = h->value.len ? c->x->rbuf.data + h->value.off : "";
        size_t vl = h->value.len;
        if (vl + 2 >= cap) {
            v += vl - (cap - 3);
            vl = cap - 3;
        }
        size_t need = (len ? 2 : 0) + vl;
        if (len + need >= cap) {
            /* keep the right end: the hops nearest us decide */
            size_t drop = len + need - (cap - 1);
            memmove(out, out + drop, len - drop);
            len -= drop;
        }
        if (len) {
            memcpy(out + len, ", ", 2);
            len += 2;
        }
        memcpy(out + len, v, vl);
        len += vl;
    }
    out[len] = '\0';
    return len;
}

/* Into c->x->fwd: the client, or NO_FWD when the header does not name one. */
static void forwarded(sv_conn_t *c, const sv_remote_t *r, const char *peer)
{
    snprintf(c->x->fwd, sizeof(c->x->fwd), "%s", NO_FWD);
    if (!c->is_unix && !sv_cidr_contains_text(r->trusted, r->ntrusted, peer))
        return; /* anyone can write the header: only a trusted proxy's is believed */
    char v[FWD_MAX];
    size_t len = join_fields(c, r->header, v, sizeof(v));
    char ip[INET6_ADDRSTRLEN];
    if (len == 0 || sv_xff_client(v, len, r->trusted, r->ntrusted, ip, sizeof(ip)) < 0)
        return;
    if (strchr(ip, ':'))
        snprintf(c->x->fwd, sizeof(c->x->fwd), "[%s]", ip);
    else
        snprintf(c->x->fwd, sizeof(c->x->fwd), "%s", ip);
}

const char *serval_request_peer(const serval_request_t *req)
{
    sv_conn_t *c = CONN(req);
    const sv_remote_t *r = c->srv->o.remote;
    if (r && r->value[0])
        return r->value;
    const char *peer = conn_peer(c);
    if (!r || !r->header[0] || c->x == NULL)
        return peer; /* no request on the connection: no header to believe */
    if (!c->x->fwd[0])
        forwarded(c, r, peer);
    return strcmp(c->x->fwd, NO_FWD) ? c->x->fwd : peer;
}

void sv_remote_log_host(sv_conn_t *c, char *out, size_t cap)
{
    const char *peer = serval_request_peer((serval_request_t *)c);
    const char *start = peer, *end = peer + strlen(peer);
    if (peer[0] == '[') {
        const char *close = strchr(peer, ']');
        if (close) {
            start = peer + 1;
            end = close;
        }
    } else {
        const char *colon = strchr(peer, ':');
        if (colon && !strchr(colon + 1, ':'))
            end = colon; /* "1.2.3.4:5678"; a bare IPv6 address or a fixed value stays whole */
    }
    snprintf(out, cap, "%.*s", (int)(end - start), start);
}
