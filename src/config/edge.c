/*
 * edge.c: the directives about where serval sits: behind a proxy
 * (set_remote_address, docs/proxy.md) and under systemd
 * (bind_to_activated_sockets, docs/systemd.md). Their rows are in the
 * directive table (directives.c); their setters and JSON are here.
 */
#include "config/internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "http/proxy.h"

static bool is_text(const sv_value_t *v)
{
    return v->type == SV_V_STR || v->type == SV_V_SYM;
}

/* ---- set_remote_address ------------------------------------------------- */

typedef struct remote_opts {
    int proxy_protocol;
    const char *header;
    const char *value;
    sv_buf_t trusted; /* normalised: "10.0.0.0/8,192.168.0.0/16" */
    bool has_trusted;
} remote_opts_t;

static int want_version(const sv_value_t *v, const sv_site_t *s, int *out)
{
    static const struct {
        const char *word;
        int mask;
    } words[] = {{"v1", SV_PROXY_V1}, {"v2", SV_PROXY_V2}, {"any", SV_PROXY_V1 | SV_PROXY_V2}};
    for (size_t i = 0; is_text(v) && i < sizeof(words) / sizeof(words[0]); i++) {
        if (!strcasecmp(v->s, words[i].word)) {
            *out = words[i].mask;
            return 0;
        }
    }
    return sv_cfg_type_error(&(sv_directive_t){.name = "proxy_protocol"}, v, ":v1, :v2 or :any", s);
}

/* An HTTP field name (RFC 9110 token), as the client sends it. */
static int want_header(const sv_value_t *v, const sv_site_t *s, const char **out)
{
    if (v->type != SV_V_STR || !v->s[0] || strlen(v->s) >= sizeof(((sv_remote_t *)0)->header) ||
        v->s[strspn(v->s, "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")])
        return sv_cfg_type_error(&(sv_directive_t){.name = "header"}, v, "a header name such as \"X-Forwarded-For\"",
                                 s);
    if (!strncasecmp(v->s, "HTTP_", 5))
        return sv_cfg_fail(s, "set_remote_address header: give the name the client sends, not the Rack key "
                              "(hint: \"X-Forwarded-For\", not \"%s\")", v->s);
    *out = v->s;
    return 0;
}

static int add_network(remote_opts_t *o, const char *net, const sv_site_t *s)
{
    sv_cidr_t tmp[1];
    size_t n;
    char bad[64];
    if (sv_trusted_parse(net, tmp, 1, &n, bad, sizeof(bad)) < 0)
        return sv_cfg_fail(s, "trusted_proxies: '%s' is not an IP address or network (hint: \"10.0.0.0/8\", "
                              "\"192.0.2.7\", \"fd00::/8\")", bad);
    if (o->trusted.len && sv_buf_putc(&o->trusted, ',') < 0)
        return sv_cfg_fail(s, "out of memory");
    return sv_buf_puts(&o->trusted, net) < 0 ? sv_cfg_fail(s, "out of memory") : 0;
}

/* A string (one network, or several separated by commas) or an array of them. */
static int want_trusted(const sv_value_t *v, const sv_site_t *s, remote_opts_t *o)
{
    o->has_trusted = true;
    const sv_value_t *items = v;
    int n = 1;
    if (v->type == SV_V_ARRAY) {
        items = NULL;
        n = v->npairs;
    }
    for (int i = 0; i < n; i++) {
        const sv_value_t *it = items ? items : &v->pairs[i].val;
        if (it->type != SV_V_STR)
            return sv_cfg_type_error(&(sv_directive_t){.name = "trusted_proxies"}, it,
                            "networks such as [\"10.0.0.0/8\", \"192.0.2.7\"]", s);
        char *copy = strdup(it->s), *save = NULL;
        if (!copy)
            return sv_cfg_fail(s, "out of memory");
        int rc = 0;
        for (char *p = strtok_r(copy, ", \t", &save); p && rc == 0; p = strtok_r(NULL, ", \t", &save))
            rc = add_network(o, p, s);
        free(copy);
        if (rc)
            return rc;
    }
    size_t count;
    sv_cidr_t all[SV_TRUSTED_MAX];
    if (sv_trusted_parse(o->trusted.data ? o->trusted.data : "", all, SV_TRUSTED_MAX, &count, NULL, 0) < 0)
        return sv_cfg_fail(s, "trusted_proxies: at most %d networks", SV_TRUSTED_MAX);
    return 0;
}

static int remote_hash(const sv_directive_t *d, const sv_value_t *h, remote_opts_t *o, const sv_site_t *s)
{
    for (int i = 0; i < h->npairs; i++) {
        const char *k = h->pairs[i].key;
        const sv_value_t *v = &h->pairs[i].val;
        int rc;
        if (!strcmp(k, "proxy_protocol"))
            rc = want_version(v, s, &o->proxy_protocol);
        else if (!strcmp(k, "header"))
            rc = want_header(v, s, &o->header);
        else if (!strcmp(k, "trusted_proxies"))
            rc = want_trusted(v, s, o);
        else
            rc = sv_cfg_fail(s, "set_remote_address: unknown option '%s' (known: proxy_protocol, header, "
                                "trusted_proxies)", k);
        if (rc)
            return rc;
    }
    if (o->has_trusted && !o->header)
        return sv_cfg_fail(s, "set_remote_address: trusted_proxies says whose header: to believe, and there is "
                              "no header: (hint: header: \"X-Forwarded-For\", trusted_proxies: [...])");
    if (!o->proxy_protocol && !o->header)
        return sv_cfg_type_error(d, h, "proxy_protocol: :v1 or :v2, or header: \"X-Forwarded-For\"", s);
    return 0;
}

