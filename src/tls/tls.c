/*
 * tls.c: TLS on OpenSSL. Owns the ssl:// options, the SSL_CTX of each
 * listener (protocols, ciphers, groups, verify modes, SNI certificates,
 * ALPN), the session ticket keys in the block shared by the cluster, and
 * one connection's non-blocking handshake, reads and writes. Reloading
 * certificates is driven by src/cluster/certs.c.
 */
#include "tls/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/err.h"
#include "core/log.h"
#include "core/time.h"

/*
 * Defaults: TLS 1.2 and 1.3 only; for 1.2 only ECDHE with AEAD ciphers
 * (forward secrecy, no CBC, no RSA key exchange): Mozilla's "intermediate"
 * list without the finite-field DHE suites. TLS 1.3 keeps OpenSSL's suites.
 */
#define DEFAULT_CIPHERS                                                                                        \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"                  \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define DEFAULT_GROUPS "X25519:P-256:P-384"
/* Ticket keys: a new one every hour by default; tickets stay valid under the two before it. */
#define TICKET_ROTATION_S_DEFAULT 3600
#define TICKET_KEYS 3
#define TICKET_LIFETIME_S(rot) ((rot) * (TICKET_KEYS - 1))
/* A replaced set of contexts is freed this long after it stopped taking handshakes. */
#define RETIRE_MS (3600 * 1000)
/* A worker that could not load what the master loaded tries again this often. */
#define REFRESH_RETRY_MS 5000

/* ---- inline PEM (cert_pem / key_pem) -------------------------------------- */

#define PEM_STORE_MAX (2 * SV_TLS_MAX_CERTS * 4)

/* Written while the config is read (main thread, before any serving thread or fork), then only read. */
static char *g_pem[PEM_STORE_MAX];
static int g_npem;

int sv_tls_store_pem(const char *pem)
{
    if (!pem || !*pem)
        return SV_ECONFIG;
    for (int i = 0; i < g_npem; i++)
        if (!strcmp(g_pem[i], pem))
            return i;
    if (g_npem == PEM_STORE_MAX)
        return SV_ECONFIG;
    char *copy = strdup(pem);
    if (!copy)
        return -ENOMEM;
    g_pem[g_npem] = copy;
    return g_npem++;
}

static bool is_store(const char *v)
{
    return v && !strncmp(v, "store:", 6);
}

/* The inline PEM a store:N value names, or NULL when it names none. */
static const char *stored(const char *v)
{
    char *end;
    long i = strtol(v + 6, &end, 10);
    if (end == v + 6 || *end || i < 0 || i >= g_npem)
        return NULL;
    return g_pem[i];
}

/* ---- options ------------------------------------------------------------- */

