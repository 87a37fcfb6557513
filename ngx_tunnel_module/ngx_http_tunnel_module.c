
/*
 * ngx_http_tunnel_module: the module itself -- directives, configuration,
 * the $tunnel_name and $tunnel_user variables, the request context, and the
 * worker start/stop hooks that open and close the Redis links.
 *
 * It does not look anything up (ngx_http_tunnel_lookup.c), talk to Redis
 * (ngx_http_tunnel_redis.c), cache (ngx_http_tunnel_cache.c), pick peers
 * (ngx_http_tunnel_balancer.c) or render pages (ngx_http_tunnel_pages.c).
 * Configuration is in cf->pool and never written at request time; the
 * request context is in r->pool.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_tunnel_module.h"
#include "ngx_http_tunnel_redis.h"
#include "ngx_http_tunnel_cache.h"
#include "ngx_http_tunnel_route.h"


static ngx_int_t ngx_http_tunnel_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_tunnel_init(ngx_conf_t *cf);
static void *ngx_http_tunnel_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_tunnel_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_tunnel_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_tunnel_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_tunnel_redis_addr(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_tunnel_redis_sentinel(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_tunnel_lookup(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_tunnel_page(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_tunnel_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static void ngx_http_tunnel_ctx_cleanup(void *data);
static ngx_int_t ngx_http_tunnel_init_process(ngx_cycle_t *cycle);
static void ngx_http_tunnel_exit_process(ngx_cycle_t *cycle);


static ngx_command_t  ngx_http_tunnel_commands[] = {

    { ngx_string("tunnel_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_tunnel_redis_addr,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("tunnel_redis_sentinel"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_tunnel_redis_sentinel,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("tunnel_redis_master"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_tunnel_main_conf_t, redis_master),
      NULL },

    { ngx_string("tunnel_domain"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tunnel_loc_conf_t, domain),
      NULL },

    { ngx_string("tunnel_ssh_host"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tunnel_loc_conf_t, ssh_host),
      NULL },

    { ngx_string("tunnel_ssh_port"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tunnel_loc_conf_t, ssh_port),
      NULL },

    { ngx_string("tunnel_lookup_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tunnel_loc_conf_t, lookup_timeout),
      NULL },

    { ngx_string("tunnel_cache_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_tunnel_main_conf_t, cache_ttl),
      NULL },

    { ngx_string("tunnel_lookup"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_tunnel_lookup,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("tunnel_balancer"),
      NGX_HTTP_UPS_CONF|NGX_CONF_NOARGS,
      ngx_http_tunnel_balancer,
      0,
      0,
      NULL },

    { ngx_string("tunnel_node_id"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_tunnel_main_conf_t, node_id),
      NULL },

    { ngx_string("tunnel_node_secret_file"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_tunnel_node_secret_file,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("tunnel_internal"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tunnel_loc_conf_t, internal),
      NULL },

    { ngx_string("tunnel_page"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_tunnel_page,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_tunnel_module_ctx = {
    ngx_http_tunnel_add_variables,         /* preconfiguration */
    ngx_http_tunnel_init,                  /* postconfiguration */

    ngx_http_tunnel_create_main_conf,      /* create main configuration */
    ngx_http_tunnel_init_main_conf,        /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_tunnel_create_loc_conf,       /* create location configuration */
    ngx_http_tunnel_merge_loc_conf         /* merge location configuration */
};


ngx_module_t  ngx_http_tunnel_module = {
    NGX_MODULE_V1,
    &ngx_http_tunnel_module_ctx,           /* module context */
    ngx_http_tunnel_commands,              /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_tunnel_init_process,          /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_tunnel_exit_process,          /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


#define NGX_HTTP_TUNNEL_VAR_NAME   0
#define NGX_HTTP_TUNNEL_VAR_USER   1


static ngx_http_variable_t  ngx_http_tunnel_vars[] = {

    { ngx_string("tunnel_name"), NULL, ngx_http_tunnel_variable,
      NGX_HTTP_TUNNEL_VAR_NAME, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("tunnel_user"), NULL, ngx_http_tunnel_variable,
      NGX_HTTP_TUNNEL_VAR_USER, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


/*
 * The module ctx is cleared by internal redirects (error_page 502 to the
 * offline page, named locations), but the r->pool cleanup registered with
 * the ctx survives them: find it there, as ngx_http_realip_module does.
 * Subrequests share the pool, hence the request check.
 */

ngx_http_tunnel_ctx_t *
ngx_http_tunnel_get_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t     *cln;
    ngx_http_tunnel_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_tunnel_module);

    if (ctx != NULL || !(r->internal || r->filter_finalize)) {
        return ctx;
    }

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_tunnel_ctx_cleanup) {
            ctx = cln->data;

            if (ctx->request == r) {
                ngx_http_set_ctx(r, ctx, ngx_http_tunnel_module);
                return ctx;
            }
        }
    }

    return NULL;
}


