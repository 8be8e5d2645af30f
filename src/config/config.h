/*
 * config.h: serval's configuration.
 *
 * One sv_config_t is built per process generation from, in increasing
 * precedence: built-in defaults, environment fallbacks (WEB_CONCURRENCY,
 * MIN_THREADS, MAX_THREADS, PORT), the config file (the declarative subset of
 * Puma's config/puma.rb DSL), then command-line flags. Command-line binds
 * replace the file's binds rather than adding to them, as in Puma.
 *
 * A single directive table drives all of it: the file parser, the flag
 * overlay, --help defaults and the effective-config JSON in stats. Mistakes
 * are reported as exactly one line in diag->msg:
 *     path/puma.rb:12: unknown directive 'foo' (hint: ...)
 *     serval: -w: 'x' is not a whole number
 * and the load functions return SV_ECONFIG. Nothing falls back silently.
 *
 * Strings in sv_config_t are owned by the config (malloc'd) and released by
 * sv_config_free. Durations are in seconds (double); sizes in bytes.
 */
#ifndef SV_CONFIG_CONFIG_H
#define SV_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/json.h"

#define SV_CONFIG_MAX_BINDS 16
/* The longest control token (bytes); a longer one is a config error, never cut. */
#define SV_CONTROL_TOKEN_MAX 127
#define SV_CONFIG_MAX_THRESHOLDS 16
/* Room for every row of the directive table (directives.c checks it at compile time). */
#define SV_CONFIG_MAX_DIRECTIVES 96
#define SV_DIAG_MAX 512

typedef struct sv_diag {
    char msg[SV_DIAG_MAX];
} sv_diag_t;

typedef enum sv_culling { SV_CULL_YOUNGEST = 0, SV_CULL_OLDEST = 1 } sv_culling_t;

typedef struct sv_config {
    /* Provenance */
    char *config_file;     /* the file loaded, NULL if none */

    /* Process model */
    int workers;           /* workers N / -w; 0 = single mode */
    int min_threads;       /* threads MIN, MAX / -t MIN:MAX (default 0:5) */
    int max_threads;
    bool preload;          /* preload_app! / --preload */
    bool fork_worker;      /* fork_worker [N, ...] / --fork-worker [N] */
    int n_refork_thresholds;                        /* 0 = no automatic refork */
    int64_t refork_thresholds[SV_CONFIG_MAX_THRESHOLDS]; /* ascending request counts; default {1000} */
    bool nakayoshi_fork;   /* nakayoshi_fork: malloc_trim(0) before each fork */
    sv_culling_t worker_culling_strategy; /* worker_culling_strategy :youngest|:oldest */
    bool silence_single_worker_warning;

    /* Sockets */
    int n_binds;           /* bind URI / -b (repeatable); port N [, HOST] / -p */
    char *binds[SV_CONFIG_MAX_BINDS]; /* default tcp://0.0.0.0:9292 when none */
    char *default_host;    /* set_default_host: a file's port N without HOST; NULL = 0.0.0.0 */

    /* App */
    char *app_path;        /* app "x.so" / positional APP; NULL = built-in hello */
    char *directory;       /* directory / --dir; NULL = the starting cwd */
    char *environment;     /* environment / -e; default from APP_ENV, RACK_ENV, else "development" */
    char *tag;             /* tag / --tag; NULL = basename of the directory */

    /* Control, state (docs/control.md); a token is at most SV_CONTROL_TOKEN_MAX bytes */
    char *control_url;     /* activate_control_app URL, { auth_token: T, no_token: true } / --control-url */
    char *control_token;   /* NULL = generate a random one at boot */
    bool control_no_token; /* no_token: true -> no authentication */
    bool control_data_only; /* data_only: true -> read-only endpoints only */
    bool control_allow_remote; /* allow_remote: true -> token-less full control app on any address */
    char *control_data_url; /* data_url: URL / --control-data-url: a second, data_only listener */
    char *state_path;      /* state_path / -S */
    char *pidfile;         /* pidfile / --pidfile */

    /* Logging */
    bool quiet;            /* quiet / -q (no request log; the default) */
    bool log_requests;     /* log_requests / --log-requests */
    char *stdout_redirect; /* stdout_redirect OUT, ERR, APPEND / --redirect-stdout */
    char *stderr_redirect; /* / --redirect-stderr */
    bool redirect_append;  /* / --redirect-append */
    int log_format;        /* log_format: sv_log_format_t (0 auto: ISO-8601 stamps unless stdout is a tty) */

    /* Client timeouts (seconds) */
    double persistent_timeout;   /* 65: idle keep-alive connection */
    double first_data_timeout;   /* 30: inactivity while a request is incomplete, or before the first byte */
    double request_timeout;      /* 60: a whole request head must arrive within this */
    double data_rate_grace_period; /* 5: window over which the minimum data rates are measured */
    double force_shutdown_after; /* -1 = :forever (default), 0 = :immediately, else seconds */
    double shutdown_delay; /* 0: on TERM, seconds of lame duck (readiness 503, still serving) */
    double app_timeout;          /* 0 = off: an app call longer than this gets 504, its worker is replaced */
    double app_timeout_cleanup;  /* 5: grace for the replaced worker's other requests */

    /* Worker supervision (seconds) */
    double worker_timeout;          /* 60, minimum 6 and > worker_check_interval */
    double worker_boot_timeout;     /* 60 */
    double worker_shutdown_timeout; /* 30 */
    double worker_check_interval;   /* 5 */
    double wait_for_less_busy_worker; /* 0.005; 0 disables */

    /* HTTP limits */
    int max_keep_alive;          /* 1000 requests per connection; 0 = unlimited */
    size_t max_request_line;     /* 8 KiB: longer request-target -> 414 */
    size_t max_header_size;      /* 64 KiB: request line + headers -> 431 */
    int max_headers;             /* 100 -> 431 */
    int64_t max_body_size;       /* 100 MiB -> 413; 0 = unlimited */
    size_t body_buffer_size;     /* 1 MiB: larger bodies wait in a temp file */
    size_t body_memory_limit;    /* 32 MiB: request bodies in memory per process; past it, temp files */
    int64_t max_response_buffer; /* 256 MiB: streamed output in temp files, per process; 0 = the app waits */
    int64_t min_request_data_rate;  /* 240 B/s; 0 = off */
    int64_t min_response_data_rate; /* 240 B/s; 0 = off */

    /* Restarts */
    int phased_restart_batch;    /* 1: workers replaced at a time */
    bool phased_restart_surge;   /* true: new worker booted before its old one stops; false: Puma's stop-first */
    bool hot_restart_preflight;  /* true: run the new binary with --check before exec */
    bool tmp_restart;            /* plugin :tmp_restart: hot restart when tmp/restart.txt is touched */

    /* Recycling */
    int64_t max_requests;        /* 0 = off: replace a worker after this many requests */
    int64_t max_requests_jitter; /* up to this many fewer, random per worker */
    int64_t max_worker_memory;   /* bytes of PSS, 0 = off */

    /* Behind a proxy, under systemd (docs/proxy.md, docs/systemd.md) */
    int proxy_protocol;            /* set_remote_address proxy_protocol: 0 none, 1 :v1, 2 :v2, 3 :any */
    char *remote_address_header;   /* set_remote_address header: "X-Forwarded-For" */
    char *remote_address_value;    /* set_remote_address "1.2.3.4" / :localhost: every request's client */
    char *trusted_proxies;         /* trusted_proxies: networks, comma-separated; NULL = loopback and private */
    int bind_to_activated_sockets; /* 0 off, 1 true, 2 "only" */

    /* Process-only flags (never in a config file) */
    bool check_only;             /* --check: validate and exit */
    bool strict;                 /* --strict: every warning is an error */
    bool print_config;           /* --print-config: print the effective config as JSON and exit */

    /* What the config asks for that serval does not do: "file:line: warning: ...\n" lines */
    char *warnings;              /* NULL when none */
    int n_warnings;
    /*
     * Where each directive was last set, by its row in the directive table:
     * "config/puma.rb:3" or "serval: -w"; NULL while it has its default.
     * A cross-field error names the line of the setting it is about.
     */
    char *origin[SV_CONFIG_MAX_DIRECTIVES];
} sv_config_t;

