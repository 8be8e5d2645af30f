/*
 * server.c: one serving process's threads and its epoll set. Owns the
 * thread pool (parking, the poll role, the standby that takes over a role
 * left inside a slow app call), the listeners' accept path, load steering
 * between workers through the shared load table, the per-thread exchange
 * cache, the fork gate (quiesce) and the main thread's tick. Connections
 * themselves are conn.c's; the app call and response API are request.c's.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <linux/futex.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/time.h"
#include "os/sig.h"
#include "server/internal.h"
#include "tls/tls.h"

#define TAG_LISTENER (1ull << 63)
#define TAG_WAKE (1ull << 62)
#define BATCH_MAX 32
#define ACCEPT_BATCH 64
#define THREAD_TRIM_MS 30000
/*
 * Below this average app time one thread per process keeps up with its
 * share of the cores, and more threads only add context switches; above it
 * the poller promotes a parked thread before each app call, and a thread is
 * added whenever all are in the app.
 */
#define GROW_LIMIT_NS 20000
/* A sample counts at most this much in the averages above (see sv_server_app_leave). */
#define EWMA_SAMPLE_MAX_NS 200000
/* All threads inside one app call each for this long: add a thread whatever the average says. */
#define STUCK_NS 100000000

sv_server_t *sv_server_new(const sv_server_opts_t *opts)
{
    sv_server_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->o = *opts;
    if (s->o.max_threads < 1)
        s->o.max_threads = 1;
    if (s->o.max_threads > SV_MAX_THREADS)
        s->o.max_threads = SV_MAX_THREADS;
    s->epfd = s->wake_fd = -1;
    s->threads = calloc((size_t)s->o.max_threads, sizeof(sv_thread_t));
    s->parked = calloc((size_t)s->o.max_threads, sizeof(int));
    s->batch = calloc(BATCH_MAX, sizeof(struct epoll_event));
    /* one chunk pointer per SV_CONN_CHUNK fds up to the fd limit */
    long maxfd = sysconf(_SC_OPEN_MAX);
    s->n_chunks = (size_t)((maxfd > 0 ? maxfd : 65536) + SV_CONN_CHUNK - 1) / SV_CONN_CHUNK;
    s->chunks = calloc(s->n_chunks, sizeof(*s->chunks));
    if (!s->threads || !s->chunks || !s->parked || !s->batch) {
        free(s->threads);
        free(s->chunks);
        free(s->parked);
        free(s->batch);
        free(s);
        return NULL;
    }
    pthread_mutex_init(&s->gate_mu, NULL);
    pthread_cond_init(&s->gate_cv, NULL);
    pthread_mutex_init(&s->grow_mu, NULL);
    pthread_mutex_init(&s->park_mu, NULL);
    pthread_mutex_init(&s->listen_mu, NULL);
    atomic_store(&s->poll_owner, -1);
    atomic_store(&s->poll_released_by, -1);
    for (int i = 0; i < s->o.max_threads; i++)
        sv_deadline_thread_init(&s->threads[i]);
    for (int i = 0; i < s->o.n_listeners; i++)
        if (s->o.listeners[i].tls)
            sv_tls_listener_ready(s->o.listeners[i].tls, s->o.listeners[i].fd); /* TCP_NODELAY, inherited */
    atomic_store(&s->accepting, true);
    return s;
}

static int listen_ctl(sv_server_t *s, int op)
{
    for (int i = 0; i < s->o.n_listeners; i++) {
        if (s->o.listeners[i].fd < 0)
            continue;
        /*
         * Exclusive: a new connection wakes one worker, and the kernel passes
         * over a worker with no thread waiting (all busy) for the next one.
         */
        struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.u64 = TAG_LISTENER | (uint64_t)i};
        if (epoll_ctl(s->epfd, op, s->o.listeners[i].fd, &ev) < 0 && op == EPOLL_CTL_ADD && errno != EEXIST)
            return SV_ERRNO();
    }
    return 0;
}

/*
 * This worker still owns its load slot. A replacement of the same index (a
 * phased restart or a refork spawns it beside the old worker) takes the slot
 * over at its start; the old worker, stopping after that, must not write
 * "not listening, max 0" over the new one's figures: the peers would ignore
 * the new worker until its next heartbeat, just while the old one's clients
 * reconnect in a burst, and send them all elsewhere.
 */
static bool slot_mine(sv_server_t *s)
{
    return __atomic_load_n(&s->o.load[s->o.load_index].pid, __ATOMIC_RELAXED) == s->pid;
}

