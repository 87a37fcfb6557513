
/*
 * Route records as Redis returns them: the reply to
 * "HGETALL tunnel:route:NAME" decoded into the socket path, the user and the node holding it.
 * Pure functions over hiredis replies, no nginx types, so t/fuzz/route.c
 * fuzzes exactly what the lookup runs, on replies hiredis's own reader
 * built from fuzzed RESP bytes.  See ngx_http_tunnel_route.c.
 */

#ifndef _NGX_HTTP_TUNNEL_ROUTE_H_INCLUDED_
#define _NGX_HTTP_TUNNEL_ROUTE_H_INCLUDED_


#include <stddef.h>

#include <hiredis/hiredis.h>


typedef enum {
    NGX_HTTP_TUNNEL_ROUTE_FOUND = 0,  /* socket (and user) set */
    NGX_HTTP_TUNNEL_ROUTE_NONE,       /* no such route: an empty hash */
    NGX_HTTP_TUNNEL_ROUTE_BAD,        /* not a usable route: error says */
} ngx_http_tunnel_route_e;


typedef struct {
    const char  *socket;     /* into the reply; not NUL-terminated */
    size_t       socket_len;
    const char  *user;       /* "" when the record has none */
    size_t       user_len;
    const char  *node;       /* "" when the record has none */
    size_t       node_len;
    const char  *error;      /* BAD: why, for the log */
} ngx_http_tunnel_route_t;


/* rr: a reply of HGETALL (not NULL, not an error reply) */
ngx_http_tunnel_route_e ngx_http_tunnel_route_decode(const redisReply *rr,
    ngx_http_tunnel_route_t *route);

/*
 * 1 if the path can be an AF_UNIX peer address: absolute, no NUL, shorter
 * than sun_path (so a NUL still fits after it).
 */
int ngx_http_tunnel_route_socket_ok(const char *path, size_t len);


#endif /* _NGX_HTTP_TUNNEL_ROUTE_H_INCLUDED_ */