ngx_http_tunnel_ctx_t *
ngx_http_tunnel_create_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t     *cln;
    ngx_http_tunnel_ctx_t  *ctx;

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_tunnel_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    ctx->request = r;
    ctx->state = NGX_HTTP_TUNNEL_PENDING;

    cln->handler = ngx_http_tunnel_ctx_cleanup;
    cln->data = ctx;

    ngx_http_set_ctx(r, ctx, ngx_http_tunnel_module);

    return ctx;
}


/*
 * The request is going away (finished, or the client aborted while Redis was
 * still answering): the in-flight lookup record must forget it.
 */

static void
ngx_http_tunnel_ctx_cleanup(void *data)
{
    ngx_http_tunnel_ctx_t  *ctx = data;

    if (ctx->lookup) {
        ngx_http_tunnel_lookup_detach(ctx->lookup);
        ctx->lookup = NULL;
    }

    if (ctx->node_lookup) {
        ngx_http_tunnel_node_detach(ctx->node_lookup);
        ctx->node_lookup = NULL;
    }
}


/*
 * Copies a route (from a Redis reply or the cache, both short-lived) into
 * the request: socket path, user, and the AF_UNIX address the balancer
 * hands to the upstream.  The address is zero-filled and its length exact,
 * so the keepalive module's byte comparison of cached peers is exact too.
 */

ngx_int_t
ngx_http_tunnel_set_route(ngx_http_request_t *r, ngx_http_tunnel_ctx_t *ctx,
    ngx_str_t *socket, ngx_str_t *user)
{
    u_char              *p;
    struct sockaddr_un  *sun;

    if (!ngx_http_tunnel_route_socket_ok((const char *) socket->data,
                                         socket->len))
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "tunnel: route of \"%V\" has an unusable socket "
                      "path \"%V\"", &ctx->name, socket);
        return NGX_DECLINED;
    }

    p = ngx_pnalloc(r->pool, socket->len + sizeof("unix:") - 1 + user->len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ctx->peer_name.data = p;
    p = ngx_cpymem(p, "unix:", sizeof("unix:") - 1);
    ctx->socket.data = p;
    ctx->socket.len = socket->len;
    p = ngx_cpymem(p, socket->data, socket->len);
    ctx->peer_name.len = p - ctx->peer_name.data;

    ctx->user.data = p;
    ctx->user.len = user->len;
    ngx_memcpy(p, user->data, user->len);

    ngx_memzero(&ctx->sockaddr, sizeof(ngx_sockaddr_t));
    sun = &ctx->sockaddr.sockaddr_un;
    sun->sun_family = AF_UNIX;
    ngx_memcpy(sun->sun_path, socket->data, socket->len);
    ctx->socklen = offsetof(struct sockaddr_un, sun_path) + socket->len + 1;

    ctx->state = NGX_HTTP_TUNNEL_FOUND;

    return NGX_OK;
}


static ngx_int_t
ngx_http_tunnel_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    ngx_str_t              *s;
    ngx_http_tunnel_ctx_t  *ctx;

    ctx = ngx_http_tunnel_get_ctx(r);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    if (data == NGX_HTTP_TUNNEL_VAR_NAME) {
        s = &ctx->name;

    } else if (ctx->state == NGX_HTTP_TUNNEL_FOUND) {
        s = &ctx->user;

    } else {
        v->not_found = 1;
        return NGX_OK;
    }

    if (s->len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = s->len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    v->data = s->data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_tunnel_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_tunnel_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return ngx_http_tunnel_node_add_variables(cf);
}


