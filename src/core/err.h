/*
 * err.h: serval's one error convention.
 *
 * Every serval function that can fail returns 0 (or a non-negative count) on
 * success and a negative code on failure: a negated errno value for anything
 * a syscall reported, or one of the SV_E* codes below for serval's own
 * failures. Nobody reads errno after a serval call.
 */
#ifndef SV_CORE_ERR_H
#define SV_CORE_ERR_H

/* name, value, message: serval's own codes, outside the errno range. */
#define SV_ERR_MAP(X)                                                     \
    X(CONFIG, -10001, "invalid configuration")                            \
    X(PARSE, -10002, "malformed input")                                   \
    X(LIMIT, -10003, "limit exceeded")                                    \
    X(ABI, -10004, "app ABI mismatch")                                    \
    X(PROTO, -10005, "protocol error")                                    \
    X(STATE, -10006, "not possible in the current state")                 \
    X(APP, -10007, "the app failed")                                      \
    X(INUSE, -10008, "address already in use by another server")

enum sv_err {
    SV_OK = 0,
#define SV_ERR_ENUM(name, value, msg) SV_E##name = value,
    SV_ERR_MAP(SV_ERR_ENUM)
#undef SV_ERR_ENUM
};

/* A message for any code this convention produces (static storage). */
const char *sv_strerror(int err);
/* The symbolic name: "ENOENT", "SV_ECONFIG", ... (static storage). */
const char *sv_errname(int err);

/* -errno, captured right after a failed syscall. */
#define SV_ERRNO() (-errno)

#endif
