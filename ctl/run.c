#include "run.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/time.h"
#include "http_get.h"
#include "json_read.h"
#include "stats_table.h"

#define ERR_MAX 1024

__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized): va_start is right above
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static void print_body(const char *body, size_t len)
{
    fwrite(body, 1, len, stdout);
    if (len == 0 || body[len - 1] != '\n')
        putchar('\n');
    fflush(stdout);
}

/* "/stats?token=T", or "/stats" without a token; extra is "" or "id=N". */
static void request_target(char *buf, size_t cap, const char *path, const char *extra, const char *token)
{
    const char *sep = *extra || *token ? "?" : "";
    const char *amp = *extra && *token ? "&" : "";
    snprintf(buf, cap, "%s%s%s%s%s%s", path, sep, extra, amp, *token ? "token=" : "", token);
}

/* The "error" string of a JSON body, into buf ("" if none). */
static void json_error(const ctl_reply_t *r, char *buf, size_t cap)
{
    jr_doc_t d;
    buf[0] = '\0';
    if (jr_parse(&d, r->body, r->body_len) == 0)
        snprintf(buf, cap, "%s", jr_str(jr_get(&d, jr_root(&d), "error"), ""));
    jr_free(&d);
}

/* pumactl's wording for an answer that is not 200. */
static void report_status(const ctl_reply_t *r)
{
    if (r->status == 403) {
        say("Unauthorized access to server (wrong auth token)");
    } else if (r->status == 404) {
        size_t n = r->body_len;
        while (n && (r->body[n - 1] == '\n' || r->body[n - 1] == '\r'))
            n--;
        say("Command error: %.*s", (int)n, r->body);
    } else {
        char why[300];
        json_error(r, why, sizeof(why));
        if (why[0])
            say("Bad response from server: %d (%s)", r->status, why);
        else
            say("Bad response from server: %d", r->status);
    }
}

static bool is_probe(const sv_command_t *cmd)
{
    return cmd->cmd == SV_CMD_HEALTH || cmd->cmd == SV_CMD_READY || cmd->cmd == SV_CMD_LIVE;
}

/* kill(pid, 0) also succeeds on a zombie: a server that exited but was not reaped yet is not running. */
static bool pid_alive(pid_t pid)
{
    if (kill(pid, 0) < 0 && errno != EPERM)
        return false;
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return true; /* no procfs: trust kill */
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')'); /* the name may hold spaces and parentheses */
    return !(paren && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X'));
}

/* ---- --wait ---------------------------------------------------------------------- */

typedef struct op_seen {
    char state[32];  /* "unknown" until the server has answered once */
    long done, total;
    char error[ERR_MAX]; /* the last transport failure, "" after an answer */
} op_seen_t;

/* One poll. Returns 0 finished ok, 1 finished failed or fatal, 2 keep polling. */
static int poll_op(const sv_command_t *cmd, const ctl_target_t *t, const char *target, int timeout_ms,
                   op_seen_t *seen)
{
    ctl_reply_t r;
    if (ctl_http_get(t->control_url, target, timeout_ms, &r, seen->error, sizeof(seen->error)) < 0) {
        if (t->pid && !pid_alive(t->pid)) {
            say("%s failed: serval (pid %d) is not running any more", cmd->name, (int)t->pid);
            return 1;
        }
        return 2; /* a hot restart hands the control socket over: transient */
    }
    seen->error[0] = '\0';
    int verdict = 2;
    jr_doc_t d = {0};
    if (r.status == 200 && jr_parse(&d, r.body, r.body_len) == 0) {
        const jr_node_t *op = jr_root(&d);
        snprintf(seen->state, sizeof(seen->state), "%s", jr_str(jr_get(&d, op, "state"), "unknown"));
        seen->done = (long)jr_int(jr_get(&d, op, "done"), 0);
        seen->total = (long)jr_int(jr_get(&d, op, "total"), 0);
        if (!strcmp(seen->state, "succeeded")) {
            verdict = 0;
        } else if (!strcmp(seen->state, "failed")) {
            say("%s failed: %s", cmd->name, jr_str(jr_get(&d, op, "error"), "no reason given"));
            verdict = 1;
        }
    } else if (r.status == 403 || r.status == 404) {
        report_status(&r);
        verdict = 1;
    }
    jr_free(&d);
    ctl_reply_free(&r);
    return verdict;
}

