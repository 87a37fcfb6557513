
/*
 * "tunnel_balancer" in an upstream block: the peer of each request is the
 * Unix socket of the tunnel its lookup found, so stock proxy_pass streams to
 * the tunnel and "keepalive" (placed after this directive) caches idle
 * connections per socket path.  One path per tunnel instance makes that
 * cache exact: a connection can never be reused for another tunnel.
 *
 *     upstream tunnels {
 *         tunnel_balancer;
 *         keepalive 64;
 *         server 127.0.0.1:1;    # placeholder, never used
 *     }
 *
 * The keepalive module wraps whatever peer.init_upstream it finds when its
 * directive is parsed, hence "before keepalive".  The balancer owns nothing:
 * the address it hands out lives in the request ctx (r->pool).  One try per
 * request; nginx adds a retry itself when a cached connection turns out to
 * be dead.  A socket that is gone or refuses the connection also drops the
 * worker's cached route, so the next request asks Redis again.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_tunnel_module.h"
#include "ngx_http_tunnel_cache.h"


static ngx_int_t ngx_http_tunnel_balancer_init(ngx_conf_t *cf,
    ngx_http_upstream_srv_conf_t *us);
static ngx_int_t ngx_http_tunnel_balancer_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us);
static ngx_int_t ngx_http_tunnel_balancer_get_peer(ngx_peer_connection_t *pc,
    void *data);
static void ngx_http_tunnel_balancer_free_peer(ngx_peer_connection_t *pc,
    void *data, ngx_uint_t state);


char *
ngx_http_tunnel_balancer(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_upstream_srv_conf_t  *uscf;

    uscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_upstream_module);

    if (uscf->peer.init_upstream) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"tunnel_balancer\" must be the first balancing "
                           "directive in the upstream, before \"keepalive\"");
        return NGX_CONF_ERROR;
    }

    uscf->peer.init_upstream = ngx_http_tunnel_balancer_init;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_tunnel_balancer_init(ngx_conf_t *cf,
    ngx_http_upstream_srv_conf_t *us)
{
    /* validates the placeholder server and sets up what others expect */

    if (ngx_http_upstream_init_round_robin(cf, us) != NGX_OK) {
        return NGX_ERROR;
    }

    us->peer.init = ngx_http_tunnel_balancer_init_peer;

    return NGX_OK;
}


static ngx_int_t
ngx_http_tunnel_balancer_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us)
{
    ngx_http_upstream_t    *u;
    ngx_http_tunnel_ctx_t  *ctx;

    ctx = ngx_http_tunnel_get_ctx(r);

    if (ctx == NULL || ctx->state != NGX_HTTP_TUNNEL_FOUND) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "tunnel: upstream \"%V\" uses tunnel_balancer but the "
                      "location has no tunnel_lookup route", &us->host);
        return NGX_ERROR;
    }

    u = r->upstream;

    u->peer.data = ctx;
    u->peer.get = ngx_http_tunnel_balancer_get_peer;
    u->peer.free = ngx_http_tunnel_balancer_free_peer;
    u->peer.tries = 1;

    return NGX_OK;
}


static ngx_int_t
ngx_http_tunnel_balancer_get_peer(ngx_peer_connection_t *pc, void *data)
{
    ngx_http_tunnel_ctx_t  *ctx = data;

    ngx_file_info_t  fi;

    pc->name = &ctx->peer_name;
    pc->cached = 0;
    pc->connection = NULL;

    if (ctx->remote) {
        /* another node's internal listener (ngx_http_tunnel_node.c) */
        pc->sockaddr = &ctx->sockaddr.sockaddr;
        pc->socklen = ctx->socklen;
        return NGX_OK;
    }

    /*
     * A route can outlive its socket for up to its TTL (tunneld restarted
     * and unlinked it).  nginx would log connect()'s ENOENT as [crit]; say
     * what happened instead, forget the cached route and answer 502.  The
     * socket's path was NUL-terminated by ngx_http_tunnel_set_route().
     *
     * NGX_DECLINED, not NGX_BUSY: ngx_http_upstream_connect() (1.22) logs
     * "no live upstreams" for NGX_BUSY, a second and misleading line for
     * this one event, while NGX_DECLINED goes quietly to
     * ngx_http_upstream_next(..., NGX_HTTP_UPSTREAM_FT_ERROR).  With no try
     * left and pc->sockaddr unset (so peer.free is not called) that ends
     * the request with 502, which error_page turns into the offline page.
     */

    if (ngx_file_info(ctx->sockaddr.sockaddr_un.sun_path, &fi)
        == NGX_FILE_ERROR
        && ngx_errno == NGX_ENOENT)
    {
        ngx_log_error(NGX_LOG_ERR, pc->log, 0,
                      "tunnel: socket \"%V\" of tunnel \"%V\" no longer "
                      "exists",
                      &ctx->socket, &ctx->name);

        ngx_http_tunnel_cache_remove_socket(&ctx->name, &ctx->socket);

        pc->tries = 0;

        return NGX_DECLINED;
    }

    pc->sockaddr = &ctx->sockaddr.sockaddr;
    pc->socklen = ctx->socklen;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, pc->log, 0,
                   "tunnel: peer \"%V\" for \"%V\"", pc->name, &ctx->name);

    return NGX_OK;
}


static void
ngx_http_tunnel_balancer_free_peer(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t state)
{
    ngx_http_tunnel_ctx_t  *ctx = data;

    /*
     * A failed try without a connection is a failed connect(): on a Unix
     * socket it fails at once, ECONNREFUSED when tunneld was killed (its
     * socket file stays, nobody listens) or ENOENT.  ngx_event_connect_peer()
     * has already logged it and closed the connection; any later failure
     * (timeout, reset, bad header) still has pc->connection here.  The route
     * is then most likely dead but may stay in Redis until its TTL, with no
     * invalidation (a killed tunneld publishes none): drop this worker's
     * cached copy so the next request asks Redis again instead of serving
     * 502 from the cache for up to tunnel_cache_ttl.  A full listen queue
     * (EAGAIN) also lands here; re-asking Redis then costs one lookup.
     */

    if ((state & NGX_PEER_FAILED) && pc->connection == NULL) {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, pc->log, 0,
                       "tunnel: connect to \"%V\" failed, \"%V\" dropped "
                       "from the cache", &ctx->socket, &ctx->name);

        ngx_http_tunnel_cache_remove_socket(&ctx->name, &ctx->socket);

        if (ctx->remote) {
            ngx_http_tunnel_node_forget(ctx);
        }
    }

    if (pc->tries) {
        pc->tries--;
    }
}
