/*
 * loop.c: the single-threaded event loop (loop.h). Owns its fd watchers (a
 * table that grows, indexed by fd for the lookups) and its armed timers (a
 * binary min-heap ordered by due time, then arming order). It owns no fd
 * and no timer: they belong to whoever embedded or registered them.
 */
#include "os/loop.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/time.h"

typedef struct watcher {
    int fd;
    short events;
    sv_io_cb cb;
    void *arg;
} watcher_t;

struct sv_loop {
    watcher_t *w;       /* watchers; a removed one has fd -1 until the next compaction */
    int n, cap;
    int *at;            /* at[fd]: the watcher's position in w, -1 = none */
    int n_at;
    struct pollfd *pfd; /* the current turn's poll set */
    int pfd_cap;
    sv_timer_t **heap;  /* armed timers: heap[0] is due first */
    size_t n_heap, heap_cap;
    uint64_t seq;       /* arming order: timers due together fire in it */
    uint64_t turn;      /* counts timer passes: a timer armed during one waits for the next */
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
    for (size_t i = 0; i < loop->n_heap; i++)
        loop->heap[i]->armed = false;
    free(loop->w);
    free(loop->at);
    free(loop->pfd);
    free(loop->heap);
    free(loop);
}

/* ---- fd watchers ------------------------------------------------------------ */

static watcher_t *find(sv_loop_t *loop, int fd)
{
    if (fd < 0 || fd >= loop->n_at || loop->at[fd] < 0)
        return NULL;
    return &loop->w[loop->at[fd]];
}

static int grow_at(sv_loop_t *loop, int fd)
{
    if (fd < loop->n_at)
        return 0;
    int n = loop->n_at ? loop->n_at : 64;
    while (n <= fd)
        n *= 2;
    int *at = realloc(loop->at, sizeof(int) * (size_t)n);
    if (!at)
        return -ENOMEM;
    for (int i = loop->n_at; i < n; i++)
        at[i] = -1;
    loop->at = at;
    loop->n_at = n;
    return 0;
}

int sv_loop_watch(sv_loop_t *loop, int fd, short events, sv_io_cb cb, void *arg)
{
    if (fd < 0)
        return -EBADF;
    watcher_t *w = find(loop, fd);
    if (!w) {
        if (grow_at(loop, fd) < 0)
            return -ENOMEM;
        if (loop->n == loop->cap) {
            int cap = loop->cap ? loop->cap * 2 : 16;
            watcher_t *nw = realloc(loop->w, sizeof(watcher_t) * (size_t)cap);
            if (!nw)
                return -ENOMEM;
            loop->w = nw;
            loop->cap = cap;
        }
        loop->at[fd] = loop->n;
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
    if (!w)
        return;
    w->fd = -1; /* compacted before the next poll: the current dispatch may still be walking the table */
    loop->at[fd] = -1;
}

static void compact(sv_loop_t *loop)
{
    int j = 0;
    for (int i = 0; i < loop->n; i++) {
        if (loop->w[i].fd < 0)
            continue;
        loop->w[j] = loop->w[i];
        loop->at[loop->w[j].fd] = j;
        j++;
    }
    loop->n = j;
}

/* ---- timers: a binary min-heap ------------------------------------------------- */

void sv_timer_init(sv_timer_t *t, sv_timer_cb cb, void *arg)
{
    *t = (sv_timer_t){.cb = cb, .arg = arg};
}

static bool before(const sv_timer_t *a, const sv_timer_t *b)
{
    return a->at_ms < b->at_ms || (a->at_ms == b->at_ms && a->seq < b->seq);
}

static void place(sv_loop_t *loop, size_t i, sv_timer_t *t)
{
    loop->heap[i] = t;
    t->heap_index = i;
}

static void sift_up(sv_loop_t *loop, size_t i)
{
    sv_timer_t *t = loop->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(t, loop->heap[parent]))
            break;
        place(loop, i, loop->heap[parent]);
        i = parent;
    }
    place(loop, i, t);
}

static void sift_down(sv_loop_t *loop, size_t i)
{
    sv_timer_t *t = loop->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= loop->n_heap)
            break;
        if (c + 1 < loop->n_heap && before(loop->heap[c + 1], loop->heap[c]))
            c++;
        if (!before(loop->heap[c], t))
            break;
        place(loop, i, loop->heap[c]);
        i = c;
    }
    place(loop, i, t);
}

static void unlink_timer(sv_loop_t *loop, sv_timer_t *t)
{
    size_t i = t->heap_index;
    sv_timer_t *last = loop->heap[--loop->n_heap];
    t->armed = false;
    if (last == t)
        return;
    place(loop, i, last);
    sift_down(loop, i);
    sift_up(loop, last->heap_index);
}

/* After every timer due at or before t->at_ms: timers due together fire in arming order. */
static int insert_timer(sv_loop_t *loop, sv_timer_t *t)
{
    if (loop->n_heap == loop->heap_cap) {
        size_t cap = loop->heap_cap ? loop->heap_cap * 2 : 16;
        sv_timer_t **h = realloc(loop->heap, sizeof(sv_timer_t *) * cap);
        if (!h)
            return -ENOMEM;
        loop->heap = h;
        loop->heap_cap = cap;
    }
    t->seq = ++loop->seq;
    t->armed = true;
    t->armed_turn = loop->turn;
    place(loop, loop->n_heap++, t);
    sift_up(loop, t->heap_index);
    return 0;
}

int sv_loop_timer_start(sv_loop_t *loop, sv_timer_t *t, int64_t after_ms, int64_t repeat_ms)
{
    if (t->armed)
        unlink_timer(loop, t);
    t->at_ms = now_ms() + (after_ms > 0 ? after_ms : 0);
    t->repeat_ms = repeat_ms > 0 ? repeat_ms : 0;
    return insert_timer(loop, t);
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
    /*
     * Stopping at the first timer armed during this pass is enough: one
     * armed now is due no earlier than now, so every timer due before it,
     * or at the same time and armed earlier, has been taken first.
     */
    while (loop->n_heap) {
        sv_timer_t *t = loop->heap[0];
        if (t->at_ms > now || t->armed_turn == turn)
            return ran;
        unlink_timer(loop, t);
        if (t->repeat_ms) { /* re-armed before its callback runs, which may stop it */
            int64_t at = t->at_ms + t->repeat_ms;
            if (at <= now) /* fell behind (a long callback, a stopped process): no burst of catch-ups */
                at = now + t->repeat_ms;
            t->at_ms = at;
            if (insert_timer(loop, t) < 0)
                t->repeat_ms = 0; /* out of memory: it stays disarmed */
        }
        ran++;
        t->cb(loop, t, t->arg);
    }
    return ran;
}

/* ---- turns ---------------------------------------------------------------------- */

int sv_loop_run_once(sv_loop_t *loop, int max_ms)
{
    compact(loop);
    int timeout = max_ms;
    if (loop->n_heap) {
        int64_t wait = loop->heap[0]->at_ms - now_ms();
        if (wait < 0)
            wait = 0;
        if (timeout < 0 || wait < timeout)
            timeout = (int)(wait > 86400000 ? 86400000 : wait);
    }
    int n = loop->n;
    if (n > loop->pfd_cap) {
        int cap = loop->pfd_cap > 0 ? loop->pfd_cap : 16;
        while (cap < n)
            cap *= 2;
        struct pollfd *p = realloc(loop->pfd, sizeof(struct pollfd) * (size_t)cap);
        if (!p)
            return -ENOMEM;
        loop->pfd = p;
        loop->pfd_cap = cap;
    }
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
