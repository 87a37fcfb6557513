
/*
 * Composing and sending the admin pages: a growing buffer in r->pool, HTML
 * escaping, the common layout (header, navigation, sign-out form), message
 * pages, redirects, security headers, and the stylesheet.
 *
 * Escaping happens here, at output: every value that came from a person or
 * from the database goes through ngx_http_tunnel_admin_esc(); put() and
 * printf() are for our own markup and numbers only.  Pages load nothing but
 * /static/admin.css (served from this file, no database needed), so the
 * Content-Security-Policy can forbid everything else, scripts included;
 * only a page that sets ctx->script may also run our same-origin scripts
 * (/static/copy.js, the copy button; /static/tunnels.js, which polls the
 * dashboard's JSON, hence connect-src 'self'): never inline script.
 */

#include "ngx_http_tunnel_admin_module.h"


#define NGX_HTTP_TUNNEL_ADMIN_CSP                                            \
    "default-src 'none'; style-src 'self'; img-src 'self'; "                \
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

#define NGX_HTTP_TUNNEL_ADMIN_CSP_SCRIPT                                     \
    "default-src 'none'; script-src 'self'; connect-src 'self'; "          \
    "style-src 'self'; img-src 'self'; form-action 'self'; "                \
    "frame-ancestors 'none'; base-uri 'none'"


static void ngx_http_tunnel_admin_grow(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, size_t more);
static ngx_int_t ngx_http_tunnel_admin_header(ngx_http_request_t *r,
    const char *name, const char *value);


