/*
 * The in-memory key table (see keys.h): open-addressing hash indexes over
 * arrays, built off to the side by db.c and swapped in whole, so a lookup
 * never sees a half-loaded table.  Four indexes: fingerprint -> key,
 * reserved name -> owner, owner -> first reserved name (by name order),
 * and the set of system names (table system_names: nobody's, ever).  A
 * reserved name that is also a system name (reserved before the system
 * list had it) is left out of the reserved indexes: the system list wins.
 *
 * Ownership: the current table is owned here and freed at the next swap;
 * pointers returned by lookups are valid until then.  Does no I/O.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tnl_name.h"
#include "keys.h"
#include "log.h"


typedef struct {
    char      name[TNL_NAME_MAX + 1];
    int64_t   user_id;
} tnl_reserved_t;


typedef struct {
    tnl_key_t        *keys;
    size_t            nkeys;
    tnl_reserved_t   *reserved;
    size_t            nreserved;
    tnl_reserved_t   *system;          /* user_id unused */
    size_t            nsystem;

    /* slots hold index + 1; 0 is empty; sizes are powers of two */
    uint32_t         *key_slots;
    size_t            key_mask;
    uint32_t         *res_slots;       /* by name */
    uint32_t         *owner_slots;     /* by user id, first name wins */
    size_t            res_mask;
    uint32_t         *sys_slots;
    size_t            sys_mask;
} tnl_keys_table_t;


struct tnl_keys_build_s {
    tnl_keys_table_t  t;
    size_t            keys_cap;
    size_t            reserved_cap;
    size_t            system_cap;
};


static tnl_keys_table_t     *tnl_keys_current;
static tnl_keys_changed_pt   tnl_keys_changed;


static uint64_t
tnl_keys_hash_str(const char *s)
{
    uint64_t  h;

    /* FNV-1a */

    h = 14695981039346656037ULL;

    while (*s) {
        h ^= (unsigned char) *s++;
        h *= 1099511628211ULL;
    }

    return h;
}


static uint64_t
tnl_keys_hash_id(int64_t id)
{
    uint64_t  h;

    h = (uint64_t) id;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;

    return h;
}


static void
tnl_keys_table_free(tnl_keys_table_t *t)
{
    if (t == NULL) {
        return;
    }

    free(t->keys);
    free(t->reserved);
    free(t->system);
    free(t->key_slots);
    free(t->sys_slots);
    free(t->res_slots);
    free(t->owner_slots);
}


static size_t
tnl_keys_slots_for(size_t n)
{
    size_t  size;

    size = 16;
    while (size < n * 2) {
        size *= 2;
    }

    return size;
}


static int
tnl_keys_reserved_cmp(const void *a, const void *b)
{
    return strcmp(((const tnl_reserved_t *) a)->name,
                  ((const tnl_reserved_t *) b)->name);
}


static int
tnl_keys_is_system_in(tnl_keys_table_t *t, const char *name)
{
    size_t  j;

    for (j = tnl_keys_hash_str(name) & t->sys_mask;
         t->sys_slots[j];
         j = (j + 1) & t->sys_mask)
    {
        if (strcmp(t->system[t->sys_slots[j] - 1].name, name) == 0) {
            return 1;
        }
    }

    return 0;
}


/* builds the indexes; duplicates (the database forbids them) keep the first */

