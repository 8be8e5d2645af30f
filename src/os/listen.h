/*
 * listen.h: listening sockets from bind URIs.
 *
 *   tcp://HOST:PORT          IPv4 address or name, or [IPv6] (v6-only)
 *   unix://PATH[?mode=0600&umask=0111&backlog=N]
 *   (tcp also takes ?backlog=N and ?low_latency=true, which serval always is)
 *   ssl://HOST:PORT?cert=PATH&key=PATH&...   a tcp listener whose
 *            connections speak TLS; the other query keys are TLS options,
 *            checked and used by src/tls (sv_tls_opts_parse)
 *
 * A listener remembers whether serval created its unix socket file (also
 * across a hot restart, through the handover): only then is the file
 * removed at shutdown. A stale socket file found at bind time is replaced
 * and counts as created; a live one is an error.
 */
#ifndef SV_OS_LISTEN_H
#define SV_OS_LISTEN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define SV_LISTEN_BACKLOG_DEFAULT 1024

/* The bind URI forms serval accepts, as every "expected ..." message and help line names them. */
#define SV_BIND_FORMS "tcp://HOST:PORT, unix://PATH or ssl://HOST:PORT?cert=PATH&key=PATH"

typedef enum sv_bind_kind { SV_BIND_TCP = 1, SV_BIND_UNIX = 2 } sv_bind_kind_t;

typedef struct sv_bind {
    sv_bind_kind_t kind;
    char host[256];  /* tcp: without brackets */
    int port;        /* tcp */
    bool ipv6;       /* tcp: host was bracketed */
    char path[108];  /* unix */
    int mode;        /* unix: chmod after bind, -1 = leave */
    int umask;       /* unix: umask while bind creates the file, -1 = the process's */
    int backlog;
    bool ssl;        /* ssl://: a TLS listener (tcp underneath) */
} sv_bind_t;

typedef struct sv_listener {
    int fd;
    char uri[512];      /* the URI exactly as configured (the hand-over key) */
    sv_bind_t bind;
    bool created_path;  /* we made the unix socket file: unlink it at close */
    bool inherited;
    bool activated;     /* passed by systemd socket activation (os/activation.h), at boot or before a hot restart */
    struct sv_tls *tls; /* ssl:// listeners: contexts (built by the runtime after open), else NULL */
} sv_listener_t;

/* Parse uri into *out. On failure returns SV_ECONFIG with a reason in err. */
int sv_bind_parse(const char *uri, sv_bind_t *out, char *err, size_t errlen);

/*
 * Create, bind and listen (non-blocking, close-on-exec). Fails with
 * -EADDRINUSE (or SV_EINUSE when a live server answers on a unix path) and
 * a reason in err naming the address.
 */
int sv_listener_open(sv_listener_t *l, const char *uri, char *err, size_t errlen);
/* Wrap an inherited fd for uri (checks it is a listening socket). */
int sv_listener_adopt(sv_listener_t *l, const char *uri, int fd, char *err, size_t errlen);
/* Close the fd; remove the unix socket file if we created it and unlink is set. */
void sv_listener_close(sv_listener_t *l, bool unlink_path);
/* "http://127.0.0.1:9292" / "unix:///tmp/s" for log lines, into buf. */
const char *sv_listener_display(const sv_listener_t *l, char *buf, size_t cap);
/* The bound port (for tcp://host:0), or -1. */
int sv_listener_port(const sv_listener_t *l);
/* Connections waiting in the accept queue (Linux TCP_INFO), or -1. */
int sv_listener_queue_len(const sv_listener_t *l);

#endif