/* Register (or remove) the listeners, remembering which; returns listen_ctl's result. */
static int set_listening(sv_server_t *s, bool on)
{
    pthread_mutex_lock(&s->listen_mu);
    int rc = 0;
    if (atomic_load(&s->listening) != on) {
        rc = listen_ctl(s, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL);
        atomic_store(&s->listening, on);
        if (s->o.load && (on || slot_mine(s)))
            __atomic_store_n(&s->o.load[s->o.load_index].listening, on, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&s->listen_mu);
    return rc;
}

/* ---- load balancing between workers ----------------------------------- */

/*
 * Every worker publishes its load in its slot of a table the master maps
 * before forking (server.h). A slot not refreshed for PEER_STALE_MS belongs
 * to a worker that is gone or hung and is ignored, so a crash, a restart or
 * a refork never leaves a worker deferring to a peer that will not serve.
 */
#define PEER_STALE_MS 1000
/* How often a worker that left new connections to its peers looks again while idle. */
#define STEER_MS 5

static void publish_load(sv_server_t *s, int busy)
{
    if (s->o.load && atomic_load_explicit(&s->accepting, memory_order_relaxed)) /* see publish_slot */
        __atomic_store_n(&s->o.load[s->o.load_index].busy, busy, __ATOMIC_RELAXED);
}

static sv_load_slot_t *my_slot(sv_server_t *s)
{
    return &s->o.load[s->o.load_index];
}

static int ld(const int *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* A live peer slot (not ours) at index i. */
static const sv_load_slot_t *peer(sv_server_t *s, int i, int64_t now)
{
    const sv_load_slot_t *l = &s->o.load[i];
    if (i == s->o.load_index || ld(&l->max) <= 0 || now - __atomic_load_n(&l->beat_ms, __ATOMIC_RELAXED) > PEER_STALE_MS)
        return NULL;
    return l;
}

const sv_load_slot_t *sv_server_peer(sv_server_t *s, int i, int64_t now)
{
    return peer(s, i, now);
}

/* All threads busy, or all spoken for by open connections. */
static bool is_full(sv_server_t *s)
{
    int max = s->o.max_threads;
    return atomic_load(&s->n_conns) >= max || atomic_load(&s->n_busy) >= max;
}

/* Connections a worker may hold above a peer's count before it leaves new ones to that peer. */
static int balance_slack(int peer_conns)
{
    return 1 + peer_conns / 16;
}

/*
 * Take new connections only while this worker is the right place for them:
 * - capacity: a full worker leaves the listener to a listening peer with a
 *   thread free that none of its connections speaks for;
 * - balance: a worker holding more connections than a listening peer with a
 *   thread free (beyond a small slack) leaves the listener to it. With
 *   exclusive wake-ups the kernel gives a burst of connections to whichever
 *   worker is first in epoll_wait, and keep-alive clients stay where they
 *   landed: 100 wrk connections split 77/27 without this, and the busier
 *   worker's core capped the throughput.
 * A worker far ahead of a peer that stepped aside leaves as well: the peer
 * may not get a core for milliseconds (2 cores, wrk beside it), and
 * meanwhile the connections of a burst would all land here. Every look asks
 * the peers that stepped aside to look again (recheck): the one behind
 * comes back at its next event or within STEER_MS, and queued connections
 * wait in the listen queue until then. They never both stay away: the one
 * with fewer connections always wants to listen.
 * Inside the accept window only (see on_listener): a drain must not see a
 * listener come back after it removed them.
 */
static void steer_accepts(sv_server_t *s, int64_t now)
{
    if (!s->o.load)
        return;
    bool full = is_full(s);
    int conns = atomic_load(&s->n_conns);
    bool want = true;
    int end = atomic_load_explicit(&s->load_end, memory_order_relaxed);
    for (int i = 0; i < end && want; i++) {
        const sv_load_slot_t *l = peer(s, i, now);
        if (!l || ld(&l->busy) >= ld(&l->max))
            continue;
        int pc = ld(&l->conns);
        if (ld(&l->listening))
            want = !((full && pc < ld(&l->max)) || conns > pc + balance_slack(pc));
        else
            want = conns <= pc + 2 * balance_slack(pc); /* far ahead of one that stepped aside: it comes back at our recheck */
    }
    if (want != atomic_load(&s->listening))
        set_listening(s, want);
    for (int i = 0; i < end; i++) {
        sv_load_slot_t *l = (sv_load_slot_t *)peer(s, i, now);
        if (l && !ld(&l->listening) && !ld(&l->recheck))
            __atomic_store_n(&l->recheck, 1, __ATOMIC_RELAXED);
    }
}

/* The shared slot's heartbeat (main thread's tick): what peers read to steer their accepts. */
static void publish_slot(sv_server_t *s, int64_t now)
{
    /*
     * A worker that stopped taking connections (a drain) left max 0 in its
     * slot (sv_server_stop_accepting) and writes no more: its replacement
     * (a phased restart or a refork spawns it beside it, with the same
     * index) publishes in the same slot, and the old one's counts must not
     * keep overwriting the new one's, or peers see the new worker vanish
     * and reappear and steer the reconnecting clients wrong.
     */
    if (!s->o.load || !atomic_load(&s->accepting))
        return;
    sv_load_slot_t *me = my_slot(s);
    __atomic_store_n(&me->pid, s->pid, __ATOMIC_RELAXED);
    __atomic_store_n(&me->max, s->o.max_threads, __ATOMIC_RELAXED);
    __atomic_store_n(&me->conns, atomic_load(&s->n_conns), __ATOMIC_RELAXED);
    __atomic_store_n(&me->busy, atomic_load(&s->n_busy), __ATOMIC_RELAXED);
    __atomic_store_n(&me->listening, atomic_load(&s->listening), __ATOMIC_RELAXED);
    __atomic_store_n(&me->beat_ms, now, __ATOMIC_RELAXED);
    int end = 0;
    for (int i = 0; i < s->o.n_load; i++)
        if (i == s->o.load_index || ld(&s->o.load[i].max) > 0)
            end = i + 1;
    atomic_store_explicit(&s->load_end, end, memory_order_relaxed);
}

/*
 * Puma's wait_for_less_busy_worker, with knowledge of the peers: a worker
 * that is running app calls while another worker is less busy waits a
 * moment (proportional to how busy it is) so the idle worker takes the
 * connection. Only the accepting thread waits.
 */
static void maybe_defer_accept(sv_server_t *s)
{
    if (!s->o.load || s->o.wait_for_less_busy <= 0)
        return;
    int busy = atomic_load_explicit(&s->n_busy, memory_order_relaxed);
    if (busy == 0)
        return;
    bool peer_less_busy = false;
    int64_t now = sv_now_ms();
    int end = atomic_load_explicit(&s->load_end, memory_order_relaxed);
    for (int i = 0; i < end && !peer_less_busy; i++) {
        const sv_load_slot_t *l = peer(s, i, now);
        peer_less_busy = l && ld(&l->busy) < busy;
    }
    if (!peer_less_busy)
        return;
    int64_t ns = (int64_t)(s->o.wait_for_less_busy * 1e9 * busy / s->o.max_threads);
    struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
    nanosleep(&ts, NULL);
}

/*
 * With exclusive wake-ups the kernel hands a connection to the first worker
 * in the listener's wait queue that has a thread waiting, so traffic would
 * all go to one worker. A worker that holds more connections per thread
 * than a listening peer, or has accepted well ahead of the least-served one
 * (Connection: close traffic), moves itself to the back of the queue.
 */
#define ACCEPT_SKEW 16

static bool ahead_of_peers(sv_server_t *s, uint64_t accepted, int64_t now)
{
    int conns = atomic_load(&s->n_conns), max = s->o.max_threads;
    uint64_t least = UINT64_MAX;
    int end = atomic_load_explicit(&s->load_end, memory_order_relaxed);
    for (int i = 0; i < end; i++) {
        const sv_load_slot_t *l = peer(s, i, now);
        if (!l || !ld(&l->listening))
            continue;
        if ((int64_t)conns * ld(&l->max) > (int64_t)(ld(&l->conns) + 1) * max)
            return true;
        uint64_t a = __atomic_load_n(&l->accepted, __ATOMIC_RELAXED);
        least = a < least ? a : least;
    }
    if (least == UINT64_MAX || accepted <= least + ACCEPT_SKEW)
        return false;
    /* catch up the counter so the peer gets a run of its own before the next move */
    __atomic_store_n(&my_slot(s)->accepted, least, __ATOMIC_RELAXED);
    return true;
}

static void balance_accepts(sv_server_t *s, int idx)
{
    if (!s->o.load)
        return;
    uint64_t mine = __atomic_add_fetch(&my_slot(s)->accepted, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&my_slot(s)->conns, atomic_load(&s->n_conns), __ATOMIC_RELAXED);
    if (!ahead_of_peers(s, mine, sv_now_ms()))
        return;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.u64 = TAG_LISTENER | (uint64_t)idx};
    int fd = s->o.listeners[idx].fd;
    pthread_mutex_lock(&s->listen_mu);
    if (atomic_load(&s->accepting) && atomic_load(&s->listening) && epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, NULL) == 0)
        epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev);
    pthread_mutex_unlock(&s->listen_mu);
}

