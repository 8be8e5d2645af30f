/*
 * request_params.c: the request-level form and cookie helpers of serval.h,
 * thin wrappers that find the bytes (query, body, Cookie headers) through
 * the public request functions and hand them to src/http/urlencoded.c.
 */
#include "serval.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

long serval_request_query_param(const serval_request_t *req, const char *name, size_t nth,
                                char *buf, size_t cap)
{
    if (req == NULL)
        return -EINVAL;
    const char *q = serval_request_query(req);
    return serval_form_value(q, strlen(q), name, nth, buf, cap);
}

static int is_form(const char *content_type)
{
    static const char form[] = "application/x-www-form-urlencoded";
    if (content_type == NULL || strncasecmp(content_type, form, sizeof form - 1) != 0)
        return 0;
    char next = content_type[sizeof form - 1];
    return next == '\0' || next == ';' || next == ' ' || next == '\t';
}

long serval_request_form_param(const serval_request_t *req, const char *name, size_t nth,
                               char *buf, size_t cap)
{
    if (req == NULL)
        return -EINVAL;
    if (!is_form(serval_request_header(req, "Content-Type")))
        return -ENOMSG;
    size_t len = 0;
    const char *body = serval_request_body(req, &len);
    if (body == NULL)
        return -EMSGSIZE;
    return serval_form_value(body, len, name, nth, buf, cap);
}

long serval_request_cookie(const serval_request_t *req, const char *name, char *buf, size_t cap)
{
    if (req == NULL)
        return -EINVAL;
    size_t n = serval_request_header_count(req);
    for (size_t i = 0; i < n; i++) {
        const char *hname = NULL;
        const char *value = NULL;
        if (serval_request_header_at(req, i, &hname, &value) != 0 || strcasecmp(hname, "Cookie") != 0)
            continue;
        long r = serval_cookie_value(value, strlen(value), name, buf, cap);
        if (r != -ENOENT)
            return r;
    }
    return -ENOENT;
}
