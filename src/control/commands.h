/*
 * commands.h: the one table of operator commands: each command's name (as
 * servalctl and pumactl spell it), its control-server path, and the signal
 * that does the same to the master's pid (0 = control only, -1 = none).
 */
#ifndef SV_CONTROL_COMMANDS_H
#define SV_CONTROL_COMMANDS_H

#include <stdbool.h>

typedef enum sv_control_cmd {
    SV_CMD_STOP = 0,
    SV_CMD_HALT,
    SV_CMD_RESTART,
    SV_CMD_PHASED_RESTART,
    SV_CMD_REFORK,
    SV_CMD_RELOAD_WORKER_DIRECTORY,
    SV_CMD_STATS,
    SV_CMD_GC,
    SV_CMD_GC_STATS,
    SV_CMD_THREAD_BACKTRACES,
    SV_CMD_METRICS,
    SV_CMD_HEALTH,
    SV_CMD_READY,
    SV_CMD_LIVE,
    SV_CMD_OPERATION,
    SV_CMD_STATUS,
    SV_CMD_WORKER_COUNT_UP,
    SV_CMD_WORKER_COUNT_DOWN,
    SV_CMD_REOPEN_LOG,
    SV_CMD_INFO,
    SV_CMD_COUNT
} sv_control_cmd_t;

typedef struct sv_command {
    sv_control_cmd_t cmd;
    const char *name;   /* servalctl command */
    const char *path;   /* control path, NULL = not served over HTTP */
    int signal;         /* signal to the master pid, 0 = none */
    bool returns_data;  /* servalctl prints the body */
    bool operation;     /* starts a restart operation (supports --wait) */
} sv_command_t;

extern const sv_command_t sv_commands[SV_CMD_COUNT];

/* By servalctl name, or NULL. */
const sv_command_t *sv_command_by_name(const char *name);
/* By the signal that asks for it (INT reads as TERM), or NULL. */
const sv_command_t *sv_command_by_signal(int sig);
/* By exact control path ("/stats"), or NULL. */
const sv_command_t *sv_command_by_path(const char *path);
/* Served by a data_only control app: changes nothing and reveals no secret. */
bool sv_command_read_only(sv_control_cmd_t cmd);

#endif
