/*
 * server/internal.h: internal to src/server. Connections, threads, the
 * server struct, and the functions the files of this module share.
 */
#ifndef SV_SERVER_INTERNAL_H
#define SV_SERVER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "core/buf.h"
#include "os/backtrace.h"
#include "http/proxy.h"
#include "http/response.h"
#include "server/server.h"

/* A minimum data rate is checked over windows: bytes at the window's start, and when it began. */
typedef struct sv_rate {
    int64_t ms;
    int64_t bytes;
} sv_rate_t;

/*
 * A connection slot's state word: generation in the high 32 bits, flags in
 * the low ones. The generation changes at every close, so an epoll event
 * carrying an older generation is recognised as stale and dropped; slots are
 * never freed, so reading a stale slot is always safe.
 */
#define C_OPEN 1u    /* a live connection occupies the slot */
#define C_OWNED 2u   /* a thread (or the sweeper) is working on it */
#define C_PENDING 4u /* an event arrived while owned: the owner runs again */
#define C_GEN(s) ((uint32_t)((s) >> 32))
#define C_MAKE(gen, flags) (((uint64_t)(gen) << 32) | (flags))

/* What a connection is doing; read by the sweeper to pick a timeout. */
typedef enum conn_phase {
    PH_FREE = 0,
    PH_NEW,    /* accepted, nothing received yet */
    PH_IDLE,   /* keep-alive, waiting for the next request */
    PH_HEAD,   /* part of a request head received */
    PH_BODY,   /* head complete, body arriving (buffered) */
    PH_APP,    /* the app is running for it */
    PH_WRITE,  /* a response waits for the client to read */
    PH_LINGER, /* response sent, our side shut, discarding input until EOF */
} conn_phase_t;

/* How the current response's body is being produced. */
typedef enum res_mode { RES_NONE = 0, RES_DONE, RES_STREAM, RES_FILE } res_mode_t;

/*
 * The exchange: everything a connection needs only while a request is on it
 * (being read, in the app, or its response being written). An idle
 * keep-alive connection has none: when it has nothing buffered and nothing
 * to write, its exchange (with its buffers) goes back to the serving
 * thread's cache, and the next read on any connection takes the cached one
 * (server.c, sv_server_lend_exch). So 10,000 idle connections cost 10,000
 * slots, and a thread serving connection after connection reuses one
 * exchange and never calls malloc.
 */
typedef struct sv_exch {
    sv_buf_t rbuf;           /* received bytes: [0, head_len) is the current head */
    size_t rpos;             /* bytes of rbuf already given to the parser */
    sv_http_parser_t parser;
    sv_http_req_t req;
    sv_http_header_t *headers; /* max_headers entries, allocated with the exchange */
    bool head_done, msg_done;
    bool continue_sent;
    int64_t req_start_ms;
    sv_rate_t rd_rate;       /* body arrival, for min_request_data_rate */
    sv_buf_t scratch;        /* authority, path and query copies */
    uint32_t path_off, query_off, scratch_keep;
    char fwd[48];            /* this request's client from a forwarded-for header (remote.c): "" not worked out */

    /* the request body: whole before the app runs (spool.c) */
    sv_buf_t body;           /* in memory: up to body_buffer_size, within the worker's body_memory_limit */
    size_t body_charged;     /* bytes of body counted in the worker's body memory */
    int body_fd;             /* or in an unlinked temp file; -1 */
    int64_t body_len;        /* bytes of body, wherever they are */
    int64_t body_off;        /* bytes already read by the app */
    void *body_map;          /* serval_request_body's mapping of body_fd */

    /* the response */
    bool res_pending;        /* a response is being produced or sent: response_done when it is out */
    int status;
    res_mode_t res_mode;
    sv_http_framing_t framing; /* fixed when the head is written */
    sv_buf_t res_headers;    /* "Name: value\r\n" lines added by the app */
    bool res_has_ctype;
    bool head_written;       /* streamed: the head went out */
    bool res_failed;         /* a streamed write failed: the response is cut, the connection closes */
    bool close_after;
    int64_t res_bytes;       /* body bytes, for the request log */
    sv_buf_t out;            /* bytes waiting to be written */
    size_t out_off;
    int file_fd;             /* a file response, or the spool of a streamed one (spill) */
    bool spill;              /* file_fd is our spool: appended to, kept open until the response is done */
    int64_t spool_charged;   /* bytes of the spool counted in the process's spool_bytes */
    int64_t spool_at_try;    /* file_left at the last send tried while blocked */
    int64_t file_off, file_left;
    int64_t last_progress_ms;
    int64_t delivered_seen;  /* bytes the client had acknowledged at the last look */
    bool out_blocked;        /* output is waiting for the client since wr_rate.ms */
    sv_rate_t wr_rate;       /* for min_response_data_rate */
    int64_t app_start_ns;
    int64_t app_deadline_ms; /* app_timeout: when the running app call is over (0 = none) */
    struct sv_thread *app_thread; /* the thread running the app for it (app_timeout) */
} sv_exch_t;