/* "ssl://HOST:PORT" of a URI, for messages (the query is long and the option named anyway). */
static const char *short_uri(const char *uri, char *buf, size_t cap)
{
    const char *q = strchr(uri, '?');
    size_t n = q ? (size_t)(q - uri) : strlen(uri);
    snprintf(buf, cap, "%.*s", (int)(n < cap ? n : cap - 1), uri);
    return buf;
}

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return SV_ECONFIG;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* %-decode n bytes of s into a new string ("+" stays "+": paths are not forms). */
static char *decode(const char *s, size_t n)
{
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            out[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

static bool truthy(const char *v)
{
    return !strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes");
}

void sv_tls_opts_free(sv_tls_opts_t *o)
{
    for (int i = 0; i < SV_TLS_MAX_CERTS; i++) {
        free(o->cert[i]);
        free(o->key[i]);
    }
    free(o->ca);
    free(o->cipher_filter);
    free(o->ciphersuites);
    free(o->key_password_command);
    memset(o, 0, sizeof(*o));
}

static int set_opt(sv_tls_opts_t *o, const char *k, char *v, const char *uri, char *err, size_t errlen)
{
    char **slot = NULL;
    if (!strcmp(k, "cert")) {
        if (o->n_certs >= SV_TLS_MAX_CERTS || o->cert[o->n_certs])
            return fail(err, errlen, "bad bind '%s': cert given twice without a key between (or more than %d)", uri,
                        SV_TLS_MAX_CERTS);
        o->cert[o->n_certs] = v;
        if (o->key[o->n_certs])
            o->n_certs++;
        return 0;
    }
    if (!strcmp(k, "key")) {
        if (o->n_certs >= SV_TLS_MAX_CERTS || o->key[o->n_certs])
            return fail(err, errlen, "bad bind '%s': key given twice without a cert between (or more than %d)", uri,
                        SV_TLS_MAX_CERTS);
        o->key[o->n_certs] = v;
        if (o->cert[o->n_certs])
            o->n_certs++;
        return 0;
    }
    if (!strcmp(k, "ca"))
        slot = &o->ca;
    else if (!strcmp(k, "ssl_cipher_filter"))
        slot = &o->cipher_filter;
    else if (!strcmp(k, "ssl_ciphersuites"))
        slot = &o->ciphersuites;
    else if (!strcmp(k, "key_password_command"))
        slot = &o->key_password_command;
    if (slot) {
        free(*slot);
        *slot = v;
        return 0;
    }
    int rc = 0;
    if (!strcmp(k, "verify_mode")) {
        if (!strcmp(v, "none"))
            o->verify_mode = SV_TLS_VERIFY_NONE;
        else if (!strcmp(v, "peer"))
            o->verify_mode = SV_TLS_VERIFY_PEER;
        else if (!strcmp(v, "force_peer"))
            o->verify_mode = SV_TLS_VERIFY_FORCE_PEER;
        else
            rc = fail(err, errlen, "bad bind '%s': verify_mode must be none, peer or force_peer", uri);
    } else if (!strcmp(k, "min_version")) {
        if (!strcmp(v, "TLSv1_3") || !strcmp(v, "TLSv1.3"))
            o->tlsv1_3_only = true;
        else if (strcmp(v, "TLSv1_2") && strcmp(v, "TLSv1.2"))
            rc = fail(err, errlen, "bad bind '%s': min_version must be TLSv1_2 or TLSv1_3 (older versions are "
                                   "never enabled)", uri);
    } else if (!strcmp(k, "no_tlsv1") || !strcmp(k, "no_tlsv1_1")) {
        /* Puma's switches: serval never enables TLS 1.0 or 1.1, so true is the only state */
        if (!truthy(v))
            rc = fail(err, errlen, "bad bind '%s': %s=%s: serval never enables TLS 1.0 or 1.1 (delete the option)",
                      uri, k, v);
    } else if (!strcmp(k, "cert_pem") || !strcmp(k, "key_pem")) {
        rc = fail(err, errlen, "bad bind '%s': %s goes in ssl_bind's options, not in a bind URI (hint: in a URI, "
                               "give the PEM file's path as %s)", uri, k, k[0] == 'c' ? "cert" : "key");
    } else if (!strcmp(k, "verification_flags")) {
        rc = fail(err, errlen, "bad bind '%s': verification_flags is not supported (hint: delete it; "
                               "verify_mode peer/force_peer checks the client chain against ca)", uri);
    } else if (!strcmp(k, "backlog") || !strcmp(k, "low_latency") || !strcmp(k, "reuse")) {
        /* the listener's own parameters (os/listen.c) */
    } else {
        rc = fail(err, errlen, "bad bind '%s': unknown ssl parameter '%s' (known: cert, key, ca, verify_mode, "
                               "ssl_cipher_filter, ssl_ciphersuites, key_password_command, min_version, "
                               "no_tlsv1, no_tlsv1_1, reuse, backlog, low_latency)", uri, k);
    }
    free(v);
    return rc;
}

int sv_tls_opts_parse(const char *uri, sv_tls_opts_t *o, char *err, size_t errlen)
{
    char su[300];
    short_uri(uri, su, sizeof(su));
    memset(o, 0, sizeof(*o));
    const char *q = strchr(uri, '?');
    q = q ? q + 1 : NULL;
    while (q && *q) {
        const char *amp = strchr(q, '&');
        size_t n = amp ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', n);
        if (!eq) {
            sv_tls_opts_free(o);
            return fail(err, errlen, "bad bind '%s': query needs key=value", su);
        }
        char key[64];
        snprintf(key, sizeof(key), "%.*s", (int)((size_t)(eq - q) < 60 ? (size_t)(eq - q) : 60), q);
        char *v = decode(eq + 1, n - (size_t)(eq - q) - 1);
        if (!v) {
            sv_tls_opts_free(o);
            return -ENOMEM;
        }
        int rc = set_opt(o, key, v, su, err, errlen);
        if (rc < 0) {
            sv_tls_opts_free(o);
            return rc;
        }
        q = amp ? amp + 1 : NULL;
    }
    int rc = 0;
    if (o->n_certs == 0 || o->cert[o->n_certs] || o->key[o->n_certs])
        rc = fail(err, errlen, "bad bind '%s': ssl:// needs cert=PATH&key=PATH (a key for every cert)", su);
    else if (o->verify_mode != SV_TLS_VERIFY_NONE && !o->ca)
        rc = fail(err, errlen, "bad bind '%s': verify_mode %s needs ca=PATH (the CAs that sign client "
                               "certificates)", su, o->verify_mode == SV_TLS_VERIFY_PEER ? "peer" : "force_peer");
    if (rc < 0)
        sv_tls_opts_free(o);
    return rc;
}

/* ---- the shared block ------------------------------------------------------ */

enum {
    CTR_HANDSHAKES = 0,
    CTR_RESUMED,
    CTR_FAIL_PROTOCOL,
    CTR_FAIL_CERT,
    CTR_FAIL_PLAIN_HTTP,
    CTR_FAIL_INCOMPLETE,
    CTR_FAIL_OTHER,
    CTR_RELOADS,
    CTR_RELOAD_FAILURES,
    CTR_ROTATIONS,
    CTR_COUNT
};

static const char *const ctr_names[CTR_COUNT] = {
    "handshakes", "resumed", "failed_protocol", "failed_client_certificate", "failed_plain_http",
    "failed_incomplete", "failed_other", "certificate_reloads", "certificate_reload_failures",
    "ticket_key_rotations",
};

#define KEY_WORDS 10 /* 16 bytes name, 32 AES-256 key, 32 HMAC-SHA256 key */
#define SHARED_MAGIC 0x73762d746c733031ull

typedef struct shared {
    uint64_t magic;
    _Atomic uint64_t seq;                      /* seqlock over keys: odd while the master writes */
    _Atomic uint64_t keys[TICKET_KEYS][KEY_WORDS]; /* [0] encrypts, all decrypt */
    _Atomic int64_t rotated_wall_ms;
    _Atomic uint64_t cert_gen;                 /* bumped by the master after a good reload */
    _Atomic uint64_t ctr[CTR_COUNT];
} shared_t;

/*
 * Process-wide: OpenSSL's ticket callback gets no argument of ours, and the
 * block is one per process by nature (like OpenSSL's own state).
 */
static shared_t *g_shared;
static int g_shared_fd = -1;
/* fetched once (OpenSSL 3 would look the cipher up again at every ticket) */
static EVP_CIPHER *g_ticket_cipher;
static uint64_t g_seen_gen; /* the certificate generation this process's contexts are from */

static void count(int which)
{
    if (g_shared)
        atomic_fetch_add_explicit(&g_shared->ctr[which], 1, memory_order_relaxed);
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void write_keys(const uint64_t keys[TICKET_KEYS][KEY_WORDS])
{
    uint64_t s = atomic_load_explicit(&g_shared->seq, memory_order_relaxed);
    atomic_store_explicit(&g_shared->seq, s + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    for (int k = 0; k < TICKET_KEYS; k++)
        for (int w = 0; w < KEY_WORDS; w++)
            atomic_store_explicit(&g_shared->keys[k][w], keys[k][w], memory_order_relaxed);
    atomic_store_explicit(&g_shared->seq, s + 2, memory_order_release);
}

static void read_keys(uint64_t keys[TICKET_KEYS][KEY_WORDS])
{
    for (;;) {
        uint64_t s1 = atomic_load_explicit(&g_shared->seq, memory_order_acquire);
        if (s1 & 1) {
            sched_yield();
            continue;
        }
        for (int k = 0; k < TICKET_KEYS; k++)
            for (int w = 0; w < KEY_WORDS; w++)
                keys[k][w] = atomic_load_explicit(&g_shared->keys[k][w], memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&g_shared->seq, memory_order_relaxed) == s1)
            return;
    }
}

static int rotation_s(void)
{
    const char *e = getenv("SERVAL_TLS_TICKET_ROTATION");
    long v = e ? strtol(e, NULL, 10) : 0;
    return v > 0 && v < 86400 * 7 ? (int)v : TICKET_ROTATION_S_DEFAULT;
}

/* Master only: a fresh key in front, the oldest dropped. */
static int rotate_keys(void)
{
    uint64_t keys[TICKET_KEYS][KEY_WORDS];
    read_keys(keys);
    memmove(keys[1], keys[0], sizeof(keys[0]) * (TICKET_KEYS - 1));
    if (RAND_bytes((unsigned char *)keys[0], (int)sizeof(keys[0])) != 1)
        return -EIO;
    write_keys(keys);
    atomic_store(&g_shared->rotated_wall_ms, wall_ms());
    return 0;
}

int sv_tls_shared_init(int fd)
{
    if (g_shared)
        return 0;
    bool fresh = fd < 0;
    if (fresh) {
        fd = memfd_create("serval-tls", MFD_CLOEXEC);
        if (fd < 0 || ftruncate(fd, sizeof(shared_t)) < 0) {
            int e = SV_ERRNO();
            if (fd >= 0)
                close(fd);
            return e;
        }
    } else {
        fcntl(fd, F_SETFD, FD_CLOEXEC); /* cleared for the exec that handed it over */
        struct stat st;
        if (fstat(fd, &st) < 0 || st.st_size != (off_t)sizeof(shared_t)) {
            close(fd);
            return sv_tls_shared_init(-1);
        }
    }
    void *p = mmap(NULL, sizeof(shared_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        int e = SV_ERRNO();
        close(fd);
        return e;
    }
    g_shared = p;
    g_shared_fd = fd;
    if (!g_ticket_cipher)
        g_ticket_cipher = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
    if (fresh || g_shared->magic != SHARED_MAGIC) {
        memset(p, 0, sizeof(shared_t));
        g_shared->magic = SHARED_MAGIC;
        for (int i = 0; i < TICKET_KEYS; i++)
            if (rotate_keys() < 0)
                return -EIO;
        atomic_store(&g_shared->ctr[CTR_ROTATIONS], 0);
    }
    g_seen_gen = atomic_load(&g_shared->cert_gen);
    return 0;
}

int sv_tls_shared_fd(void)
{
    return g_shared_fd;
}

bool sv_tls_active(void)
{
    return g_shared != NULL;
}

void sv_tls_tick(int64_t now_ms)
{
    (void)now_ms;
    if (!g_shared)
        return;
    int64_t w = wall_ms();
    if (w - atomic_load(&g_shared->rotated_wall_ms) < (int64_t)rotation_s() * 1000)
        return;
    if (rotate_keys() == 0)
        count(CTR_ROTATIONS);
}

/*
 * OpenSSL's ticket callback: encrypt under the newest shared key, decrypt
 * under whichever key's name the ticket carries. On a good ticket it
 * returns 2 (valid, issue a new ticket) for TLS 1.3 always, as OpenSSL's
 * own ticket keys (and so nginx) do: TLS 1.3 clients such as browsers use
 * a ticket once, so a resumed connection that got no fresh ticket would
 * make the next one a full handshake. TLS 1.2 clients keep their ticket:
 * 1 (valid, keep) while it is under the newest key.
 */
static int ticket_cb(SSL *ssl, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *ectx, EVP_MAC_CTX *hctx,
                     int enc)
{
    if (!g_shared)
        return 0;
    uint64_t keys[TICKET_KEYS][KEY_WORDS];
    read_keys(keys);
    int k = 0;
    if (enc) {
        if (RAND_bytes(iv, 16) != 1)
            return -1;
        memcpy(name, keys[0], 16);
    } else {
        while (k < TICKET_KEYS && memcmp(name, keys[k], 16))
            k++;
        if (k == TICKET_KEYS)
            return 0; /* unknown or expired key: full handshake */
    }
    const unsigned char *kb = (const unsigned char *)keys[k];
    OSSL_PARAM params[3];
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)(kb + 48), 32);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[2] = OSSL_PARAM_construct_end();
    const EVP_CIPHER *cipher = g_ticket_cipher ? g_ticket_cipher : EVP_aes_256_cbc();
    int ok = enc ? EVP_EncryptInit_ex(ectx, cipher, NULL, kb + 16, iv)
                 : EVP_DecryptInit_ex(ectx, cipher, NULL, kb + 16, iv);
    OPENSSL_cleanse(keys, sizeof(keys));
    if (ok != 1 || EVP_MAC_CTX_set_params(hctx, params) != 1)
        return -1;
    return enc || (k == 0 && SSL_version(ssl) < TLS1_3_VERSION) ? 1 : 2;
}

/* ---- contexts -------------------------------------------------------------- */

typedef struct gen {
    int n;
    SSL_CTX *ctx[SV_TLS_MAX_CERTS];
    int64_t not_after;
    int64_t retired_ms;
    struct gen *next_retired;
} gen_t;

struct sv_tls {
    char *uri;
    _Atomic bool nodelay; /* the listener has TCP_NODELAY: accepted sockets inherit it */
    pthread_mutex_t mu; /* cur may be replaced while threads start connections */
    gen_t *cur;
    gen_t *retired;
};

static void gen_free(gen_t *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->n; i++)
        SSL_CTX_free(g->ctx[i]);
    free(g);
}

static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                   unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    static const unsigned char h11[] = "\x08http/1.1";
    unsigned char *sel = NULL;
    if (SSL_select_next_proto(&sel, outlen, h11, sizeof(h11) - 1, in, inlen) == OPENSSL_NPN_NEGOTIATED) {
        *out = sel;
        return SSL_TLSEXT_ERR_OK;
    }
    /* the client speaks only other protocols (h2 alone): go on without ALPN, it may still try HTTP/1.1 */
    return SSL_TLSEXT_ERR_NOACK;
}

