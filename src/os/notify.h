/*
 * notify.h: the systemd notification protocol (sd_notify), without libsystemd.
 *
 * Active when NOTIFY_SOCKET is set (a path, or @name for the abstract
 * namespace). The supervising process (single process or master) sends
 * READY=1 when serving, RELOADING=1 with MONOTONIC_USEC during a restart
 * (so Type=notify-reload works), STOPPING=1 on a graceful stop, STATUS=
 * lines, and WATCHDOG=1 at half of WATCHDOG_USEC. Worker processes never
 * notify (sv_notify_forget in children).
 */
#ifndef SV_OS_NOTIFY_H
#define SV_OS_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

/* Read NOTIFY_SOCKET and WATCHDOG_USEC; true if notifications are on. */
bool sv_notify_init(void);
/* Send one datagram of newline-separated assignments; a no-op when off. */
void sv_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* RELOADING=1 with the monotonic timestamp systemd wants alongside it. */
void sv_notify_reloading(void);
/* How often to send WATCHDOG=1: half of WATCHDOG_USEC (ms), 0 = no watchdog. */
int64_t sv_notify_watchdog_every_ms(void);
/* Send WATCHDOG=1 (a no-op without a watchdog); the caller's timer runs it every sv_notify_watchdog_every_ms. */
void sv_notify_watchdog(void);
/* In a child: drop the socket from the environment, never notify. */
void sv_notify_forget(void);

#endif
