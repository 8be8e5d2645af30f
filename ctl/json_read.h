/*
 * json_read.h: a small JSON reader for servalctl.
 *
 * Parses one JSON document into a tree of nodes held by a jr_doc_t, so that
 * servalctl can pick fields out of the stats and operation answers. Not a
 * general-purpose library: numbers are read as doubles, strings are decoded
 * (\uXXXX included, surrogate pairs joined) and NUL-terminated, nesting is
 * limited to JR_MAX_DEPTH, and member lookup is linear.
 *
 * The document owns everything: node pointers and strings stay valid until
 * jr_free. Lookups are NULL-safe: asking a NULL node, or a node of the wrong
 * type, yields NULL or the caller's default, so a chain such as
 *     jr_int(jr_get(d, jr_get(d, root, "last_status"), "backlog"), -1)
 * never needs intermediate checks.
 */
#ifndef SV_CTL_JSON_READ_H
#define SV_CTL_JSON_READ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JR_MAX_DEPTH 64

typedef enum jr_type { JR_NULL, JR_BOOL, JR_NUMBER, JR_STRING, JR_ARRAY, JR_OBJECT } jr_type_t;

typedef struct jr_node {
    jr_type_t type;
    const char *key;  /* member name when the parent is an object, else NULL */
    const char *str;  /* JR_STRING: decoded, NUL-terminated */
    double num;       /* JR_NUMBER */
    bool boolean;     /* JR_BOOL */
    int first_child;  /* JR_ARRAY / JR_OBJECT: index of the first child, -1 if empty */
    int next;         /* index of the next sibling, -1 if last */
    int count;        /* JR_ARRAY / JR_OBJECT: number of children */
} jr_node_t;

typedef struct jr_doc {
    jr_node_t *nodes; /* nodes[0] is the root */
    int n, cap;
    char *text;       /* a private copy of the input; strings point into it */
} jr_doc_t;

/*
 * Parse len bytes of text. Returns 0, or SV_EPARSE (bad JSON, trailing
 * garbage, too deep) or -ENOMEM; the document is empty after a failure and
 * must still be released with jr_free.
 */
int jr_parse(jr_doc_t *d, const char *text, size_t len);
void jr_free(jr_doc_t *d);

/* The root node, or NULL if nothing was parsed. */
const jr_node_t *jr_root(const jr_doc_t *d);
/* The member key of an object, or NULL. */
const jr_node_t *jr_get(const jr_doc_t *d, const jr_node_t *obj, const char *key);
/* Follow a dotted path of member keys ("restart.current.state"), or NULL. */
const jr_node_t *jr_path(const jr_doc_t *d, const jr_node_t *node, const char *path);
/* The i-th element of an array (or member of an object), or NULL. */
const jr_node_t *jr_at(const jr_doc_t *d, const jr_node_t *arr, int i);

/* Typed values, or def when node is NULL or of another type. */
int64_t jr_int(const jr_node_t *node, int64_t def);
double jr_num(const jr_node_t *node, double def);
const char *jr_str(const jr_node_t *node, const char *def);
bool jr_bool(const jr_node_t *node, bool def);
bool jr_is_null(const jr_node_t *node); /* true for a JSON null, false for NULL */

#endif