/* steer_accepts from outside the accept window: enter it first (see on_listener). */
static void steer_in_window(sv_server_t *s, int64_t now)
{
    atomic_fetch_add(&s->in_accept, 1);
    if (atomic_load(&s->accepting))
        steer_accepts(s, now);
    atomic_fetch_sub(&s->in_accept, 1);
}

/*
 * A drain must not miss a connection a thread has just accepted: the thread
 * counts itself in (in_accept) before it looks at `accepting`, and counts the
 * fd (n_conns) before it counts itself out; it touches the listener only in
 * between. sv_server_stop_accepting waits for in_accept to reach 0 before it
 * unregisters and closes the listeners, and sv_server_connections reads
 * in_accept before n_conns.
 */
static void on_listener(sv_server_t *s, sv_thread_t *t, int idx)
{
    if (!atomic_load(&s->accepting))
        return;
    maybe_defer_accept(s); /* may sleep: outside the window below */
    atomic_fetch_add(&s->in_accept, 1);
    if (!atomic_load(&s->accepting)) {
        atomic_fetch_sub(&s->in_accept, 1);
        return;
    }
    const sv_listener_t *l = &s->o.listeners[idx];
    /*
     * One connection per event: the listener is level-triggered, so more
     * waiting connections wake a waiter again, which spreads them over idle
     * threads and workers instead of one thread taking a burst.
     */
    int fd = -1, err = 0;
    if (l->fd >= 0) {
        fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        err = errno;
    }
    if (fd >= 0) {
        atomic_fetch_add(&s->n_conns, 1);
        balance_accepts(s, idx); /* epoll_ctl on the listener: inside the window, before it may close */
    }
    atomic_fetch_sub(&s->in_accept, 1);
    if (fd < 0) {
        if (err == EMFILE || err == ENFILE)
            sv_log_error("! accept: %s (raise the open file limit)", strerror(err));
        return;
    }
    sv_conn_accept(s, t, fd, l->bind.kind == SV_BIND_UNIX, l->tls, sv_now_ms());
    /* after its first request: a Connection: close client no longer counts against our capacity */
    if (s->o.load)
        steer_in_window(s, sv_now_ms());
}

/* ---- the fork gate ---------------------------------------------------- */

static void gate_wait(sv_server_t *s, sv_thread_t *t)
{
    while (atomic_load(&s->paused)) {
        atomic_store(&t->active, 0);
        pthread_mutex_lock(&s->gate_mu);
        while (atomic_load(&s->paused))
            pthread_cond_wait(&s->gate_cv, &s->gate_mu);
        pthread_mutex_unlock(&s->gate_mu);
        atomic_store(&t->active, 1);
    }
}

/* Join the threads that trimmed themselves (they have returned: the joins are immediate); grow_mu held. */
static void reap_exited_locked(sv_server_t *s)
{
    for (int i = 0; i < s->o.max_threads; i++) {
        sv_thread_t *t = &s->threads[i];
        if (atomic_load(&t->in_use) == SV_SLOT_EXITED) {
            pthread_join(t->tid, NULL);
            atomic_store(&t->in_use, SV_SLOT_FREE);
        }
    }
}

static void reap_exited(sv_server_t *s)
{
    bool any = false;
    for (int i = 0; i < s->o.max_threads && !any; i++)
        any = atomic_load(&s->threads[i].in_use) == SV_SLOT_EXITED;
    if (!any)
        return;
    pthread_mutex_lock(&s->grow_mu);
    reap_exited_locked(s);
    pthread_mutex_unlock(&s->grow_mu);
}

/* No thread handling a connection, inside the app, starting or exiting. */
static bool all_quiet(sv_server_t *s)
{
    reap_exited(s);
    for (int i = 0; i < s->o.max_threads; i++) {
        int slot = atomic_load(&s->threads[i].in_use);
        if (slot == SV_SLOT_EXITED || (slot == SV_SLOT_RUNNING && atomic_load(&s->threads[i].active)))
            return false;
    }
    return true;
}

/*
 * The gate closes only for a short attempt (QUIESCE_ATTEMPT_MS): a request
 * that stays in the app longer (a slow client reading a stream) must not
 * hold every other client of this process at the gate. Between attempts
 * the threads serve, and the next attempt starts at a moment when no
 * thread is busy.
 */
#define QUIESCE_ATTEMPT_MS 100

int sv_server_quiesce(sv_server_t *s, int timeout_ms)
{
    int64_t deadline = sv_now_ms() + timeout_ms;
    for (;;) {
        while (!all_quiet(s)) {
            if (sv_now_ms() >= deadline)
                return -ETIMEDOUT;
            sv_sleep_ms(1);
        }
        atomic_store(&s->paused, true);
        int64_t attempt_end = sv_now_ms() + QUIESCE_ATTEMPT_MS;
        for (;;) {
            if (all_quiet(s))
                return 0;
            if (sv_now_ms() >= attempt_end || sv_now_ms() >= deadline)
                break;
            sv_sleep_ms(1);
        }
        sv_server_unquiesce(s);
        if (sv_now_ms() >= deadline)
            return -ETIMEDOUT;
    }
}

void sv_server_unquiesce(sv_server_t *s)
{
    pthread_mutex_lock(&s->gate_mu);
    atomic_store(&s->paused, false);
    pthread_cond_broadcast(&s->gate_cv);
    pthread_mutex_unlock(&s->gate_mu);
}

/* ---- exchanges of idle connections ---------------------------------------- */

/*
 * A keep-alive connection waiting for its next request holds no exchange
 * (internal.h): at that point it goes to a cache of one per serving thread,
 * buffers and all, and the next read takes the cache's exchange of
 * whichever thread reads. Buffers that grew past CACHE_BUF_MAX are freed,
 * not cached.
 *
 * The cache is a field of the thread's slot, not a thread-local: a child
 * forked from this process (the mold, and the workers it forks) has none of
 * these threads, and frees their caches through the slots
 * (sv_server_forget_in_child) instead of carrying them unreachable.
 */
#define CACHE_BUF_MAX 65536

static _Thread_local sv_exch_t **cache; /* &t->spare of the serving thread running; NULL on others */

static void trim_buf(sv_buf_t *b)
{
    if (b->cap > CACHE_BUF_MAX)
        sv_buf_free(b);
    sv_buf_reset(b);
}

void sv_exch_free(sv_exch_t *x)
{
    if (!x)
        return;
    sv_buf_free(&x->rbuf);
    sv_buf_free(&x->body);
    sv_buf_free(&x->out);
    sv_buf_free(&x->scratch);
    sv_buf_free(&x->res_headers);
    free(x->headers);
    free(x);
}

