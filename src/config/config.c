/*
 * config.c: sv_config_t as a whole, once the directives have been applied.
 *
 * Owns its lifetime (which string fields it owns, free, deep copy), the
 * rules between two settings that only hold once everything is loaded
 * (sv_config_validate: "PATH: worker_timeout (5) must be greater than
 * worker_check_interval (5)"), and the two views the directive table
 * gives of it: the JSON in stats and --print-config, and --help.
 */
#include "config/internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/json.h"

#define F(field) offsetof(sv_config_t, field)

/* ---- lifetime -------------------------------------------------------- */

/* Every owned string field except binds, for free and copy. */
static const size_t str_fields[] = {
    F(config_file), F(app_path),      F(directory), F(environment),     F(tag),             F(control_url),
    F(control_token), F(state_path), F(pidfile),   F(stdout_redirect), F(stderr_redirect),
    F(warnings),       F(control_data_url),
    F(remote_address_header), F(remote_address_value), F(trusted_proxies), F(default_host),
};

#define NSTR (sizeof(str_fields) / sizeof(str_fields[0]))
#define STRF(c, i) ((char **)(void *)((char *)(c) + str_fields[i]))
#define CSTRF(c, i) ((char *const *)(const void *)((const char *)(c) + str_fields[i]))

void sv_config_free(sv_config_t *c)
{
    for (size_t i = 0; i < NSTR; i++) {
        free(*STRF(c, i));
        *STRF(c, i) = NULL;
    }
    for (size_t i = 0; i < SV_CONFIG_MAX_DIRECTIVES; i++) {
        free(c->origin[i]);
        c->origin[i] = NULL;
    }
    sv_cfg_clear_binds(c);
}

int sv_config_copy(sv_config_t *dst, const sv_config_t *src)
{
    *dst = *src;
    for (size_t i = 0; i < NSTR; i++)
        *STRF(dst, i) = NULL;
    for (int i = 0; i < SV_CONFIG_MAX_BINDS; i++)
        dst->binds[i] = NULL;
    for (size_t i = 0; i < SV_CONFIG_MAX_DIRECTIVES; i++)
        dst->origin[i] = NULL;
    for (size_t i = 0; i < NSTR; i++) {
        const char *s = *CSTRF(src, i);
        if (s && !(*STRF(dst, i) = strdup(s)))
            goto fail;
    }
    for (int i = 0; i < src->n_binds; i++)
        if (!(dst->binds[i] = strdup(src->binds[i])))
            goto fail;
    for (size_t i = 0; i < SV_CONFIG_MAX_DIRECTIVES; i++)
        if (src->origin[i] && !(dst->origin[i] = strdup(src->origin[i])))
            goto fail;
    return 0;
fail:
    sv_config_free(dst);
    return -ENOMEM;
}

/* ---- cross-field checks ---------------------------------------------- */

int sv_cfg_set_origin(sv_config_t *c, const sv_directive_t *d, const char *where)
{
    size_t i = sv_cfg_directive_index(d);
    char *copy = strdup(where);
    if (!copy)
        return -ENOMEM;
    free(c->origin[i]);
    c->origin[i] = copy;
    return 0;
}

static const char *origin_of(const sv_config_t *c, const char *name)
{
    const sv_directive_t *d = name ? sv_cfg_lookup(name, true) : NULL;
    return d ? c->origin[sv_cfg_directive_index(d)] : NULL;
}

