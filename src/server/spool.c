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
 * rest. When the spools of all connections of the process hold
 * max_response_buffer, nothing more is spooled: a write that fits neither
 * the socket nor OUT_MEM_MAX fails with -ENOBUFS and the response is cut
 * (the connection reset), so slow readers can neither fill the disk nor,
 * by making writes wait, take the app's threads. With max_response_buffer
 * 0 there is no spool and a write waits for its client (within the write
 * bounds) until at most OUT_MEM_MAX is pending: Puma's behaviour.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
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
    c->x->body_charged += len;
    return true;
}

static void uncharge(sv_conn_t *c)
{
    if (c->x->body_charged)
        atomic_fetch_sub(&c->srv->body_mem, (int64_t)c->x->body_charged);
    c->x->body_charged = 0;
}

/* Move the body so far from memory to a new temp file. */
static int spill_body(sv_conn_t *c)
{
    int fd = spool_open();
    if (fd < 0) {
        sv_log_error("! request body: cannot create a temp file: %s (check TMPDIR)", sv_strerror(fd));
        return fd;
    }
    int rc = pwrite_all(fd, c->x->body.data, c->x->body.len, 0);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    c->x->body_fd = fd;
    uncharge(c);
    sv_buf_free(&c->x->body);
    atomic_fetch_add_explicit(&c->srv->bodies_spooled, 1, memory_order_relaxed);
    return 0;
}

int sv_body_put(void *conn, const char *data, size_t len)
{
    sv_conn_t *c = conn;
    sv_server_t *s = c->srv;
    if (c->x->body_fd < 0) {
        bool fits = c->x->body.len + len <= s->o.body_buffer_size &&
                    (c->x->req.content_length < 0 || (uint64_t)c->x->req.content_length <= s->o.body_buffer_size);
        if (fits && charge(s, c, len)) {
            if (sv_buf_append(&c->x->body, data, len) == 0) {
                c->x->body_len += (int64_t)len;
                return 0;
            }
            atomic_fetch_sub(&s->body_mem, (int64_t)len);
            c->x->body_charged -= len;
        }
        int rc = spill_body(c);
        if (rc < 0)
            return rc;
    }
    int rc = pwrite_all(c->x->body_fd, data, len, c->x->body_len);
    if (rc == 0)
        c->x->body_len += (int64_t)len;
    return rc;
}

void sv_body_release(sv_conn_t *c)
{
    uncharge(c);
    if (c->x->body_map)
        munmap(c->x->body_map, (size_t)c->x->body_len);
    c->x->body_map = NULL;
    if (c->x->body_fd >= 0)
        close(c->x->body_fd);
    c->x->body_fd = -1;
    if (c->x->body.cap > BODY_KEEP_MAX)
        sv_buf_free(&c->x->body);
    sv_buf_reset(&c->x->body);
    c->x->body_len = c->x->body_off = 0;
}

/* ---- streamed output ------------------------------------------------------ */

static bool fits_in_memory(const sv_conn_t *c, size_t len)
{
    bool spool_pending = c->x->spill && c->x->file_left > 0;
    return !spool_pending && (c->x->out.len - c->x->out_off) + len <= OUT_MEM_MAX;
}

static int append_all(sv_conn_t *c, const struct iovec *iov, int n, size_t total)
{
    int rc = sv_buf_reserve(&c->x->out, total);
    for (int i = 0; rc == 0 && i < n; i++)
        rc = sv_buf_append(&c->x->out, iov[i].iov_base, iov[i].iov_len);
    return rc;
}

/* One pwritev for the pieces (a chunk's size line, data and CRLF); the rest piece by piece if it comes up short. */
static int spool_write(sv_conn_t *c, const struct iovec *iov, int n, size_t total)
{
    int64_t at = c->x->file_off + c->x->file_left;
    ssize_t w;
    do {
        w = pwritev(c->x->file_fd, iov, n, (off_t)at);
    } while (w < 0 && errno == EINTR);
    if (w < 0)
        return SV_ERRNO();
    size_t before = 0;
    for (int i = 0; i < n && (size_t)w < total; i++) {
        size_t len = iov[i].iov_len;
        if ((size_t)w < before + len) {
            size_t off = (size_t)w > before ? (size_t)w - before : 0;
            int rc = pwrite_all(c->x->file_fd, (const char *)iov[i].iov_base + off, len - off,
                                at + (int64_t)(before + off));
            if (rc < 0)
                return rc;
        }
        before += len;
    }
    c->x->file_left += (int64_t)total;
    c->x->spool_charged += (int64_t)total;
    atomic_fetch_add_explicit(&c->srv->spool_bytes, (int64_t)total, memory_order_relaxed);
    return 0;
}

int sv_out_emitv(sv_conn_t *c, const struct iovec *iov, int n)
{
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    /* max_response_buffer 0: no spool; the writer waits for the client instead (sv_out_wait_limit) */
    if (fits_in_memory(c, total) || c->srv->o.max_response_buffer <= 0)
        return append_all(c, iov, n, total);
    if (sv_out_spool_full(c->srv)) {
        /* no room for more slow readers' backlog: this client takes what it can now, or is cut */
        if (sv_conn_flush(c) < 0 || !fits_in_memory(c, total))
            return -ENOBUFS;
        return append_all(c, iov, n, total);
    }
    if (!c->x->spill) {
        int fd = spool_open();
        if (fd < 0)
            return fd;
        c->x->file_fd = fd;
        c->x->file_off = c->x->file_left = 0;
        c->x->spill = true;
    }
    return spool_write(c, iov, n, total);
}

int sv_out_emit(sv_conn_t *c, const void *data, size_t len)
{
    struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
    return sv_out_emitv(c, &iov, 1);
}

void sv_out_spool_sent(sv_conn_t *c, int64_t n)
{
    if (n > c->x->spool_charged)
        n = c->x->spool_charged;
    c->x->spool_charged -= n;
    atomic_fetch_sub_explicit(&c->srv->spool_bytes, n, memory_order_relaxed);
}

bool sv_out_spool_full(const sv_server_t *s)
{
    sv_server_t *m = (sv_server_t *)s;
    return atomic_load_explicit(&m->spool_bytes, memory_order_relaxed) >= s->o.max_response_buffer;
}

int64_t sv_out_wait_limit(const sv_conn_t *c)
{
    return c->srv->o.max_response_buffer > 0 ? INT64_MAX : OUT_MEM_MAX;
}

void sv_out_release(sv_conn_t *c)
{
    sv_out_spool_sent(c, c->x->spool_charged);
    if (c->x->spill && c->x->file_fd >= 0)
        close(c->x->file_fd);
    if (c->x->spill)
        c->x->file_fd = -1;
    c->x->spill = false;
    c->x->file_off = c->x->file_left = 0;
}
