/* time.c: clocks and HTTP/ISO dates (time.h). */
#include "core/time.h"

#include <errno.h>

int64_t sv_now_ms(void)
{
    /* millisecond deadlines: the coarse clock is enough and cheaper */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t sv_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

double sv_wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

char *sv_iso8601(char *buf, size_t cap, time_t t)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

void sv_http_date(char *buf, time_t t)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    gmtime_r(&t, &tm);
    /* Formatted by hand: strftime honours the locale, HTTP dates must not. */
    const char *d = days[tm.tm_wday], *m = months[tm.tm_mon];
    int y = tm.tm_year + 1900;
    char *p = buf;
    *p++ = d[0], *p++ = d[1], *p++ = d[2], *p++ = ',', *p++ = ' ';
    *p++ = (char)('0' + tm.tm_mday / 10), *p++ = (char)('0' + tm.tm_mday % 10), *p++ = ' ';
    *p++ = m[0], *p++ = m[1], *p++ = m[2], *p++ = ' ';
    *p++ = (char)('0' + y / 1000), *p++ = (char)('0' + y / 100 % 10);
    *p++ = (char)('0' + y / 10 % 10), *p++ = (char)('0' + y % 10), *p++ = ' ';
    *p++ = (char)('0' + tm.tm_hour / 10), *p++ = (char)('0' + tm.tm_hour % 10), *p++ = ':';
    *p++ = (char)('0' + tm.tm_min / 10), *p++ = (char)('0' + tm.tm_min % 10), *p++ = ':';
    *p++ = (char)('0' + tm.tm_sec / 10), *p++ = (char)('0' + tm.tm_sec % 10);
    *p++ = ' ', *p++ = 'G', *p++ = 'M', *p++ = 'T', *p = '\0';
}

void sv_sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}
