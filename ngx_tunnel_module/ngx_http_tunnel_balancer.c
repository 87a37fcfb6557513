
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
 *
 * The socket path is checked (stat) before a connect() to it, so that a
 * vanished tunnel is logged as such (ngx_http_tunnel_balancer_gone()).
 * Only a connect needs it, and with "keepalive" most requests make none:
 * keepalive's get (1.22) calls ours first, then looks for a cached
 * connection to the address ours chose and returns NGX_DONE when it reuses
 * one.  So where something wraps the balancer's callbacks, init_wrapped_peer
 * wraps the wrapper in turn: our get_peer only sets the address, and
 * get_wrapped stats after the chain answered NGX_OK (a connect follows):
 * one newfstatat per new upstream connection instead of one per request
 * (docs/BENCHMARKS.md, "Per small request").  The upstream's init_peer is
 * replaced in postconfiguration: ngx_http_block() runs every module's
 * init_main_conf first, and the upstream module's one runs each upstream's
 * init_upstream chain, which is where keepalive installs its init_peer.
 * Without "keepalive" nothing wraps the balancer and get_peer stats before
 * every request, as it must.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_tunnel_module.h"
#include "ngx_http_tunnel_cache.h"


/* one per upstream with "tunnel_balancer", in the module's main conf */
typedef struct {
    ngx_http_upstream_srv_conf_t    *upstream;
    ngx_http_upstream_init_peer_pt   wrapped_init_peer;  /* keepalive's */
} ngx_http_tunnel_balancer_conf_t;


static ngx_int_t ngx_http_tunnel_balancer_init(ngx_conf_t *cf,
    ngx_http_upstream_srv_conf_t *us);
static ngx_int_t ngx_http_tunnel_balancer_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us);
static ngx_int_t ngx_http_tunnel_balancer_init_wrapped_peer(
    ngx_http_request_t *r, ngx_http_upstream_srv_conf_t *us);
static ngx_int_t ngx_http_tunnel_balancer_get_peer(ngx_peer_connection_t *pc,
    void *data);
static ngx_int_t ngx_http_tunnel_balancer_get_wrapped(
    ngx_peer_connection_t *pc, void *data);
static ngx_uint_t ngx_http_tunnel_balancer_gone(ngx_peer_connection_t *pc,
    ngx_http_tunnel_ctx_t *ctx);
static void ngx_http_tunnel_balancer_free_peer(ngx_peer_connection_t *pc,
    void *data, ngx_uint_t state);
static void ngx_http_tunnel_balancer_free_wrapped(ngx_peer_connection_t *pc,
    void *data, ngx_uint_t state);
#if (NGX_HTTP_SSL)
static ngx_int_t ngx_http_tunnel_balancer_set_session(
    ngx_peer_connection_t *pc, void *data);
static void ngx_http_tunnel_balancer_save_session(ngx_peer_connection_t *pc,
    void *data);
#endif


