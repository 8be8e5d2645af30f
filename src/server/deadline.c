/*
 * deadline.c: app_timeout, and the forensics of a request that timed out or
 * crashed.
 *
 * Who may write to the client's socket. A call opens its thread's deadline
 * slot (DL_OPEN). The app's first byte towards the socket (a streamed write)
 * moves it to DL_SENT; the main thread's tick, finding the call past its
 * deadline while still DL_OPEN, moves it to DL_TAKEN and sends the 504 itself.
 * Both moves happen under the slot's mutex, so exactly one side ever writes.
 * The stuck thread keeps owning the connection (its fd number is not closed
 * under it, so no later connection can receive its bytes); the tick only shuts
 * the socket down, which makes the thread's own reads and writes fail. When
 * the call returns, if ever, the thread finds DL_TAKEN, drops its response and
 * closes the connection.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "core/time.h"
#include "server/internal.h"

#define BT_WAIT_MS 200

static const char resp_504[] = "HTTP/1.1 504 Gateway Timeout\r\nContent-Type: text/plain\r\nContent-Length: 16\r\n"
                               "Connection: close\r\n\r\nGateway Timeout\n";
#define RESP_504_HEAD_LEN (sizeof(resp_504) - 1 - 16) /* without the body, for HEAD */

void sv_deadline_thread_init(sv_thread_t *t)
{
    pthread_mutex_init(&t->dl.mu, NULL);
}

static void request_line(sv_conn_t *c, char *out, size_t cap)
{
    snprintf(out, cap, "%s %s", serval_request_method((serval_request_t *)c),
             serval_request_target((serval_request_t *)c));
}

void sv_deadline_enter(sv_server_t *s, sv_thread_t *t, sv_conn_t *c)
{
    t->app_conn = c;
    if (!s->o.app_timeout_ms) {
        c->x->app_deadline_ms = 0;
        return;
    }
    int64_t now = sv_now_ms();
    c->x->app_thread = t;
    c->x->app_deadline_ms = now + s->o.app_timeout_ms;
    pthread_mutex_lock(&t->dl.mu);
    t->dl.state = DL_OPEN;
    t->dl.expired = false;
    t->dl.start_ms = now;
    t->dl.conn = c;
    t->dl.head = c->x->req.method == HTTP_HEAD;
    request_line(c, t->dl.line, sizeof(t->dl.line));
    pthread_mutex_unlock(&t->dl.mu);
}

bool sv_deadline_leave(sv_server_t *s, sv_thread_t *t)
{
    t->app_conn = NULL;
    if (!s->o.app_timeout_ms)
        return false;
    pthread_mutex_lock(&t->dl.mu);
    bool taken = t->dl.state == DL_TAKEN;
    if (t->dl.expired)
        atomic_fetch_sub(&s->n_expired, 1);
    t->dl.state = DL_IDLE;
    t->dl.expired = false;
    t->dl.conn = NULL;
    pthread_mutex_unlock(&t->dl.mu);
    return taken;
}

bool sv_deadline_claim(sv_conn_t *c)
{
    if (!c->x->app_deadline_ms || !c->x->app_thread)
        return true;
    sv_thread_t *t = c->x->app_thread;
    pthread_mutex_lock(&t->dl.mu);
    if (t->dl.state == DL_OPEN)
        t->dl.state = DL_SENT;
    bool ok = t->dl.state == DL_SENT;
    pthread_mutex_unlock(&t->dl.mu);
    return ok;
}

int64_t serval_request_deadline_ms(const serval_request_t *req)
{
    const sv_conn_t *c = (const sv_conn_t *)req;
    if (!c->x->app_deadline_ms)
        return -1;
    int64_t left = c->x->app_deadline_ms - sv_now_ms();
    return left > 0 ? left : 0;
}

static void who(char *out, size_t cap)
{
    const serval_context_t *ctx = serval_context();
    if (ctx->worker_index >= 0)
        snprintf(out, cap, "worker %d (PID: %d)", ctx->worker_index, (int)getpid());
    else
        snprintf(out, cap, "PID %d", (int)getpid());
}