/* What main() should do after sv_config_load. */
typedef enum sv_config_action {
    SV_CONFIG_RUN = 0,
    SV_CONFIG_HELP = 1,    /* -h: print sv_config_print_help, exit 0 */
    SV_CONFIG_VERSION = 2, /* -V: print the version, exit 0 */
} sv_config_action_t;

/*
 * Checks that the paths the config names can be used, after the directory
 * change: pidfile, state_path and the log redirects can be written (the file,
 * or a new file in its directory), the app file can be read. With try_binds,
 * also that every bind can be bound now (a taken port is an error); the
 * sockets are closed again. Returns 0 or SV_ECONFIG with one line in diag.
 */
int sv_config_check_paths(const sv_config_t *c, sv_diag_t *diag);
int sv_config_check_binds(const sv_config_t *c, sv_diag_t *diag);

/* Fill every field with its default (no env, no file). */
void sv_config_defaults(sv_config_t *c);

/*
 * The whole pipeline for a process: defaults, environment fallbacks, config
 * file (-C PATH, else config/puma/<env>.rb or config/puma.rb in the cwd if
 * present, unless --no-config), then the flags in argv (argv[0] is the
 * program). Sets *action. Returns 0 or SV_ECONFIG with diag set.
 * Warnings (c->warnings) are written to stderr, one line each; with
 * --strict any warning makes the load fail.
 */
int sv_config_load(sv_config_t *c, int argc, char **argv, sv_config_action_t *action, sv_diag_t *diag);

/* Parse config file text as if read from path (used by sv_config_load and tests). */
int sv_config_parse_text(sv_config_t *c, const char *path, const char *text, sv_diag_t *diag);
/* Read and parse the file at path. */
int sv_config_parse_file(sv_config_t *c, const char *path, sv_diag_t *diag);
/* Apply one directive by name with args given as config-file source text, e.g. ("threads", "2, 8"). */
int sv_config_apply(sv_config_t *c, const char *name, const char *args_src, sv_diag_t *diag);

/* Cross-field checks (run by sv_config_load last): one line in diag. */
int sv_config_validate(const sv_config_t *c, sv_diag_t *diag);

/* The binds in effect (the default when none configured). */
int sv_config_bind_count(const sv_config_t *c);
const char *sv_config_bind(const sv_config_t *c, int i);

/* --help text with flags and every directive's default. */
void sv_config_print_help(const char *prog);

/* The effective configuration as a JSON object (for stats). */
void sv_config_to_json(const sv_config_t *c, sv_json_t *w);

/* Deep copy (for handing a config to a child role); returns 0 or -ENOMEM. */
int sv_config_copy(sv_config_t *dst, const sv_config_t *src);

void sv_config_free(sv_config_t *c);

#endif
