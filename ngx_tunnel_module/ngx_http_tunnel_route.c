
/*
 * Route record decoding (see ngx_http_tunnel_route.h).  tunneld writes
 * the record (redis-scripts/), but Redis is a separate process whose
 * contents anyone with its address can change, so every field is checked
 * before it becomes a peer address: string fields only, the socket path
 * as the balancer needs it, the last of a repeated field winning as in a
 * hash.  Owns nothing: the results point into the reply.
 */

#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "ngx_http_tunnel_route.h"


int
ngx_http_tunnel_route_socket_ok(const char *path, size_t len)
{
    struct sockaddr_un  sun;

    return len > 0 && path[0] == '/' && len < sizeof(sun.sun_path)
           && memchr(path, '\0', len) == NULL;
}


ngx_http_tunnel_route_e
ngx_http_tunnel_route_decode(const redisReply *rr,
    ngx_http_tunnel_route_t *route)
{
    size_t       i;
    redisReply  *f, *v;

    route->socket = NULL;
    route->socket_len = 0;
    route->user = "";
    route->user_len = 0;
    route->node = "";
    route->node_len = 0;
    route->error = NULL;

    if (rr->type != REDIS_REPLY_ARRAY) {
        route->error = "the reply is not an array";
        return NGX_HTTP_TUNNEL_ROUTE_BAD;
    }

    if (rr->elements == 0) {
        return NGX_HTTP_TUNNEL_ROUTE_NONE;
    }

    for (i = 0; i + 1 < rr->elements; i += 2) {
        f = rr->element[i];
        v = rr->element[i + 1];

        if (f == NULL || v == NULL || f->type != REDIS_REPLY_STRING
            || v->type != REDIS_REPLY_STRING)
        {
            continue;
        }

        if (f->len == sizeof("socket") - 1
            && memcmp(f->str, "socket", f->len) == 0)
        {
            route->socket = v->str;
            route->socket_len = v->len;

        } else if (f->len == sizeof("user") - 1
                   && memcmp(f->str, "user", f->len) == 0)
        {
            route->user = v->str;
            route->user_len = v->len;

        } else if (f->len == sizeof("node") - 1
                   && memcmp(f->str, "node", f->len) == 0)
        {
            route->node = v->str;
            route->node_len = v->len;
        }
    }

    if (route->socket_len == 0) {
        route->error = "the route has no socket";
        return NGX_HTTP_TUNNEL_ROUTE_BAD;
    }

    if (!ngx_http_tunnel_route_socket_ok(route->socket, route->socket_len)) {
        route->error = "the route's socket path is not usable";
        return NGX_HTTP_TUNNEL_ROUTE_BAD;
    }

    return NGX_HTTP_TUNNEL_ROUTE_FOUND;
}
