
/*
 * Per-worker Redis links on nginx's event loop.  See ngx_http_tunnel_redis.c.
 */

#ifndef _NGX_HTTP_TUNNEL_REDIS_H_INCLUDED_
#define _NGX_HTTP_TUNNEL_REDIS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "ngx_http_tunnel_module.h"


ngx_int_t ngx_http_tunnel_redis_init_process(ngx_cycle_t *cycle,
    ngx_http_tunnel_main_conf_t *tmcf);
void ngx_http_tunnel_redis_exit_process(ngx_cycle_t *cycle);

/*
 * Sends a command on the command link.  NGX_OK: queued, and fn will be called
 * exactly once, with the reply or with NULL if the link dies first.
 * NGX_DECLINED: no link right now (Redis down, reconnect pending): answer at
 * once, never wait.  fn is never called synchronously from here.
 */
ngx_int_t ngx_http_tunnel_redis_command(redisCallbackFn *fn, void *privdata,
    int argc, const char **argv, const size_t *argvlen);

/*
 * True while the worker is shutting the links down in exit_process: reply
 * callbacks must then drop their work instead of resuming requests.
 */
ngx_uint_t ngx_http_tunnel_redis_closing(void);


#endif /* _NGX_HTTP_TUNNEL_REDIS_H_INCLUDED_ */
