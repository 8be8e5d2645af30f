/*
 * tls.h: TLS for ssl:// listeners, on Debian's OpenSSL.
 *
 * A listener's TLS settings live in its bind URI's query
 * (ssl://HOST:PORT?cert=PATH&key=PATH&...), so they travel with the
 * listener through a hot restart's exec; ssl_bind in the config file builds
 * such a URI. sv_tls_new turns the URI into contexts (one per certificate,
 * picked by SNI), sv_tls_conn_* wrap one connection.
 *
 * A process-wide shared block (a memfd mapped MAP_SHARED, created by the
 * master and inherited by every worker through fork and by the next image
 * through a hot restart) holds what the workers of a cluster share: the
 * session ticket keys (written by the master only, read by every worker's
 * ticket callback under a seqlock), the certificate generation (bumped by
 * the master after a successful reload; each serving process reloads its
 * contexts when it sees a new one), and the handshake counters.
 */
#ifndef SV_TLS_TLS_H
#define SV_TLS_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/buf.h"
#include "core/json.h"

#define SV_TLS_MAX_CERTS 16
/* An ssl:// URI is the listener's hand-over key: it must fit sv_listener_t.uri with room to spare. */
#define SV_TLS_URI_MAX 480

typedef enum sv_tls_verify { SV_TLS_VERIFY_NONE = 0, SV_TLS_VERIFY_PEER, SV_TLS_VERIFY_FORCE_PEER } sv_tls_verify_t;

/* The options of one ssl:// URI (strings owned; free with sv_tls_opts_free). */
typedef struct sv_tls_opts {
    int n_certs;
    char *cert[SV_TLS_MAX_CERTS];  /* PEM file: certificate, then its chain (or store:N, inline PEM) */
    char *key[SV_TLS_MAX_CERTS];   /* PEM file: the private key of cert[i] (or store:N) */
    char *ca;                      /* PEM file of CAs that sign client certificates */
    sv_tls_verify_t verify_mode;
    char *cipher_filter;           /* TLS 1.2 cipher list (OpenSSL syntax) */
    char *ciphersuites;            /* TLS 1.3 suites */
    char *key_password_command;    /* prints the key's passphrase on stdout */
    bool tlsv1_3_only;             /* min_version=TLSv1.3 */
} sv_tls_opts_t;

typedef struct sv_tls sv_tls_t;

/*
 * Inline PEM (Puma's cert_pem/key_pem in ssl_bind): the text is kept in this
 * process (inherited by its workers through fork; a hot restart's new image
 * gets it again from the config file), and the URI names it as
 * cert=store:N / key=store:N, Puma's own spelling. The same text twice gets
 * the same index, so reading the config again does not grow the store.
 * Returns N, or SV_ECONFIG (empty text, or the store is full).
 */
int sv_tls_store_pem(const char *pem);

/* Parse the query of an ssl:// URI. SV_ECONFIG with one line in err. */
int sv_tls_opts_parse(const char *uri, sv_tls_opts_t *o, char *err, size_t errlen);
void sv_tls_opts_free(sv_tls_opts_t *o);
/* Parse and load everything (files, key match, ciphers) without keeping it: config validation. */
int sv_tls_check(const char *uri, char *err, size_t errlen);

/* Build the contexts of an ssl:// listener. NULL with one line in err. */
sv_tls_t *sv_tls_new(const char *uri, char *err, size_t errlen);
void sv_tls_free(sv_tls_t *t);
/*
 * The listener's socket: TCP_NODELAY is set on it once, and Linux copies it
 * to every socket accepted from it, so a TLS connection starts with it
 * without a setsockopt of its own. Serving processes call it for each
 * ssl:// listener (again after a hot restart or for an inherited socket).
 */
void sv_tls_listener_ready(sv_tls_t *t, int fd);
/* Whether connections accepted from the listener come with TCP_NODELAY already. */
bool sv_tls_nodelay_inherited(const sv_tls_t *t);
/* Earliest notAfter of the listener's certificates (unix seconds). */
int64_t sv_tls_not_after(const sv_tls_t *t);

/*
 * Reload every listener's certificates from disk, all or none: on any error
 * nothing changes, the old certificates keep serving, and err holds one line.
 * On success the shared generation moves on, so every serving process of the
 * cluster reloads too (sv_tls_refresh). n may be 0 (a no-op).
 */
int sv_tls_reload_all(sv_tls_t **tls, int n, char *err, size_t errlen);
/* In a serving process: reload if the master moved the generation on. Main thread. */
void sv_tls_refresh(sv_tls_t **tls, int n);

/* ---- the shared block ---------------------------------------------------- */

/*
 * Create the shared block (fd < 0), or map the one a hot restart handed over
 * (fd >= 0; its keys and counters carry on). Generates the first ticket keys.
 */
int sv_tls_shared_init(int fd);
/* The block's fd (for the hot restart's handover), or -1. */
int sv_tls_shared_fd(void);
/* Master / single process: rotate the ticket keys on schedule. */
void sv_tls_tick(int64_t now_ms);
/* The "tls" object of /stats (counters, certificate expiry) as the value of the current key. */
void sv_tls_stats_json(sv_json_t *w, sv_tls_t **tls, int n);
/* Prometheus lines. */
void sv_tls_metrics(sv_buf_t *out, sv_tls_t **tls, int n);
/* Whether any TLS is in use in this process (the shared block exists). */
bool sv_tls_active(void);

/* ---- one connection ------------------------------------------------------ */

/*
 * A server-side TLS object on fd, or NULL (no memory). drained is the
 * connection's "the socket is empty" flag (edge-triggered epoll): the TLS
 * layer sets it when a recv comes back short or with EAGAIN, and does not
 * call recv again until the caller clears it (when an event comes). NULL:
 * no such flag, every read tries the socket (the control server).
 */
void *sv_tls_conn_new(sv_tls_t *t, int fd, bool *drained);
/* After a read: *drained and nothing buffered inside the TLS object, so waiting for an event is safe. */
bool sv_tls_drained(void *ssl, const bool *drained);
/*
 * Read/write through the TLS object: >0 bytes, 0 clean EOF (recv only),
 * -EAGAIN would block (*want_out set when it is waiting to write), other
 * negative codes end the connection. The handshake runs inside them. On a
 * server connection, what a TLS 1.3 read writes once the handshake is done
 * (the session ticket) is held and goes out with the next sv_tls_send or
 * the close_notify; a handshake flight is always sent before recv returns.
 */
ssize_t sv_tls_recv(void *ssl, void *buf, size_t len, bool *want_out);
ssize_t sv_tls_send(void *ssl, const void *buf, size_t len, bool *want_out);
/* Decrypted bytes buffered inside the TLS object (read them before waiting on the fd). */
bool sv_tls_pending(void *ssl);
/* Send close_notify if possible (never blocks); the fd stays open. */
void sv_tls_conn_shutdown(void *ssl);
/* Free the object (counts an unfinished handshake). */
void sv_tls_conn_free(void *ssl);
/*
 * A client-side TLS object on a connected fd (servalctl to an ssl:// control
 * server): TLS 1.2+, the server's certificate is not verified (as pumactl);
 * the handshake runs inside the first sv_tls_send / sv_tls_recv.
 */
void *sv_tls_client_new(int fd);

#endif
