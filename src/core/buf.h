/*
 * buf.h: a growable byte buffer.
 *
 * The buffer owns data (malloc'd). sv_buf_reserve and the append functions
 * return -ENOMEM instead of aborting, so sizes a client controls can be
 * refused cleanly; the buffer is unchanged on failure. data is always
 * NUL-terminated after a successful append (the NUL is not counted in len).
 */
#ifndef SV_CORE_BUF_H
#define SV_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct sv_buf {
    char *data;
    size_t len;
    size_t cap;
} sv_buf_t;

#define SV_BUF_INIT {NULL, 0, 0}

/* Make room for extra more bytes (plus a NUL). */
int sv_buf_reserve(sv_buf_t *b, size_t extra);
int sv_buf_append(sv_buf_t *b, const void *data, size_t len);
int sv_buf_puts(sv_buf_t *b, const char *s);
int sv_buf_putc(sv_buf_t *b, char c);
int sv_buf_printf(sv_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int sv_buf_vprintf(sv_buf_t *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Drop the first n bytes, moving the rest to the front. */
void sv_buf_consume(sv_buf_t *b, size_t n);
void sv_buf_reset(sv_buf_t *b);
void sv_buf_free(sv_buf_t *b);

#endif