/* SNI: the first certificate whose names match the requested host; the first certificate otherwise. */
static int sni_cb(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    gen_t *g = arg;
    const char *host = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!host || g->n < 2)
        return SSL_TLSEXT_ERR_OK;
    for (int i = 0; i < g->n; i++) {
        X509 *x = SSL_CTX_get0_certificate(g->ctx[i]);
        if (x && X509_check_host(x, host, 0, 0, NULL) == 1) {
            if (i > 0)
                SSL_set_SSL_CTX(ssl, g->ctx[i]);
            return SSL_TLSEXT_ERR_OK;
        }
    }
    return SSL_TLSEXT_ERR_OK;
}

typedef struct pw {
    const char *cmd;
    char err[256];
} pw_t;

/* key_password_command: run it with sh -c, its first output line is the passphrase. */
static int password_cb(char *buf, int size, int rwflag, void *arg)
{
    (void)rwflag;
    pw_t *pw = arg;
    if (!pw || !pw->cmd) {
        snprintf(pw ? pw->err : (char[1]){0}, pw ? sizeof(pw->err) : 1,
                 "the key is encrypted (hint: give key_password_command)");
        return -1;
    }
    fflush(stdout);
    FILE *f = popen(pw->cmd, "re");
    if (!f) {
        snprintf(pw->err, sizeof(pw->err), "key_password_command: %s", strerror(errno));
        return -1;
    }
    int n = 0;
    int ch;
    while ((ch = fgetc(f)) != EOF && ch != '\n' && n < size - 1)
        buf[n++] = (char)ch;
    while (ch != EOF)
        ch = fgetc(f);
    int st = pclose(f);
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        snprintf(pw->err, sizeof(pw->err), "key_password_command '%s' failed (exit status %d)", pw->cmd,
                 st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        OPENSSL_cleanse(buf, (size_t)size);
        return -1;
    }
    buf[n] = '\0';
    return n;
}

