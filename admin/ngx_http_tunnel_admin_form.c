
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
    u_char                         *body, *p, *last, *amp, *eq;
    size_t                          len;
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

    while (p < last) {
        amp = ngx_strlchr(p, last, '&');
        if (amp == NULL) {
            amp = last;
        }

        if (amp > p) {
            if (ctx->form->nelts == NGX_HTTP_TUNNEL_ADMIN_MAX_FIELDS) {
                return NGX_ERROR;
            }

            f = ngx_array_push(ctx->form);
            if (f == NULL) {
                return NGX_ERROR;
            }

            eq = ngx_strlchr(p, amp, '=');

            if (ngx_http_tunnel_admin_decode(r->pool, p, eq ? eq : amp,
                                             &f->name) != NGX_OK
                || ngx_http_tunnel_admin_decode(r->pool, eq ? eq + 1 : amp,
                                                amp, &f->value) != NGX_OK)
            {
                return NGX_ERROR;
            }
        }

        p = amp + 1;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_tunnel_admin_decode(ngx_pool_t *pool, u_char *start, u_char *end,
    ngx_str_t *out)
{
    u_char  *src, *dst, *p, *q;
    size_t   n;

    n = end - start;

    p = ngx_pnalloc(pool, n + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    for (q = p, src = start; src < end; src++) {
        *q++ = (*src == '+') ? ' ' : *src;
    }

    src = p;
    dst = p;
    ngx_unescape_uri(&dst, &src, n, 0);

    out->data = p;
    out->len = dst - p;
    *dst = '\0';

    /* valid UTF-8, no control characters but tab and line breaks */
    q = p;

    while (q < dst) {
        if (*q < 0x80) {
            if ((*q < 0x20 && *q != '\t' && *q != '\r' && *q != '\n')
                || *q == 0x7f)
            {
                return NGX_ERROR;
            }

            q++;
            continue;
        }

        if (ngx_utf8_decode(&q, dst - q) > 0x10ffff) {
            return NGX_ERROR;
        }
    }

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
    u_char            *p, *end, *n, *v, *ve;
    size_t             len;
    ngx_uint_t         i, found;
    ngx_table_elt_t  **h;

    len = ngx_strlen(name);
    found = 0;
    ngx_str_null(value);

    h = r->headers_in.cookies.elts;

    for (i = 0; i < r->headers_in.cookies.nelts; i++) {
        p = h[i]->value.data;
        end = p + h[i]->value.len;

        while (p < end) {
            while (p < end && (*p == ' ' || *p == '\t' || *p == ';')) {
                p++;
            }

            n = p;
            while (p < end && *p != '=' && *p != ';') {
                p++;
            }

            if (p == end || *p != '=') {
                continue;           /* a name without a value */
            }

            ve = p;                 /* end of the name */
            v = ++p;
            while (p < end && *p != ';') {
                p++;
            }

            if ((size_t) (ve - n) != len || ngx_strncmp(n, name, len) != 0) {
                continue;
            }

            if (found++) {
                ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                              "tunnel: admin: cookie \"%s\" sent twice: "
                              "both ignored", name);
                ngx_str_null(value);
                return NGX_DECLINED;
            }

            value->data = v;
            value->len = p - v;

            while (value->len && (value->data[value->len - 1] == ' '
                                  || value->data[value->len - 1] == '\t'))
            {
                value->len--;
            }
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


void
ngx_http_tunnel_admin_trim(ngx_str_t *s)
{
    while (s->len && (s->data[0] == ' ' || s->data[0] == '\t'
                      || s->data[0] == '\r' || s->data[0] == '\n'))
    {
        s->data++;
        s->len--;
    }

    while (s->len && (s->data[s->len - 1] == ' '
                      || s->data[s->len - 1] == '\t'
                      || s->data[s->len - 1] == '\r'
                      || s->data[s->len - 1] == '\n'))
    {
        s->len--;
    }
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