void sv_server_idle_exch(sv_conn_t *c)
{
    sv_exch_t *x = c->x;
    c->x = NULL;
    if (!x)
        return;
    if (!cache || *cache) {
        sv_exch_free(x);
        return;
    }
    trim_buf(&x->rbuf);
    trim_buf(&x->body);
    trim_buf(&x->out);
    trim_buf(&x->scratch);
    trim_buf(&x->res_headers);
    *cache = x;
}

int sv_server_lend_exch(sv_conn_t *c)
{
    sv_server_t *s = c->srv;
    sv_exch_t *x = cache ? *cache : NULL;
    if (cache)
        *cache = NULL;
    if (!x) {
        x = calloc(1, sizeof(*x));
        if (x)
            x->headers = calloc((size_t)s->o.limits.max_headers, sizeof(sv_http_header_t));
        if (!x || !x->headers) {
            free(x);
            return -ENOMEM;
        }
    }
    /* a fresh request: the buffers stay, everything else starts over */
    sv_buf_t rbuf = x->rbuf, body = x->body, out = x->out, scratch = x->scratch, res_headers = x->res_headers;
    sv_http_header_t *headers = x->headers;
    memset(x, 0, sizeof(*x));
    x->rbuf = rbuf;
    x->body = body;
    x->out = out;
    x->scratch = scratch;
    x->res_headers = res_headers;
    sv_buf_reset(&x->rbuf);
    sv_buf_reset(&x->body);
    sv_buf_reset(&x->out);
    sv_buf_reset(&x->scratch);
    sv_buf_reset(&x->res_headers);
    x->headers = headers;
    x->req.headers = headers;
    x->body_fd = x->file_fd = -1;
    sv_http_parser_init(&x->parser, &s->o.limits);
    c->x = x;
    return 0;
}

static void free_cache(sv_thread_t *t)
{
    sv_exch_free(t->spare);
    t->spare = NULL;
}

/* ---- threads: leader/followers ------------------------------------------ */

static int start_thread(sv_server_t *s);

/*
 * One thread at a time holds the poll role: it calls epoll_wait and works
 * through the batch, running the app inline. Before an app call it lets the
 * role go, so the rest of the batch and new events never wait behind a call
 * that may be slow: when the average app time says slow, it promotes a
 * parked thread at once (leader/followers); when it says fast, it keeps
 * running alone and takes the role back after the call. If a call turns out
 * slow, the standby (the first parked thread) takes the role once it has
 * been free TAKEOVER_NS. The standby sleeps without a timeout: the main
 * thread's tick (sv_server_tick, every 20 ms) wakes it when it finds the
 * role free that long; only within STANDBY_ALERT_MS of a takeover (an app
 * with slow calls among fast ones) does the standby look by itself, every
 * STANDBY_ALERT_NS. A fast app so costs one thread's wake-ups whatever
 * max_threads is: no thread but the poller wakes while requests flow.
 */
#define PARK_WAITING 0
#define PARK_PROMOTED 1 /* popped off the stack: go and take the poll role */
#define PARK_KICKED 2   /* look again (the standby's duty changed) */
/*
 * Each look of the standby is a wake-up, and periodic wake-ups beside a
 * busy poller are what made a fast app dearer at -t 5:5 than at 1:1: a look
 * every 3 ms (333/s) doubled the poller's context switches per request
 * (docs/architecture.md, "Why the standby sleeps"). So no look at all while
 * the app is fast, and looks every STANDBY_ALERT_NS only for a while after
 * a call did turn out slow.
 */
#define TAKEOVER_NS 500000
/* The same, when the thread inside the call is runnable (computing or preempted): see releaser_running. */
#define TAKEOVER_RUNNING_NS 5000000
/* Within this long of a takeover (an app with slow calls among fast ones) the standby looks every ms. */
#define STANDBY_ALERT_MS 1000
#define STANDBY_ALERT_NS 1000000
/* Nobody has polled for this long and nobody is parked: add a thread (see sv_server_tick). */
#define STALL_MS 10

static void futex_wait(_Atomic int *w, int val, int64_t timeout_ns)
{
    struct timespec ts = {.tv_sec = timeout_ns / 1000000000, .tv_nsec = timeout_ns % 1000000000};
    syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, val, timeout_ns >= 0 ? &ts : NULL, NULL, 0);
}

