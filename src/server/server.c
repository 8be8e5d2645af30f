#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/time.h"
#include "os/sig.h"
#include "server/internal.h"

#define TAG_LISTENER (1ull << 63)
#define TAG_WAKE (1ull << 62)
#define BATCH_MAX 32
#define ACCEPT_BATCH 64
#define THREAD_TRIM_MS 30000
/* An app call slower than this hands the rest of its batch to other threads. */
#define SLOW_APP_NS 1000000
/* Above this average app time, threads take one event at a time. */
#define BATCHING_LIMIT_NS 100000
/*
 * Below this average app time one thread per process keeps up with its
 * share of the cores, and more threads only add context switches; above it
 * a thread is added whenever all are in the app.
 */
#define GROW_LIMIT_NS 20000
/* A sample counts at most this much in the averages above (see sv_server_app_leave). */
#define EWMA_SAMPLE_MAX_NS (2 * BATCHING_LIMIT_NS)
/* All threads inside one app call each for this long: add a thread whatever the average says. */
#define STUCK_NS 100000000

int64_t sv_server_now_ms(void)
{
    return sv_now_ms();
}

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
    /* one chunk pointer per SV_CONN_CHUNK fds up to the fd limit */
    long maxfd = sysconf(_SC_OPEN_MAX);
    s->n_chunks = (size_t)((maxfd > 0 ? maxfd : 65536) + SV_CONN_CHUNK - 1) / SV_CONN_CHUNK;
    s->chunks = calloc(s->n_chunks, sizeof(*s->chunks));
    if (!s->threads || !s->chunks) {
        free(s->threads);
        free(s->chunks);
        free(s);
        return NULL;
    }
    pthread_mutex_init(&s->gate_mu, NULL);
    pthread_cond_init(&s->gate_cv, NULL);
    pthread_mutex_init(&s->grow_mu, NULL);
    for (int i = 0; i < s->o.max_threads; i++)
        sv_deadline_thread_init(&s->threads[i]);
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

/* ---- load balancing between workers ----------------------------------- */

static void publish_load(sv_server_t *s, int busy)
{
    if (s->o.load)
        __atomic_store_n(&s->o.load[s->o.load_index].busy, busy, __ATOMIC_RELAXED);
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
    for (int i = 0; i < s->o.n_load && !peer_less_busy; i++) {
        const sv_load_slot_t *l = &s->o.load[i];
        if (i != s->o.load_index && __atomic_load_n(&l->max, __ATOMIC_RELAXED) > 0 &&
            __atomic_load_n(&l->busy, __ATOMIC_RELAXED) < busy)
            peer_less_busy = true;
    }
    if (!peer_less_busy)
        return;
    int64_t ns = (int64_t)(s->o.wait_for_less_busy * 1e9 * busy / s->o.max_threads);
    struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
    nanosleep(&ts, NULL);
}

/*
 * With exclusive wake-ups the kernel hands a connection to the first worker
 * in the listener's wait queue that has a thread waiting, so light traffic
 * would all go to one worker. A worker that has accepted well ahead of the
 * least-served peer moves itself to the back of the queue.
 */
#define ACCEPT_SKEW 16

static void balance_accepts(sv_server_t *s, int idx)
{
    if (!s->o.load)
        return;
    sv_load_slot_t *me = &s->o.load[s->o.load_index];
    uint64_t mine = __atomic_add_fetch(&me->accepted, 1, __ATOMIC_RELAXED);
    if (mine % 4)
        return;
    uint64_t least = UINT64_MAX;
    for (int i = 0; i < s->o.n_load; i++)
        if (i != s->o.load_index && __atomic_load_n(&s->o.load[i].max, __ATOMIC_RELAXED) > 0)
            least = __atomic_load_n(&s->o.load[i].accepted, __ATOMIC_RELAXED) < least
                        ? __atomic_load_n(&s->o.load[i].accepted, __ATOMIC_RELAXED)
                        : least;
    if (least == UINT64_MAX || mine <= least + ACCEPT_SKEW)
        return;
    /* catch up the counter so the peer gets a run of its own before the next move */
    __atomic_store_n(&me->accepted, least, __ATOMIC_RELAXED);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.u64 = TAG_LISTENER | (uint64_t)idx};
    int fd = s->o.listeners[idx].fd;
    if (atomic_load(&s->accepting) && epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, NULL) == 0)
        epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev);
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
    sv_conn_accept(s, t, fd, l->bind.kind == SV_BIND_UNIX, sv_now_ms());
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

/* ---- threads ---------------------------------------------------------- */

static int start_thread(sv_server_t *s);

void sv_server_app_enter(sv_server_t *s, sv_thread_t *t, sv_conn_t *c)
{
    sv_deadline_enter(s, t, c);
    atomic_store_explicit(&t->app_since_ns, sv_now_ns(), memory_order_relaxed);
    int busy = atomic_fetch_add(&s->n_busy, 1) + 1;
    publish_load(s, busy);
    /* keep one thread free to take new work while the app is slow and capacity remains */
    if (busy >= atomic_load(&s->n_threads) && atomic_load(&s->n_threads) < s->o.max_threads &&
        atomic_load_explicit(&s->app_ewma_ns, memory_order_relaxed) > GROW_LIMIT_NS)
        start_thread(s);
}

