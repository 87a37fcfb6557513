/*
 * The in-memory table of authorized SSH keys, reserved names and system
 * names (nobody may open those: table system_names), the only
 * thing the libssh auth callback consults (it must answer synchronously).
 * Filled and replaced wholesale by db.c after each (re)load from
 * PostgreSQL; read by session/auth code on the same loop thread.  Entries
 * are owned by the table: copy what must outlive the next reload.
 */

#ifndef TNL_KEYS_H
#define TNL_KEYS_H

#include <stdint.h>


typedef struct {
    char      fingerprint[64];  /* "SHA256:..." as ssh-keygen -lf prints */
    int64_t   user_id;
    char      user[64];
    unsigned  disabled:1;       /* its user is disabled: never signs in */
} tnl_key_t;


/* 1 once a first load from PostgreSQL has succeeded */
int tnl_keys_loaded(void);

/* the key with this fingerprint, or NULL (unknown key, or user disabled) */
const tnl_key_t *tnl_keys_find(const char *fingerprint);

/*
 * 1 if the key is registered to a disabled user: such a key is refused,
 * never offered the device flow (issue 10) as if it were unknown
 */
int tnl_keys_is_disabled(const char *fingerprint);

/* the first name reserved by user_id (by name order), or NULL */
const char *tnl_keys_reserved_name_of(int64_t user_id);

/* 1 if name (valid, lower case) is on the system list, else 0 */
int tnl_keys_is_system(const char *name);

/* owner user id of a reserved name, or 0 if nobody reserved it */
int64_t tnl_keys_reserved_owner(const char *name);

/*
 * Called after each reload is swapped in, so the session code can close
 * live sessions whose key was removed or whose user was disabled (it asks
 * tnl_keys_find for each session's fingerprint).
 */
typedef void (*tnl_keys_changed_pt)(void);
void tnl_keys_on_change(tnl_keys_changed_pt handler);


/* used by db.c only: build a new table, then swap it in */
typedef struct tnl_keys_build_s  tnl_keys_build_t;

tnl_keys_build_t *tnl_keys_build_start(void);
int tnl_keys_build_add_key(tnl_keys_build_t *b, const char *fingerprint,
    int64_t user_id, const char *user, int disabled);
int tnl_keys_build_add_reserved(tnl_keys_build_t *b, const char *name,
    int64_t user_id);
int tnl_keys_build_add_system(tnl_keys_build_t *b, const char *name);
void tnl_keys_build_commit(tnl_keys_build_t *b);  /* swaps, frees old */
void tnl_keys_build_abort(tnl_keys_build_t *b);

#endif /* TNL_KEYS_H */
