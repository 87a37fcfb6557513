/*
 * The management API's handlers, called by api.c with a complete request.
 * Each one answers through api.h (now, later after tnl_api_hold, or as a
 * stream) and never keeps c past its answer or its abort callback.
 */

#ifndef TNL_API_HANDLERS_H
#define TNL_API_HANDLERS_H

#include "api.h"


/* api_routes.c: path and method -> handler, 404/405 otherwise */
void tnl_api_route(tnl_api_conn_t *c, const tnl_api_request_t *r);

/* api_status.c */
void tnl_api_healthz(tnl_api_conn_t *c, const tnl_api_request_t *r);
void tnl_api_metrics(tnl_api_conn_t *c, const tnl_api_request_t *r);

/* api_tunnels.c; name is the decoded last path segment */
void tnl_api_tunnels_list(tnl_api_conn_t *c, const tnl_api_request_t *r);
void tnl_api_tunnel_get(tnl_api_conn_t *c, const tnl_api_request_t *r,
    const char *name);
void tnl_api_tunnel_delete(tnl_api_conn_t *c, const tnl_api_request_t *r,
    const char *name);

#endif /* TNL_API_HANDLERS_H */
