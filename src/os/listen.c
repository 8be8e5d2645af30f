/* listen.c: listening sockets from bind URIs, adopted or opened, and their display (listen.h). Owns each listener's fd. */
#include "os/listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/err.h"

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return SV_ECONFIG;
}

static int parse_int(const char *s, size_t n, long lo, long hi, int base, long *out)
{
    char tmp[32];
    if (n == 0 || n >= sizeof(tmp))
        return -1;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    char *end;
    errno = 0;
    long v = strtol(tmp, &end, base);
    if (errno || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* Query parameters: backlog=N (both kinds), mode=0NNN (unix). */
static int parse_query(const char *q, sv_bind_t *b, const char *uri, char *err, size_t errlen)
{
    while (q && *q) {
        const char *amp = strchr(q, '&');
        size_t n = amp ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', n);
        if (!eq)
            return fail(err, errlen, "bad bind '%s': query needs key=value", uri);
        size_t klen = (size_t)(eq - q), vlen = n - klen - 1;
        long v;
        if (klen == 7 && !memcmp(q, "backlog", 7)) {
            if (parse_int(eq + 1, vlen, 1, 65535, 10, &v) < 0)
                return fail(err, errlen, "bad bind '%s': backlog must be 1..65535", uri);
            b->backlog = (int)v;
        } else if (klen == 4 && !memcmp(q, "mode", 4) && b->kind == SV_BIND_UNIX) {
            if (parse_int(eq + 1, vlen, 0, 07777, 8, &v) < 0)
                return fail(err, errlen, "bad bind '%s': mode must be octal, e.g. mode=0600", uri);
            b->mode = (int)v;
        } else if (klen == 5 && !memcmp(q, "umask", 5) && b->kind == SV_BIND_UNIX) {
            if (parse_int(eq + 1, vlen, 0, 0777, 8, &v) < 0)
                return fail(err, errlen, "bad bind '%s': umask must be octal, e.g. umask=0111", uri);
            b->umask = (int)v;
        } else if (klen == 11 && !memcmp(q, "low_latency", 11) && b->kind == SV_BIND_TCP) {
            /* Puma's TCP_NODELAY switch: serval always sets TCP_NODELAY, so only true can be honoured */
            if (vlen != 4 || memcmp(eq + 1, "true", 4))
                return fail(err, errlen, "bad bind '%s': low_latency=%.*s is not supported (serval always sets "
                                         "TCP_NODELAY; drop the parameter)", uri, (int)(vlen < 20 ? vlen : 20), eq + 1);
        } else if (b->ssl) {
            /* a TLS option: src/tls checks it (sv_tls_opts_parse) */
        } else {
            char key[64];
            snprintf(key, sizeof(key), "%.*s", (int)(klen < 60 ? klen : 60), q);
            snprintf(err, errlen, "bad bind '%s': unknown parameter '%s'", uri, key);
            return SV_ECONFIG;
        }
        q = amp ? amp + 1 : NULL;
    }
    return 0;
}

/* The form of a tcp:// or ssl:// URI, for a message about one that is not (ssl names its required keys). */
static const char *tcp_form(const sv_bind_t *b, bool v6)
{
    if (b->ssl)
        return v6 ? "ssl://[IPV6]:PORT?cert=PATH&key=PATH" : "ssl://HOST:PORT?cert=PATH&key=PATH";
    return v6 ? "tcp://[IPV6]:PORT" : "tcp://HOST:PORT";
}

static int parse_tcp(const char *rest, const char *uri, sv_bind_t *b, char *err, size_t errlen)
{
    const char *q = strchr(rest, '?');
    size_t n = q ? (size_t)(q - rest) : strlen(rest);
    const char *colon;
    if (n > 0 && rest[0] == '[') {
        const char *close = memchr(rest, ']', n);
        if (!close || close + 1 >= rest + n || close[1] != ':')
            return fail(err, errlen, "bad bind '%s': expected %s", uri, tcp_form(b, true));
        size_t hl = (size_t)(close - rest - 1);
        if (hl == 0 || hl >= sizeof(b->host))
            return fail(err, errlen, "bad bind '%s': bad IPv6 host", uri);
        memcpy(b->host, rest + 1, hl);
        b->host[hl] = '\0';
        b->ipv6 = true;
        colon = close + 1;
    } else {
        colon = NULL;
        for (const char *p = rest; p < rest + n; p++)
            if (*p == ':')
                colon = p;
        if (!colon)
            return fail(err, errlen, "bad bind '%s': expected %s", uri, tcp_form(b, false));
        size_t hl = (size_t)(colon - rest);
        if (hl == 0 || hl >= sizeof(b->host))
            return fail(err, errlen, "bad bind '%s': missing host", uri);
        memcpy(b->host, rest, hl);
        b->host[hl] = '\0';
        if (strchr(b->host, ':'))
            return fail(err, errlen, "bad bind '%s': IPv6 hosts go in brackets, e.g. %s://[::1]:9292", uri,
                        b->ssl ? "ssl" : "tcp");
    }
    long port;
    if (parse_int(colon + 1, (size_t)(rest + n - colon - 1), 0, 65535, 10, &port) < 0)
        return fail(err, errlen, "bad bind '%s': port must be 0..65535", uri);
    b->port = (int)port;
    if (b->ipv6) {
        struct in6_addr a6;
        if (inet_pton(AF_INET6, b->host, &a6) != 1)
            return fail(err, errlen, "bad bind '%s': not an IPv6 address", uri);
    }
    return parse_query(q ? q + 1 : NULL, b, uri, err, errlen);
}

static int parse_unix(const char *rest, const char *uri, sv_bind_t *b, char *err, size_t errlen)
{
    const char *q = strchr(rest, '?');
    size_t n = q ? (size_t)(q - rest) : strlen(rest);
    if (n == 0)
        return fail(err, errlen, "bad bind '%s': missing socket path", uri);
    if (n >= sizeof(b->path))
        return fail(err, errlen, "bad bind '%s': socket path longer than 107 bytes", uri);
    memcpy(b->path, rest, n);
    b->path[n] = '\0';
    return parse_query(q ? q + 1 : NULL, b, uri, err, errlen);
}

int sv_bind_parse(const char *uri, sv_bind_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    out->mode = -1;
    out->umask = -1;
    out->backlog = SV_LISTEN_BACKLOG_DEFAULT;
    if (!strncmp(uri, "tcp://", 6)) {
        out->kind = SV_BIND_TCP;
        return parse_tcp(uri + 6, uri, out, err, errlen);
    }
    if (!strncmp(uri, "unix://", 7)) {
        out->kind = SV_BIND_UNIX;
        return parse_unix(uri + 7, uri, out, err, errlen);
    }
    if (!strncmp(uri, "ssl://", 6)) {
        out->kind = SV_BIND_TCP;
        out->ssl = true;
        return parse_tcp(uri + 6, uri, out, err, errlen);
    }
    return fail(err, errlen, "bad bind '%s': expected " SV_BIND_FORMS, uri);
}

static int set_common_opts(int fd)
{
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
        return SV_ERRNO();
    return 0;
}

/*
 * Hand us a connection only once its first bytes are in, so the thread that
 * accepts it can answer at once. A client that sends nothing is handed over
 * anyway about a second later, and first_data_timeout takes it from there.
 */
static void defer_accept(int fd)
{
    int secs = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &secs, sizeof(secs));
}

static int open_tcp(sv_listener_t *l, char *err, size_t errlen)
{
    const sv_bind_t *b = &l->bind;
    struct addrinfo hints = {.ai_family = b->ipv6 ? AF_INET6 : AF_INET,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    char port[8];
    snprintf(port, sizeof(port), "%d", b->port);
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(b->host, port, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "cannot resolve bind host '%s' in %s: %s", b->host, l->uri, gai_strerror(gai));
        return SV_ECONFIG;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int rc = fd < 0 ? SV_ERRNO() : set_common_opts(fd);
    if (rc == 0 && b->ipv6) {
        int one = 1;
        if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
            rc = SV_ERRNO();
    }
    if (rc == 0 && bind(fd, res->ai_addr, res->ai_addrlen) < 0)
        rc = SV_ERRNO();
    if (rc == 0 && listen(fd, b->backlog) < 0)
        rc = SV_ERRNO();
    if (rc == 0)
        defer_accept(fd);
    freeaddrinfo(res);
    if (rc < 0) {
        if (rc == -EADDRINUSE)
            snprintf(err, errlen, "cannot listen on %s: address already in use (another server on port %d?)",
                     l->uri, b->port);
        else
            snprintf(err, errlen, "cannot listen on %s: %s", l->uri, sv_strerror(rc));
        if (fd >= 0)
            close(fd);
        return rc;
    }
    l->fd = fd;
    return 0;
}

/* A stale socket file is removed; one a live server answers on is an error. */
static int check_unix_path(const sv_listener_t *l, const struct sockaddr_un *sa, char *err, size_t errlen)
{
    struct stat st;
    if (lstat(l->bind.path, &st) < 0)
        return 0;
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "cannot listen on %s: %s exists and is not a socket", l->uri, l->bind.path);
        return -EEXIST;
    }
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe < 0)
        return SV_ERRNO();
    int live = connect(probe, (const struct sockaddr *)sa, sizeof(*sa)) == 0;
    close(probe);
    if (live) {
        snprintf(err, errlen, "cannot listen on %s: there is already a server bound to %s", l->uri,
                 l->bind.path);
        return SV_EINUSE;
    }
    unlink(l->bind.path);
    return 0;
}

