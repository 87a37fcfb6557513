
/*
 * Per-worker route cache: tunnel name -> {socket, user, node}, each entry
 * kept for tunnel_cache_ttl.  See ngx_http_tunnel_cache.c.  Also holds the
 * node addresses (ngx_http_tunnel_node.c), under ":node:ID".
 */

#ifndef _NGX_HTTP_TUNNEL_CACHE_H_INCLUDED_
#define _NGX_HTTP_TUNNEL_CACHE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


void ngx_http_tunnel_cache_init(ngx_msec_t ttl);
void ngx_http_tunnel_cache_free(void);

/*
 * Storing is on while the worker is subscribed to tunnel:invalidate; turning
 * it on empties the cache (invalidations may have been missed meanwhile).
 * Turned off, entries already cached still serve until they expire.
 */
void ngx_http_tunnel_cache_enable(ngx_uint_t on);

/*
 * On a hit returns NGX_OK and points socket and user into the cache entry:
 * valid only until the next call into the cache, copy them at once.
 */
ngx_int_t ngx_http_tunnel_cache_get(ngx_str_t *name, ngx_str_t *socket,
    ngx_str_t *user, ngx_str_t *node);

/*
 * Stores a route looked up while the cache was at generation gen; a route
 * read before an invalidation that arrived since is not stored.
 */
void ngx_http_tunnel_cache_put(ngx_uint_t gen, ngx_str_t *name,
    ngx_str_t *socket, ngx_str_t *user, ngx_str_t *node);

void ngx_http_tunnel_cache_remove(ngx_str_t *name);

/*
 * Drops name's entry only while it still points to socket: connecting to
 * that socket failed, but a newer route for the name may already be cached.
 */
void ngx_http_tunnel_cache_remove_socket(ngx_str_t *name, ngx_str_t *socket);
void ngx_http_tunnel_cache_flush(void);
ngx_uint_t ngx_http_tunnel_cache_generation(void);


#endif /* _NGX_HTTP_TUNNEL_CACHE_H_INCLUDED_ */
