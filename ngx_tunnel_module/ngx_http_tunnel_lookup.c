
/*
 * Host -> route lookup: the access-phase handler of locations with
 * "tunnel_lookup".
 *
 * "NAME.DOMAIN" is parsed with tnl_host_to_name(); a cached route is used at
 * once, otherwise "HGETALL tunnel:route:NAME" goes to Redis and the request
 * is suspended (r->main->count++, NGX_DONE) until the reply or the
 * tunnel_lookup_timeout timer resumes the phase engine, which re-enters this
 * handler with the outcome in the request ctx: a route (NGX_DECLINED, the
 * balancer takes it from there), the 404 page or the 503 page.  It never
 * waits for a Redis that is known to be down.
 *
 * Ownership: each Redis lookup has a small heap record, owned by hiredis
 * until its callback runs (hiredis calls it exactly once, with NULL if the
 * link dies), then freed there.  The record points to the request only while
 * the request waits for it: the timeout and the ctx's r->pool cleanup
 * (request finished or aborted) both clear that pointer, so a late reply
 * never touches a freed request.  Subrequests skip the access phase, so
 * r is always the main request here.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_tunnel_module.h"
#include "ngx_http_tunnel_redis.h"
#include "ngx_http_tunnel_cache.h"
#include "ngx_http_tunnel_route.h"


/*
 * Lookups waiting for Redis, per worker.  A Redis that accepts commands but
 * does not answer (stopped, swapping) would otherwise let records and
 * hiredis's output buffer grow with every request until it recovers.
 */
#define NGX_HTTP_TUNNEL_LOOKUPS_MAX  8192


struct ngx_http_tunnel_lookup_s {
    ngx_http_request_t       *request;     /* NULL once not waiting */
    ngx_http_tunnel_ctx_t    *ctx;         /* in request->pool */
    ngx_event_t               timer;
    ngx_uint_t                generation;  /* of the cache, when sent */
};


static ngx_int_t ngx_http_tunnel_lookup_start(ngx_http_request_t *r,
    ngx_http_tunnel_loc_conf_t *tlcf);
static ngx_int_t ngx_http_tunnel_lookup_page(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *name);
static void ngx_http_tunnel_lookup_reply(redisAsyncContext *ac, void *reply,
    void *privdata);
static void ngx_http_tunnel_lookup_parse(ngx_http_request_t *r,
    ngx_http_tunnel_ctx_t *ctx, redisReply *rr, ngx_uint_t generation);
static void ngx_http_tunnel_lookup_timeout(ngx_event_t *ev);
static void ngx_http_tunnel_lookup_resume(ngx_http_request_t *r);


static ngx_uint_t  ngx_http_tunnel_lookups;


ngx_int_t
ngx_http_tunnel_lookup_handler(ngx_http_request_t *r)
{
    ngx_http_tunnel_ctx_t       *ctx;
    ngx_http_tunnel_loc_conf_t  *tlcf;

    tlcf = ngx_http_get_module_loc_conf(r, ngx_http_tunnel_module);

    if (!tlcf->lookup) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_tunnel_module);

    if (ctx == NULL) {
        if (tlcf->internal && ngx_http_tunnel_node_check(r) != NGX_OK) {
            return NGX_DONE;    /* refused and answered */
        }

        return ngx_http_tunnel_lookup_start(r, tlcf);
    }

    switch (ctx->state) {

    case NGX_HTTP_TUNNEL_FOUND:
        return NGX_DECLINED;

    case NGX_HTTP_TUNNEL_PENDING:
        return NGX_AGAIN;

    case NGX_HTTP_TUNNEL_UNKNOWN:
        return ngx_http_tunnel_lookup_page(r, NGX_HTTP_NOT_FOUND, &ctx->name);

    case NGX_HTTP_TUNNEL_OFFLINE:
        return ngx_http_tunnel_lookup_page(r, NGX_HTTP_BAD_GATEWAY,
                                           &ctx->name);

    default: /* NGX_HTTP_TUNNEL_UNAVAILABLE */
        return ngx_http_tunnel_lookup_page(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                           &ctx->name);
    }
}


