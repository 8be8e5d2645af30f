/*
 * conn.c: one client connection of a serving process (internal.h): its
 * slot, reading and parsing, dispatch to the app, response completion
 * (response_done), lingering close, and the main thread's sweep of its
 * deadlines (idle, slow clients, a drain's idle keep-alive connections).
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/time.h"
#include "server/internal.h"

#define KEEP 0
#define CLOSED 1
#define PROGRESS 2
#define NEED_MORE 3

#define RBUF_INITIAL 4096
#define LINGER_MS 2000
/* A drain closes keep-alive connections only once they have been idle this long. */
#define DRAIN_GRACE_MS 1000
#define NO_DEADLINE INT64_MAX
/* While output waits for a slow reader, an app's writes try the socket again only every this many spooled bytes. */
#define SPOOL_RETRY_BYTES 262144

/* ---- slots ------------------------------------------------------------ */

sv_conn_t *sv_conn_slot(sv_server_t *s, int fd, bool create)
{
    size_t ci = (size_t)fd / SV_CONN_CHUNK;
    if (fd < 0 || ci >= s->n_chunks)
        return NULL;
    sv_conn_t *chunk = atomic_load(&s->chunks[ci]);
    if (!chunk && create) {
        pthread_mutex_lock(&s->grow_mu);
        chunk = atomic_load(&s->chunks[ci]);
        if (!chunk) {
            chunk = calloc(SV_CONN_CHUNK, sizeof(sv_conn_t));
            for (int k = 0; chunk && k < SV_CONN_CHUNK; k++) {
                chunk[k].fd = -1;
                chunk[k].srv = s;
            }
            atomic_store(&s->chunks[ci], chunk);
        }
        pthread_mutex_unlock(&s->grow_mu);
    }
    return chunk ? &chunk[fd % SV_CONN_CHUNK] : NULL;
}

void sv_conn_set_phase(sv_conn_t *c, conn_phase_t ph, int64_t deadline_ms, int64_t now_ms)
{
    if (atomic_load_explicit(&c->phase, memory_order_relaxed) != (int)ph) {
        atomic_store_explicit(&c->phase_since_ms, now_ms, memory_order_relaxed);
        atomic_store_explicit(&c->phase, (int)ph, memory_order_relaxed);
    }
    atomic_store_explicit(&c->deadline_ms, deadline_ms, memory_order_relaxed);
}

static void reset_request(sv_conn_t *c)
{
    c->x->head_done = c->x->msg_done = false;
    c->x->continue_sent = false;
    sv_body_release(c);
    c->x->req_start_ms = 0;
}

/* The slot's fields for a new connection; its exchange comes with the first read (sv_server_lend_exch). */
static void init_conn(sv_server_t *s, sv_conn_t *c, int fd, bool is_unix, int64_t now_ms)
{
    c->fd = fd;
    c->is_unix = is_unix;
    c->srv = s;
    c->x = NULL;
    c->drained = false;
    c->served = 0;
    c->peer[0] = '\0';
    c->proxy_wait = s->o.remote && s->o.remote->proxy_protocol; /* set_remote_address proxy_protocol: */
    c->reset_on_close = false;
    c->bytes_sent = c->bytes_recv = 0;
    c->last_recv_ms = now_ms;
    c->out_armed = false;
    c->nodelay = is_unix;
    sv_conn_set_phase(c, PH_NEW, now_ms + s->o.first_data_timeout_ms, now_ms);
    int n = atomic_load(&s->n_conns); /* the acceptor counted it */
    int m = atomic_load(&s->conns_max);
    while (n > m && !atomic_compare_exchange_weak(&s->conns_max, &m, n)) {
    }
}

static int conn_run(sv_conn_t *c, sv_thread_t *t);
static int conn_close(sv_conn_t *c);
static void release_requeue(sv_server_t *s, sv_conn_t *c, uint64_t st, bool requeue);

