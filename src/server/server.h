/*
 * server.h: one serving process: listeners, connections, threads, the app.
 *
 * Threads. Up to max_threads threads share one epoll instance, one at a
 * time: the thread holding the poll role waits in epoll_wait and lets the
 * role go before each app call (at once to a parked thread when the app is
 * slow; to a standby that takes it if the call runs long when the app is
 * fast), the others are parked. Every connection is registered once,
 * edge-triggered; whichever thread takes its event takes ownership (an atomic flag in the connection), reads,
 * parses, calls the app on that same thread, writes, and gives ownership
 * back. A connection that is idle or still sending a partial request holds
 * no thread. Events that arrive while another thread owns the connection are
 * remembered (a pending flag) and handled by the owner before it lets go.
 * So any free thread takes any ready request, at most max_threads app calls
 * run at once, and a request costs no thread hand-off.
 *
 * The main thread never serves: it calls sv_server_tick every ~20 ms to
 * enforce client timeouts (a sweep every ~100 ms) and drain, and to wake the
 * standby when an app call holds the poll role (server.c), and uses the
 * other calls to stop, quiesce for a fork, and read stats.
 */
#ifndef SV_SERVER_SERVER_H
#define SV_SERVER_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "app/app.h"
#include "http/parser.h"
#include "os/backtrace.h"
#include "os/listen.h"

typedef struct sv_server sv_server_t;

/* Per-worker busy counts shared between workers (cluster load balancing). */
typedef struct sv_load_slot {
    _Alignas(64) int busy;  /* app calls running */
    int max;                /* max_threads; 0 = slot unused */
    uint64_t accepted;      /* connections accepted */
    int conns;              /* open connections */
    int listening;          /* 1: its listeners are in its epoll set (it takes new connections) */
    int recheck;            /* set by a peer: look again whether to take new connections */
    int64_t beat_ms;        /* monotonic ms of the worker's last tick; stale = ignore the slot */
    int pid;                /* the worker that last published here (a replacement takes over its old one's slot) */
} sv_load_slot_t;

typedef struct sv_server_opts {
    sv_listener_t *listeners;   /* borrowed; stay owned by the caller */
    int n_listeners;
    int min_threads, max_threads;
    sv_http_limits_t limits;
    size_t body_buffer_size;     /* a body up to this is held in memory, larger ones in a temp file */
    size_t body_memory_limit;    /* all bodies in memory in this process; past it they go to temp files */
    int64_t max_response_buffer; /* streamed output in temp files, per process, before apps' writes wait */
    int64_t min_request_data_rate;  /* bytes/s a body must keep up once past the grace; 0 = off */
    int64_t min_response_data_rate; /* bytes/s a client must read pending output at; 0 = off */
    int64_t data_rate_grace_ms;  /* the window over which both rates are measured */
    int max_keep_alive;          /* 0 = unlimited */
    int64_t persistent_timeout_ms;
    int64_t first_data_timeout_ms;
    int64_t request_timeout_ms;
    int64_t write_timeout_ms;    /* no progress writing a response */
    int64_t app_timeout_ms;      /* an app call longer than this is answered 504 (0 = off) */
    bool log_requests;
    const struct sv_remote *remote; /* set_remote_address (http/proxy.h); NULL: the socket's peer */
    sv_app_t *app;               /* borrowed, initialised */
    /* cluster balancing: NULL in single mode */
    sv_load_slot_t *load;        /* shared table */
    int n_load;
    int load_index;              /* this worker's slot */
    double wait_for_less_busy;   /* seconds, max delay before accept when busier than a peer */
} sv_server_opts_t;