static void futex_wake(_Atomic int *w)
{
    syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static bool take_poll_role(sv_server_t *s, sv_thread_t *t)
{
    int none = -1;
    if (atomic_load_explicit(&s->poll_owner, memory_order_relaxed) != -1 ||
        !atomic_compare_exchange_strong(&s->poll_owner, &none, t->index))
        return false;
    t->poller = true;
    return true;
}

static void kick(sv_thread_t *p)
{
    int w = PARK_WAITING;
    if (atomic_compare_exchange_strong(&p->wake, &w, PARK_KICKED))
        futex_wake(&p->wake);
}

/* Pop the most recently parked thread (warm cache) and send it for the poll role. */
static bool promote_one(sv_server_t *s)
{
    int idx = -1;
    pthread_mutex_lock(&s->park_mu);
    int n = atomic_load(&s->n_parked);
    if (n > 0) {
        idx = s->parked[n - 1];
        atomic_store(&s->n_parked, n - 1);
    }
    pthread_mutex_unlock(&s->park_mu);
    if (idx < 0)
        return false;
    atomic_store(&s->threads[idx].wake, PARK_PROMOTED);
    futex_wake(&s->threads[idx].wake);
    return true;
}

static void wake_all_parked(sv_server_t *s)
{
    while (promote_one(s)) {
    }
}

/* Take t off the stack; false if a promoter popped it first. park_mu held. */
static bool unpark_locked(sv_server_t *s, sv_thread_t *t)
{
    int n = atomic_load(&s->n_parked);
    for (int i = 0; i < n; i++) {
        if (s->parked[i] != t->index)
            continue;
        memmove(&s->parked[i], &s->parked[i + 1], (size_t)(n - i - 1) * sizeof(int));
        atomic_store(&s->n_parked, n - 1);
        if (i == 0 && n > 1)
            kick(&s->threads[s->parked[0]]); /* the new standby starts watching */
        return true;
    }
    return false;
}

static bool is_standby(sv_server_t *s, sv_thread_t *t)
{
    pthread_mutex_lock(&s->park_mu);
    bool first = atomic_load(&s->n_parked) > 0 && s->parked[0] == t->index;
    pthread_mutex_unlock(&s->park_mu);
    return first;
}

/* The role has been free TAKEOVER_NS while a call runs: wake the standby to take it (main thread's tick). */
static void watch_role(sv_server_t *s)
{
    if (atomic_load(&s->poll_owner) != -1 || atomic_load(&s->n_busy) == 0 || atomic_load(&s->n_parked) == 0 ||
        sv_now_ns() - atomic_load_explicit(&s->poll_released_ns, memory_order_relaxed) < TAKEOVER_NS)
        return;
    pthread_mutex_lock(&s->park_mu);
    if (atomic_load(&s->n_parked) > 0)
        kick(&s->threads[s->parked[0]]);
    pthread_mutex_unlock(&s->park_mu);
}

static void release_poll_role(sv_server_t *s, sv_thread_t *t, int64_t now_ns)
{
    t->poller = false;
    atomic_store_explicit(&s->poll_released_by, t->index, memory_order_relaxed);
    atomic_store_explicit(&s->poll_released_ns, now_ns, memory_order_relaxed);
    atomic_store(&s->poll_owner, -1);
}

void sv_server_app_enter(sv_server_t *s, sv_thread_t *t, sv_conn_t *c)
{
    sv_deadline_enter(s, t, c);
    int64_t now = sv_now_ns();
    atomic_store_explicit(&t->app_since_ns, now, memory_order_relaxed);
    int busy = atomic_fetch_add(&s->n_busy, 1) + 1;
    publish_load(s, busy);
    bool slow = atomic_load_explicit(&s->app_ewma_ns, memory_order_relaxed) > GROW_LIMIT_NS;
    if (t->poller) {
        /* never hold the batch and the epoll set while inside a call that may be slow */
        release_poll_role(s, t, now);
        if (!slow)
            return; /* taken back after the call; the standby covers a call that turns out slow */
        if (promote_one(s))
            return;
    }
    /* keep one thread free to take new work while the app is slow and capacity remains */
    if (slow && busy >= atomic_load(&s->n_threads) && atomic_load(&s->n_threads) < s->o.max_threads)
        start_thread(s);
}

bool sv_server_app_leave(sv_server_t *s, sv_thread_t *t, int64_t ns)
{
    /*
     * Take the role straight back if nobody did: it is free only while the
     * app runs, so a thread preempted while writing its response is not
     * mistaken by the standby for one stuck in a slow call.
     */
    take_poll_role(s, t);
    atomic_store_explicit(&t->app_since_ns, 0, memory_order_relaxed);
    bool taken = sv_deadline_leave(s, t);
    int busy = atomic_fetch_sub(&s->n_busy, 1) - 1;
    publish_load(s, busy);
    atomic_fetch_add_explicit(&t->app_ns, (uint64_t)ns, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->progress, 1, memory_order_relaxed);
    /*
     * The averages decide promotion and growth. They see wall time, and on a
     * busy machine a fast call is now and then preempted for milliseconds;
     * one such sample must not make a fast app look slow (a wake-up per
     * request, a thread too many). A slow app still gets there: clamped
     * samples stay well above the limit.
     */
    int64_t clamped = ns < EWMA_SAMPLE_MAX_NS ? ns : EWMA_SAMPLE_MAX_NS;
    t->app_ewma_ns += (clamped - t->app_ewma_ns) / 8;
    int64_t e = atomic_load_explicit(&s->app_ewma_ns, memory_order_relaxed);
    atomic_store_explicit(&s->app_ewma_ns, e + (clamped - e) / 16, memory_order_relaxed);
    return taken;
}

/*
 * Give a connection's readiness back to epoll so another thread takes it.
 * Only while owning it (sv_conn_hand_back): the fd must not close under us.
 */
void sv_server_requeue(sv_server_t *s, sv_conn_t *c)
{
    uint64_t st = atomic_load(&c->state);
    uint32_t events = EPOLLIN | EPOLLRDHUP | EPOLLET | (c->out_armed ? EPOLLOUT : 0);
    struct epoll_event ev = {.events = events, .data.u64 = ((uint64_t)C_GEN(st) << 32) | (uint32_t)c->fd};
    epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void handle_event(sv_server_t *s, sv_thread_t *t, uint64_t d)
{
    if (d & TAG_WAKE)
        return;
    if (d & TAG_LISTENER)
        on_listener(s, t, (int)(d & 0xffff));
    else
        sv_conn_on_event(s, t, d);
}

/*
 * A thread above min_threads leaves after THREAD_TRIM_MS without work, or,
 * while the app is fast, within a second (extra threads then only add
 * context switches).
 */
static bool should_trim(sv_server_t *s, sv_thread_t *t, int64_t idle_since)
{
    int floor = s->o.min_threads > 1 ? s->o.min_threads : 1;
    int64_t now = sv_now_ms();
    if (atomic_load(&s->n_threads) <= floor)
        return false;
    bool fast = false;
    if (now >= t->next_trim_check_ms) {
        t->next_trim_check_ms = now + 1000;
        fast = atomic_load_explicit(&s->app_ewma_ns, memory_order_relaxed) < GROW_LIMIT_NS / 2;
    }
    if (!fast && now - idle_since < THREAD_TRIM_MS)
        return false;
    int n = atomic_load(&s->n_threads);
    return n > floor && atomic_compare_exchange_strong(&s->n_threads, &n, n - 1);
}

/*
 * The thread that let the role go for its app call is runnable: computing,
 * or (far more often on a busy machine) preempted in the middle of a fast
 * call. Taking the role from it would only move the work to another thread
 * (and back), so the standby waits longer for those (TAKEOVER_RUNNING_NS);
 * a call that sleeps or blocks (I/O, a lock, a timer) is taken over at once.
 * Three system calls, only when a look finds the role free for TAKEOVER_NS.
 */
static bool releaser_running(sv_server_t *s)
{
    int idx = atomic_load_explicit(&s->poll_released_by, memory_order_relaxed);
    if (idx < 0 || idx >= s->o.max_threads)
        return false;
    int tid = atomic_load(&s->threads[idx].os_tid);
    char path[64], buf[256];
    snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* "tid (comm) S ...": comm may hold spaces */
    return p && p[1] == ' ' && p[2] == 'R';
}

/* The standby's look: should it take the poll role? role_free: look again soon. */
static bool standby_takes_over(sv_server_t *s, bool *role_free)
{
    *role_free = atomic_load(&s->poll_owner) == -1;
    if (!*role_free)
        return false;
    int64_t free_ns = sv_now_ns() - atomic_load_explicit(&s->poll_released_ns, memory_order_relaxed);
    if (free_ns < TAKEOVER_NS)
        return false;
    return free_ns >= TAKEOVER_RUNNING_NS || !releaser_running(s);
}

enum { PARK_GO, PARK_TRIM };

/*
 * Wait on the stack until promoted, or (the standby) until the poll role has
 * been free too long. PARK_TRIM: the thread leaves (should_trim said so).
 */
static int park(sv_server_t *s, sv_thread_t *t, int64_t idle_since)
{
    atomic_store(&t->wake, PARK_WAITING);
    pthread_mutex_lock(&s->park_mu);
    int n = atomic_load(&s->n_parked);
    s->parked[n] = t->index;
    atomic_store(&s->n_parked, n + 1);
    pthread_mutex_unlock(&s->park_mu);
    int floor = s->o.min_threads > 1 ? s->o.min_threads : 1;
    bool role_free = false;
    for (bool first = true;; first = false) {
        /*
         * Right after the push: a poller that let the role go (slow app)
         * before it saw us on the stack promoted nobody, so look at the role
         * ourselves. With a fast app the role is free only while the poller
         * runs a call and takes it back after: taking it here would only move
         * the work to another thread (and the next park back), so the
         * standby's takeover covers a call that turns out slow instead.
         * sv_server_shutdown sets stop before it pops the stack.
         */
        bool slow = atomic_load_explicit(&s->app_ewma_ns, memory_order_relaxed) > GROW_LIMIT_NS;
        if (atomic_load(&s->stop) || (first && slow && atomic_load(&s->poll_owner) == -1)) {
            pthread_mutex_lock(&s->park_mu);
            unpark_locked(s, t);
            pthread_mutex_unlock(&s->park_mu);
            return PARK_GO;
        }
        /*
         * The standby looks by itself only while the role is free (again
         * after TAKEOVER_NS) or soon after a takeover; otherwise the tick's
         * watch_role wakes it. Any thread above the floor looks once a
         * second whether to trim itself.
         */
        bool standby = is_standby(s, t);
        bool alert = sv_now_ms() - atomic_load_explicit(&s->last_takeover_ms, memory_order_relaxed) < STANDBY_ALERT_MS;
        int64_t timeout = atomic_load(&s->n_threads) > floor ? 1000000000 : -1;
        if (standby && role_free)
            timeout = TAKEOVER_NS;
        else if (standby && alert)
            timeout = STANDBY_ALERT_NS;
        atomic_store(&t->active, 0);
        futex_wait(&t->wake, PARK_WAITING, timeout);
        atomic_store(&t->active, 1);
        if (atomic_load(&s->paused))
            gate_wait(s, t);
        int w = PARK_KICKED;
        if (!atomic_compare_exchange_strong(&t->wake, &w, PARK_WAITING) && w == PARK_PROMOTED)
            return PARK_GO;
        bool leave = atomic_load(&s->stop) || (standby && standby_takes_over(s, &role_free));
        bool trim = !leave && should_trim(s, t, idle_since);
        if (!leave && !trim)
            continue;
        pthread_mutex_lock(&s->park_mu);
        bool off = unpark_locked(s, t);
        pthread_mutex_unlock(&s->park_mu);
        if (!off) { /* promoted meanwhile: serve; give the trim back */
            if (trim)
                atomic_fetch_add(&s->n_threads, 1);
            return PARK_GO;
        }
        if (leave && !atomic_load(&s->stop))
            atomic_store_explicit(&s->last_takeover_ms, sv_now_ms(), memory_order_relaxed);
        return trim ? PARK_TRIM : PARK_GO;
    }
}

static void *thread_main(void *arg)
{
    sv_thread_t *t = arg;
    sv_server_t *s = t->srv;
    atomic_store(&t->os_tid, (int)syscall(SYS_gettid));
    /*
     * No timer slack: a timed wait of the app (a sleep, a poll with a
     * timeout) ends when it asked, not up to 50 us later (the default). For
     * an app that waits 10 ms per request that is 0.5 % of its capacity.
     */
    prctl(PR_SET_TIMERSLACK, 1UL);
    sv_bt_thread_attach(&t->bt);
    cache = &t->spare;
    int64_t idle_since = sv_now_ms();
    t->next_trim_check_ms = idle_since + 1000;
    for (;;) {
        if (atomic_load(&s->paused))
            gate_wait(s, t);
        if (atomic_load(&s->stop))
            break;
        if (!t->poller && !take_poll_role(s, t)) {
            if (park(s, t, idle_since) == PARK_TRIM) {
                free_cache(t);
                sv_bt_thread_detach();
                /* EXITED before inactive: a quiesce never sees this thread quiet and not leaving */
                atomic_store(&t->in_use, SV_SLOT_EXITED);
                atomic_store(&t->active, 0);
                return NULL;
            }
            continue;
        }
        if (s->batch_next >= s->batch_n) {
            /* left new connections to a peer: look again soon whether to take them back */
            bool stepped_aside = s->o.load && atomic_load(&s->accepting) && !atomic_load(&s->listening);
            int timeout = stepped_aside ? STEER_MS : -1;
            atomic_store(&t->active, 0);
            int n = epoll_wait(s->epfd, s->batch, BATCH_MAX, timeout);
            atomic_store(&t->active, 1);
            atomic_fetch_add_explicit(&s->progress, 1, memory_order_relaxed);
            s->batch_n = n > 0 ? n : 0;
            s->batch_next = 0;
            if (n == 0 || stepped_aside) {
                /* a busy worker that stepped aside looks again every STEER_MS even while events keep coming */
                int64_t now = sv_now_ms();
                if (n == 0 || now - s->steer_ms >= STEER_MS) {
                    s->steer_ms = now;
                    steer_in_window(s, now);
                }
            }
            continue;
        }
        if (s->o.load && ld(&my_slot(s)->recheck)) {
            __atomic_store_n(&my_slot(s)->recheck, 0, __ATOMIC_RELAXED);
            steer_in_window(s, sv_now_ms());
        }
        uint64_t d = s->batch[s->batch_next++].data.u64;
        handle_event(s, t, d);
        idle_since = sv_now_ms();
    }
    if (t->poller) {
        t->poller = false;
        atomic_store(&s->poll_owner, -1);
    }
    free_cache(t);
    sv_bt_thread_detach();
    atomic_store(&t->active, 0);
    return NULL;
}

static int start_thread(sv_server_t *s)
{
    pthread_mutex_lock(&s->grow_mu);
    if (atomic_load(&s->stop)) { /* sv_server_shutdown joins every slot: no new thread, no join here */
        pthread_mutex_unlock(&s->grow_mu);
        return -ECANCELED;
    }
    reap_exited_locked(s);
    int rc = 0;
    int n = atomic_load(&s->n_threads);
    sv_thread_t *t = NULL;
    for (int i = 0; s->threads && i < s->o.max_threads && n < s->o.max_threads && !t; i++)
        if (atomic_load(&s->threads[i].in_use) == SV_SLOT_FREE)
            t = &s->threads[i];
    if (t) {
        /* active until it first waits: a quiesce must not fork while it is still starting */
        atomic_store(&t->active, 1);
        atomic_store(&t->in_use, SV_SLOT_RUNNING);
        t->srv = s;
        t->index = (int)(t - s->threads);
        atomic_fetch_add(&s->n_threads, 1);
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 1 << 20);
        /*
         * Threads never take asynchronous signals: the main thread's loop owns
         * them. Faults stay deliverable so a crashing app dies of its signal.
         */
        sigset_t all, old;
        sigfillset(&all);
        int faults[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP, SIGSYS};
        for (size_t k = 0; k < sizeof(faults) / sizeof(faults[0]); k++)
            sigdelset(&all, faults[k]);
        sigdelset(&all, SV_BT_SIGNAL); /* stack captures (os/backtrace.h) */
        pthread_sigmask(SIG_BLOCK, &all, &old);
        rc = -pthread_create(&t->tid, &attr, thread_main, t);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_attr_destroy(&attr);
        if (rc < 0) {
            atomic_store(&t->active, 0);
            atomic_store(&t->in_use, SV_SLOT_FREE);
            atomic_fetch_sub(&s->n_threads, 1);
        }
    }
    pthread_mutex_unlock(&s->grow_mu);
    return rc;
}

/* ssl:// listeners: pick up certificates the master reloaded (a cheap check when it did not). */
static void refresh_tls(sv_server_t *s)
{
    struct sv_tls *tls[64];
    int n = 0;
    for (int i = 0; i < s->o.n_listeners && n < 64; i++)
        if (s->o.listeners[i].tls)
            tls[n++] = s->o.listeners[i].tls;
    sv_tls_refresh(tls, n);
}

int sv_server_start(sv_server_t *s)
{
    refresh_tls(s); /* a worker forked by the mold may come from before a reload */
    sv_bt_init();
    s->pid = (int)getpid();
    if (s->o.load) /* the slot is ours from now on, even before the first heartbeat */
        __atomic_store_n(&my_slot(s)->pid, s->pid, __ATOMIC_RELAXED);
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (s->epfd < 0)
        return SV_ERRNO();
    s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->wake_fd < 0)
        return SV_ERRNO();
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_WAKE};
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->wake_fd, &ev) < 0)
        return SV_ERRNO();
    int rc = set_listening(s, true);
    if (rc < 0)
        return rc;
    publish_slot(s, sv_now_ms());
    int want = s->o.min_threads > 1 ? s->o.min_threads : 1;
    for (int i = 0; i < want && rc == 0; i++)
        rc = start_thread(s);
    s->started = true;
    return rc;
}

