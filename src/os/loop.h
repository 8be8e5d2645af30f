/*
 * loop.h: a small poll(2) loop for single-threaded supervisors (the master,
 * a worker's main thread, the mold). A few dozen fds at most; the caller
 * computes the timeout from its own deadlines. Watchers may be added and
 * removed from inside callbacks.
 */
#ifndef SV_OS_LOOP_H
#define SV_OS_LOOP_H

#include <stdbool.h>

typedef struct sv_loop sv_loop_t;
typedef void (*sv_io_cb)(sv_loop_t *loop, int fd, short revents, void *arg);

sv_loop_t *sv_loop_new(void);
/* Watch fd for events (POLLIN/POLLOUT); replaces an existing watcher of fd. */
int sv_loop_watch(sv_loop_t *loop, int fd, short events, sv_io_cb cb, void *arg);
/* Change the events of an existing watcher. */
int sv_loop_events(sv_loop_t *loop, int fd, short events);
void sv_loop_unwatch(sv_loop_t *loop, int fd);
/* Poll once (timeout_ms -1 = forever) and run callbacks; returns events handled or -errno. */
int sv_loop_run_once(sv_loop_t *loop, int timeout_ms);

#endif
