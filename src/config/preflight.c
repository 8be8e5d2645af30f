/*
 * preflight.c: can the configuration be used here, now?
 *
 * Run after the directory change, so relative paths mean what they will
 * mean while serving. A pid or state file that cannot be written is a
 * startup error rather than a log line while serving: without it pumactl
 * and servalctl cannot find the server.
 */
#include "config/internal.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "os/listen.h"

/*
 * The file can be written, or created in its (existing, writable) directory.
 * A pid or state file is written beside itself and renamed over (by_rename):
 * its directory must be writable even when the file exists.
 */
static int check_writable(const char *what, const char *path, bool by_rename, sv_diag_t *diag)
{
    struct stat st;
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return sv_cfg_diag(diag, "serval: %s '%.200s' is a directory", what, path);
        if (!by_rename && access(path, W_OK) < 0)
            return sv_cfg_diag(diag, "serval: %s '%.200s' cannot be written: %s", what, path, strerror(errno));
        if (!by_rename)
            return 0;
    }
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
        return sv_cfg_diag(diag, "serval: %s '%.200s' cannot be created: directory '%.200s' does not exist", what,
                           path, dir);
    if (access(dir, W_OK | X_OK) < 0)
        return sv_cfg_diag(diag, "serval: %s '%.200s' cannot be written: directory '%.200s': %s", what, path, dir,
                           strerror(errno));
    return 0;
}

int sv_config_check_paths(const sv_config_t *c, sv_diag_t *diag)
{
    const struct {
        const char *what;
        const char *path;
        bool by_rename;
    } files[] = {
        {"pidfile", c->pidfile, true},
        {"state_path", c->state_path, true},
        {"stdout_redirect", c->stdout_redirect, false},
        {"stderr_redirect", c->stderr_redirect, false},
    };
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        if (files[i].path && check_writable(files[i].what, files[i].path, files[i].by_rename, diag) < 0)
            return SV_ECONFIG;
    if (c->app_path && access(c->app_path, R_OK) < 0)
        return sv_cfg_diag(diag, "serval: app '%.200s' cannot be read: %s", c->app_path, strerror(errno));
    for (int i = 0; i < c->n_binds; i++) {
        sv_bind_t b;
        char err[SV_DIAG_MAX / 2];
        if (sv_bind_parse(c->binds[i], &b, err, sizeof(err)) < 0 || b.kind != SV_BIND_UNIX)
            continue;
        char dir[sizeof(b.path)];
        snprintf(dir, sizeof(dir), "%s", b.path);
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir) {
            *slash = '\0';
            struct stat st;
            if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
                return sv_cfg_diag(diag, "serval: bind '%.200s': directory '%.100s' does not exist", c->binds[i],
                                   dir);
        }
    }
    return 0;
}

int sv_config_check_binds(const sv_config_t *c, sv_diag_t *diag)
{
    for (int i = 0; i < sv_config_bind_count(c); i++) {
        sv_listener_t l;
        char err[SV_DIAG_MAX / 2];
        if (sv_listener_open(&l, sv_config_bind(c, i), err, sizeof(err)) < 0)
            return sv_cfg_diag(diag, "serval: %s", err);
        sv_listener_close(&l, true);
    }
    if (c->control_url) {
        sv_listener_t l;
        char err[SV_DIAG_MAX / 2];
        if (sv_listener_open(&l, c->control_url, err, sizeof(err)) < 0)
            return sv_cfg_diag(diag, "serval: control server: %s", err);
        sv_listener_close(&l, true);
    }
    return 0;
}
