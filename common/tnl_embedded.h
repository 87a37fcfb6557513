/*
 * Text files compiled into a binary by tools/embed.pl: Redis Lua scripts in
 * tunneld, SQL migrations in tunnelctl.  Arrays end with a {NULL, NULL}.
 */

#ifndef TNL_EMBEDDED_H
#define TNL_EMBEDDED_H

typedef struct {
    const char  *name;      /* file base name, e.g. "claim.lua" */
    const char  *text;
} tnl_embedded_t;

/* returns the text of the named file, or NULL */
const char *tnl_embedded_find(const tnl_embedded_t *files, const char *name);

#endif /* TNL_EMBEDDED_H */
