/*
 * io.c: how a connection's bytes move when they do not go straight through
 * recv/send: through its TLS object on an ssl:// listener (src/tls). conn.c
 * calls these at its I/O points; the plain path stays in conn.c.
 */
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/err.h"
#include "server/internal.h"
#include "tls/tls.h"

/* TLS has no sendfile: a file goes out through a buffer of this size. */
#define TLS_FILE_CHUNK 16384

const char *serval_request_scheme(const serval_request_t *req)
{
    return ((const sv_conn_t *)(const void *)req)->tls ? "https" : "http";
}

void *sv_io_tls_new(struct sv_tls *tls, sv_conn_t *c, int fd)
{
    return sv_tls_conn_new(tls, fd, &c->drained);
}

void sv_io_tls_nodelay(sv_conn_t *c, struct sv_tls *tls)
{
    if (sv_tls_nodelay_inherited(tls))
        c->nodelay = true; /* from the listener (sv_tls_listener_ready): no setsockopt of its own */
    else
        sv_conn_nodelay(c);
}

void sv_io_close_tls(sv_conn_t *c)
{
    if (!c->tls)
        return;
    sv_tls_conn_shutdown(c->tls); /* close_notify, never waiting for the client's */
    sv_tls_conn_free(c->tls);
    c->tls = NULL;
}

/*
 * One TLS read into rbuf (space bytes free). The handshake runs inside it.
 * A short TLS read says nothing about the socket (TLS hands data over one
 * record at a time); what does is the recv under it, so the TLS layer sets
 * c->drained when that recv came back short (as the plain path does) or
 * with EAGAIN. Records it read ahead and has not handed over yet clear the
 * flag again: with edge-triggered epoll they would otherwise wait for an
 * event that never comes.
 */
int sv_io_tls_read(sv_conn_t *c, size_t space, bool *want_out)
{
    ssize_t n = sv_tls_recv(c->tls, c->x->rbuf.data + c->x->rbuf.len, space, want_out);
    if (n <= 0)
        return (int)n;
    if (c->drained && !sv_tls_drained(c->tls, &c->drained))
        c->drained = false;
    c->x->rbuf.len += (size_t)n;
    c->x->rbuf.data[c->x->rbuf.len] = '\0';
    return (int)n;
}

ssize_t sv_io_send(sv_conn_t *c, const void *data, size_t len)
{
    if (c->tls) {
        bool want_out = false; /* EPOLLOUT is armed by the caller whenever a write would block */
        return sv_tls_send(c->tls, data, len, &want_out);
    }
    ssize_t n;
    do {
        n = send(c->fd, data, len, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? SV_ERRNO() : n;
}

void sv_io_shut_wr(sv_conn_t *c)
{
    if (c->tls)
        sv_tls_conn_shutdown(c->tls);
    shutdown(c->fd, SHUT_WR);
}

int sv_io_file_refill(sv_conn_t *c)
{
    size_t want = c->x->file_left > TLS_FILE_CHUNK ? TLS_FILE_CHUNK : (size_t)c->x->file_left;
    sv_buf_reset(&c->x->out);
    c->x->out_off = 0;
    if (sv_buf_reserve(&c->x->out, want) < 0)
        return -ENOMEM;
    ssize_t n;
    do {
        n = pread(c->x->file_fd, c->x->out.data, want, (off_t)c->x->file_off);
    } while (n < 0 && errno == EINTR);
    if (n <= 0)
        return -EIO; /* the file shrank under us */
    c->x->out.len = (size_t)n;
    c->x->file_off += n;
    c->x->file_left -= n;
    return 0;
}