/* Register an owned connection with epoll, then let go of it (running again if an event came in between). */
static int register_and_release(sv_server_t *s, sv_conn_t *c, sv_thread_t *t, uint32_t gen)
{
    /* EPOLLOUT only once a write blocks: armed now it would fire at once, for nothing */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET | (c->out_armed ? EPOLLOUT : 0),
                             .data.u64 = ((uint64_t)gen << 32) | (uint32_t)c->fd};
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        int e = SV_ERRNO();
        conn_close(c);
        return e;
    }
    for (;;) {
        uint64_t owned = C_MAKE(gen, C_OPEN | C_OWNED);
        if (atomic_compare_exchange_strong(&c->state, &owned, C_MAKE(gen, C_OPEN)))
            return 0;
        if (!t) {
            /* an event came to a thread that saw us owning it; not a serving thread: hand it back */
            release_requeue(s, c, C_MAKE(gen, C_OPEN), true);
            return 0;
        }
        atomic_fetch_and(&c->state, ~(uint64_t)C_PENDING);
        c->drained = false;
        if (conn_run(c, t) == CLOSED)
            return 0;
    }
}

int sv_conn_accept(sv_server_t *s, sv_thread_t *t, int fd, bool is_unix, struct sv_tls *tls, int64_t now_ms)
{
    sv_conn_t *c = sv_conn_slot(s, fd, true);
    /*
     * The thread that closed this fd's previous connection may not have let
     * go yet: wait before touching the slot (its fields are the owner's until
     * then; the acquire here orders them after that thread's last writes).
     */
    while (c && (atomic_load(&c->state) & C_OWNED))
        sched_yield();
    void *ssl = c && tls ? sv_io_tls_new(tls, c, fd) : NULL;
    if (!c || (tls && !ssl)) {
        close(fd);
        atomic_fetch_sub(&s->n_conns, 1);
        return -ENOMEM;
    }
    c->tls = ssl; /* the TLS handshake runs inside the first reads, non-blocking like any read */
    uint32_t gen = C_GEN(atomic_load(&c->state));
    init_conn(s, c, fd, is_unix, now_ms);
    /*
     * TCP_NODELAY from the start on TLS (usually inherited from the
     * listener): small TLS writes follow one another (a close_notify behind
     * the response, a ticket sent alone), and with Nagle each would wait for
     * the client's (delayed) ACK, up to 40 ms. nginx does the same.
     */
    if (ssl)
        sv_io_tls_nodelay(c, tls);
    atomic_store_explicit(&c->state, C_MAKE(gen, C_OPEN | C_OWNED), memory_order_release);
    /*
     * On a serving thread, answer at once: a TCP listener defers accept until
     * the request's first bytes are in (TCP_DEFER_ACCEPT), so a Connection:
     * close request never touches epoll at all.
     */
    if (t && !is_unix && conn_run(c, t) == CLOSED)
        return 0;
    return register_and_release(s, c, t, gen);
}

