/*
 * sig.c: signals through a self-pipe (sig.h): the handler, the pipe, and
 * holding the handled signals across a hot restart's exec.
 */
#include "os/sig.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"

static int pipe_rd = -1;
static volatile sig_atomic_t pipe_wr = -1;
static sigset_t caught_set; /* every signal routed to the pipe (held across an exec) */
static int caught_init;

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    if (pipe_wr >= 0)
        (void)!write(pipe_wr, &b, 1);
    errno = saved;
}

int sv_sig_open(void)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0)
        return SV_ERRNO();
    pipe_rd = fds[0];
    pipe_wr = fds[1];
    return 0;
}

int sv_sig_catch(int sig)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigfillset(&sa.sa_mask);
    if (!caught_init) {
        sigemptyset(&caught_set);
        caught_init = 1;
    }
    sigaddset(&caught_set, sig);
    return sigaction(sig, &sa, NULL) < 0 ? SV_ERRNO() : 0;
}

void sv_sig_ready(void)
{
    sigset_t none;
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, NULL);
}

void sv_sig_hold_for_exec(sigset_t *saved)
{
    sigset_t hold;
    if (caught_init)
        hold = caught_set;
    else
        sigemptyset(&hold);
    pthread_sigmask(SIG_BLOCK, &hold, saved);
    /*
     * Signals already written to the pipe would be lost with it (it is
     * close-on-exec): raise them again, so they wait, blocked, in the
     * kernel's pending set, which survives execve.
     */
    int sigs[64];
    int n;
    while ((n = sv_sig_drain(sigs, 64)) > 0)
        for (int i = 0; i < n; i++)
            kill(getpid(), sigs[i]);
}

void sv_sig_release_after_failed_exec(const sigset_t *saved)
{
    pthread_sigmask(SIG_SETMASK, saved, NULL);
}

static int set_handler(int sig, void (*h)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = h;
    sigemptyset(&sa.sa_mask);
    return sigaction(sig, &sa, NULL) < 0 ? SV_ERRNO() : 0;
}

int sv_sig_ignore(int sig)
{
    return set_handler(sig, SIG_IGN);
}

int sv_sig_default(int sig)
{
    return set_handler(sig, SIG_DFL);
}

int sv_sig_fd(void)
{
    return pipe_rd;
}

int sv_sig_drain(int *sigs, int max)
{
    unsigned char buf[64];
    int n = 0;
    while (n < max) {
        ssize_t r = read(pipe_rd, buf, sizeof(buf) < (size_t)(max - n) ? sizeof(buf) : (size_t)(max - n));
        if (r <= 0)
            break;
        for (ssize_t i = 0; i < r; i++)
            sigs[n++] = buf[i];
    }
    return n;
}

void sv_sig_post(int sig)
{
    on_signal(sig);
}

void sv_sig_reset(void)
{
    for (int s = 1; s < NSIG; s++)
        if (s != SIGKILL && s != SIGSTOP && s < SIGRTMIN)
            signal(s, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, NULL);
    int w = pipe_wr;
    pipe_wr = -1;
    if (w >= 0)
        close(w);
    if (pipe_rd >= 0)
        close(pipe_rd);
    pipe_rd = -1;
}

const char *sv_sig_name(int sig)
{
    const char *n = sigabbrev_np(sig);
    return n ? n : "?";
}
