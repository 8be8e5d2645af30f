/*
 * config/internal.h: shared by the files of src/config/ only.
 *
 * parse.c turns puma.rb source into values (sv_value_t, value.c) and hands
 * each directive's evaluated arguments to its setter in the directive table
 * (directives.c; the setters read their arguments with args.c). cli.c
 * records flags as (directive, argument source) pairs and replays them
 * through sv_cfg_apply_at, so flags, env fallbacks and the file all go
 * through the same setters and bounds.
 */
#ifndef SV_CONFIG_INTERNAL_H
#define SV_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config/config.h"

/* At most this many arguments to one directive (fork_worker's list is the longest). */
#define SV_CFG_MAX_ARGS 24

typedef enum sv_vtype {
    SV_V_NIL = 0,
    SV_V_BOOL,
    SV_V_INT,
    SV_V_FLOAT,
    SV_V_STR,
    SV_V_SYM,
    SV_V_HASH,
    SV_V_ARRAY, /* elements in pairs, keys NULL */
    SV_V_RANGE, /* pairs[0]..pairs[1] (NIL: open), b: exclusive (...) */
} sv_vtype_t;

typedef struct sv_pair sv_pair_t;

/* A Ruby value. Owns s (STR, SYM: the name without ':') and pairs (HASH). */
typedef struct sv_value {
    sv_vtype_t type;
    bool b;
    int64_t i;
    double f;
    char *s;
    sv_pair_t *pairs;
    int npairs;
} sv_value_t;

struct sv_pair {
    char *key; /* symbol or string key, without ':'; NULL in arrays and ranges */
    sv_value_t val;
};

void sv_cfg_value_free(sv_value_t *v);
/* Deep copy; returns 0 or -ENOMEM (dst is then NIL). */
int sv_cfg_value_copy(sv_value_t *dst, const sv_value_t *src);
/* Ruby's inspect: "abc" with quotes, :sym, 2.5, nil, {...}. Truncated to cap. */
void sv_cfg_value_inspect(const sv_value_t *v, char *out, size_t cap);
/*
 * Ruby's conversions in place: how is "Integer", "Float", "to_i", "to_f",
 * "to_s", "to_str" or "to_sym". Returns 0, -1 with a message in err, or -ENOMEM.
 */
int sv_cfg_convert(sv_value_t *v, const char *how, char *err, size_t cap);
/* The value as the user typed it on a command line or in the environment. */
void sv_cfg_value_raw(const sv_value_t *v, char *out, size_t cap);

/*
 * Where a directive's arguments came from, for its error messages:
 * where is "config/puma.rb:4", "serval: -w" or "serval: WEB_CONCURRENCY".
 * raw is set for flags and env vars, whose values the user typed bare, so
 * type errors read "'abc' is not a whole number" instead of Ruby's inspect.
 */
typedef struct sv_site {
    sv_diag_t *diag;
    const char *where;
    bool raw;
} sv_site_t;

/*
 * Formats one diagnostic into d and returns SV_ECONFIG. Control characters a
 * user's value may carry (a newline in a flag) become '?': a diagnostic is
 * always exactly one line.
 */
