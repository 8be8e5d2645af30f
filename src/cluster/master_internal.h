/*
 * master_internal.h: internal to the cluster master (master*.c, phased.c,
 * hot_cluster.c, refork.c, recycle.c, replace.c, molds.c). The master is
 * single-threaded: one event loop (os/loop.h) whose every deadline is a
 * timer (a worker's boot, check-in and stop deadline, the respawn back-off,
 * the mold request's and the preflight's time limits, periodic samples);
 * after each turn, a fixed order of reactions to what the turn changed
 * (reap, the operation's machine, cull, respawn). Every restart kind, and
 * the mold, is a state machine behind sv_machine_t.
 */
#ifndef SV_CLUSTER_MASTER_INTERNAL_H
#define SV_CLUSTER_MASTER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "cluster/ops.h"
#include "cluster/runtime.h"
#include "control/control.h"
#include "os/loop.h"
#include "os/proc.h"
#include "server/server.h"

#define SV_LOAD_SLOTS 256
#define SV_MAX_INDEX 4096

/* What a worker reported in its last ping (Puma's last_status). */
typedef struct sv_wstatus {
    int backlog, running, pool_capacity, busy_threads, max_threads;
    uint64_t requests_count;
    int connections, reactor_max, backlog_max;
    uint64_t app_ms;
    uint64_t rebalanced;     /* keep-alive connections it closed to move them to another worker */
} sv_wstatus_t;

typedef enum sv_death {
    SV_DEATH_STOPPED = 0, /* exited after being told to stop */
    SV_DEATH_CRASH,       /* died by a signal or exited non-zero while serving */
    SV_DEATH_BOOT,        /* failed to boot */
    SV_DEATH_TIMEOUT,     /* killed for not checking in / booting / stopping in time */
    SV_DEATH_LOST,        /* vanished without a status (not our child any more) */
    SV_DEATH_CAUSES
} sv_death_t;

typedef struct sv_master sv_master_t;

typedef struct sv_whandle {
    sv_master_t *master;
    int index;
    pid_t pid;               /* 0 until known (a mold-forked worker reports it) */
    unsigned phase;
    int chan;                /* master's end, -1 once closed */
    bool booted;
    bool stopping;           /* told to stop (or stopping on its own) */
    bool superseded;         /* being replaced: does not count towards the target */
    bool old_image;          /* adopted from the image before a hot restart */
    bool kill_sent;
    sv_death_t kill_cause;   /* why we sent SIGKILL */
    bool exited;             /* reaped */
    int exit_status;
    pid_t forked_from;       /* master pid, or the mold's */
    unsigned generation;     /* mold generation it was forked from (0 = from the master) */
    int64_t spawned_ms, booted_ms, checkin_ms, stop_ms, chan_closed_ms;
    /*
     * Its next deadline (sv_master_rearm computes it from the fields above):
     * boot (not booted), check-in (serving), stop (stopping), and once its
     * channel closed without a reap, the check that it is gone at all.
     */
    sv_timer_t deadline;
    uint64_t seq;             /* creation order among the master's handles (culling) */
    time_t started_wall, checkin_wall;
    bool has_status;
    sv_wstatus_t st;
    sv_mem_t mem;
    int64_t recycle_after;   /* max_requests with jitter, 0 = never */
    char stop_reason[32];
    int op_id;               /* the operation that spawned it, 0 = none */
    int child_fd;            /* the worker's channel end while it waits for the mold, else -1 */
    bool mold_pending;       /* waits for a mold to fork it */
    bool sent_to_mold;       /* the mold was asked to fork it */
    bool replace_stuck;      /* superseded after an app timeout (replace.c) */
    bool op_failure;         /* its boot failure ended an operation (no respawn back-off) */
    bool failure_counted;    /* its boot failure fed the respawn back-off (once: message or exit) */
    int64_t backoff_ms;      /* the back-off it started */
} sv_whandle_t;

typedef enum master_state { M_RUN = 0, M_STOP } master_state_t;

/*
 * A roll (phased.c) as its caller describes it: names for its log lines and
 * which worker it keeps. The roll branches on none of it by kind.
 */
typedef struct sv_roll_spec {
    const char *name;        /* "Phased restart", "Refork": "NAME complete", "NAME failed" */
    const char *label;       /* "phased upgrade", "refork": "Stopping PID for LABEL...", spawn reason */
    const char *stop_reason; /* an old worker's stop reason */
    bool keep_index0;        /* worker 0 stays as it is (a refork: the mold's source, already in the new phase) */
} sv_roll_spec_t;

/* The mold machine's states (molds.c). */
typedef enum sv_mold_state {
    SV_MOLD_NONE = 0,
    SV_MOLD_MAKING,
    SV_MOLD_READY,
    SV_MOLD_RENEWING,
    SV_MOLD_FALLBACK,
} sv_mold_state_t;

/* The mold (fork_worker). */
typedef struct sv_mold {
    pid_t pid;
    int chan;
    bool ready;
    unsigned generation;
    pid_t source_pid;        /* the worker 0 it was forked from */
} sv_mold_handle_t;

