/*
 * cli.c: sv_config_load, the pipeline for one process.
 *
 * defaults < environment fallbacks < config file < command-line flags. Flags
 * are read first, because -C, --no-config and -e decide which file loads, and
 * are recorded as (directive, argument source) pairs that are replayed after
 * the file through the same setters, so a flag value meets exactly the
 * checks a puma.rb value meets. Values are passed on as single-quoted Ruby
 * strings: nothing a user types can turn into syntax, and directives taking
 * numbers accept digit strings anyway (ENV values are strings too).
 */
#include "config/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/err.h"
#include "os/listen.h"

/* One flag to replay after the config file. */
typedef struct rec {
    const char *directive;
    char *args;       /* argument source, owned */
    char where[80];   /* "serval: -w", the prefix of its error messages */
    bool clear_binds; /* the first -b/-p: command-line binds replace the file's */
} rec_t;

typedef struct cli {
    rec_t *recs;
    int nrecs;
    const char *config_path;
    const char *env_flag; /* -e, which also picks config/puma/<env>.rb */
    bool no_config;
    bool check;
    bool strict;
    bool print_config;
    bool binds_seen;
    bool have_app;
    sv_config_action_t action;
    sv_diag_t *diag;
} cli_t;

typedef enum { ARG_NONE, ARG_REQ, ARG_OPT } argkind_t;

typedef struct flag flag_t;
typedef int (*flag_fn)(cli_t *cli, const flag_t *f, const char *spelled, const char *val);

struct flag {
    char shortc;
    const char *longname;
    argkind_t arg;
    const char *metavar;
    const char *directive; /* what the flag sets, for the plain ones */
    flag_fn fn;
    const char *help;
};

#define cli_fail(cli, ...) sv_cfg_diag((cli)->diag, __VA_ARGS__)

/* s as a single-quoted Ruby string: only \ and ' need escaping there. */
static char *quote(const char *s)
{
    sv_buf_t b = SV_BUF_INIT;
    int rc = sv_buf_putc(&b, '\'');
    for (; *s && rc == 0; s++) {
        if (*s == '\\' || *s == '\'')
            rc = sv_buf_putc(&b, '\\');
        if (rc == 0)
            rc = sv_buf_putc(&b, *s);
    }
    if (rc == 0)
        rc = sv_buf_putc(&b, '\'');
    if (rc) {
        sv_buf_free(&b);
        return NULL;
    }
    return b.data;
}

/* Takes ownership of args. */
static int record(cli_t *cli, const char *directive, char *args, const char *spelled)
{
    if (!args)
        return cli_fail(cli, "serval: out of memory");
    rec_t *r = &cli->recs[cli->nrecs++];
    r->directive = directive;
    r->args = args;
    snprintf(r->where, sizeof(r->where), "serval: %.60s", spelled);
    return 0;
}

/* ---- flag handlers --------------------------------------------------- */

static int on_value(cli_t *cli, const flag_t *f, const char *spelled, const char *val)
{
    return record(cli, f->directive, quote(val), spelled);
}

static int on_switch(cli_t *cli, const flag_t *f, const char *spelled, const char *val)
{
    return record(cli, f->directive, strdup(""), spelled);
}

static int on_no_redirect_append(cli_t *cli, const flag_t *f, const char *spelled, const char *val)
{
    return record(cli, f->directive, strdup("false"), spelled);
}

static int on_bind(cli_t *cli, const flag_t *f, const char *spelled, const char *val)
{
    bool first = !cli->binds_seen;
    cli->binds_seen = true;
    int rc = on_value(cli, f, spelled, val);
    if (rc == 0)
        cli->recs[cli->nrecs - 1].clear_binds = first;
    return rc;
}

static int on_environment(cli_t *cli, const flag_t *f, const char *spelled, const char *val)
{
    cli->env_flag = val;
    return on_value(cli, f, spelled, val);
}

