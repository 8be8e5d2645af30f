/* notify.c: sd_notify without libsystemd (notify.h): READY, RELOADING, STOPPING, STATUS, WATCHDOG. */
#include "os/notify.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_un addr;
static socklen_t addr_len;
static int64_t watchdog_ms;

bool sv_notify_init(void)
{
    const char *path = getenv("NOTIFY_SOCKET");
    addr_len = 0;
    if (!path || !path[0] || strlen(path) >= sizeof(addr.sun_path))
        return false;
    memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    memcpy(addr.sun_path, path, strlen(path));
    if (addr.sun_path[0] == '@')
        addr.sun_path[0] = '\0';
    addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
    const char *wd = getenv("WATCHDOG_USEC");
    const char *wpid = getenv("WATCHDOG_PID");
    if (wd && (!wpid || atoi(wpid) == (int)getpid()))
        watchdog_ms = strtoll(wd, NULL, 10) / 1000;
    return true;
}

void sv_notify(const char *fmt, ...)
{
    if (!addr_len)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    /* best effort: a supervisor that is not listening must not stop us */
    (void)!sendto(fd, msg, (size_t)(n < (int)sizeof(msg) ? n : (int)sizeof(msg) - 1), MSG_NOSIGNAL | MSG_DONTWAIT,
                  (struct sockaddr *)&addr, addr_len);
    close(fd);
}

void sv_notify_reloading(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    sv_notify("RELOADING=1\nMONOTONIC_USEC=%lld", (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000);
}

int64_t sv_notify_watchdog_every_ms(void)
{
    return addr_len && watchdog_ms > 0 ? (watchdog_ms / 2 > 0 ? watchdog_ms / 2 : 1) : 0;
}

void sv_notify_watchdog(void)
{
    if (addr_len && watchdog_ms > 0)
        sv_notify("WATCHDOG=1");
}

void sv_notify_forget(void)
{
    addr_len = 0;
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
}