static int wait_op(const sv_command_t *cmd, const ctl_opts_t *o, const ctl_target_t *t, int op_id)
{
    if (op_id <= 0) {
        say("servalctl: the server named no operation to wait for (no X-Serval-Operation header)");
        return 1;
    }
    char extra[32], target[600];
    snprintf(extra, sizeof(extra), "id=%d", op_id);
    request_target(target, sizeof(target), "/operation", extra, t->token);
    op_seen_t seen = {.state = "unknown"};
    int64_t deadline = sv_now_ms() + (int64_t)(o->timeout_s * 1000.0);
    for (int64_t left; (left = deadline - sv_now_ms()) > 0;) {
        int v = poll_op(cmd, t, target, left < CTL_REQUEST_TIMEOUT_MS ? (int)left : CTL_REQUEST_TIMEOUT_MS, &seen);
        if (v == 0 && !o->quiet)
            say("%s succeeded", cmd->name);
        if (v != 2)
            return v;
        left = deadline - sv_now_ms();
        sv_sleep_ms(left < CTL_POLL_INTERVAL_MS ? left : CTL_POLL_INTERVAL_MS);
    }
    const char *last_error = seen.error + (strncmp(seen.error, "servalctl: ", 11) ? 0 : 11);
    if (seen.error[0])
        say("%s did not finish within %g s (state: %s, %ld/%ld; last error: %s)", cmd->name, o->timeout_s,
            seen.state, seen.done, seen.total, last_error);
    else
        say("%s did not finish within %g s (state: %s, %ld/%ld)", cmd->name, o->timeout_s, seen.state, seen.done,
            seen.total);
    return 1;
}

/* ---- the three ways -------------------------------------------------------------- */

static int run_http(const sv_command_t *cmd, const ctl_opts_t *o, const ctl_target_t *t)
{
    char target[600], err[ERR_MAX];
    request_target(target, sizeof(target), cmd->path, "", t->token);
    ctl_reply_t r;
    if (ctl_http_get(t->control_url, target, CTL_REQUEST_TIMEOUT_MS, &r, err, sizeof(err)) < 0) {
        say("%s", err);
        return 1;
    }
    int rc = 0;
    if (is_probe(cmd) && (r.status == 200 || r.status == 503)) {
        print_body(r.body, r.body_len);
        rc = r.status == 200 ? 0 : 1;
    } else if (r.status != 200) {
        report_status(&r);
        rc = 1;
    } else {
        /*
         * Data commands print only the data on stdout (`servalctl metrics |
         * promtool check metrics`, `servalctl stats | jq`): their status line
         * goes to stderr. Action commands keep pumactl's line on stdout.
         */
        if (!o->quiet && cmd->returns_data)
            fprintf(stderr, "Command %s sent success\n", cmd->name);
        else if (!o->quiet)
            say("Command %s sent success", cmd->name);
        if (cmd->returns_data && o->table && ctl_stats_table(r.body, r.body_len, stdout) < 0) {
            say("servalctl: the server's stats are not a JSON object");
            rc = 1;
        } else if (cmd->returns_data && !o->table) {
            print_body(r.body, r.body_len);
        }
        if (o->wait)
            rc = wait_op(cmd, o, t, r.op_id);
    }
    ctl_reply_free(&r);
    return rc;
}

static int run_signal(const sv_command_t *cmd, const ctl_opts_t *o, const ctl_target_t *t)
{
    if (!t->pid && t->pid_error[0]) {
        say("%s", t->pid_error);
        return 1;
    }
    if (!t->pid && t->control_url[0]) {
        say("'%s' is sent as a signal and needs the pid (-p, -P or -S)", cmd->name);
        return 1;
    }
    if (!t->pid) {
        say("Neither pid nor control url available");
        return 1;
    }
    if (o->wait) {
        say("--wait needs the control server");
        return 1;
    }
    if (cmd->signal <= 0) {
        say("'%s' not available via pid only", cmd->name);
        return 1;
    }
    if (kill(t->pid, cmd->signal) < 0) {
        if (errno == ESRCH)
            say("No pid '%d' found", (int)t->pid);
        else
            say("servalctl: cannot signal pid %d: %s", (int)t->pid, strerror(errno));
        return 1;
    }
    if (!o->quiet)
        say("Command %s sent success", cmd->name);
    return 0;
}

/* Like pumactl: with a control URL, a connection is the proof of life; else kill(pid, 0). */
static int run_status(const ctl_opts_t *o, const ctl_target_t *t)
{
    bool alive;
    if (t->control_url[0]) {
        char err[ERR_MAX];
        int fd = ctl_connect(t->control_url, CTL_REQUEST_TIMEOUT_MS, err, sizeof(err));
        if (fd == SV_ECONFIG) {
            say("%s", err);
            return 1;
        }
        alive = fd >= 0;
        if (fd >= 0)
            close(fd);
    } else if (t->pid) {
        alive = pid_alive(t->pid);
    } else if (t->pid_error[0]) {
        say("%s", t->pid_error);
        return 1;
    } else {
        say("Neither pid nor control url available");
        return 1;
    }
    if (!alive)
        say("serval is not running");
    else if (!o->quiet)
        say("serval is started");
    return alive ? 0 : 1;
}

int ctl_run(const sv_command_t *cmd, const ctl_opts_t *o, const ctl_target_t *t)
{
    if (cmd->cmd == SV_CMD_STATUS)
        return run_status(o, t);
    if (cmd->path && t->control_url[0])
        return run_http(cmd, o, t);
    return run_signal(cmd, o, t);
}
