/* single.h: single mode (workers 0): one process serves. */
#ifndef SV_CLUSTER_SINGLE_H
#define SV_CLUSTER_SINGLE_H

#include "cluster/runtime.h"

/* Serve until stopped; exits the process (returns only on a boot failure, with the exit code). */
int sv_single_run(sv_runtime_t *rt);

#endif