/*
 * A connection's slot: what it keeps for its whole life, idle or not. Kept
 * small (an idle connection costs this and nothing else); the per-request
 * state is in the exchange x. A new per-connection step (say, reading a
 * PROXY protocol header before the first request) belongs in conn_run, on
 * the bytes of x->rbuf, before the first parse.
 */
typedef struct sv_conn {
    _Atomic uint64_t state;
    _Atomic int64_t deadline_ms;  /* when the sweeper acts (owner writes) */
    _Atomic int64_t phase_since_ms;
    _Atomic int phase;            /* conn_phase_t */
    int fd;
    bool is_unix;
    bool out_armed;          /* EPOLLOUT is in the event mask (a write blocked once) */
    bool nodelay;            /* TCP_NODELAY set */
    bool proxy_wait;         /* a PROXY header must come first (remote.c) */
    bool drained;            /* the last read found the socket empty */
    bool reset_on_close;     /* closing drops unsent output with a reset (a client cut for being slow) */
    unsigned served;         /* requests answered on this connection */
    sv_server_t *srv;
    void *tls;               /* ssl:// connection: its TLS object (all I/O goes through it), else NULL */
    sv_exch_t *x;            /* the request on it, NULL while idle (owner only) */
    int64_t last_recv_ms;    /* the last byte from the client */
    int64_t bytes_recv;      /* from the client, this connection */
    int64_t bytes_sent;      /* to the client, this connection */
    char peer[64];           /* the connection's client: its socket's peer, or what a PROXY header said */
} sv_conn_t;

/*
 * A serving thread's slot. A thread that trims itself goes RUNNING -> EXITED
 * and is joined (-> FREE) by whoever needs the slot, the main thread's tick,
 * or a fork's quiesce: nothing forks while a thread is still on its way out
 * (inside libc's or a sanitizer's exit path, which may hold their locks).
 */
enum { SV_SLOT_FREE = 0, SV_SLOT_RUNNING = 1, SV_SLOT_EXITED = 2 };

/*
 * app_timeout bookkeeping of one serving thread, guarded by mu: the thread
 * opens it around each app call, the main thread's tick closes a call that
 * ran past its deadline (deadline.c). Only one side writes to the client's
 * socket: whoever moves state away from DL_OPEN.
 */
enum { DL_IDLE = 0, DL_OPEN, DL_SENT, DL_TAKEN };
typedef struct sv_deadline_slot {
    pthread_mutex_t mu;
    int state;               /* DL_*: OPEN nothing sent yet, SENT the app's response has begun, TAKEN 504 sent */
    bool expired;            /* the deadline fired for this call */
    int64_t start_ms;
    struct sv_conn *conn;
    bool head;               /* a HEAD request: the 504 has no body */
    char line[256];          /* "METHOD TARGET", for the log */
} sv_deadline_slot_t;

/* One serving thread. */
typedef struct sv_thread {
    _Alignas(64) _Atomic int active; /* inside a connection or the app (fork gate) */
    _Atomic int in_use;              /* SV_SLOT_*: free, running, or exited and not joined yet */
    pthread_t tid;
    _Atomic uint64_t requests;
    _Atomic uint64_t app_ns;
    int64_t app_ewma_ns;             /* this thread's recent app time */
    _Atomic int64_t app_since_ns;    /* start of the running app call, 0 = none */
    int64_t next_trim_check_ms;
    sv_server_t *srv;
    int index;
    _Atomic int os_tid;
    /* parking (server.c): futex word, PARK_* */
    _Atomic int wake;
    bool poller;                     /* holds the poll role (only this thread reads or writes it) */
    struct sv_conn *app_conn;        /* the running call's connection (crash forensics) */
    sv_bt_slot_t bt;                 /* stack captures and this thread's last words */
    sv_deadline_slot_t dl;           /* app_timeout (deadline.c) */
    struct sv_exch *spare;           /* its cache of one exchange (server.c): only this thread touches it */
} sv_thread_t;

