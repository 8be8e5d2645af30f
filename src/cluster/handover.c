/*
 * handover.c: everything that crosses a hot restart's exec (handover.h).
 * Owns SERVAL_INHERIT: the records' format, building the variable (or its
 * memfd past HANDOVER_ENV_MAX), reading it in the new image, handing each
 * record to its owner (sv_handover_take), closing the fds of those nobody
 * took; and the records both modes write and read (listeners, control,
 * TLS block, operations log).
 */
#include "cluster/handover.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/err.h"
#include "os/chan.h"
#include "os/fd.h"
#include "tls/tls.h"

/* MAX_ARG_STRLEN is 128 KiB for one "NAME=value" string; keep well below it */
#define HANDOVER_ENV_MAX (96 * 1024)

/* ---- the old image: writing ------------------------------------------------------ */

void sv_handover_add(sv_buf_t *env, const char *rec)
{
    sv_buf_puts(env, rec);
    sv_buf_putc(env, ';');
}

void sv_handover_common_records(const sv_runtime_t *rt, const sv_control_t *control, const sv_oplog_t *ops,
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
        sv_handover_add(env, rec);
    }
    if (control) {
        snprintf(rec, sizeof(rec), "control");
        sv_msg_put_int(rec, sizeof(rec), "fd", sv_control_fd(control));
        sv_msg_put(rec, sizeof(rec), "uri", rt->cfg.control_url ? rt->cfg.control_url : "");
        sv_msg_put_int(rec, sizeof(rec), "created", sv_control_created_path(control));
        sv_msg_put(rec, sizeof(rec), "token", rt->control_token);
        sv_handover_add(env, rec);
    }
    if (sv_tls_shared_fd() >= 0) {
        /* TLS ticket keys and counters: the new image shares them with the workers it keeps */
        snprintf(rec, sizeof(rec), "tls");
        sv_msg_put_int(rec, sizeof(rec), "fd", sv_tls_shared_fd());
        sv_handover_add(env, rec);
    }
    char opsbuf[SV_OPLOG_SIZE * 700];
    sv_oplog_handover(ops, opsbuf, sizeof(opsbuf));
    sv_buf_puts(env, opsbuf);
}

int sv_handover_assignment(const sv_buf_t *env, sv_buf_t *assignment, int *memfd)
{
    *memfd = -1;
    if (env->len <= HANDOVER_ENV_MAX)
        return sv_buf_printf(assignment, "%s=%s", SV_HANDOVER_ENV, env->data ? env->data : "");
    /* past what one environment string may hold: the records ride in a memfd the exec keeps */
    int fd = memfd_create("serval-inherit", 0);
    if (fd >= 0 && sv_fd_write_all(fd, env->data, env->len) < 0)
        sv_fd_close(&fd);
    if (fd < 0) {
        int rc = SV_ERRNO();
        return rc < 0 ? rc : -ENOMEM;
    }
    *memfd = fd;
    return sv_buf_printf(assignment, "%s=@%d", SV_HANDOVER_ENV, fd);
}

/* ---- the new image: reading ------------------------------------------------------ */

/*
 * Records are sv_msg lines separated by ';'. A handover too large for one
 * environment string (a kernel limit of 128 KiB: about a thousand workers)
 * comes in an inherited memfd instead: SERVAL_INHERIT=@FD.
 */
static char *read_handover_fd(int fd)
{
    sv_buf_t b = SV_BUF_INIT;
    char chunk[65536];
    ssize_t r;
    lseek(fd, 0, SEEK_SET);
    while ((r = read(fd, chunk, sizeof(chunk))) > 0)
        sv_buf_append(&b, chunk, (size_t)r);
    close(fd);
    char *out = strdup(b.data ? b.data : "");
    sv_buf_free(&b);
    return out;
}

void sv_handover_read(sv_runtime_t *rt)
{
    const char *v = getenv(SV_HANDOVER_ENV);
    if (!v)
        return;
    rt->hot_restarted = true;
    char *copy = v[0] == '@' ? read_handover_fd(atoi(v + 1)) : strdup(v);
    char *save = NULL;
    for (char *rec = strtok_r(copy, ";", &save); rec; rec = strtok_r(NULL, ";", &save)) {
        if (rt->n_handover == rt->cap_handover) {
            int cap = rt->cap_handover ? rt->cap_handover * 2 : 64;
            char **h = realloc(rt->handover, (size_t)cap * sizeof(char *));
            if (!h)
                break;
            rt->handover = h;
            rt->cap_handover = cap;
        }
        rt->handover[rt->n_handover++] = strdup(rec);
    }
    free(copy);
    unsetenv(SV_HANDOVER_ENV);
}

void sv_handover_drop(sv_runtime_t *rt)
{
    for (int i = 0; i < rt->n_handover; i++) {
        char *r = rt->handover[i];
        if (!r)
            continue;
        int fd = (int)sv_msg_int(r, "fd", -1);
        if (fd > 2)
            close(fd);
        free(r);
        rt->handover[i] = NULL;
    }
    free(rt->handover);
    rt->handover = NULL;
    rt->n_handover = rt->cap_handover = 0;
}

char *sv_handover_take_next(sv_runtime_t *rt, const char *kind)
{
    size_t kl = strlen(kind);
    for (int i = 0; i < rt->n_handover; i++) {
        char *r = rt->handover[i];
        if (r && !strncmp(r, kind, kl) && (r[kl] == ' ' || r[kl] == '\0')) {
            rt->handover[i] = NULL;
            return r;
        }
    }
    return NULL;
}

int sv_handover_take(sv_runtime_t *rt, const char *kind, char **out, int max)
{
    int n = 0;
    char *r;
    while (n < max && (r = sv_handover_take_next(rt, kind)) != NULL)
        out[n++] = r;
    return n;
}

void sv_handover_adopt_ops(sv_runtime_t *rt, sv_oplog_t *ops)
{
    char *recs[SV_OPLOG_SIZE + 1];
    int n = sv_handover_take(rt, "op", recs, SV_OPLOG_SIZE + 1);
    n += sv_handover_take(rt, "opcount", recs + n, 1);
    for (int i = 0; i < n; i++) {
        sv_oplog_adopt(ops, recs[i]);
        free(recs[i]);
    }
}
