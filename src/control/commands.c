/* commands.c: the one table of operator commands (commands.h): name, control path, signal. */
#include "control/commands.h"

#include <signal.h>
#include <string.h>

const sv_command_t sv_commands[SV_CMD_COUNT] = {
    {SV_CMD_STOP, "stop", "/stop", SIGTERM, false, false},
    {SV_CMD_HALT, "halt", "/halt", SIGQUIT, false, false},
    {SV_CMD_RESTART, "restart", "/restart", SIGUSR2, false, true},
    {SV_CMD_PHASED_RESTART, "phased-restart", "/phased-restart", SIGUSR1, false, true},
    {SV_CMD_REFORK, "refork", "/refork", SIGURG, false, true},
    {SV_CMD_RELOAD_WORKER_DIRECTORY, "reload-worker-directory", "/reload-worker-directory", 0, false, false},
    {SV_CMD_STATS, "stats", "/stats", 0, true, false},
    {SV_CMD_GC, "gc", "/gc", 0, false, false},
    {SV_CMD_GC_STATS, "gc-stats", "/gc-stats", 0, true, false},
    {SV_CMD_THREAD_BACKTRACES, "thread-backtraces", "/thread-backtraces", 0, true, false},
    {SV_CMD_METRICS, "metrics", "/metrics", 0, true, false},
    {SV_CMD_HEALTH, "health", "/health", 0, true, false},
    {SV_CMD_READY, "readyz", "/readyz", 0, true, false},
    {SV_CMD_LIVE, "livez", "/livez", 0, true, false},
    {SV_CMD_OPERATION, "operation", "/operation", 0, true, false},
    {SV_CMD_STATUS, "status", NULL, 0, false, false},
    {SV_CMD_WORKER_COUNT_UP, "worker-count-up", NULL, SIGTTIN, false, false},
    {SV_CMD_WORKER_COUNT_DOWN, "worker-count-down", NULL, SIGTTOU, false, false},
    {SV_CMD_REOPEN_LOG, "reopen-log", NULL, SIGHUP, false, false},
    {SV_CMD_INFO, "info", NULL, SIGPWR, false, false},
};

const sv_command_t *sv_command_by_name(const char *name)
{
    for (int i = 0; i < SV_CMD_COUNT; i++)
        if (!strcmp(sv_commands[i].name, name))
            return &sv_commands[i];
    return NULL;
}

const sv_command_t *sv_command_by_path(const char *path)
{
    for (int i = 0; i < SV_CMD_COUNT; i++)
        if (sv_commands[i].path && !strcmp(sv_commands[i].path, path))
            return &sv_commands[i];
    return NULL;
}

const sv_command_t *sv_command_by_signal(int sig)
{
    if (sig == SIGINT) /* Ctrl-C: the same graceful stop as TERM */
        sig = SIGTERM;
    for (int i = 0; i < SV_CMD_COUNT; i++)
        if (sv_commands[i].signal == sig && sig > 0)
            return &sv_commands[i];
    return NULL;
}

bool sv_command_read_only(sv_control_cmd_t cmd)
{
    switch (cmd) {
    case SV_CMD_STATS:
    case SV_CMD_GC_STATS:
    case SV_CMD_METRICS:
    case SV_CMD_HEALTH:
    case SV_CMD_READY:
    case SV_CMD_LIVE:
        return true;
    default:
        return false;
    }
}
