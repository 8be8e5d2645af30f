/*
 * mold.h: fork_worker's mold. A single-threaded process forked from worker 0
 * at a quiet point; it holds the warmed app and forks new workers on the
 * master's request, so worker 0 goes on serving while workers are made.
 */
#ifndef SV_CLUSTER_MOLD_H
#define SV_CLUSTER_MOLD_H

#include "cluster/runtime.h"
#include "server/server.h"

/*
 * In worker 0, on "make-mold" with the mold's channel fd: run on_refork,
 * quiesce the server, fork a detached mold, resume. Replies
 * "mold-failed reason=" on its own channel if it cannot.
 */
void sv_mold_fork_from_worker(sv_runtime_t *rt, sv_server_t *srv, const char *msg, int mold_chan,
                              int worker_chan);

#endif