/* Called by the owner; ownership ends with the slot's next generation. */
static int conn_close(sv_conn_t *c)
{
    sv_server_t *s = c->srv;
    uint32_t gen = C_GEN(atomic_load(&c->state));
    atomic_store(&c->state, C_MAKE(gen + 1, C_OWNED));
    sv_conn_set_phase(c, PH_FREE, NO_DEADLINE, 0);
    if (c->x) {
        sv_out_release(c);
        if (c->x->file_fd >= 0)
            close(c->x->file_fd);
        c->x->file_fd = -1;
        c->x->res_pending = false;
        sv_body_release(c);
        sv_server_idle_exch(c); /* its buffers go to this thread's cache */
    }
    if (c->reset_on_close) {
        /* a client cut for reading too slowly: drop what the kernel still queues for it (RST), not keep it for minutes */
        struct linger l = {.l_onoff = 1, .l_linger = 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
        c->reset_on_close = false;
    }
    sv_io_close_tls(c);
    close(c->fd);
    c->fd = -1;
    atomic_fetch_sub(&s->n_conns, 1);
    atomic_store(&c->state, C_MAKE(gen + 1, 0));
    return CLOSED;
}

/* ---- I/O ---------------------------------------------------------------- */

static void arm_out(sv_conn_t *c);

int sv_conn_read(sv_conn_t *c)
{
    if (!c->x && sv_server_lend_exch(c) < 0)
        return -ENOMEM;
    size_t limit = c->srv->o.limits.max_header_size + 16384;
    size_t room = c->x->rbuf.cap ? c->x->rbuf.cap - c->x->rbuf.len - 1 : 0;
    if (room < 1024 && c->x->rbuf.cap < limit) {
        if (sv_buf_reserve(&c->x->rbuf, c->x->rbuf.cap ? c->x->rbuf.cap : RBUF_INITIAL) < 0)
            return -ENOMEM;
    }
    size_t space = c->x->rbuf.cap - c->x->rbuf.len - 1;
    if (space == 0)
        return -ENOBUFS;
    if (c->tls) {
        /* drained: set by the TLS layer on a short recv, kept only if it holds nothing more (sv_io_tls_read) */
        bool want_out = false;
        int r = sv_io_tls_read(c, space, &want_out);
        if (want_out)
            arm_out(c);
        if (r > 0) {
            c->bytes_recv += r;
            c->last_recv_ms = sv_now_ms();
        }
        return r;
    }
    ssize_t n;
    do {
        n = recv(c->fd, c->x->rbuf.data + c->x->rbuf.len, space, 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EAGAIN ? -EAGAIN : SV_ERRNO();
    if (n == 0)
        return 0;
    c->bytes_recv += n;
    c->last_recv_ms = sv_now_ms();
    c->x->rbuf.len += (size_t)n;
    c->x->rbuf.data[c->x->rbuf.len] = '\0';
    if ((size_t)n < space)
        c->drained = true;
    return (int)n;
}

void sv_conn_nodelay(sv_conn_t *c)
{
    /*
     * A first response goes out in one write with nothing unacknowledged, so
     * Nagle never delays it; back-to-back writes (keep-alive, pipelining,
     * streaming) would wait for an ACK without this.
     */
    if (c->nodelay)
        return;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->nodelay = true;
}

/* A write blocked: from now on the connection also wants writable edges. */
static void arm_out(sv_conn_t *c)
{
    if (c->out_armed)
        return;
    c->out_armed = true;
    uint64_t st = atomic_load(&c->state);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                             .data.u64 = ((uint64_t)C_GEN(st) << 32) | (uint32_t)c->fd};
    epoll_ctl(c->srv->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void sent(sv_conn_t *c, ssize_t n)
{
    c->bytes_sent += n;
    c->x->last_progress_ms = sv_now_ms();
}

int sv_conn_flush(sv_conn_t *c)
{
    for (;;) {
        while (c->x->out_off < c->x->out.len) {
            ssize_t n = sv_io_send(c, c->x->out.data + c->x->out_off, c->x->out.len - c->x->out_off);
            if (n < 0)
                return n == -EAGAIN ? 0 : (int)n;
            c->x->out_off += (size_t)n;
            sent(c, n);
        }
        if (!c->tls || c->x->file_fd < 0 || c->x->file_left <= 0)
            break;
        /* TLS has no sendfile: the file (or the spool) goes out through out */
        int64_t before = c->x->file_left;
        int r = sv_io_file_refill(c);
        if (r < 0)
            return r;
        if (c->x->spill)
            sv_out_spool_sent(c, before - c->x->file_left);
    }
    while (c->x->file_fd >= 0 && c->x->file_left > 0) {
        off_t off = (off_t)c->x->file_off;
        size_t chunk = c->x->file_left > (1 << 30) ? (1 << 30) : (size_t)c->x->file_left;
        ssize_t n = sendfile(c->fd, c->x->file_fd, &off, chunk);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN ? 0 : SV_ERRNO();
        }
        if (n == 0)
            return -EIO; /* the file shrank under us */
        c->x->file_off += n;
        c->x->file_left -= n;
        if (c->x->spill)
            sv_out_spool_sent(c, n);
        sent(c, n);
    }
    sv_buf_reset(&c->x->out);
    c->x->out_off = 0;
    c->x->out_blocked = false;
    if (c->x->spill) {
        /* all of the spool is out: start it over rather than let it grow */
        if (c->x->file_off > 0 && ftruncate(c->x->file_fd, 0) == 0)
            c->x->file_off = 0;
    } else if (c->x->file_fd >= 0) {
        close(c->x->file_fd);
        c->x->file_fd = -1;
    }
    return 1;
}

int64_t sv_conn_pending(const sv_conn_t *c)
{
    return (int64_t)(c->x->out.len - c->x->out_off) + (c->x->file_fd >= 0 ? c->x->file_left : 0);
}

/*
 * Bytes the client has acknowledged: what we wrote minus what still sits in
 * the socket's send queue. The socket's own buffer can hold megabytes, so
 * bytes written say nothing of a client's pace while it drains them.
 */
static int64_t delivered(const sv_conn_t *c)
{
    int queued = 0;
    if (ioctl(c->fd, SIOCOUTQ, &queued) < 0 || queued < 0)
        queued = 0;
    return c->bytes_sent - queued;
}

/* Output waits for the client from now on: the rate window starts here. */
static void note_blocked(sv_conn_t *c, int64_t now)
{
    if (c->x->out_blocked)
        return;
    c->x->out_blocked = true;
    c->x->spool_at_try = c->x->file_left;
    c->x->delivered_seen = delivered(c);
    c->x->wr_rate = (sv_rate_t){.ms = now, .bytes = c->x->delivered_seen};
}

/*
 * A minimum data rate over windows of the grace period: true when the
 * window that just ended moved fewer than rate * window bytes; a window that
 * passed starts the next one.
 */
static bool rate_failed(sv_rate_t *r, int64_t bytes, int64_t now, int64_t rate, int64_t window_ms)
{
    if (rate <= 0 || now - r->ms < window_ms)
        return false;
    if ((bytes - r->bytes) * 1000 < rate * (now - r->ms))
        return true;
    *r = (sv_rate_t){.ms = now, .bytes = bytes};
    return false;
}

static int64_t rate_check_at(const sv_rate_t *r, int64_t rate, int64_t window_ms)
{
    return rate > 0 ? r->ms + window_ms : NO_DEADLINE;
}

/* The client reads the pending output too slowly: nothing acknowledged for write_timeout, or below the rate. */
static bool write_too_slow(sv_conn_t *c, int64_t now)
{
    const sv_server_opts_t *o = &c->srv->o;
    int64_t d = delivered(c);
    if (d > c->x->delivered_seen) {
        c->x->delivered_seen = d;
        c->x->last_progress_ms = now;
    }
    if (now - c->x->last_progress_ms >= o->write_timeout_ms)
        return true;
    return rate_failed(&c->x->wr_rate, d, now, o->min_response_data_rate, o->data_rate_grace_ms);
}

static int64_t write_deadline(const sv_conn_t *c)
{
    const sv_server_opts_t *o = &c->srv->o;
    int64_t a = c->x->last_progress_ms + o->write_timeout_ms;
    int64_t b = rate_check_at(&c->x->wr_rate, o->min_response_data_rate, o->data_rate_grace_ms);
    return a < b ? a : b;
}

/* Blocked, and the spool grew little since the last try: another send would only say EAGAIN again. */
static bool flush_pointless(sv_conn_t *c, int64_t keep)
{
    if (keep != INT64_MAX || !c->x->out_blocked || !c->x->spill)
        return false;
    if (c->x->file_left - c->x->spool_at_try < SPOOL_RETRY_BYTES)
        return true;
    c->x->spool_at_try = c->x->file_left;
    return false;
}

int sv_conn_flush_wait(sv_conn_t *c, int64_t keep)
{
    if (!c->x->out_blocked)
        c->x->last_progress_ms = sv_now_ms(); /* the no-progress clock runs from the first wait, not each write */
    for (;;) {
        bool tried = !flush_pointless(c, keep);
        int r = tried ? sv_conn_flush(c) : 0;
        if (r < 0)
            return r == -ECONNRESET ? -EPIPE : r;
        if (r > 0)
            return 0;
        if (tried) {
            int64_t now = sv_now_ms();
            note_blocked(c, now);
            if (write_too_slow(c, now))
                return -ETIMEDOUT;
        }
        if (sv_conn_pending(c) <= keep)
            return 0;
        int64_t now = sv_now_ms();
        int64_t left = write_deadline(c) - now;
        struct pollfd p = {.fd = c->fd, .events = POLLOUT};
        poll(&p, 1, (int)(left > 1000 ? 1000 : left < 1 ? 1 : left));
    }
}

static bool has_output(const sv_conn_t *c)
{
    return c->x && (c->x->out_off < c->x->out.len || (c->x->file_fd >= 0 && c->x->file_left > 0));
}

/* ---- parsing and dispatch ----------------------------------------------- */

static void begin_request(sv_conn_t *c, int64_t now)
{
    sv_http_parser_begin(&c->x->parser, &c->x->req, sv_body_put, c);
    c->x->req_start_ms = now;
    sv_conn_set_phase(c, PH_HEAD, now + c->srv->o.first_data_timeout_ms, now);
}

/* Keep the head in place and drop body bytes the parser has copied out. */
static void compact_body(sv_conn_t *c)
{
    size_t head = c->x->req.head_len;
    if (c->x->rpos > head) {
        memmove(c->x->rbuf.data + head, c->x->rbuf.data + c->x->rpos, c->x->rbuf.len - c->x->rpos);
        c->x->rbuf.len -= c->x->rpos - head;
        c->x->rpos = head;
        c->x->rbuf.data[c->x->rbuf.len] = '\0';
    }
}

int sv_conn_parse(sv_conn_t *c)
{
    if (c->x->rpos >= c->x->rbuf.len)
        return SV_HTTP_MORE;
    size_t used = 0;
    size_t off = c->x->head_done ? 0 : c->x->rpos;
    sv_http_result_t r = sv_http_parse(&c->x->parser, c->x->rbuf.data + c->x->rpos, c->x->rbuf.len - c->x->rpos, off, &used);
    c->x->rpos += used;
    if (r == SV_HTTP_DONE) {
        if (!c->x->head_done) {
            c->x->head_done = true;
            sv_req_prepare(c);
        }
        c->x->msg_done = true;
    } else if (r == SV_HTTP_HEAD) {
        c->x->head_done = true;
        sv_req_prepare(c);
    }
    if (c->x->head_done && r != SV_HTTP_ERROR)
        compact_body(c);
    return (int)r;
}

static void run_out_of_band(sv_server_t *s)
{
    sv_app_t *app = s->o.app;
    if (sv_app_has_hook(app, SV_HOOK_OUT_OF_BAND) && atomic_load(&s->n_busy) == 0)
        sv_app_hook(app, SV_HOOK_OUT_OF_BAND, serval_context()->worker_index);
}

/* Returns CLOSED when app_timeout answered the client first (nothing of the app's may follow), else PROGRESS. */
static int dispatch(sv_conn_t *c, sv_thread_t *t)
{
    sv_server_t *s = c->srv;
    int64_t now = sv_now_ms();
    sv_conn_set_phase(c, PH_APP, NO_DEADLINE, now);
    c->x->res_pending = true;
    sv_res_begin(c);
    int64_t t0 = sv_now_ns();
    sv_server_app_enter(s, t, c);
    s->o.app->tab->handle(s->o.app->data, (serval_request_t *)c, (serval_response_t *)c);
    int64_t ns = sv_now_ns() - t0;
    if (sv_server_app_leave(s, t, ns)) {
        atomic_fetch_add_explicit(&t->requests, 1, memory_order_relaxed);
        sv_buf_reset(&c->x->out);
        c->x->out_off = 0;
        c->reset_on_close = false; /* the 504 may still be in the kernel's queue: a reset would drop it */
        return conn_close(c);
    }
    sv_res_finish(c);
    atomic_fetch_add_explicit(&t->requests, 1, memory_order_relaxed);
    c->served++;
    if (s->o.log_requests)
        sv_req_log(c, ns);
    run_out_of_band(s);
    return PROGRESS;
}

/* The client waits for a 100 before it sends the body: queue it with the output. */
static void send_continue(sv_conn_t *c)
{
    if (!c->x->continue_sent && c->x->req.expect_continue && !c->x->msg_done)
        sv_http_write_continue(&c->x->out);
    c->x->continue_sent = true;
}

/* One parse step on buffered bytes; runs the app once the request is whole. */
static int step(sv_conn_t *c, sv_thread_t *t)
{
    int64_t now = sv_now_ms();
    if (c->x->req_start_ms == 0)
        begin_request(c, now);
    bool had_head = c->x->head_done;
    int r = sv_conn_parse(c);
    if (r == SV_HTTP_ERROR) {
        sv_res_error(c, c->x->parser.error_status, c->x->parser.error_reason);
        return PROGRESS;
    }
    if (r == SV_HTTP_DONE)
        return dispatch(c, t);
    if (!c->x->head_done)
        return NEED_MORE;
    if (!had_head) {
        send_continue(c);
        c->x->rd_rate = (sv_rate_t){.ms = now, .bytes = c->bytes_recv};
        sv_conn_set_phase(c, PH_BODY, now + c->srv->o.first_data_timeout_ms, now);
    }
    return r == SV_HTTP_HEAD ? PROGRESS : NEED_MORE;
}

/* A body stalls (first_data_timeout since its last byte) or arrives below min_request_data_rate. */
static bool body_too_slow(sv_conn_t *c, int64_t now)
{
    const sv_server_opts_t *o = &c->srv->o;
    if (now - c->last_recv_ms >= o->first_data_timeout_ms)
        return true;
    return rate_failed(&c->x->rd_rate, c->bytes_recv, now, o->min_request_data_rate, o->data_rate_grace_ms);
}

static int64_t body_deadline(const sv_conn_t *c)
{
    const sv_server_opts_t *o = &c->srv->o;
    int64_t a = c->last_recv_ms + o->first_data_timeout_ms;
    int64_t b = rate_check_at(&c->x->rd_rate, o->min_request_data_rate, o->data_rate_grace_ms);
    return a < b ? a : b;
}

/* Nothing more can happen until the client sends or reads: set the timeout. */
static void arm_wait(sv_conn_t *c, int64_t now)
{
    sv_server_t *s = c->srv;
    int ph = atomic_load_explicit(&c->phase, memory_order_relaxed);
    if (ph == PH_HEAD) {
        int64_t a = now + s->o.first_data_timeout_ms;
        int64_t b = c->x->req_start_ms + s->o.request_timeout_ms;
        sv_conn_set_phase(c, PH_HEAD, a < b ? a : b, now);
    } else if (ph == PH_BODY) {
        sv_conn_set_phase(c, PH_BODY, body_deadline(c), now);
    }
}

static bool must_linger(const sv_conn_t *c)
{
    return c->x->rpos < c->x->rbuf.len || (c->x->head_done && !c->x->msg_done) || c->x->parser.error_status;
}

/*
 * The one place a response completes, whatever its framing: its last byte
 * is out (or it had none to send). Then the next request, a close, or a
 * lingering close. The connection closes only when the response said so
 * (close_after, fixed when its head was written): a drain that began after
 * the head went out without "Connection: close" leaves the connection open
 * for the request the client may already be sending, which is answered
 * with "Connection: close".
 */
static int response_done(sv_conn_t *c)
{
    sv_server_t *s = c->srv;
    int64_t now = sv_now_ms();
    c->x->res_pending = false;
    sv_out_release(c);
    if (c->x->close_after) {
        if (!must_linger(c))
            return conn_close(c);
        sv_io_shut_wr(c);
        sv_body_release(c);
        sv_server_idle_exch(c); /* lingering needs no exchange: what comes in is dropped */
        sv_conn_set_phase(c, PH_LINGER, now + LINGER_MS, now);
        return KEEP;
    }
    sv_buf_consume(&c->x->rbuf, c->x->rpos);
    c->x->rpos = 0;
    reset_request(c);
    sv_conn_nodelay(c);
    sv_conn_set_phase(c, PH_IDLE, now + s->o.persistent_timeout_ms, now);
    return PROGRESS;
}

static int linger(sv_conn_t *c)
{
    char sink[4096];
    for (;;) {
        ssize_t n = recv(c->fd, sink, sizeof(sink), 0);
        if (n > 0)
            continue;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return KEEP;
        return conn_close(c);
    }
}

static int conn_run(sv_conn_t *c, sv_thread_t *t)
{
    if (c->proxy_wait) {
        int r = sv_remote_proxy(c); /* before any read: a PROXY header comes before TLS and HTTP */
        if (r <= 0)
            return r < 0 ? conn_close(c) : KEEP;
    }
    for (;;) {
        if (has_output(c)) {
            int r = sv_conn_flush(c);
            if (r < 0)
                return conn_close(c);
            if (r == 0) {
                int64_t now = sv_now_ms();
                note_blocked(c, now);
                arm_out(c);
                sv_conn_set_phase(c, PH_WRITE, write_deadline(c), now);
                return KEEP;
            }
            if (!c->x->res_pending && atomic_load_explicit(&c->phase, memory_order_relaxed) == PH_WRITE) {
                /* a 100 Continue that had to wait is out: back to waiting for the body */
                int64_t now = sv_now_ms();
                sv_conn_set_phase(c, PH_BODY, body_deadline(c), now);
            }
        }
        if (c->x && c->x->res_pending) {
            int r = response_done(c);
            if (r != PROGRESS)
                return r;
        }
        if (atomic_load_explicit(&c->phase, memory_order_relaxed) == PH_LINGER)
            return linger(c);
        if (c->x && c->x->rpos < c->x->rbuf.len) {
            int r = step(c, t);
            if (r == PROGRESS)
                continue;
            if (r == CLOSED)
                return r;
        }
        if (c->drained) {
            arm_wait(c, sv_now_ms());
            if (c->x && c->x->rbuf.len == 0 && atomic_load_explicit(&c->phase, memory_order_relaxed) <= PH_IDLE)
                sv_server_idle_exch(c); /* an idle connection holds no exchange, no buffer */
            return KEEP;
        }
        int n = sv_conn_read(c);
        if (n == -EAGAIN) {
            c->drained = true;
        } else if (n == -ENOBUFS) {
            sv_res_error(c, 431, "request header too large");
        } else if (n <= 0) {
            return conn_close(c);
        }
    }
}

/*
 * Take the connection an event (data: fd and generation) is for. NULL when
 * the event is stale (that connection is closed) or another thread owns it:
 * then C_PENDING tells the owner to run it again. Otherwise it is ours and
 * *st is its state from before we took it.
 */
static sv_conn_t *take_for_event(sv_server_t *s, uint64_t data, uint64_t *st)
{
    sv_conn_t *c = sv_conn_slot(s, (int)(uint32_t)data, false);
    uint32_t gen = (uint32_t)(data >> 32);
    if (!c)
        return NULL;
    uint64_t cur = atomic_load(&c->state);
    for (;;) {
        if (C_GEN(cur) != gen || !(cur & C_OPEN))
            return NULL;
        if (cur & C_OWNED) {
            if ((cur & C_PENDING) || atomic_compare_exchange_weak(&c->state, &cur, cur | C_PENDING))
                return NULL;
            continue;
        }
        if (atomic_compare_exchange_weak(&c->state, &cur, cur | C_OWNED)) {
            *st = cur;
            return c;
        }
    }
}

void sv_conn_on_event(sv_server_t *s, sv_thread_t *t, uint64_t data)
{
    uint64_t st;
    sv_conn_t *c = take_for_event(s, data, &st);
    if (!c)
        return;
    uint32_t gen = C_GEN(st);
    for (;;) {
        atomic_fetch_and(&c->state, ~(uint64_t)C_PENDING);
        c->drained = false;
        if (conn_run(c, t) == CLOSED)
            return;
        uint64_t owned = C_MAKE(gen, C_OPEN | C_OWNED);
        if (atomic_compare_exchange_strong(&c->state, &owned, C_MAKE(gen, C_OPEN)))
            return;
    }
}

/* ---- the sweeper (main thread) ------------------------------------------ */

static bool expired(sv_server_t *s, sv_conn_t *c, int64_t now)
{
    int ph = atomic_load_explicit(&c->phase, memory_order_relaxed);
    if (ph == PH_APP || ph == PH_FREE)
        return false;
    if (atomic_load_explicit(&c->deadline_ms, memory_order_relaxed) <= now)
        return true;
    return atomic_load_explicit(&s->draining, memory_order_relaxed) && (ph == PH_NEW || ph == PH_IDLE) &&
           now - atomic_load_explicit(&c->phase_since_ms, memory_order_relaxed) >= DRAIN_GRACE_MS;
}

/*
 * Let go of a connection taken only to look at it (st: its state before we
 * took it). Events that came meanwhile (C_PENDING) are given back to epoll
 * while we still own it: once released, another thread may close the fd and
 * a new connection may get its number.
 */
static void release_requeue(sv_server_t *s, sv_conn_t *c, uint64_t st, bool requeue)
{
    for (;;) {
        if (requeue)
            sv_server_requeue(s, c);
        uint64_t owned = st | C_OWNED;
        if (atomic_compare_exchange_strong(&c->state, &owned, st))
            return;
        atomic_fetch_and(&c->state, ~(uint64_t)C_PENDING);
        requeue = true;
    }
}

void sv_conn_hand_back(sv_server_t *s, uint64_t data)
{
    uint64_t st;
    sv_conn_t *c = take_for_event(s, data, &st);
    if (c)
        release_requeue(s, c, st, true);
}

/*
 * A drain closes connections that sit idle, but one whose request is in
 * (its thread has not got to it yet: a busy machine) is served: closing it
 * with its request unread would reset it. Handed back to epoll, which
 * gives it to a thread.
 */
static bool drain_but_readable(const sv_conn_t *c, int64_t now)
{
    if (atomic_load_explicit(&c->deadline_ms, memory_order_relaxed) <= now || (c->x && c->x->rbuf.len > 0))
        return false;
    char b;
    if (recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) != 1)
        return false;
    return true;
}

/*
 * A body or a response past its check time: the client is within its
 * bounds still (a rate window passed), so the deadline moves to the next
 * check.
 */
static bool still_in_time(sv_conn_t *c, int ph, int64_t now)
{
    char b;
    if (ph == PH_BODY && recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 1) {
        /* bytes wait unread: our threads are busy, the client is not slow; the window starts over */
        c->last_recv_ms = now;
        c->x->rd_rate = (sv_rate_t){.ms = now, .bytes = c->bytes_recv};
        sv_conn_set_phase(c, PH_BODY, body_deadline(c), now);
        return true;
    }
    if (ph == PH_BODY && !body_too_slow(c, now)) {
        sv_conn_set_phase(c, PH_BODY, body_deadline(c), now);
        return true;
    }
    if (ph == PH_WRITE && !write_too_slow(c, now)) {
        sv_conn_set_phase(c, PH_WRITE, write_deadline(c), now);
        return true;
    }
    return false;
}

void sv_conn_sweep(sv_server_t *s, sv_conn_t *c, int64_t now)
{
    if (!expired(s, c, now))
        return;
    uint64_t st = atomic_load(&c->state);
    if (!(st & C_OPEN) || (st & C_OWNED) || !atomic_compare_exchange_strong(&c->state, &st, st | C_OWNED))
        return;
    if (!expired(s, c, now) || drain_but_readable(c, now)) {
        release_requeue(s, c, st, expired(s, c, now));
        return;
    }
    int ph = atomic_load(&c->phase);
    if (still_in_time(c, ph, now)) {
        release_requeue(s, c, st, true);
        return;
    }
    if ((ph == PH_HEAD || ph == PH_BODY) && c->x && c->x->rbuf.len > 0) {
        /* Puma answers a request that stopped arriving with 408 */
        sv_res_error(c, 408, "request timeout");
        if (sv_conn_flush(c) > 0) {
            c->x->res_pending = false;
            /* the client may still be sending: read and drop that a while, or closing would reset the 408 */
            sv_io_shut_wr(c);
            sv_out_release(c);
            sv_body_release(c);
            sv_server_idle_exch(c);
            sv_conn_set_phase(c, PH_LINGER, now + LINGER_MS, now);
            release_requeue(s, c, st, true);
            return;
        }
    }
    if (ph == PH_WRITE)
        c->reset_on_close = true;
    conn_close(c);
}
