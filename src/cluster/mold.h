/*
 * mold.h: fork_worker's mold. A single-threaded process forked from worker 0
 * at a quiet point; it holds the warmed app and forks new workers on the
 * master's request, so worker 0 goes on serving while workers are made.
 */
#ifndef SV_CLUSTER_MOLD_H
#define SV_CLUSTER_MOLD_H

#include "cluster/runtime.h"
#include "cluster/worker.h"
#include "server/server.h"

/*
 * In worker 0 (whose arguments are a), on "make-mold gen=G refork=0|1" with
 * the mold's channel fd: quiesce the server, run on_refork (refork=1), fork
 * a detached mold, resume. Sends "mold-failed gen= reason=" on worker 0's
 * channel if it cannot. Takes ownership of mold_chan.
 */
void sv_mold_fork_from_worker(const sv_worker_args_t *a, sv_server_t *srv, const char *msg, int mold_chan);

#endif