/* The first OpenSSL error as text, for one-line messages. */
static const char *ssl_reason(char *buf, size_t cap)
{
    unsigned long e = ERR_peek_error(); /* the first: the cause (the last is a generic wrapper) */
    if (!e) {
        snprintf(buf, cap, "unknown error");
    } else {
        const char *r = ERR_reason_error_string(e);
        snprintf(buf, cap, "%s", r ? r : "unknown error");
    }
    ERR_clear_error();
    return buf;
}

static int64_t cert_not_after(X509 *x)
{
    const ASN1_TIME *t = X509_get0_notAfter(x);
    struct tm tm;
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
        return 0;
    return (int64_t)timegm(&tm);
}

/* A file we must read: a missing or unreadable one is named with the system's reason. */
static int readable(const char *what, const char *path, const char *uri, char *err, size_t errlen)
{
    if (is_store(path)) {
        if (stored(path))
            return 0;
        return fail(err, errlen, "%s: %s %s names no %s_pem of this configuration (store:N comes from ssl_bind's "
                                 "cert_pem/key_pem; give a file path instead)", uri, what, path, what);
    }
    if (!path || access(path, R_OK) == 0)
        return 0;
    return fail(err, errlen, "%s: cannot read %s %s: %s", uri, what, path, strerror(errno));
}

/* SSL_CTX_use_certificate_chain_file on inline PEM: the certificate, then its chain. */
static int use_cert_pem(SSL_CTX *ctx, const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *x = b ? PEM_read_bio_X509_AUX(b, NULL, NULL, NULL) : NULL;
    int ok = x && SSL_CTX_use_certificate(ctx, x) == 1 && SSL_CTX_clear_chain_certs(ctx) == 1;
    X509_free(x);
    while (ok) {
        X509 *ca = PEM_read_bio_X509(b, NULL, NULL, NULL);
        if (!ca) {
            /* the end of the text is "no start line"; anything else is a bad chain */
            unsigned long e = ERR_peek_last_error();
            if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)
                ERR_clear_error();
            else if (e)
                ok = 0;
            break;
        }
        if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) {
            X509_free(ca);
            ok = 0;
        }
    }
    BIO_free(b);
    return ok ? 1 : 0;
}

