/* err.c: names and messages of serval's error codes (err.h). */
#include "core/err.h"

#include <errno.h>
#include <string.h>

const char *sv_strerror(int err)
{
    switch (err) {
#define SV_ERR_MSG(name, value, msg) \
    case value:                      \
        return msg;
        SV_ERR_MAP(SV_ERR_MSG)
#undef SV_ERR_MSG
    case 0:
        return "success";
    default:
        return err < 0 ? strerror(-err) : "unknown error";
    }
}

const char *sv_errname(int err)
{
    switch (err) {
#define SV_ERR_NAME(name, value, msg) \
    case value:                       \
        return "SV_E" #name;
        SV_ERR_MAP(SV_ERR_NAME)
#undef SV_ERR_NAME
    case 0:
        return "OK";
    default: {
        const char *n = err < 0 ? strerrorname_np(-err) : NULL;
        return n ? n : "EUNKNOWN";
    }
    }
}
