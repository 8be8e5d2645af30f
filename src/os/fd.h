/* fd.h: file descriptor helpers. Every fd serval opens is born O_CLOEXEC. */
#ifndef SV_OS_FD_H
#define SV_OS_FD_H

#include <stdbool.h>

int sv_fd_cloexec(int fd, bool on);
/* Close every fd >= 3 except those in keep[0..n) (uses close_range; any n). */
int sv_fd_close_all_except(const int *keep, int n);
/* Every open fd of this process, sorted, in a malloc'd *out (free it); returns the count or -errno. */
int sv_fd_list(int **out);
/* Close fd if >= 0 and set it to -1. */
void sv_fd_close(int *fd);
/* Write all of buf, retrying on EINTR; returns 0 or -errno. */
int sv_fd_write_all(int fd, const void *buf, unsigned long len);
/* Read a whole small file into buf (NUL-terminated); returns length or -errno. */
long sv_fd_read_file(const char *path, char *buf, unsigned long cap);

#endif