static SSL_CTX *build_ctx(const sv_tls_opts_t *o, int i, const char *uri, char *err, size_t errlen)
{
    char why[256];
    if (readable("cert", o->cert[i], uri, err, errlen) < 0 || readable("key", o->key[i], uri, err, errlen) < 0 ||
        readable("ca", o->ca, uri, err, errlen) < 0)
        return NULL;
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        fail(err, errlen, "%s: cannot create a TLS context: %s", uri, ssl_reason(why, sizeof(why)));
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, o->tlsv1_3_only ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1);
    /*
     * NO_AUTO_CHAIN: the chain is what the cert file holds after the
     * certificate, as nginx does; without it OpenSSL would try to build a
     * chain from the verify store (the client CAs) at every handshake.
     */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS | SSL_MODE_NO_AUTO_CHAIN);
    /*
     * One recv per batch of records instead of two per record (header, then
     * body). Reads still go on until SSL_ERROR_WANT_READ, so records read
     * ahead are never left behind with edge-triggered epoll.
     */
    SSL_CTX_set_read_ahead(ctx, 1);
    const char *step = "cipher list";
    const char *arg = o->cipher_filter ? o->cipher_filter : DEFAULT_CIPHERS;
    if (SSL_CTX_set_cipher_list(ctx, arg) != 1)
        goto bad;
    step = "ssl_ciphersuites";
    arg = o->ciphersuites;
    if (o->ciphersuites && SSL_CTX_set_ciphersuites(ctx, o->ciphersuites) != 1)
        goto bad;
    step = "groups";
    arg = DEFAULT_GROUPS;
    if (SSL_CTX_set1_groups_list(ctx, DEFAULT_GROUPS) != 1)
        goto bad;
    step = is_store(o->cert[i]) ? "cert_pem" : "cert";
    arg = o->cert[i];
    if ((is_store(o->cert[i]) ? use_cert_pem(ctx, stored(o->cert[i]))
                              : SSL_CTX_use_certificate_chain_file(ctx, o->cert[i])) != 1)
        goto bad;
    pw_t pw = {o->key_password_command, ""};
    step = is_store(o->key[i]) ? "key_pem" : "key";
    arg = o->key[i];
    int ok;
    if (is_store(o->key[i])) {
        BIO *b = BIO_new_mem_buf(stored(o->key[i]), -1);
        EVP_PKEY *pk = b ? PEM_read_bio_PrivateKey(b, NULL, password_cb, &pw) : NULL;
        ok = pk ? SSL_CTX_use_PrivateKey(ctx, pk) : 0;
        EVP_PKEY_free(pk);
        BIO_free(b);
    } else {
        SSL_CTX_set_default_passwd_cb(ctx, password_cb);
        SSL_CTX_set_default_passwd_cb_userdata(ctx, &pw);
        ok = SSL_CTX_use_PrivateKey_file(ctx, o->key[i], SSL_FILETYPE_PEM);
        SSL_CTX_set_default_passwd_cb(ctx, NULL);
        SSL_CTX_set_default_passwd_cb_userdata(ctx, NULL);
    }
    if (ok != 1 && ERR_GET_REASON(ERR_peek_error()) == X509_R_KEY_VALUES_MISMATCH) {
        fail(err, errlen, "%s: %s %s does not belong to %s %s", uri, is_store(o->key[i]) ? "key_pem" : "key",
             o->key[i], is_store(o->cert[i]) ? "cert_pem" : "certificate", o->cert[i]);
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (ok != 1) {
        if (pw.err[0]) {
            ERR_clear_error();
            fail(err, errlen, "%s: cannot load %s %s: %s", uri, step, o->key[i], pw.err);
            SSL_CTX_free(ctx);
            return NULL;
        }
        goto bad;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        fail(err, errlen, "%s: %s %s does not belong to %s %s", uri, is_store(o->key[i]) ? "key_pem" : "key",
             o->key[i], is_store(o->cert[i]) ? "cert_pem" : "certificate", o->cert[i]);
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (o->ca) {
        step = "ca";
        arg = o->ca;
        if (SSL_CTX_load_verify_locations(ctx, o->ca, NULL) != 1)
            goto bad;
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(o->ca);
        if (names)
            SSL_CTX_set_client_CA_list(ctx, names);
    }
    int vm = o->verify_mode == SV_TLS_VERIFY_NONE   ? SSL_VERIFY_NONE
             : o->verify_mode == SV_TLS_VERIFY_PEER ? SSL_VERIFY_PEER
                                                    : SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ctx, vm, NULL);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"serval", 6);
    /* resumption by tickets only (stateless, so any worker can resume any session) */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx, 1);
    SSL_CTX_set_timeout(ctx, TICKET_LIFETIME_S(rotation_s()));
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, NULL);
    return ctx;
bad:
    fail(err, errlen, "%s: cannot use %s %s: %s", uri, step, arg ? arg : "", ssl_reason(why, sizeof(why)));
    SSL_CTX_free(ctx);
    return NULL;
}

static gen_t *build_gen(const char *uri, char *err, size_t errlen)
{
    sv_tls_opts_t o;
    int rc = sv_tls_opts_parse(uri, &o, err, errlen);
    if (rc < 0) {
        if (rc == -ENOMEM)
            fail(err, errlen, "%s: out of memory", uri);
        return NULL;
    }
    gen_t *g = calloc(1, sizeof(*g));
    if (!g) {
        fail(err, errlen, "%s: out of memory", uri);
        sv_tls_opts_free(&o);
        return NULL;
    }
    char su[300];
    short_uri(uri, su, sizeof(su));
    for (int i = 0; i < o.n_certs; i++) {
        g->ctx[i] = build_ctx(&o, i, su, err, errlen);
        if (!g->ctx[i]) {
            gen_free(g);
            sv_tls_opts_free(&o);
            return NULL;
        }
        g->n = i + 1;
        int64_t na = cert_not_after(SSL_CTX_get0_certificate(g->ctx[i]));
        if (g->not_after == 0 || (na && na < g->not_after))
            g->not_after = na;
    }
    SSL_CTX_set_tlsext_servername_callback(g->ctx[0], sni_cb);
    SSL_CTX_set_tlsext_servername_arg(g->ctx[0], g);
    sv_tls_opts_free(&o);
    return g;
}

int sv_tls_check(const char *uri, char *err, size_t errlen)
{
    gen_t *g = build_gen(uri, err, errlen);
    if (!g)
        return SV_ECONFIG;
    gen_free(g);
    return 0;
}

sv_tls_t *sv_tls_new(const char *uri, char *err, size_t errlen)
{
    sv_tls_t *t = calloc(1, sizeof(*t));
    if (!t || !(t->uri = strdup(uri))) {
        free(t);
        fail(err, errlen, "%s: out of memory", uri);
        return NULL;
    }
    t->cur = build_gen(uri, err, errlen);
    if (!t->cur) {
        free(t->uri);
        free(t);
        return NULL;
    }
    pthread_mutex_init(&t->mu, NULL);
    return t;
}

void sv_tls_free(sv_tls_t *t)
{
    if (!t)
        return;
    gen_free(t->cur);
    while (t->retired) {
        gen_t *g = t->retired;
        t->retired = g->next_retired;
        gen_free(g);
    }
    pthread_mutex_destroy(&t->mu);
    free(t->uri);
    free(t);
}

void sv_tls_listener_ready(sv_tls_t *t, int fd)
{
    int one = 1;
    if (t && fd >= 0 && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0)
        atomic_store(&t->nodelay, true);
}

bool sv_tls_nodelay_inherited(const sv_tls_t *t)
{
    return t && atomic_load_explicit(&t->nodelay, memory_order_relaxed);
}

int64_t sv_tls_not_after(const sv_tls_t *t)
{
    return t && t->cur ? t->cur->not_after : 0;
}