/* -t MIN:MAX, or -t N meaning N:N (Puma 6+). */
static int on_threads(cli_t *cli, const flag_t *f, const char *spelled, const char *val)
{
    const char *colon = strchr(val, ':');
    if (!colon)
        return on_value(cli, f, spelled, val);
    char *min = strndup(val, (size_t)(colon - val));
    char *qmin = min ? quote(min) : NULL, *qmax = quote(colon + 1);
    sv_buf_t args = SV_BUF_INIT;
    int rc = qmin && qmax ? sv_buf_printf(&args, "%s, %s", qmin, qmax) : -ENOMEM;
    free(min);
    free(qmin);
    free(qmax);
    return record(cli, f->directive, rc == 0 ? args.data : NULL, spelled);
}

static int on_fork_worker(cli_t *cli, const flag_t *f, const char *spelled, const char *val)
{
    return record(cli, f->directive, val ? quote(val) : strdup(""), spelled);
}

/* --flag or --flag=VALUE */
static int on_optional(cli_t *cli, const flag_t *f, const char *spelled, const char *val)
{
    return record(cli, f->directive, val ? quote(val) : strdup(""), spelled);
}

static int on_config(cli_t *cli, const flag_t *f, const char *spelled, const char *val)
{
    if (cli->config_path)
        return cli_fail(cli, "serval: option '%s' given twice (serval reads one config file)", spelled);
    cli->config_path = val;
    return 0;
}

static int on_no_config(cli_t *cli, const flag_t *f, const char *spelled, const char *val)
{
    cli->no_config = true;
    return 0;
}

static int on_check(cli_t *cli, const flag_t *f, const char *spelled, const char *val)
{
    cli->check = true;
    return 0;
}

static int on_strict(cli_t *cli, const flag_t *f, const char *spelled, const char *val)
{
    cli->strict = true;
    return 0;
}

static int on_print_config(cli_t *cli, const flag_t *f, const char *spelled, const char *val)
{
    cli->print_config = true;
    return 0;
}

static int on_help(cli_t *cli, const flag_t *f, const char *spelled, const char *val)
{
    cli->action = SV_CONFIG_HELP;
    return 0;
}

static int on_version(cli_t *cli, const flag_t *f, const char *spelled, const char *val)
{
    cli->action = SV_CONFIG_VERSION;
    return 0;
}

