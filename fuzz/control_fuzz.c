/*
 * control_fuzz.c: bytes from a control client through sv_control_request
 * (what src/control/control.c runs on every read), under each policy: a
 * token, no token, data_only, a unix socket. The input is judged whole and at
 * every split a two-read arrival would see. Aborts if a decision breaks the
 * rules of docs/control.md:
 *   - a command without the token in the query when a token is set;
 *   - a command that is not read-only on a data_only server;
 *   - a command for a request whose head is incomplete, has a bare LF, or
 *     whose method is not exactly GET;
 *   - an error status without a reason, spans outside the input;
 *   - "more" for an input that already holds a complete head.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "control/request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TOKEN "s3cret"

static const sv_control_policy_t policies[] = {
    {TOKEN, false, false, 9293},
    {NULL, false, true, 9293},
    {NULL, true, false, 9294},
    {TOKEN, true, false, 0},
    {NULL, false, true, 0},
};

static bool has_token(const char *q, size_t n)
{
    for (size_t i = 0; i + 6 + strlen(TOKEN) <= n; i++)
        if ((i == 0 || q[i - 1] == '&' || q[i - 1] == ';') && !memcmp(q + i, "token=" TOKEN, 6 + strlen(TOKEN)) &&
            (i + 6 + strlen(TOKEN) == n || q[i + 6 + strlen(TOKEN)] == '&' || q[i + 6 + strlen(TOKEN)] == ';'))
            return true;
    return false;
}

/* Length of the head through its blank line, or 0 while incomplete. */
static size_t head_len(const char *in, size_t n)
{
    for (size_t i = 3; i < n; i++)
        if (!memcmp(in + i - 3, "\r\n\r\n", 4))
            return i + 1;
    return 0;
}

static bool complete_head(const char *in, size_t n)
{
    return head_len(in, n) != 0;
}

static bool bare_lf(const char *in, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
            return true;
    return false;
}

static void judge(const sv_control_policy_t *p, const char *in, size_t n)
{
    sv_control_req_t r;
    int done = sv_control_request(p, in, n, &r);
    if (!done) {
        if (complete_head(in, n) || bare_lf(in, n))
            abort();
        return;
    }
    if (r.status != 0) {
        if (!r.why || !r.why[0] || r.cmd)
            abort();
        if (r.read_only_refused && (!p->data_only || sv_command_read_only(r.read_only_refused->cmd)))
            abort();
        return;
    }
    if (!r.cmd || r.query_off + r.query_len > n || r.target_off + r.target_len > n || n < 4)
        abort();
    if (memcmp(in, "GET /", 5) != 0 || !complete_head(in, n))
        abort();
    if (bare_lf(in, head_len(in, n)) || r.target_off + r.target_len > head_len(in, n))
        abort();
    if (p->token && !has_token(in + r.query_off, r.query_len))
        abort();
    if (p->data_only && !sv_command_read_only(r.cmd->cmd))
        abort();
    size_t plen = strlen(r.cmd->path);
    if (r.target_len < plen || memcmp(in + r.target_off, r.cmd->path, plen) != 0 ||
        (r.target_len > plen && in[r.target_off + plen] != '?'))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 16384)
        return 0;
    /* exact-size copies, so ASan sees any read past what arrived */
    for (size_t k = 0; k < sizeof(policies) / sizeof(policies[0]); k++) {
        char *whole = malloc(size ? size : 1);
        if (!whole)
            abort();
        memcpy(whole, data, size);
        judge(&policies[k], whole, size);
        free(whole);
    }
    size_t step = size > 64 ? size / 64 : 1;
    for (size_t cut = 0; cut < size; cut += step) {
        char *part = malloc(cut ? cut : 1);
        if (!part)
            abort();
        memcpy(part, data, cut);
        judge(&policies[0], part, cut);
        free(part);
    }
    return 0;
}