/* ---- stop, drain ------------------------------------------------------ */

void sv_server_stop_accepting(sv_server_t *s, bool close_listeners)
{
    atomic_store(&s->accepting, false);
    while (atomic_load(&s->in_accept) > 0) /* a few instructions: see on_listener */
        sched_yield();
    /* after the wait: balance_accepts and steer_accepts (inside the window) may have re-added a listener */
    if (s->epfd >= 0)
        set_listening(s, false);
    if (s->o.load && slot_mine(s)) /* peers stop counting on us at once (unless a replacement took the slot) */
        __atomic_store_n(&s->o.load[s->o.load_index].max, 0, __ATOMIC_RELAXED);
    /* whatever the kernel queued for us is served, not dropped */
    int64_t now = sv_now_ms();
    for (int i = 0; i < s->o.n_listeners && close_listeners; i++) {
        sv_listener_t *l = &s->o.listeners[i];
        for (int k = 0; k < ACCEPT_BATCH * 16 && l->fd >= 0; k++) {
            int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0)
                break;
            atomic_fetch_add(&s->n_conns, 1);
            sv_conn_accept(s, NULL, fd, l->bind.kind == SV_BIND_UNIX, l->tls, now);
        }
        sv_listener_close(l, false);
    }
}

void sv_server_drain(sv_server_t *s)
{
    if (!atomic_exchange(&s->draining, true))
        s->drain_started_ms = sv_now_ms();
}

