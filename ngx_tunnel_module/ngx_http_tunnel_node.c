
/*
 * Cross-node routing (docs/SCALING.md).
 *
 * Every route names the node whose tunneld holds it.  When that is not this
 * node ("tunnel_node_id"), the request goes to that node's internal
 * listener over TCP instead of a local Unix socket: the address comes from
 * the node's record in Redis ("tunnel:node:ID", field "address", written
 * and TTL-refreshed by that node's tunneld), cached like routes (in the
 * route cache, under ":node:ID", which no tunnel name can be).  The same
 * proxy location and tunnel_balancer carry it, so streaming, WebSocket and
 * keepalive pooling (per node address) are the same as for a local tunnel.
 *
 * The forwarding node sends two headers, through proxy_set_header and the
 * variables $tunnel_node_auth and $tunnel_node_hop, both empty for a local
 * route (so the same two lines also strip whatever a client sent):
 *
 *     X-Tunnel-Node-Auth   the shared node secret (tunnel_node_secret_file)
 *     X-Tunnel-Hop         "1"
 *
 * A location with "tunnel_internal on" (the internal listener, a private
 * port) refuses a request with no or a wrong secret (403, compared in
 * constant time), without a hop count (400) or with one above 1 (508), and
 * resolves the tunnel only locally: a route held by yet another node
 * answers the 502 offline page, never a second hop.
 *
 * Ownership: the node lookup record is heap memory owned by hiredis until
 * its callback runs, exactly as in ngx_http_tunnel_lookup.c; the address
 * and node id handed to a request are copied into r->pool.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_tunnel_module.h"
#include "ngx_http_tunnel_redis.h"
#include "ngx_http_tunnel_cache.h"


#define NGX_HTTP_TUNNEL_NODE_PREFIX     "tunnel:node:"
#define NGX_HTTP_TUNNEL_NODE_CACHED     ":node:"
#define NGX_HTTP_TUNNEL_NODE_ID_MAX     255

#define NGX_HTTP_TUNNEL_AUTH_HEADER     "X-Tunnel-Node-Auth"
#define NGX_HTTP_TUNNEL_HOP_HEADER      "X-Tunnel-Hop"


struct ngx_http_tunnel_node_lookup_s {
    ngx_http_request_t       *request;     /* NULL once not waiting */
    ngx_http_tunnel_ctx_t    *ctx;         /* in request->pool */
    ngx_event_t               timer;
    ngx_uint_t                generation;
};


static ngx_int_t ngx_http_tunnel_node_set_peer(ngx_http_request_t *r,
    ngx_http_tunnel_ctx_t *ctx, ngx_str_t *addr);
static ngx_int_t ngx_http_tunnel_node_start(ngx_http_request_t *r,
    ngx_http_tunnel_ctx_t *ctx);
static void ngx_http_tunnel_node_reply(redisAsyncContext *ac, void *reply,
    void *privdata);
static void ngx_http_tunnel_node_parse(ngx_http_request_t *r,
    ngx_http_tunnel_ctx_t *ctx, redisReply *rr, ngx_uint_t generation);
static void ngx_http_tunnel_node_timeout(ngx_event_t *ev);
static void ngx_http_tunnel_node_resume(ngx_http_request_t *r);
static ngx_table_elt_t *ngx_http_tunnel_node_header(ngx_http_request_t *r,
    ngx_str_t *name);
static ngx_int_t ngx_http_tunnel_node_refuse(ngx_http_request_t *r,
    ngx_uint_t status, char *status_line, char *text);
static ngx_int_t ngx_http_tunnel_node_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


#define NGX_HTTP_TUNNEL_VAR_NODE_AUTH   0
#define NGX_HTTP_TUNNEL_VAR_NODE_HOP    1