static int open_unix(sv_listener_t *l, char *err, size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, l->bind.path, strlen(l->bind.path) + 1);
    int rc = check_unix_path(l, &sa, err, errlen);
    if (rc < 0)
        return rc;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        rc = SV_ERRNO();
    /* Puma's umask: the socket file's permissions as bind(2) creates it (the master is single-threaded here) */
    mode_t old_mask = l->bind.umask >= 0 ? umask((mode_t)l->bind.umask) : 0;
    if (rc == 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        rc = SV_ERRNO();
    if (l->bind.umask >= 0)
        umask(old_mask);
    if (rc == 0)
        l->created_path = true;
    if (rc == 0 && l->bind.mode >= 0 && chmod(l->bind.path, (mode_t)l->bind.mode) < 0)
        rc = SV_ERRNO();
    if (rc == 0 && listen(fd, l->bind.backlog) < 0)
        rc = SV_ERRNO();
    if (rc < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", l->uri, sv_strerror(rc));
        if (l->created_path)
            unlink(l->bind.path);
        l->created_path = false;
        if (fd >= 0)
            close(fd);
        return rc;
    }
    l->fd = fd;
    return 0;
}

int sv_listener_open(sv_listener_t *l, const char *uri, char *err, size_t errlen)
{
    memset(l, 0, sizeof(*l));
    l->fd = -1;
    snprintf(l->uri, sizeof(l->uri), "%s", uri);
    int rc = sv_bind_parse(uri, &l->bind, err, errlen);
    if (rc < 0)
        return rc;
    return l->bind.kind == SV_BIND_TCP ? open_tcp(l, err, errlen) : open_unix(l, err, errlen);
}

