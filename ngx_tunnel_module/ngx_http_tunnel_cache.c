
/*
 * Per-worker route cache: tunnel name -> {socket, user, node}, so a busy
 * tunnel does not cost a Redis round trip per request.  The addresses of
 * other nodes are kept here too, as ":node:ID" -> {address, "", ""} (no
 * tunnel name starts with ':'; see ngx_http_tunnel_node.c).
 *
 * Entries live tunnel_cache_ttl (all the same), so insertion order is expiry
 * order: one queue serves both expiry and the size cap.  Entries are dropped
 * on "tunnel:invalidate NAME", when connecting to the entry's socket fails
 * (a killed tunneld publishes nothing: its routes just expire in Redis), and
 * everything is dropped when the subscription is (re-)established:
 * invalidations may have been missed.
 * While it is down nothing new is cached, but entries already here serve
 * until they expire, so a Redis blip does not take every busy tunnel down
 * at once.  A stale entry cannot reach the wrong session: every tunnel
 * instance has its own socket path, so the worst case is a 502.  A
 * generation number, bumped on every drop, keeps a lookup that raced with
 * an invalidation from caching the route it read before it.
 *
 * Not shared between workers (each has its own Redis links and gets every
 * invalidation).  Entries are heap memory owned by this file, one ngx_alloc
 * per entry holding the name, socket and user.
 */

#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_tunnel_cache.h"


#define NGX_HTTP_TUNNEL_CACHE_MAX  10000


typedef struct {
    ngx_str_node_t     sn;          /* sn.str is the name */
    ngx_queue_t        queue;
    ngx_msec_t         expires;
    ngx_str_t          socket;
    ngx_str_t          user;
    ngx_str_t          node;        /* the tunneld node holding it */
} ngx_http_tunnel_cache_node_t;


static void ngx_http_tunnel_cache_delete(ngx_http_tunnel_cache_node_t *cn);
static void ngx_http_tunnel_cache_expire(void);


static ngx_rbtree_t       ngx_http_tunnel_cache_tree;
static ngx_rbtree_node_t  ngx_http_tunnel_cache_sentinel;
static ngx_queue_t        ngx_http_tunnel_cache_queue;
static ngx_uint_t         ngx_http_tunnel_cache_count;
static ngx_uint_t         ngx_http_tunnel_cache_gen;
static ngx_msec_t         ngx_http_tunnel_cache_ttl;
static ngx_uint_t         ngx_http_tunnel_cache_on;
static ngx_uint_t         ngx_http_tunnel_cache_ready;


void
ngx_http_tunnel_cache_init(ngx_msec_t ttl)
{
    ngx_rbtree_init(&ngx_http_tunnel_cache_tree,
                    &ngx_http_tunnel_cache_sentinel,
                    ngx_str_rbtree_insert_value);
    ngx_queue_init(&ngx_http_tunnel_cache_queue);

    ngx_http_tunnel_cache_count = 0;
    ngx_http_tunnel_cache_ttl = ttl;
    ngx_http_tunnel_cache_on = 0;
    ngx_http_tunnel_cache_ready = 1;
}


void
ngx_http_tunnel_cache_free(void)
{
    if (ngx_http_tunnel_cache_ready) {
        ngx_http_tunnel_cache_flush();
        ngx_http_tunnel_cache_ready = 0;
    }
}


void
ngx_http_tunnel_cache_enable(ngx_uint_t on)
{
    if (on) {
        ngx_http_tunnel_cache_flush();
    }

    ngx_http_tunnel_cache_on = on;
}


ngx_uint_t
ngx_http_tunnel_cache_generation(void)
{
    return ngx_http_tunnel_cache_gen;
}


static ngx_http_tunnel_cache_node_t *
ngx_http_tunnel_cache_find(ngx_str_t *name)
{
    uint32_t         hash;
    ngx_str_node_t  *sn;

    hash = ngx_crc32_short(name->data, name->len);

    sn = ngx_str_rbtree_lookup(&ngx_http_tunnel_cache_tree, name, hash);

    return (ngx_http_tunnel_cache_node_t *) sn;
}


ngx_int_t
ngx_http_tunnel_cache_get(ngx_str_t *name, ngx_str_t *socket,
    ngx_str_t *user, ngx_str_t *node)
{
    ngx_http_tunnel_cache_node_t  *cn;

    if (!ngx_http_tunnel_cache_ready) {
        return NGX_DECLINED;
    }

    ngx_http_tunnel_cache_expire();

    cn = ngx_http_tunnel_cache_find(name);
    if (cn == NULL) {
        return NGX_DECLINED;
    }

    *socket = cn->socket;
    *user = cn->user;
    *node = cn->node;

    return NGX_OK;
}