/* A fixed client address: printable, no spaces (it goes into the request log as one field). */
static int want_value(const sv_directive_t *d, const sv_value_t *v, const sv_site_t *s, const char **out)
{
    size_t n = strlen(v->s);
    bool ok = n > 0 && n < sizeof(((sv_remote_t *)0)->value);
    for (size_t i = 0; ok && i < n; i++)
        ok = v->s[i] > ' ' && v->s[i] < 0x7f;
    if (!ok)
        return sv_cfg_type_error(d, v, "an address of at most 63 printable characters without spaces", s);
    *out = v->s;
    return 0;
}

static int store_remote(sv_config_t *c, remote_opts_t *o, const sv_site_t *s)
{
    char *header = o->header ? strdup(o->header) : NULL, *value = o->value ? strdup(o->value) : NULL;
    char *trusted = o->has_trusted ? strdup(o->trusted.data ? o->trusted.data : "") : NULL;
    if ((o->header && !header) || (o->value && !value) || (o->has_trusted && !trusted)) {
        free(header);
        free(value);
        free(trusted);
        return sv_cfg_fail(s, "out of memory");
    }
    free(c->remote_address_header);
    free(c->remote_address_value);
    free(c->trusted_proxies);
    c->remote_address_header = header;
    c->remote_address_value = value;
    c->trusted_proxies = trusted;
    c->proxy_protocol = o->proxy_protocol;
    return 0;
}

/*
 * Puma's forms, each replacing the previous setting: no argument or
 * :socket (the connection's peer), :localhost, "ADDRESS", or a hash with
 * proxy_protocol:, header: and serval's trusted_proxies: (both may be given:
 * the PROXY header names the peer whose forwarded-for header is believed).
 */
int sv_cfg_set_remote_address(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n,
                              const sv_site_t *s)
{
    remote_opts_t o = {0};
    int rc = 0;
    if (n > 1)
        return sv_cfg_fail(s, "%s expects at most 1 argument, got %d", d->name, n);
    if (n == 0 || (a[0].type == SV_V_SYM && !strcmp(a[0].s, "socket")))
        rc = 0;
    else if (a[0].type == SV_V_SYM && !strcmp(a[0].s, "localhost"))
        o.value = "127.0.0.1";
    else if (a[0].type == SV_V_STR)
        rc = want_value(d, &a[0], s, &o.value);
    else if (a[0].type == SV_V_HASH)
        rc = remote_hash(d, &a[0], &o, s);
    else
        rc = sv_cfg_type_error(d, &a[0], ":socket, :localhost, \"ADDRESS\", proxy_protocol: :v1 or header: \"NAME\"", s);
    if (rc == 0)
        rc = store_remote(c, &o, s);
    sv_buf_free(&o.trusted);
    return rc;
}

void sv_cfg_show_remote_address(const sv_config_t *c, const sv_directive_t *d, sv_json_t *w)
{
    static const char *const versions[] = {NULL, "v1", "v2", "any"};
    sv_json_obj(w);
    sv_json_key(w, "value");
    sv_json_str(w, c->remote_address_value);
    sv_json_key(w, "proxy_protocol");
    sv_json_str(w, versions[c->proxy_protocol & 3]);
    sv_json_key(w, "header");
    sv_json_str(w, c->remote_address_header);
    sv_json_key(w, "trusted_proxies");
    if (!c->remote_address_header) {
        sv_json_null(w);
    } else {
        char *list = strdup(c->trusted_proxies ? c->trusted_proxies : SV_TRUSTED_PROXIES_DEFAULT), *save = NULL;
        sv_json_arr(w);
        for (char *p = list ? strtok_r(list, ",", &save) : NULL; p; p = strtok_r(NULL, ",", &save))
            sv_json_str(w, p);
        sv_json_arr_end(w);
        free(list);
    }
    sv_json_obj_end(w);
}

/* ---- bind_to_activated_sockets ------------------------------------------ */

/* Puma's bind_to_activated_sockets(bind=true): true, false, or "only". */
int sv_cfg_set_activated_sockets(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n,
                                 const sv_site_t *s)
{
    if (n > 1)
        return sv_cfg_fail(s, "%s expects at most 1 argument, got %d", d->name, n);
    if (n == 0 || (a[0].type == SV_V_BOOL && a[0].b) || (is_text(&a[0]) && !strcmp(a[0].s, "true"))) {
        c->bind_to_activated_sockets = 1;
    } else if ((a[0].type == SV_V_BOOL && !a[0].b) || a[0].type == SV_V_NIL ||
               (is_text(&a[0]) && !strcmp(a[0].s, "false"))) {
        c->bind_to_activated_sockets = 0;
    } else if (is_text(&a[0]) && !strcmp(a[0].s, "only")) {
        c->bind_to_activated_sockets = 2;
    } else {
        return sv_cfg_type_error(d, &a[0], "true, false or \"only\"", s);
    }
    return 0;
}

void sv_cfg_show_activated_sockets(const sv_config_t *c, const sv_directive_t *d, sv_json_t *w)
{
    if (c->bind_to_activated_sockets == 2)
        sv_json_str(w, "only");
    else
        sv_json_bool(w, c->bind_to_activated_sockets == 1);
}