static const flag_t flags[] = {
    {'C', "config", ARG_REQ, "PATH", NULL, on_config,
     "config file (default: config/puma/<env>.rb or config/puma.rb, if present)"},
    {0, "no-config", ARG_NONE, NULL, NULL, on_no_config, "load no config file"},
    {'w', "workers", ARG_REQ, "N", "workers", on_value, "cluster mode with N workers (auto: one per CPU)"},
    {'t', "threads", ARG_REQ, "MIN:MAX", "threads", on_threads, "threads per process (N means N:N)"},
    {'b', "bind", ARG_REQ, "URI", "bind", on_bind, SV_BIND_FORMS "; repeatable; replaces the file's binds"},
    {'p', "port", ARG_REQ, "PORT", "port", on_bind, "same as -b tcp://0.0.0.0:PORT"},
    {'f', "fork-worker", ARG_OPT, "[N]", "fork_worker", on_fork_worker,
     "fork workers from worker 0; refork after N requests (1000; 0 = never)"},
    {0, "preload", ARG_NONE, NULL, "preload_app!", on_switch, "load the app in the master before forking"},
    {0, "dir", ARG_REQ, "DIR", "directory", on_value, "directory the app runs in"},
    {0, "control-url", ARG_REQ, "URI", "control_url", on_value, "start the control server here"},
    {0, "control-token", ARG_REQ, "T", "control_token", on_value,
     "the control server's token (random when not given; none = no token)"},
    {0, "control-data-url", ARG_REQ, "URI", "control_data_url", on_value,
     "a second control listener serving only read-only endpoints, without token"},
    {0, "control-data-only", ARG_NONE, NULL, "control_data_only", on_switch,
     "the control server serves only read-only endpoints (stats, metrics, health)"},
    {0, "control-allow-remote", ARG_NONE, NULL, "control_allow_remote", on_switch,
     "allow a token-less control server on a non-loopback address"},
    {0, "bind-to-activated-sockets", ARG_OPT, "[=only]", "bind_to_activated_sockets", on_optional,
     "listen on the sockets systemd passes too (=only: on those alone)"},
    {'S', "state", ARG_REQ, "PATH", "state_path", on_value, "state file"},
    {0, "pidfile", ARG_REQ, "PATH", "pidfile", on_value, "pid file"},
    {'e', "environment", ARG_REQ, "ENV", "environment", on_environment, "the app's environment"},
    {0, "tag", ARG_REQ, "NAME", "tag", on_value, "name shown in the process title"},
    {'q', "quiet", ARG_NONE, NULL, "quiet", on_switch, "no request log (the default)"},
    {'v', "log-requests", ARG_NONE, NULL, "log_requests", on_switch, "log every request"},
    {0, "redirect-stdout", ARG_REQ, "PATH", "redirect_stdout", on_value, "send stdout to this file"},
    {0, "redirect-stderr", ARG_REQ, "PATH", "redirect_stderr", on_value, "send stderr to this file"},
    {0, "redirect-append", ARG_NONE, NULL, "redirect_append", on_switch, "append to those files"},
    {0, "no-redirect-append", ARG_NONE, NULL, "redirect_append", on_no_redirect_append, "truncate them"},
    {0, "check", ARG_NONE, NULL, NULL, on_check, "check the configuration, paths and binds, and exit"},
    {0, "strict", ARG_NONE, NULL, NULL, on_strict, "every config warning is an error (with --check: exit 1)"},
    {0, "print-config", ARG_NONE, NULL, NULL, on_print_config,
     "print the effective configuration as JSON and exit (binds are not tried)"},
    {'V', "version", ARG_NONE, NULL, NULL, on_version, "print the version and exit"},
    {'h', "help", ARG_NONE, NULL, NULL, on_help, "print this help and exit"},
};

#define NFLAGS (sizeof(flags) / sizeof(flags[0]))

void sv_cfg_print_flags(FILE *f)
{
    for (size_t i = 0; i < NFLAGS; i++) {
        const flag_t *fl = &flags[i];
        char head[64], shortname[8] = "    ";
        if (fl->shortc)
            snprintf(shortname, sizeof(shortname), "-%c, ", fl->shortc);
        snprintf(head, sizeof(head), "%s--%s%s%s", shortname, fl->longname, fl->metavar ? " " : "",
                 fl->metavar ? fl->metavar : "");
        fprintf(f, "  %-30s %s\n", head, fl->help);
    }
}

/* ---- argv ------------------------------------------------------------ */

/* Puma's flags serval does not take: still an error (a flag is never ignored), with what to do instead. */
static const struct {
    char shortc;
    const char *longname;
    const char *hint;
} puma_flags[] = {
    {0, "debug", "set SERVAL_DEBUG=1 in the environment instead"},
    {'I', "include", "Ruby's load path: serval loads no Ruby, drop it"},
    {0, "idle-timeout", "serval does not stop itself when idle; use systemd socket activation for that"},
    {0, "plugin", "only tmp_restart is built in: plugin :tmp_restart in the config file"},
    {0, "prune-bundler", "Ruby-only, for Bundler: drop it"},
    {0, "extra-runtime-dependencies", "Ruby-only, for Bundler: drop it"},
    {'R', "restart-cmd", "a hot restart re-executes the serval binary: drop it"},
    {'s', "silent", "serval has no silent mode; its request log is off unless -v"},
    {0, "early-hints", "103 Early Hints are not supported by serval: drop it"},
    {'d', "daemon", "removed in Puma 5: run serval in the foreground under systemd or another supervisor"},
};