struct sv_master {
    sv_runtime_t *rt;
    sv_loop_t *loop;
    sv_control_t *control;
    sv_oplog_t ops;
    int started_op;          /* id of the operation whose start step ran */
    sv_whandle_t **w;
    int nw, cap;
    int target;
    unsigned phase;
    master_state_t state;
    int64_t stop_ms;
    int64_t lame_duck_until_ms; /* shutdown_delay: a TERM arrived; stop at this time (0: none) */
    sv_timer_t lame_duck_timer; /* fires then: the graceful stop */
    bool halting;
    bool wrote_pidfile;      /* this boot wrote the pid file: a failed boot removes it */
    sv_load_slot_t *load;
    bool before_fork_done;
    bool booted_announced;   /* on_booted fired for the current worker set */
    int boot_failures[SV_MAX_INDEX];
    int64_t respawn_at[SV_MAX_INDEX];
    sv_timer_t respawn_timer; /* the next back-off's end, or a retry after a spawn failed */
    sv_timer_t again_timer;   /* at once: react again (a queued operation starts after one ended) */
    sv_timer_t mem_timer;     /* every 2 s: each worker's memory (/proc) */
    sv_timer_t status_timer;  /* every second under systemd: STATUS= */
    sv_rt_timers_t timers;    /* TLS key rotation, the systemd watchdog, tmp_restart (runtime.h) */
    unsigned long deaths[SV_DEATH_CAUSES];
    unsigned long spawned_total;
    unsigned long app_timeouts; /* app calls past app_timeout, reported by workers */
    uint64_t handle_seq;      /* last sv_whandle_t.seq handed out */
    /* the running operation's error, set by its machine with SV_STEP_FAILED */
    char op_error[400];
    /* restart state machines (phased.c, hot_cluster.c, refork.c, recycle.c) */
    struct phased_state {
        enum { PHASED_IDLE = 0, PHASED_ROLLING, PHASED_FAILED } state;
        int replaced;
        int total;
        bool fork_worker;    /* new worker 0 first, the rest from its mold */
        sv_roll_spec_t spec; /* what the caller calls it, what it keeps */
        unsigned prev_phase; /* the phase a failure returns to */
    } phased;
    struct hot_state {
        /* old image: PREFLIGHT, then the exec; new image: ADOPTING until the new workers booted */
        enum { HOT_IDLE = 0, HOT_PREFLIGHT, HOT_ADOPTING, HOT_FAILED } state;
        pid_t preflight_pid; /* the new binary's --check, running */
        int preflight_fd;
        bool preflight_reaped; /* the master's reaper collected it: status below */
        int preflight_status;
        bool preflight_expired;
        sv_timer_t preflight_timer; /* its time limit: sets preflight_expired */
    } hot;
    struct refork_state {
        enum { REFORK_IDLE = 0, REFORK_WAIT_MOLD, REFORK_ROLL, REFORK_FAILED } state;
        int next_threshold;  /* index into refork_thresholds */
        pid_t counted_pid;   /* the worker 0 whose requests the thresholds count */
        unsigned mold_gen;   /* WAIT_MOLD: the mold asked for, and the mold machine's losses then */
        unsigned lost_before;
    } refork;
    struct recycle_state {
        enum { RECYCLE_IDLE = 0, RECYCLE_REPLACING } state;
        sv_whandle_t *old;   /* the worker being replaced; NULL once it exited (recycle_exited) */
        pid_t old_pid;       /* checked at the start: it may be gone between the pick and the start */
    } recycle;
    /* fork_worker's mold: the ready one, and its state machine (molds.c) */
    sv_mold_handle_t mold;
    struct molding {
        sv_mold_state_t state;
        int next_chan;        /* the mold being made (MAKING, RENEWING): its channel, -1 = none */
        unsigned next_gen;    /* and generation, 0 = none */
        sv_timer_t request_timer; /* the mold being made must be ready by then */
        unsigned generation;  /* the last one asked for */
        int failures;         /* losses in a row */
        unsigned lost_total;  /* losses ever: a refork waiting for a mold sees its own fail */
        char lost_why[96];
    } molding;
    bool notified_reloading; /* told systemd RELOADING=1 for the running operation */
};

/* master.c */
/* Fork an existing handle's worker from the master (child_fd: the worker's channel end). */
bool sv_master_fork_handle(sv_master_t *m, sv_whandle_t *h, int child_fd);
/* A handle for a worker that already exists (adopted across a hot restart). */
sv_whandle_t *sv_master_adopt_handle(sv_master_t *m, int index, pid_t pid, int chan);
sv_whandle_t *sv_master_spawn(sv_master_t *m, int index, const char *why);
void sv_master_stop_worker(sv_master_t *m, sv_whandle_t *h, const char *reason);
void sv_master_kill_worker(sv_master_t *m, sv_whandle_t *h, sv_death_t cause);
/* h's state changed (booted, stopping, checked in, channel closed): its deadline timer follows. */
void sv_master_rearm(sv_master_t *m, sv_whandle_t *h);
int sv_master_active_count(const sv_master_t *m);
sv_whandle_t *sv_master_find_index(const sv_master_t *m, int index, bool want_booted_current);
void sv_master_fire_booted(sv_master_t *m);
bool sv_master_all_current_booted(const sv_master_t *m);