static ngx_int_t
ngx_http_tunnel_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt          *h;
    ngx_http_core_main_conf_t    *cmcf;
    ngx_http_tunnel_main_conf_t  *tmcf;

    tmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_tunnel_module);

    if (ngx_http_tunnel_balancer_postconf(cf, tmcf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (!tmcf->lookup_used) {
        return NGX_OK;
    }

    if ((tmcf->node_id.len == 0) != (tmcf->node_secret.len == 0)) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"tunnel_node_id\" and \"tunnel_node_secret_file\" "
                      "go together: a node forwards to and accepts from "
                      "other nodes only with both (docs/SCALING.md)");
        return NGX_ERROR;
    }

    if ((tmcf->sentinels == NULL) != (tmcf->redis_master.len == 0)) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"tunnel_redis_sentinel\" and "
                      "\"tunnel_redis_master\" go together: the "
                      "sentinels' addresses and the name they know the "
                      "master by");
        return NGX_ERROR;
    }

    if (tmcf->sentinels != NULL && tmcf->redis.len) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"tunnel_redis\" and \"tunnel_redis_sentinel\" "
                      "exclude each other: with sentinels, the master's "
                      "address comes from them");
        return NGX_ERROR;
    }

    if (tmcf->redis.len == 0 && tmcf->sentinels == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"tunnel_lookup\" in %s:%ui needs \"tunnel_redis\" "
                      "(or \"tunnel_redis_sentinel\" and "
                      "\"tunnel_redis_master\") in the http block",
                      tmcf->lookup_file, tmcf->lookup_line);
        return NGX_ERROR;
    }

    if (tmcf->sentinels != NULL) {
        /* what the links' log lines name */

        tmcf->redis.data = ngx_pnalloc(cf->pool,
                                       tmcf->redis_master.len + 32);
        if (tmcf->redis.data == NULL) {
            return NGX_ERROR;
        }

        tmcf->redis.len = ngx_sprintf(tmcf->redis.data, "master %V of "
                                      "the sentinels", &tmcf->redis_master)
                          - tmcf->redis.data;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_tunnel_lookup_handler;

    return NGX_OK;
}


static void *
ngx_http_tunnel_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_tunnel_main_conf_t  *tmcf;

    tmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_tunnel_main_conf_t));
    if (tmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     tmcf->redis = { 0, NULL };
     *     tmcf->redis_path = { 0, NULL };
     *     tmcf->redis_host = { 0, NULL };
     *     tmcf->redis_port = 0;
     *     tmcf->lookup_used = 0;
     *     tmcf->balancers = NULL;
     */

    tmcf->cache_ttl = NGX_CONF_UNSET_MSEC;

    return tmcf;
}


static char *
ngx_http_tunnel_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_tunnel_main_conf_t  *tmcf = conf;

    ngx_conf_init_msec_value(tmcf->cache_ttl, 5000);

    return NGX_CONF_OK;
}


static void *
ngx_http_tunnel_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_tunnel_loc_conf_t  *tlcf;

    tlcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_tunnel_loc_conf_t));
    if (tlcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     tlcf->domain = { 0, NULL };
     *     tlcf->page = NGX_HTTP_TUNNEL_PAGE_NONE;
     */

    tlcf->lookup_timeout = NGX_CONF_UNSET_MSEC;
    tlcf->lookup = NGX_CONF_UNSET;
    tlcf->ssh_port = NGX_CONF_UNSET;
    tlcf->internal = NGX_CONF_UNSET;

    return tlcf;
}


static char *
ngx_http_tunnel_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_tunnel_loc_conf_t *prev = parent;
    ngx_http_tunnel_loc_conf_t *conf = child;

    ngx_http_tunnel_main_conf_t  *tmcf;

    ngx_conf_merge_str_value(conf->domain, prev->domain, "");
    ngx_conf_merge_str_value(conf->ssh_host, prev->ssh_host, "");
    ngx_conf_merge_value(conf->ssh_port, prev->ssh_port, 22);
    ngx_conf_merge_value(conf->internal, prev->internal, 0);

    if (conf->ssh_port < 1 || conf->ssh_port > 65535) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"tunnel_ssh_port\" must be 1..65535");
        return NGX_CONF_ERROR;
    }
    ngx_conf_merge_msec_value(conf->lookup_timeout, prev->lookup_timeout,
                              1000);

    /* tunnel_lookup is a location directive: it is never inherited */

    if (conf->lookup == NGX_CONF_UNSET) {
        conf->lookup = 0;
    }

    if (conf->lookup && conf->internal) {
        tmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_tunnel_module);

        if (tmcf->node_id.len == 0 || tmcf->node_secret.len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"tunnel_internal\" needs \"tunnel_node_id\" "
                               "and \"tunnel_node_secret_file\" in the http "
                               "block, before the servers");
            return NGX_CONF_ERROR;
        }
    }

    if (conf->lookup && conf->domain.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"tunnel_lookup\" needs \"tunnel_domain\"");
        return NGX_CONF_ERROR;
    }

    if (conf->lookup_timeout == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"tunnel_lookup_timeout\" must be more than 0");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * tunnel_redis_sentinel IP:PORT ...: numeric only, since the workers
 * connect to sentinels on every Redis reconnect and must not resolve.
 */

