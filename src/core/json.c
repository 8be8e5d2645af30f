/* json.c: the streaming JSON writer (json.h). */
#include "core/json.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

void sv_json_init(sv_json_t *w, sv_buf_t *out)
{
    memset(w, 0, sizeof(*w));
    w->out = out;
}

static void emit(sv_json_t *w, const char *s, size_t n)
{
    if (!w->err)
        w->err = sv_buf_append(w->out, s, n);
}

/* Called before every value: a comma unless this is the first in its container. */
static void value_prefix(sv_json_t *w)
{
    if (w->need_comma[w->depth])
        emit(w, ",", 1);
    w->need_comma[w->depth] = true;
}

static void open_container(sv_json_t *w, char c)
{
    value_prefix(w);
    emit(w, &c, 1);
    if (w->depth + 1 < SV_JSON_DEPTH)
        w->depth++;
    w->need_comma[w->depth] = false;
}

static void close_container(sv_json_t *w, char c)
{
    if (w->depth > 0)
        w->depth--;
    emit(w, &c, 1);
}

void sv_json_obj(sv_json_t *w) { open_container(w, '{'); }
void sv_json_obj_end(sv_json_t *w) { close_container(w, '}'); }
void sv_json_arr(sv_json_t *w) { open_container(w, '['); }
void sv_json_arr_end(sv_json_t *w) { close_container(w, ']'); }

int sv_json_escape(sv_buf_t *out, const char *s, size_t n)
{
    int rc = sv_buf_putc(out, '"');
    for (size_t i = 0; i < n && rc == 0; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': rc = sv_buf_puts(out, "\\\""); break;
        case '\\': rc = sv_buf_puts(out, "\\\\"); break;
        case '\n': rc = sv_buf_puts(out, "\\n"); break;
        case '\r': rc = sv_buf_puts(out, "\\r"); break;
        case '\t': rc = sv_buf_puts(out, "\\t"); break;
        default:
            if (c < 0x20)
                rc = sv_buf_printf(out, "\\u%04x", c);
            else
                rc = sv_buf_putc(out, (char)c);
        }
    }
    return rc ? rc : sv_buf_putc(out, '"');
}

void sv_json_key(sv_json_t *w, const char *key)
{
    value_prefix(w);
    if (!w->err)
        w->err = sv_json_escape(w->out, key, strlen(key));
    emit(w, ":", 1);
    /* the value that follows must not get a comma of its own */
    w->need_comma[w->depth] = false;
}

/* After a key, the value resets need_comma to true via value_prefix. */
void sv_json_strn(sv_json_t *w, const char *s, size_t n)
{
    value_prefix(w);
    if (!w->err)
        w->err = sv_json_escape(w->out, s, n);
}

void sv_json_str(sv_json_t *w, const char *s)
{
    if (!s) {
        sv_json_null(w);
        return;
    }
    sv_json_strn(w, s, strlen(s));
}

void sv_json_int(sv_json_t *w, int64_t v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof(tmp), "%" PRId64, v);
    value_prefix(w);
    emit(w, tmp, (size_t)n);
}

void sv_json_uint(sv_json_t *w, uint64_t v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof(tmp), "%" PRIu64, v);
    value_prefix(w);
    emit(w, tmp, (size_t)n);
}

void sv_json_double(sv_json_t *w, double v)
{
    char tmp[64];
    /* timestamps keep milliseconds; small values keep 6 significant digits */
    int n = !isfinite(v) ? snprintf(tmp, sizeof(tmp), "null")
            : fabs(v) >= 1e6 ? snprintf(tmp, sizeof(tmp), "%.3f", v)
                             : snprintf(tmp, sizeof(tmp), "%.6g", v);
    value_prefix(w);
    emit(w, tmp, (size_t)n);
}

void sv_json_bool(sv_json_t *w, bool v)
{
    value_prefix(w);
    emit(w, v ? "true" : "false", v ? 4 : 5);
}

void sv_json_null(sv_json_t *w)
{
    value_prefix(w);
    emit(w, "null", 4);
}

void sv_json_raw(sv_json_t *w, const char *json)
{
    value_prefix(w);
    emit(w, json, strlen(json));
}
