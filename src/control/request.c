/* request.c: parsing and judging one control request without a socket (request.h); fuzzed. */
#include "control/request.h"

#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

static bool is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Constant-time comparison: the time taken does not depend on where they differ. */
static bool token_equal(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    unsigned char diff = (unsigned char)(alen != blen);
    for (size_t i = 0; i < blen; i++)
        diff |= (unsigned char)((i < alen ? a[i] : 0) ^ b[i]);
    return diff == 0;
}

/* Puma accepts the token among other parameters, separated by & or ;. */
static bool authorized(const char *token, const char *q, size_t qlen)
{
    bool ok = false;
    for (size_t i = 0; i < qlen;) {
        size_t n = 0;
        while (i + n < qlen && q[i + n] != '&' && q[i + n] != ';')
            n++;
        if (n > 6 && !strncmp(q + i, "token=", 6))
            ok |= token_equal(q + i + 6, n - 6, token);
        i += n + 1;
    }
    return ok;
}

static bool ip_literal(const char *h, size_t n, bool bracketed)
{
    char buf[64];
    unsigned char addr[16];
    if (n == 0 || n >= sizeof(buf))
        return false;
    memcpy(buf, h, n);
    buf[n] = '\0';
    return inet_pton(bracketed ? AF_INET6 : AF_INET, buf, addr) == 1;
}

bool sv_control_host_ok(const char *v, size_t n, int port)
{
    const char *host = v, *rest;
    size_t hlen;
    bool ok;
    if (n && v[0] == '[') {
        const char *close = memchr(v, ']', n);
        if (!close)
            return false;
        host = v + 1;
        hlen = (size_t)(close - host);
        ok = ip_literal(host, hlen, true);
        rest = close + 1;
    } else {
        const char *colon = memchr(v, ':', n);
        hlen = colon ? (size_t)(colon - v) : n;
        ok = ip_literal(host, hlen, false) || (hlen == 9 && !strncasecmp(host, "localhost", 9));
        rest = v + hlen;
    }
    size_t left = n - (size_t)(rest - v);
    if (!ok || left == 0)
        return ok;
    if (rest[0] != ':' || left < 2 || left > 6)
        return false;
    int p = 0;
    for (size_t i = 1; i < left; i++) {
        if (rest[i] < '0' || rest[i] > '9')
            return false;
        p = p * 10 + (rest[i] - '0');
    }
    return port <= 0 || p == port;
}

/* An Origin "http://HOST[:PORT]" naming this server; "null" and anything else are foreign. */
static bool origin_ok(const char *v, size_t n, int port)
{
    if (n < 7 || strncasecmp(v, "http://", 7) != 0)
        return false;
    return sv_control_host_ok(v + 7, n - 7, port);
}

static int fail(sv_control_req_t *r, int status, const char *why)
{
    r->status = status;
    r->why = why;
    return 1;
}

/* Value of a header line, OWS trimmed; false on a control byte. */
static bool header_value(const char *v, size_t n, const char **out, size_t *outlen)
{
    while (n && (*v == ' ' || *v == '\t'))
        v++, n--;
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)v[i] < 0x20 && v[i] != '\t') || v[i] == 0x7f)
            return false;
    *out = v;
    *outlen = n;
    return true;
}

typedef struct head {
    const char *host, *origin;
    size_t host_len, origin_len;
} head_t;

/* Header lines in[from..end) (each ending in CRLF); 0 or an error status with r filled. */
static int parse_headers(const char *in, size_t from, size_t end, head_t *h, sv_control_req_t *r)
{
    for (size_t i = from; i < end;) {
        const char *line = in + i;
        const char *crlf = memchr(line, '\r', end - i);
        if (!crlf || crlf[1] != '\n')
            return fail(r, 400, "Bad Request"); /* a CR that does not end the line */
        size_t n = (size_t)(crlf - line);
        size_t name = 0;
        while (name < n && is_tchar((unsigned char)line[name]))
            name++;
        if (name == 0 || name == n || line[name] != ':')
            return fail(r, 400, "Bad Request");
        const char *v;
        size_t vlen;
        if (!header_value(line + name + 1, n - name - 1, &v, &vlen))
            return fail(r, 400, "Bad Request");
        if (name == 4 && !strncasecmp(line, "Host", 4)) {
            if (h->host)
                return fail(r, 400, "Bad Request");
            h->host = v, h->host_len = vlen;
        } else if (name == 6 && !strncasecmp(line, "Origin", 6)) {
            if (h->origin)
                return fail(r, 400, "Bad Request");
            h->origin = v, h->origin_len = vlen;
        } else if (name == 17 && !strncasecmp(line, "Transfer-Encoding", 17)) {
            return fail(r, 400, "Bad Request");
        } else if (name == 14 && !strncasecmp(line, "Content-Length", 14) && !(vlen == 1 && v[0] == '0')) {
            return fail(r, 400, "Bad Request");
        }
        i += n + 2;
    }
    return 0;
}