static const char  ngx_http_tunnel_admin_stylesheet[] =
    ":root{--fg:#1d2430;--muted:#5d6878;--line:#d9dee5;--bg:#f5f7fa;"
    "--card:#fff;--accent:#2458c6;--accent-fg:#fff;--bad:#b42318;"
    "--bad-bg:#fdecea;--good:#196c2e;--good-bg:#e8f5eb}\n"
    "*{box-sizing:border-box}\n"
    "html{-webkit-text-size-adjust:100%}\n"
    "body{margin:0;background:var(--bg);color:var(--fg);"
    "font:16px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif}\n"
    "header{background:var(--card);border-bottom:1px solid var(--line);"
    "padding:.6rem 1rem;display:flex;flex-wrap:wrap;align-items:center;"
    "gap:.4rem 1rem}\n"
    ".brand{font-weight:700;color:var(--fg);text-decoration:none;"
    "margin-right:auto}\n"
    "nav{display:flex;flex-wrap:wrap;align-items:center;gap:.3rem .9rem}\n"
    "nav a{color:var(--accent);text-decoration:none}\n"
    "nav a:hover{text-decoration:underline}\n"
    ".who{color:var(--muted)}\n"
    "nav form{margin:0}\n"
    "main{max-width:52rem;margin:1.5rem auto;padding:0 1rem}\n"
    "main.wide{max-width:80rem}\n"
    "td.num,th.num{text-align:right;white-space:nowrap}\n"
    "th a{color:inherit;text-decoration:none}\n"
    "th a:hover{text-decoration:underline}\n"
    ".toolbar{display:flex;flex-wrap:wrap;gap:.5rem 1rem;"
    "align-items:center;margin:0 0 .8rem}\n"
    ".toolbar form{display:flex;gap:.5rem;align-items:center;margin:0}\n"
    ".toolbar input[type=search]{padding:.35rem .6rem;"
    "border:1px solid var(--line);border-radius:6px;font:inherit}\n"
    ".pager{display:flex;gap:1rem;margin:.8rem 0}\n"
    "h1{font-size:1.5rem;margin:.2rem 0 1rem}\n"
    "h2{font-size:1.15rem;margin:1.6rem 0 .6rem}\n"
    ".card{background:var(--card);border:1px solid var(--line);"
    "border-radius:8px;padding:1rem 1.2rem;margin:0 0 1rem}\n"
    ".card>h2:first-child{margin-top:0}\n"
    ".msg p{margin:.2rem 0}\n"
    "label{display:block;font-weight:600;margin:.8rem 0 .25rem}\n"
    "label.inline{display:inline-flex;gap:.4rem;font-weight:400;"
    "align-items:center}\n"
    "input[type=text],input[type=password],input[type=number],textarea{"
    "width:100%;padding:.5rem .6rem;border:1px solid var(--line);"
    "border-radius:6px;font:inherit;background:#fff;color:var(--fg)}\n"
    "textarea{min-height:6rem;font-family:ui-monospace,monospace;"
    "font-size:.85rem}\n"
    "input:focus,textarea:focus{outline:2px solid var(--accent);"
    "outline-offset:1px}\n"
    ".hint{color:var(--muted);font-size:.9rem;margin:.25rem 0 0}\n"
    "button{font:inherit;padding:.45rem 1rem;border-radius:6px;"
    "border:1px solid var(--accent);background:var(--accent);"
    "color:var(--accent-fg);cursor:pointer}\n"
    "button.link{background:none;border:1px solid var(--line);"
    "color:var(--fg);padding:.25rem .7rem}\n"
    "button.danger{background:none;border-color:var(--bad);"
    "color:var(--bad);padding:.25rem .7rem}\n"
    ".actions{margin-top:1rem}\n"
    ".msg{border-radius:6px;padding:.7rem 1rem;margin:0 0 1rem}\n"
    ".msg.bad{background:var(--bad-bg);color:var(--bad)}\n"
    ".msg.good{background:var(--good-bg);color:var(--good)}\n"
    "table{width:100%;border-collapse:collapse;background:var(--card);"
    "border:1px solid var(--line);border-radius:8px;overflow:hidden}\n"
    "th,td{text-align:left;padding:.5rem .6rem;"
    "border-bottom:1px solid var(--line);vertical-align:top}\n"
    "th{font-size:.85rem;color:var(--muted);font-weight:600}\n"
    "td form{display:inline;margin:0}\n"
    "td.date{white-space:nowrap}\n"
    "main:has(table.audit,form.filters){max-width:80rem}\n"
    "table.audit{font-size:.88rem}\n"
    ".filters .row{display:flex;flex-wrap:wrap;gap:0 1rem}\n"
    ".filters .row>div{flex:1 1 9rem}\n"
    "select{padding:.45rem .5rem;border:1px solid var(--line);"
    "border-radius:6px;font:inherit;background:#fff;width:100%}\n"
    ".confirm{display:inline-block;border:1px solid var(--line);"
    "border-radius:6px;padding:.1rem .4rem;margin:.15rem 0}\n"
    ".muted{color:var(--muted)}\n"
    "code,.mono{font-family:ui-monospace,monospace;font-size:.85rem;"
    "word-break:break-all}\n"
    ".tag{display:inline-block;white-space:nowrap;font-size:.78rem;"
    "padding:0 .45rem;"
    "border-radius:99px;border:1px solid var(--line);color:var(--muted)}\n"
    ".tag.on{border-color:var(--good);color:var(--good)}\n"
    ".tag.off{border-color:var(--bad);color:var(--bad)}\n"
    ".copy{background:var(--bg);border:1px dashed var(--line);"
    "padding:.6rem;border-radius:6px}\n"
    ".cmd{display:flex;flex-wrap:wrap;gap:.5rem;align-items:center}\n"
    ".cmd code{flex:1 1 20rem;display:block}\n"
    "p.muted{color:var(--muted)}\n"
    "@media (max-width:40rem){"
    "th.opt,td.opt{display:none}"
    "table,thead,tbody,tr{display:block}"
    "thead{display:none}"
    "tr{border-bottom:1px solid var(--line);padding:.4rem 0}"
    "td{display:block;border:0;padding:.15rem .6rem}"
    "td[data-label]::before{content:attr(data-label) \": \";"
    "color:var(--muted)}}\n";


