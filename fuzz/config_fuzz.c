/*
 * config_fuzz.c: any bytes as a puma.rb, through sv_config_parse_text the way
 * sv_config_parse_file hands a file over (NUL-terminated; a NUL inside is
 * refused before parsing). Aborts if the parser breaks its contract: an error
 * that is not exactly one line, a warning list whose count does not match its
 * lines. ASan and UBSan see the rest (the evaluator, the skipping lexer).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (memchr(data, '\0', size))
        return 0;
    char *text = malloc(size + 1);
    if (!text)
        abort();
    memcpy(text, data, size);
    text[size] = '\0';
    sv_config_t c;
    sv_diag_t d = {{0}};
    sv_config_defaults(&c);
    int rc = sv_config_parse_text(&c, "fuzz.rb", text, &d);
    if (rc != 0 && (rc != SV_ECONFIG || !d.msg[0] || strchr(d.msg, '\n')))
        abort();
    int lines = 0;
    for (const char *p = c.warnings; p && *p; p++)
        lines += *p == '\n';
    if (lines != c.n_warnings)
        abort();
    sv_config_free(&c);
    free(text);
    return 0;
}