static ngx_http_variable_t  ngx_http_tunnel_node_vars[] = {

    { ngx_string("tunnel_node_auth"), NULL, ngx_http_tunnel_node_variable,
      NGX_HTTP_TUNNEL_VAR_NODE_AUTH, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("tunnel_node_hop"), NULL, ngx_http_tunnel_node_variable,
      NGX_HTTP_TUNNEL_VAR_NODE_HOP, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


/*
 * A route is in the request ctx (set_route: the local Unix socket).  Decides
 * where it really goes.  NGX_OK: the peer is set (local, or the node's
 * address from the cache).  NGX_AGAIN: the node's address is being looked
 * up, ctx->state is PENDING and the lookup resumes the request (the caller
 * keeps it suspended).  NGX_DECLINED: ctx->state is OFFLINE (node record
 * gone, or a second hop would be needed).  NGX_ERROR: out of memory.
 */

ngx_int_t
ngx_http_tunnel_node_route(ngx_http_request_t *r, ngx_http_tunnel_ctx_t *ctx,
    ngx_str_t *node)
{
    u_char                       *p;
    ngx_str_t                     key, addr, user, none;
    ngx_http_tunnel_loc_conf_t   *tlcf;
    ngx_http_tunnel_main_conf_t  *tmcf;
    u_char                        buf[sizeof(NGX_HTTP_TUNNEL_NODE_CACHED)
                                      + NGX_HTTP_TUNNEL_NODE_ID_MAX];

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_tunnel_module);

    /* single node, an old route without "node", or ours: local */

    if (tmcf->node_id.len == 0
        || node->len == 0
        || (node->len == tmcf->node_id.len
            && ngx_memcmp(node->data, tmcf->node_id.data, node->len) == 0))
    {
        return NGX_OK;
    }

    tlcf = ngx_http_get_module_loc_conf(r, ngx_http_tunnel_module);

    if (tlcf->internal) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "tunnel: forwarded request for \"%V\" refused: its "
                      "route is on node \"%V\", not here, and a forwarded "
                      "request is never forwarded again (the route moved "
                      "while the request was under way)",
                      &ctx->name, node);
        ctx->state = NGX_HTTP_TUNNEL_OFFLINE;
        return NGX_DECLINED;
    }

    if (node->len > NGX_HTTP_TUNNEL_NODE_ID_MAX) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "tunnel: route of \"%V\" names a node id of %uz bytes",
                      &ctx->name, node->len);
        ctx->state = NGX_HTTP_TUNNEL_UNAVAILABLE;
        return NGX_DECLINED;
    }

    ctx->node.data = ngx_pstrdup(r->pool, node);
    if (ctx->node.data == NULL) {
        return NGX_ERROR;
    }

    ctx->node.len = node->len;

    p = ngx_cpymem(buf, NGX_HTTP_TUNNEL_NODE_CACHED,
                   sizeof(NGX_HTTP_TUNNEL_NODE_CACHED) - 1);
    p = ngx_cpymem(p, node->data, node->len);

    key.data = buf;
    key.len = p - buf;

    if (ngx_http_tunnel_cache_get(&key, &addr, &user, &none) == NGX_OK) {
        return ngx_http_tunnel_node_set_peer(r, ctx, &addr);
    }

    return ngx_http_tunnel_node_start(r, ctx);
}


/* "HOST:PORT", numeric (no resolver at request time), into the ctx */

