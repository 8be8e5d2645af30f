/*
 * activation.c: systemd socket activation (sd_listen_fds(3), without libsystemd:
 * the protocol is three environment variables).
 */
#include "os/activation.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/err.h"
#include "os/listen.h"

static void unset_env(void)
{
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
}

/* The bind URI a listening socket answers on, from getsockname. */
static int describe(int fd, char *uri, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    memset(&ss, 0, sizeof(ss));
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return SV_ERRNO();
    char ip[INET6_ADDRSTRLEN];
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
        snprintf(uri, cap, "tcp://%s:%u", ip, ntohs(a->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
        snprintf(uri, cap, "tcp://[%s]:%u", ip, ntohs(a->sin6_port));
    } else if (ss.ss_family == AF_UNIX) {
        const struct sockaddr_un *a = (const struct sockaddr_un *)&ss;
        if (len <= offsetof(struct sockaddr_un, sun_path) || a->sun_path[0] == '\0')
            return -EAFNOSUPPORT;  /* unnamed or abstract: no path to name it by */
        snprintf(uri, cap, "unix://%.*s", (int)(len - offsetof(struct sockaddr_un, sun_path)),
                 a->sun_path);
    } else {
        return -EAFNOSUPPORT;
    }
    return 0;
}

static void take_name(const char **names, char *out, size_t cap)
{
    out[0] = '\0';
    if (!*names)
        return;
    const char *colon = strchr(*names, ':');
    size_t n = colon ? (size_t)(colon - *names) : strlen(*names);
    snprintf(out, cap, "%.*s", (int)n, *names);
    *names = colon ? colon + 1 : NULL;
}

int sv_activation_take(sv_activated_t *out, int max, char *err, size_t errlen)
{
    const char *pid_s = getenv("LISTEN_PID"), *fds_s = getenv("LISTEN_FDS");
    const char *names = getenv("LISTEN_FDNAMES");
    char names_copy[4096];
    snprintf(names_copy, sizeof(names_copy), "%s", names ? names : "");
    names = names ? names_copy : NULL;
    if (!pid_s || !fds_s) {
        unset_env();
        return 0;
    }
    char *end;
    long pid = strtol(pid_s, &end, 10);
    if (*end || pid != (long)getpid()) {
        unset_env();  /* meant for another process (a parent that did not unset them) */
        return 0;
    }
    long n = strtol(fds_s, &end, 10);
    unset_env();
    if (*end || n < 0 || n > 4096) {
        snprintf(err, errlen, "socket activation: LISTEN_FDS=%s is not a count", fds_s);
        return SV_ECONFIG;
    }
    if (n > max) {
        snprintf(err, errlen, "socket activation: %ld sockets passed, serval takes at most %d", n,
                 max);
        return SV_ELIMIT;
    }
    for (int i = 0; i < (int)n; i++) {
        int fd = SV_ACTIVATION_FIRST_FD + i;
        sv_activated_t *a = &out[i];
        memset(a, 0, sizeof(*a));
        a->fd = fd;
        take_name(&names, a->name, sizeof(a->name));
        int acc = 0;
        socklen_t len = sizeof(acc);
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) < 0 || !acc) {
            snprintf(err, errlen, "socket activation: fd %d%s%s%s is not a listening socket "
                     "(hint: ListenStream= in the .socket unit; Accept=no)", fd,
                     a->name[0] ? " (" : "", a->name, a->name[0] ? ")" : "");
            return -ENOTSOCK;
        }
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
            fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
            snprintf(err, errlen, "socket activation: fd %d: %s", fd, strerror(errno));
            return SV_ERRNO();
        }
        int rc = describe(fd, a->uri, sizeof(a->uri));
        if (rc < 0) {
            snprintf(err, errlen, "socket activation: fd %d: cannot tell its address (%s)", fd,
                     sv_strerror(rc));
            return rc;
        }
    }
    return (int)n;
}

/* tcp host text to bytes for comparison; names are resolved like the binder does. */
static bool same_host(const sv_bind_t *x, const sv_bind_t *y)
{
    unsigned char ax[16], ay[16];
    int fx = x->ipv6 ? AF_INET6 : AF_INET, fy = y->ipv6 ? AF_INET6 : AF_INET;
    if (fx != fy)
        return false;
    if (inet_pton(fx, x->host, ax) == 1 && inet_pton(fy, y->host, ay) == 1)
        return memcmp(ax, ay, fx == AF_INET ? 4 : 16) == 0;
    return strcmp(x->host, y->host) == 0;
}

/* A unix bind may name the socket through a symlinked directory (/srv/app/current/tmp/...). */
static bool same_file(const char *a, const char *b)
{
    char ra[PATH_MAX], rb[PATH_MAX];
    return realpath(a, ra) && realpath(b, rb) && strcmp(ra, rb) == 0;
}

bool sv_activation_matches(const sv_activated_t *a, const char *uri)
{
    sv_bind_t mine, want;
    char err[256];
    if (sv_bind_parse(a->uri, &mine, err, sizeof(err)) < 0 ||
        sv_bind_parse(uri, &want, err, sizeof(err)) < 0 || mine.kind != want.kind)
        return false;
    if (mine.kind == SV_BIND_UNIX)
        return strcmp(mine.path, want.path) == 0 || same_file(mine.path, want.path);
    return mine.port == want.port && same_host(&mine, &want);
}

void sv_activation_close_unused(sv_activated_t *a, int n)
{
    for (int i = 0; i < n; i++) {
        if (!a[i].used && a[i].fd >= 0) {
            close(a[i].fd);
            a[i].fd = -1;
        }
    }
}
