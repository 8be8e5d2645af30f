/*
 * chan.h: the master <-> worker channel.
 *
 * One SOCK_SEQPACKET socketpair per worker (and per mold): message
 * boundaries are kept, one end closing is seen as EOF by the other (so the
 * master learns of a worker's death even before it knows its pid, and a
 * worker learns of the master's), and an fd can ride along (SCM_RIGHTS).
 *
 * Messages are short text lines: a verb then key=value words,
 *     ping backlog=0 running=5 pool_capacity=5 requests_count=12
 * Values are %-encoded where they contain space, '%' or '='. The format is
 * stable across versions: a hot restart hands old workers to a new binary.
 */
#ifndef SV_OS_CHAN_H
#define SV_OS_CHAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SV_CHAN_MSG_MAX 2048

/* Both ends close-on-exec; [0] for the parent, [1] for the child. */
int sv_chan_pair(int fds[2]);
/*
 * Send one message (and pass_fd if >= 0). Waits up to timeout_ms for room
 * (0 = don't wait). Returns 0, -EAGAIN on timeout, -EPIPE if the peer is gone.
 */
int sv_chan_send(int fd, const char *msg, int pass_fd, int timeout_ms);
/* printf-style sv_chan_send without an fd and without waiting long (1 s). */
int sv_chan_sendf(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/*
 * Receive one message into buf (NUL-terminated). *recv_fd gets a passed fd
 * (close-on-exec) or -1; with recv_fd NULL a passed fd is closed. Returns its
 * length, 0 at EOF, -EAGAIN if none.
 */
int sv_chan_recv(int fd, char *buf, size_t cap, int *recv_fd);

/* The verb: copies the first word of msg into out. */
void sv_msg_verb(const char *msg, char *out, size_t cap);
/* Value of key in msg (decoded) into out; returns true if present. */
bool sv_msg_get(const char *msg, const char *key, char *out, size_t cap);
int64_t sv_msg_int(const char *msg, const char *key, int64_t dflt);
/* Append " key=value" (encoded) to a message being built in buf. */
void sv_msg_put(char *buf, size_t cap, const char *key, const char *value);
void sv_msg_put_int(char *buf, size_t cap, const char *key, int64_t value);

#endif
