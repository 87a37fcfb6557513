/*
 * A hiredis 0.14 async connection driven by tunneld's loop (loop.h), with
 * what hiredis 0.14 lacks: a connect timeout, a per-command timeout
 * (tnl_timer, since 0.14 has no timer hook) and reconnection with backoff.
 * It never blocks.  It knows nothing of routes: routes.c builds on it.
 *
 * Ownership: hiredis owns the redisAsyncContext and its fd (it closes the
 * fd); we only register the fd with the loop and unregister it in the
 * cleanup hook.  Each command record is owned here and freed after its
 * callback ran; the caller's data is never touched after that.
 */

#ifndef TNL_REDIS_H
#define TNL_REDIS_H

#include <stdint.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

#include "loop.h"


typedef struct tnl_redis_s  tnl_redis_t;

/*
 * A reply, or NULL when the command failed: timeout, connection lost.  The
 * reply is valid during the call only.  Called from inside hiredis or from
 * a timer: a handler may send new commands, but must not destroy rc.
 */
typedef void (*tnl_redis_reply_pt)(tnl_redis_t *rc, redisReply *reply,
    void *data);

/* up = 1: connected (commands may be sent now), 0: the connection is gone */
typedef void (*tnl_redis_state_pt)(tnl_redis_t *rc, int up, void *data);


/*
 * Parses url ("unix:/path", "unix:///path", "redis://host[:port]",
 * "host:port" or "sentinel://IP:PORT,IP:PORT,.../MASTERNAME": then every
 * connect asks a sentinel for the master first, checks ROLE, and a watch
 * connection follows +switch-master) and starts connecting.  tag names
 * the connection in logs.  Returns NULL on a bad url (logged).  A host
 * name is resolved off the loop (resolve.h) before every connect.
 */
tnl_redis_t *tnl_redis_create(tnl_loop_t *loop, const char *url,
    const char *tag, tnl_redis_state_pt on_state, void *data);

/* 1 while connected */
int tnl_redis_is_up(const tnl_redis_t *rc);

/*
 * Sends a command by argv.  Returns 0 when sent: cb is then called exactly
 * once, with the reply or with NULL after timeout_ms (the connection is
 * then dropped and re-established: a late reply could not be matched).
 * Returns -1 when not connected or on error: cb is not called.
 */
int tnl_redis_command(tnl_redis_t *rc, int argc, const char **argv,
    const size_t *argvlen, uint64_t timeout_ms, tnl_redis_reply_pt cb,
    void *data);

/*
 * SUBSCRIBE channel: cb receives every reply of the subscription (the
 * "subscribe" confirmation and each ["message", channel, payload]), then
 * NULL once when the connection goes away.  Subscribe again after the next
 * "up" event.  Returns 0, or -1 when not connected.
 */
int tnl_redis_subscribe(tnl_redis_t *rc, const char *channel,
    tnl_redis_reply_pt cb, void *data);

/*
 * Shutdown helper: waits at most ms for the replies of commands already
 * sent (poll() on this connection's fd alone, so it is safe to call after
 * the loop stopped).  Returns the number of commands still unanswered.
 */
int tnl_redis_flush(tnl_redis_t *rc, int ms);

/* drops the connection now (pending callbacks get NULL), then reconnects */
void tnl_redis_reset(tnl_redis_t *rc);

/* closes and frees; never call it from one of rc's callbacks */
void tnl_redis_destroy(tnl_redis_t *rc);

#endif /* TNL_REDIS_H */