static ngx_int_t
ngx_http_tunnel_node_set_peer(ngx_http_request_t *r,
    ngx_http_tunnel_ctx_t *ctx, ngx_str_t *addr)
{
    ngx_addr_t  a;

    ngx_memzero(&a, sizeof(ngx_addr_t));

    if (addr->len == 0
        || ngx_parse_addr_port(r->pool, &a, addr->data, addr->len) != NGX_OK
        || ngx_inet_get_port(a.sockaddr) == 0
        || a.socklen > sizeof(ngx_sockaddr_t))
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "tunnel: node \"%V\" (tunnel \"%V\") advertises an "
                      "unusable address \"%V\": it must be IP:PORT "
                      "(tunneld --node-address)",
                      &ctx->node, &ctx->name, addr);
        ctx->state = NGX_HTTP_TUNNEL_UNAVAILABLE;
        return NGX_DECLINED;
    }

    ngx_memzero(&ctx->sockaddr, sizeof(ngx_sockaddr_t));
    ngx_memcpy(&ctx->sockaddr, a.sockaddr, a.socklen);
    ctx->socklen = a.socklen;

    ctx->peer_name.data = ngx_pstrdup(r->pool, addr);
    if (ctx->peer_name.data == NULL) {
        return NGX_ERROR;
    }

    ctx->peer_name.len = addr->len;
    ctx->remote = 1;
    ctx->state = NGX_HTTP_TUNNEL_FOUND;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "tunnel: \"%V\" is on node \"%V\" at %V",
                   &ctx->name, &ctx->node, &ctx->peer_name);

    return NGX_OK;
}


static ngx_int_t
ngx_http_tunnel_node_start(ngx_http_request_t *r, ngx_http_tunnel_ctx_t *ctx)
{
    u_char                          *p;
    size_t                           argvlen[3];
    const char                      *argv[3];
    ngx_http_tunnel_loc_conf_t      *tlcf;
    ngx_http_tunnel_node_lookup_t   *nl;
    u_char                           key[sizeof(NGX_HTTP_TUNNEL_NODE_PREFIX)
                                         + NGX_HTTP_TUNNEL_NODE_ID_MAX];

    nl = ngx_calloc(sizeof(ngx_http_tunnel_node_lookup_t),
                    r->connection->log);
    if (nl == NULL) {
        return NGX_ERROR;
    }

    nl->generation = ngx_http_tunnel_cache_generation();

    p = ngx_cpymem(key, NGX_HTTP_TUNNEL_NODE_PREFIX,
                   sizeof(NGX_HTTP_TUNNEL_NODE_PREFIX) - 1);
    p = ngx_cpymem(p, ctx->node.data, ctx->node.len);

    argv[0] = "HGET";
    argvlen[0] = sizeof("HGET") - 1;
    argv[1] = (const char *) key;
    argvlen[1] = p - key;
    argv[2] = "address";
    argvlen[2] = sizeof("address") - 1;

    if (ngx_http_tunnel_redis_command(ngx_http_tunnel_node_reply, nl, 3,
                                      argv, argvlen)
        != NGX_OK)
    {
        ngx_free(nl);

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "tunnel: lookup of node \"%V\" (tunnel \"%V\") failed: "
                      "redis is not connected", &ctx->node, &ctx->name);

        ctx->state = NGX_HTTP_TUNNEL_UNAVAILABLE;
        return NGX_DECLINED;
    }

    tlcf = ngx_http_get_module_loc_conf(r, ngx_http_tunnel_module);

    nl->request = r;
    nl->ctx = ctx;
    nl->timer.handler = ngx_http_tunnel_node_timeout;
    nl->timer.data = nl;
    nl->timer.log = r->connection->log;

    ngx_add_timer(&nl->timer, tlcf->lookup_timeout);

    ctx->node_lookup = nl;
    ctx->state = NGX_HTTP_TUNNEL_PENDING;

    return NGX_AGAIN;
}


static void
ngx_http_tunnel_node_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    ngx_http_tunnel_node_lookup_t  *nl = privdata;

    ngx_uint_t              generation;
    ngx_http_request_t     *r;
    ngx_http_tunnel_ctx_t  *ctx;

    r = nl->request;
    ctx = nl->ctx;
    generation = nl->generation;

    if (nl->timer.timer_set) {
        ngx_del_timer(&nl->timer);
    }

    ngx_free(nl);

    if (r == NULL) {
        return;
    }

    ctx->node_lookup = NULL;

    if (ngx_http_tunnel_redis_closing()) {
        return;
    }

    ngx_http_tunnel_node_parse(r, ctx, reply, generation);
    ngx_http_tunnel_node_resume(r);
}


