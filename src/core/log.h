/*
 * log.h: serval's log lines.
 *
 * Informational lines (boot banner, worker lines, request log) go to stdout,
 * errors and warnings to stderr, as Puma does. In cluster mode every line is
 * prefixed with "[pid] " of the writing process. Each line is written with one
 * write(2), so lines from several processes sharing a pipe never interleave
 * (lines are cut at SV_LOG_LINE_MAX).
 */
#ifndef SV_CORE_LOG_H
#define SV_CORE_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SV_LOG_LINE_MAX 4000

/*
 * log_format: what starts each line. AUTO (the default) is ISO8601 unless
 * stdout is a terminal, where a person reads it as it comes. ISO8601 is
 * "2026-12-01T22:40:01.123Z " (UTC, milliseconds) before the "[pid] ".
 */
typedef enum sv_log_format {
    SV_LOG_FORMAT_AUTO = 0,
    SV_LOG_FORMAT_PLAIN = 1,
    SV_LOG_FORMAT_ISO8601 = 2,
} sv_log_format_t;

/* The names log_format accepts, indexed by sv_log_format_t. */
extern const char *const sv_log_format_names[3];

/* Set the line format; AUTO is resolved now, from whether stdout is a tty. */
void sv_log_set_format(sv_log_format_t f);
/* The resolved format (PLAIN or ISO8601). */
sv_log_format_t sv_log_get_format(void);
/*
 * Write unix_ms as "YYYY-MM-DDTHH:MM:SS.mmmZ" (24 chars and a NUL; cap >= 25)
 * without gmtime: no lock, no tz file, safe after fork and in any thread.
 * Returns the length, or 0 when cap is too small.
 */
size_t sv_log_timestamp(char *buf, size_t cap, int64_t unix_ms);

/* Prefix lines with "[pid] " (cluster mode). */
void sv_log_set_pid_prefix(bool on);
/* Refresh the cached pid; call in every child right after fork. */
void sv_log_after_fork(void);
/* Enable sv_log_debug output (SERVAL_DEBUG=1). */
void sv_log_set_debug(bool on);
bool sv_log_debug_enabled(void);

void sv_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void sv_log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void sv_log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void sv_log_vline(int fd, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

#endif