/* What to do instead of one of Puma's flags, or NULL for a flag Puma does not have either. */
static const char *puma_flag_hint(const char *longname, size_t n, char shortc)
{
    for (size_t i = 0; i < sizeof(puma_flags) / sizeof(puma_flags[0]); i++)
        if ((shortc && puma_flags[i].shortc == shortc) ||
            (longname && strlen(puma_flags[i].longname) == n && !strncmp(puma_flags[i].longname, longname, n)))
            return puma_flags[i].hint;
    return NULL;
}

static const flag_t *find_flag(const char *longname, size_t n, char shortc)
{
    for (size_t i = 0; i < NFLAGS; i++) {
        if (shortc && flags[i].shortc == shortc)
            return &flags[i];
        if (longname && strlen(flags[i].longname) == n && !strncmp(flags[i].longname, longname, n))
            return &flags[i];
    }
    return NULL;
}

static bool all_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/* "-5" can be a value; "--preload" or "-q" cannot. */
static bool looks_like_flag(const char *s)
{
    return s[0] == '-' && s[1] != '\0' && !(s[1] >= '0' && s[1] <= '9');
}

static int on_positional(cli_t *cli, const char *a)
{
    if (cli->have_app)
        return cli_fail(cli, "serval: unexpected argument '%.200s' (only one APP may be given)", a);
    cli->have_app = true;
    return record(cli, "app", quote(a), "APP");
}

/* --name, --name=value, -x, -xvalue, -x value. */
static int parse_flag(cli_t *cli, int argc, char **argv, int *i)
{
    const char *a = argv[*i], *val = NULL;
    char spelled[64];
    const flag_t *f;
    if (a[1] == '-') {
        const char *eq = strchr(a, '=');
        size_t n = eq ? (size_t)(eq - a) : strlen(a);
        snprintf(spelled, sizeof(spelled), "%.*s", (int)(n < 60 ? n : 60), a);
        f = find_flag(a + 2, n - 2, 0);
        val = eq ? eq + 1 : NULL;
    } else {
        snprintf(spelled, sizeof(spelled), "-%c", a[1]);
        f = find_flag(NULL, 0, a[1]);
        val = a[2] ? a + 2 : NULL;
    }
    const char *puma = f ? NULL : a[1] == '-' ? puma_flag_hint(a + 2, strcspn(a + 2, "="), 0)
                                              : puma_flag_hint(NULL, 0, a[1]);
    if (puma)
        return cli_fail(cli, "serval: option '%s' is Puma's, not serval's (hint: %s)", spelled, puma);
    if (!f || (f->arg == ARG_NONE && val && a[1] != '-'))
        return cli_fail(cli, "serval: unknown option '%.60s' (see serval --help)", f ? a : spelled);
    if (f->arg == ARG_NONE && val)
        return cli_fail(cli, "serval: option '%s' takes no value", spelled);
    if (f->arg == ARG_REQ && !val) {
        if (*i + 1 >= argc || looks_like_flag(argv[*i + 1]))
            return cli_fail(cli, "serval: option '%s' needs a value", spelled);
        val = argv[++*i];
    }
    /* --fork-worker's N is optional: take the next word only when it is a number */
    if (f->arg == ARG_OPT && !val && *i + 1 < argc && all_digits(argv[*i + 1]))
        val = argv[++*i];
    return f->fn(cli, f, spelled, val);
}

/* Stops at -h or -V: what follows them does not matter. */
static int parse_argv(cli_t *cli, int argc, char **argv)
{
    bool positional_only = false;
    for (int i = 1; i < argc && cli->action == SV_CONFIG_RUN; i++) {
        const char *a = argv[i];
        int rc;
        if (positional_only || a[0] != '-' || a[1] == '\0')
            rc = on_positional(cli, a);
        else if ((positional_only = !strcmp(a, "--")))
            rc = 0;
        else
            rc = parse_flag(cli, argc, argv, &i);
        if (rc)
            return rc;
    }
    return 0;
}