static void
ngx_http_tunnel_node_parse(ngx_http_request_t *r, ngx_http_tunnel_ctx_t *ctx,
    redisReply *rr, ngx_uint_t generation)
{
    u_char     *p;
    ngx_str_t   key, addr, none;
    u_char      buf[sizeof(NGX_HTTP_TUNNEL_NODE_CACHED)
                    + NGX_HTTP_TUNNEL_NODE_ID_MAX];

    ctx->state = NGX_HTTP_TUNNEL_UNAVAILABLE;

    if (rr == NULL || rr->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "tunnel: lookup of node \"%V\" (tunnel \"%V\") "
                      "failed: %s", &ctx->node, &ctx->name,
                      rr ? rr->str : "redis link lost");
        return;
    }

    if (rr->type == REDIS_REPLY_NIL) {
        /* its tunneld stopped refreshing it: its routes expire soon too */
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "tunnel: \"%V\" is on node \"%V\", which is gone "
                      "(no tunnel:node:%V record): offline",
                      &ctx->name, &ctx->node, &ctx->node);

        /* nor keep serving this 502 from the cached route: ask again */
        ngx_http_tunnel_cache_remove_socket(&ctx->name, &ctx->socket);

        ctx->state = NGX_HTTP_TUNNEL_OFFLINE;
        return;
    }

    if (rr->type != REDIS_REPLY_STRING) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "tunnel: lookup of node \"%V\" failed: unexpected "
                      "reply type %d", &ctx->node, rr->type);
        return;
    }

    addr.data = (u_char *) rr->str;
    addr.len = rr->len;

    if (ngx_http_tunnel_node_set_peer(r, ctx, &addr) != NGX_OK) {
        if (ctx->state == NGX_HTTP_TUNNEL_FOUND) {
            ctx->state = NGX_HTTP_TUNNEL_UNAVAILABLE;
        }
        return;
    }

    p = ngx_cpymem(buf, NGX_HTTP_TUNNEL_NODE_CACHED,
                   sizeof(NGX_HTTP_TUNNEL_NODE_CACHED) - 1);
    p = ngx_cpymem(p, ctx->node.data, ctx->node.len);

    key.data = buf;
    key.len = p - buf;
    ngx_str_null(&none);

    ngx_http_tunnel_cache_put(generation, &key, &addr, &none, &none);
}


static void
ngx_http_tunnel_node_timeout(ngx_event_t *ev)
{
    ngx_http_tunnel_node_lookup_t  *nl = ev->data;

    ngx_http_request_t     *r;
    ngx_http_tunnel_ctx_t  *ctx;

    r = nl->request;
    ctx = nl->ctx;

    nl->request = NULL;
    ctx->node_lookup = NULL;
    ctx->state = NGX_HTTP_TUNNEL_UNAVAILABLE;

    ngx_log_error(NGX_LOG_ERR, r->connection->log, NGX_ETIMEDOUT,
                  "tunnel: lookup of node \"%V\" (tunnel \"%V\") timed out",
                  &ctx->node, &ctx->name);

    ngx_http_tunnel_node_resume(r);
}


void
ngx_http_tunnel_node_detach(ngx_http_tunnel_node_lookup_t *nl)
{
    nl->request = NULL;

    if (nl->timer.timer_set) {
        ngx_del_timer(&nl->timer);
    }
}


static void
ngx_http_tunnel_node_resume(ngx_http_request_t *r)
{
    ngx_connection_t  *c;

    c = r->connection;

    ngx_http_finalize_request(r, NGX_DONE);

    ngx_http_core_run_phases(r);
    ngx_http_run_posted_requests(c);
}


/* a connect to the node failed: ask Redis for its address again */