/* Put g in place of the current contexts; the old ones go when no handshake can still use them. */
static void install(sv_tls_t *t, gen_t *g)
{
    int64_t now = sv_now_ms();
    pthread_mutex_lock(&t->mu);
    gen_t *old = t->cur;
    t->cur = g;
    old->retired_ms = now;
    old->next_retired = t->retired;
    t->retired = old;
    /* free generations retired long ago: their handshakes are over (first_data_timeout) */
    for (gen_t **pp = &t->retired; *pp;) {
        gen_t *r = *pp;
        if (now - r->retired_ms > RETIRE_MS) {
            *pp = r->next_retired;
            gen_free(r);
        } else {
            pp = &r->next_retired;
        }
    }
    pthread_mutex_unlock(&t->mu);
}

static int reload_local(sv_tls_t **tls, int n, char *err, size_t errlen)
{
    gen_t *fresh[64] = {0};
    if (n > 64)
        n = 64;
    for (int i = 0; i < n; i++) {
        fresh[i] = build_gen(tls[i]->uri, err, errlen);
        if (!fresh[i]) {
            for (int k = 0; k < i; k++)
                gen_free(fresh[k]);
            return SV_ECONFIG;
        }
    }
    for (int i = 0; i < n; i++)
        install(tls[i], fresh[i]);
    return 0;
}

int sv_tls_reload_all(sv_tls_t **tls, int n, char *err, size_t errlen)
{
    if (n == 0) {
        snprintf(err, errlen, "no ssl:// listener");
        return SV_ESTATE;
    }
    int rc = reload_local(tls, n, err, errlen);
    if (rc < 0) {
        count(CTR_RELOAD_FAILURES);
        return rc;
    }
    count(CTR_RELOADS);
    if (g_shared)
        g_seen_gen = atomic_fetch_add(&g_shared->cert_gen, 1) + 1;
    return 0;
}

void sv_tls_refresh(sv_tls_t **tls, int n)
{
    if (!g_shared || n == 0)
        return;
    static uint64_t failed_gen;
    static int64_t retry_ms;
    uint64_t gen = atomic_load(&g_shared->cert_gen);
    int64_t now = sv_now_ms();
    if (gen == g_seen_gen || (gen == failed_gen && now < retry_ms))
        return;
    char err[600];
    if (reload_local(tls, n, err, sizeof(err)) < 0) {
        /* the files changed again since the master checked them: keep the old ones, retry */
        if (gen != failed_gen)
            sv_log_error("! TLS: cannot reload the certificates, keeping the old ones (retrying every %d s): %s",
                         REFRESH_RETRY_MS / 1000, err);
        failed_gen = gen;
        retry_ms = now + REFRESH_RETRY_MS;
        return;
    }
    g_seen_gen = gen;
}

/* ---- stats ------------------------------------------------------------------ */

void sv_tls_stats_json(sv_json_t *w, sv_tls_t **tls, int n)
{
    sv_json_obj(w);
    for (int i = 0; i < CTR_COUNT; i++) {
        sv_json_key(w, ctr_names[i]);
        sv_json_uint(w, g_shared ? atomic_load(&g_shared->ctr[i]) : 0);
    }
    sv_json_key(w, "ticket_key_rotated_at");
    sv_json_int(w, g_shared ? atomic_load(&g_shared->rotated_wall_ms) / 1000 : 0);
    sv_json_key(w, "listeners");
    sv_json_arr(w);
    for (int i = 0; i < n; i++) {
        sv_json_obj(w);
        sv_json_key(w, "certificate_not_after");
        sv_json_int(w, sv_tls_not_after(tls[i]));
        sv_json_key(w, "certificates");
        sv_json_int(w, tls[i]->cur ? tls[i]->cur->n : 0);
        sv_json_obj_end(w);
    }
    sv_json_arr_end(w);
    sv_json_obj_end(w);
}

void sv_tls_metrics(sv_buf_t *out, sv_tls_t **tls, int n)
{
    static const char *const help[CTR_COUNT] = {
        "TLS handshakes completed (full and resumed)",
        "TLS handshakes that resumed a session (ticket)",
        "TLS handshakes refused: protocol version or no shared cipher",
        "TLS handshakes refused: client certificate missing or not trusted",
        "plain HTTP sent to a TLS listener",
        "TLS connections closed before the handshake finished (client gone or handshake timeout)",
        "TLS handshakes failed for another reason",
        "certificate reloads that succeeded",
        "certificate reloads refused (the old certificates kept serving)",
        "session ticket key rotations",
    };
    for (int i = 0; i < CTR_COUNT; i++) {
        sv_buf_printf(out, "# HELP serval_tls_%s_total %s\n# TYPE serval_tls_%s_total counter\n", ctr_names[i],
                      help[i], ctr_names[i]);
        sv_buf_printf(out, "serval_tls_%s_total %llu\n", ctr_names[i],
                      (unsigned long long)(g_shared ? atomic_load(&g_shared->ctr[i]) : 0));
    }
    sv_buf_puts(out, "# HELP serval_tls_certificate_not_after_seconds earliest expiry of a listener's certificates\n"
                     "# TYPE serval_tls_certificate_not_after_seconds gauge\n");
    for (int i = 0; i < n; i++)
        sv_buf_printf(out, "serval_tls_certificate_not_after_seconds{listener=\"%d\"} %lld\n", i,
                      (long long)sv_tls_not_after(tls[i]));
}

/* ---- connections ------------------------------------------------------------ */

#define F_DONE 1u   /* handshake finished and counted */
#define F_FAILED 2u /* failure counted */

static uintptr_t flags_of(SSL *ssl)
{
    return (uintptr_t)SSL_get_app_data(ssl);
}

static void set_flag(SSL *ssl, uintptr_t f)
{
    SSL_set_app_data(ssl, (void *)(flags_of(ssl) | f));
}

