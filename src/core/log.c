/* log.c: log lines (log.h): format and timestamps, the [pid] prefix, one write(2) per line, the debug switch. */
#include "core/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static bool pid_prefix;
static sv_log_format_t format = SV_LOG_FORMAT_AUTO; /* resolved on first use */

const char *const sv_log_format_names[3] = {"auto", "plain", "iso8601"};

void sv_log_set_format(sv_log_format_t f)
{
    if (f == SV_LOG_FORMAT_AUTO)
        f = isatty(STDOUT_FILENO) ? SV_LOG_FORMAT_PLAIN : SV_LOG_FORMAT_ISO8601;
    format = f;
}

sv_log_format_t sv_log_get_format(void)
{
    if (format == SV_LOG_FORMAT_AUTO)
        sv_log_set_format(SV_LOG_FORMAT_AUTO);
    return format;
}

/* Days since 1970-01-01 to a civil date (Howard Hinnant's days_from_civil, inverted). */
static void civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

size_t sv_log_timestamp(char *buf, size_t cap, int64_t unix_ms)
{
    if (cap < 25)
        return 0;
    int64_t secs = unix_ms >= 0 ? unix_ms / 1000 : (unix_ms - 999) / 1000;
    int ms = (int)(unix_ms - secs * 1000);
    int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
    int sod = (int)(secs - days * 86400);
    int y;
    unsigned mo, d;
    civil_from_days(days, &y, &mo, &d);
    int n = snprintf(buf, cap, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ", y, mo, d, sod / 3600, sod / 60 % 60,
                     sod % 60, ms);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

static size_t timestamp_now(char *buf, size_t cap)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    size_t n = sv_log_timestamp(buf, cap, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    if (n > 0 && n + 1 < cap)
        buf[n++] = ' ';
    return n;
}
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
    if (sv_log_get_format() == SV_LOG_FORMAT_ISO8601)
        n = timestamp_now(line, sizeof(line));
    if (pid_prefix) {
        if (!cached_pid)
            cached_pid = (int)getpid();
        n += (size_t)snprintf(line + n, sizeof(line) - n, "[%d] ", cached_pid);
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

