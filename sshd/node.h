
/*
 * This node in the cluster (docs/SCALING.md): while --node-address is set,
 * every worker keeps the hash tunnel:node:<node id> (address of this
 * node's internal nginx listener, started, version) alive in Redis on the
 * route heartbeat, with the routes' TTL, so nginx on the other nodes can
 * forward requests for the tunnels held here.  A node that dies stops
 * refreshing it: the record expires with its routes.
 */

#ifndef TNL_NODE_H
#define TNL_NODE_H

#include "loop.h"


/* the package version (debian/changelog), for operators reading Redis */
#define TNL_NODE_VERSION  "0.1.0"


/* checks "HOST:PORT" with a numeric IPv4/IPv6 host; 0 or -1 */
int tnl_node_address_valid(const char *address);

/* starts advertising (a no-op without --node-address); 0 or -1 */
int tnl_node_start(tnl_loop_t *loop);
void tnl_node_stop(void);

#endif /* TNL_NODE_H */
