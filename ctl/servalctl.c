/*
 * servalctl: serval's control client, pumactl's flags and commands.
 *
 *   servalctl [options] COMMAND
 *
 * This file reads the command line; target.c finds the server (config
 * file, state file, pidfile), run.c carries the command out.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/commands.h"
#include "run.h"
#include "target.h"

enum { OPT_FORMAT = 256, OPT_WAIT, OPT_TIMEOUT };

typedef struct args {
    ctl_where_t where;
    ctl_opts_t opts;
    const char *command;
    const char *format;
    bool timeout_given;
} args_t;

/* Commands a user may type: the table minus the one servalctl uses for itself. */
static bool user_command(const sv_command_t *c)
{
    return c->cmd != SV_CMD_OPERATION;
}

/* What each command does, for --help (the words of docs/servalctl.md). */
static const char *const command_help[SV_CMD_COUNT] = {
    [SV_CMD_STOP] = "graceful stop: finish in-flight requests, exit 0",
    [SV_CMD_HALT] = "stop at once",
    [SV_CMD_RESTART] = "hot restart: re-exec serval in place, keep the sockets (--wait)",
    [SV_CMD_PHASED_RESTART] = "rolling restart of the workers (single mode: a hot restart) (--wait)",
    [SV_CMD_REFORK] = "refork from a new mold (fork_worker only) (--wait)",
    [SV_CMD_RELOAD_WORKER_DIRECTORY] = "the master re-enters its directory (cluster mode)",
    [SV_CMD_STATS] = "Puma's stats JSON (--format table for people)",
    [SV_CMD_GC] = "accepted for pumactl compatibility; nothing to collect in C",
    [SV_CMD_GC_STATS] = "malloc statistics as JSON",
    [SV_CMD_THREAD_BACKTRACES] = "the master's backtrace as JSON",
    [SV_CMD_METRICS] = "Prometheus text format",
    [SV_CMD_HEALTH] = "the body; exit 0 on 200, 1 on 503 (booting, draining)",
    [SV_CMD_READY] = "as health: ready to serve",
    [SV_CMD_LIVE] = "as health: alive",
    [SV_CMD_STATUS] = "is serval running (exit 0) or not (exit 1)",
    [SV_CMD_WORKER_COUNT_UP] = "one worker more (TTIN)",
    [SV_CMD_WORKER_COUNT_DOWN] = "one worker fewer (TTOU)",
    [SV_CMD_REOPEN_LOG] = "reopen the stdout_redirect files (HUP; without them HUP stops serval, as in Puma)",
    [SV_CMD_INFO] = "every process logs its threads (PWR)",
    [SV_CMD_RELOAD_CERTS] = "reload the TLS certificates and keys in every process (WINCH)",
};

static void describe_commands(FILE *out)
{
    fputs("Commands:\n", out);
    for (int i = 0; i < SV_CMD_COUNT; i++) {
        const sv_command_t *c = &sv_commands[i];
        if (user_command(c))
            fprintf(out, "  %-24s %s\n", c->name, command_help[c->cmd] ? command_help[c->cmd] : "");
    }
}

static void print_commands(FILE *out, const char *prefix)
{
    fputs(prefix, out);
    const char *sep = "";
    for (int i = 0; i < SV_CMD_COUNT; i++) {
        if (!user_command(&sv_commands[i]))
            continue;
        fprintf(out, "%s%s", sep, sv_commands[i].name);
        sep = ", ";
    }
    fputc('\n', out);
}

static void usage(FILE *out)
{
    fputs("Usage: servalctl (-p PID | -P PIDFILE | -S STATE | -C URL -T TOKEN | -F CONFIG) [options] COMMAND\n"
          "\n"
          "  -S, --state PATH          state file written by serval (-S / state_path)\n"
          "  -P, --pidfile PATH        pid file written by serval\n"
          "  -p, --pid PID             pid of the serval master (or single process)\n"
          "  -C, --control-url URL     control server: tcp://HOST:PORT, unix://PATH or ssl://HOST:PORT\n"
          "  -T, --control-token TOKEN control server token\n"
          "  -F, --config-file PATH    read control_url, token, state_path, pidfile from a config\n"
          "                            file ('-' = none; default config/puma/<env>.rb, config/puma.rb\n"
          "                            when no other option names the server)\n"
          "  -e, --environment ENV     environment for finding the default config file\n"
          "  -Q, --quiet               no success messages (data and errors still print)\n"
          "      --format json|table   how stats prints (default json)\n"
          "      --wait                restart, phased-restart, refork: wait until the operation ends\n"
          "      --timeout SECONDS     how long --wait waits (default 120)\n"
          "  -V, --version             print the version\n"
          "  -H, -h, --help            this help\n"
          "\n",
          out);
    describe_commands(out);
    fputs("\n"
          "With a control URL (-C, or found in the state file) commands go to the control server;\n"
          "with only a pid they are sent as signals, like pumactl. Action commands print\n"
          "'Command NAME sent success' on stdout; data commands (stats, gc-stats,\n"
          "thread-backtraces, metrics) print only the data on stdout and that line on stderr,\n"
          "so 'servalctl metrics | promtool check metrics' works. Exit status: 0 on success,\n"
          "1 on any failure, with one line saying why. See docs/servalctl.md.\n",
          out);
}

