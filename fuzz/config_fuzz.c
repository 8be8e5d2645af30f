/*
 * config_fuzz.c: bytes as a puma.rb through sv_config_parse_text, then the
 * cross-field checks and the stats JSON of whatever was accepted, then free.
 * Aborts if the parser breaks its contract: a failure without a message, or
 * a message that is not one line ("file:line: problem (hint)"), or a warning
 * list whose count does not match its lines. ASan and UBSan see the rest
 * (the evaluator, the lexer skipping Ruby blocks).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/buf.h"
#include "core/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_diag(int rc, const sv_diag_t *d)
{
    if (rc == 0)
        return;
    if (!d->msg[0] || strchr(d->msg, '\n'))
        abort();
}

static void check_warnings(const sv_config_t *c)
{
    int lines = 0;
    for (const char *p = c->warnings; p && *p; p++)
        lines += *p == '\n';
    if (lines != c->n_warnings)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 64 * 1024)
        return 0;
    char *text = malloc(size + 1);
    if (!text)
        abort();
    memcpy(text, data, size);
    text[size] = '\0';
    sv_config_t c;
    sv_diag_t d;
    sv_config_defaults(&c);
    d.msg[0] = '\0';
    int rc = sv_config_parse_text(&c, "puma.rb", text, &d);
    check_diag(rc, &d);
    check_warnings(&c);
    if (rc == 0) {
        d.msg[0] = '\0';
        check_diag(sv_config_validate(&c, &d), &d);
        sv_buf_t b = SV_BUF_INIT;
        sv_json_t w;
        sv_json_init(&w, &b);
        sv_config_to_json(&c, &w);
        sv_buf_free(&b);
    }
    sv_config_free(&c);
    free(text);
    return 0;
}