static ngx_int_t
ngx_http_tunnel_lookup_start(ngx_http_request_t *r,
    ngx_http_tunnel_loc_conf_t *tlcf)
{
    u_char                    *p;
    size_t                     len, argvlen[2];
    ngx_int_t                  rc;
    ngx_str_t                  host, socket, user, node;
    const char                *argv[2];
    ngx_http_tunnel_ctx_t     *ctx;
    ngx_http_tunnel_lookup_t  *lk;
    char                       name[TNL_NAME_MAX + 1];
    u_char                     key[sizeof(NGX_HTTP_TUNNEL_ROUTE_PREFIX)
                                   + TNL_NAME_MAX];

    /* the host nginx chose the server by: request line, else Host */

    host = r->headers_in.server;

    if (host.len == 0 && r->headers_in.host) {
        host = r->headers_in.host->value;
    }

    if (tnl_host_to_name((char *) host.data, host.len,
                         (char *) tlcf->domain.data, tlcf->domain.len, name)
        != 0)
    {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "tunnel: host \"%V\" names no tunnel", &host);

        return ngx_http_tunnel_lookup_page(r, NGX_HTTP_NOT_FOUND, NULL);
    }

    ctx = ngx_http_tunnel_create_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->forwarded = tlcf->internal;

    len = ngx_strlen(name);

    ctx->name.data = ngx_pnalloc(r->pool, len);
    if (ctx->name.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(ctx->name.data, name, len);
    ctx->name.len = len;

    if (ngx_http_tunnel_cache_get(&ctx->name, &socket, &user, &node)
        == NGX_OK)
    {
        rc = ngx_http_tunnel_set_route(r, ctx, &socket, &user);

        if (rc == NGX_OK) {
            rc = ngx_http_tunnel_node_route(r, ctx, &node);

            if (rc == NGX_AGAIN) {
                r->main->count++;   /* the node lookup resumes it */
                return NGX_DONE;
            }

            if (rc == NGX_DECLINED) {
                return ngx_http_tunnel_lookup_handler(r);
            }

            if (rc == NGX_ERROR) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "tunnel: \"%V\" -> \"%V\" (cached)",
                           &ctx->name, &ctx->socket);
            return NGX_DECLINED;
        }

        if (rc == NGX_ERROR) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (ngx_http_tunnel_lookups >= NGX_HTTP_TUNNEL_LOOKUPS_MAX) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "tunnel: lookup of \"%V\" refused: %ui lookups are "
                      "already waiting for redis", &ctx->name,
                      ngx_http_tunnel_lookups);

        ctx->state = NGX_HTTP_TUNNEL_UNAVAILABLE;

        return ngx_http_tunnel_lookup_page(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                           &ctx->name);
    }

    lk = ngx_calloc(sizeof(ngx_http_tunnel_lookup_t), r->connection->log);
    if (lk == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    lk->generation = ngx_http_tunnel_cache_generation();

    p = ngx_cpymem(key, NGX_HTTP_TUNNEL_ROUTE_PREFIX,
                   sizeof(NGX_HTTP_TUNNEL_ROUTE_PREFIX) - 1);
    p = ngx_cpymem(p, ctx->name.data, ctx->name.len);

    argv[0] = "HGETALL";
    argvlen[0] = sizeof("HGETALL") - 1;
    argv[1] = (const char *) key;
    argvlen[1] = p - key;

    if (ngx_http_tunnel_redis_command(ngx_http_tunnel_lookup_reply, lk, 2,
                                      argv, argvlen)
        != NGX_OK)
    {
        ngx_free(lk);

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "tunnel: lookup of \"%V\" failed: redis is not "
                      "connected", &ctx->name);

        ctx->state = NGX_HTTP_TUNNEL_UNAVAILABLE;

        return ngx_http_tunnel_lookup_page(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                           &ctx->name);
    }

    ngx_http_tunnel_lookups++;

    lk->request = r;
    lk->ctx = ctx;
    lk->timer.handler = ngx_http_tunnel_lookup_timeout;
    lk->timer.data = lk;
    lk->timer.log = r->connection->log;

    ngx_add_timer(&lk->timer, tlcf->lookup_timeout);

    ctx->lookup = lk;

    r->main->count++;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "tunnel: looking up \"%V\"", &ctx->name);

    return NGX_DONE;
}


/*
 * Sends one of our pages and ends the request here.  Returning the status
 * instead would let error_page replace the page, and returning the filter's
 * NGX_OK would make the access phase grant access.
 */

static ngx_int_t
ngx_http_tunnel_lookup_page(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *name)
{
    ngx_http_finalize_request(r, ngx_http_tunnel_page_send(r, status, name));

    return NGX_DONE;
}


