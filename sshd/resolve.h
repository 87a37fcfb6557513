/*
 * Host names resolved off the event loop.  getaddrinfo() blocks (DNS
 * timeouts are counted in seconds), and hiredis and libpq call it inside
 * their connect functions, so tunneld resolves a name itself on a short
 * lived thread and hands the libraries a numeric address.
 *
 * The thread owns nothing but its request until it writes one byte to the
 * request's pipe; the loop then reads the result, calls back and frees the
 * request.  A cancelled request is still freed that way (the thread cannot
 * be interrupted inside getaddrinfo): its callback is simply not called.
 */

#ifndef TNL_RESOLVE_H
#define TNL_RESOLVE_H

#include "loop.h"


typedef struct tnl_resolve_s  tnl_resolve_t;

/*
 * addrs: one numeric address per entry of the hosts list, comma-separated
 * in the same order ("" for an entry that names a Unix socket directory),
 * or NULL with err set when a name did not resolve.  Valid during the call.
 */
typedef void (*tnl_resolve_pt)(const char *addrs, const char *err,
    void *data);

/*
 * hosts: a host name, or a comma-separated list of them (libpq's host=).
 * IPv4 is preferred over IPv6, as hiredis does.  Returns NULL when no
 * thread could be started (logged); cb is then never called.
 */
tnl_resolve_t *tnl_resolve_start(tnl_loop_t *loop, const char *hosts,
    tnl_resolve_pt cb, void *data);

/* cb will not be called; the request is freed when the thread is done */
void tnl_resolve_cancel(tnl_resolve_t *r);

/* 1 when host needs no resolving: numeric, empty, or a socket path */
int tnl_resolve_is_numeric(const char *host);

/* 1 when every entry of a comma-separated list needs no resolving */
int tnl_resolve_list_is_numeric(const char *hosts);

#endif /* TNL_RESOLVE_H */
