/* loop.c: the poll(2) loop of the single-threaded supervisors (loop.h): fd watchers and callbacks. */
#include "os/loop.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

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
};

sv_loop_t *sv_loop_new(void)
{
    return calloc(1, sizeof(sv_loop_t));
}

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

int sv_loop_run_once(sv_loop_t *loop, int timeout_ms)
{
    compact(loop);
    int n = loop->n;
    for (int i = 0; i < n; i++)
        loop->pfd[i] = (struct pollfd){.fd = loop->w[i].fd, .events = loop->w[i].events};
    int r = poll(loop->pfd, (nfds_t)n, timeout_ms);
    if (r < 0)
        return errno == EINTR ? 0 : SV_ERRNO();
    int handled = 0;
    for (int i = 0; i < n && handled < r; i++) {
        if (!loop->pfd[i].revents)
            continue;
        handled++;
        /* the watcher may have been removed or replaced by an earlier callback */
        watcher_t *w = find(loop, loop->pfd[i].fd);
        if (w && w->cb)
            w->cb(loop, w->fd, loop->pfd[i].revents, w->arg);
    }
    return handled;
}

