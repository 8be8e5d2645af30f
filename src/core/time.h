/* time.h: clocks. Monotonic milliseconds for deadlines, wall time for stats. */
#ifndef SV_CORE_TIME_H
#define SV_CORE_TIME_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Milliseconds on CLOCK_MONOTONIC. */
int64_t sv_now_ms(void);
/* Nanoseconds on CLOCK_MONOTONIC. */
int64_t sv_now_ns(void);
/* Seconds since the epoch with a fraction (CLOCK_REALTIME). */
double sv_wall_now(void);
/* "2026-01-14T07:12:35Z" into buf (at least 21 bytes). Returns buf. */
char *sv_iso8601(char *buf, size_t cap, time_t t);
/* "Wed, 14 Jan 2026 07:12:35 GMT" (29 chars + NUL) into buf. */
void sv_http_date(char *buf, time_t t);
/* Sleep for ms milliseconds (restarting on EINTR). */
void sv_sleep_ms(int64_t ms);

#endif
