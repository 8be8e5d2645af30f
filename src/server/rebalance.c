/*
 * rebalance.c: moving keep-alive connections off a worker that holds
 * clearly more than its share (docs/timeouts.md, "Load balancing between
 * workers").
 *
 * New connections are steered by the load table (server.c), but a
 * keep-alive client stays on the worker that accepted it. After a phased
 * restart, a refork, a crash or a TTIN the reconnecting clients land on the
 * workers that were up at that moment and stay there, for hours behind an
 * nginx upstream pool. So a worker over its share closes a few of its
 * keep-alive connections at a response boundary: the response carries
 * "Connection: close", the connection closes once it is fully written, and
 * the client's next request goes through the listener, where the steering
 * sends it to the emptier worker (this worker has stepped aside: it sheds
 * only while it is out of the listener, so the clients do not come back).
 *
 * The main thread plans every SHED_PERIOD_MS (sv_rebalance_tick): how many
 * connections may be closed in the next period (shed_quota). Serving
 * threads take from the quota as responses are framed (sv_rebalance_shed),
 * only for a response whose length is known and with nothing of the client
 * buffered behind its request (pipelined requests are answered first).
 */
#include <sys/ioctl.h>

#include "core/log.h"
#include "server/internal.h"
#include "tls/tls.h"

/* How often the plan is made; the quota is per period, never carried over. */
#define SHED_PERIOD_MS 100
/* Periods in a row the imbalance must be seen before shedding starts (a burst of accepts settles within them). */
#define SHED_CONFIRM 3
/* Connections closed per period, per worker: at least this many... */
#define SHED_BATCH_MIN 2
/* ...or 1/16 of the connections it holds, up to this many (320/s: reconnects, TLS handshakes included, stay cheap). */
#define SHED_BATCH_MAX 32

sv_rb_share_t sv_rebalance_share(int max, int total_conns, int total_max)
{
    sv_rb_share_t sh = {0};
    if (total_max <= 0 || max <= 0)
        return sh;
    sh.fair = (double)total_conns * max / total_max;
    sh.hi = 2 + sh.fair / 4;
    sh.lo = 1 + sh.fair / 16;
    return sh;
}

/* The most connections a worker holding conns closes in one period. */
static int batch_cap(int conns)
{
    int k = conns / 16;
    return k < SHED_BATCH_MIN ? SHED_BATCH_MIN : k > SHED_BATCH_MAX ? SHED_BATCH_MAX : k;
}

int sv_rebalance_batch(int conns, double need)
{
    if (need <= 0)
        return 0;
    int left = (int)need;
    if (left < need)
        left++;
    int k = batch_cap(conns);
    return left < k ? left : k;
}

double sv_rebalance_need(const sv_rb_view_t *v, bool on)
{
    sv_rb_share_t sh = sv_rebalance_share(v->max, v->total, v->total_max);
    double excess = v->conns - sh.fair;
    /* hysteresis: start above fair + hi, go on down to fair + lo */
    double by_share = v->target && excess > (on ? sh.lo : sh.hi) ? excess - sh.lo : 0;
    /* capacity: more connections than threads here, threads no connection claims there (the steering's "full") */
    int over = v->conns - v->max;
    double by_threads = over < v->room ? over : v->room;
    return by_share > by_threads ? by_share : by_threads > 0 ? by_threads : 0;
}

