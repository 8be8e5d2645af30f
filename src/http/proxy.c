/*
 * proxy.c: the PROXY protocol (v1 and v2) and X-Forwarded-For, on bytes.
 * Formats: https://www.haproxy.org/download/2.6/doc/proxy-protocol.txt
 */
#include "http/proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "core/err.h"

static const unsigned char v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                         0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

static void format_addr(char *out, size_t cap, int family, const void *addr, unsigned port,
                        bool with_port)
{
    char ip[INET6_ADDRSTRLEN];
    inet_ntop(family, addr, ip, sizeof(ip));
    if (!with_port)
        snprintf(out, cap, "%s", ip);
    else if (family == AF_INET6)
        snprintf(out, cap, "[%s]:%u", ip, port);
    else
        snprintf(out, cap, "%s:%u", ip, port);
}

/* ---- v1 -------------------------------------------------------------------- */

/* A decimal port without sign or leading zero, 0..65535. */
static int parse_port(const char *s, unsigned *port)
{
    if (!*s || (s[0] == '0' && s[1]) || strlen(s) > 5)
        return SV_EPARSE;
    unsigned v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return SV_EPARSE;
        v = v * 10 + (unsigned)(*s - '0');
    }
    if (v > 65535)
        return SV_EPARSE;
    *port = v;
    return 0;
}

/* The header's line without "PROXY " and CRLF, NUL-terminated in line. */
static int parse_v1_line(char *line, sv_proxy_result_t *out)
{
    char *fields[6];
    int n = 0;
    for (char *p = line; n < 6;) {
        fields[n++] = p;
        char *sp = strchr(p, ' ');
        if (!sp)
            break;
        *sp = '\0';
        p = sp + 1;
    }
    if (n >= 1 && !strcmp(fields[0], "UNKNOWN")) {
        out->local = true;  /* the rest of the line, if any, is ignored by spec */
        return 0;
    }
    if (n != 5 || strchr(fields[4], ' '))
        return SV_EPROTO;
    int family;
    if (!strcmp(fields[0], "TCP4"))
        family = AF_INET;
    else if (!strcmp(fields[0], "TCP6"))
        family = AF_INET6;
    else
        return SV_EPROTO;
    unsigned char src[16], dst[16];
    unsigned sport, dport;
    if (inet_pton(family, fields[1], src) != 1 || inet_pton(family, fields[2], dst) != 1 ||
        parse_port(fields[3], &sport) < 0 || parse_port(fields[4], &dport) < 0)
        return SV_EPROTO;
    out->local = false;
    format_addr(out->addr, sizeof(out->addr), family, src, sport, true);
    return 0;
}

static long parse_v1(const char *buf, size_t len, sv_proxy_result_t *out)
{
    static const char magic[] = "PROXY ";
    size_t m = len < 6 ? len : 6;
    if (memcmp(buf, magic, m) != 0)
        return SV_EPROTO;
    size_t scan = len < SV_PROXY_V1_MAX ? len : SV_PROXY_V1_MAX;
    const char *cr = memchr(buf, '\r', scan);
    const char *lf = memchr(buf, '\n', cr ? (size_t)(cr - buf) : scan);
    if (lf)
        return SV_EPROTO;  /* a bare LF: the line must end in CRLF */
    if (!cr)
        return len < SV_PROXY_V1_MAX ? 0 : SV_EPROTO;
    size_t end = (size_t)(cr - buf);
    if (end + 1 >= len)
        return 0;  /* the LF has not arrived */
    if (buf[end + 1] != '\n' || end < 6)
        return SV_EPROTO;
    char line[SV_PROXY_V1_MAX + 1];
    memcpy(line, buf + 6, end - 6);
    line[end - 6] = '\0';
    if (memchr(line, '\n', end - 6) || memchr(line, '\0', end - 6))
        return SV_EPROTO;
    int rc = parse_v1_line(line, out);
    return rc < 0 ? rc : (long)(end + 2);
}

/* ---- v2 -------------------------------------------------------------------- */

static long parse_v2(const unsigned char *b, size_t len, sv_proxy_result_t *out)
{
    size_t m = len < sizeof(v2_sig) ? len : sizeof(v2_sig);
    if (memcmp(b, v2_sig, m) != 0)
        return SV_EPROTO;
    if (len < SV_PROXY_V2_HEAD)
        return 0;
    unsigned ver = b[12] >> 4, cmd = b[12] & 0x0F, fam = b[13];
    size_t body = ((size_t)b[14] << 8) | b[15];
    if (ver != 2 || cmd > 1)
        return SV_EPROTO;
    if (len < SV_PROXY_V2_HEAD + body)
        return 0;
    long total = (long)(SV_PROXY_V2_HEAD + body);
    const unsigned char *a = b + SV_PROXY_V2_HEAD;
    out->local = true;
    if (cmd == 0)  /* LOCAL: the proxy's own connection; addresses ignored */
        return total;
    switch (fam >> 4) {
    case 0x1:  /* AF_INET: src 4, dst 4, sport 2, dport 2 */
        if (body < 12)
            return SV_EPROTO;
        out->local = false;
        format_addr(out->addr, sizeof(out->addr), AF_INET, a, ((unsigned)a[8] << 8) | a[9],
                    true);
        return total;
    case 0x2:  /* AF_INET6: src 16, dst 16, sport 2, dport 2 */
        if (body < 36)
            return SV_EPROTO;
        out->local = false;
        format_addr(out->addr, sizeof(out->addr), AF_INET6, a, ((unsigned)a[32] << 8) | a[33],
                    true);
        return total;
    case 0x0:  /* AF_UNSPEC */
    case 0x3:  /* AF_UNIX: no address a client could be told by */
        return total;
    default:
        return SV_EPROTO;
    }
}

