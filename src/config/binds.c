/*
 * binds.c: where serval listens. The bind, port and ssl_bind directives
 * (and -b/-p, PORT, Puma's clear_binds!) all end in one list of URIs in
 * sv_config_t; ssl_bind's options are written into its ssl:// URI, so a
 * TLS listener's settings travel with its socket through a hot restart.
 * A URI is checked here as it is added (os/listen.c parses it, tls/ reads
 * its TLS options); binding it is for preflight.c and the server.
 */
#include "config/internal.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/json.h"
#include "os/listen.h"
#include "tls/tls.h"

/* ---- the list ---------------------------------------------------------- */

void sv_cfg_clear_binds(sv_config_t *c)
{
    for (int i = 0; i < c->n_binds; i++) {
        free(c->binds[i]);
        c->binds[i] = NULL;
    }
    c->n_binds = 0;
}

int sv_config_bind_count(const sv_config_t *c)
{
    return c->n_binds > 0 ? c->n_binds : 1;
}

const char *sv_config_bind(const sv_config_t *c, int i)
{
    if (c->n_binds == 0)
        return i == 0 ? SV_CFG_DEFAULT_BIND : NULL;
    return i >= 0 && i < c->n_binds ? c->binds[i] : NULL;
}

/* ---- bind, port, ssl_bind --------------------------------------------- */

const char *sv_cfg_scheme_for(const char *addr)
{
    const char *colon = strrchr(addr, ':');
    if (strstr(addr, "://"))
        return NULL;
    if (addr[0] == '/' || addr[0] == '.')
        return "unix://";
    if (colon && colon[1] && colon[1 + strspn(colon + 1, "0123456789")] == '\0')
        return "tcp://";
    return NULL;
}

static int add_bind(sv_config_t *c, const char *uri, const sv_site_t *s)
{
    sv_bind_t b;
    char err[SV_DIAG_MAX / 2];
    if (sv_bind_parse(uri, &b, err, sizeof(err)) < 0) {
        const char *scheme = sv_cfg_scheme_for(uri);
        return scheme ? sv_cfg_fail(s, "%s (hint: \"%s%.80s\")", err, scheme, uri) : sv_cfg_fail(s, "%s", err);
    }
    if (b.ssl) {
        sv_tls_opts_t o;
        if (strlen(uri) > SV_TLS_URI_MAX)
            return sv_cfg_fail(s, "bind '%.80s...': longer than %d bytes (hint: shorter certificate paths, or a "
                                  "symlink to their directory)", uri, SV_TLS_URI_MAX);
        int rc = sv_tls_opts_parse(uri, &o, err, sizeof(err));
        if (rc == -ENOMEM)
            return sv_cfg_fail(s, "out of memory");
        if (rc < 0)
            return sv_cfg_fail(s, "%s", err);
        sv_tls_opts_free(&o);
    }
    for (int i = 0; i < c->n_binds; i++)
        if (!strcmp(c->binds[i], uri))
            return sv_cfg_fail(s, "bind '%s' is given twice (hint: keep one; port N is bind \"tcp://0.0.0.0:N\")",
                               uri);
    if (c->n_binds == SV_CONFIG_MAX_BINDS)
        return sv_cfg_fail(s, "too many binds (at most %d)", SV_CONFIG_MAX_BINDS);
    if (!(c->binds[c->n_binds] = strdup(uri)))
        return sv_cfg_fail(s, "out of memory");
    c->n_binds++;
    return 0;
}

int sv_cfg_set_bind(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n, const sv_site_t *s)
{
    const char *uri = NULL;
    int rc = sv_cfg_want_nargs(d, n, 1, 1, s);
    if (rc == 0)
        rc = sv_cfg_want_str(d, &a[0], s, &uri);
    return rc ? rc : add_bind(c, uri, s);
}

int sv_cfg_set_port(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n, const sv_site_t *s)
{
    int64_t port = 0;
    /* -p and PORT (raw) keep 0.0.0.0, as the contract says and as Puma's -p ignores set_default_host */
    const char *host = c->default_host && !s->raw ? c->default_host : "0.0.0.0";
    int rc = sv_cfg_want_nargs(d, n, 1, 2, s);
    if (rc == 0)
        rc = sv_cfg_want_int(d, &a[0], s, &port);
    if (rc == 0)
        rc = sv_cfg_check_range(d, d->name, (double)port, d->lo, d->hi, s);
    if (rc == 0 && n == 2)
        rc = sv_cfg_want_str(d, &a[1], s, &host);
    if (rc)
        return rc;
    char uri[320];
    bool bracket = strchr(host, ':') && host[0] != '[';
    snprintf(uri, sizeof(uri), "tcp://%s%.260s%s:%lld", bracket ? "[" : "", host, bracket ? "]" : "",
             (long long)port);
    return add_bind(c, uri, s);
}

/* Append a %-encoded ssl:// query value (the separators and % itself). */
static void put_query_value(sv_buf_t *b, const char *v)
{
    for (const char *p = v; *p; p++) {
        if (strchr("%&=?# ", *p))
            sv_buf_printf(b, "%%%02X", (unsigned char)*p);
        else
            sv_buf_putc(b, *p);
    }
}

