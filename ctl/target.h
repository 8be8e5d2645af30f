/*
 * target.h: where servalctl finds the server.
 *
 * Sources, like pumactl's: the command line (-p, -C, -T, -S, -P), a config
 * file (-F PATH, or when the command line names no server at all the first
 * of config/puma/<env>.rb and config/puma.rb; -F - disables this), the state
 * file, and the pidfile. For each value the command line wins, then the
 * state file (the running server's own record), then the config file. The
 * pid comes from -p, else the state file, else the pidfile.
 */
#ifndef SV_CTL_TARGET_H
#define SV_CTL_TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* What the command line said; NULL / 0 = not given. */
typedef struct ctl_where {
    const char *state_path;
    const char *pidfile;
    const char *control_url;
    const char *token;
    const char *config_path; /* "-" = read no config file */
    const char *environment; /* for config discovery */
    pid_t pid;
} ctl_where_t;

/* The server as resolved. Empty strings and 0 mean unknown. */
typedef struct ctl_target {
    pid_t pid;
    char control_url[512];
    char token[256];
    /* Why the pidfile gave no pid ("Pid file not found: PATH"): reported
     * only by a command that needs the pid, so that a stale pidfile path in
     * a config does not break commands sent to the control server. */
    char pid_error[600];
} ctl_target_t;

/* The keys servalctl reads from a state file. */
typedef struct ctl_state {
    pid_t pid;                  /* 0 = absent */
    char control_url[512];      /* "" = absent */
    char control_auth_token[256];
    bool has_control_url, has_token;
} ctl_state_t;

/*
 * Resolve w into *t. Returns 0, or a negative code with the one line to
 * print in err (exact pumactl wording where pumactl has one, e.g.
 * "State file not found: PATH").
 */
int ctl_target_resolve(const ctl_where_t *w, ctl_target_t *t, char *err, size_t errlen);

/*
 * Read a state file (Puma's YAML subset: "key: value" lines, "#" comments,
 * quotes stripped, unknown keys ignored). Returns 0, -ENOENT (missing),
 * or another negative code; err holds a line for anything but -ENOENT.
 */
int ctl_state_read(const char *path, ctl_state_t *st, char *err, size_t errlen);

#endif