/*
 * The socket BIO of a server connection. OpenSSL's own reads the socket
 * until it says EAGAIN: one more recv per request and per handshake flight
 * than serving plain HTTP, which stops at a short read. This one does what
 * the plain path does: a recv that comes back short (or EAGAIN) sets the
 * connection's drained flag, and while that flag is set (until an event
 * clears it) a read says "would block" without a system call. The edge that
 * new bytes raise after that short read is what brings the connection back,
 * as for plain HTTP. Writes are send(MSG_NOSIGNAL).
 *
 * It also saves a write per handshake. What TLS writes while a read runs
 * (the socket BIO would send it at once) is held here first. When that read
 * ends on TLS 1.3 with the handshake done (request bytes, or waiting for
 * them), what it wrote can only be post-handshake messages (the session
 * ticket that follows the client's Finished, a KeyUpdate answer), which a
 * client never waits for (HTTP: the client speaks first): they stay held and
 * go out in the same send as the next write, the response (or a
 * close_notify). Every other read sends what it held before it returns (a
 * handshake flight before waiting for the client's next one, an alert).
 */
#define HELD_MAX 1024

typedef struct sock {
    int fd;
    bool eof;
    bool cork;     /* a read runs: hold what it writes */
    bool defer;    /* what is held may wait for the next write (post-handshake messages) */
    bool *drained; /* the connection's flag: set here, cleared by the caller when an event comes (or NULL) */
    size_t held_len;
    unsigned char *held; /* HELD_MAX bytes, while something is held */
} sock_t;

static BIO_METHOD *g_sock_method;
static int g_sock_type;
static pthread_once_t g_sock_once = PTHREAD_ONCE_INIT;

/* Send what is held, then in (if any), in one system call: bytes of in sent, or -1 (errno; EAGAIN: retry). */
static ssize_t send_held(sock_t *s, const void *in, size_t inl)
{
    struct iovec iov[2] = {{s->held, s->held_len}, {(void *)in, inl}};
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = inl ? 2 : 1};
    ssize_t n;
    do {
        n = sendmsg(s->fd, &m, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -1;
    if ((size_t)n < s->held_len) {
        memmove(s->held, s->held + n, s->held_len - (size_t)n);
        s->held_len -= (size_t)n;
        errno = EAGAIN;
        return -1;
    }
    n -= (ssize_t)s->held_len;
    s->held_len = 0;
    free(s->held);
    s->held = NULL;
    if (n == 0 && inl) {
        errno = EAGAIN; /* the socket filled up right at the end of what was held */
        return -1;
    }
    return n;
}

static int sock_read(BIO *b, char *out, int outl)
{
    sock_t *s = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (s->drained && *s->drained) {
        BIO_set_retry_read(b);
        return -1;
    }
    ssize_t n;
    do {
        n = recv(s->fd, out, (size_t)outl, 0);
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
        if (n < outl && s->drained)
            *s->drained = true;
        return (int)n;
    }
    if (n == 0) {
        s->eof = true;
        return 0;
    }
    if (errno == EAGAIN) {
        if (s->drained)
            *s->drained = true;
        BIO_set_retry_read(b);
    }
    return -1;
}

static int sock_write(BIO *b, const char *in, int inl)
{
    sock_t *s = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (s->cork && s->held_len + (size_t)inl <= HELD_MAX) {
        if (!s->held && !(s->held = malloc(HELD_MAX)))
            return -1;
        memcpy(s->held + s->held_len, in, (size_t)inl);
        s->held_len += (size_t)inl;
        return inl;
    }
    ssize_t n;
    if (s->held_len) {
        n = send_held(s, in, (size_t)inl);
    } else {
        do {
            n = send(s->fd, in, (size_t)inl, MSG_NOSIGNAL);
        } while (n < 0 && errno == EINTR);
    }
    if (n < 0 && errno == EAGAIN)
        BIO_set_retry_write(b);
    return n < 0 ? -1 : (int)n;
}

static long sock_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    sock_t *s = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH: return 1;
    case BIO_CTRL_EOF: return s && s->eof; /* "unexpected EOF" is told from a reset this way */
    case BIO_C_GET_FD:
        if (ptr && s)
            *(int *)ptr = s->fd;
        return s ? s->fd : -1;
    default: return 0;
    }
}

static int sock_destroy(BIO *b)
{
    sock_t *s = BIO_get_data(b);
    if (s)
        free(s->held);
    free(s);
    BIO_set_data(b, NULL);
    return 1;
}

static void sock_method_init(void)
{
    int type = BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR;
    BIO_METHOD *m = BIO_meth_new(type, "serval socket");
    if (m && BIO_meth_set_read(m, sock_read) == 1 && BIO_meth_set_write(m, sock_write) == 1 &&
        BIO_meth_set_ctrl(m, sock_ctrl) == 1 && BIO_meth_set_destroy(m, sock_destroy) == 1) {
        g_sock_method = m;
        g_sock_type = type;
        return;
    }
    BIO_meth_free(m);
}

/* The connection's sock_t, or NULL when its BIO is not ours (servalctl's client side). */
static sock_t *sock_of(SSL *ssl)
{
    BIO *b = SSL_get_wbio(ssl);
    return b && g_sock_method && BIO_method_type(b) == g_sock_type ? BIO_get_data(b) : NULL;
}

/* Send what a read held: 1 all out (or nothing held), 0 some left (wait to write), <0 error. */
static int flush_held(sock_t *s)
{
    if (!s || !s->held_len)
        return 1;
    if (send_held(s, NULL, 0) == 0)
        return 1;
    return errno == EAGAIN ? 0 : -(errno ? errno : EPIPE);
}

static BIO *sock_bio(int fd, bool *drained)
{
    pthread_once(&g_sock_once, sock_method_init);
    sock_t *s = g_sock_method ? malloc(sizeof(*s)) : NULL;
    BIO *b = s ? BIO_new(g_sock_method) : NULL;
    if (!b) {
        free(s);
        return NULL;
    }
    *s = (sock_t){.fd = fd, .drained = drained};
    BIO_set_data(b, s);
    BIO_set_init(b, 1);
    return b;
}

