/*
 * worker.h: a cluster worker process, from right after fork to exit.
 *
 * The worker tells the master about itself over its channel:
 *   hello pid= index= phase=            right after fork
 *   booted pid= index= phase= boot_ms=  app loaded, on_worker_boot done, accepting
 *   boot-failed pid= index= reason=     about to exit without having booted
 *   ping pid= backlog= running= ...     every worker_check_interval while progressing
 *   stopping pid=                       told to stop by someone other than the master
 *   app-timeout pid= index= new=N       N app calls ran past app_timeout (answered 504):
 *                                       the master replaces this worker, surge-style
 * and takes from the master:
 *   stop                                graceful stop (same as SIGTERM)
 *   make-mold (+ channel fd)            fork_worker: fork a mold at a quiet point
 * A worker whose channel reaches EOF has lost its master: it stops serving
 * and exits after finishing what it has (bounded by worker_shutdown_timeout).
 */
#ifndef SV_CLUSTER_WORKER_H
#define SV_CLUSTER_WORKER_H

#include <stdbool.h>

#include "cluster/runtime.h"
#include "server/server.h"

typedef struct sv_worker_args {
    sv_runtime_t *rt;
    int index;
    unsigned phase;
    int chan;                 /* this worker's end of its channel */
    int master_pid;
    sv_load_slot_t *load;     /* shared busy table (may be NULL) */
    int n_load;
    bool fork_worker;         /* worker 0 with fork_worker: answers make-mold */
    unsigned generation;      /* mold generation it was forked from, 0 = the master */
} sv_worker_args_t;

/* Runs the worker; never returns. */
_Noreturn void sv_worker_main(const sv_worker_args_t *a);

#endif