int sv_listener_adopt(sv_listener_t *l, const char *uri, int fd, char *err, size_t errlen)
{
    memset(l, 0, sizeof(*l));
    l->fd = -1;
    snprintf(l->uri, sizeof(l->uri), "%s", uri);
    int rc = sv_bind_parse(uri, &l->bind, err, errlen);
    if (rc < 0)
        return rc;
    int acc = 0;
    socklen_t len = sizeof(acc);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) < 0 || !acc) {
        snprintf(err, errlen, "inherited fd %d for %s is not a listening socket", fd, uri);
        return -ENOTSOCK;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
        snprintf(err, errlen, "inherited fd %d for %s: %s", fd, uri, strerror(errno));
        return SV_ERRNO();
    }
    l->fd = fd;
    l->inherited = true;
    return 0;
}

void sv_listener_close(sv_listener_t *l, bool unlink_path)
{
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
    /* remember the file is ours even when closing early: a later close may remove it */
    if (unlink_path && l->created_path && l->bind.kind == SV_BIND_UNIX) {
        unlink(l->bind.path);
        l->created_path = false;
    }
}

int sv_listener_port(const sv_listener_t *l)
{
    if (l->bind.kind != SV_BIND_TCP || l->fd < 0)
        return -1;
    struct sockaddr_storage ss = {0};
    socklen_t len = sizeof(ss);
    if (getsockname(l->fd, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -1;
}

const char *sv_listener_display(const sv_listener_t *l, char *buf, size_t cap)
{
    if (l->bind.kind == SV_BIND_UNIX)
        snprintf(buf, cap, "unix://%s", l->bind.path);
    else if (l->bind.ipv6)
        snprintf(buf, cap, "%s://[%s]:%d", l->bind.ssl ? "ssl" : "http", l->bind.host, sv_listener_port(l));
    else
        snprintf(buf, cap, "%s://%s:%d", l->bind.ssl ? "ssl" : "http", l->bind.host, sv_listener_port(l));
    return buf;
}

int sv_listener_queue_len(const sv_listener_t *l)
{
    if (l->bind.kind != SV_BIND_TCP || l->fd < 0)
        return -1;
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    if (getsockopt(l->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
        return -1;
    /* for a listening socket tcpi_unacked is the accept queue length */
    return (int)ti.tcpi_unacked;
}