char *
ngx_http_tunnel_balancer(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_upstream_srv_conf_t     *uscf;
    ngx_http_tunnel_main_conf_t      *tmcf;
    ngx_http_tunnel_balancer_conf_t  *bcf;

    uscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_upstream_module);

    if (uscf->peer.init_upstream) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"tunnel_balancer\" must be the first balancing "
                           "directive in the upstream, before \"keepalive\"");
        return NGX_CONF_ERROR;
    }

    uscf->peer.init_upstream = ngx_http_tunnel_balancer_init;

    tmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_tunnel_module);

    if (tmcf->balancers == NULL) {
        tmcf->balancers = ngx_array_create(cf->pool, 1,
                                   sizeof(ngx_http_tunnel_balancer_conf_t));
        if (tmcf->balancers == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    bcf = ngx_array_push(tmcf->balancers);
    if (bcf == NULL) {
        return NGX_CONF_ERROR;
    }

    bcf->upstream = uscf;
    bcf->wrapped_init_peer = NULL;

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_tunnel_balancer_postconf(ngx_conf_t *cf,
    ngx_http_tunnel_main_conf_t *tmcf)
{
    ngx_uint_t                        i;
    ngx_http_upstream_srv_conf_t     *us;
    ngx_http_tunnel_balancer_conf_t  *bcf;

    if (tmcf->balancers == NULL) {
        return NGX_OK;
    }

    bcf = tmcf->balancers->elts;

    for (i = 0; i < tmcf->balancers->nelts; i++) {
        us = bcf[i].upstream;

        /*
         * The upstream module's init_main_conf has run the init_upstream
         * chain: us->peer.init is ours, or that of the module that wraps
         * ours ("keepalive" placed after "tunnel_balancer")
         */

        if (us->peer.init == NULL
            || us->peer.init == ngx_http_tunnel_balancer_init_peer)
        {
            continue;
        }

        bcf[i].wrapped_init_peer = us->peer.init;
        us->peer.init = ngx_http_tunnel_balancer_init_wrapped_peer;

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, cf->log, 0,
                       "tunnel: upstream \"%V\" wraps the balancer: its "
                       "socket is checked only before a connect", &us->host);
    }

    return NGX_OK;
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

    ctx->stat_by_wrapper = 0;
    ctx->stat_pending = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_http_tunnel_balancer_init_wrapped_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us)
{
    ngx_uint_t                        i;
    ngx_http_upstream_t              *u;
    ngx_http_tunnel_ctx_t            *ctx;
    ngx_http_tunnel_main_conf_t      *tmcf;
    ngx_http_tunnel_balancer_conf_t  *bcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_tunnel_module);

    bcf = tmcf->balancers->elts;

    for (i = 0; i < tmcf->balancers->nelts; i++) {
        if (bcf[i].upstream == us) {
            break;
        }
    }

    if (i == tmcf->balancers->nelts || bcf[i].wrapped_init_peer == NULL) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "tunnel: upstream \"%V\" is not a tunnel_balancer "
                      "one", &us->host);
        return NGX_ERROR;
    }

    /* keepalive's: calls ngx_http_tunnel_balancer_init_peer(), then wraps */

    if (bcf[i].wrapped_init_peer(r, us) != NGX_OK) {
        return NGX_ERROR;
    }

    u = r->upstream;
    ctx = ngx_http_tunnel_get_ctx(r);

    if (ctx == NULL
        || ctx->state != NGX_HTTP_TUNNEL_FOUND
        || u->peer.get == ngx_http_tunnel_balancer_get_peer)
    {
        /* nothing wrapped get_peer for this request: it stats itself */
        return NGX_OK;
    }

    ctx->stat_by_wrapper = 1;

    ctx->wrapped_data = u->peer.data;
    ctx->wrapped_get = u->peer.get;
    ctx->wrapped_free = u->peer.free;

    u->peer.data = ctx;
    u->peer.get = ngx_http_tunnel_balancer_get_wrapped;
    u->peer.free = ngx_http_tunnel_balancer_free_wrapped;

#if (NGX_HTTP_SSL)
    ctx->wrapped_set_session = u->peer.set_session;
    ctx->wrapped_save_session = u->peer.save_session;

    u->peer.set_session = ngx_http_tunnel_balancer_set_session;
    u->peer.save_session = ngx_http_tunnel_balancer_save_session;
#endif

    return NGX_OK;
}


static ngx_int_t
ngx_http_tunnel_balancer_get_peer(ngx_peer_connection_t *pc, void *data)
{
    ngx_http_tunnel_ctx_t  *ctx = data;

    pc->name = &ctx->peer_name;
    pc->cached = 0;
    pc->connection = NULL;

    if (ctx->remote) {
        /* another node's internal listener (ngx_http_tunnel_node.c) */
        pc->sockaddr = &ctx->sockaddr.sockaddr;
        pc->socklen = ctx->socklen;
        return NGX_OK;
    }

    if (ctx->stat_by_wrapper) {
        /*
         * keepalive is about to look for a cached connection to this
         * address: get_wrapped stats only if none is found
         */

        ctx->stat_pending = 1;

    } else if (ngx_http_tunnel_balancer_gone(pc, ctx)) {
        return NGX_DECLINED;
    }

    pc->sockaddr = &ctx->sockaddr.sockaddr;
    pc->socklen = ctx->socklen;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, pc->log, 0,
                   "tunnel: peer \"%V\" for \"%V\"", pc->name, &ctx->name);

    return NGX_OK;
}