int sv_server_connections(const sv_server_t *s)
{
    sv_server_t *m = (sv_server_t *)s;
    int accepting = atomic_load(&m->in_accept); /* first: see on_listener */
    /* a call past app_timeout may never return: its connection does not hold up a drain */
    return accepting + atomic_load(&m->n_conns) - atomic_load(&m->n_expired);
}

/* Every thread has been inside one app call for STUCK_NS (a slow call the average did not predict). */
static bool all_stuck(sv_server_t *s)
{
    int n = atomic_load(&s->n_threads);
    if (n >= s->o.max_threads || atomic_load(&s->n_busy) < n)
        return false;
    int64_t now = sv_now_ns();
    for (int i = 0; i < s->o.max_threads; i++) {
        if (atomic_load(&s->threads[i].in_use) != SV_SLOT_RUNNING)
            continue;
        int64_t since = atomic_load_explicit(&s->threads[i].app_since_ns, memory_order_relaxed);
        if (!since || now - since < STUCK_NS)
            return false;
    }
    return true;
}

/*
 * Nobody has polled for STALL_MS and nobody is parked to take over: a call
 * the average took for fast holds the only free thread. Add one (up to
 * max_threads); it is trimmed again once the app is fast.
 */
static bool stalled(sv_server_t *s)
{
    if (atomic_load(&s->poll_owner) != -1 || atomic_load(&s->n_parked) > 0 ||
        atomic_load(&s->n_threads) >= s->o.max_threads || atomic_load(&s->n_busy) == 0)
        return false;
    return sv_now_ns() - atomic_load_explicit(&s->poll_released_ns, memory_order_relaxed) >= STALL_MS * 1000000LL;
}

void sv_server_tick(sv_server_t *s, int64_t now_ms)
{
    if (s->started)
        watch_role(s);
    reap_exited(s);
    sv_deadline_tick(s, now_ms);
    if (s->started && !atomic_load(&s->paused) && (all_stuck(s) || stalled(s)))
        start_thread(s);
    if (s->started && s->o.load) {
        publish_slot(s, now_ms);
        steer_in_window(s, now_ms);
        sv_rebalance_tick(s, now_ms);
    }
    if (now_ms - s->last_sweep_ms < 100)
        return;
    s->last_sweep_ms = now_ms;
    refresh_tls(s);
    for (size_t ci = 0; ci < s->n_chunks; ci++) {
        sv_conn_t *chunk = atomic_load(&s->chunks[ci]);
        if (!chunk)
            continue;
        for (int k = 0; k < SV_CONN_CHUNK; k++) {
            sv_conn_t *c = &chunk[k];
            uint64_t st = atomic_load_explicit(&c->state, memory_order_acquire);
            if ((st & C_OPEN) && !(st & C_OWNED))
                sv_conn_sweep(s, c, now_ms);
        }
    }
}