static void log_stack(sv_thread_t *t, const char *why)
{
    int n = sv_bt_capture_thread(&t->bt, atomic_load(&t->os_tid), BT_WAIT_MS);
    if (n <= 0) {
        sv_log_error("!   (no stack: the thread did not answer within %d ms)", BT_WAIT_MS);
        return;
    }
    sv_log_error("!   stack of thread TID-%d (%s):", atomic_load(&t->os_tid), why);
    sv_bt_log(&t->bt.bt, "!     ", true);
}

/* Under t->dl.mu: the call is past its deadline. Returns what the client got. */
static const char *expire_locked(sv_server_t *s, sv_thread_t *t)
{
    sv_conn_t *c = t->dl.conn;
    t->dl.expired = true;
    atomic_fetch_add(&s->n_expired, 1);
    atomic_fetch_add(&s->app_timeouts, 1);
    const char *what = "the response had begun: connection closed";
    if (t->dl.state == DL_OPEN) {
        t->dl.state = DL_TAKEN;
        /* nothing else is in the socket's send queue: this goes out whole or not at all */
        size_t len = t->dl.head ? RESP_504_HEAD_LEN : sizeof(resp_504) - 1;
        if (send(c->fd, resp_504, len, MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t)len)
            what = "sent 504";
        else
            what = "504 not delivered (client gone)";
    }
    /* the thread's later reads see EOF and its writes EPIPE; its fd stays its own */
    shutdown(c->fd, SHUT_RDWR);
    return what;
}

static void check_thread(sv_server_t *s, sv_thread_t *t, int64_t now)
{
    char line[256], whom[64];
    const char *what = NULL;
    int64_t start = 0;
    pthread_mutex_lock(&t->dl.mu);
    if ((t->dl.state == DL_OPEN || t->dl.state == DL_SENT) && !t->dl.expired &&
        now - t->dl.start_ms >= s->o.app_timeout_ms) {
        what = expire_locked(s, t);
        start = t->dl.start_ms;
        memcpy(line, t->dl.line, sizeof(line));
    }
    pthread_mutex_unlock(&t->dl.mu);
    if (!what)
        return;
    who(whom, sizeof(whom));
    sv_log_error("! app_timeout: %s: \"%s\" ran %.3f s in the app (app_timeout %.3f s): %s", whom, line,
                 (double)(now - start) / 1000.0, (double)s->o.app_timeout_ms / 1000.0, what);
    log_stack(t, "inside the app");
    if (serval_context()->role == SERVAL_ROLE_SINGLE)
        sv_log_error("! app_timeout in single mode: the thread stays in that call until it returns; the other "
                     "threads serve on (workers >= 1 replace the whole process instead)");
}

/* A serving thread faulted and waits in its handler: log its request and stack, then let it die. */
static void log_fault(sv_thread_t *t, int sig)
{
    char whom[64], line[256] = "";
    who(whom, sizeof(whom));
    sv_conn_t *c = t->app_conn; /* written by that thread before the fault, frozen since */
    int64_t since = atomic_load_explicit(&t->app_since_ns, memory_order_relaxed);
    if (c)
        request_line(c, line, sizeof(line));
    if (c && since)
        sv_log_error("! crash: %s: signal %d (%s) in the app while serving \"%s\" (%.3f s in the app)", whom, sig,
                     strsignal(sig), line, (double)(sv_now_ns() - since) / 1e9);
    else
        sv_log_error("! crash: %s: signal %d (%s) on serving thread TID-%d outside the app", whom, sig,
                     strsignal(sig), atomic_load(&t->os_tid));
    sv_log_error("!   stack of thread TID-%d:", atomic_load(&t->os_tid));
    sv_bt_log(&t->bt.crash, "!     ", true);
}

void sv_deadline_tick(sv_server_t *s, int64_t now_ms)
{
    for (int i = 0; i < s->o.max_threads; i++) {
        sv_thread_t *t = &s->threads[i];
        if (atomic_load(&t->in_use) == SV_SLOT_FREE)
            continue;
        int sig = atomic_load_explicit(&t->bt.fault, memory_order_acquire);
        if (sig > 0 && !atomic_load(&t->bt.fault_logged)) {
            log_fault(t, sig);
            atomic_store_explicit(&t->bt.fault_logged, 1, memory_order_release);
        }
        if (s->o.app_timeout_ms)
            check_thread(s, t, now_ms);
    }
}
