/* loop.c: the single-threaded event loop (loop.h): fd watchers on poll(2), and timers in a list ordered by due time. */
#include "os/loop.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/time.h"

#define SV_LOOP_MAX 1024

typedef struct watcher {
    int fd;
    short events;
    sv_io_cb cb;
    void *arg;
} watcher_t;

struct sv_loop {
    watcher_t w[SV_LOOP_MAX];
    int n;
    struct pollfd pfd[SV_LOOP_MAX];
    sv_timer_t *timers; /* armed timers, earliest first; equal times in arming order */
    uint64_t turn;      /* counts turns: a timer armed during a turn's timer pass waits for the next */
    bool stop;
};

/* The precise clock: a timer due in 3 ms must not wait for the coarse clock's next tick. */
static int64_t now_ms(void)
{
    return sv_now_ns() / 1000000;
}

sv_loop_t *sv_loop_new(void)
{
    return calloc(1, sizeof(sv_loop_t));
}

void sv_loop_free(sv_loop_t *loop)
{
    if (!loop)
        return;
    for (sv_timer_t *t = loop->timers; t; t = t->next)
        t->armed = false;
    free(loop);
}

/* ---- fd watchers ------------------------------------------------------------ */

static watcher_t *find(sv_loop_t *loop, int fd)
{
    for (int i = 0; i < loop->n; i++)
        if (loop->w[i].fd == fd)
            return &loop->w[i];
    return NULL;
}

int sv_loop_watch(sv_loop_t *loop, int fd, short events, sv_io_cb cb, void *arg)
{
    watcher_t *w = find(loop, fd);
    if (!w) {
        if (loop->n >= SV_LOOP_MAX)
            return -EMFILE;
        w = &loop->w[loop->n++];
    }
    *w = (watcher_t){.fd = fd, .events = events, .cb = cb, .arg = arg};
    return 0;
}

int sv_loop_events(sv_loop_t *loop, int fd, short events)
{
    watcher_t *w = find(loop, fd);
    if (!w)
        return -ENOENT;
    w->events = events;
    return 0;
}

void sv_loop_unwatch(sv_loop_t *loop, int fd)
{
    watcher_t *w = find(loop, fd);
    if (w)
        w->fd = -1; /* compacted after the current dispatch */
}

static void compact(sv_loop_t *loop)
{
    int j = 0;
    for (int i = 0; i < loop->n; i++)
        if (loop->w[i].fd >= 0)
            loop->w[j++] = loop->w[i];
    loop->n = j;
}

/* ---- timers ------------------------------------------------------------------- */

void sv_timer_init(sv_timer_t *t, sv_timer_cb cb, void *arg)
{
    *t = (sv_timer_t){.cb = cb, .arg = arg};
}

static void unlink_timer(sv_loop_t *loop, sv_timer_t *t)
{
    for (sv_timer_t **p = &loop->timers; *p; p = &(*p)->next) {
        if (*p == t) {
            *p = t->next;
            break;
        }
    }
    t->next = NULL;
    t->armed = false;
}

/* After every timer due at or before t->at_ms: timers due together fire in arming order. */
static void insert_timer(sv_loop_t *loop, sv_timer_t *t)
{
    sv_timer_t **p = &loop->timers;
    while (*p && (*p)->at_ms <= t->at_ms)
        p = &(*p)->next;
    t->next = *p;
    *p = t;
    t->armed = true;
    t->armed_turn = loop->turn;
}

void sv_loop_timer_start(sv_loop_t *loop, sv_timer_t *t, int64_t after_ms, int64_t repeat_ms)
{
    if (t->armed)
        unlink_timer(loop, t);
    t->at_ms = now_ms() + (after_ms > 0 ? after_ms : 0);
    t->repeat_ms = repeat_ms > 0 ? repeat_ms : 0;
    insert_timer(loop, t);
}

void sv_loop_timer_stop(sv_loop_t *loop, sv_timer_t *t)
{
    if (t->armed)
        unlink_timer(loop, t);
}

/* Run the timers due by now that were armed before this pass; returns how many ran. */
static int run_timers(sv_loop_t *loop)
{
    int ran = 0;
    int64_t now = now_ms();
    uint64_t turn = ++loop->turn;
    for (;;) {
        sv_timer_t *t = loop->timers;
        if (!t || t->at_ms > now || t->armed_turn == turn)
            return ran;
        loop->timers = t->next;
        t->next = NULL;
        t->armed = false;
        if (t->repeat_ms) { /* re-armed before its callback runs, which may stop it */
            t->at_ms += t->repeat_ms;
            if (t->at_ms <= now) /* fell behind (a long callback, a stopped process): no burst of catch-ups */
                t->at_ms = now + t->repeat_ms;
            insert_timer(loop, t);
        }
        ran++;
        t->cb(loop, t, t->arg);
    }
}

/* ---- turns ---------------------------------------------------------------------- */

int sv_loop_run_once(sv_loop_t *loop, int max_ms)
{
    compact(loop);
    int timeout = max_ms;
    if (loop->timers) {
        int64_t wait = loop->timers->at_ms - now_ms();
        if (wait < 0)
            wait = 0;
        if (timeout < 0 || wait < timeout)
            timeout = (int)(wait > 86400000 ? 86400000 : wait);
    }
    int n = loop->n;
    for (int i = 0; i < n; i++)
        loop->pfd[i] = (struct pollfd){.fd = loop->w[i].fd, .events = loop->w[i].events};
    int r = poll(loop->pfd, (nfds_t)n, timeout);
    if (r < 0 && errno != EINTR)
        return SV_ERRNO();
    int handled = 0;
    for (int i = 0; i < n && r > 0 && handled < r; i++) {
        if (!loop->pfd[i].revents)
            continue;
        handled++;
        /* the watcher may have been removed or replaced by an earlier callback */
        watcher_t *w = find(loop, loop->pfd[i].fd);
        if (w && w->cb)
            w->cb(loop, w->fd, loop->pfd[i].revents, w->arg);
    }
    return handled + run_timers(loop);
}

void sv_loop_run(sv_loop_t *loop)
{
    loop->stop = false;
    while (!loop->stop)
        sv_loop_run_once(loop, -1);
}

void sv_loop_stop(sv_loop_t *loop)
{
    loop->stop = true;
}