/* a tunnel: an arrow through a ring, in the accent colour */
static const char  ngx_http_tunnel_admin_icon_svg[] =
    "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 32 32\">"
    "<circle cx=\"16\" cy=\"16\" r=\"13\" fill=\"none\" "
    "stroke=\"#2458c6\" stroke-width=\"4\"/>"
    "<path d=\"M8 16h13m-5-6 6 6-6 6\" fill=\"none\" stroke=\"#1d2430\" "
    "stroke-width=\"3.5\" stroke-linecap=\"round\" "
    "stroke-linejoin=\"round\"/></svg>\n";


/* the stylesheet, also served while the database is down */
ngx_int_t
ngx_http_tunnel_admin_css(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ctx->status = NGX_HTTP_OK;
    ngx_str_set(&ctx->content_type, "text/css; charset=utf-8");
    ngx_http_tunnel_admin_put(r, ctx, ngx_http_tunnel_admin_stylesheet);

    return NGX_HTTP_TUNNEL_ADMIN_READY;
}


/* the icon, at /static/icon.svg and where browsers look for it */
ngx_int_t
ngx_http_tunnel_admin_icon(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ctx->status = NGX_HTTP_OK;
    ngx_str_set(&ctx->content_type, "image/svg+xml");
    ngx_http_tunnel_admin_put(r, ctx, ngx_http_tunnel_admin_icon_svg);

    return NGX_HTTP_TUNNEL_ADMIN_READY;
}


static void
ngx_http_tunnel_admin_grow(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, size_t more)
{
    size_t      size, used;
    ngx_buf_t  *b;

    if (ctx->out && (size_t) (ctx->out->end - ctx->out->last) >= more) {
        return;
    }

    used = ctx->out ? (size_t) (ctx->out->last - ctx->out->pos) : 0;
    size = ctx->out ? (size_t) (ctx->out->end - ctx->out->start) * 2 : 8192;

    while (size < used + more) {
        size *= 2;
    }

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        return;
    }

    if (ctx->out) {
        b->last = ngx_cpymem(b->last, ctx->out->pos, used);
    }

    ctx->out = b;
}


void
ngx_http_tunnel_admin_put(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, const char *raw)
{
    ngx_str_t  s;

    s.data = (u_char *) raw;
    s.len = ngx_strlen(raw);

    ngx_http_tunnel_admin_put_str(r, ctx, &s);
}


void
ngx_http_tunnel_admin_put_str(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_str_t *raw)
{
    ngx_http_tunnel_admin_grow(r, ctx, raw->len);

    if (ctx->out && (size_t) (ctx->out->end - ctx->out->last) >= raw->len) {
        ctx->out->last = ngx_cpymem(ctx->out->last, raw->data, raw->len);
    }
}


void
ngx_http_tunnel_admin_esc(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_str_t *text)
{
    u_char  *p, *last, *o;

    if (text == NULL || text->len == 0) {
        return;
    }

    /* the worst case: every byte becomes "&quot;" */
    ngx_http_tunnel_admin_grow(r, ctx, text->len * 6);

    if (ctx->out == NULL
        || (size_t) (ctx->out->end - ctx->out->last) < text->len * 6)
    {
        return;
    }

    o = ctx->out->last;
    last = text->data + text->len;

    for (p = text->data; p < last; p++) {
        switch (*p) {
        case '&':
            o = ngx_cpymem(o, "&amp;", 5);
            break;
        case '<':
            o = ngx_cpymem(o, "&lt;", 4);
            break;
        case '>':
            o = ngx_cpymem(o, "&gt;", 4);
            break;
        case '"':
            o = ngx_cpymem(o, "&quot;", 6);
            break;
        case '\'':
            o = ngx_cpymem(o, "&#39;", 5);
            break;
        default:
            *o++ = *p;
        }
    }

    ctx->out->last = o;
}


