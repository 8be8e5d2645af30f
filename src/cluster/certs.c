/* certs.c: certificate reloads, ticket key rotation and the TLS part of stats for a master or single process (certs.h). */
#include "cluster/certs.h"

#include "core/log.h"
#include "tls/tls.h"

#define MAX_TLS 64

static int listeners(const sv_runtime_t *rt, sv_tls_t **out)
{
    int n = 0;
    for (int i = 0; i < rt->n_listeners && n < MAX_TLS; i++)
        if (rt->listeners[i].tls)
            out[n++] = rt->listeners[i].tls;
    return n;
}

int sv_certs_reload(sv_runtime_t *rt, const char *trigger, sv_buf_t *out)
{
    sv_tls_t *tls[MAX_TLS];
    int n = listeners(rt, tls);
    if (n == 0) {
        if (out)
            sv_buf_puts(out, "{ \"error\": \"no ssl:// listener\" }");
        return 404;
    }
    char err[700];
    if (sv_tls_reload_all(tls, n, err, sizeof(err)) < 0) {
        sv_log_error("! TLS certificates not reloaded (%s), the old ones keep serving: %s", trigger, err);
        if (out) {
            sv_json_t w;
            sv_json_init(&w, out);
            sv_json_obj(&w);
            sv_json_key(&w, "error");
            sv_json_str(&w, err);
            sv_json_obj_end(&w);
        }
        return 409;
    }
    sv_log("* TLS certificates reloaded (%s) for %d listener%s", trigger, n, n == 1 ? "" : "s");
    if (out)
        sv_buf_puts(out, "{ \"status\": \"ok\" }");
    return 200;
}

void sv_certs_reload_if_tls(sv_runtime_t *rt, const char *trigger)
{
    sv_tls_t *tls[MAX_TLS];
    if (listeners(rt, tls) > 0)
        sv_certs_reload(rt, trigger, NULL);
}

bool sv_certs_any(const sv_runtime_t *rt)
{
    sv_tls_t *tls[MAX_TLS];
    return listeners(rt, tls) > 0;
}

void sv_certs_tick(int64_t now_ms)
{
    sv_tls_tick(now_ms);
}

void sv_certs_stats(const sv_runtime_t *rt, sv_json_t *w)
{
    sv_tls_t *tls[MAX_TLS];
    int n = listeners(rt, tls);
    if (n == 0)
        return;
    sv_json_key(w, "tls");
    sv_tls_stats_json(w, tls, n);
}

void sv_certs_metrics(const sv_runtime_t *rt, sv_buf_t *out)
{
    sv_tls_t *tls[MAX_TLS];
    int n = listeners(rt, tls);
    if (n > 0)
        sv_tls_metrics(out, tls, n);
}
