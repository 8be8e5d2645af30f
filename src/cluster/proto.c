/* proto.c: the one codec of the master <-> worker/mold protocol (proto.h). */
#include "cluster/proto.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const names[SV_PROTO_COUNT] = {
    [SV_PROTO_UNKNOWN] = "?",
#define SV_PROTO_NAME(name, wire, doc) [SV_PROTO_##name] = (wire),
    SV_PROTO_VERBS(SV_PROTO_NAME)
#undef SV_PROTO_NAME
};

const char *sv_proto_name(sv_proto_verb_t v)
{
    return v > SV_PROTO_UNKNOWN && v < SV_PROTO_COUNT ? names[v] : "?";
}

sv_proto_verb_t sv_proto_verb(const char *text)
{
    size_t n = strcspn(text, " ");
    for (int v = SV_PROTO_UNKNOWN + 1; v < SV_PROTO_COUNT; v++)
        if (strlen(names[v]) == n && !memcmp(names[v], text, n))
            return (sv_proto_verb_t)v;
    return SV_PROTO_UNKNOWN;
}

void sv_proto_new(sv_proto_msg_t *m, sv_proto_verb_t v)
{
    m->verb = v;
    m->truncated = 0;
    snprintf(m->text, sizeof(m->text), "%s", sv_proto_name(v));
}

void sv_proto_str(sv_proto_msg_t *m, const char *key, const char *value)
{
    size_t before = strlen(m->text);
    char tmp[SV_CHAN_MSG_MAX];
    memcpy(tmp, m->text, before + 1);
    sv_msg_put(tmp, sizeof(tmp), key, value ? value : "");
    /* sv_msg_put stops at the end of the buffer: a value cut short is worse than none */
    char check[SV_CHAN_MSG_MAX];
    if (!sv_msg_get(tmp + before, key, check, sizeof(check)) || strcmp(check, value ? value : "") != 0 ||
        strlen(tmp) + 1 >= sizeof(tmp)) {
        m->truncated++;
        return;
    }
    memcpy(m->text, tmp, strlen(tmp) + 1);
}

void sv_proto_int(sv_proto_msg_t *m, const char *key, int64_t value)
{
    char v[32];
    snprintf(v, sizeof(v), "%lld", (long long)value);
    sv_proto_str(m, key, v);
}

int sv_proto_send(int chan, const sv_proto_msg_t *m, int pass_fd, int timeout_ms)
{
    return sv_chan_send(chan, m->text, pass_fd, timeout_ms);
}

int sv_proto_sendf(int chan, sv_proto_verb_t v, const char *fields_fmt, ...)
{
    char text[SV_CHAN_MSG_MAX];
    int n = snprintf(text, sizeof(text), "%s", sv_proto_name(v));
    va_list ap;
    va_start(ap, fields_fmt);
    vsnprintf(text + n, sizeof(text) - (size_t)n, fields_fmt, ap);
    va_end(ap);
    return sv_chan_send(chan, text, -1, 1000);
}
