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

#define SV_LOG_LINE_MAX 4000

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

/* Async-signal-safe: writes s as-is to fd (for crash paths and handlers). */
void sv_log_raw(int fd, const char *s);

#endif
