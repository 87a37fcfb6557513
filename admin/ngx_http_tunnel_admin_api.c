
/*
 * The admin module's way to tunneld's management API (docs/API.md): an
 * in-memory subrequest to the internal location marked `tunnel_admin_api;`
 * (a proxy_pass to SOCKET_DIR/api.sock), whose JSON answer is parsed with
 * jansson for the page that asked.
 *
 * nginx does the connecting, the timeouts (the location's proxy_*_timeout
 * are the wait's timers), the buffering and the cleanup when the client
 * goes away: the subrequest belongs to the main request, so nothing here
 * holds a request pointer of its own.  The post-subrequest handler only
 * records the outcome in the page's context; nginx then posts the parent,
 * whose write handler resumes the dispatcher.
 *
 * What it does not do: no retries (a page shows "live state unavailable"
 * and its script polls again), no talking to Redis, no HTML.
 *
 * Ownership: the parsed answer (ctx->api_json) is jansson heap memory,
 * released by an r->pool cleanup; the subrequest's body buffer is in
 * r->pool.
 */

#include "ngx_http_tunnel_admin_module.h"


static ngx_int_t ngx_http_tunnel_admin_api_done(ngx_http_request_t *sr,
    void *data, ngx_int_t rc);
static void ngx_http_tunnel_admin_api_wake(ngx_http_request_t *r);
static void ngx_http_tunnel_admin_api_cleanup(void *data);


static ngx_str_t  ngx_http_tunnel_admin_delete_name = ngx_string("DELETE");


/*
 * Asks the API: method NGX_HTTP_GET or NGX_HTTP_DELETE, path such as
 * "/tunnels/NAME", args already escaped (or NULL).  Returns WAIT when the
 * subrequest is on its way (the page is re-entered when it is done), or
 * NGX_DECLINED when no `tunnel_admin_api` location is configured (then
 * ctx->api_status is 0, as when the API cannot be reached).
 */
ngx_int_t
ngx_http_tunnel_admin_api(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_uint_t method, const char *path,
    ngx_str_t *args)
{
    size_t                              len;
    ngx_str_t                           uri;
    ngx_http_request_t                 *sr;
    ngx_pool_cleanup_t                 *cln;
    ngx_http_post_subrequest_t         *ps;
    ngx_http_tunnel_admin_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_tunnel_admin_module);

    ctx->api_status = 0;
    ctx->api_done = 0;

    if (ctx->api_json) {
        json_decref(ctx->api_json);
        ctx->api_json = NULL;
    }

    if (amcf->api_location.len == 0) {
        return NGX_DECLINED;
    }

    if (!ctx->api_cleanup) {
        cln = ngx_pool_cleanup_add(r->pool, 0);
        if (cln == NULL) {
            return NGX_ERROR;
        }

        cln->handler = ngx_http_tunnel_admin_api_cleanup;
        cln->data = ctx;
        ctx->api_cleanup = 1;
    }

    /* the location ends with '/' (checked at load), path starts with one */
    len = ngx_strlen(path);
    uri.len = amcf->api_location.len + len - 1;
    uri.data = ngx_pnalloc(r->pool, uri.len);
    if (uri.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(ngx_cpymem(uri.data, amcf->api_location.data,
                          amcf->api_location.len - 1),
               path, len);

    ps = ngx_palloc(r->pool, sizeof(ngx_http_post_subrequest_t));
    if (ps == NULL) {
        return NGX_ERROR;
    }

    ps->handler = ngx_http_tunnel_admin_api_done;
    ps->data = ctx;

    if (ngx_http_subrequest(r, &uri, args, &sr, ps,
                            NGX_HTTP_SUBREQUEST_IN_MEMORY)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (method == NGX_HTTP_DELETE) {
        /* the proxy module sends method_name as the request's method */
        sr->method = NGX_HTTP_DELETE;
        sr->method_name = ngx_http_tunnel_admin_delete_name;
    }

    r->write_event_handler = ngx_http_tunnel_admin_api_wake;

    return NGX_HTTP_TUNNEL_ADMIN_WAIT;
}


/*
 * The subrequest finished (it may be called again for its error page: the
 * first outcome counts).  Records the status and the parsed body.
 */
static ngx_int_t
ngx_http_tunnel_admin_api_done(ngx_http_request_t *sr, void *data,
    ngx_int_t rc)
{
    ngx_http_tunnel_admin_ctx_t  *ctx = data;

    ngx_buf_t     *b;
    json_error_t   err;

    if (ctx->api_done) {
        return rc;
    }

    ctx->api_done = 1;

    if (rc == NGX_ERROR || rc >= NGX_HTTP_SPECIAL_RESPONSE
        || sr->headers_out.status == 0)
    {
        /* not connected, timed out, or an error of nginx's own */
        ctx->api_status = 0;
        return rc;
    }

    ctx->api_status = sr->headers_out.status;

    b = sr->out ? sr->out->buf : NULL;

    if (b == NULL || b->last == b->pos) {
        return rc;
    }

    ctx->api_json = json_loadb((const char *) b->pos, b->last - b->pos, 0,
                               &err);

    if (ctx->api_json == NULL) {
        ngx_log_error(NGX_LOG_WARN, sr->connection->log, 0,
                      "tunnel: admin: tunneld's API sent malformed JSON "
                      "(status %ui, %uz bytes): %s", ctx->api_status,
                      (size_t) (b->last - b->pos), err.text);
        ctx->api_status = 0;
    }

    return rc;
}


/* the parent's write handler while the subrequest runs: nginx posts it */
static void
ngx_http_tunnel_admin_api_wake(ngx_http_request_t *r)
{
    ngx_http_tunnel_admin_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_tunnel_admin_module);

    if (ctx == NULL || !ctx->api_done || !ctx->waiting) {
        return;
    }

    r->write_event_handler = ngx_http_request_empty_handler;
    r->connection->log->action = NULL;     /* the upstream's is over */

    if (ctx->api_status == 0) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "tunnel: admin: live state unavailable: tunneld's "
                      "API did not answer (is tunneld running?)");

    } else if (ctx->api_status >= NGX_HTTP_INTERNAL_SERVER_ERROR) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "tunnel: admin: live state unavailable: tunneld's "
                      "API answered %ui", ctx->api_status);
    }

    ngx_http_tunnel_admin_resume(r);
}


