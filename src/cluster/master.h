/* master.h: cluster mode: the master process that supervises workers. */
#ifndef SV_CLUSTER_MASTER_H
#define SV_CLUSTER_MASTER_H

#include "cluster/runtime.h"

/* Supervise until stopped; exits the process (returns only on a boot failure, with the exit code). */
int sv_master_run(sv_runtime_t *rt);

#endif
