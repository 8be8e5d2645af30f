/*
 * control_app.c: the control server's settings: activate_control_app and
 * its options, and the flags that stand for them (--control-url,
 * --control-token, --control-data-url, ...). Owns the rules a token must
 * follow to travel in ?token= and the state file unencoded, and the rule
 * that a token-less control app that can stop the server stays local.
 * docs/control.md describes what the server does with them.
 */
#include "config/internal.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/json.h"
#include "os/listen.h"
#include "tls/tls.h"

/*
 * A token travels unencoded in ?token=T and in the state file's YAML: it is
 * printable ASCII without space, '&', ';', '#', '%', '"', '\\' and at most
 * SV_CONTROL_TOKEN_MAX bytes. Nothing is ever cut silently.
 */
static int check_token(const char *token, const sv_site_t *s)
{
    size_t n = strlen(token);
    if (n > SV_CONTROL_TOKEN_MAX)
        return sv_cfg_fail(s, "control token is %zu bytes, the most is %d (hint: 32 random hex characters "
                              "are plenty; omit the token and serval makes one)", n, SV_CONTROL_TOKEN_MAX);
    for (const char *p = token; *p; p++)
        if (*p <= ' ' || *p > '~' || strchr("&;#%\"\\", *p))
            return sv_cfg_fail(s, "control token has a character that cannot travel in ?token= unencoded "
                                  "(position %zu; hint: use letters, digits and -._~)", (size_t)(p - token) + 1);
    return 0;
}

/* "" and "none" mean no authentication, as in Puma. */
static int store_token(sv_config_t *c, const char *token, const sv_site_t *s)
{
    c->control_no_token = token && (!token[0] || !strcmp(token, "none"));
    if (token && !c->control_no_token) {
        int rc = check_token(token, s);
        if (rc)
            return rc;
    }
    return sv_cfg_replace_str(&c->control_token, c->control_no_token ? NULL : token, s);
}

static int check_control_url(const char *url, const sv_site_t *s)
{
    sv_bind_t b;
    char err[SV_DIAG_MAX / 2];
    if (!url)
        return sv_cfg_fail(s, "control URL missing (hint: tcp://127.0.0.1:PORT, unix://PATH or "
                              "ssl://127.0.0.1:PORT?cert=PATH&key=PATH)");
    if (!strcmp(url, "auto"))
        return sv_cfg_fail(s, "control URL 'auto' is not supported (hint: give a tcp://127.0.0.1:PORT, "
                              "unix://PATH or ssl://127.0.0.1:PORT?cert=PATH&key=PATH URL)");
    if (sv_bind_parse(url, &b, err, sizeof(err)) < 0) {
        const char *scheme = sv_cfg_scheme_for(url);
        return scheme ? sv_cfg_fail(s, "control URL: %s (hint: \"%s%.80s\")", err, scheme, url)
                      : sv_cfg_fail(s, "control URL: %s", err);
    }
    if (b.ssl) {
        sv_tls_opts_t o;
        int rc = sv_tls_opts_parse(url, &o, err, sizeof(err));
        if (rc < 0)
            return rc == -ENOMEM ? sv_cfg_fail(s, "out of memory") : sv_cfg_fail(s, "control URL: %s", err);
        sv_tls_opts_free(&o);
    }
    return 0;
}

typedef struct control_opts {
    const char *token;
    bool no_token;
    bool data_only;
    bool allow_remote;
    const char *data_url;
} control_opts_t;

/* An option's string; nil leaves *out alone. */
static int opt_str(const char *name, unsigned flags, const sv_value_t *v, const sv_site_t *s, const char **out)
{
    return v->type == SV_V_NIL ? 0 : sv_cfg_want_str(&(sv_directive_t){.name = name, .flags = flags}, v, s, out);
}

static int control_options(const sv_directive_t *d, const sv_value_t *h, control_opts_t *o, const sv_site_t *s)
{
    if (h->type != SV_V_HASH)
        return sv_cfg_type_error(d, h, "a hash of options such as { auth_token: \"secret\" }", s);
    for (int i = 0; i < h->npairs; i++) {
        const char *k = h->pairs[i].key;
        const sv_value_t *v = &h->pairs[i].val;
        int rc = 0;
        if (!strcmp(k, "auth_token"))
            rc = opt_str("auth_token", SV_D_EMPTY_OK, v, s, &o->token);
        else if (!strcmp(k, "no_token"))
            rc = sv_cfg_want_bool(&(sv_directive_t){.name = "no_token"}, v, s, &o->no_token);
        else if (!strcmp(k, "data_only"))
            rc = sv_cfg_want_bool(&(sv_directive_t){.name = "data_only"}, v, s, &o->data_only);
        else if (!strcmp(k, "allow_remote"))
            rc = sv_cfg_want_bool(&(sv_directive_t){.name = "allow_remote"}, v, s, &o->allow_remote);
        else if (!strcmp(k, "data_url"))
            rc = opt_str("data_url", 0, v, s, &o->data_url);
        else if (strcmp(k, "umask"))
            rc = sv_cfg_fail(s, "activate_control_app: unknown option '%s' (known: auth_token, no_token, "
                                "data_only, data_url, allow_remote, umask)", k);
        if (rc)
            return rc;
    }
    return 0;
}

