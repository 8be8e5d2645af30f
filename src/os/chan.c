/* chan.c: the SOCK_SEQPACKET channel (chan.h): pairs, send/receive with an fd, and the sv_msg field codec. */
#include "os/chan.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/err.h"

int sv_chan_pair(int fds[2])
{
    return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) < 0 ? SV_ERRNO() : 0;
}

static int send_once(int fd, const char *msg, int pass_fd)
{
    struct iovec iov = {.iov_base = (void *)msg, .iov_len = strlen(msg)};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (pass_fd >= 0) {
        memset(&ctl, 0, sizeof(ctl));
        mh.msg_control = ctl.buf;
        mh.msg_controllen = sizeof(ctl.buf);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
    }
    return sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 ? SV_ERRNO() : 0;
}

int sv_chan_send(int fd, const char *msg, int pass_fd, int timeout_ms)
{
    for (;;) {
        int rc = send_once(fd, msg, pass_fd);
        if (rc == -EINTR)
            continue;
        if (rc != -EAGAIN || timeout_ms <= 0)
            return rc == -ECONNRESET ? -EPIPE : rc;
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int n = poll(&p, 1, timeout_ms);
        if (n == 0)
            return -EAGAIN;
        timeout_ms = timeout_ms > 10 ? timeout_ms - 10 : 1; /* bounded retries */
    }
}

int sv_chan_sendf(int fd, const char *fmt, ...)
{
    char msg[SV_CHAN_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return sv_chan_send(fd, msg, -1, 1000);
}

int sv_chan_recv(int fd, char *buf, size_t cap, int *recv_fd)
{
    struct iovec iov = {.iov_base = buf, .iov_len = cap - 1};
    union {
        char b[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b, .msg_controllen = sizeof(ctl.b)};
    int passed = -1;
    if (recv_fd)
        *recv_fd = -1;
    ssize_t n;
    do {
        n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == ECONNRESET ? 0 : SV_ERRNO();
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
            memcpy(&passed, CMSG_DATA(c), sizeof(int));
    if (recv_fd)
        *recv_fd = passed;
    else if (passed >= 0)
        close(passed); /* the caller takes no fds: one sent anyway is not leaked */
    buf[n] = '\0';
    return (int)n;
}

void sv_msg_verb(const char *msg, char *out, size_t cap)
{
    size_t n = strcspn(msg, " ");
    if (n >= cap)
        n = cap - 1;
    memcpy(out, msg, n);
    out[n] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool sv_msg_get(const char *msg, const char *key, char *out, size_t cap)
{
    size_t kl = strlen(key);
    for (const char *p = strchr(msg, ' '); p; p = strchr(p + 1, ' ')) {
        if (strncmp(p + 1, key, kl) != 0 || p[1 + kl] != '=')
            continue;
        const char *v = p + 2 + kl;
        size_t o = 0;
        while (*v && *v != ' ' && o + 1 < cap) {
            if (*v == '%' && hexval(v[1]) >= 0 && hexval(v[2]) >= 0) {
                out[o++] = (char)(hexval(v[1]) * 16 + hexval(v[2]));
                v += 3;
            } else {
                out[o++] = *v++;
            }
        }
        out[o] = '\0';
        return true;
    }
    return false;
}

int64_t sv_msg_int(const char *msg, const char *key, int64_t dflt)
{
    char v[32];
    if (!sv_msg_get(msg, key, v, sizeof(v)) || !v[0])
        return dflt;
    char *end;
    long long x = strtoll(v, &end, 10);
    return *end ? dflt : (int64_t)x;
}

void sv_msg_put(char *buf, size_t cap, const char *key, const char *value)
{
    size_t n = strlen(buf);
    int w = snprintf(buf + n, cap - n, " %s=", key);
    if (w < 0 || (size_t)w >= cap - n)
        return;
    n += (size_t)w;
    for (const unsigned char *v = (const unsigned char *)value; *v && n + 4 < cap; v++) {
        if (*v <= ' ' || *v == '%' || *v == '=' || *v == ';' || *v >= 0x7f)
            n += (size_t)snprintf(buf + n, cap - n, "%%%02X", *v);
        else
            buf[n++] = (char)*v;
    }
    buf[n] = '\0';
}

void sv_msg_put_int(char *buf, size_t cap, const char *key, int64_t value)
{
    char v[32];
    snprintf(v, sizeof(v), "%" PRId64, value);
    sv_msg_put(buf, cap, key, v);
}