static int apply_flags(sv_config_t *c, cli_t *cli)
{
    for (int i = 0; i < cli->nrecs; i++) {
        const rec_t *r = &cli->recs[i];
        sv_site_t s = {cli->diag, r->where, true};
        if (r->clear_binds)
            sv_cfg_clear_binds(c);
        int rc = sv_cfg_apply_at(c, r->directive, r->args, &s);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- environment ----------------------------------------------------- */

/* The variable's value, NULL when unset or blank. */
static const char *env_value(const char *name)
{
    const char *v = getenv(name);
    if (!v)
        return NULL;
    for (const char *p = v; *p; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
            return v;
    return NULL;
}

static int apply_env(sv_config_t *c, const char *var, const char *directive, const char *val, sv_diag_t *diag)
{
    char where[64];
    snprintf(where, sizeof(where), "serval: %s", var);
    sv_site_t s = {diag, where, true};
    char *args = quote(val);
    int rc = args ? sv_cfg_apply_at(c, directive, args, &s) : sv_cfg_fail(&s, "out of memory");
    free(args);
    return rc;
}

static int env_whole(const char *var, const char *v, int64_t lo, int64_t hi, sv_diag_t *diag, int64_t *out)
{
    if (sv_cfg_parse_whole(v, out) < 0)
        return sv_cfg_diag(diag, "serval: %s: '%.200s' is not a whole number", var, v);
    if (*out < lo || *out > hi)
        return sv_cfg_diag(diag, "serval: %s: must be %lld to %lld (got %lld)", var, (long long)lo,
                           (long long)hi, (long long)*out);
    return 0;
}

/* Set without the min <= max check: the file or flags may still fix the other end. */
static int env_threads(sv_config_t *c, sv_diag_t *diag)
{
    static const char *const vars[2][2] = {{"PUMA_MIN_THREADS", "MIN_THREADS"}, {"PUMA_MAX_THREADS", "MAX_THREADS"}};
    for (int end = 0; end < 2; end++) {
        for (int k = 0; k < 2; k++) {
            const char *v = env_value(vars[end][k]);
            int64_t n;
            if (!v)
                continue;
            if (env_whole(vars[end][k], v, end == 0 ? 0 : 1, 1024, diag, &n) < 0)
                return SV_ECONFIG;
            *(end == 0 ? &c->min_threads : &c->max_threads) = (int)n;
            break;
        }
    }
    return 0;
}

static int load_env(sv_config_t *c, sv_diag_t *diag, const char **port)
{
    static const char *const env_vars[] = {"APP_ENV", "RACK_ENV", "RAILS_ENV"};
    const char *v = env_value("WEB_CONCURRENCY");
    int64_t n;
    int rc = v ? apply_env(c, "WEB_CONCURRENCY", "workers", v, diag) : 0;
    if (rc == 0)
        rc = env_threads(c, diag);
    for (size_t i = 0; rc == 0 && i < sizeof(env_vars) / sizeof(env_vars[0]); i++) {
        if ((v = env_value(env_vars[i]))) {
            rc = apply_env(c, env_vars[i], "environment", v, diag);
            break;
        }
    }
    *port = env_value("PORT");
    if (rc == 0 && *port)
        rc = env_whole("PORT", *port, 0, 65535, diag, &n);
    return rc;
}

/* ---- config file ----------------------------------------------------- */

/* The whole file, NUL-terminated; a NUL inside would silently cut it short. */
static int read_text(const char *path, sv_buf_t *text, sv_diag_t *diag)
{
    int rc = 0;
    FILE *f = fopen(path, "re");
    if (!f) {
        rc = -errno;
        goto fail;
    }
    char chunk[4096];
    size_t n;
    while (rc == 0 && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        rc = sv_buf_append(text, chunk, n);
    if (rc == 0 && ferror(f))
        rc = errno ? -errno : -EIO;
    if (rc == 0 && text->len && memchr(text->data, '\0', text->len))
        rc = -EILSEQ;
    if (rc == 0)
        rc = sv_buf_puts(text, "");
fail:
    if (f)
        fclose(f);
    if (rc)
        return sv_cfg_diag(diag, "serval: cannot read config file '%.200s': %s", path,
                           rc == -EILSEQ ? "it contains NUL bytes" : strerror(-rc));
    return 0;
}

int sv_config_parse_file(sv_config_t *c, const char *path, sv_diag_t *diag)
{
    sv_buf_t text = SV_BUF_INIT;
    int rc = read_text(path, &text, diag);
    char *copy = rc == 0 ? strdup(path) : NULL;
    if (rc == 0 && !copy)
        rc = sv_cfg_diag(diag, "serval: out of memory");
    if (rc == 0) {
        free(c->config_file);
        c->config_file = copy;
        rc = sv_config_parse_text(c, path, text.data, diag);
    }
    sv_buf_free(&text);
    return rc;
}

static int load_file(sv_config_t *c, const cli_t *cli, sv_diag_t *diag)
{
    char path[512];
    if (cli->config_path) {
        if (access(cli->config_path, F_OK) < 0)
            return sv_cfg_diag(diag, "serval: config file '%.200s' not found", cli->config_path);
        return sv_config_parse_file(c, cli->config_path, diag);
    }
    if (cli->no_config)
        return 0;
    snprintf(path, sizeof(path), "config/puma/%.200s.rb", cli->env_flag ? cli->env_flag : c->environment);
    if (access(path, F_OK) == 0)
        return sv_config_parse_file(c, path, diag);
    if (access("config/puma.rb", F_OK) == 0)
        return sv_config_parse_file(c, "config/puma.rb", diag);
    return 0;
}

/* ---- the pipeline ---------------------------------------------------- */

/* Warnings go to stderr as they are; under --strict they stop the load. */
static int report_warnings(const sv_config_t *c, sv_diag_t *diag)
{
    if (!c->warnings)
        return 0;
    fputs(c->warnings, stderr);
    fflush(stderr);
    if (!c->strict)
        return 0;
    if (c->n_warnings == 1)
        return sv_cfg_diag(diag, "serval: --strict: the warning above is an error");
    return sv_cfg_diag(diag, "serval: --strict: the %d warnings above are errors", c->n_warnings);
}

int sv_config_load(sv_config_t *c, int argc, char **argv, sv_config_action_t *action, sv_diag_t *diag)
{
    cli_t cli = {.diag = diag};
    const char *port = NULL;
    int rc = 0;
    sv_config_defaults(c);
    *action = SV_CONFIG_RUN;
    diag->msg[0] = '\0';
    if (!(cli.recs = calloc((size_t)(argc > 0 ? argc : 1), sizeof(*cli.recs)))) {
        rc = cli_fail(&cli, "serval: out of memory");
        goto done;
    }
    if ((rc = parse_argv(&cli, argc, argv)) || (*action = cli.action) != SV_CONFIG_RUN)
        goto done;
    if ((rc = load_env(c, diag, &port)) || (rc = load_file(c, &cli, diag)) || (rc = apply_flags(c, &cli)))
        goto done;
    /* PORT only moves the default bind: any explicit bind wins */
    if (port && c->n_binds == 0 && (rc = apply_env(c, "PORT", "port", port, diag)))
        goto done;
    c->check_only = cli.check;
    c->strict = cli.strict;
    c->print_config = cli.print_config;
    rc = sv_config_validate(c, diag);
    if (rc == 0)
        rc = report_warnings(c, diag);
done:
    for (int i = 0; i < cli.nrecs; i++)
        free(cli.recs[i].args);
    free(cli.recs);
    if (rc)
        sv_config_free(c);
    return rc;
}
