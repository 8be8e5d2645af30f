/*
 * proto.h: the master <-> worker and master <-> mold protocol. Owns the
 * verbs (each defined once below, with who sends it) and the one codec
 * every sender and receiver uses; os/chan.h is only the transport (one
 * SOCK_SEQPACKET message = one message, an fd may ride along).
 *
 * A message is a verb, then " key=value" fields, values %-encoded where
 * they hold a space, '%', '=', ';' or a control byte. The text form is part
 * of serval's stability promise: a hot restart hands running workers to a
 * new binary, so verbs are only ever added, and unknown verbs and fields
 * are ignored by the receiver.
 */
#ifndef SV_CLUSTER_PROTO_H
#define SV_CLUSTER_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "os/chan.h"

/* X(NAME, "wire verb", "from -> to: when") */
#define SV_PROTO_VERBS(X)                                                                              \
    X(HELLO, "hello", "worker -> master: right after fork (pid, index, phase, gen)")                    \
    X(BOOTED, "booted", "worker -> master: app loaded, on_worker_boot done, threads started")           \
    X(BOOT_FAILED, "boot-failed", "worker -> master: about to exit without having booted (reason)")    \
    X(PING, "ping", "worker -> master: check-in with its last_status")                                  \
    X(STOPPING, "stopping", "worker -> master: it got SIGTERM from someone else")                       \
    X(MOLD_FAILED, "mold-failed", "worker 0 -> master: no mold (gen, reason)")                          \
    X(APP_TIMEOUT, "app-timeout", "worker -> master: app calls past app_timeout (pid, index, new)")     \
    X(STOP, "stop", "master -> worker: graceful stop")                                                  \
    X(MAKE_MOLD, "make-mold", "master -> worker 0: fork a mold (gen, refork) + the mold's channel")    \
    X(MOLD_READY, "mold-ready", "mold -> master: ready to fork (pid, gen)")                             \
    X(SPAWN, "spawn", "master -> mold: fork a worker (index, phase, gen) + its channel")                \
    X(SPAWNED, "spawned", "mold -> master: forked (index, pid)")                                        \
    X(SPAWN_FAILED, "spawn-failed", "mold -> master: could not fork (index, reason)")                   \
    X(REOPEN_LOGS, "reopen-logs", "master -> mold: reopen stdout/stderr redirects (HUP)")

typedef enum sv_proto_verb {
    SV_PROTO_UNKNOWN = 0,
#define SV_PROTO_ENUM(name, wire, doc) SV_PROTO_##name,
    SV_PROTO_VERBS(SV_PROTO_ENUM)
#undef SV_PROTO_ENUM
        SV_PROTO_COUNT
} sv_proto_verb_t;

/* A message being built: sv_proto_new, then fields, then sv_proto_send. */
typedef struct sv_proto_msg {
    sv_proto_verb_t verb;
    char text[SV_CHAN_MSG_MAX];
    int truncated;            /* a field did not fit and was left out */
} sv_proto_msg_t;

/* The wire verb of v ("?" for an unknown one). */
const char *sv_proto_name(sv_proto_verb_t v);
/* The verb of a received message: SV_PROTO_UNKNOWN for anything else. */
sv_proto_verb_t sv_proto_verb(const char *text);

void sv_proto_new(sv_proto_msg_t *m, sv_proto_verb_t v);
/* Append a field; a field that does not fit whole is left out (and counted in truncated). */
void sv_proto_str(sv_proto_msg_t *m, const char *key, const char *value);
void sv_proto_int(sv_proto_msg_t *m, const char *key, int64_t value);
/* Send it (pass_fd rides along if >= 0); as sv_chan_send. */
int sv_proto_send(int chan, const sv_proto_msg_t *m, int pass_fd, int timeout_ms);

/*
 * The verb, then fields from a printf format of plain " key=%d" words (no
 * value that needs encoding: use sv_proto_str for those). Waits up to 1 s.
 */
int sv_proto_sendf(int chan, sv_proto_verb_t v, const char *fields_fmt, ...) __attribute__((format(printf, 3, 4)));

/* Read a field of a received message (decoded); as sv_msg_get / sv_msg_int. */
#define sv_proto_get sv_msg_get
#define sv_proto_get_int sv_msg_int

#endif
