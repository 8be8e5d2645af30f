/* proc.c: process helpers (proc.h): titles, subreaper, memory, exit status text, detached forks. */
#include "os/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/err.h"
#include "os/fd.h"

static char *title_start;
static size_t title_cap;

void sv_proc_title_init(int argc, char **argv)
{
    /* argv strings are contiguous; overwrite only them, never environ */
    if (argc < 1 || !argv[0])
        return;
    char *end = argv[0] + strlen(argv[0]);
    for (int i = 1; i < argc; i++)
        if (argv[i] == end + 1)
            end = argv[i] + strlen(argv[i]);
    title_start = argv[0];
    title_cap = (size_t)(end - argv[0]);
}

void sv_proc_set_title(const char *fmt, ...)
{
    char t[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t, sizeof(t), fmt, ap);
    va_end(ap);
    prctl(PR_SET_NAME, t, 0, 0, 0);
    if (!title_start || title_cap == 0)
        return;
    size_t n = strlen(t);
    if (n > title_cap)
        n = title_cap;
    memcpy(title_start, t, n);
    memset(title_start + n, 0, title_cap - n + 1);
}

int sv_proc_subreaper(void)
{
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0 ? SV_ERRNO() : 0;
}

static uint64_t field_kb(const char *text, const char *name)
{
    const char *p = strstr(text, name);
    return p ? strtoull(p + strlen(name), NULL, 10) * 1024 : 0;
}

int sv_proc_memory(pid_t pid, sv_mem_t *out)
{
    char path[64], text[2048];
    snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
    long n = sv_fd_read_file(path, text, sizeof(text));
    if (n <= 0)
        return n < 0 ? (int)n : -ENOENT;
    out->rss = field_kb(text, "\nRss:");
    out->pss = field_kb(text, "\nPss:");
    out->shared = field_kb(text, "\nShared_Clean:") + field_kb(text, "\nShared_Dirty:");
    out->private_ = field_kb(text, "\nPrivate_Clean:") + field_kb(text, "\nPrivate_Dirty:");
    return 0;
}

int sv_proc_exe_path(char *buf, size_t cap)
{
    ssize_t n = readlink("/proc/self/exe", buf, cap - 1);
    if (n < 0)
        return SV_ERRNO();
    buf[n] = '\0';
    /* a binary replaced on disk shows " (deleted)"; the path is what we re-exec */
    char *del = strstr(buf, " (deleted)");
    if (del && del[10] == '\0')
        *del = '\0';
    return 0;
}

const char *sv_proc_describe_status(int status, char *buf, size_t cap)
{
    if (WIFEXITED(status))
        snprintf(buf, cap, "exit %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, cap, "signal %d (%s)%s", WTERMSIG(status), sigabbrev_np(WTERMSIG(status)) ?: "?",
                 WCOREDUMP(status) ? ", core dumped" : "");
    else
        snprintf(buf, cap, "status 0x%x", status);
    return buf;
}

bool sv_proc_alive(pid_t pid)
{
    return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

pid_t sv_proc_fork_detached(void)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return SV_ERRNO();
    pid_t mid = fork();
    if (mid < 0) {
        int e = SV_ERRNO();
        close(p[0]);
        close(p[1]);
        return e;
    }
    if (mid == 0) {
        close(p[0]);
        pid_t child = fork();
        if (child == 0) {
            close(p[1]);
            return 0;
        }
        int32_t v = child < 0 ? -errno : (int32_t)child;
        (void)!write(p[1], &v, sizeof(v));
        _exit(0);
    }
    close(p[1]);
    int32_t v = -EIO;
    while (read(p[0], &v, sizeof(v)) < 0 && errno == EINTR) {
    }
    close(p[0]);
    while (waitpid(mid, NULL, 0) < 0 && errno == EINTR) {
    }
    return (pid_t)v;
}

void sv_proc_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max > 1048576 ? 1048576 : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