static int
tnl_keys_index(tnl_keys_table_t *t)
{
    size_t    i, j, n, size;
    uint64_t  h;

    size = tnl_keys_slots_for(t->nsystem);
    t->sys_mask = size - 1;
    t->sys_slots = calloc(size, sizeof(uint32_t));
    if (t->sys_slots == NULL) {
        return -1;
    }

    for (i = 0; i < t->nsystem; i++) {
        h = tnl_keys_hash_str(t->system[i].name);

        for (j = h & t->sys_mask; t->sys_slots[j]; j = (j + 1) & t->sys_mask)
        {
            if (strcmp(t->system[t->sys_slots[j] - 1].name,
                       t->system[i].name) == 0)
            {
                break;
            }
        }

        if (t->sys_slots[j] == 0) {
            t->sys_slots[j] = (uint32_t) i + 1;
        }
    }

    /* the system list wins over an older reservation of the same name */
    for (i = 0, n = 0; i < t->nreserved; i++) {
        if (!tnl_keys_is_system_in(t, t->reserved[i].name)) {
            t->reserved[n++] = t->reserved[i];
        }
    }
    t->nreserved = n;

    size = tnl_keys_slots_for(t->nkeys);
    t->key_mask = size - 1;
    t->key_slots = calloc(size, sizeof(uint32_t));

    size = tnl_keys_slots_for(t->nreserved);
    t->res_mask = size - 1;
    t->res_slots = calloc(size, sizeof(uint32_t));
    t->owner_slots = calloc(size, sizeof(uint32_t));

    if (t->key_slots == NULL || t->res_slots == NULL
        || t->owner_slots == NULL)
    {
        return -1;
    }

    for (i = 0; i < t->nkeys; i++) {
        h = tnl_keys_hash_str(t->keys[i].fingerprint);

        for (j = h & t->key_mask; t->key_slots[j]; j = (j + 1) & t->key_mask)
        {
            if (strcmp(t->keys[t->key_slots[j] - 1].fingerprint,
                       t->keys[i].fingerprint) == 0)
            {
                break;
            }
        }

        if (t->key_slots[j] == 0) {
            t->key_slots[j] = (uint32_t) i + 1;
        }
    }

    /* name order makes "the first name reserved by a user" well defined */
    if (t->nreserved > 1) {
        qsort(t->reserved, t->nreserved, sizeof(tnl_reserved_t),
              tnl_keys_reserved_cmp);
    }

    for (i = 0; i < t->nreserved; i++) {
        h = tnl_keys_hash_str(t->reserved[i].name);

        for (j = h & t->res_mask; t->res_slots[j]; j = (j + 1) & t->res_mask)
        {
            if (strcmp(t->reserved[t->res_slots[j] - 1].name,
                       t->reserved[i].name) == 0)
            {
                break;
            }
        }

        if (t->res_slots[j] == 0) {
            t->res_slots[j] = (uint32_t) i + 1;
        }

        h = tnl_keys_hash_id(t->reserved[i].user_id);

        for (j = h & t->res_mask; t->owner_slots[j];
             j = (j + 1) & t->res_mask)
        {
            if (t->reserved[t->owner_slots[j] - 1].user_id
                == t->reserved[i].user_id)
            {
                break;
            }
        }

        if (t->owner_slots[j] == 0) {
            t->owner_slots[j] = (uint32_t) i + 1;
        }
    }

    return 0;
}


int
tnl_keys_loaded(void)
{
    return tnl_keys_current != NULL;
}


static const tnl_key_t *
tnl_keys_lookup(const char *fingerprint)
{
    tnl_keys_table_t  *t = tnl_keys_current;
    size_t             j;
    tnl_key_t         *k;

    if (t == NULL || fingerprint == NULL) {
        return NULL;
    }

    for (j = tnl_keys_hash_str(fingerprint) & t->key_mask;
         t->key_slots[j];
         j = (j + 1) & t->key_mask)
    {
        k = &t->keys[t->key_slots[j] - 1];
        if (strcmp(k->fingerprint, fingerprint) == 0) {
            return k;
        }
    }

    return NULL;
}


const tnl_key_t *
tnl_keys_find(const char *fingerprint)
{
    const tnl_key_t  *k;

    k = tnl_keys_lookup(fingerprint);

    return (k != NULL && !k->disabled) ? k : NULL;
}


int
tnl_keys_is_disabled(const char *fingerprint)
{
    const tnl_key_t  *k;

    k = tnl_keys_lookup(fingerprint);

    return k != NULL && k->disabled;
}


const char *
tnl_keys_reserved_name_of(int64_t user_id)
{
    tnl_keys_table_t  *t = tnl_keys_current;
    size_t             j;
    tnl_reserved_t    *r;

    if (t == NULL) {
        return NULL;
    }

    for (j = tnl_keys_hash_id(user_id) & t->res_mask;
         t->owner_slots[j];
         j = (j + 1) & t->res_mask)
    {
        r = &t->reserved[t->owner_slots[j] - 1];
        if (r->user_id == user_id) {
            return r->name;
        }
    }

    return NULL;
}


int
tnl_keys_is_system(const char *name)
{
    tnl_keys_table_t  *t = tnl_keys_current;

    if (t == NULL || name == NULL) {
        return 0;
    }

    return tnl_keys_is_system_in(t, name);
}


