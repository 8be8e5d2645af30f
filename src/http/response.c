/*
 * response.c: response framing and serialisation on buffers (response.h).
 */
#include "http/response.h"

#include <errno.h>
#include <llhttp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http/parser.h"

bool sv_http_status_bodiless(int status)
{
    return status < 200 || status == 204 || status == 304;
}

sv_http_framing_t sv_http_res_framing(uint8_t method, uint8_t minor, int status, int64_t content_length)
{
    sv_http_framing_t f = {0};
    bool head = method == HTTP_HEAD;
    if (sv_http_status_bodiless(status))
        return f; /* RFC 9110 8.6, RFC 9112 6.1: neither length nor coding */
    if (content_length >= 0) {
        f.length_header = true;
        f.send_body = !head && content_length > 0;
        return f;
    }
    if (minor >= 1) {
        /* a HEAD answer announces what a GET would get, and sends no chunk */
        f.te_header = true;
        f.chunked = !head;
        f.send_body = !head;
    } else if (!head) {
        f.send_body = true;
        f.close_delimited = true;
    }
    return f;
}

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

static char *put_int(char *p, int64_t v)
{
    char tmp[24];
    int n = 0;
    uint64_t u = v < 0 ? 0 : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    while (n)
        *p++ = tmp[--n];
    return p;
}

int sv_http_write_head(sv_buf_t *out, const sv_http_res_head_t *h, const sv_http_framing_t *f)
{
    const char *reason = sv_http_reason(h->status);
    size_t rlen = strlen(reason);
    int rc = sv_buf_reserve(out, 160 + rlen + h->headers_len);
    if (rc < 0)
        return rc;
    char *p = out->data + out->len;
    p = put(p, "HTTP/1.1 ", 9);
    p = put_int(p, h->status);
    *p++ = ' ';
    p = put(p, reason, rlen);
    p = put(p, "\r\n", 2);
    if (h->headers_len)
        p = put(p, h->headers, h->headers_len);
    if (f->length_header) {
        p = put(p, "Content-Length: ", 16);
        p = put_int(p, h->content_length);
        p = put(p, "\r\n", 2);
    } else if (f->te_header) {
        p = put(p, "Transfer-Encoding: chunked\r\n", 28);
    }
    p = put(p, "Date: ", 6);
    p = put(p, h->date, 29);
    if (h->close || f->close_delimited)
        p = put(p, "\r\nConnection: close\r\n\r\n", 23);
    else if (h->minor == 0)
        p = put(p, "\r\nConnection: keep-alive\r\n\r\n", 28);
    else
        p = put(p, "\r\n\r\n", 4);
    out->len = (size_t)(p - out->data);
    out->data[out->len] = '\0';
    return 0;
}

int sv_http_write_error(sv_buf_t *out, int status, const char *date)
{
    const char *text = sv_http_reason(status);
    return sv_buf_printf(out,
                         "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                         "Date: %.29s\r\nConnection: close\r\n\r\n%s\n",
                         status, text, strlen(text) + 1, date, text);
}

int sv_http_write_continue(sv_buf_t *out)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    return sv_buf_append(out, cont, sizeof(cont) - 1);
}

int sv_http_write_chunk(sv_buf_t *out, const void *data, size_t len)
{
    if (len == 0)
        return 0; /* an empty chunk would end the body */
    int rc = sv_buf_reserve(out, len + 24);
    if (rc < 0)
        return rc;
    char size[20];
    int n = snprintf(size, sizeof(size), "%zx\r\n", len);
    sv_buf_append(out, size, (size_t)n);
    sv_buf_append(out, data, len);
    return sv_buf_append(out, "\r\n", 2);
}

int sv_http_write_last_chunk(sv_buf_t *out)
{
    return sv_buf_append(out, "0\r\n\r\n", 5);
}

bool sv_http_keep_alive(bool req_keep_alive, bool req_upgrade, bool server_close)
{
    return req_keep_alive && !req_upgrade && !server_close;
}

/*
 * Character classes as switches, not strchr over a set: they run for every
 * byte of every Host header and response field (the compiler turns the
 * cases into a bit test).
 */
static bool alnum_char(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

static bool token_char(unsigned char ch)
{
    if (ch <= 32 || ch >= 127)
        return false;
    switch (ch) {
    case '"': case '(': case ')': case ',': case '/': case ':': case ';': case '<':
    case '=': case '>': case '?': case '@': case '[': case '\\': case ']': case '{': case '}':
        return false;
    default:
        return true;
    }
}

bool sv_http_field_name_ok(const char *name)
{
    if (!*name)
        return false;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (!token_char(*p))
            return false;
    return true;
}

bool sv_http_field_value_ok(const char *value)
{
    for (const unsigned char *p = (const unsigned char *)value; *p; p++)
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
            return false;
    return true;
}

bool sv_http_field_reserved(const char *name)
{
    return !strcasecmp(name, "content-length") || !strcasecmp(name, "transfer-encoding") ||
           !strcasecmp(name, "connection") || !strcasecmp(name, "date");
}

/* unreserved, pct-encoded ('%' and hex digits) and sub-delims */
static bool reg_name_char(unsigned char ch)
{
    if (alnum_char(ch))
        return true;
    switch (ch) {
    case '-': case '.': case '_': case '~': case '%': case '!': case '$': case '&':
    case '\'': case '(': case ')': case '*': case '+': case ',': case ';': case '=':
        return true;
    default:
        return false;
    }
}

/* what may stand between [ and ]: a reg-name's characters and ':' */
static bool ip_literal_char(unsigned char ch)
{
    return ch == ':' || reg_name_char(ch);
}

bool sv_http_host_ok(const char *s, size_t len)
{
    size_t i = 0;
    if (len > 0 && s[0] == '[') {
        for (i = 1; i < len && s[i] != ']'; i++)
            if (!ip_literal_char((unsigned char)s[i]))
                return false;
        if (i == len || i == 1)
            return false;
        i++;
    } else {
        while (i < len && s[i] != ':')
            if (!reg_name_char((unsigned char)s[i++]))
                return false;
    }
    if (i == len)
        return true;
    if (s[i] != ':')
        return false;
    for (i++; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}