/* "GET /target HTTP/1.x" in in[0..n); 0 or an error status with r filled. */
static int parse_request_line(const char *in, size_t n, sv_control_req_t *r)
{
    size_t m = 0;
    while (m < n && is_tchar((unsigned char)in[m]))
        m++;
    if (m == 0 || m == n || in[m] != ' ')
        return fail(r, 400, "Bad Request");
    size_t t = m + 1, te = t;
    while (te < n && (unsigned char)in[te] > 0x20 && (unsigned char)in[te] < 0x7f)
        te++;
    if (te == t || in[t] != '/' || te == n || in[te] != ' ')
        return fail(r, 400, "Bad Request");
    const char *ver = in + te + 1;
    size_t vlen = n - te - 1;
    if (vlen != 8 || (strncmp(ver, "HTTP/1.1", 8) != 0 && strncmp(ver, "HTTP/1.0", 8) != 0))
        return fail(r, 400, "Bad Request");
    r->http10 = ver[7] == '0';
    r->target_off = t;
    r->target_len = te - t;
    if (m != 3 || strncmp(in, "GET", 3) != 0)
        return fail(r, 405, "Method Not Allowed");
    return 0;
}

static size_t find_head_end(const char *in, size_t len, bool *bare_lf)
{
    *bare_lf = false;
    for (size_t i = 0; i < len; i++) {
        if (in[i] != '\n')
            continue;
        if (i == 0 || in[i - 1] != '\r') {
            *bare_lf = true;
            return 0;
        }
        if (i >= 3 && in[i - 2] == '\n' && in[i - 3] == '\r')
            return i + 1;
    }
    return 0;
}

int sv_control_request(const sv_control_policy_t *p, const char *in, size_t len, sv_control_req_t *r)
{
    memset(r, 0, sizeof(*r));
    r->http10 = true;
    bool bare_lf;
    size_t end = find_head_end(in, len, &bare_lf);
    if (bare_lf)
        return fail(r, 400, "Bad Request");
    if (!end)
        return 0;
    if (memchr(in, '\0', end))
        return fail(r, 400, "Bad Request");
    const char *eol = memchr(in, '\r', end);
    size_t line_len = (size_t)(eol - in); /* end > 0 guarantees a CRLF */
    if (eol[1] != '\n')
        return fail(r, 400, "Bad Request");
    if (parse_request_line(in, line_len, r))
        return 1;
    head_t h = {0};
    if (parse_headers(in, line_len + 2, end - 2, &h, r))
        return 1;
    if (p->check_origin && ((h.host && !sv_control_host_ok(h.host, h.host_len, p->port)) ||
                            (h.origin && !origin_ok(h.origin, h.origin_len, p->port)))) {
        r->foreign = true;
        return fail(r, 403, "Forbidden: Host or Origin is not this control server (a server without a token "
                            "answers only requests naming it by IP address or localhost)");
    }
    const char *target = in + r->target_off;
    const char *q = memchr(target, '?', r->target_len);
    size_t path_len = q ? (size_t)(q - target) : r->target_len;
    if (q) {
        r->query_off = r->target_off + path_len + 1;
        r->query_len = r->target_len - path_len - 1;
    }
    if (p->token && p->token[0] && !authorized(p->token, in + r->query_off, r->query_len)) {
        r->auth_failed = true;
        return fail(r, 403, "Invalid auth token");
    }
    char path[64];
    const sv_command_t *cmd = NULL;
    if (path_len < sizeof(path)) {
        memcpy(path, target, path_len);
        path[path_len] = '\0';
        cmd = sv_command_by_path(path);
    }
    if (!cmd)
        return fail(r, 404, "Unsupported action");
    if (p->data_only && !sv_command_read_only(cmd->cmd)) {
        r->read_only_refused = cmd;
        return fail(r, 404, "not available on a read-only (data_only) control server");
    }
    r->cmd = cmd;
    return 1;
}
