
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
 * be dead.
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

    /*
     * A route can outlive its socket for up to its TTL (tunneld restarted
     * and unlinked it).  nginx would log connect()'s ENOENT as [crit]; say
     * what happened instead, forget the cached route and answer 502.  The
     * socket's path was NUL-terminated by ngx_http_tunnel_set_route().
     */

    if (ngx_file_info(ctx->sockaddr.sockaddr_un.sun_path, &fi)
        == NGX_FILE_ERROR
        && ngx_errno == NGX_ENOENT)
    {
        ngx_log_error(NGX_LOG_ERR, pc->log, 0,
                      "tunnel: socket \"%V\" of tunnel \"%V\" no longer "
                      "exists",
                      &ctx->socket, &ctx->name);

        ngx_http_tunnel_cache_remove(&ctx->name);

        pc->name = &ctx->peer_name;
        pc->tries = 0;

        return NGX_BUSY;
    }

    pc->sockaddr = &ctx->sockaddr.sockaddr;
    pc->socklen = ctx->socklen;
    pc->name = &ctx->peer_name;
    pc->cached = 0;
    pc->connection = NULL;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, pc->log, 0,
                   "tunnel: peer \"%V\" for \"%V\"", pc->name, &ctx->name);

    return NGX_OK;
}


static void
ngx_http_tunnel_balancer_free_peer(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t state)
{
    if (pc->tries) {
        pc->tries--;
    }
}