void
ngx_http_tunnel_node_forget(ngx_http_tunnel_ctx_t *ctx)
{
    u_char     *p;
    ngx_str_t   key;
    u_char      buf[sizeof(NGX_HTTP_TUNNEL_NODE_CACHED)
                    + NGX_HTTP_TUNNEL_NODE_ID_MAX];

    if (ctx->node.len == 0 || ctx->node.len > NGX_HTTP_TUNNEL_NODE_ID_MAX) {
        return;
    }

    p = ngx_cpymem(buf, NGX_HTTP_TUNNEL_NODE_CACHED,
                   sizeof(NGX_HTTP_TUNNEL_NODE_CACHED) - 1);
    p = ngx_cpymem(p, ctx->node.data, ctx->node.len);

    key.data = buf;
    key.len = p - buf;

    ngx_http_tunnel_cache_remove(&key);
}


/*
 * The gate of "tunnel_internal" locations, before any lookup.  NGX_OK: a
 * forwarded request from a node holding the secret, hop 1.  Anything else
 * has been answered here (NGX_DONE).
 */

ngx_int_t
ngx_http_tunnel_node_check(ngx_http_request_t *r)
{
    u_char                       diff;
    size_t                       i;
    ngx_str_t                    name;
    ngx_int_t                    hop;
    ngx_table_elt_t             *auth, *h;
    ngx_http_tunnel_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_tunnel_module);

    ngx_str_set(&name, NGX_HTTP_TUNNEL_AUTH_HEADER);
    auth = ngx_http_tunnel_node_header(r, &name);

    /*
     * Constant time in the secret's bytes: every byte is compared whatever
     * the earlier ones gave; a wrong length compares the secret with itself
     * and still fails.
     */

    diff = 1;

    if (auth && tmcf->node_secret.len) {
        diff = (auth->value.len != tmcf->node_secret.len);

        for (i = 0; i < tmcf->node_secret.len; i++) {
            diff |= tmcf->node_secret.data[i]
                    ^ (auth->value.len == tmcf->node_secret.len
                       ? auth->value.data[i] : tmcf->node_secret.data[i]);
        }
    }

    if (diff) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "tunnel: internal listener refused a request from %V: "
                      "%s " NGX_HTTP_TUNNEL_AUTH_HEADER " header (only "
                      "nodes holding tunnel_node_secret_file may forward "
                      "here)", &r->connection->addr_text,
                      auth ? "wrong" : "no");

        return ngx_http_tunnel_node_refuse(r, NGX_HTTP_FORBIDDEN, NULL,
                   "forbidden: this port only takes requests forwarded by "
                   "another tunnel node\n");
    }

    ngx_str_set(&name, NGX_HTTP_TUNNEL_HOP_HEADER);
    h = ngx_http_tunnel_node_header(r, &name);

    hop = h ? ngx_atoi(h->value.data, h->value.len) : NGX_ERROR;

    if (hop == NGX_ERROR || hop < 1) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "tunnel: internal listener refused a request from %V: "
                      "no valid " NGX_HTTP_TUNNEL_HOP_HEADER " header (the "
                      "forwarding node's tunnel location lacks "
                      "\"proxy_set_header " NGX_HTTP_TUNNEL_HOP_HEADER
                      " $tunnel_node_hop\")", &r->connection->addr_text);

        return ngx_http_tunnel_node_refuse(r, NGX_HTTP_BAD_REQUEST, NULL,
                   "bad request: a forwarded request needs "
                   NGX_HTTP_TUNNEL_HOP_HEADER "\n");
    }

    if (hop > 1) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "tunnel: internal listener refused a request from %V "
                      "with hop count %i: a request crosses at most one "
                      "node hop (forwarding loop?)",
                      &r->connection->addr_text, hop);

        return ngx_http_tunnel_node_refuse(r, 508, "508 Loop Detected",
                   "loop detected: a forwarded request crosses at most one "
                   "node hop\n");
    }

    return NGX_OK;
}


static ngx_table_elt_t *
ngx_http_tunnel_node_header(ngx_http_request_t *r, ngx_str_t *name)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == name->len
            && ngx_strncasecmp(h[i].key.data, name->data, name->len) == 0)
        {
            return &h[i];
        }
    }
}


