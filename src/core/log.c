#include "core/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static bool pid_prefix;
static bool debug_on;
static int cached_pid;

void sv_log_set_pid_prefix(bool on)
{
    pid_prefix = on;
    cached_pid = (int)getpid();
}

void sv_log_after_fork(void)
{
    cached_pid = (int)getpid();
}

void sv_log_set_debug(bool on)
{
    debug_on = on;
}

bool sv_log_debug_enabled(void)
{
    return debug_on;
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return; /* a log that cannot be written is dropped, never fatal */
        }
        p += w;
        n -= (size_t)w;
    }
}

void sv_log_vline(int fd, const char *fmt, va_list ap)
{
    char line[SV_LOG_LINE_MAX + 2];
    size_t n = 0;
    if (pid_prefix) {
        if (!cached_pid)
            cached_pid = (int)getpid();
        n = (size_t)snprintf(line, sizeof(line), "[%d] ", cached_pid);
    }
    int m = vsnprintf(line + n, SV_LOG_LINE_MAX - n, fmt, ap);
    if (m < 0)
        return;
    n += (size_t)m < SV_LOG_LINE_MAX - n ? (size_t)m : SV_LOG_LINE_MAX - n - 1;
    line[n++] = '\n';
    write_all(fd, line, n);
}

void sv_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sv_log_vline(STDOUT_FILENO, fmt, ap);
    va_end(ap);
}

void sv_log_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sv_log_vline(STDERR_FILENO, fmt, ap);
    va_end(ap);
}

void sv_log_debug(const char *fmt, ...)
{
    if (!debug_on)
        return;
    va_list ap;
    va_start(ap, fmt);
    sv_log_vline(STDERR_FILENO, fmt, ap);
    va_end(ap);
}

void sv_log_raw(int fd, const char *s)
{
    write_all(fd, s, strlen(s));
}