#define GO_ON (-1) /* from the parsing helpers: no reason to exit yet */

static int usage_error(const char *what, const char *culprit)
{
    fprintf(stderr, "servalctl: %s '%s' (see servalctl --help)\n", what, culprit);
    return 1;
}

static int parse_pid_arg(const char *s, pid_t *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v <= 0 || v > 0x3fffffff)
        return usage_error("-p: not a pid:", s);
    *out = (pid_t)v;
    return GO_ON;
}

static int parse_timeout_arg(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !isfinite(v) || v <= 0 || v > 86400.0 * 365)
        return usage_error("--timeout: not a positive number of seconds:", s);
    *out = v;
    return GO_ON;
}

static const struct option long_opts[] = {
    {"state", required_argument, NULL, 'S'},
    {"pidfile", required_argument, NULL, 'P'},
    {"pid", required_argument, NULL, 'p'},
    {"control-url", required_argument, NULL, 'C'},
    {"control-token", required_argument, NULL, 'T'},
    {"config-file", required_argument, NULL, 'F'},
    {"environment", required_argument, NULL, 'e'},
    {"quiet", no_argument, NULL, 'Q'},
    {"format", required_argument, NULL, OPT_FORMAT},
    {"wait", no_argument, NULL, OPT_WAIT},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"version", no_argument, NULL, 'V'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* One option: GO_ON, or the exit code (0 after --help or --version). */
static int apply_option(args_t *a, int c, const char *arg)
{
    switch (c) {
    case 'S': a->where.state_path = arg; break;
    case 'P': a->where.pidfile = arg; break;
    case 'p': return parse_pid_arg(arg, &a->where.pid);
    case 'C': a->where.control_url = arg; break;
    case 'T': a->where.token = arg; break;
    case 'F': a->where.config_path = arg; break;
    case 'e': a->where.environment = arg; break;
    case 'Q': a->opts.quiet = true; break;
    case OPT_FORMAT: a->format = arg; break;
    case OPT_WAIT: a->opts.wait = true; break;
    case OPT_TIMEOUT: a->timeout_given = true; return parse_timeout_arg(arg, &a->opts.timeout_s);
    case 'V': printf("servalctl %s\n", SERVAL_VERSION); return 0;
    case 'h':
    case 'H': usage(stdout); return 0;
    default: return 1;
    }
    return GO_ON;
}

/* getopt's culprit: "-x" for a short option, else the argument as typed. */
static const char *culprit(char **argv, char *buf)
{
    if (optopt > 0 && optopt < 128) {
        buf[0] = '-';
        buf[1] = (char)optopt;
        buf[2] = '\0';
        return buf;
    }
    return argv[optind - 1];
}

/* GO_ON to run the command, else the exit code. */
static int parse_args(int argc, char **argv, args_t *a)
{
    char buf[3];
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":S:P:p:C:T:F:e:QVHh", long_opts, NULL)) != -1) {
        if (c == '?' && optopt >= OPT_FORMAT)
            return usage_error("this option takes no value:", argv[optind - 1]);
        if (c == '?')
            return usage_error("unknown option", culprit(argv, buf));
        if (c == ':')
            return usage_error("missing value for", culprit(argv, buf));
        int rc = apply_option(a, c, optarg);
        if (rc != GO_ON)
            return rc;
    }
    if (optind < argc)
        a->command = argv[optind++];
    if (optind < argc)
        return usage_error("unexpected argument", argv[optind]);
    return GO_ON;
}

/* Options that only make sense with some commands; the command is known. */
static int check_combination(const args_t *a, const sv_command_t *cmd)
{
    if (a->format && strcmp(a->format, "json") && strcmp(a->format, "table"))
        return usage_error("--format: expected json or table, not", a->format);
    if (a->opts.table && cmd->cmd != SV_CMD_STATS)
        return usage_error("--format table applies only to stats, not", cmd->name);
    if (a->opts.wait && !cmd->operation)
        return usage_error("--wait applies only to restart, phased-restart and refork, not", cmd->name);
    if (a->timeout_given && !a->opts.wait) {
        fprintf(stderr, "servalctl: --timeout applies only with --wait (see servalctl --help)\n");
        return 1;
    }
    return GO_ON;
}

int main(int argc, char **argv)
{
    args_t a = {.opts = {.timeout_s = CTL_WAIT_TIMEOUT_S}};
    int rc = parse_args(argc, argv, &a);
    if (rc != GO_ON)
        return rc;
    if (!a.command) {
        print_commands(stdout, "Available commands: ");
        return 1;
    }
    const sv_command_t *cmd = sv_command_by_name(a.command);
    if (!cmd || !user_command(cmd)) {
        printf("Invalid command: %s\n", a.command);
        return 1;
    }
    a.opts.table = a.format && !strcmp(a.format, "table");
    if ((rc = check_combination(&a, cmd)) != GO_ON)
        return rc;
    ctl_target_t t;
    char err[1024];
    if (ctl_target_resolve(&a.where, &t, err, sizeof(err)) < 0) {
        printf("%s\n", err);
        return 1;
    }
    return ctl_run(cmd, &a.opts, &t);
}
