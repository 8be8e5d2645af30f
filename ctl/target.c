#include "target.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "core/err.h"

static char *trim(char *s)
{
    s += strspn(s, " \t");
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = '\0';
    return s;
}

static char *unquote(char *v)
{
    size_t n = strlen(v);
    if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]) {
        v[n - 1] = '\0';
        return v + 1;
    }
    return v;
}

static int parse_pid(const char *s, pid_t *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *trim(end) || v <= 0 || v > 0x3fffffff)
        return SV_EPARSE;
    *out = (pid_t)v;
    return 0;
}

static void state_line(char *line, ctl_state_t *st)
{
    line = trim(line);
    char *colon = strchr(line, ':');
    if (line[0] == '#' || !colon)
        return;
    *colon = '\0';
    const char *key = trim(line);
    char *value = unquote(trim(colon + 1));
    if (!strcmp(key, "pid")) {
        if (parse_pid(value, &st->pid) < 0)
            st->pid = 0;
    } else if (!strcmp(key, "control_url") && *value) {
        snprintf(st->control_url, sizeof(st->control_url), "%s", value);
        st->has_control_url = true;
    } else if (!strcmp(key, "control_auth_token") && *value) {
        snprintf(st->control_auth_token, sizeof(st->control_auth_token), "%s", value);
        st->has_token = true;
    }
}

int ctl_state_read(const char *path, ctl_state_t *st, char *err, size_t errlen)
{
    memset(st, 0, sizeof(*st));
    FILE *f = fopen(path, "re");
    if (!f) {
        int rc = SV_ERRNO();
        if (rc != -ENOENT)
            snprintf(err, errlen, "servalctl: cannot read state file %s: %s", path, sv_strerror(rc));
        return rc;
    }
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) >= 0)
        state_line(line, st);
    free(line);
    fclose(f);
    return 0;
}

static int read_pidfile(const char *path, pid_t *pid, char *err, size_t errlen)
{
    char buf[64] = "";
    FILE *f = fopen(path, "re");
    if (!f) {
        int rc = SV_ERRNO();
        snprintf(err, errlen, rc == -ENOENT ? "Pid file not found: %s" : "servalctl: cannot read pid file %s: %s",
                 path, sv_strerror(rc));
        return rc;
    }
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    if (parse_pid(trim(buf), pid) < 0) {
        snprintf(err, errlen, "servalctl: pid file %s does not hold a pid", path);
        return SV_EPARSE;
    }
    return 0;
}

/* -F PATH, or config/puma/<env>.rb, config/puma.rb when the command line names no server. */
static const char *config_to_read(const ctl_where_t *w, char *buf, size_t cap)
{
    if (w->config_path)
        return strcmp(w->config_path, "-") ? w->config_path : NULL;
    if (w->state_path || w->pidfile || w->control_url || w->pid)
        return NULL;
    const char *env = w->environment;
    const char *names[] = {"APP_ENV", "RACK_ENV", "RAILS_ENV"};
    for (size_t i = 0; !env && i < sizeof(names) / sizeof(names[0]); i++)
        env = getenv(names[i]);
    snprintf(buf, cap, "config/puma/%s.rb", env && *env ? env : "development");
    if (access(buf, F_OK) == 0)
        return buf;
    return access("config/puma.rb", F_OK) == 0 ? "config/puma.rb" : NULL;
}

static int load_config(const ctl_where_t *w, sv_config_t *cfg, char *err, size_t errlen)
{
    char buf[300];
    const char *path = config_to_read(w, buf, sizeof(buf));
    sv_config_defaults(cfg);
    if (!path)
        return 0;
    if (access(path, F_OK) < 0) {
        snprintf(err, errlen, "servalctl: config file '%s' not found", path);
        return -ENOENT;
    }
    sv_diag_t diag = {{0}};
    if (sv_config_parse_file(cfg, path, &diag) < 0) {
        snprintf(err, errlen, "%s", diag.msg);
        return SV_ECONFIG;
    }
    return 0;
}

static void set(char *dst, size_t cap, const char *first, const char *second, const char *third)
{
    const char *v = first ? first : second ? second : third;
    snprintf(dst, cap, "%s", v ? v : "");
}

static int resolve_with_config(const ctl_where_t *w, const sv_config_t *cfg, ctl_target_t *t, char *err,
                               size_t errlen)
{
    const char *state_path = w->state_path ? w->state_path : cfg->state_path;
    const char *pidfile = w->pidfile ? w->pidfile : cfg->pidfile;
    const char *cfg_token = cfg->control_no_token ? NULL : cfg->control_token;
    ctl_state_t st = {0};
    if (state_path) {
        int rc = ctl_state_read(state_path, &st, err, errlen);
        if (rc == -ENOENT)
            snprintf(err, errlen, "State file not found: %s", state_path);
        if (rc < 0)
            return rc;
    }
    set(t->control_url, sizeof(t->control_url), w->control_url, st.has_control_url ? st.control_url : NULL,
        cfg->control_url);
    set(t->token, sizeof(t->token), w->token, st.has_token ? st.control_auth_token : NULL, cfg_token);
    t->pid = w->pid ? w->pid : st.pid;
    if (!t->pid && !state_path && pidfile)
        (void)read_pidfile(pidfile, &t->pid, t->pid_error, sizeof(t->pid_error));
    return 0;
}

int ctl_target_resolve(const ctl_where_t *w, ctl_target_t *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof(*t));
    sv_config_t cfg;
    int rc = load_config(w, &cfg, err, errlen);
    if (rc == 0)
        rc = resolve_with_config(w, &cfg, t, err, errlen);
    sv_config_free(&cfg);
    return rc;
}
