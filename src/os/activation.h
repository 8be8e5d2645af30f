/*
 * activation.h: listening sockets passed by systemd socket activation.
 *
 * systemd (or systemd-socket-activate, or any supervisor speaking the same
 * protocol) starts serval with the sockets already bound, as fds 3, 4, ...
 * and says so in the environment: LISTEN_PID (must be our pid), LISTEN_FDS
 * (how many), LISTEN_FDNAMES (colon-separated names, optional). This module
 * takes them once at boot: checks each is a listening socket, makes it
 * close-on-exec and non-blocking, describes it as a bind URI, and removes
 * the variables from the environment so that no child (a worker, a hot
 * restart's new image) takes them a second time. From then on an activated
 * socket is a listener like any other, handed across a hot restart by the
 * usual hand-over.
 */
#ifndef SV_OS_ACTIVATION_H
#define SV_OS_ACTIVATION_H

#include <stdbool.h>
#include <stddef.h>

#define SV_ACTIVATION_FIRST_FD 3 /* SD_LISTEN_FDS_START */

typedef struct sv_activated {
    int fd;
    char uri[512];  /* tcp://127.0.0.1:9292, tcp://[::1]:9292, unix:///run/app.sock */
    char name[64];  /* from LISTEN_FDNAMES, or "" */
    bool used;      /* set by the caller when it adopts the fd */
} sv_activated_t;

/*
 * Take up to max activated sockets into out. Returns how many (0 when the
 * environment passes none or passes them to another pid), or a negative code
 * with a reason in err (a passed fd that is not a listening socket, more
 * than max). Either way the LISTEN_* variables are gone afterwards.
 */
int sv_activation_take(sv_activated_t *out, int max, char *err, size_t errlen);

/* Whether the activated socket is the one a configured bind URI names. */
bool sv_activation_matches(const sv_activated_t *a, const char *uri);

/* Close every activated socket that nobody adopted. */
void sv_activation_close_unused(sv_activated_t *a, int n);

#endif
