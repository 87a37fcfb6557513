
/*
 * The pages a visitor sees when there is no tunnel to proxy to: 404 "no
 * tunnel named X", 503 "tunnel lookup unavailable, retry" (both sent by the
 * lookup handler) and 502 "tunnel X is offline" (the "tunnel_page offline"
 * content handler, reached through "error_page 502").
 *
 * Each page is small, self-contained HTML (no external resources) built in
 * r->pool; every name or host is HTML-escaped.  This file decides nothing
 * about routing.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_tunnel_module.h"
#include "ngx_http_tunnel_cache.h"


static ngx_int_t ngx_http_tunnel_page_header(ngx_http_request_t *r,
    char *key, char *value);
static ngx_int_t ngx_http_tunnel_page_cause(ngx_http_request_t *r,
    ngx_str_t *cause);
static ngx_str_t *ngx_http_tunnel_page_escape(ngx_http_request_t *r,
    ngx_str_t *s);


static u_char  ngx_http_tunnel_page_head[] =
"<!DOCTYPE html>" CRLF
"<html lang=\"en\"><head><meta charset=\"utf-8\">" CRLF
"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
CRLF
"<title>%s</title>" CRLF
"<style>body{font-family:system-ui,sans-serif;max-width:36em;"
"margin:4em auto;padding:0 1em;color:#222}h1{font-size:1.5em}"
"code{background:#eee;padding:0 .2em}</style>" CRLF
"</head><body>" CRLF;

static u_char  ngx_http_tunnel_page_tail[] =
"</body></html>" CRLF;


ngx_int_t
ngx_http_tunnel_page_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *name)
{
    size_t                       len;
    u_char                      *end;
    ngx_int_t                    rc, from_app;
    ngx_http_tunnel_ctx_t       *ctx;
    ngx_str_t                   *what, *ssh_host, host, cause;
    ngx_buf_t                   *b;
    ngx_chain_t                  out;
    ngx_http_tunnel_loc_conf_t  *tlcf;
    u_char                       port[sizeof(" -p 65535")];

    static ngx_str_t  no_host = ngx_string("this address");

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    if (name && name->len) {
        what = ngx_http_tunnel_page_escape(r, name);

    } else {
        host = r->headers_in.server;
        what = ngx_http_tunnel_page_escape(r, host.len ? &host : &no_host);
    }

    if (what == NULL) {
        return NGX_ERROR;
    }

    /* the ssh command of the 404 hint: this installation's host and port */

    tlcf = ngx_http_get_module_loc_conf(r, ngx_http_tunnel_module);

    ssh_host = ngx_http_tunnel_page_escape(r, tlcf->ssh_host.len
                                              ? &tlcf->ssh_host
                                              : &tlcf->domain);
    if (ssh_host == NULL) {
        return NGX_ERROR;
    }

    if (tlcf->ssh_port != 22) {
        *ngx_sprintf(port, " -p %i", tlcf->ssh_port) = '\0';
    } else {
        port[0] = '\0';
    }

    from_app = ngx_http_tunnel_page_cause(r, &cause);

    /*
     * Another node's internal listener made this 502 (the tunnel's socket
     * is gone there): offline, not the app's own answer.  Our own, made
     * for a forwarded request, says so to the node that forwarded it.
     */

    if (cause.len == sizeof("offline") - 1
        && ngx_strncmp(cause.data, "offline", cause.len) == 0)
    {
        from_app = 0;

        /* a killed tunneld publishes no invalidation: ask Redis next time */

        ctx = ngx_http_tunnel_get_ctx(r);

        if (ctx && ctx->remote) {
            ngx_http_tunnel_cache_remove_socket(&ctx->name, &ctx->socket);
        }
    }

    if (status == NGX_HTTP_BAD_GATEWAY && from_app == 0) {
        ctx = ngx_http_tunnel_get_ctx(r);

        if (ctx && ctx->forwarded
            && ngx_http_tunnel_page_header(r, "X-Tunnel-Error", "offline")
               != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    /*
     * the fixed text of the longest page, plus the name up to three times
     * and the ssh host once
     */

    len = sizeof(ngx_http_tunnel_page_head) + sizeof(ngx_http_tunnel_page_tail)
          + 1024 + 3 * what->len + ssh_host->len;

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_ERROR;
    }

    end = b->end - sizeof(ngx_http_tunnel_page_tail);

    switch (status) {

    case NGX_HTTP_NOT_FOUND:
        b->last = ngx_slprintf(b->last, end,
                               (char *) ngx_http_tunnel_page_head,
                               "No such tunnel");

        if (name && name->len) {
            b->last = ngx_slprintf(b->last, end,
                "<h1>No tunnel named &ldquo;%V&rdquo;</h1>" CRLF
                "<p>Nothing is being served under this name right now. "
                "Check the address; if the tunnel is yours, start it "
                "again with <code>ssh -R %V:80:localhost:PORT%s %V</code> "
                "(PORT: your app's port on your machine).</p>"
                CRLF, what, what, port, ssh_host);

        } else {
            b->last = ngx_slprintf(b->last, end,
                "<h1>No tunnel at &ldquo;%V&rdquo;</h1>" CRLF
                "<p>This is not the address of a tunnel. "
                "Check the address.</p>" CRLF, what);
        }

        break;

    case NGX_HTTP_BAD_GATEWAY:
        b->last = ngx_slprintf(b->last, end,
                               (char *) ngx_http_tunnel_page_head,
                               "Tunnel offline");
        /* what tunneld said (X-Tunnel-Error), else what nginx saw */

        if (from_app == 0) {
            b->last = ngx_slprintf(b->last, end,
                "<h1>Tunnel &ldquo;%V&rdquo; is offline</h1>" CRLF
                "<p>The tunnel did not answer: its ssh session may have "
                "ended, or the application behind it is not running. "
                "Retry once it is back.</p>" CRLF, what);

        } else if (cause.len == 0) {
            b->last = ngx_slprintf(b->last, end,
                "<h1>Tunnel &ldquo;%V&rdquo;: the app answered 502</h1>"
                CRLF
                "<p>The application behind this tunnel answered "
                "&ldquo;502 Bad Gateway&rdquo; itself. Check its log."
                "</p>" CRLF, what);

        } else if (cause.len == 7
                   && ngx_strncmp(cause.data, "refused", 7) == 0)
        {
            b->last = ngx_slprintf(b->last, end,
                "<h1>Tunnel &ldquo;%V&rdquo;: nothing answers on the ssh "
                "client's machine</h1>" CRLF
                "<p>The tunnel is up, but on the machine that runs "
                "<code>ssh -R</code> nothing listens at the local address "
                "it forwards to (the <code>localhost:PORT</code> of "
                "<code>ssh -R %V:80:localhost:PORT</code>): the connection "
                "was refused. Start your app there, or correct that "
                "address, then reload this page.</p>" CRLF, what, what);

        } else if (cause.len == 7
                   && ngx_strncmp(cause.data, "timeout", 7) == 0)
        {
            b->last = ngx_slprintf(b->last, end,
                "<h1>Tunnel &ldquo;%V&rdquo;: no answer in time</h1>" CRLF
                "<p>The tunnel is up, but the ssh client did not connect "
                "to the app in time: its machine or network is busy, or "
                "the local address given to <code>ssh -R</code> does not "
                "answer. Retry in a moment.</p>" CRLF, what);

        } else if (cause.len == 6
                   && ngx_strncmp(cause.data, "closed", 6) == 0)
        {
            b->last = ngx_slprintf(b->last, end,
                "<h1>Tunnel &ldquo;%V&rdquo;: the app closed the "
                "connection</h1>" CRLF
                "<p>The tunnel is up and the app behind it accepted the "
                "connection, but closed (or reset) it without answering. "
                "Check the app's log on the ssh client's machine.</p>"
                CRLF, what);

        } else {
            b->last = ngx_slprintf(b->last, end,
                "<h1>Tunnel &ldquo;%V&rdquo;: the app cannot be reached"
                "</h1>" CRLF
                "<p>The tunnel is up, but the ssh client could not connect "
                "to the local address given to <code>ssh -R</code>. Check "
                "that your app runs there.</p>" CRLF, what);
        }

        break;

    default: /* NGX_HTTP_SERVICE_UNAVAILABLE */
        status = NGX_HTTP_SERVICE_UNAVAILABLE;

        b->last = ngx_slprintf(b->last, end,
                               (char *) ngx_http_tunnel_page_head,
                               "Tunnel lookup unavailable");
        b->last = ngx_slprintf(b->last, end,
            "<h1>Tunnel lookup unavailable</h1>" CRLF
            "<p>The tunnel directory did not answer in time. "
            "Please retry in a moment.</p>" CRLF);

        if (ngx_http_tunnel_page_header(r, "Retry-After", "1") != NGX_OK) {
            return NGX_ERROR;
        }

        break;
    }

    b->last = ngx_cpymem(b->last, ngx_http_tunnel_page_tail,
                         sizeof(ngx_http_tunnel_page_tail) - 1);
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = status;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type, "text/html; charset=utf-8");
    r->headers_out.content_type_len = sizeof("text/html") - 1;
    r->headers_out.content_type_lowcase = NULL;

    ngx_http_clear_accept_ranges(r);
    ngx_http_clear_last_modified(r);
    ngx_http_clear_etag(r);

    if (ngx_http_tunnel_page_header(r, "Cache-Control", "no-store")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/*
 * "tunnel_page offline": the module ctx was cleared by the internal
 * redirect of error_page, so the name comes from the ctx kept in the pool
 * cleanup when there is one, else from the Host header.
 */

ngx_int_t
ngx_http_tunnel_page_handler(ngx_http_request_t *r)
{
    ngx_str_t                    name, host;
    ngx_http_tunnel_ctx_t       *ctx;
    ngx_http_tunnel_loc_conf_t  *tlcf;
    char                         buf[TNL_NAME_MAX + 1];

    ngx_str_null(&name);

    ctx = ngx_http_tunnel_get_ctx(r);

    if (ctx && ctx->name.len) {
        name = ctx->name;

    } else {
        tlcf = ngx_http_get_module_loc_conf(r, ngx_http_tunnel_module);
        host = r->headers_in.server;

        if (host.len == 0 && r->headers_in.host) {
            host = r->headers_in.host->value;
        }

        if (tlcf->domain.len
            && tnl_host_to_name((char *) host.data, host.len,
                                (char *) tlcf->domain.data, tlcf->domain.len,
                                buf)
               == 0)
        {
            name.data = (u_char *) buf;
            name.len = ngx_strlen(buf);
        }
    }

    return ngx_http_tunnel_page_send(r, NGX_HTTP_BAD_GATEWAY,
                                     name.len ? &name : NULL);
}


static ngx_str_t *
ngx_http_tunnel_page_escape(ngx_http_request_t *r, ngx_str_t *s)
{
    size_t      len;
    ngx_str_t  *e;

    e = ngx_palloc(r->pool, sizeof(ngx_str_t));
    if (e == NULL) {
        return NULL;
    }

    len = s->len + ngx_escape_html(NULL, s->data, s->len);

    e->data = ngx_pnalloc(r->pool, len);
    if (e->data == NULL) {
        return NULL;
    }

    (void) ngx_escape_html(e->data, s->data, s->len);
    e->len = len;

    return e;
}


/*
 * Why a 502: returns 1 when the tunnel's side answered 502 itself (then
 * cause is its X-Tunnel-Error, sent by tunneld: "refused", "timeout",
 * "closed", "failed"; empty: the app's own 502), 0 when nginx made the 502
 * (no connection, or nothing answered).  With proxy_intercept_errors the
 * upstream's headers are still in r->upstream in the error_page location:
 * an internal redirect keeps r->upstream.
 */
static ngx_int_t
ngx_http_tunnel_page_cause(ngx_http_request_t *r, ngx_str_t *cause)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    ngx_str_null(cause);

    if (r->upstream == NULL
        || r->upstream->headers_in.status_n != NGX_HTTP_BAD_GATEWAY)
    {
        return 0;
    }

    part = &r->upstream->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == sizeof("X-Tunnel-Error") - 1
            && ngx_strncasecmp(h[i].key.data, (u_char *) "X-Tunnel-Error",
                               sizeof("X-Tunnel-Error") - 1)
               == 0)
        {
            *cause = h[i].value;
            break;
        }
    }

    return 1;
}


static ngx_int_t
ngx_http_tunnel_page_header(ngx_http_request_t *r, char *key, char *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) key;
    h->key.len = ngx_strlen(key);
    h->value.data = (u_char *) value;
    h->value.len = ngx_strlen(value);

    return NGX_OK;
}