void
ngx_http_tunnel_admin_esc_c(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, const char *text)
{
    ngx_str_t  s;

    s.data = (u_char *) text;
    s.len = ngx_strlen(text);

    ngx_http_tunnel_admin_esc(r, ctx, &s);
}


/* our own markup and numbers only: arguments are not escaped */
void
ngx_http_tunnel_admin_printf(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, const char *fmt, ...)
{
    u_char     buf[1024];
    va_list    args;
    ngx_str_t  s;

    va_start(args, fmt);
    s.len = ngx_vslprintf(buf, buf + sizeof(buf), fmt, args) - buf;
    va_end(args);

    s.data = buf;
    ngx_http_tunnel_admin_put_str(r, ctx, &s);
}


void
ngx_http_tunnel_admin_page_start(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, const char *title)
{
    ctx->status = NGX_HTTP_OK;

    if (ctx->out) {
        ctx->out->last = ctx->out->pos;
    }

    ngx_http_tunnel_admin_put(r, ctx,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n"
        "<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" "
        "content=\"width=device-width, initial-scale=1\">\n"
        "<meta name=\"referrer\" content=\"no-referrer\">\n<title>");
    ngx_http_tunnel_admin_esc_c(r, ctx, title);
    ngx_http_tunnel_admin_put(r, ctx,
        " - ngx-tunnel</title>\n"
        "<link rel=\"stylesheet\" href=\"/static/admin.css\">\n"
        "<link rel=\"icon\" href=\"/static/icon.svg\" "
        "type=\"image/svg+xml\">\n"
        "</head>\n<body>\n<header>\n"
        "<a class=\"brand\" href=\"/\">ngx-tunnel</a>\n");

    if (ctx->logged_in) {
        ngx_http_tunnel_admin_put(r, ctx,
            "<nav>\n<a href=\"/tunnels\">My tunnels</a>\n"
            "<a href=\"/keys\">SSH keys</a>\n"
            "<a href=\"/names\">Names</a>\n"
            "<a href=\"/activate\">Activate</a>\n");

        if (ctx->is_admin) {
            ngx_http_tunnel_admin_put(r, ctx,
                "<a href=\"/admin/tunnels\">All tunnels</a>\n"
                "<a href=\"/admin/invites\">Invitations</a>\n"
                "<a href=\"/admin/users\">Users</a>\n"
                "<a href=\"/admin/audit\">Audit log</a>\n");
        }

        ngx_http_tunnel_admin_put(r, ctx, "<span class=\"who\">");
        ngx_http_tunnel_admin_esc(r, ctx, &ctx->user_name);
        ngx_http_tunnel_admin_put(r, ctx,
            "</span>\n<form method=\"post\" action=\"/logout\">"
            "<input type=\"hidden\" name=\"csrf\" value=\"");
        ngx_http_tunnel_admin_esc(r, ctx, &ctx->csrf);
        ngx_http_tunnel_admin_put(r, ctx,
            "\"><button class=\"link\" type=\"submit\">Sign out</button>"
            "</form>\n</nav>\n");
    }

    ngx_http_tunnel_admin_put(r, ctx, ctx->wide
                              ? "</header>\n<main class=\"wide\">\n<h1>"
                              : "</header>\n<main>\n<h1>");
    ngx_http_tunnel_admin_esc_c(r, ctx, title);
    ngx_http_tunnel_admin_put(r, ctx, "</h1>\n");
}


void
ngx_http_tunnel_admin_page_end(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ngx_http_tunnel_admin_put(r, ctx, "</main>\n</body>\n</html>\n");

    if (ctx->form_status) {
        ctx->status = ctx->form_status;
    }
}