static ngx_int_t
ngx_http_tunnel_balancer_get_wrapped(ngx_peer_connection_t *pc, void *data)
{
    ngx_http_tunnel_ctx_t  *ctx = data;

    ngx_int_t  rc;

    ctx->stat_pending = 0;

    rc = ctx->wrapped_get(pc, ctx->wrapped_data);

    /*
     * NGX_DONE: a cached connection, no connect(); NGX_OK: a connect()
     * follows (ngx_event_connect_peer()), to a socket get_peer has not
     * checked if it left stat_pending
     */

    if (rc != NGX_OK || !ctx->stat_pending) {
        return rc;
    }

    ctx->stat_pending = 0;

    if (ngx_http_tunnel_balancer_gone(pc, ctx)) {
        /* as if get_peer had declined: no address, so no peer.free */
        pc->sockaddr = NULL;
        pc->socklen = 0;
        return NGX_DECLINED;
    }

    return NGX_OK;
}


static ngx_uint_t
ngx_http_tunnel_balancer_gone(ngx_peer_connection_t *pc,
    ngx_http_tunnel_ctx_t *ctx)
{
    ngx_file_info_t  fi;

    /*
     * A route can outlive its socket for up to its TTL (tunneld restarted
     * and unlinked it).  nginx would log connect()'s ENOENT as [crit]; say
     * what happened instead, forget the cached route and answer 502.  The
     * socket's path was NUL-terminated by ngx_http_tunnel_set_route().
     *
     * The caller then returns NGX_DECLINED, not NGX_BUSY:
     * ngx_http_upstream_connect() (1.22) logs "no live upstreams" for
     * NGX_BUSY, a second and misleading line for this one event, while
     * NGX_DECLINED goes quietly to ngx_http_upstream_next(...,
     * NGX_HTTP_UPSTREAM_FT_ERROR).  With no try left and pc->sockaddr
     * unset (so peer.free is not called) that ends the request with 502,
     * which error_page turns into the offline page.
     */

    if (ngx_file_info(ctx->sockaddr.sockaddr_un.sun_path, &fi)
        != NGX_FILE_ERROR
        || ngx_errno != NGX_ENOENT)
    {
        return 0;
    }

    ngx_log_error(NGX_LOG_ERR, pc->log, 0,
                  "tunnel: socket \"%V\" of tunnel \"%V\" no longer exists",
                  &ctx->socket, &ctx->name);

    ngx_http_tunnel_cache_remove_socket(&ctx->name, &ctx->socket);

    pc->tries = 0;

    return 1;
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


static void
ngx_http_tunnel_balancer_free_wrapped(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t state)
{
    ngx_http_tunnel_ctx_t  *ctx = data;

    ctx->wrapped_free(pc, ctx->wrapped_data, state);
}


#if (NGX_HTTP_SSL)

static ngx_int_t
ngx_http_tunnel_balancer_set_session(ngx_peer_connection_t *pc, void *data)
{
    ngx_http_tunnel_ctx_t  *ctx = data;

    if (ctx->wrapped_set_session == NULL) {
        return NGX_OK;
    }

    return ctx->wrapped_set_session(pc, ctx->wrapped_data);
}


static void
ngx_http_tunnel_balancer_save_session(ngx_peer_connection_t *pc, void *data)
{
    ngx_http_tunnel_ctx_t  *ctx = data;

    if (ctx->wrapped_save_session) {
        ctx->wrapped_save_session(pc, ctx->wrapped_data);
    }
}

#endif