static ngx_int_t
ngx_http_tunnel_node_refuse(ngx_http_request_t *r, ngx_uint_t status,
    char *status_line, char *text)
{
    size_t        len;
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        ngx_http_finalize_request(r, rc);
        return NGX_DONE;
    }

    len = ngx_strlen(text);

    r->headers_out.status = status;
    r->headers_out.content_length_n = len;

    if (status_line) {
        r->headers_out.status_line.data = (u_char *) status_line;
        r->headers_out.status_line.len = ngx_strlen(status_line);
    }

    ngx_str_set(&r->headers_out.content_type, "text/plain");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return NGX_DONE;
    }

    b->pos = (u_char *) text;
    b->last = b->pos + len;
    b->memory = 1;
    b->last_buf = (r == r->main);
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        ngx_http_finalize_request(r, rc);
        return NGX_DONE;
    }

    ngx_http_finalize_request(r, ngx_http_output_filter(r, &out));

    return NGX_DONE;
}


/* $tunnel_node_auth, $tunnel_node_hop: set only when the peer is a node */

static ngx_int_t
ngx_http_tunnel_node_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_tunnel_ctx_t        *ctx;
    ngx_http_tunnel_main_conf_t  *tmcf;

    ctx = ngx_http_tunnel_get_ctx(r);

    if (ctx == NULL || !ctx->remote || ctx->state != NGX_HTTP_TUNNEL_FOUND) {
        v->not_found = 1;
        return NGX_OK;
    }

    if (data == NGX_HTTP_TUNNEL_VAR_NODE_AUTH) {
        tmcf = ngx_http_get_module_main_conf(r, ngx_http_tunnel_module);
        v->data = tmcf->node_secret.data;
        v->len = tmcf->node_secret.len;

    } else {
        v->data = (u_char *) "1";
        v->len = 1;
    }

    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


ngx_int_t
ngx_http_tunnel_node_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_tunnel_node_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


/* "tunnel_node_secret_file PATH": read once, at load time, trimmed */

char *
ngx_http_tunnel_node_secret_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_tunnel_main_conf_t *tmcf = conf;

    u_char           *p, *end;
    ssize_t           n;
    ngx_str_t        *value;
    ngx_file_t        file;
    ngx_file_info_t   fi;

    if (tmcf->node_secret.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_conf_full_name(cf->cycle, &value[1], 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));
    file.name = value[1];
    file.log = cf->log;

    file.fd = ngx_open_file(value[1].data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (file.fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "cannot open the node secret \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (ngx_fd_info(file.fd, &fi) == NGX_FILE_ERROR
        || ngx_file_size(&fi) > 4096)
    {
        ngx_close_file(file.fd);
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "the node secret \"%V\" is unreadable or longer "
                           "than 4096 bytes", &value[1]);
        return NGX_CONF_ERROR;
    }

    p = ngx_pnalloc(cf->pool, (size_t) ngx_file_size(&fi) + 1);
    if (p == NULL) {
        ngx_close_file(file.fd);
        return NGX_CONF_ERROR;
    }

    n = ngx_read_file(&file, p, (size_t) ngx_file_size(&fi), 0);
    ngx_close_file(file.fd);

    if (n == NGX_ERROR) {
        return NGX_CONF_ERROR;
    }

    end = p + n;
    while (end > p && (end[-1] == '\n' || end[-1] == '\r'
                       || end[-1] == ' ' || end[-1] == '\t'))
    {
        end--;
    }

    if (end - p < 16) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "the node secret in \"%V\" must be at least 16 "
                           "characters (e.g. `openssl rand -hex 32`)",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    for (n = 0; n < end - p; n++) {
        if (p[n] < 0x21 || p[n] > 0x7e) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "the node secret in \"%V\" must be one line "
                               "of printable characters without spaces",
                               &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    tmcf->node_secret.data = p;
    tmcf->node_secret.len = end - p;

    return NGX_CONF_OK;
}