/* the hidden CSRF field of a form on the current page */
void
ngx_http_tunnel_admin_csrf_field(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ngx_str_t  *token;

    token = (ctx->route->access >= NGX_HTTP_TUNNEL_ADMIN_USER)
            ? &ctx->csrf : &ctx->guest_csrf;

    ngx_http_tunnel_admin_put(r, ctx,
                              "<input type=\"hidden\" name=\"csrf\" value=\"");
    ngx_http_tunnel_admin_esc(r, ctx, token);
    ngx_http_tunnel_admin_put(r, ctx, "\">\n");
}


/*
 * The start of a POST form of the current page: its action field and, if
 * field is not NULL, one hidden field more (the row a button acts on),
 * then the CSRF field.  The caller puts the inputs and closes the form.
 */
void
ngx_http_tunnel_admin_form_start(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, const char *url, const char *action,
    const char *field, ngx_str_t *value)
{
    ngx_http_tunnel_admin_printf(r, ctx,
        "<form method=\"post\" action=\"%s\">"
        "<input type=\"hidden\" name=\"action\" value=\"%s\">",
        url, action);

    if (field) {
        ngx_http_tunnel_admin_printf(r, ctx,
            "<input type=\"hidden\" name=\"%s\" value=\"", field);
        ngx_http_tunnel_admin_esc(r, ctx, value);
        ngx_http_tunnel_admin_put(r, ctx, "\">");
    }

    ngx_http_tunnel_admin_csrf_field(r, ctx);
}


/* a cell of the last query's result, escaped */
void
ngx_http_tunnel_admin_esc_cell(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, int row, int col)
{
    ngx_str_t  s;

    s = ngx_http_tunnel_admin_cell(ctx, row, col);
    ngx_http_tunnel_admin_esc(r, ctx, &s);
}


/*
 * The message box: ctx->msg (an error of the form just sent) or, after a
 * redirect, a fixed sentence chosen by ?done=CODE (never the argument's own
 * text).
 */
void
ngx_http_tunnel_admin_flash(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ngx_str_t    done;
    ngx_uint_t   i;

    static struct {
        const char  *code;
        const char  *text;
    } done_texts[] = {
        { "welcome", "Welcome!  Add an SSH key to start opening tunnels." },
        { "signed-in", "You are signed in." },
        { "key-added", "The key was added.  It can open tunnels within a "
                       "few seconds." },
        { "key-removed", "The key was removed.  It can no longer open "
                         "tunnels." },
        { "name-reserved", "The name is yours now." },
        { "name-released", "The name was released." },
        { "invite-revoked", "The invitation was revoked." },
        { "user-updated", "The user was updated." },
        { "password-set", "Your password is set and you are signed in." },
        { "password-set-login", "Your password is set: sign in with it." },
        { NULL, NULL }
    };

    if (ctx->msg.len) {
        ngx_http_tunnel_admin_put(r, ctx, "<p class=\"msg bad\">");
        ngx_http_tunnel_admin_esc(r, ctx, &ctx->msg);
        ngx_http_tunnel_admin_put(r, ctx, "</p>\n");
        return;
    }

    if (ctx->note.len) {
        ngx_http_tunnel_admin_put(r, ctx, "<p class=\"msg good\">");
        ngx_http_tunnel_admin_esc(r, ctx, &ctx->note);
        ngx_http_tunnel_admin_put(r, ctx, "</p>\n");
        return;
    }

    if (ngx_http_tunnel_admin_arg(r, "done", &done) != NGX_OK) {
        return;
    }

    for (i = 0; done_texts[i].code; i++) {
        if (done.len == ngx_strlen(done_texts[i].code)
            && ngx_strncmp(done.data, done_texts[i].code, done.len) == 0)
        {
            ngx_http_tunnel_admin_put(r, ctx, "<p class=\"msg good\">");
            ngx_http_tunnel_admin_esc_c(r, ctx, done_texts[i].text);
            ngx_http_tunnel_admin_put(r, ctx, "</p>\n");
            return;
        }
    }
}


