/* file.c: atomic, redirect-proof writes of small files (file.h). */
#include "os/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "core/err.h"
#include "os/fd.h"

#define TMP_TRIES 16

/* PATH.tmp-XXXXXXXXXXXX with fresh random hex each call. */
static int tmp_name(char *out, size_t cap, const char *path)
{
    unsigned char r[6];
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
        return -EAGAIN;
    int n = snprintf(out, cap, "%s%s%02x%02x%02x%02x%02x%02x", path, SV_FILE_TMP_SUFFIX, r[0], r[1], r[2], r[3],
                     r[4], r[5]);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

/* The directory holding path, for the fsync that makes the rename durable. */
static void sync_dir(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == path)
        snprintf(dir, sizeof(dir), "/");
    else
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd); /* best effort: some file systems refuse it on a directory */
        close(fd);
    }
}

int sv_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
    char tmp[4200];
    int fd = -1, rc = -EEXIST;
    for (int i = 0; i < TMP_TRIES && rc == -EEXIST; i++) {
        rc = tmp_name(tmp, sizeof(tmp), path);
        if (rc < 0)
            return rc;
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
        rc = fd < 0 ? SV_ERRNO() : 0;
    }
    if (rc < 0)
        return rc;
    rc = sv_fd_write_all(fd, data, len);
    if (rc == 0 && fsync(fd) < 0)
        rc = SV_ERRNO();
    if (close(fd) < 0 && rc == 0)
        rc = SV_ERRNO();
    if (rc == 0 && rename(tmp, path) < 0)
        rc = SV_ERRNO();
    if (rc < 0) {
        unlink(tmp);
        return rc;
    }
    sync_dir(path);
    return 0;
}