static void
ngx_http_tunnel_admin_api_cleanup(void *data)
{
    ngx_http_tunnel_admin_ctx_t  *ctx = data;

    if (ctx->api_json) {
        json_decref(ctx->api_json);
        ctx->api_json = NULL;
    }
}


/* the answer is usable: 200 with a JSON object */
ngx_int_t
ngx_http_tunnel_admin_api_ok(ngx_http_tunnel_admin_ctx_t *ctx)
{
    return ctx->api_status == NGX_HTTP_OK && json_is_object(ctx->api_json);
}


/* a string member of a JSON object as ngx_str_t ("" if absent or null) */
ngx_str_t
ngx_http_tunnel_admin_json_str(json_t *obj, const char *key)
{
    json_t     *v;
    ngx_str_t   s;

    v = json_object_get(obj, key);

    if (json_is_string(v)) {
        s.data = (u_char *) json_string_value(v);
        s.len = json_string_length(v);

    } else {
        ngx_str_null(&s);
    }

    return s;
}


/* an integer member, or -1 when absent or null */
json_int_t
ngx_http_tunnel_admin_json_int(json_t *obj, const char *key)
{
    json_t  *v;

    v = json_object_get(obj, key);

    return json_is_integer(v) ? json_integer_value(v) : -1;
}


/*
 * Query arguments for the API: every byte but the unreserved ones as %XX,
 * so a reason or a name can never add a parameter.
 */
u_char *
ngx_http_tunnel_admin_arg_escape(u_char *dst, ngx_str_t *src)
{
    u_char       c;
    size_t       i;
    static char  hex[] = "0123456789ABCDEF";

    for (i = 0; i < src->len; i++) {
        c = src->data[i];

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
            || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'
            || c == '~')
        {
            *dst++ = c;
            continue;
        }

        *dst++ = '%';
        *dst++ = hex[c >> 4];
        *dst++ = hex[c & 0xf];
    }

    return dst;
}