int64_t
tnl_keys_reserved_owner(const char *name)
{
    tnl_keys_table_t  *t = tnl_keys_current;
    size_t             j;
    tnl_reserved_t    *r;

    if (t == NULL || name == NULL) {
        return 0;
    }

    for (j = tnl_keys_hash_str(name) & t->res_mask;
         t->res_slots[j];
         j = (j + 1) & t->res_mask)
    {
        r = &t->reserved[t->res_slots[j] - 1];
        if (strcmp(r->name, name) == 0) {
            return r->user_id;
        }
    }

    return 0;
}


void
tnl_keys_on_change(tnl_keys_changed_pt handler)
{
    tnl_keys_changed = handler;
}


tnl_keys_build_t *
tnl_keys_build_start(void)
{
    return calloc(1, sizeof(tnl_keys_build_t));
}


int
tnl_keys_build_add_key(tnl_keys_build_t *b, const char *fingerprint,
    int64_t user_id, const char *user, int disabled)
{
    tnl_key_t  *keys, *k;
    size_t      cap;

    if (strlen(fingerprint) >= sizeof(k->fingerprint)
        || strlen(user) >= sizeof(k->user))
    {
        return -1;      /* cannot be a SHA256 fingerprint or a user name */
    }

    if (b->t.nkeys == UINT32_MAX - 1) {
        return -1;
    }

    if (b->t.nkeys == b->keys_cap) {
        cap = b->keys_cap ? b->keys_cap * 2 : 64;
        keys = realloc(b->t.keys, cap * sizeof(tnl_key_t));
        if (keys == NULL) {
            return -1;
        }
        b->t.keys = keys;
        b->keys_cap = cap;
    }

    k = &b->t.keys[b->t.nkeys++];
    strcpy(k->fingerprint, fingerprint);
    strcpy(k->user, user);
    k->user_id = user_id;
    k->disabled = disabled ? 1 : 0;

    return 0;
}


int
tnl_keys_build_add_reserved(tnl_keys_build_t *b, const char *name,
    int64_t user_id)
{
    tnl_reserved_t  *res, *r;
    size_t           cap;
    char             folded[TNL_NAME_MAX + 1];

    /* names in the table are what tunneld compares: valid, lower case */
    if (tnl_name_validate(name, strlen(name), folded, NULL) == -1) {
        return -1;
    }

    if (b->t.nreserved == UINT32_MAX - 1) {
        return -1;
    }

    if (b->t.nreserved == b->reserved_cap) {
        cap = b->reserved_cap ? b->reserved_cap * 2 : 16;
        res = realloc(b->t.reserved, cap * sizeof(tnl_reserved_t));
        if (res == NULL) {
            return -1;
        }
        b->t.reserved = res;
        b->reserved_cap = cap;
    }

    r = &b->t.reserved[b->t.nreserved++];
    strcpy(r->name, folded);
    r->user_id = user_id;

    return 0;
}


int
tnl_keys_build_add_system(tnl_keys_build_t *b, const char *name)
{
    tnl_reserved_t  *sys;
    size_t           cap;
    char             folded[TNL_NAME_MAX + 1];

    if (tnl_name_validate(name, strlen(name), folded, NULL) == -1) {
        return -1;
    }

    if (b->t.nsystem == UINT32_MAX - 1) {
        return -1;
    }

    if (b->t.nsystem == b->system_cap) {
        cap = b->system_cap ? b->system_cap * 2 : 32;
        sys = realloc(b->t.system, cap * sizeof(tnl_reserved_t));
        if (sys == NULL) {
            return -1;
        }
        b->t.system = sys;
        b->system_cap = cap;
    }

    strcpy(b->t.system[b->t.nsystem].name, folded);
    b->t.system[b->t.nsystem].user_id = 0;
    b->t.nsystem++;

    return 0;
}


void
tnl_keys_build_commit(tnl_keys_build_t *b)
{
    tnl_keys_table_t  *t;

    t = malloc(sizeof(tnl_keys_table_t));

    if (t == NULL || tnl_keys_index(&b->t) == -1) {
        /* keep the table in force rather than lock everybody out */
        tnl_log_error("keys: out of memory, reload dropped");
        free(t);
        tnl_keys_build_abort(b);
        return;
    }

    *t = b->t;
    free(b);

    if (tnl_keys_current != NULL) {
        tnl_keys_table_free(tnl_keys_current);
        free(tnl_keys_current);
    }

    tnl_keys_current = t;

    if (tnl_keys_changed) {
        tnl_keys_changed();
    }
}


void
tnl_keys_build_abort(tnl_keys_build_t *b)
{
    if (b == NULL) {
        return;
    }

    tnl_keys_table_free(&b->t);
    free(b);
}
