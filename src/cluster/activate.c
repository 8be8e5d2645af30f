/*
 * activate.c: activated sockets among the listeners (activate.h).
 */
#include "cluster/activate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"
#include "os/chan.h"

enum { ACT_OFF = 0, ACT_ON = 1, ACT_ONLY = 2 };

static const char *const listen_vars[] = {"LISTEN_PID=", "LISTEN_FDS=", "LISTEN_FDNAMES="};

void sv_activate_scrub_env(char **envp)
{
    int k = 0;
    for (int i = 0; envp && envp[i]; i++) {
        bool drop = false;
        for (size_t v = 0; v < sizeof(listen_vars) / sizeof(listen_vars[0]); v++)
            drop |= !strncmp(envp[i], listen_vars[v], strlen(listen_vars[v]));
        if (drop)
            free(envp[i]);
        else
            envp[k++] = envp[i];
    }
    if (envp)
        envp[k] = NULL;
}

bool sv_activate_expected(const sv_runtime_t *rt)
{
    return rt->cfg.bind_to_activated_sockets != ACT_OFF || getenv("LISTEN_FDS") != NULL;
}

int sv_activate_take(sv_runtime_t *rt, char *err, size_t errlen)
{
    int n = sv_activation_take(rt->activated, SV_CONFIG_MAX_BINDS, err, errlen);
    if (n <= 0) {
        rt->n_activated = 0;
        return n;
    }
    rt->n_activated = n;
    sv_buf_t line = SV_BUF_INIT;
    sv_buf_printf(&line, "* systemd passed %d socket%s:", n, n == 1 ? "" : "s");
    for (int i = 0; i < n; i++) {
        const sv_activated_t *a = &rt->activated[i];
        sv_buf_printf(&line, "%s %s (fd %d%s%s)", i ? "," : "", a->uri, a->fd, a->name[0] ? ", " : "", a->name);
    }
    sv_log("%s", line.data ? line.data : "* systemd passed sockets");
    sv_buf_free(&line);
    return 0;
}

static bool activated_record(const char *rec)
{
    return rec && sv_msg_int(rec, "activated", 0) == 1;
}

/* Whether a passed socket, or an activated record, answers uri. */
static bool answers(const sv_runtime_t *rt, const char *uri, char *const *recs, int nrec)
{
    for (int i = 0; i < rt->n_activated; i++)
        if (!rt->activated[i].used && rt->activated[i].fd >= 0 && sv_activation_matches(&rt->activated[i], uri))
            return true;
    char ruri[512];
    for (int i = 0; i < nrec; i++)
        if (activated_record(recs[i]) && sv_msg_get(recs[i], "uri", ruri, sizeof(ruri)) && !strcmp(ruri, uri))
            return true;
    return false;
}

static bool any_passed(const sv_runtime_t *rt, char *const *recs, int nrec)
{
    if (rt->n_activated > 0)
        return true;
    for (int i = 0; i < nrec; i++)
        if (activated_record(recs[i]))
            return true;
    return false;
}

bool sv_activate_skip_bind(const sv_runtime_t *rt, const char *uri, char *const *recs, int nrec)
{
    int mode = rt->cfg.bind_to_activated_sockets;
    if (mode == ACT_OFF)
        return false;
    if (rt->cfg.n_binds == 0)
        return any_passed(rt, recs, nrec); /* the default bind gives way to systemd's sockets */
    if (mode == ACT_ON || answers(rt, uri, recs, nrec))
        return false;
    if (rt->hot_restarted && !any_passed(rt, recs, nrec))
        return false; /* "only" new in this image, which systemd did not start: keep serving (sv_activate_rest) */
    sv_log("* Ignoring bind %s: bind_to_activated_sockets \"only\" listens on systemd's sockets alone", uri);
    return true;
}

int sv_activate_adopt(sv_runtime_t *rt, sv_listener_t *l, const char *uri, char *err, size_t errlen)
{
    for (int i = 0; i < rt->n_activated; i++) {
        sv_activated_t *a = &rt->activated[i];
        if (a->used || a->fd < 0 || !sv_activation_matches(a, uri))
            continue;
        int rc = sv_listener_adopt(l, uri, a->fd, err, errlen);
        if (rc < 0)
            return rc;
        a->used = true;
        l->activated = true;
        return 1;
    }
    return 0;
}

/* One more listener from an activated fd; false when the table is full (logged, fd left alone). */
static int add_listener(sv_runtime_t *rt, const char *uri, int fd, char *err, size_t errlen)
{
    if (rt->n_listeners >= SV_CONFIG_MAX_BINDS) {
        sv_log_error("! activated socket %s left out: serval listens on at most %d addresses", uri,
                     SV_CONFIG_MAX_BINDS);
        return 0;
    }
    sv_listener_t *l = &rt->listeners[rt->n_listeners];
    int rc = sv_listener_adopt(l, uri, fd, err, errlen);
    if (rc < 0)
        return rc;
    l->activated = true;
    rt->n_listeners++;
    return 1;
}

static int adopt_records(sv_runtime_t *rt, char **recs, int nrec, char *err, size_t errlen)
{
    char ruri[512];
    for (int i = 0; i < nrec; i++) {
        if (!activated_record(recs[i]) || !sv_msg_get(recs[i], "uri", ruri, sizeof(ruri)))
            continue;
        int rc = add_listener(rt, ruri, (int)sv_msg_int(recs[i], "fd", -1), err, errlen);
        if (rc < 0)
            return rc;
        if (rc == 0)
            continue; /* left for the caller's "Closing unused inherited" */
        free(recs[i]);
        recs[i] = NULL;
    }
    return 0;
}

int sv_activate_rest(sv_runtime_t *rt, char **recs, int nrec, char *err, size_t errlen)
{
    int mode = rt->cfg.bind_to_activated_sockets;
    for (int i = 0; i < rt->n_activated && mode != ACT_OFF; i++) {
        sv_activated_t *a = &rt->activated[i];
        if (a->used || a->fd < 0)
            continue;
        int rc = add_listener(rt, a->uri, a->fd, err, errlen);
        if (rc < 0)
            return rc;
        a->used = rc == 1;
    }
    if (mode != ACT_OFF) {
        int rc = adopt_records(rt, recs, nrec, err, errlen);
        if (rc < 0)
            return rc;
    }
    for (int i = 0; i < rt->n_activated; i++)
        if (!rt->activated[i].used && rt->activated[i].fd >= 0)
            sv_log("* Closing unused activated socket: %s (hint: bind_to_activated_sockets true listens on it)",
                   rt->activated[i].uri);
    sv_activation_close_unused(rt->activated, rt->n_activated);
    bool any = false;
    for (int i = 0; i < rt->n_listeners; i++)
        any |= rt->listeners[i].activated;
    if (mode == ACT_ONLY && !any && rt->hot_restarted) {
        sv_log_error("! bind_to_activated_sockets \"only\", but systemd passed no socket to this server: "
                     "serving on the binds until a restart under systemd");
        return 0;
    }
    if (mode == ACT_ONLY && !any) {
        snprintf(err, errlen, "bind_to_activated_sockets \"only\": systemd passed no socket (LISTEN_FDS unset, or "
                              "meant for another pid; hint: start serval from its .socket unit, or say true)");
        return -ENOENT;
    }
    if (mode == ACT_ON && !any)
        sv_log("* bind_to_activated_sockets: systemd passed no socket; listening on the binds");
    return 0;
}
