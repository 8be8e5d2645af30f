/*
 * sig.h: signals through a self-pipe.
 *
 * Handlers save errno, write the signal number as one byte to a non-blocking
 * pipe, and restore errno; nothing else. The owning loop polls sv_sig_fd()
 * and drains it with sv_sig_drain. The pipe's write end is the one process
 * global serval keeps for signals.
 */
#ifndef SV_OS_SIG_H
#define SV_OS_SIG_H

#include <signal.h>

/* Create the self-pipe (once per process; again in a child after sv_sig_reset). */
int sv_sig_open(void);
/* Route sig to the self-pipe. */
int sv_sig_catch(int sig);
/*
 * Unblock every signal in the calling thread. A process calls it once its
 * handlers are installed: an image started by a hot restart's exec inherits
 * the handled signals blocked (see sv_sig_hold_for_exec), and what arrived
 * during the exec is delivered here, into the new pipe.
 */
void sv_sig_ready(void);
/*
 * Just before execve of a new image: block every caught signal (the mask is
 * inherited by execve; a new image's dispositions are the defaults until it
 * installs its own, and a default USR2/TERM/HUP would kill it) and move
 * signals still unread in the pipe back to the kernel's pending set, so the
 * new image acts on them. saved receives the old mask.
 */
void sv_sig_hold_for_exec(sigset_t *saved);
/* The exec failed: the saved mask back; held signals reach the pipe again. */
void sv_sig_release_after_failed_exec(const sigset_t *saved);
/* Set sig to SIG_IGN / SIG_DFL. */
int sv_sig_ignore(int sig);
int sv_sig_default(int sig);
/* The pipe's read end, or -1. */
int sv_sig_fd(void);
/* Read pending signal numbers into sigs[0..max); returns the count. */
int sv_sig_drain(int *sigs, int max);
/* Queue a signal to ourselves through the pipe (as if it had arrived). */
void sv_sig_post(int sig);
/*
 * In a new child: every disposition back to default, signal mask cleared,
 * the inherited self-pipe closed (it belongs to the parent).
 */
void sv_sig_reset(void);
/* The name without SIG: "TERM". */
const char *sv_sig_name(int sig);

#endif
