/*
 * hot_restart.c: the exec of a hot restart, shared by single mode and the
 * cluster: the preflight (`serval --check` of the new release), the common
 * SERVAL_INHERIT records (listeners, control, operations log), the memfd for a
 * large handover, and the exec itself with the handled signals held.
 */
#include "cluster/hot_restart.h"

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

/* MAX_ARG_STRLEN is 128 KiB for one "NAME=value" string; keep well below it */
#define HANDOVER_ENV_MAX (96 * 1024)

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

static void add(sv_buf_t *env, const char *rec)
{
    sv_buf_puts(env, rec);
    sv_buf_putc(env, ';');
}

void sv_hot_restart_common_records(const sv_runtime_t *rt, const sv_control_t *control, const sv_oplog_t *ops,
                                   sv_buf_t *env)
{
    char rec[1200];
    for (int i = 0; i < rt->n_listeners; i++) {
        const sv_listener_t *l = &rt->listeners[i];
        if (l->fd < 0)
            continue;
        snprintf(rec, sizeof(rec), "listener");
        sv_msg_put_int(rec, sizeof(rec), "fd", l->fd);
        sv_msg_put(rec, sizeof(rec), "uri", l->uri);
        sv_msg_put_int(rec, sizeof(rec), "created", l->created_path);
        if (l->activated) /* systemd's: the new image keeps it without a bind naming it (cluster/activate.h) */
            sv_msg_put_int(rec, sizeof(rec), "activated", 1);
        add(env, rec);
    }
    if (control) {
        snprintf(rec, sizeof(rec), "control");
        sv_msg_put_int(rec, sizeof(rec), "fd", sv_control_fd(control));
        sv_msg_put(rec, sizeof(rec), "uri", rt->cfg.control_url ? rt->cfg.control_url : "");
        sv_msg_put_int(rec, sizeof(rec), "created", sv_control_created_path(control));
        sv_msg_put(rec, sizeof(rec), "token", rt->control_token);
        add(env, rec);
    }
    if (sv_tls_shared_fd() >= 0) {
        /* TLS ticket keys and counters: the new image shares them with the workers it keeps */
        snprintf(rec, sizeof(rec), "tls");
        sv_msg_put_int(rec, sizeof(rec), "fd", sv_tls_shared_fd());
        add(env, rec);
    }
    char opsbuf[SV_OPLOG_SIZE * 700];
    sv_oplog_handover(ops, opsbuf, sizeof(opsbuf));
    sv_buf_puts(env, opsbuf);
}

int sv_hot_restart_exec(sv_runtime_t *rt, const sv_buf_t *env, const int *keep_fds, int n_keep)
{
    for (int i = 0; i < n_keep; i++)
        sv_fd_cloexec(keep_fds[i], false);
    if (sv_tls_shared_fd() >= 0)
        sv_fd_cloexec(sv_tls_shared_fd(), false);
    sv_buf_t assignment = SV_BUF_INIT;
    int memfd = -1;
    if (env->len > HANDOVER_ENV_MAX) {
        /* past what one environment string may hold: the records ride in a memfd the exec keeps */
        memfd = memfd_create("serval-inherit", 0);
        if (memfd >= 0 && sv_fd_write_all(memfd, env->data, env->len) < 0)
            sv_fd_close(&memfd);
        if (memfd < 0) {
            int rc = SV_ERRNO();
            for (int i = 0; i < n_keep; i++)
                sv_fd_cloexec(keep_fds[i], true);
            return rc < 0 ? rc : -ENOMEM;
        }
        sv_buf_printf(&assignment, "%s=@%d", SV_HANDOVER_ENV, memfd);
    } else {
        sv_buf_printf(&assignment, "%s=%s", SV_HANDOVER_ENV, env->data ? env->data : "");
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
    sv_hot_restart_common_records(rt, control, ops, &env);
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

void sv_hot_restart_adopt_ops(sv_runtime_t *rt, sv_oplog_t *ops)
{
    char *recs[SV_OPLOG_SIZE + 1];
    int n = sv_rt_take_handover(rt, "op", recs, SV_OPLOG_SIZE + 1);
    n += sv_rt_take_handover(rt, "opcount", recs + n, 1);
    for (int i = 0; i < n; i++) {
        sv_oplog_adopt(ops, recs[i]);
        free(recs[i]);
    }
}
