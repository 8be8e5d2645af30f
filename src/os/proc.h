/* proc.h: process helpers: titles, memory readings, exit causes, reaping. */
#ifndef SV_OS_PROC_H
#define SV_OS_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct sv_mem {
    uint64_t rss, pss, shared, private_; /* bytes (smaps_rollup) */
} sv_mem_t;

/*
 * Remember argv's memory so later titles can overwrite it (as ps shows it).
 * Call once at startup, after saving copies of argv and environ.
 */
void sv_proc_title_init(int argc, char **argv);
void sv_proc_set_title(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Make this process the reaper of its orphaned descendants. */
int sv_proc_subreaper(void);
/* Read /proc/PID/smaps_rollup; returns 0 or -errno. */
int sv_proc_memory(pid_t pid, sv_mem_t *out);
/* Absolute path of the running executable at startup (for re-exec). */
int sv_proc_exe_path(char *buf, size_t cap);
/* "exit 1", "signal 9 (KILL)", "signal 11 (SEGV), core dumped" */
const char *sv_proc_describe_status(int status, char *buf, size_t cap);
/* Is pid alive (kill 0)? */
bool sv_proc_alive(pid_t pid);
/*
 * Fork a grandchild that is reparented to the nearest subreaper (the master):
 * fork, the intermediate forks again and exits at once, the caller reaps it.
 * Returns the grandchild's pid in the caller, 0 in the grandchild, or -errno.
 * The grandchild's pid reaches the caller through a pipe.
 */
pid_t sv_proc_fork_detached(void);
/* Raise RLIMIT_NOFILE's soft limit to the hard limit. */
void sv_proc_raise_nofile(void);

#endif