void *sv_tls_conn_new(sv_tls_t *t, int fd, bool *drained)
{
    pthread_mutex_lock(&t->mu);
    SSL *ssl = SSL_new(t->cur->ctx[0]);
    pthread_mutex_unlock(&t->mu);
    if (!ssl)
        return NULL;
    BIO *b = sock_bio(fd, drained);
    if (!b) {
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_bio(ssl, b, b); /* the SSL object owns it now */
    SSL_set_accept_state(ssl);
    return ssl;
}

bool sv_tls_drained(void *p, const bool *drained)
{
    return *drained && SSL_has_pending(p) != 1;
}

static void note_done(SSL *ssl)
{
    if ((flags_of(ssl) & F_DONE) || !SSL_is_init_finished(ssl))
        return;
    set_flag(ssl, F_DONE);
    count(CTR_HANDSHAKES);
    if (SSL_session_reused(ssl))
        count(CTR_RESUMED);
}

static void note_failure(SSL *ssl)
{
    unsigned long e = ERR_peek_error();
    if (!(flags_of(ssl) & (F_DONE | F_FAILED))) {
        int r = ERR_GET_REASON(e);
        int which = CTR_FAIL_OTHER;
        switch (r) {
        case SSL_R_UNSUPPORTED_PROTOCOL:
        case SSL_R_WRONG_VERSION_NUMBER:
        case SSL_R_NO_SHARED_CIPHER:
        case SSL_R_NO_PROTOCOLS_AVAILABLE:
        case SSL_R_VERSION_TOO_LOW:
        case SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM:
        case SSL_R_NO_SHARED_GROUPS:
        case SSL_R_NO_SUITABLE_KEY_SHARE: which = CTR_FAIL_PROTOCOL; break;
        case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
        case SSL_R_CERTIFICATE_VERIFY_FAILED: which = CTR_FAIL_CERT; break;
        case SSL_R_HTTP_REQUEST:
        case SSL_R_HTTPS_PROXY_REQUEST: which = CTR_FAIL_PLAIN_HTTP; break;
        default: break;
        }
        set_flag(ssl, F_FAILED);
        count(which);
        if (which == CTR_FAIL_PLAIN_HTTP) {
            /* say so in plain HTTP, as nginx does, rather than just hanging up */
            static const char msg[] = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 45\r\n"
                                      "Connection: close\r\n\r\nThis port speaks HTTPS: use an https:// URL.\n";
            int fd = SSL_get_fd(ssl);
            (void)!send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            /* drop the rest of the request already here, or the close would reset the answer */
            char sink[4096];
            for (int k = 0; k < 16 && recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0; k++) {
            }
        }
    }
    ERR_clear_error();
}

ssize_t sv_tls_recv(void *p, void *buf, size_t len, bool *want_out)
{
    SSL *ssl = p;
    sock_t *s = sock_of(ssl);
    if (s && s->held_len && !s->defer) {
        int f = flush_held(s); /* the rest of a flight that did not fit in the socket: out first */
        if (f < 0)
            return f;
        if (f == 0) {
            *want_out = true;
            return -EAGAIN;
        }
    }
    if (s)
        s->cork = true;
    int n = SSL_read(ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
    int e = n > 0 ? SSL_ERROR_NONE : SSL_get_error(ssl, n);
    int read_errno = errno;
    if (s) {
        s->cork = false;
        s->defer = (e == SSL_ERROR_NONE || e == SSL_ERROR_WANT_READ) && SSL_is_init_finished(ssl) &&
                   SSL_version(ssl) == TLS1_3_VERSION;
        if (s->held_len && !s->defer) {
            int f = flush_held(s);
            if (f == 0)
                *want_out = true;
            else if (f < 0 && n > 0)
                return f;
        }
        errno = read_errno;
    }
    if (n > 0) {
        note_done(ssl);
        return n;
    }
    switch (e) {
    case SSL_ERROR_WANT_READ:
        note_done(ssl);
        return -EAGAIN;
    case SSL_ERROR_WANT_WRITE:
        note_done(ssl);
        *want_out = true;
        return -EAGAIN;
    case SSL_ERROR_ZERO_RETURN: note_done(ssl); return 0; /* a handshake may finish with the client's close */
    case SSL_ERROR_SYSCALL: {
        int err = errno;
        note_done(ssl);
        ERR_clear_error();
        return err == EAGAIN ? -EAGAIN : err ? -err : 0;
    }
    default:
        note_done(ssl); /* an error after a finished handshake is not a handshake failure */
        note_failure(ssl);
        return -EPROTO;
    }
}

ssize_t sv_tls_send(void *p, const void *buf, size_t len, bool *want_out)
{
    SSL *ssl = p;
    int n = SSL_write(ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
    if (n > 0)
        return n;
    int e = SSL_get_error(ssl, n);
    switch (e) {
    case SSL_ERROR_WANT_WRITE: *want_out = true; return -EAGAIN;
    case SSL_ERROR_WANT_READ: return -EAGAIN;
    case SSL_ERROR_SYSCALL: {
        int err = errno;
        ERR_clear_error();
        return err == EAGAIN ? -EAGAIN : err ? -err : -EPIPE;
    }
    default: ERR_clear_error(); return -EPIPE;
    }
}

bool sv_tls_pending(void *p)
{
    return SSL_has_pending(p) == 1;
}

void sv_tls_conn_shutdown(void *p)
{
    SSL *ssl = p;
    if (SSL_is_init_finished(ssl) && !(SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN)) {
        SSL_shutdown(ssl); /* a non-blocking socket: sends what it can, never waits */
        ERR_clear_error();
    }
}

void *sv_tls_client_new(int fd)
{
    static SSL_CTX *cctx; /* servalctl is single-threaded and short-lived */
    if (!cctx) {
        cctx = SSL_CTX_new(TLS_client_method());
        if (!cctx)
            return NULL;
        SSL_CTX_set_min_proto_version(cctx, TLS1_2_VERSION);
        SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL);
        SSL_CTX_set_mode(cctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    }
    SSL *ssl = SSL_new(cctx);
    if (!ssl)
        return NULL;
    if (SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_connect_state(ssl);
    set_flag(ssl, F_DONE); /* not a server handshake: nothing to count */
    return ssl;
}

void sv_tls_conn_free(void *p)
{
    SSL *ssl = p;
    if (!ssl)
        return;
    if (!(flags_of(ssl) & (F_DONE | F_FAILED)))
        count(CTR_FAIL_INCOMPLETE);
    SSL_free(ssl);
}