typedef struct sv_server_stats {
    int backlog;             /* connections waiting in the listeners' accept queues */
    int running;             /* threads started */
    int pool_capacity;       /* app calls that could start now */
    int busy_threads;        /* app calls running */
    int max_threads;
    uint64_t requests_count; /* responses completed since start */
    int connections;         /* open client connections */
    int connections_max;     /* most open since the previous read */
    uint64_t app_ns_total;   /* time spent in the app */
    int parked_threads;      /* threads parked (neither polling nor serving) */
    uint64_t app_timeouts;   /* app calls that ran past app_timeout */
    int64_t body_memory;     /* bytes of request bodies held in memory now */
    uint64_t bodies_spooled; /* request bodies written to a temp file since start */
    uint64_t connections_rebalanced; /* keep-alive connections closed after a response to move them to another worker */
} sv_server_stats_t;

/* Allocate; nothing started. Returns NULL on allocation failure. */
sv_server_t *sv_server_new(const sv_server_opts_t *opts);
/* Create the epoll set, register listeners, start min(1..) threads. */
int sv_server_start(sv_server_t *s);
/* Timeouts, drain, the standby's watch; call from the main thread about every 20 ms. */
void sv_server_tick(sv_server_t *s, int64_t now_ms);
/*
 * Stop taking new connections: take the listeners out of the epoll set,
 * accept once more whatever is already queued (so nothing queued is lost),
 * and if close_listeners, close this process's copies.
 */
void sv_server_stop_accepting(sv_server_t *s, bool close_listeners);
/*
 * Graceful drain: responses from now on close their connections, idle
 * keep-alive connections are closed, requests in progress finish.
 */
void sv_server_drain(sv_server_t *s);
/* Open client connections. */
int sv_server_connections(const sv_server_t *s);
/*
 * Stop all threads and close every connection. Threads still inside the app
 * after join_timeout_ms are abandoned (force_shutdown_after): returns how
 * many; then no hook or fini may run and the process should _exit.
 */
int sv_server_shutdown(sv_server_t *s, int join_timeout_ms);
void sv_server_free(sv_server_t *s);
/* Fill *out; resets connections_max. */
void sv_server_stats(sv_server_t *s, sv_server_stats_t *out);
/* App calls that ran past app_timeout since start (cheap). */
uint64_t sv_server_app_timeouts(const sv_server_t *s);
/* Threads inside an app call that ran past app_timeout right now (lost until they return). */
int sv_server_lost_threads(const sv_server_t *s);
/* Requests completed since start (cheap). */
uint64_t sv_server_requests(const sv_server_t *s);
/*
 * Has any thread made progress since the previous call? False when every
 * thread has been inside the app the whole time (all stuck), so the worker
 * stops checking in and the master's worker_timeout applies.
 */
bool sv_server_progressing(sv_server_t *s);

/* Log one line per serving thread: its id and what it is doing, then its stack (SIGPWR / servalctl info). */
void sv_server_dump_threads(sv_server_t *s);
/*
 * Each running serving thread's stack, taken by signal (each thread has
 * 200 ms to answer; one that does not is passed with bt NULL): cb gets a
 * label "Thread: TID-N serving thread I: ..." as the dump's.
 */
void sv_server_thread_stacks(sv_server_t *s, void (*cb)(void *arg, const char *label, const sv_bt_t *bt),
                             void *arg);

/*
 * Fork gate. sv_server_quiesce waits (up to timeout_ms) until no thread is
 * handling a connection, inside the app, starting or exiting (exited threads
 * are joined), and holds every thread at the gate: each is then in
 * epoll_wait, parked or at the gate, holding no lock of ours, libc's or a
 * sanitizer's. Returns 0 or -ETIMEDOUT (then nothing is held).
 * sv_server_unquiesce lets them go. Between the two the calling thread may
 * fork safely.
 */
int sv_server_quiesce(sv_server_t *s, int timeout_ms);
void sv_server_unquiesce(sv_server_t *s);
/*
 * In a child forked while quiesced: close the parent's client connections,
 * epoll and wake fds (the listeners stay). The server must not be used after.
 */
void sv_server_forget_in_child(sv_server_t *s);

#endif