static int ld(const int *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* This worker and its live peers as the load table shows them. */
static sv_rb_view_t look(sv_server_t *s, int64_t now)
{
    sv_rb_view_t v = {.conns = atomic_load(&s->n_conns) - atomic_load(&s->n_expired), .max = s->o.max_threads};
    v.total = v.conns;
    v.total_max = v.max;
    int end = atomic_load_explicit(&s->load_end, memory_order_relaxed);
    for (int i = 0; i < end; i++) {
        const sv_load_slot_t *l = sv_server_peer(s, i, now);
        if (!l)
            continue;
        int c = ld(&l->conns), m = ld(&l->max);
        v.peers++;
        v.total += c;
        v.total_max += m;
        v.room += c < m ? m - c : 0;
    }
    /* a second look may see newer counts than the sums: a peer that just filled up is simply no target */
    for (int i = 0; i < end && !v.target; i++) {
        const sv_load_slot_t *l = sv_server_peer(s, i, now);
        if (!l)
            continue;
        sv_rb_share_t sh = sv_rebalance_share(ld(&l->max), v.total, v.total_max);
        v.target = ld(&l->conns) < sh.fair - sh.lo;
    }
    return v;
}

static void finish(sv_server_t *s, int64_t now, const sv_rb_view_t *v)
{
    sv_rebalance_t *rb = &s->rb;
    rb->streak = 0;
    if (!rb->on)
        return;
    rb->on = false;
    uint64_t n = atomic_load_explicit(&s->rebalanced, memory_order_relaxed) - rb->at_start;
    sv_log("- Worker %d: rebalanced %llu keep-alive connection%s in %.1f s: %d here, %d on the other workers",
           s->o.load_index, (unsigned long long)n, n == 1 ? "" : "s", (double)(now - rb->since_ms) / 1000.0,
           v->conns, v->total - v->conns);
}

/* Connections to close at their next response boundary in the coming period. */
static int plan(sv_server_t *s, int64_t now)
{
    sv_rebalance_t *rb = &s->rb;
    sv_rb_view_t v = look(s, now);
    /* a drain closes everything anyway; a worker not taking connections is not a peer of anyone */
    if (!atomic_load(&s->accepting) || atomic_load(&s->draining) || v.peers == 0) {
        finish(s, now, &v);
        return 0;
    }
    double need = sv_rebalance_need(&v, rb->on);
    if (!rb->on) {
        rb->streak = need > 0 ? rb->streak + 1 : 0;
        if (rb->streak < SHED_CONFIRM)
            return 0;
        rb->on = true;
        rb->since_ms = now;
        rb->at_start = atomic_load_explicit(&s->rebalanced, memory_order_relaxed);
        sv_log("- Worker %d: rebalancing keep-alive connections: %d here, %d on the other workers (a fair share is "
               "%.0f); closing up to %d per %d ms after a response",
               s->o.load_index, v.conns, v.total - v.conns, sv_rebalance_share(v.max, v.total, v.total_max).fair,
               batch_cap(v.conns), SHED_PERIOD_MS);
    } else if (need <= 0) {
        finish(s, now, &v);
        return 0;
    }
    /* still in the listener (a peer's threads are all busy, or steering has not looked yet): they would come back */
    if (atomic_load(&s->listening))
        return 0;
    return sv_rebalance_batch(v.conns, need);
}

void sv_rebalance_tick(sv_server_t *s, int64_t now)
{
    if (!s->o.load || now - s->rb.last_ms < SHED_PERIOD_MS)
        return;
    s->rb.last_ms = now;
    atomic_store_explicit(&s->shed_quota, plan(s, now), memory_order_relaxed);
}

/* Bytes of the client's wait behind the current request: in our buffer, in the TLS object, in the socket. */
static bool more_from_client(const sv_conn_t *c)
{
    if (c->x->rpos < c->x->rbuf.len || (c->tls && sv_tls_pending(c->tls)))
        return true;
    int queued = 0;
    return ioctl(c->fd, FIONREAD, &queued) < 0 || queued > 0;
}

bool sv_rebalance_shed(sv_conn_t *c)
{
    sv_server_t *s = c->srv;
    int q = atomic_load_explicit(&s->shed_quota, memory_order_relaxed);
    if (q <= 0 || atomic_load_explicit(&s->listening, memory_order_relaxed) || more_from_client(c))
        return false;
    while (q > 0 && !atomic_compare_exchange_weak_explicit(&s->shed_quota, &q, q - 1, memory_order_relaxed,
                                                           memory_order_relaxed)) {
    }
    if (q <= 0)
        return false;
    atomic_fetch_add_explicit(&s->rebalanced, 1, memory_order_relaxed);
    return true;
}
