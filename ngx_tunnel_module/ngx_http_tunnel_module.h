
/*
 * ngx_http_tunnel_module: types shared by the files of the module.
 *
 * The module resolves "NAME.DOMAIN" Host headers to a live tunnel's Unix
 * socket (Redis hash tunnel:route:NAME, written by tunneld), and lets stock
 * proxy_pass stream to that socket through the tunnel_balancer.  It does not
 * proxy anything itself.
 *
 * Ownership: configuration lives in cf->pool; the per-request context and
 * everything it points to live in r->pool; the Redis links, the route cache
 * and in-flight lookup records are per-worker heap memory owned by
 * ngx_http_tunnel_redis.c, ngx_http_tunnel_cache.c and
 * ngx_http_tunnel_lookup.c respectively.
 */

#ifndef _NGX_HTTP_TUNNEL_MODULE_H_INCLUDED_
#define _NGX_HTTP_TUNNEL_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <tnl_name.h>


#define NGX_HTTP_TUNNEL_ROUTE_PREFIX    "tunnel:route:"
#define NGX_HTTP_TUNNEL_INVALIDATE      "tunnel:invalidate"


typedef struct ngx_http_tunnel_lookup_s  ngx_http_tunnel_lookup_t;
typedef struct ngx_http_tunnel_node_lookup_s  ngx_http_tunnel_node_lookup_t;


typedef struct {
    u_char                    *host;           /* numeric IP, NUL-ended */
    int                        port;
} ngx_http_tunnel_sentinel_t;


typedef struct {
    ngx_str_t                  redis;          /* as written, for logs */
    ngx_str_t                  redis_path;     /* "unix:" socket, NUL-ended */
    ngx_str_t                  redis_host;     /* numeric IP, NUL-ended */
    ngx_uint_t                 redis_port;
    ngx_array_t               *sentinels;      /* tunnel_redis_sentinel */
    ngx_str_t                  redis_master;   /* tunnel_redis_master */
    ngx_msec_t                 cache_ttl;
    ngx_uint_t                 lookup_used;    /* some location looks up */
    u_char                    *lookup_file;    /* where, for the error */
    ngx_uint_t                 lookup_line;
    ngx_str_t                  node_id;        /* tunnel_node_id */
    ngx_str_t                  node_secret;    /* tunnel_node_secret_file */
    ngx_array_t               *balancers;      /* of ngx_http_tunnel_
                                                  balancer_conf_t */
} ngx_http_tunnel_main_conf_t;


typedef struct {
    ngx_str_t                  domain;
    ngx_str_t                  ssh_host;       /* for the 404 hint; default
                                                  the domain */
    ngx_int_t                  ssh_port;       /* default 22: no -p */
    ngx_msec_t                 lookup_timeout;
    ngx_flag_t                 lookup;
    ngx_uint_t                 page;           /* NGX_HTTP_TUNNEL_PAGE_* */
    ngx_flag_t                 internal;       /* tunnel_internal */
} ngx_http_tunnel_loc_conf_t;


#define NGX_HTTP_TUNNEL_PAGE_NONE       0
#define NGX_HTTP_TUNNEL_PAGE_OFFLINE    1


typedef enum {
    NGX_HTTP_TUNNEL_PENDING = 0,
    NGX_HTTP_TUNNEL_FOUND,
    NGX_HTTP_TUNNEL_UNKNOWN,            /* no such tunnel: 404 */
    NGX_HTTP_TUNNEL_UNAVAILABLE,        /* Redis down, slow or odd: 503 */
    NGX_HTTP_TUNNEL_OFFLINE             /* its node is gone: 502 */
} ngx_http_tunnel_state_e;


/*
 * Per-request context, in r->pool.  Registered both as module ctx and as an
 * r->pool cleanup, so it can still be found after an internal redirect has
 * cleared the module ctx (error_page, $tunnel_name in the access log).
 */
typedef struct {
    ngx_http_request_t        *request;
    ngx_http_tunnel_state_e    state;
    ngx_str_t                  name;
    ngx_str_t                  user;
    ngx_str_t                  socket;
    ngx_str_t                  peer_name;      /* "unix:/path", for logs */
    ngx_sockaddr_t             sockaddr;
    socklen_t                  socklen;
    ngx_http_tunnel_lookup_t  *lookup;         /* in flight, or NULL */
    ngx_str_t                  node;           /* set when on another node */
    ngx_uint_t                 remote;         /* peer: that node, TCP */
    ngx_uint_t                 forwarded;      /* came from another node */
    ngx_http_tunnel_node_lookup_t  *node_lookup;  /* in flight, or NULL */

    /*
     * The balancer under a balancer that wraps it ("keepalive"): the
     * wrapper's peer callbacks and data, and whether the socket path is
     * still to be checked (ngx_http_tunnel_balancer.c).
     */
    unsigned                   stat_by_wrapper:1;
    unsigned                   stat_pending:1;
    void                      *wrapped_data;
    ngx_event_get_peer_pt      wrapped_get;
    ngx_event_free_peer_pt     wrapped_free;
#if (NGX_HTTP_SSL)
    ngx_event_set_peer_session_pt   wrapped_set_session;
    ngx_event_save_peer_session_pt  wrapped_save_session;
#endif
} ngx_http_tunnel_ctx_t;


extern ngx_module_t  ngx_http_tunnel_module;


/* ngx_http_tunnel_module.c */
ngx_http_tunnel_ctx_t *ngx_http_tunnel_get_ctx(ngx_http_request_t *r);
ngx_http_tunnel_ctx_t *ngx_http_tunnel_create_ctx(ngx_http_request_t *r);
ngx_int_t ngx_http_tunnel_set_route(ngx_http_request_t *r,
    ngx_http_tunnel_ctx_t *ctx, ngx_str_t *socket, ngx_str_t *user);

/* ngx_http_tunnel_lookup.c */
ngx_int_t ngx_http_tunnel_lookup_handler(ngx_http_request_t *r);
void ngx_http_tunnel_lookup_detach(ngx_http_tunnel_lookup_t *lk);

/* ngx_http_tunnel_pages.c */
ngx_int_t ngx_http_tunnel_page_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *name);
ngx_int_t ngx_http_tunnel_page_handler(ngx_http_request_t *r);

/* ngx_http_tunnel_node.c */
ngx_int_t ngx_http_tunnel_node_route(ngx_http_request_t *r,
    ngx_http_tunnel_ctx_t *ctx, ngx_str_t *node);
ngx_int_t ngx_http_tunnel_node_check(ngx_http_request_t *r);
void ngx_http_tunnel_node_detach(ngx_http_tunnel_node_lookup_t *nl);
void ngx_http_tunnel_node_forget(ngx_http_tunnel_ctx_t *ctx);
ngx_int_t ngx_http_tunnel_node_add_variables(ngx_conf_t *cf);
char *ngx_http_tunnel_node_secret_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* ngx_http_tunnel_balancer.c */
char *ngx_http_tunnel_balancer(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_tunnel_balancer_postconf(ngx_conf_t *cf,
    ngx_http_tunnel_main_conf_t *tmcf);


#endif /* _NGX_HTTP_TUNNEL_MODULE_H_INCLUDED_ */