/*
 * One labelled input.  With keep, a form sent back after a validation
 * error shows what the person typed (never done for passwords).
 */
void
ngx_http_tunnel_admin_input(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, const char *label, const char *name,
    const char *type, const char *autocomplete, const char *hint,
    ngx_uint_t keep)
{
    ngx_str_t  *value;

    ngx_http_tunnel_admin_printf(r, ctx, "<label for=\"f-%s\">", name);
    ngx_http_tunnel_admin_esc_c(r, ctx, label);
    ngx_http_tunnel_admin_printf(r, ctx,
        "</label>\n<input id=\"f-%s\" name=\"%s\" type=\"%s\" "
        "autocomplete=\"%s\"", name, name, type, autocomplete);

    value = keep ? ngx_http_tunnel_admin_field(ctx, name) : NULL;

    if (value && value->len) {
        ngx_http_tunnel_admin_put(r, ctx, " value=\"");
        ngx_http_tunnel_admin_esc(r, ctx, value);
        ngx_http_tunnel_admin_put(r, ctx, "\"");
    }

    ngx_http_tunnel_admin_put(r, ctx, ">\n");

    if (hint) {
        ngx_http_tunnel_admin_put(r, ctx, "<p class=\"hint\">");
        ngx_http_tunnel_admin_esc_c(r, ctx, hint);
        ngx_http_tunnel_admin_put(r, ctx, "</p>\n");
    }
}


/*
 * A message naming values ("%V" arguments, from people or the database) for
 * form_error() or message(), which escape it at output.  NUL-terminated, in
 * r->pool; NULL if out of memory.
 */
const char *
ngx_http_tunnel_admin_sentence(ngx_http_request_t *r, const char *fmt, ...)
{
    u_char   buf[1024], *p, *last;
    va_list  args;

    va_start(args, fmt);
    last = ngx_vslprintf(buf, buf + sizeof(buf) - 1, fmt, args);
    va_end(args);

    p = ngx_pnalloc(r->pool, last - buf + 1);
    if (p == NULL) {
        return NULL;
    }

    *ngx_cpymem(p, buf, last - buf) = '\0';

    return (const char *) p;
}


/* a typed value to quote in a message: at most 40 bytes, cut marked */
ngx_str_t
ngx_http_tunnel_admin_shorten(ngx_http_request_t *r, ngx_str_t *text)
{
    size_t     len;
    ngx_str_t  s;

    if (text->len <= 40) {
        return *text;
    }

    /* cut on a UTF-8 character boundary */
    len = 37;
    while (len && (text->data[len] & 0xc0) == 0x80) {
        len--;
    }

    s.data = ngx_pnalloc(r->pool, len + 3);
    if (s.data == NULL) {
        s.len = 0;
        return s;
    }

    s.len = ngx_cpymem(ngx_cpymem(s.data, text->data, len), "...", 3)
            - s.data;

    return s;
}


/* a form page sent back with what is wrong: re-runs the page's GET */
ngx_int_t
ngx_http_tunnel_admin_form_error(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_uint_t status, const char *msg)
{
    ctx->msg.data = (u_char *) msg;
    ctx->msg.len = ngx_strlen(msg);
    ctx->form_status = status;
    ctx->render = 1;
    ctx->step = 0;

    return ctx->route->get(r, ctx);
}


/* a whole page saying what happened and what to do next */
ngx_int_t
ngx_http_tunnel_admin_message(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_uint_t status, const char *title,
    const char *text, const char *next_href, const char *next_text)
{
    ngx_str_null(&ctx->location);

    ngx_http_tunnel_admin_page_start(r, ctx, title);

    ngx_http_tunnel_admin_put(r, ctx, "<div class=\"card\">\n<p>");
    ngx_http_tunnel_admin_esc_c(r, ctx, text);
    ngx_http_tunnel_admin_put(r, ctx, "</p>\n");

    if (next_href) {
        ngx_http_tunnel_admin_put(r, ctx, "<p><a href=\"");
        ngx_http_tunnel_admin_esc_c(r, ctx, next_href);
        ngx_http_tunnel_admin_put(r, ctx, "\">");
        ngx_http_tunnel_admin_esc_c(r, ctx, next_text);
        ngx_http_tunnel_admin_put(r, ctx, "</a></p>\n");
    }

    ngx_http_tunnel_admin_put(r, ctx, "</div>\n");
    ngx_http_tunnel_admin_page_end(r, ctx);

    ctx->status = status;

    return NGX_HTTP_TUNNEL_ADMIN_READY;
}