int sv_cfg_fail_rule(const sv_config_t *c, sv_diag_t *diag, const char *about, const char *about2,
                     const char *fmt, ...)
{
    char msg[SV_DIAG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    const char *where = origin_of(c, about);
    if (!where)
        where = origin_of(c, about2);
    if (!where)
        where = c->config_file ? c->config_file : "serval";
    return sv_cfg_diag(diag, "%.*s: %.*s", SV_DIAG_MAX / 4, where, SV_DIAG_MAX / 2, msg);
}

static int validate_process(const sv_config_t *c, sv_diag_t *diag)
{
    char a[48], b[48];
    if (c->min_threads > c->max_threads)
        return sv_cfg_fail_rule(c, diag, "threads", NULL, "threads minimum (%d) must not exceed the maximum (%d)",
                                c->min_threads, c->max_threads);
    if (!(c->worker_timeout > c->worker_check_interval)) {
        sv_cfg_fmt_num(c->worker_timeout, a, sizeof(a));
        sv_cfg_fmt_num(c->worker_check_interval, b, sizeof(b));
        return sv_cfg_fail_rule(c, diag, "worker_timeout", "worker_check_interval",
                                "worker_timeout (%s) must be greater than worker_check_interval (%s)", a, b);
    }
    if (c->fork_worker && c->workers < 1)
        return sv_cfg_fail_rule(c, diag, "fork_worker", "workers",
                                "fork_worker needs cluster mode (hint: set workers 1 or more, or pass -w N)");
    if (c->max_requests > 0 && c->max_requests_jitter >= c->max_requests)
        return sv_cfg_fail_rule(c, diag, "max_requests", NULL,
                                "max_requests jitter (%lld) must be less than max_requests (%lld)",
                                (long long)c->max_requests_jitter, (long long)c->max_requests);
    return 0;
}

static int validate_limits(const sv_config_t *c, sv_diag_t *diag)
{
    if (c->max_body_size > 0 && (int64_t)c->body_buffer_size > c->max_body_size)
        return sv_cfg_fail_rule(c, diag, "body_buffer_size", "max_body_size",
                                "body_buffer_size (%zu) must not exceed max_body_size (%lld)",
                                c->body_buffer_size, (long long)c->max_body_size);
    if (c->max_request_line > c->max_header_size)
        return sv_cfg_fail_rule(c, diag, "max_request_line", "max_header_size",
                                "max_request_line (%zu) must not exceed max_header_size (%zu)",
                                c->max_request_line, c->max_header_size);
    return 0;
}

int sv_config_validate(const sv_config_t *c, sv_diag_t *diag)
{
    int rc = validate_process(c, diag);
    if (rc == 0)
        rc = sv_cfg_validate_control(c, diag);
    return rc ? rc : validate_limits(c, diag);
}

/* ---- JSON and help --------------------------------------------------- */

void sv_config_to_json(const sv_config_t *c, sv_json_t *w)
{
    sv_json_obj(w);
    const sv_directive_t *d;
    for (size_t i = 0; (d = sv_cfg_directive_at(i)); i++) {
        if (!d->show || (d->flags & SV_D_HIDDEN))
            continue;
        sv_json_key(w, d->name);
        d->show(c, d, w);
    }
    sv_json_obj_end(w);
}

/* A directive's default as --help shows it, read from sv_config_defaults. */
static void default_text(const sv_directive_t *d, const sv_config_t *defaults, char *out, size_t cap)
{
    if (d->def) {
        snprintf(out, cap, "%s", d->def);
    } else if (d->flags & SV_D_BYTES) {
        int64_t v = d->kind == SV_F_SIZE ? (int64_t)*SV_CFG_CFIELD(defaults, d, size_t)
                                         : *SV_CFG_CFIELD(defaults, d, int64_t);
        sv_cfg_fmt_bytes(v, out, cap);
    } else if (d->kind == SV_F_DUR) {
        sv_cfg_fmt_num(*SV_CFG_CFIELD(defaults, d, double), out, cap);
    } else {
        sv_buf_t b = SV_BUF_INIT;
        sv_json_t w;
        sv_json_init(&w, &b);
        d->show(defaults, d, &w);
        snprintf(out, cap, "%s", w.err || !b.data ? "?" : b.data);
        sv_buf_free(&b);
    }
}

void sv_config_print_help(const char *prog)
{
    sv_config_t defaults;
    sv_config_defaults(&defaults);
    printf("Usage: %s [options] [APP]\n\n"
           "APP is the path of an app shared object; without it serval serves its built-in hello app.\n\n"
           "Options:\n", prog ? prog : "serval");
    sv_cfg_print_flags(stdout);
    printf("\nConfig file directives (config/puma.rb), with their defaults:\n");
    const sv_directive_t *d;
    for (size_t i = 0; (d = sv_cfg_directive_at(i)); i++) {
        if (d->flags & (SV_D_HIDDEN | SV_D_COMPAT))
            continue;
        char def[96], head[128];
        default_text(d, &defaults, def, sizeof(def));
        snprintf(head, sizeof(head), "%s %s", d->name, d->args);
        printf("  %-44s default: %s\n      %s\n", head, def, d->help);
    }
    printf("\nEnvironment: WEB_CONCURRENCY (workers, or auto), PUMA_MIN_THREADS/MIN_THREADS, "
           "PUMA_MAX_THREADS/MAX_THREADS,\n  PORT (the default bind's port), APP_ENV/RACK_ENV/RAILS_ENV "
           "(environment); of A/B, the first set wins.\n"
           "Precedence: defaults < environment < config file < flags. See docs/configuration.md.\n");
    sv_config_free(&defaults);
}
