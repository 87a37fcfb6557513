/*
 * The device flow, tunneld's side (issue 10, after RFC 8628): an unknown
 * key whose signature libssh verified gets a user code (8 letters of
 * BCDFGHJKLMNPQRSTVWXZ from getrandom, shown XXXX-XXXX); the row is made
 * by tunnel_activation_create() (sql/005_activation.sql: caps, hashing),
 * through db.c.  The session then waits, its auth message unanswered,
 * parked on the loop: no timer but its expiry and keepalive, no polling.
 * A decision arrives by NOTIFY tunnel_activation '<id> approved|denied';
 * an approval also adds the key, so the key table reload (keys.c) finds
 * it, and that is what lets the session in, as for a registered key.  A
 * check of the pending ids every few seconds is the fallback for
 * notifications lost while PostgreSQL was unreachable.
 *
 * Does not speak SSH: session.c holds the auth message and answers it
 * (tnl_session_activation_*).  Ownership: one tnl_activation_t per waiting
 * session, owned here; the session points to it and detaches with
 * tnl_activation_abandon() when it closes.  A record whose create query is
 * still out outlives its session, to cancel the row the answer names.
 */

#ifndef TNL_ACTIVATION_H
#define TNL_ACTIVATION_H

#include <stdint.h>

#include <libssh/libssh.h>

#include "loop.h"
#include "session.h"     /* tnl_activation_t is declared there */


typedef struct {
    int  enabled;            /* --no-activation turns it off */
    int  ttl;                /* --activation-ttl, seconds */
    int  max_per_addr;       /* --activation-max-per-addr */
    int  max_total;          /* --activation-max */
} tnl_activation_conf_t;

extern tnl_activation_conf_t  tnl_activation_conf;


/* a worker, before tnl_db_start: LISTEN tunnel_activation; 0 or -1 */
int tnl_activation_init(tnl_loop_t *loop);

/*
 * Issues a code for s, which holds the signed auth request of key (its
 * fingerprint fp).  The answer comes later through
 * tnl_session_activation_pending() or _refused().  0, or -1: no code can
 * be issued for this key (a certificate, no memory): refuse it now.
 */
int tnl_activation_start(tnl_session_t *s, ssh_key key, const char *fp);

/* s closes, or got in: its code is cancelled (idempotent) */
void tnl_activation_abandon(tnl_session_t *s);

/* keys.h change hook: an approved key is in the table now */
void tnl_activation_keys_changed(void);

#endif /* TNL_ACTIVATION_H */
