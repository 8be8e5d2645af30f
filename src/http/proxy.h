/*
 * proxy.h: who the client really is behind a proxy. No sockets: bytes in,
 * an address out, so it can be unit-tested and fuzzed.
 *
 * - The PROXY protocol (HAProxy's, versions 1 and 2): a header a load
 *   balancer sends before the first request of a connection, naming the
 *   client it accepted. sv_proxy_parse() reads it off the front of the
 *   connection's input.
 * - X-Forwarded-For from trusted proxies: sv_xff_client() picks the client
 *   out of the header's list, walking it from the right and skipping the
 *   addresses of proxies the operator trusts (the rightmost untrusted entry
 *   is the first one a trusted proxy saw, so it cannot be forged by the
 *   client; entries left of it can).
 *
 * Addresses come out in serval_request_peer()'s format: "203.0.113.7:4242",
 * "[2001:db8::1]:4242", or without ":port" when the source gives none
 * (X-Forwarded-For).
 */
#ifndef SV_HTTP_PROXY_H
#define SV_HTTP_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    SV_PROXY_V1 = 1, /* text: "PROXY TCP4 1.2.3.4 5.6.7.8 1111 80\r\n" */
    SV_PROXY_V2 = 2, /* binary, 16 bytes + addresses + TLVs */
};

/* The longest v1 header (spec: 107 bytes) and the v2 fixed part. */
#define SV_PROXY_V1_MAX 107
#define SV_PROXY_V2_HEAD 16

typedef struct sv_proxy_result {
    bool local;     /* LOCAL / UNKNOWN: the proxy's own connection (a health
                     * check); keep the socket's peer */
    char addr[64];  /* the client, when !local */
} sv_proxy_result_t;

/*
 * Parse a PROXY header at the front of buf, accepting the versions in the
 * mask (SV_PROXY_V1 | SV_PROXY_V2). Returns the header's length (> 0) when
 * a whole valid header is there, 0 when buf holds a valid prefix of one and
 * more bytes are needed, SV_EPROTO when it is not a header this accepts
 * (the connection must be closed: a request without the header the
 * operator said every connection carries is a misconfiguration or a forgery).
 */
long sv_proxy_parse(const void *buf, size_t len, int versions, sv_proxy_result_t *out);

/* An IPv4 or IPv6 network, "10.0.0.0/8", "::1", "fd00::/8". */
typedef struct sv_cidr {
    int family;        /* AF_INET or AF_INET6 */
    uint8_t addr[16];  /* network byte order; IPv4 in the first 4 bytes */
    uint8_t bits;
} sv_cidr_t;

/* Parse "ADDR" or "ADDR/BITS". 0, or SV_EPARSE. Host bits are cleared. */
int sv_cidr_parse(const char *s, sv_cidr_t *out);

/*
 * Whether the textual address ip ("1.2.3.4", "::1", "[::1]", with or
 * without ":port" after an IPv4 or a bracketed IPv6) is inside one of the
 * n networks. IPv4-mapped IPv6 addresses (::ffff:1.2.3.4) match IPv4 networks.
 */
bool sv_cidr_contains_text(const sv_cidr_t *nets, size_t n, const char *ip);

/*
 * From an X-Forwarded-For value (value, len: "client, proxy1, proxy2"),
 * the client: the rightmost entry that is not inside a trusted network, or
 * the leftmost when all are trusted. Written to out (cap bytes). Returns 0,
 * or SV_EPARSE when the value is empty or an entry it reaches is not an IP
 * address (the caller then keeps the socket's peer).
 */
int sv_xff_client(const char *value, size_t len, const sv_cidr_t *trusted, size_t ntrusted,
                  char *out, size_t cap);

/*
 * The networks whose forwarded-for headers are believed by default, as in
 * Rails (ActionDispatch::RemoteIp): loopback, the private ranges and
 * link-local. A proxy on a public address must be named in trusted_proxies.
 */
#define SV_TRUSTED_PROXIES_DEFAULT \
    "127.0.0.0/8,::1,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,169.254.0.0/16,fc00::/7,fe80::/10"
#define SV_TRUSTED_MAX 64

/*
 * Parse a list of networks separated by commas (and optional spaces) into
 * out (at most max). Returns 0 with *n set, or SV_EPARSE with the entry at
 * fault copied to bad (badcap bytes; bad may be NULL), or SV_ELIMIT when
 * there are more than max.
 */
int sv_trusted_parse(const char *list, sv_cidr_t *out, size_t max, size_t *n, char *bad, size_t badcap);

/*
 * set_remote_address as a serving process applies it (docs/proxy.md): who
 * serval_request_peer() and the request log say the client is.
 *  - value: a fixed address for every request (Puma's set_remote_address "1.2.3.4");
 *  - proxy_protocol: every connection starts with a PROXY header in one of
 *    these versions (SV_PROXY_V1 | SV_PROXY_V2); it names the client, or,
 *    LOCAL/UNKNOWN, leaves the socket's peer; a connection without one is closed;
 *  - header: when the peer (the socket's, or the PROXY header's) is inside
 *    trusted, the header's list is walked from the right past trusted hops
 *    (sv_xff_client); from any other peer the header is ignored. A unix
 *    socket peer is local and always trusted.
 */
typedef struct sv_remote {
    int proxy_protocol;
    char header[64];
    char value[64];
    sv_cidr_t trusted[SV_TRUSTED_MAX];
    size_t ntrusted;
} sv_remote_t;

#endif