/* 303 to a path of ours (never to a URL taken from the request) */
ngx_int_t
ngx_http_tunnel_admin_redirect(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, const char *location)
{
    ctx->status = NGX_HTTP_SEE_OTHER;
    ctx->location.data = (u_char *) location;
    ctx->location.len = ngx_strlen(location);

    if (ctx->out) {
        ctx->out->last = ctx->out->pos;
    }

    return NGX_HTTP_TUNNEL_ADMIN_READY;
}


static ngx_int_t
ngx_http_tunnel_admin_header(ngx_http_request_t *r, const char *name,
    const char *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);
    h->value.data = (u_char *) value;
    h->value.len = ngx_strlen(value);

    return NGX_OK;
}


/* sends what ctx holds; returns what the content phase expects */
ngx_int_t
ngx_http_tunnel_admin_send(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ngx_int_t         rc;
    ngx_uint_t        asset;
    ngx_chain_t       out;
    ngx_table_elt_t  *h;

    /* the stylesheet, the icon, the scripts: cacheable, never HTML */
    asset = (ctx->content_type.len && ctx->status == NGX_HTTP_OK
             && !ctx->no_cache);

    if (ctx->location.len) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Location");
        h->value = ctx->location;

        r->headers_out.location = h;
        ctx->out = NULL;
    }

    r->headers_out.status = ctx->status ? ctx->status : NGX_HTTP_OK;

    if (r->headers_out.status == NGX_HTTP_TUNNEL_ADMIN_INVALID) {
        ngx_str_set(&r->headers_out.status_line, "422 Unprocessable Entity");
    }
    r->headers_out.content_length_n = ctx->out
                                      ? ctx->out->last - ctx->out->pos : 0;

    if (asset || (ctx->no_cache && ctx->content_type.len)) {
        r->headers_out.content_type = ctx->content_type;

    } else {
        ngx_str_set(&r->headers_out.content_type,
                    "text/html; charset=utf-8");
    }

    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    if (ngx_http_tunnel_admin_header(r, "Content-Security-Policy",
                                     ctx->script
                                     ? NGX_HTTP_TUNNEL_ADMIN_CSP_SCRIPT
                                     : NGX_HTTP_TUNNEL_ADMIN_CSP) != NGX_OK
        || ngx_http_tunnel_admin_header(r, "X-Content-Type-Options",
                                        "nosniff") != NGX_OK
        || ngx_http_tunnel_admin_header(r, "X-Frame-Options", "DENY")
           != NGX_OK
        || ngx_http_tunnel_admin_header(r, "Referrer-Policy", "no-referrer")
           != NGX_OK
        || ngx_http_tunnel_admin_header(r, "Cache-Control",
                                        asset ? "max-age=3600" : "no-store")
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (r->headers_out.status == NGX_HTTP_SERVICE_UNAVAILABLE
        && ngx_http_tunnel_admin_header(r, "Retry-After", "30") != NGX_OK)
    {
        return NGX_ERROR;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    if (ctx->out == NULL || ctx->out->last == ctx->out->pos) {
        return ngx_http_send_special(r, NGX_HTTP_LAST);
    }

    ctx->out->last_buf = (r == r->main) ? 1 : 0;
    ctx->out->last_in_chain = 1;

    out.buf = ctx->out;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}