#define SV_CONN_CHUNK 256
#define SV_MAX_THREADS 1024

/* The main thread's state of rebalancing (rebalance.c). */
typedef struct sv_rebalance {
    int64_t last_ms;     /* the last plan */
    int streak;          /* plans in a row that found this worker clearly over its share */
    bool on;             /* shedding, until the counts are within slack */
    int64_t since_ms;    /* when it began (log) */
    uint64_t at_start;   /* `rebalanced` then (log) */
} sv_rebalance_t;

struct sv_server {
    sv_server_opts_t o;
    int epfd;
    int wake_fd;               /* eventfd, level-triggered: wakes every thread at stop */
    bool started;
    _Atomic bool stop;
    _Atomic bool draining;
    _Atomic bool accepting;
    _Atomic bool paused;       /* fork gate closed */
    pthread_mutex_t gate_mu;
    pthread_cond_t gate_cv;
    pthread_mutex_t grow_mu;   /* conn chunk table growth, thread start */

    _Atomic(sv_conn_t *) *chunks; /* slot table, indexed by fd / SV_CONN_CHUNK */
    size_t n_chunks;

    sv_thread_t *threads;      /* max_threads entries */
    _Atomic int n_threads;
    _Atomic int n_busy;        /* app calls running */
    _Atomic int n_conns;       /* counted from accept4 on (see on_listener) */
    _Atomic int n_expired;     /* connections held by an app call past app_timeout (not drained) */
    _Atomic uint64_t app_timeouts; /* app calls that ran past app_timeout */
    _Atomic int in_accept;     /* threads between checking `accepting` and counting their fd */
    _Atomic int conns_max;
    _Atomic int64_t body_mem;  /* bytes of request bodies held in memory (body_memory_limit) */
    _Atomic uint64_t bodies_spooled; /* request bodies written to a temp file */
    _Atomic int64_t spool_bytes; /* streamed output waiting in temp files (max_response_buffer) */
    _Atomic int64_t app_ewma_ns; /* recent app call duration, all threads */
    _Atomic uint64_t progress; /* bumped whenever a thread leaves epoll_wait or the app */
    uint64_t progress_seen;
    int64_t drain_started_ms;
    int64_t last_sweep_ms;

    /*
     * Leader/followers (server.c, "The serving model" in docs/architecture.md).
     * One thread at a time holds the poll role: it alone calls epoll_wait and
     * takes events from the batch below, which belongs to the role (handed
     * over with release/acquire on poll_owner). The others park, last in
     * first out; the first parked one is the standby that takes over a role
     * left free too long.
     */
    _Atomic int poll_owner;          /* thread index, -1 = free */
    _Atomic int64_t poll_released_ns; /* when the role was last let go */
    _Atomic int poll_released_by;    /* and by which thread */
    struct epoll_event *batch;       /* BATCH_MAX events, owned by the poll role */
    int batch_n, batch_next;
    int64_t steer_ms;                /* the poll role's last look at the peers while stepped aside */
    pthread_mutex_t park_mu;
    int *parked;                     /* stack of thread indices, [0] = the standby */
    _Atomic int n_parked;
    _Atomic int64_t last_takeover_ms; /* when the standby last took a role left free */
    pthread_mutex_t listen_mu;       /* registering or removing the listeners */
    _Atomic bool listening;          /* the listeners are in the epoll set */
    _Atomic int load_end;            /* slots past this one are unused (tick, from the shared table) */
    int pid;                         /* this process (load slot ownership), set at start */
    /* keep-alive connections moved to other workers (rebalance.c) */
    _Atomic int shed_quota;          /* may still be closed after their response in this period */
    _Atomic uint64_t rebalanced;     /* closed so since start (stats) */
    sv_rebalance_t rb;               /* the main thread's plan */
};