static char *
ngx_http_tunnel_redis_sentinel(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_tunnel_main_conf_t *tmcf = conf;

    size_t                       len;
    ngx_str_t                   *value;
    ngx_uint_t                   i;
    ngx_addr_t                   addr;
    ngx_http_tunnel_sentinel_t  *s;

    if (tmcf->sentinels != NULL) {
        return "is duplicate";
    }

    tmcf->sentinels = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                       sizeof(ngx_http_tunnel_sentinel_t));
    if (tmcf->sentinels == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        if (ngx_parse_addr_port(cf->pool, &addr, value[i].data,
                                value[i].len)
            != NGX_OK
            || ngx_inet_get_port(addr.sockaddr) == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"tunnel_redis_sentinel\" wants numeric "
                               "IP:PORT addresses (no host names: workers "
                               "must not resolve), not \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        s = ngx_array_push(tmcf->sentinels);
        if (s == NULL) {
            return NGX_CONF_ERROR;
        }

        s->host = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
        if (s->host == NULL) {
            return NGX_CONF_ERROR;
        }

        len = ngx_sock_ntop(addr.sockaddr, addr.socklen, s->host,
                            NGX_SOCKADDR_STRLEN, 0);
        s->host[len] = '\0';
        s->port = (int) ngx_inet_get_port(addr.sockaddr);
    }

    return NGX_CONF_OK;
}


/*
 * "unix:/path" or "HOST[:PORT]".  A host name is resolved here, at load
 * time: hiredis would otherwise call a blocking getaddrinfo() in the worker
 * on every reconnect.
 */

static char *
ngx_http_tunnel_redis_addr(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_tunnel_main_conf_t *tmcf = conf;

    u_char     *p;
    size_t      len;
    ngx_str_t  *value;
    ngx_url_t   u;

    if (tmcf->redis.len) {
        return "is duplicate";
    }

    value = cf->args->elts;
    tmcf->redis = value[1];

    if (value[1].len > 5 && ngx_strncmp(value[1].data, "unix:", 5) == 0) {
        len = value[1].len - 5;

        if (value[1].data[5] != '/'
            || len >= sizeof(((struct sockaddr_un *) 0)->sun_path))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"tunnel_redis\" needs an absolute socket "
                               "path shorter than 108 bytes in \"%V\"",
                               &value[1]);
            return NGX_CONF_ERROR;
        }

        p = ngx_pnalloc(cf->pool, len + 1);
        if (p == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memcpy(p, value[1].data + 5, len);
        p[len] = '\0';

        tmcf->redis_path.data = p;
        tmcf->redis_path.len = len;

        return NGX_CONF_OK;
    }

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = value[1];
    u.default_port = 6379;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        if (u.err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s in \"tunnel_redis\" \"%V\"", u.err,
                               &value[1]);
        }

        return NGX_CONF_ERROR;
    }

    if (u.naddrs == 0 || u.family == AF_UNIX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"tunnel_redis\" \"%V\" has no address",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    p = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    len = ngx_sock_ntop(u.addrs[0].sockaddr, u.addrs[0].socklen, p,
                        NGX_SOCKADDR_STRLEN, 0);

    /* ngx_sock_ntop() brackets IPv6 only when it prints a port */

    p[len] = '\0';

    tmcf->redis_host.data = p;
    tmcf->redis_host.len = len;
    tmcf->redis_port = ngx_inet_get_port(u.addrs[0].sockaddr);

    return NGX_CONF_OK;
}


static char *
ngx_http_tunnel_lookup(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_tunnel_loc_conf_t *tlcf = conf;

    ngx_http_tunnel_main_conf_t  *tmcf;

    if (tlcf->lookup != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    tlcf->lookup = 1;

    tmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_tunnel_module);

    if (!tmcf->lookup_used) {
        tmcf->lookup_used = 1;
        tmcf->lookup_file = cf->conf_file->file.name.data;
        tmcf->lookup_line = cf->conf_file->line;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_tunnel_page(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_tunnel_loc_conf_t *tlcf = conf;

    ngx_str_t                 *value;
    ngx_http_core_loc_conf_t  *clcf;

    if (tlcf->page != NGX_HTTP_TUNNEL_PAGE_NONE) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "offline") != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "unknown tunnel page \"%V\", "
                           "the only one is \"offline\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    tlcf->page = NGX_HTTP_TUNNEL_PAGE_OFFLINE;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_tunnel_page_handler;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_tunnel_init_process(ngx_cycle_t *cycle)
{
    ngx_http_tunnel_main_conf_t  *tmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    tmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_tunnel_module);

    if (tmcf == NULL || !tmcf->lookup_used) {
        return NGX_OK;
    }

    ngx_http_tunnel_cache_init(tmcf->cache_ttl);

    return ngx_http_tunnel_redis_init_process(cycle, tmcf);
}


static void
ngx_http_tunnel_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_tunnel_redis_exit_process(cycle);
    ngx_http_tunnel_cache_free();
}
