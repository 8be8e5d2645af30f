/* fd.c: fd helpers (fd.h): CLOEXEC, closing all but a keep list, listing a process's fds. */
#include "os/fd.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#include <linux/close_range.h>
#include <sys/syscall.h>

#include "core/err.h"

int sv_fd_cloexec(int fd, bool on)
{
    int fl = fcntl(fd, F_GETFD);
    if (fl < 0)
        return SV_ERRNO();
    fl = on ? (fl | FD_CLOEXEC) : (fl & ~FD_CLOEXEC);
    return fcntl(fd, F_SETFD, fl) < 0 ? SV_ERRNO() : 0;
}

static int cmp_int(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

int sv_fd_close_all_except(const int *keep, int n)
{
    int *sorted = malloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
    if (!sorted)
        return -ENOMEM;
    int m = 0;
    for (int i = 0; i < n; i++)
        if (keep[i] >= 3)
            sorted[m++] = keep[i];
    qsort(sorted, (size_t)m, sizeof(int), cmp_int);
    unsigned int from = 3;
    for (int i = 0; i < m; i++) {
        if ((unsigned)sorted[i] > from)
            syscall(SYS_close_range, from, (unsigned)sorted[i] - 1, 0);
        if ((unsigned)sorted[i] + 1 > from)
            from = (unsigned)sorted[i] + 1;
    }
    free(sorted);
    return syscall(SYS_close_range, from, ~0U, 0) < 0 ? SV_ERRNO() : 0;
}

int sv_fd_list(int **out)
{
    *out = NULL;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return SV_ERRNO();
    int self = dirfd(d), n = 0, cap = 0;
    int *v = NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        int fd = atoi(e->d_name);
        if (fd == self)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            int *nv = realloc(v, sizeof(int) * (size_t)cap);
            if (!nv)
                break;
            v = nv;
        }
        v[n++] = fd;
    }
    closedir(d);
    if (v)
        qsort(v, (size_t)n, sizeof(int), cmp_int);
    *out = v;
    return n;
}

void sv_fd_close(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

int sv_fd_write_all(int fd, const void *buf, unsigned long len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return SV_ERRNO();
        }
        p += w;
        len -= (unsigned long)w;
    }
    return 0;
}

long sv_fd_read_file(const char *path, char *buf, unsigned long cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return SV_ERRNO();
    unsigned long n = 0;
    while (n + 1 < cap) {
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (unsigned long)r;
    }
    close(fd);
    buf[n] = '\0';
    return (long)n;
}