static void
ngx_http_tunnel_lookup_reply(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    ngx_http_tunnel_lookup_t  *lk = privdata;

    ngx_uint_t              generation;
    ngx_http_request_t     *r;
    ngx_http_tunnel_ctx_t  *ctx;

    r = lk->request;
    ctx = lk->ctx;
    generation = lk->generation;

    if (lk->timer.timer_set) {
        ngx_del_timer(&lk->timer);
    }

    ngx_free(lk);
    ngx_http_tunnel_lookups--;

    if (r == NULL) {
        /* timed out or the request is gone: nobody waits for this reply */
        return;
    }

    ctx->lookup = NULL;

    if (ngx_http_tunnel_redis_closing()) {
        /* the worker is exiting: do not start serving from exit_process */
        return;
    }

    ngx_http_tunnel_lookup_parse(r, ctx, reply, generation);

    if (ctx->state == NGX_HTTP_TUNNEL_PENDING) {
        return;     /* the node's address is being looked up */
    }

    ngx_http_tunnel_lookup_resume(r);
}


static void
ngx_http_tunnel_lookup_parse(ngx_http_request_t *r,
    ngx_http_tunnel_ctx_t *ctx, redisReply *rr, ngx_uint_t generation)
{
    ngx_int_t                 rc;
    ngx_str_t                 socket, user, node;
    ngx_http_tunnel_route_t   route;

    ctx->state = NGX_HTTP_TUNNEL_UNAVAILABLE;

    if (rr == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "tunnel: lookup of \"%V\" failed: redis link lost",
                      &ctx->name);
        return;
    }

    if (rr->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "tunnel: lookup of \"%V\" failed: %*s",
                      &ctx->name, (size_t) rr->len, rr->str);
        return;
    }

    switch (ngx_http_tunnel_route_decode(rr, &route)) {

    case NGX_HTTP_TUNNEL_ROUTE_NONE:
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "tunnel: no route for \"%V\"", &ctx->name);
        ctx->state = NGX_HTTP_TUNNEL_UNKNOWN;
        return;

    case NGX_HTTP_TUNNEL_ROUTE_BAD:
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "tunnel: lookup of \"%V\" failed: %s",
                      &ctx->name, route.error);
        return;

    default: /* NGX_HTTP_TUNNEL_ROUTE_FOUND */
        break;
    }

    socket.data = (u_char *) route.socket;
    socket.len = route.socket_len;
    user.data = (u_char *) route.user;
    user.len = route.user_len;
    node.data = (u_char *) route.node;
    node.len = route.node_len;

    rc = ngx_http_tunnel_set_route(r, ctx, &socket, &user);

    if (rc != NGX_OK) {
        ctx->state = NGX_HTTP_TUNNEL_UNAVAILABLE;
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "tunnel: \"%V\" -> \"%V\"", &ctx->name, &ctx->socket);

    ngx_http_tunnel_cache_put(generation, &ctx->name, &socket, &user, &node);

    if (ngx_http_tunnel_node_route(r, ctx, &node) == NGX_ERROR) {
        ctx->state = NGX_HTTP_TUNNEL_UNAVAILABLE;
    }
}


static void
ngx_http_tunnel_lookup_timeout(ngx_event_t *ev)
{
    ngx_http_tunnel_lookup_t  *lk = ev->data;

    ngx_http_request_t     *r;
    ngx_http_tunnel_ctx_t  *ctx;

    r = lk->request;
    ctx = lk->ctx;

    /* the record stays with hiredis until its callback runs */

    lk->request = NULL;
    ctx->lookup = NULL;
    ctx->state = NGX_HTTP_TUNNEL_UNAVAILABLE;

    ngx_log_error(NGX_LOG_ERR, r->connection->log, NGX_ETIMEDOUT,
                  "tunnel: lookup of \"%V\" timed out", &ctx->name);

    ngx_http_tunnel_lookup_resume(r);
}


/* the r->pool cleanup of the ctx: the request is going away */

void
ngx_http_tunnel_lookup_detach(ngx_http_tunnel_lookup_t *lk)
{
    lk->request = NULL;

    if (lk->timer.timer_set) {
        ngx_del_timer(&lk->timer);
    }
}


static void
ngx_http_tunnel_lookup_resume(ngx_http_request_t *r)
{
    ngx_connection_t  *c;

    c = r->connection;

    /* drops the reference taken when the lookup suspended the request */

    ngx_http_finalize_request(r, NGX_DONE);

    ngx_http_core_run_phases(r);
    ngx_http_run_posted_requests(c);
}
