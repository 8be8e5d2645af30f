/*
 * spool.c: where bytes wait when they must not wait in a thread or in
 * unbounded memory.
 *
 * Request bodies are read whole by the reactor before the app is called, so
 * a slow body never holds an app thread. A body stays in memory up to
 * body_buffer_size while all bodies in memory in this process stay within
 * body_memory_limit; otherwise it goes to an unlinked temp file (Puma's and
 * nginx's choice), so no number of concurrent uploads can exhaust memory.
 *
 * Streamed output (serval_response_write) queues up to OUT_MEM_MAX in
 * memory; beyond that, while the client reads slower than the app writes, it
 * is appended to an unlinked temp file the reactor sends from with sendfile,
 * so the app returns and its thread is free while a slow reader drains the
 * rest. Past max_response_buffer the app's write waits for the client.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "server/internal.h"

/* Streamed output held in memory per connection before it spills to the spool. */
#define OUT_MEM_MAX 65536
/* A body buffer larger than this is freed when its request is done. */
#define BODY_KEEP_MAX 16384

/* An unlinked temp file in $TMPDIR (or /tmp); O_TMPFILE where the filesystem has it. */
static int spool_open(void)
{
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir)
        dir = "/tmp";
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
        return fd >= 0 ? fd : SV_ERRNO();
    char path[4096];
    size_t n = strlen(dir);
    if (n + 20 > sizeof(path))
        return -ENAMETOOLONG;
    memcpy(path, dir, n);
    memcpy(path + n, "/serval-XXXXXX", 15);
    fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0)
        return SV_ERRNO();
    unlink(path);
    return fd;
}

static int pwrite_all(int fd, const void *data, size_t len, int64_t off)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return SV_ERRNO();
        }
        p += n;
        len -= (size_t)n;
        off += n;
    }
    return 0;
}

/* ---- request bodies ------------------------------------------------------ */

static bool charge(sv_server_t *s, sv_conn_t *c, size_t len)
{
    int64_t now = atomic_fetch_add(&s->body_mem, (int64_t)len) + (int64_t)len;
    if (now > (int64_t)s->o.body_memory_limit) {
        atomic_fetch_sub(&s->body_mem, (int64_t)len);
        return false;
    }
    c->body_charged += len;
    return true;
}

static void uncharge(sv_conn_t *c)
{
    if (c->body_charged)
        atomic_fetch_sub(&c->srv->body_mem, (int64_t)c->body_charged);
    c->body_charged = 0;
}

/* Move the body so far from memory to a new temp file. */
static int spill_body(sv_conn_t *c)
{
    int fd = spool_open();
    if (fd < 0) {
        sv_log_error("! request body: cannot create a temp file: %s (check TMPDIR)", sv_strerror(fd));
        return fd;
    }
    int rc = pwrite_all(fd, c->body.data, c->body.len, 0);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    c->body_fd = fd;
    uncharge(c);
    sv_buf_free(&c->body);
    atomic_fetch_add_explicit(&c->srv->bodies_spooled, 1, memory_order_relaxed);
    return 0;
}

int sv_body_put(void *conn, const char *data, size_t len)
{
    sv_conn_t *c = conn;
    sv_server_t *s = c->srv;
    if (c->body_fd < 0) {
        bool fits = c->body.len + len <= s->o.body_buffer_size &&
                    (c->req.content_length < 0 || (uint64_t)c->req.content_length <= s->o.body_buffer_size);
        if (fits && charge(s, c, len)) {
            if (sv_buf_append(&c->body, data, len) == 0) {
                c->body_len += (int64_t)len;
                return 0;
            }
            atomic_fetch_sub(&s->body_mem, (int64_t)len);
            c->body_charged -= len;
        }
        int rc = spill_body(c);
        if (rc < 0)
            return rc;
    }
    int rc = pwrite_all(c->body_fd, data, len, c->body_len);
    if (rc == 0)
        c->body_len += (int64_t)len;
    return rc;
}

void sv_body_release(sv_conn_t *c)
{
    uncharge(c);
    if (c->body_map)
        munmap(c->body_map, (size_t)c->body_len);
    c->body_map = NULL;
    if (c->body_fd >= 0)
        close(c->body_fd);
    c->body_fd = -1;
    if (c->body.cap > BODY_KEEP_MAX)
        sv_buf_free(&c->body);
    sv_buf_reset(&c->body);
    c->body_len = c->body_off = 0;
}

/* ---- streamed output ------------------------------------------------------ */

int sv_out_emit(sv_conn_t *c, const void *data, size_t len)
{
    bool spool_pending = c->spill && c->file_left > 0;
    if (!spool_pending && (c->out.len - c->out_off) + len <= OUT_MEM_MAX)
        return sv_buf_append(&c->out, data, len);
    if (!c->spill) {
        int fd = spool_open();
        if (fd < 0)
            return fd;
        c->file_fd = fd;
        c->file_off = c->file_left = 0;
        c->spill = true;
    }
    int rc = pwrite_all(c->file_fd, data, len, c->file_off + c->file_left);
    if (rc == 0)
        c->file_left += (int64_t)len;
    return rc;
}

void sv_out_release(sv_conn_t *c)
{
    if (c->spill && c->file_fd >= 0)
        close(c->file_fd);
    if (c->spill)
        c->file_fd = -1;
    c->spill = false;
    c->file_off = c->file_left = 0;
}
