/*
 * loop.h: the event loop of every single-threaded part of serval (the
 * master, single mode's main thread, a worker's main thread, the mold, and
 * the control server inside the first two), in the style of redis' ae:
 * fd watchers on poll(2) and timers, nothing else.
 *
 * A turn (sv_loop_run_once) waits until a watched fd is ready, the nearest
 * timer is due, or max_ms has passed; runs the fd callbacks; then the timers
 * that are due. A deadline is a timer embedded in its owner (sv_timer_t):
 * no turn exists only to look at the clock. Watchers and timers may be
 * added, changed and removed from inside any callback. No fixed limits: the
 * master of 1024 workers watches a channel and arms a deadline per worker
 * (twice as many during a hot restart), so watchers are found by fd and
 * timers kept in a binary heap.
 */
#ifndef SV_OS_LOOP_H
#define SV_OS_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sv_loop sv_loop_t;
typedef struct sv_timer sv_timer_t;
typedef void (*sv_io_cb)(sv_loop_t *loop, int fd, short revents, void *arg);
typedef void (*sv_timer_cb)(sv_loop_t *loop, sv_timer_t *t, void *arg);

/* A timer, embedded in what it belongs to. Fields are the loop's. */
struct sv_timer {
    int64_t at_ms;      /* due time on the sv_now_ms() clock */
    int64_t repeat_ms;  /* 0: once */
    sv_timer_cb cb;
    void *arg;
    uint64_t seq;       /* arming order, among timers due at the same time */
    size_t heap_index;  /* position in the loop's heap while armed */
    uint64_t armed_turn;
    bool armed;
};

sv_loop_t *sv_loop_new(void);
/* Free the loop (its watchers and timers are simply forgotten). NULL-safe. */
void sv_loop_free(sv_loop_t *loop);

/* Watch fd for events (POLLIN/POLLOUT); replaces an existing watcher of fd. 0 or -errno. */
int sv_loop_watch(sv_loop_t *loop, int fd, short events, sv_io_cb cb, void *arg);
/* Change the events of an existing watcher. */
int sv_loop_events(sv_loop_t *loop, int fd, short events);
void sv_loop_unwatch(sv_loop_t *loop, int fd);

void sv_timer_init(sv_timer_t *t, sv_timer_cb cb, void *arg);
/* (Re)arm t: due after_ms from now, then every repeat_ms (0: once). -ENOMEM: left disarmed. */
int sv_loop_timer_start(sv_loop_t *loop, sv_timer_t *t, int64_t after_ms, int64_t repeat_ms);
/* Disarm t (a timer that is not armed is left alone). */
void sv_loop_timer_stop(sv_loop_t *loop, sv_timer_t *t);
static inline bool sv_timer_armed(const sv_timer_t *t)
{
    return t->armed;
}

/*
 * One turn: poll until an fd is ready, the nearest timer is due, or max_ms
 * (-1: no limit) passed; run the fd callbacks, then the due timers (a timer
 * armed during this turn waits for the next one). Returns the number of
 * callbacks run, or -errno.
 */
int sv_loop_run_once(sv_loop_t *loop, int max_ms);
/* Turns until sv_loop_stop is called (from a callback). */
void sv_loop_run(sv_loop_t *loop);
void sv_loop_stop(sv_loop_t *loop);

#endif