void
ngx_http_tunnel_cache_put(ngx_uint_t gen, ngx_str_t *name, ngx_str_t *socket,
    ngx_str_t *user, ngx_str_t *node)
{
    u_char                        *p;
    ngx_queue_t                   *q;
    ngx_http_tunnel_cache_node_t  *cn;

    if (!ngx_http_tunnel_cache_ready
        || !ngx_http_tunnel_cache_on
        || ngx_http_tunnel_cache_ttl == 0
        || gen != ngx_http_tunnel_cache_gen)
    {
        return;
    }

    ngx_http_tunnel_cache_expire();

    cn = ngx_http_tunnel_cache_find(name);
    if (cn) {
        ngx_http_tunnel_cache_delete(cn);
    }

    if (ngx_http_tunnel_cache_count >= NGX_HTTP_TUNNEL_CACHE_MAX) {
        q = ngx_queue_head(&ngx_http_tunnel_cache_queue);
        ngx_http_tunnel_cache_delete(
            ngx_queue_data(q, ngx_http_tunnel_cache_node_t, queue));
    }

    cn = ngx_alloc(sizeof(ngx_http_tunnel_cache_node_t)
                   + name->len + socket->len + user->len + node->len,
                   ngx_cycle->log);
    if (cn == NULL) {
        return;
    }

    p = (u_char *) (cn + 1);

    cn->sn.str.data = p;
    cn->sn.str.len = name->len;
    p = ngx_cpymem(p, name->data, name->len);

    cn->socket.data = p;
    cn->socket.len = socket->len;
    p = ngx_cpymem(p, socket->data, socket->len);

    /* an empty user or node may come as ngx_str_null: no memcpy from NULL */

    cn->user.data = p;
    cn->user.len = user->len;
    if (user->len) {
        p = ngx_cpymem(p, user->data, user->len);
    }

    cn->node.data = p;
    cn->node.len = node->len;
    if (node->len) {
        ngx_memcpy(p, node->data, node->len);
    }

    cn->sn.node.key = ngx_crc32_short(name->data, name->len);
    cn->expires = ngx_current_msec + ngx_http_tunnel_cache_ttl;

    ngx_rbtree_insert(&ngx_http_tunnel_cache_tree, &cn->sn.node);
    ngx_queue_insert_tail(&ngx_http_tunnel_cache_queue, &cn->queue);
    ngx_http_tunnel_cache_count++;
}


void
ngx_http_tunnel_cache_remove(ngx_str_t *name)
{
    ngx_http_tunnel_cache_node_t  *cn;

    ngx_http_tunnel_cache_gen++;

    if (!ngx_http_tunnel_cache_ready) {
        return;
    }

    cn = ngx_http_tunnel_cache_find(name);
    if (cn) {
        ngx_http_tunnel_cache_delete(cn);
    }
}


void
ngx_http_tunnel_cache_remove_socket(ngx_str_t *name, ngx_str_t *socket)
{
    ngx_http_tunnel_cache_node_t  *cn;

    /* a lookup that read the same dead route meanwhile must not cache it */
    ngx_http_tunnel_cache_gen++;

    if (!ngx_http_tunnel_cache_ready) {
        return;
    }

    cn = ngx_http_tunnel_cache_find(name);

    if (cn
        && cn->socket.len == socket->len
        && ngx_memcmp(cn->socket.data, socket->data, socket->len) == 0)
    {
        ngx_http_tunnel_cache_delete(cn);
    }
}


void
ngx_http_tunnel_cache_flush(void)
{
    ngx_queue_t  *q;

    ngx_http_tunnel_cache_gen++;

    if (!ngx_http_tunnel_cache_ready) {
        return;
    }

    while (!ngx_queue_empty(&ngx_http_tunnel_cache_queue)) {
        q = ngx_queue_head(&ngx_http_tunnel_cache_queue);
        ngx_http_tunnel_cache_delete(
            ngx_queue_data(q, ngx_http_tunnel_cache_node_t, queue));
    }
}


static void
ngx_http_tunnel_cache_expire(void)
{
    ngx_queue_t                   *q;
    ngx_http_tunnel_cache_node_t  *cn;

    while (!ngx_queue_empty(&ngx_http_tunnel_cache_queue)) {
        q = ngx_queue_head(&ngx_http_tunnel_cache_queue);
        cn = ngx_queue_data(q, ngx_http_tunnel_cache_node_t, queue);

        if ((ngx_msec_int_t) (cn->expires - ngx_current_msec) > 0) {
            return;
        }

        ngx_http_tunnel_cache_delete(cn);
    }
}


static void
ngx_http_tunnel_cache_delete(ngx_http_tunnel_cache_node_t *cn)
{
    ngx_rbtree_delete(&ngx_http_tunnel_cache_tree, &cn->sn.node);
    ngx_queue_remove(&cn->queue);
    ngx_http_tunnel_cache_count--;
    ngx_free(cn);
}