long sv_proxy_parse(const void *buf, size_t len, int versions, sv_proxy_result_t *out)
{
    const unsigned char *b = buf;
    out->local = true;
    out->addr[0] = '\0';
    if (len == 0)
        return 0;
    if ((versions & SV_PROXY_V2) && b[0] == v2_sig[0])
        return parse_v2(b, len, out);
    if ((versions & SV_PROXY_V1) && b[0] == 'P')
        return parse_v1(buf, len, out);
    return SV_EPROTO;
}

/* ---- networks and X-Forwarded-For ------------------------------------------ */

int sv_cidr_parse(const char *s, sv_cidr_t *out)
{
    char ip[INET6_ADDRSTRLEN + 1];
    const char *slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    if (n == 0 || n >= sizeof(ip))
        return SV_EPARSE;
    memcpy(ip, s, n);
    ip[n] = '\0';
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, ip, out->addr) == 1) {
        out->family = AF_INET;
        out->bits = 32;
    } else if (inet_pton(AF_INET6, ip, out->addr) == 1) {
        out->family = AF_INET6;
        out->bits = 128;
    } else {
        return SV_EPARSE;
    }
    if (slash) {
        unsigned bits;
        if (parse_port(slash + 1, &bits) < 0 || bits > out->bits)
            return SV_EPARSE;
        out->bits = (uint8_t)bits;
    }
    for (unsigned i = 0; i < 16; i++) {
        unsigned keep = out->bits > i * 8 ? out->bits - i * 8 : 0;
        if (keep < 8)
            out->addr[i] &= (uint8_t)(0xFF00u >> keep);
    }
    return 0;
}

static bool in_net(const sv_cidr_t *c, const uint8_t *addr)
{
    unsigned full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(c->addr, addr, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xFF00u >> rest);
    return (addr[full] & mask) == c->addr[full];
}

/* ip as text (see sv_cidr_contains_text) to family + bytes; false if not an IP. */
static bool text_to_addr(const char *ip, size_t n, int *family, uint8_t addr[16])
{
    char tmp[INET6_ADDRSTRLEN + 8];
    if (n == 0 || n >= sizeof(tmp))
        return false;
    memcpy(tmp, ip, n);
    tmp[n] = '\0';
    char *s = tmp;
    if (s[0] == '[') {  /* "[v6]" or "[v6]:port" */
        char *close = strchr(s, ']');
        if (!close || (close[1] && close[1] != ':'))
            return false;
        *close = '\0';
        s++;
    } else {
        char *colon = strchr(s, ':');
        if (colon && !strchr(colon + 1, ':'))  /* "v4:port": one colon */
            *colon = '\0';
    }
    memset(addr, 0, 16);
    if (inet_pton(AF_INET, s, addr) == 1) {
        *family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, s, addr) == 1) {
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
        if (!memcmp(addr, mapped, 12)) {
            memmove(addr, addr + 12, 4);
            memset(addr + 4, 0, 12);
            *family = AF_INET;
        } else {
            *family = AF_INET6;
        }
        return true;
    }
    return false;
}

static bool trusted_addr(const sv_cidr_t *nets, size_t n, int family, const uint8_t *addr)
{
    for (size_t i = 0; i < n; i++)
        if (nets[i].family == family && in_net(&nets[i], addr))
            return true;
    return false;
}

bool sv_cidr_contains_text(const sv_cidr_t *nets, size_t n, const char *ip)
{
    int family;
    uint8_t addr[16];
    return text_to_addr(ip, strlen(ip), &family, addr) && trusted_addr(nets, n, family, addr);
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

int sv_xff_client(const char *value, size_t len, const sv_cidr_t *trusted, size_t ntrusted,
                  char *out, size_t cap)
{
    size_t end = len;
    bool found = false;
    while (end > 0) {
        size_t start = end;
        while (start > 0 && value[start - 1] != ',')
            start--;
        size_t a = start, b = end;
        while (a < b && is_ows(value[a]))
            a++;
        while (b > a && is_ows(value[b - 1]))
            b--;
        int family;
        uint8_t addr[16];
        if (!text_to_addr(value + a, b - a, &family, addr))
            return found ? 0 : SV_EPARSE;  /* keep the last good entry, if any */
        format_addr(out, cap, family, addr, 0, false);
        found = true;
        if (!trusted_addr(trusted, ntrusted, family, addr))
            return 0;
        if (start == 0)
            break;
        end = start - 1;
    }
    return found ? 0 : SV_EPARSE;
}

int sv_trusted_parse(const char *list, sv_cidr_t *out, size_t max, size_t *n, char *bad, size_t badcap)
{
    *n = 0;
    for (const char *p = list; *p;) {
        p += strspn(p, ", \t");
        if (!*p)
            break;
        size_t len = strcspn(p, ", \t");
        char one[INET6_ADDRSTRLEN + 8];
        int rc = len < sizeof(one) ? 0 : SV_EPARSE;
        if (rc == 0 && *n >= max)
            rc = SV_ELIMIT;
        if (rc == 0) {
            snprintf(one, sizeof(one), "%.*s", (int)len, p);
            rc = sv_cidr_parse(one, &out[*n]);
        }
        if (rc < 0) {
            if (bad)
                snprintf(bad, badcap, "%.*s", (int)(len > 60 ? 60 : len), p);
            return rc;
        }
        (*n)++;
        p += len;
    }
    return 0;
}