/* conn.c */
void sv_conn_on_event(sv_server_t *s, sv_thread_t *t, uint64_t data);
void sv_conn_hand_back(sv_server_t *s, uint64_t data);
/*
 * Take an accepted fd. On a serving thread (t) a TCP connection is served
 * at once (its data is in: TCP_DEFER_ACCEPT) and registered with epoll only if
 * it stays open; t NULL (the main thread) only registers it. Closes fd and
 * returns <0 on failure.
 */
int sv_conn_accept(sv_server_t *s, sv_thread_t *t, int fd, bool is_unix, struct sv_tls *tls, int64_t now_ms);
void sv_conn_sweep(sv_server_t *s, sv_conn_t *c, int64_t now_ms);
sv_conn_t *sv_conn_slot(sv_server_t *s, int fd, bool create);
void sv_conn_set_phase(sv_conn_t *c, conn_phase_t ph, int64_t deadline_ms, int64_t now_ms);
/* Write pending output without blocking: 1 done, 0 would block, <0 error. */
int sv_conn_flush(sv_conn_t *c);
/* Set TCP_NODELAY once the connection carries more than one response or a stream. */
void sv_conn_nodelay(sv_conn_t *c);
/*
 * On the app's thread: write until at most keep bytes are pending, waiting
 * for the client within the write bounds (write_timeout without progress,
 * min_response_data_rate). 0, -ETIMEDOUT, -EPIPE or another error.
 */
int sv_conn_flush_wait(sv_conn_t *c, int64_t keep);
/* Output not yet written: memory and spool. */
int64_t sv_conn_pending(const sv_conn_t *c);
/* Feed buffered bytes to the parser. */
int sv_conn_parse(sv_conn_t *c);
/* Read from the socket once into rbuf: >0 bytes, 0 EOF, -EAGAIN, <0 error. */
int sv_conn_read(sv_conn_t *c);

/* io.c: the TLS side of a connection's I/O (c->tls set) */
void *sv_io_tls_new(struct sv_tls *tls, sv_conn_t *c, int fd);
/* TCP_NODELAY on a new TLS connection (inherited from its listener when it can be). */
void sv_io_tls_nodelay(sv_conn_t *c, struct sv_tls *tls);
/* Send close_notify (if possible) and free the TLS object; the fd stays open. */
void sv_io_close_tls(sv_conn_t *c);
/* One TLS read into rbuf: >0 bytes, 0 EOF, -EAGAIN (*want_out: waiting to write), <0 error. */
int sv_io_tls_read(sv_conn_t *c, size_t space, bool *want_out);
/* send, or through TLS: >0 bytes, -EAGAIN, <0 error. */
ssize_t sv_io_send(sv_conn_t *c, const void *data, size_t len);
/* Our side is done sending: close_notify first on TLS, then the TCP half-close. */
void sv_io_shut_wr(sv_conn_t *c);
/* TLS has no sendfile: the next piece of the file into out (out is flushed). */
int sv_io_file_refill(sv_conn_t *c);

/* remote.c: who the client is (set_remote_address, http/proxy.h) */
/* A PROXY header first on the connection: 1 read (or none expected), 0 wait for more bytes, <0 close. */
int sv_remote_proxy(sv_conn_t *c);
/* The client's address for the request log: without port or brackets, into out. */
void sv_remote_log_host(sv_conn_t *c, char *out, size_t cap);

/* spool.c: request bodies and streamed output beyond memory */
/* The parser's body callback: memory within the budgets, else the temp file. <0 on failure. */
int sv_body_put(void *conn, const char *data, size_t len);
/* Give back the body's memory and file (request done or connection closed). */
void sv_body_release(sv_conn_t *c);
/* Queue response bytes: memory up to a small bound, then the spool file; -ENOBUFS when that is full. */
int sv_out_emit(sv_conn_t *c, const void *data, size_t len);
int sv_out_emitv(sv_conn_t *c, const struct iovec *iov, int n);
/* The response is done: close its spool. */
void sv_out_release(sv_conn_t *c);
/* n bytes of the spool went out. */
void sv_out_spool_sent(sv_conn_t *c, int64_t n);
/* The process's spooled output has reached max_response_buffer. */
bool sv_out_spool_full(const sv_server_t *s);
/* Pending output an app's write leaves behind without waiting for its client. */
int64_t sv_out_wait_limit(const sv_conn_t *c);

