/*
 * json.h: a small streaming JSON writer over sv_buf_t.
 *
 * Commas are placed automatically. Strings are escaped. Output is compact
 * and single-line, like Puma's stats. Allocation failures are sticky: check
 * w.err once at the end.
 */
#ifndef SV_CORE_JSON_H
#define SV_CORE_JSON_H

#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"

#define SV_JSON_DEPTH 16

typedef struct sv_json {
    sv_buf_t *out;
    int depth;
    bool need_comma[SV_JSON_DEPTH];
    int err;
} sv_json_t;

void sv_json_init(sv_json_t *w, sv_buf_t *out);
void sv_json_obj(sv_json_t *w);     /* { */
void sv_json_obj_end(sv_json_t *w); /* } */
void sv_json_arr(sv_json_t *w);     /* [ */
void sv_json_arr_end(sv_json_t *w); /* ] */
void sv_json_key(sv_json_t *w, const char *key);
void sv_json_str(sv_json_t *w, const char *s); /* NULL writes null */
void sv_json_strn(sv_json_t *w, const char *s, size_t n);
void sv_json_int(sv_json_t *w, int64_t v);
void sv_json_uint(sv_json_t *w, uint64_t v);
void sv_json_double(sv_json_t *w, double v);
void sv_json_bool(sv_json_t *w, bool v);
void sv_json_null(sv_json_t *w);
/* Append pre-rendered JSON as one value. */
void sv_json_raw(sv_json_t *w, const char *json);

/* Escape s into out as a JSON string with quotes. */
int sv_json_escape(sv_buf_t *out, const char *s, size_t n);

#endif