int sv_cfg_set_control(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n, const sv_site_t *s)
{
    const char *url = "auto";
    control_opts_t o = {NULL, false, false, false, NULL};
    int rc = sv_cfg_want_nargs(d, n, 0, 2, s);
    if (rc == 0 && n >= 1)
        rc = sv_cfg_want_str(d, &a[0], s, &url);
    if (rc == 0 && n == 2)
        rc = control_options(d, &a[1], &o, s);
    if (rc == 0)
        rc = check_control_url(url, s);
    if (rc == 0 && o.data_url)
        rc = check_control_url(o.data_url, s);
    if (rc == 0)
        rc = sv_cfg_replace_str(&c->control_url, url, s);
    if (rc == 0)
        rc = sv_cfg_replace_str(&c->control_data_url, o.data_url, s);
    if (rc == 0)
        rc = store_token(c, o.no_token ? "none" : o.token, s);
    c->control_data_only = o.data_only;
    c->control_allow_remote = o.allow_remote;
    return rc;
}

/* The one argument of control_url/control_data_url: a string and a control URL serval can serve. */
static int get_control_url_arg(const sv_directive_t *d, const sv_value_t *a, int n, const sv_site_t *s,
                               const char **url)
{
    int rc = sv_cfg_want_nargs(d, n, 1, 1, s);
    if (rc == 0)
        rc = sv_cfg_want_str(d, &a[0], s, url);
    return rc ? rc : check_control_url(*url, s);
}

int sv_cfg_set_control_data_url(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n,
                                const sv_site_t *s)
{
    const char *url = NULL;
    int rc = get_control_url_arg(d, a, n, s, &url);
    return rc ? rc : sv_cfg_replace_str(&c->control_data_url, url, s);
}

int sv_cfg_set_control_url(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n,
                           const sv_site_t *s)
{
    const char *url = NULL;
    int rc = get_control_url_arg(d, a, n, s, &url);
    return rc ? rc : sv_cfg_replace_str(&c->control_url, url, s);
}

int sv_cfg_set_control_token(sv_config_t *c, const sv_directive_t *d, const sv_value_t *a, int n,
                             const sv_site_t *s)
{
    const char *token = NULL;
    int rc = sv_cfg_want_nargs(d, n, 1, 1, s);
    if (rc == 0)
        rc = sv_cfg_want_str(d, &a[0], s, &token);
    return rc ? rc : store_token(c, token, s);
}

/* The token itself never leaves the process through stats. */
void sv_cfg_show_control(const sv_config_t *c, const sv_directive_t *d, sv_json_t *w)
{
    if (!c->control_url) {
        sv_json_null(w);
        return;
    }
    sv_json_obj(w);
    sv_json_key(w, "url");
    sv_json_str(w, c->control_url);
    sv_json_key(w, "auth");
    sv_json_str(w, c->control_no_token ? "none" : c->control_token ? "token" : "random");
    if (c->control_data_only) {
        sv_json_key(w, "data_only");
        sv_json_bool(w, true);
    }
    if (c->control_data_url) {
        sv_json_key(w, "data_url");
        sv_json_str(w, c->control_data_url);
    }
    sv_json_obj_end(w);
}

/* A unix socket or a loopback address (127.0.0.0/8, ::1, localhost). */
static bool local_url(const char *url)
{
    sv_bind_t b;
    char err[128];
    if (sv_bind_parse(url, &b, err, sizeof(err)) < 0)
        return false;
    return b.kind == SV_BIND_UNIX || !strncmp(b.host, "127.", 4) || !strcmp(b.host, "::1") ||
           !strcmp(b.host, "localhost");
}

/* Run by sv_config_validate after the process rules, before the HTTP limits. */
int sv_cfg_validate_control(const sv_config_t *c, sv_diag_t *diag)
{
    if ((c->control_token || c->control_no_token) && !c->control_url)
        return sv_cfg_fail_rule(c, diag, "control_token", NULL,
                                "a control token needs a control server (hint: activate_control_app \"URL\" "
                                "or --control-url URL)");
    if (c->control_data_url && !c->control_url)
        return sv_cfg_fail_rule(c, diag, "control_data_url", NULL,
                                "a data_url needs a control server (hint: activate_control_app \"URL\", "
                                "{ data_url: \"tcp://0.0.0.0:9294\" }, or a data_only control app alone)");
    if (c->control_url && c->control_no_token && !c->control_data_only && !c->control_allow_remote &&
        !local_url(c->control_url))
        return sv_cfg_fail_rule(c, diag, "activate_control_app", "control_url",
                                "control app %.60s has no token and can stop the server: bind loopback or "
                                "a unix socket (hint: add a token; data_only: true / --control-data-only; "
                                "allow_remote: true / --control-allow-remote behind a firewall)",
                                c->control_url);
    return 0;
}
