/*
 * file.h: writing a small file (state file, pidfile) so that no reader ever
 * sees it half written and nobody can redirect the write.
 *
 * The bytes go to a fresh temp file in the same directory, created with
 * O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC under an unpredictable name (a symlink
 * or file planted there makes the open fail, never receives the data), then
 * fsync, then rename over PATH (which replaces a symlink at PATH itself,
 * never its target), then fsync of the directory.
 */
#ifndef SV_OS_FILE_H
#define SV_OS_FILE_H

#include <stddef.h>
#include <sys/types.h>

/* The temp name is PATH + ".tmp-" + 12 random hex characters. */
#define SV_FILE_TMP_SUFFIX ".tmp-"

/* Replace PATH with len bytes of data, created with mode (before umask). 0 or -errno. */
int sv_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode);

#endif