int sv_cfg_diag(sv_diag_t *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Writes "where: message" into the site's diag; returns SV_ECONFIG. */
int sv_cfg_fail(const sv_site_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/*
 * Records "where: warning: message" in c->warnings (one line each): something
 * the config asks for that serval does not do, while startup goes on.
 */
void sv_cfg_warn(sv_config_t *c, const char *where, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

typedef struct sv_directive sv_directive_t;

typedef int (*sv_setter_fn)(sv_config_t *c, const sv_directive_t *d, const sv_value_t *args,
                            int nargs, const sv_site_t *s);
typedef void (*sv_show_fn)(const sv_config_t *c, const sv_directive_t *d, sv_json_t *w);

/* The field a generic setter writes and a generic show reads. */
typedef enum sv_fkind {
    SV_F_NONE = 0,
    SV_F_INT,  /* int */
    SV_F_I64,  /* int64_t */
    SV_F_SIZE, /* size_t */
    SV_F_DUR,  /* double seconds */
    SV_F_BOOL, /* bool */
    SV_F_STR,  /* char *, owned */
} sv_fkind_t;

enum {
    SV_D_HIDDEN = 1 << 0,   /* flag-only: not in files, --help or JSON */
    SV_D_GT = 1 << 1,       /* lo is exclusive: "must be greater than" */
    SV_D_BYTES = 1 << 2,    /* an integer field holding a size: SIZE syntax */
    SV_D_EMPTY_OK = 1 << 3, /* a string field that may be "" */
    SV_D_ARG_REQ = 1 << 4,  /* a boolean that needs its argument */
    SV_D_COMPAT = 1 << 5,   /* a Puma directive read for compatibility: not in --help or JSON */
};

struct sv_directive {
    const char *name;
    sv_setter_fn set;
    sv_show_fn show; /* NULL: no JSON key of its own (e.g. port is shown by bind) */
    sv_fkind_t kind;
    size_t off;
    double lo, hi;
    unsigned flags;
    const char *args; /* argument shape for --help and docs */
    const char *def;  /* default text where the value alone would mislead */
    const char *help;
};

/* The directive named name; hidden ones only when hidden_ok. */
const sv_directive_t *sv_cfg_lookup(const char *name, bool hidden_ok);
/*
 * compat.c: the message for a name that is not a directive. Returns 1 for a known
 * Puma or Ruby name (a hook, a Ruby-only or unsupported Puma directive):
 * the statement is skipped with the message as a warning. Returns 0 for an
 * unknown name (a typo: an error, with a suggestion when one is close).
 */
int sv_cfg_unknown_message(const char *name, char *out, size_t cap);
/* compat.c: Levenshtein distance, for "did you mean"; SIZE_MAX for names of 64 bytes or more. */
size_t sv_cfg_edit_distance(const char *a, const char *b);
/* The row at index i (0, 1, ...), hidden ones included; NULL past the last. */
const sv_directive_t *sv_cfg_directive_at(size_t i);
/* The index of a row of the table (d from sv_cfg_lookup or sv_cfg_directive_at). */
size_t sv_cfg_directive_index(const sv_directive_t *d);

/* value.c: number syntax. */
/* A parsed whole number ("12", "1_000", " 7 "); returns 0 or -1. */
int sv_cfg_parse_whole(const char *s, int64_t *out);
/* Ruby's String#to_i: the leading integer, 0 without one. */
int64_t sv_cfg_lenient_int(const char *s);
/* A parsed number ("2.5", "10", " 3e2 "), finite; returns 0 or -1. */
int sv_cfg_parse_number(const char *s, double *out);
/* A size: "65536", "64KB", "64k", "1 MB", "2GiB" (1024-based); returns 0 or -1. */
int sv_cfg_parse_size(const char *s, int64_t *out);
/* 6 -> "6", 0.5 -> "0.5": bounds and values in messages. */
void sv_cfg_fmt_num(double v, char *out, size_t cap);
/* 65536 -> "64KB" where exact, for --help. */
void sv_cfg_fmt_bytes(int64_t v, char *out, size_t cap);
/* Logical CPUs this process may run on (WEB_CONCURRENCY=auto, workers :auto). */
int sv_cfg_cpu_count(void);

/* binds.c: drop every bind (command-line binds replace the file's). */
void sv_cfg_clear_binds(sv_config_t *c);
/* binds.c: the scheme an address given without one meant: "unix://" for a path, "tcp://" for HOST:PORT, else NULL. */
const char *sv_cfg_scheme_for(const char *addr);

/* Parse args_src as a directive's argument list and apply it (parse.c). */
int sv_cfg_apply_at(sv_config_t *c, const char *name, const char *args_src, const sv_site_t *s);

/*
 * args.c: a setter's argument readers. Each returns 0 and fills *out, or
 * SV_ECONFIG with one line in the site's diag naming the directive (d->name)
 * and what it expected; d->flags matter where noted.
 */
/* "NAME expects WHAT, got VALUE" (or, for a flag, "'VALUE' is not WHAT"); returns SV_ECONFIG. */
int sv_cfg_type_error(const sv_directive_t *d, const sv_value_t *v, const char *what, const sv_site_t *s);
/* lo <= n <= hi arguments. */
int sv_cfg_want_nargs(const sv_directive_t *d, int n, int lo, int hi, const sv_site_t *s);
/* A whole number: an Integer, a whole Float, or a string of digits (ENV values are strings). */
int sv_cfg_want_int(const sv_directive_t *d, const sv_value_t *v, const sv_site_t *s, int64_t *out);
/* A size: an Integer, or a string with a unit ("64KB"). */
int sv_cfg_want_size(const sv_directive_t *d, const sv_value_t *v, const sv_site_t *s, int64_t *out);
/* A number of seconds: an Integer, a Float or a string of one. */
int sv_cfg_want_seconds(const sv_directive_t *d, const sv_value_t *v, const sv_site_t *s, double *out);
/* true, false, nil (false), "true" or "false". */
int sv_cfg_want_bool(const sv_directive_t *d, const sv_value_t *v, const sv_site_t *s, bool *out);
/* A string or symbol; *out points into v. Empty only with SV_D_EMPTY_OK. */
int sv_cfg_want_str(const sv_directive_t *d, const sv_value_t *v, const sv_site_t *s, const char **out);
/* One of words, as :symbol or "string"; *idx is its index. */
int sv_cfg_want_choice(const sv_directive_t *d, const sv_value_t *v, const char *const *words, int nwords,
                       const sv_site_t *s, int *idx);
/* lo <= v <= hi (lo < v with SV_D_GT); label names the quantity in the message ("threads minimum"). */
int sv_cfg_check_range(const sv_directive_t *d, const char *label, double v, double lo, double hi,
                       const sv_site_t *s);
/* A boolean directive's one optional argument (required with SV_D_ARG_REQ); none means true. */
int sv_cfg_get_bool_arg(const sv_directive_t *d, const sv_value_t *a, int n, const sv_site_t *s, bool *v);
/* *field becomes a copy of v (NULL: none); the old string is freed. */
int sv_cfg_replace_str(char **field, const char *v, const sv_site_t *s);

/* The field a row's off names, in a config: SV_CFG_FIELD(c, d, int) is an int *. */
#define SV_CFG_FIELD(c, d, type) ((type *)(void *)((char *)(c) + (d)->off))
#define SV_CFG_CFIELD(c, d, type) ((const type *)(const void *)((const char *)(c) + (d)->off))

/* The bind in effect when none is configured. */
#define SV_CFG_DEFAULT_BIND "tcp://0.0.0.0:9292"

/* Setters and JSON of the table's rows that live outside directives.c. */
/* binds.c */
int sv_cfg_set_bind(sv_config_t *c, const sv_directive_t *d, const sv_value_t *args, int nargs, const sv_site_t *s);
int sv_cfg_set_port(sv_config_t *c, const sv_directive_t *d, const sv_value_t *args, int nargs, const sv_site_t *s);
int sv_cfg_set_ssl_bind(sv_config_t *c, const sv_directive_t *d, const sv_value_t *args, int nargs,
                        const sv_site_t *s);
int sv_cfg_set_clear_binds(sv_config_t *c, const sv_directive_t *d, const sv_value_t *args, int nargs,
                           const sv_site_t *s);
void sv_cfg_show_binds(const sv_config_t *c, const sv_directive_t *d, sv_json_t *w);
/* control_app.c */
int sv_cfg_set_control(sv_config_t *c, const sv_directive_t *d, const sv_value_t *args, int nargs,
                       const sv_site_t *s);
int sv_cfg_set_control_url(sv_config_t *c, const sv_directive_t *d, const sv_value_t *args, int nargs,
                           const sv_site_t *s);
int sv_cfg_set_control_token(sv_config_t *c, const sv_directive_t *d, const sv_value_t *args, int nargs,
                             const sv_site_t *s);
int sv_cfg_set_control_data_url(sv_config_t *c, const sv_directive_t *d, const sv_value_t *args, int nargs,
                                const sv_site_t *s);
void sv_cfg_show_control(const sv_config_t *c, const sv_directive_t *d, sv_json_t *w);
/* The control app's rules between settings (a token without a server, ...): 0 or SV_ECONFIG. */
int sv_cfg_validate_control(const sv_config_t *c, sv_diag_t *diag);
/* compat.c */
int sv_cfg_set_compat_bool(sv_config_t *c, const sv_directive_t *d, const sv_value_t *args, int nargs,
                           const sv_site_t *s);
int sv_cfg_set_content_length_limit(sv_config_t *c, const sv_directive_t *d, const sv_value_t *args, int nargs,
                                    const sv_site_t *s);
/* edge.c: set_remote_address and bind_to_activated_sockets (rows in the table of directives.c). */
int sv_cfg_set_remote_address(sv_config_t *c, const sv_directive_t *d, const sv_value_t *args, int nargs,
                              const sv_site_t *s);
void sv_cfg_show_remote_address(const sv_config_t *c, const sv_directive_t *d, sv_json_t *w);
int sv_cfg_set_activated_sockets(sv_config_t *c, const sv_directive_t *d, const sv_value_t *args, int nargs,
                                 const sv_site_t *s);
void sv_cfg_show_activated_sockets(const sv_config_t *c, const sv_directive_t *d, sv_json_t *w);

/*
 * config.c: a rule between settings is broken. The message starts with where
 * the first of the directives about and about2 (NULL: none) that is not a
 * default was set ("config/puma.rb:3", "serval: -w"), else with the file,
 * else "serval"; returns SV_ECONFIG.
 */
int sv_cfg_fail_rule(const sv_config_t *c, sv_diag_t *diag, const char *about, const char *about2,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Records where directive d was set (a copy of where); returns 0 or -ENOMEM. */
int sv_cfg_set_origin(sv_config_t *c, const sv_directive_t *d, const char *where);

/* The flag table for --help (cli.c). */
void sv_cfg_print_flags(FILE *f);

#endif