bool sv_server_app_leave(sv_server_t *s, sv_thread_t *t, int64_t ns)
{
    atomic_store_explicit(&t->app_since_ns, 0, memory_order_relaxed);
    bool taken = sv_deadline_leave(s, t);
    int busy = atomic_fetch_sub(&s->n_busy, 1) - 1;
    publish_load(s, busy);
    atomic_fetch_add_explicit(&t->app_ns, (uint64_t)ns, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->progress, 1, memory_order_relaxed);
    /*
     * The averages decide batching and growth. They see wall time, and on a
     * busy machine a fast call is now and then preempted for milliseconds;
     * one such sample must not make a fast app look slow (a thread too many,
     * one event per epoll_wait). A slow app still gets there: clamped samples
     * stay well above both limits.
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

static void handle_batch(sv_server_t *s, sv_thread_t *t, struct epoll_event *ev, int n)
{
    for (int i = 0; i < n; i++) {
        uint64_t d = ev[i].data.u64;
        if (d & TAG_WAKE)
            continue;
        int64_t before = atomic_load_explicit(&t->app_ns, memory_order_relaxed);
        if (d & TAG_LISTENER)
            on_listener(s, t, (int)(d & 0xffff));
        else
            sv_conn_on_event(s, t, d);
        int64_t spent = (int64_t)atomic_load_explicit(&t->app_ns, memory_order_relaxed) - before;
        if (spent > SLOW_APP_NS && i + 1 < n) {
            /* a slow app call held these events back: let idle threads have them */
            for (int j = i + 1; j < n; j++) {
                uint64_t dj = ev[j].data.u64;
                if (!(dj & (TAG_WAKE | TAG_LISTENER)))
                    sv_conn_hand_back(s, dj);
            }
            return;
        }
    }
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

static void *thread_main(void *arg)
{
    sv_thread_t *t = arg;
    sv_server_t *s = t->srv;
    atomic_store(&t->os_tid, (int)syscall(SYS_gettid));
    sv_bt_thread_attach(&t->bt);
    struct epoll_event ev[BATCH_MAX];
    int64_t idle_since = sv_now_ms();
    t->next_trim_check_ms = idle_since + 1000;
    for (;;) {
        int floor = s->o.min_threads > 1 ? s->o.min_threads : 1;
        int timeout = atomic_load(&s->n_threads) > floor ? 1000 : -1;
        int batch = t->app_ewma_ns > BATCHING_LIMIT_NS ? 1 : BATCH_MAX;
        atomic_store(&t->active, 0);
        int n = epoll_wait(s->epfd, ev, batch, timeout);
        atomic_store(&t->active, 1);
        atomic_fetch_add_explicit(&s->progress, 1, memory_order_relaxed);
        if (atomic_load(&s->paused))
            gate_wait(s, t);
        if (atomic_load(&s->stop))
            break;
        if (n > 0) {
            handle_batch(s, t, ev, n);
            idle_since = sv_now_ms();
        }
        if (n >= 0 && should_trim(s, t, idle_since)) {
            /* EXITED before inactive: a quiesce never sees this thread quiet and not leaving */
            sv_bt_thread_detach();
            atomic_store(&t->in_use, SV_SLOT_EXITED);
            atomic_store(&t->active, 0);
            return NULL;
        }
    }
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

int sv_server_start(sv_server_t *s)
{
    sv_bt_init();
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (s->epfd < 0)
        return SV_ERRNO();
    s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->wake_fd < 0)
        return SV_ERRNO();
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_WAKE};
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->wake_fd, &ev) < 0)
        return SV_ERRNO();
    int rc = listen_ctl(s, EPOLL_CTL_ADD);
    if (rc < 0)
        return rc;
    if (s->o.load) {
        __atomic_store_n(&s->o.load[s->o.load_index].max, s->o.max_threads, __ATOMIC_RELAXED);
        publish_load(s, 0);
    }
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
    /* after the wait: balance_accepts (inside the window) may have re-added a listener */
    if (s->epfd >= 0)
        listen_ctl(s, EPOLL_CTL_DEL);
    /* whatever the kernel queued for us is served, not dropped */
    int64_t now = sv_now_ms();
    for (int i = 0; i < s->o.n_listeners && close_listeners; i++) {
        sv_listener_t *l = &s->o.listeners[i];
        for (int k = 0; k < ACCEPT_BATCH * 16 && l->fd >= 0; k++) {
            int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0)
                break;
            atomic_fetch_add(&s->n_conns, 1);
            sv_conn_accept(s, NULL, fd, l->bind.kind == SV_BIND_UNIX, now);
        }
        sv_listener_close(l, false);
    }
}

void sv_server_resume_accepting(sv_server_t *s)
{
    atomic_store(&s->accepting, true);
    if (s->epfd >= 0)
        listen_ctl(s, EPOLL_CTL_ADD);
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

void sv_server_tick(sv_server_t *s, int64_t now_ms)
{
    reap_exited(s);
    sv_deadline_tick(s, now_ms);
    if (s->started && !atomic_load(&s->paused) && all_stuck(s))
        start_thread(s);
    if (now_ms - s->last_sweep_ms < 100)
        return;
    s->last_sweep_ms = now_ms;
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
            if (atomic_load(&chunk[k].state) & C_OPEN)
                close(chunk[k].fd);
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
            close(c->fd);
            /* a body or a response backlog in a temp file, a file being sent: the parent's */
            if (c->body_fd >= 0)
                close(c->body_fd);
            if (c->file_fd >= 0)
                close(c->file_fd);
        }
    }
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
        for (int k = 0; chunk && k < SV_CONN_CHUNK; k++) {
            sv_buf_free(&chunk[k].rbuf);
            sv_buf_free(&chunk[k].body);
            sv_buf_free(&chunk[k].out);
            sv_buf_free(&chunk[k].scratch);
            sv_buf_free(&chunk[k].res_headers);
            free(chunk[k].headers);
        }
        free(chunk);
    }
    free(s->chunks);
    free(s->threads);
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
    out->body_memory = atomic_load_explicit(&s->body_mem, memory_order_relaxed);
    out->bodies_spooled = atomic_load_explicit(&s->bodies_spooled, memory_order_relaxed);
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
