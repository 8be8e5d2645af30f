/*
 * activate.h: systemd socket activation in listener opening (docs/systemd.md).
 *
 * At boot, the sockets systemd passed (os/activation.h) are taken once. A
 * bind that names one of them uses it instead of binding (Puma's rule,
 * whatever bind_to_activated_sockets says); with bind_to_activated_sockets
 * true every other passed socket becomes a listener too, and with "only"
 * the binds that name none are left out. A hot restart hands the activated
 * listeners over like the others, marked activated=1 in their records, so
 * the new image neither binds nor closes them: it never sees LISTEN_FDS
 * (scrubbed from the saved environment) and goes by the marks.
 */
#ifndef SV_CLUSTER_ACTIVATE_H
#define SV_CLUSTER_ACTIVATE_H

#include <stdbool.h>
#include <stddef.h>

#include "cluster/runtime.h"

/* Drop LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES from a saved environment (NULL-terminated, in place). */
void sv_activate_scrub_env(char **envp);
/* Whether this process may have activated sockets to use (--check leaves their addresses alone). */
bool sv_activate_expected(const sv_runtime_t *rt);
/* At boot: take the passed sockets into rt->activated and log them. <0 with a reason in err. */
int sv_activate_take(sv_runtime_t *rt, char *err, size_t errlen);
/*
 * Whether the bind uri is left out: under "only" when no activated socket
 * answers it (logged), and the default bind (no bind configured) whenever
 * bind_to_activated_sockets is on and sockets were passed. recs: the
 * hand-over's listener records not taken yet. A hot restart into "only"
 * by a server systemd did not start keeps its binds (logged): a restart
 * must not leave it without listeners.
 */
bool sv_activate_skip_bind(const sv_runtime_t *rt, const char *uri, char *const *recs, int nrec);
/* Adopt into l the activated socket the bind uri names: 1 adopted, 0 none, <0 error (err). */
int sv_activate_adopt(sv_runtime_t *rt, sv_listener_t *l, const char *uri, char *err, size_t errlen);
/*
 * After the binds: with bind_to_activated_sockets, every passed socket (or
 * activated record, after a hot restart) no bind used becomes a listener
 * too (the records taken are freed and set NULL). Without, the passed
 * sockets nobody used are closed. <0 with err: "only" with none at all.
 */
int sv_activate_rest(sv_runtime_t *rt, char **recs, int nrec, char *err, size_t errlen);

#endif
