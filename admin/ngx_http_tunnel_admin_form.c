
/*
 * Request input of the admin pages: the application/x-www-form-urlencoded
 * body of a POST, cookies, query arguments.
 *
 * The body is capped (NGX_HTTP_TUNNEL_ADMIN_BODY_MAX, checked against
 * Content-Length before reading, and against what actually arrived) and must
 * fit nginx's client body buffer: a body spilled to a temporary file is
 * refused rather than read with blocking I/O.  Field values are decoded,
 * must be valid UTF-8 without control characters other than tab and line
 * breaks (they end up in PostgreSQL text columns and C strings), and live in
 * r->pool.  Nothing here knows what a field means.
 */

#include "ngx_http_tunnel_admin_module.h"


#define NGX_HTTP_TUNNEL_ADMIN_MAX_FIELDS  32


static ngx_int_t ngx_http_tunnel_admin_decode(ngx_pool_t *pool,
    u_char *start, u_char *end, ngx_str_t *out);


ngx_int_t
ngx_http_tunnel_admin_form_parse(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    u_char                         *body, *p, *last;
    size_t                          len;
    ngx_str_t                       name, value;
    ngx_buf_t                      *b;
    ngx_chain_t                    *cl;
    ngx_http_tunnel_admin_field_t  *f;

    ctx->form = ngx_array_create(r->pool, 8,
                                 sizeof(ngx_http_tunnel_admin_field_t));
    if (ctx->form == NULL) {
        return NGX_ERROR;
    }

    if (r->request_body == NULL) {
        return NGX_OK;
    }

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (ngx_buf_special(b)) {
            continue;
        }

        if (!ngx_buf_in_memory(b)) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "tunnel: admin: form body larger than "
                          "client_body_buffer_size, refused");
            return NGX_ERROR;
        }

        len += b->last - b->pos;
    }

    if (len > NGX_HTTP_TUNNEL_ADMIN_BODY_MAX) {
        return NGX_ERROR;
    }

    body = ngx_pnalloc(r->pool, len + 1);
    if (body == NULL) {
        return NGX_ERROR;
    }

    p = body;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        if (!ngx_buf_special(cl->buf)) {
            p = ngx_cpymem(p, cl->buf->pos, cl->buf->last - cl->buf->pos);
        }
    }

    last = p;
    p = body;

    while (ngx_http_tunnel_admin_form_next(&p, last, &name, &value)) {
        if (ctx->form->nelts == NGX_HTTP_TUNNEL_ADMIN_MAX_FIELDS) {
            return NGX_ERROR;
        }

        f = ngx_array_push(ctx->form);
        if (f == NULL) {
            return NGX_ERROR;
        }

        if (ngx_http_tunnel_admin_decode(r->pool, name.data,
                                         name.data + name.len, &f->name)
            != NGX_OK
            || ngx_http_tunnel_admin_decode(r->pool, value.data,
                                            value.data + value.len,
                                            &f->value)
               != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* decoded and checked (ngx_http_tunnel_admin_unescape) into r->pool */
static ngx_int_t
ngx_http_tunnel_admin_decode(ngx_pool_t *pool, u_char *start, u_char *end,
    ngx_str_t *out)
{
    u_char   *p;
    ssize_t   n;

    p = ngx_pnalloc(pool, (end - start) + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    n = ngx_http_tunnel_admin_unescape(p, start, end - start);
    if (n < 0) {
        return NGX_ERROR;
    }

    out->data = p;
    out->len = n;

    return NGX_OK;
}


/* a form field by name, or NULL; "" when present but empty */
ngx_str_t *
ngx_http_tunnel_admin_field(ngx_http_tunnel_admin_ctx_t *ctx,
    const char *name)
{
    size_t                          len;
    ngx_uint_t                      i;
    ngx_http_tunnel_admin_field_t  *f;

    if (ctx->form == NULL) {
        return NULL;
    }

    len = ngx_strlen(name);
    f = ctx->form->elts;

    for (i = 0; i < ctx->form->nelts; i++) {
        if (f[i].name.len == len
            && ngx_strncmp(f[i].name.data, name, len) == 0)
        {
            return &f[i].value;
        }
    }

    return NULL;
}


/* 1 if the form field name is there and equal to value */
ngx_int_t
ngx_http_tunnel_admin_field_is(ngx_http_tunnel_admin_ctx_t *ctx,
    const char *name, const char *value)
{
    size_t      len;
    ngx_str_t  *f;

    f = ngx_http_tunnel_admin_field(ctx, name);
    len = ngx_strlen(value);

    return f != NULL && f->len == len && ngx_strncmp(f->data, value, len) == 0;
}


/*
 * The value of cookie name, matched exactly.  Not nginx's
 * ngx_http_parse_multi_header_lines(): it compares names without regard
 * to case, so "__host-tunnel_session" would pass for our
 * "__Host-tunnel_session".  Browsers that predate RFC 6265bis check the
 * __Host- prefix case-sensitively, so a page on any tunnel host (same
 * site) could set that look-alike with Domain=DOMAIN and fix a session
 * or plant a CSRF cookie.  A name sent twice is refused too: one of them
 * is not the browser's own.
 */
ngx_int_t
ngx_http_tunnel_admin_cookie(ngx_http_request_t *r, const char *name,
    ngx_str_t *value)
{
    size_t             len;
    ngx_str_t          v;
    ngx_uint_t         i, found;
    ngx_table_elt_t  **h;

    len = ngx_strlen(name);
    found = 0;
    ngx_str_null(value);

    h = r->headers_in.cookies.elts;

    for (i = 0; i < r->headers_in.cookies.nelts; i++) {
        ngx_str_null(&v);

        found += ngx_http_tunnel_admin_cookie_scan(h[i]->value.data,
                                                   h[i]->value.data
                                                   + h[i]->value.len,
                                                   name, len, &v);
        if (found > 1) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "tunnel: admin: cookie \"%s\" sent twice: "
                          "both ignored", name);
            ngx_str_null(value);
            return NGX_DECLINED;
        }

        if (v.data != NULL) {
            *value = v;
        }
    }

    return found ? NGX_OK : NGX_DECLINED;
}


ngx_int_t
ngx_http_tunnel_admin_arg(ngx_http_request_t *r, const char *name,
    ngx_str_t *value)
{
    if (ngx_http_arg(r, (u_char *) name, ngx_strlen(name), value) != NGX_OK) {
        ngx_str_null(value);
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/*
 * A query argument decoded ('+' and %XX) and checked as form fields are
 * (UTF-8, no control characters); NGX_DECLINED when absent or malformed.
 */
ngx_int_t
ngx_http_tunnel_admin_arg_text(ngx_http_request_t *r, const char *name,
    ngx_str_t *value)
{
    ngx_str_t  raw;

    if (ngx_http_arg(r, (u_char *) name, ngx_strlen(name), &raw) != NGX_OK
        || ngx_http_tunnel_admin_decode(r->pool, raw.data,
                                        raw.data + raw.len, value)
           != NGX_OK)
    {
        ngx_str_null(value);
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/* a positive decimal id, as bigserial columns hold */
ngx_int_t
ngx_http_tunnel_admin_is_id(ngx_str_t *s)
{
    size_t  i;

    if (s == NULL || s->len == 0 || s->len > 18 || s->data[0] == '0') {
        return 0;
    }

    for (i = 0; i < s->len; i++) {
        if (s->data[i] < '0' || s->data[i] > '9') {
            return 0;
        }
    }

    return 1;
}