int sv_server_shutdown(sv_server_t *s, int join_timeout_ms)
{
    if (!s->started)
        return 0;
    atomic_store(&s->stop, true);
    /* a start_thread that has not seen `stop` is done with the slots after this */
    pthread_mutex_lock(&s->grow_mu);
    pthread_mutex_unlock(&s->grow_mu);
    uint64_t one = 1;
    (void)!write(s->wake_fd, &one, sizeof(one));
    wake_all_parked(s);
    sv_server_unquiesce(s);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += join_timeout_ms / 1000;
    deadline.tv_nsec += (join_timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    int stuck = 0;
    for (int i = 0; i < s->o.max_threads; i++) {
        if (atomic_load(&s->threads[i].in_use) == SV_SLOT_FREE)
            continue;
        if (pthread_timedjoin_np(s->threads[i].tid, NULL, &deadline) != 0)
            stuck++;
        else
            atomic_store(&s->threads[i].in_use, SV_SLOT_FREE);
    }
    if (stuck)
        return stuck; /* their connections stay open until the process exits */
    /* threads are gone: close what is left (force_shutdown or halt) */
    for (size_t ci = 0; ci < s->n_chunks; ci++) {
        sv_conn_t *chunk = atomic_load(&s->chunks[ci]);
        for (int k = 0; chunk && k < SV_CONN_CHUNK; k++)
            if (atomic_load(&chunk[k].state) & C_OPEN) {
                sv_tls_conn_free(chunk[k].tls);
                chunk[k].tls = NULL;
                close(chunk[k].fd);
            }
    }
    s->started = false;
    return 0;
}

void sv_server_forget_in_child(sv_server_t *s)
{
    for (size_t ci = 0; ci < s->n_chunks; ci++) {
        sv_conn_t *chunk = atomic_load(&s->chunks[ci]);
        for (int k = 0; chunk && k < SV_CONN_CHUNK; k++) {
            sv_conn_t *c = &chunk[k];
            if (!(atomic_load(&c->state) & C_OPEN))
                continue;
            sv_tls_conn_free(c->tls);
            c->tls = NULL;
            close(c->fd);
            /* a body or a response backlog in a temp file, a file being sent: the parent's */
            if (c->x && c->x->body_fd >= 0)
                close(c->x->body_fd);
            if (c->x && c->x->file_fd >= 0)
                close(c->x->file_fd);
        }
    }
    /* the threads that cached these are not in this process */
    for (int i = 0; s->threads && i < s->o.max_threads; i++)
        free_cache(&s->threads[i]);
    if (s->epfd >= 0)
        close(s->epfd);
    if (s->wake_fd >= 0)
        close(s->wake_fd);
    s->epfd = s->wake_fd = -1;
    s->started = false;
}

void sv_server_free(sv_server_t *s)
{
    if (!s)
        return;
    if (s->epfd >= 0)
        close(s->epfd);
    if (s->wake_fd >= 0)
        close(s->wake_fd);
    for (size_t ci = 0; ci < s->n_chunks; ci++) {
        sv_conn_t *chunk = atomic_load(&s->chunks[ci]);
        for (int k = 0; chunk && k < SV_CONN_CHUNK; k++)
            sv_exch_free(chunk[k].x);
        free(chunk);
    }
    for (int i = 0; s->threads && i < s->o.max_threads; i++)
        free_cache(&s->threads[i]); /* joined or never started: theirs to free now */
    free(s->chunks);
    free(s->threads);
    free(s->parked);
    free(s->batch);
    free(s);
}

/* ---- stats ------------------------------------------------------------ */

int sv_server_lost_threads(const sv_server_t *s)
{
    return atomic_load(&((sv_server_t *)s)->n_expired);
}

uint64_t sv_server_app_timeouts(const sv_server_t *s)
{
    return atomic_load(&((sv_server_t *)s)->app_timeouts);
}

uint64_t sv_server_requests(const sv_server_t *s)
{
    uint64_t n = 0;
    for (int i = 0; i < s->o.max_threads; i++)
        n += atomic_load_explicit(&s->threads[i].requests, memory_order_relaxed);
    return n;
}

void sv_server_stats(sv_server_t *s, sv_server_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    int busy = atomic_load(&s->n_busy);
    out->running = atomic_load(&s->n_threads);
    out->busy_threads = busy;
    out->max_threads = s->o.max_threads;
    out->pool_capacity = s->o.max_threads - busy > 0 ? s->o.max_threads - busy : 0;
    out->requests_count = sv_server_requests(s);
    out->connections = atomic_load(&s->n_conns);
    out->connections_max = atomic_exchange(&s->conns_max, out->connections);
    out->app_timeouts = atomic_load(&s->app_timeouts);
    for (int i = 0; i < s->o.max_threads; i++)
        out->app_ns_total += atomic_load_explicit(&s->threads[i].app_ns, memory_order_relaxed);
    out->parked_threads = atomic_load(&s->n_parked);
    out->body_memory = atomic_load_explicit(&s->body_mem, memory_order_relaxed);
    out->bodies_spooled = atomic_load_explicit(&s->bodies_spooled, memory_order_relaxed);
    out->connections_rebalanced = atomic_load_explicit(&s->rebalanced, memory_order_relaxed);
    for (int i = 0; i < s->o.n_listeners; i++) {
        int q = sv_listener_queue_len(&s->o.listeners[i]);
        if (q > 0)
            out->backlog += q;
    }
}

bool sv_server_progressing(sv_server_t *s)
{
    uint64_t p = atomic_load(&s->progress);
    bool moved = p != s->progress_seen;
    s->progress_seen = p;
    /* all threads inside the app and none came out: stuck */
    return moved || atomic_load(&s->n_busy) < atomic_load(&s->n_threads) ||
           atomic_load(&s->n_threads) < s->o.max_threads;
}

void sv_server_thread_stacks(sv_server_t *s, void (*cb)(void *arg, const char *label, const sv_bt_t *bt),
                             void *arg)
{
    for (int i = 0; i < s->o.max_threads; i++) {
        sv_thread_t *t = &s->threads[i];
        if (atomic_load(&t->in_use) != SV_SLOT_RUNNING)
            continue;
        char label[128];
        int64_t since = atomic_load(&t->app_since_ns);
        int tid = atomic_load(&t->os_tid);
        if (since)
            snprintf(label, sizeof(label), "Thread: TID-%d serving thread %d: inside the app for %.1f ms", tid, i,
                     (double)(sv_now_ns() - since) / 1e6);
        else
            snprintf(label, sizeof(label), "Thread: TID-%d serving thread %d: waiting for work", tid, i);
        bool got = tid > 0 && sv_bt_capture_thread(&t->bt, tid, 200) > 0;
        cb(arg, label, got ? &t->bt.bt : NULL);
    }
}

static void log_stack_cb(void *arg, const char *label, const sv_bt_t *bt)
{
    (void)arg;
    sv_log("%s", label);
    if (bt)
        sv_bt_log(bt, "    ", false);
}

void sv_server_dump_threads(sv_server_t *s)
{
    sv_server_thread_stacks(s, log_stack_cb, NULL);
}