/* Act on an operator command (from a signal or the control server); see master.c. */
int sv_master_act(sv_master_t *m, sv_control_cmd_t cmd, const char *trigger, char *err, size_t errlen);

/* master_stats.c */
int sv_master_control(void *arg, sv_control_cmd_t cmd, const char *query, sv_buf_t *out, int *op_id);
void sv_master_sample_memory(sv_master_t *m);
void sv_master_parse_ping(sv_whandle_t *h, const char *msg);
/* Request a restart operation by kind; returns its id (0 if refused, with a reason in err). */
int sv_master_request(sv_master_t *m, sv_op_kind_t kind, const char *trigger, char *err, size_t errlen);

/* replace.c: surge replacement of a worker after an app timeout */
void sv_replace_on_app_timeout(sv_master_t *m, sv_whandle_t *h, const char *msg);
void sv_replace_step(sv_master_t *m);
/* How long a stopping worker may take before SIGKILL (seconds). */
double sv_replace_grace(const sv_master_t *m, const sv_whandle_t *h);

/*
 * One operation kind = one state machine, one file, behind this interface.
 * The master drives the running one: start once, step after every turn of
 * its loop (something happened: a message, a reap, a timer) until it
 * returns SUCCEEDED or FAILED (then the master ends the operation, with
 * m->op_error for a failure), and tells it of a worker that booted,
 * failed to boot, or exited. A machine never ends the operation itself, and waits on
 * events, never on the clock: a time limit is a timer of its own. The
 * mold's machine (molds.c) has the same interface and runs as long as the
 * master (with fork_worker): started by a refork, told of every boot and
 * failure; it has no step (its channel's messages and its request timer
 * drive it).
 */
typedef enum sv_step { SV_STEP_RUNNING = 0, SV_STEP_SUCCEEDED, SV_STEP_FAILED } sv_step_t;
typedef struct sv_machine {
    void (*start)(sv_master_t *m);
    sv_step_t (*step)(sv_master_t *m);                                    /* optional for the mold */
    void (*booted)(sv_master_t *m, sv_whandle_t *h);                      /* optional */
    void (*boot_failure)(sv_master_t *m, sv_whandle_t *h, const char *reason); /* optional */
    void (*exited)(sv_master_t *m, sv_whandle_t *h); /* optional: reaped or found gone; freed right after */
} sv_machine_t;
extern const sv_machine_t sv_hot_machine, sv_phased_machine, sv_refork_machine, sv_recycle_machine;
extern const sv_machine_t sv_mold_machine;
/* A machine fails: the reason for the log line and the operation's error. */
sv_step_t sv_master_op_failed(sv_master_t *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * phased.c: the neutral "replace old workers batch by batch" roll, used by
 * the phased restart and by a refork's ROLL state, each with its spec.
 */
void sv_roll_begin(sv_master_t *m, int total, unsigned prev_phase, const sv_roll_spec_t *spec);
sv_step_t sv_roll_step(sv_master_t *m);
void sv_roll_boot_failure(sv_master_t *m, sv_whandle_t *h, const char *reason);

/* hot_cluster.c */
void sv_hot_cluster_adopt(sv_master_t *m);

/* recycle.c: max_requests / max_worker_memory start a recycle operation */
void sv_recycle_check(sv_master_t *m);

/* refork.c: the refork operation; automatic refork at worker 0's request thresholds */
void sv_refork_check_auto(sv_master_t *m, sv_whandle_t *h);

/* molds.c: the mold machine (sv_mold_machine) and what the rest of the master asks of it */
/* fork_worker: spawn h from the mold; false -> fork it from the master. Takes child_fd when true. */
bool sv_molds_spawn(sv_master_t *m, sv_whandle_t *h, int child_fd);
/* worker 0 said mold-failed. */
void sv_molds_on_worker0_msg(sv_master_t *m, const char *msg);
/* A child was reaped: the mold's pid is forgotten once its channel is closed. */
void sv_molds_on_exit(sv_master_t *m, pid_t pid);
/* Stop, halt, hot restart: the molds go. */
void sv_molds_kill(sv_master_t *m);
/* The worker 0 molds are made from (booted, serving), or NULL. */
sv_whandle_t *sv_molds_source(const sv_master_t *m);
const char *sv_molds_state_name(const sv_master_t *m);
/*
 * For a refork that asked for generation gen when lost_total was
 * lost_before: 1 that mold (or a newer) is ready, 0 not yet, -1 it was
 * lost (*why).
 */
int sv_molds_outcome(const sv_master_t *m, unsigned gen, unsigned lost_before, const char **why);

#endif
