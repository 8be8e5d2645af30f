/*
 * run.h: carrying out one servalctl command against a resolved target.
 *
 * A command that has a control path goes over HTTP when a control URL is
 * known; otherwise (and always for the signal-only commands) its signal from
 * the command table is sent to the pid. Messages are pumactl's and go to
 * stdout; the result is the process exit code: 0 success, 1 failure.
 */
#ifndef SV_CTL_RUN_H
#define SV_CTL_RUN_H

#include <stdbool.h>

#include "control/commands.h"
#include "target.h"

#define CTL_REQUEST_TIMEOUT_MS 10000
#define CTL_WAIT_TIMEOUT_S 120.0
#define CTL_POLL_INTERVAL_MS 200

typedef struct ctl_opts {
    bool quiet;        /* -Q: no success messages (data and errors still print) */
    bool wait;         /* --wait: follow a restart operation to its end */
    bool table;        /* --format table (stats) */
    double timeout_s;  /* --timeout for --wait */
} ctl_opts_t;

/* Run cmd against t. Returns the exit code. */
int ctl_run(const sv_command_t *cmd, const ctl_opts_t *o, const ctl_target_t *t);

#endif