/* Puma's reuse: { size: N, timeout: S } is written reuse=N,S (serval resumes by tickets: no cache to size). */
static bool reuse_text(const sv_value_t *v, char *out, size_t cap)
{
    int64_t size = -1, timeout = -1;
    for (int k = 0; k < v->npairs; k++) {
        if (v->pairs[k].val.type == SV_V_INT && !strcmp(v->pairs[k].key, "size"))
            size = v->pairs[k].val.i;
        else if (v->pairs[k].val.type == SV_V_INT && !strcmp(v->pairs[k].key, "timeout"))
            timeout = v->pairs[k].val.i;
    }
    if (size < 0 && timeout < 0)
        return false;
    out[0] = '\0';
    if (size >= 0)
        snprintf(out, cap, "%lld", (long long)size);
    if (timeout >= 0)
        snprintf(out + strlen(out), cap - strlen(out), ",%lld", (long long)timeout);
    return true;
}

/*
 * An option's value as URI text: *str is the value's own text or num.
 * Returns 1, 0 for an option left out (nil, an empty reuse), or -1 for a
 * value that has no text.
 */
static int option_text(const sv_pair_t *p, char *num, size_t cap, const char **str)
{
    const sv_value_t *v = &p->val;
    *str = NULL;
    if (v->type == SV_V_STR || v->type == SV_V_SYM)
        *str = v->s;
    else if (v->type == SV_V_BOOL)
        *str = v->b ? "true" : "false";
    else if (v->type == SV_V_INT)
        snprintf(num, cap, "%lld", (long long)v->i), *str = num;
    else if (v->type == SV_V_NIL)
        return 0;
    else if (v->type == SV_V_HASH && !strcmp(p->key, "reuse")) {
        if (!reuse_text(v, num, cap))
            return 0;
        *str = num;
    }
    return *str ? 1 : -1;
}

/* Appends ?key=value (or &key=value) to the URI. */
static int put_option(sv_buf_t *uri, const char *key, const char *str, const sv_site_t *s)
{
    char ref[32];
    bool pem = !strcmp(key, "cert_pem") || !strcmp(key, "key_pem");
    if (pem) {
        /* Puma's inline PEM: kept in memory, named in the URI as cert=store:N (Puma's spelling) */
        int idx = sv_tls_store_pem(str);
        if (idx < 0)
            return sv_cfg_fail(s, "ssl_bind: %s %s", key, *str ? "cannot be stored (too many inline PEMs)"
                                                                : "is empty (hint: is its ENV variable set?)");
        snprintf(ref, sizeof(ref), "store:%d", idx);
        str = ref;
    }
    sv_buf_putc(uri, strchr(uri->data, '?') ? '&' : '?');
    sv_buf_puts(uri, pem ? (key[0] == 'c' ? "cert" : "key") : key);
    sv_buf_putc(uri, '=');
    put_query_value(uri, str);
    return 0;
}

/*
 * Puma's ssl_bind HOST, PORT, { cert:, key:, ... }: builds the equivalent
 * ssl:// URI, so the options travel with the listener through a hot restart.
 * cert: and key: may repeat (in pairs, in order) for several certificates
 * picked by SNI.
 */
int sv_cfg_set_ssl_bind(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n, const sv_site_t *s)
{
    const char *host = "";
    int64_t port = 0;
    int rc = sv_cfg_want_nargs(d, n, 3, 3, s);
    if (rc == 0)
        rc = sv_cfg_want_str(d, &a[0], s, &host);
    if (rc == 0)
        rc = sv_cfg_want_int(d, &a[1], s, &port);
    if (rc == 0)
        rc = sv_cfg_check_range(d, "ssl_bind port", (double)port, 0, 65535, s);
    if (rc == 0 && a[2].type != SV_V_HASH)
        rc = sv_cfg_type_error(d, &a[2], "a hash of options such as { cert: \"cert.pem\", key: \"key.pem\" }", s);
    if (rc)
        return rc;
    sv_buf_t uri = SV_BUF_INIT;
    bool bracket = strchr(host, ':') && host[0] != '[';
    sv_buf_printf(&uri, "ssl://%s%s%s:%lld", bracket ? "[" : "", host, bracket ? "]" : "", (long long)port);
    for (int i = 0; rc == 0 && i < a[2].npairs; i++) {
        char num[32];
        const char *str;
        int have = option_text(&a[2].pairs[i], num, sizeof(num), &str);
        if (have < 0)
            rc = sv_cfg_fail(s, "ssl_bind: option %s expects a string", a[2].pairs[i].key);
        else if (have > 0)
            rc = put_option(&uri, a[2].pairs[i].key, str, s);
    }
    if (rc == 0)
        rc = uri.data ? add_bind(c, uri.data, s) : sv_cfg_fail(s, "out of memory");
    sv_buf_free(&uri);
    return rc;
}

int sv_cfg_set_clear_binds(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n,
                           const sv_site_t *s)
{
    int rc = sv_cfg_want_nargs(d, n, 0, 0, s);
    if (rc == 0)
        sv_cfg_clear_binds(c);
    return rc;
}

void sv_cfg_show_binds(const sv_config_t *c, const sv_directive_t *d, sv_json_t *w)
{
    sv_json_arr(w);
    for (int i = 0; i < sv_config_bind_count(c); i++)
        sv_json_str(w, sv_config_bind(c, i));
    sv_json_arr_end(w);
}