/* request.c: the serval_request_* / serval_response_* implementation */
void sv_res_begin(sv_conn_t *c);
/* Finish whatever the app left: 500 if nothing, terminating chunk if streamed. */
void sv_res_finish(sv_conn_t *c);
/* Queue an error response (the response pending) and mark the connection to close. */
void sv_res_error(sv_conn_t *c, int status, const char *reason);
/* Date header value for now (per-thread cache). */
const char *sv_res_date(void);
void sv_req_prepare(sv_conn_t *c);
void sv_req_log(sv_conn_t *c, int64_t started_ns);

/* deadline.c: app_timeout and crash forensics */
void sv_deadline_thread_init(sv_thread_t *t);
/* Around an app call; leave returns true when the deadline answered the client: drop the response, close. */
void sv_deadline_enter(sv_server_t *s, sv_thread_t *t, sv_conn_t *c);
bool sv_deadline_leave(sv_server_t *s, sv_thread_t *t);
/* Before the app's own bytes go to the socket during the call: false once the deadline answered. */
bool sv_deadline_claim(sv_conn_t *c);
/* Main thread: expire overdue calls, log faults. */
void sv_deadline_tick(sv_server_t *s, int64_t now_ms);

/* rebalance.c: closing keep-alive connections of a worker over its share (docs/timeouts.md) */
/* A worker's share of the connections: fair; shedding starts above fair + hi and stops at fair + lo. */
typedef struct sv_rb_share {
    double fair, hi, lo;
} sv_rb_share_t;
/* For a worker of max threads, when the live workers (it included) hold total_conns on total_max threads. */
sv_rb_share_t sv_rebalance_share(int max, int total_conns, int total_max);
/* What a worker sees: itself (conns, max) and the live workers that take connections, itself included. */
typedef struct sv_rb_view {
    int conns, max;       /* this worker's open connections and max_threads */
    int total, total_max; /* of all live workers, this one included */
    int peers;            /* live peers */
    int room;             /* the peers' threads that none of their connections speaks for */
    bool target;          /* some peer holds clearly less than its share (below fair - lo) */
} sv_rb_view_t;
/*
 * How many connections this worker would move (0: none, > 0: shed; on:
 * already shedding, so the lower stop mark applies): by share, down to
 * fair + lo while a peer is clearly under its own; by capacity, while it
 * has more connections than threads and a peer has threads free.
 */
double sv_rebalance_need(const sv_rb_view_t *v, bool on);
/* Connections to close in one period for a worker holding conns that would move need: 0 when none. */
int sv_rebalance_batch(int conns, double need);
/* Main thread, every tick of a cluster worker: plan the next period's quota. */
void sv_rebalance_tick(sv_server_t *s, int64_t now_ms);
/*
 * While framing a keep-alive response of known length: true when it is to
 * carry "Connection: close" so that its client moves (a unit of the quota
 * taken and counted). False whenever more of the client is buffered.
 */
bool sv_rebalance_shed(sv_conn_t *c);

/* server.c */
/* The live peer in load slot i (not this worker, taking connections, heartbeat fresh), else NULL. */
const sv_load_slot_t *sv_server_peer(sv_server_t *s, int i, int64_t now_ms);
void sv_server_app_enter(sv_server_t *s, sv_thread_t *t, sv_conn_t *c);
/* True when app_timeout answered the client meanwhile: the response must be dropped (sv_deadline_leave). */
bool sv_server_app_leave(sv_server_t *s, sv_thread_t *t, int64_t ns);
void sv_server_requeue(sv_server_t *s, sv_conn_t *c);
/*
 * Exchanges (see sv_exch_t). sv_server_idle_exch: the connection is done
 * with its exchange (idle: nothing buffered, nothing to write; or closed,
 * its files and charges released); it goes to the calling serving thread's
 * cache (or is freed: the main thread keeps none) and c->x is NULL. sv_server_lend_exch: before a read, give
 * the connection an exchange (the cache's, or a new one), reset for a new
 * request; -ENOMEM when that fails.
 */
void sv_server_idle_exch(sv_conn_t *c);
int sv_server_lend_exch(sv_conn_t *c);
/* Free an exchange and its buffers (no files: those are closed before). */
void sv_exch_free(sv_exch_t *x);

#endif
