/*
 * hot_restart.c: the exec of a hot restart, shared by single mode and the
 * cluster: the preflight (`serval --check` of the new release), and the
 * exec itself (the kept fds' CLOEXEC cleared, SERVAL_INHERIT from
 * handover.c, the handled signals held); single mode's whole exec.
 */
#include "cluster/hot_restart.h"

#include "cluster/handover.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/time.h"
#include "os/chan.h"
#include "os/fd.h"
#include "os/sig.h"
#include "tls/tls.h"

/* The startup environment plus one extra "NAME=value" (copied; may be NULL). */
static char **build_env(const sv_runtime_t *rt, const char *extra)
{
    int n = 0;
    while (rt->envp[n])
        n++;
    char **env = calloc((size_t)n + 2, sizeof(char *));
    if (!env)
        return NULL;
    for (int i = 0; i < n; i++)
        env[i] = rt->envp[i];
    if (extra)
        env[n] = strdup(extra);
    return env;
}

/* Free what build_env allocated (not the shared startup strings). */
static void free_env(const sv_runtime_t *rt, char **env)
{
    if (!env)
        return;
    int n = 0;
    while (rt->envp[n])
        n++;
    free(env[n]);
    free(env);
}

/* argv with --check inserted after the program name. */
static char **check_argv(const sv_runtime_t *rt)
{
    char **argv = calloc((size_t)rt->argc + 2, sizeof(char *));
    if (!argv)
        return NULL;
    argv[0] = rt->argv[0];
    argv[1] = "--check";
    for (int i = 1; i < rt->argc; i++)
        argv[i + 1] = rt->argv[i];
    return argv;
}

static void read_first_line(int fd, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    while (n + 1 < cap) {
        ssize_t r = read(fd, out + n, cap - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    out[n] = '\0';
    out[strcspn(out, "\n")] = '\0';
}

pid_t sv_hot_restart_preflight_start(const sv_runtime_t *rt, bool with_init, int *err_fd)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return SV_ERRNO();
    char **argv = check_argv(rt);
    /* SERVAL_CHECK_INIT set at all tells --check it is a preflight: the binds are ours, in use */
    char **env = build_env(rt, with_init ? "SERVAL_CHECK_INIT=1" : "SERVAL_CHECK_INIT=0");
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 2);
        int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (devnull >= 0)
            dup2(devnull, 1);
        if (chdir(rt->restart_dir) < 0)
            _exit(126);
        execve(rt->exe, argv, env);
        dprintf(2, "cannot execute %s: %s\n", rt->exe, strerror(errno));
        _exit(127);
    }
    close(p[1]);
    free(argv);
    free_env(rt, env);
    if (pid < 0) {
        close(p[0]);
        return SV_ERRNO();
    }
    *err_fd = p[0];
    return pid;
}

int sv_hot_restart_preflight_poll(pid_t pid, int err_fd, bool expired, const int *reaped, char *err, size_t errlen)
{
    int status = reaped ? *reaped : 0;
    pid_t r = reaped ? pid : waitpid(pid, &status, WNOHANG);
    if (r == 0 && !expired)
        return 0;
    if (r == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        snprintf(err, errlen, "serval --check did not finish in %d s", SV_PREFLIGHT_TIMEOUT_MS / 1000);
        close(err_fd);
        return SV_ECONFIG;
    }
    char line[512];
    read_first_line(err_fd, line, sizeof(line));
    close(err_fd);
    if (r == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 1;
    snprintf(err, errlen, "new release rejected: %s", line[0] ? line : "serval --check failed");
    return SV_ECONFIG;
}

int sv_hot_restart_preflight(const sv_runtime_t *rt, bool with_init, char *err, size_t errlen)
{
    int fd = -1;
    pid_t pid = sv_hot_restart_preflight_start(rt, with_init, &fd);
    if (pid < 0) {
        snprintf(err, errlen, "cannot run the preflight check: %s", strerror((int)-pid));
        return (int)pid;
    }
    int64_t t0 = sv_now_ms();
    int rc;
    while ((rc = sv_hot_restart_preflight_poll(pid, fd, sv_now_ms() - t0 >= SV_PREFLIGHT_TIMEOUT_MS, NULL, err,
                                               errlen)) == 0)
        sv_sleep_ms(5);
    return rc > 0 ? 0 : rc;
}

int sv_hot_restart_exec(sv_runtime_t *rt, const sv_buf_t *env, const int *keep_fds, int n_keep)
{
    for (int i = 0; i < n_keep; i++)
        sv_fd_cloexec(keep_fds[i], false);
    if (sv_tls_shared_fd() >= 0)
        sv_fd_cloexec(sv_tls_shared_fd(), false);
    sv_buf_t assignment = SV_BUF_INIT;
    int memfd = -1;
    int arc = sv_handover_assignment(env, &assignment, &memfd);
    if (arc < 0) {
        sv_buf_free(&assignment);
        for (int i = 0; i < n_keep; i++)
            sv_fd_cloexec(keep_fds[i], true);
        if (sv_tls_shared_fd() >= 0)
            sv_fd_cloexec(sv_tls_shared_fd(), true);
        return arc;
    }
    char **envp = build_env(rt, assignment.data);
    sv_buf_free(&assignment);
    if (chdir(rt->restart_dir) < 0)
        sv_log_error("! cannot change to %s: %s", rt->restart_dir, strerror(errno));
    /* stdio is ours; nothing buffered may be lost or duplicated */
    fflush(stdout);
    fflush(stderr);
    sigset_t saved;
    sv_sig_hold_for_exec(&saved);
    execve(rt->exe, rt->argv, envp);
    int rc = SV_ERRNO();
    sv_sig_release_after_failed_exec(&saved);
    sv_fd_close(&memfd);
    sv_log_error("! hot restart: cannot execute %s: %s", rt->exe, strerror(-rc));
    for (int i = 0; i < n_keep; i++)
        sv_fd_cloexec(keep_fds[i], true);
    if (sv_tls_shared_fd() >= 0)
        sv_fd_cloexec(sv_tls_shared_fd(), true);
    free_env(rt, envp);
    return rc;
}

void sv_hot_restart_exec_single(sv_runtime_t *rt, sv_control_t *control, sv_oplog_t *ops, bool app_quiet)
{
    char err[600];
    if (app_quiet) {
        sv_app_hook(&rt->app, SV_HOOK_ON_RESTART, -1);
        sv_app_fini(&rt->app);
    }
    sv_control_settle(control, SV_CONTROL_SETTLE_MS);
    sv_buf_t env = SV_BUF_INIT;
    sv_handover_common_records(rt, control, ops, &env);
    int keep[SV_CONFIG_MAX_BINDS + 1];
    int n = 0;
    for (int i = 0; i < rt->n_listeners; i++)
        if (rt->listeners[i].fd >= 0)
            keep[n++] = rt->listeners[i].fd;
    if (control)
        keep[n++] = sv_control_fd(control);
    int rc = sv_hot_restart_exec(rt, &env, keep, n);
    sv_buf_free(&env);
    snprintf(err, sizeof(err), "exec %.300s: %s", rt->exe, strerror(-rc));
    sv_oplog_finish_current(ops, false, err);
    /* the app was finalised for the exec; bring it back */
    if (app_quiet)
        sv_app_init(&rt->app, err, sizeof(err));
}
