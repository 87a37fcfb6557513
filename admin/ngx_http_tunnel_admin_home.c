
/*
 * The start page "/": who is signed in, their keys and names, and the exact
 * ssh command that opens a tunnel on this installation, with a copy button
 * and the URL the tunnel will get.
 *
 * The command is built from tunnel_admin_ssh_host and tunnel_admin_ssh_port
 * (-p left out for 22) and the URL from tunnel_admin_tunnel_url; unset,
 * they follow the request (the admin on the bare tunnel domain, as in the
 * dev stack).  The name in it is the user's own reserved name, else one
 * they could get: derived from their user name, checked in the same query
 * against system_names and everybody's reserved_names.  (A live tunnel of
 * someone else under that name is in Redis, which this module does not
 * read: ssh then says the name is taken.)
 *
 * Above the command: the user's own live tunnels with their URLs, asked
 * from tunneld's API (GET /tunnels?user=THEM, tunnels.c); when the API does
 * not answer the page says so and shows the rest.  The copy button needs
 * the small script /static/copy.js; without JavaScript the button stays
 * hidden and the command is plain selectable text.
 */

#include "ngx_http_tunnel_admin_module.h"


/*
 * $1 user id, $2 user name.  The user's name is the first of their
 * reservations in byte order (COLLATE "C", as tunneld's strcmp in keys.c:
 * what a nameless -R gets) that is not a system name; a reservation of a
 * system name is listed as "kept for the system now" and is never theirs.
 * Else candidates: the user name made a DNS label, then NAME-app, NAME-2
 * ... NAME-200; the first valid one that is neither a system name nor
 * reserved by anyone.
 */
static const char  ngx_http_tunnel_admin_home_sql[] =
    "WITH b AS ("
    "  SELECT left(trim(both '-' from"
    "                   regexp_replace(lower($2), '[^a-z0-9-]+', '-', 'g')),"
    "              50) AS base),"
    " cand AS ("
    "  SELECT base AS c, 0 AS o FROM b"
    "  UNION ALL SELECT base || '-app', 1 FROM b"
    "  UNION ALL SELECT base || '-' || n, n FROM b, generate_series(2, 200) n),"
    " mine AS ("
    "  SELECT r.name, EXISTS (SELECT 1 FROM system_names s"
    "                          WHERE s.name = r.name) AS sys"
    "    FROM reserved_names r WHERE r.user_id = $1)"
    " SELECT (SELECT count(*) FROM ssh_keys WHERE user_id = $1),"
    "        (SELECT string_agg(name || CASE WHEN sys"
    "                  THEN ' (kept for the system now)' ELSE '' END,"
    "                  ', ' ORDER BY name COLLATE \"C\") FROM mine),"
    "        (SELECT name FROM mine WHERE NOT sys"
    "          ORDER BY name COLLATE \"C\" LIMIT 1),"
    "        (SELECT c FROM cand"
    "          WHERE c ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'"
    "            AND NOT EXISTS (SELECT 1 FROM system_names s"
    "                             WHERE s.name = c)"
    "            AND NOT EXISTS (SELECT 1 FROM reserved_names r"
    "                             WHERE r.name = c)"
    "          ORDER BY o LIMIT 1)";


static void ngx_http_tunnel_admin_home_account(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
static void ngx_http_tunnel_admin_home_live(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
static void ngx_http_tunnel_admin_home_command(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
static void ngx_http_tunnel_admin_tunnel_url(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_str_t *name);


static const char  ngx_http_tunnel_admin_copy_js[] =
    "// ngx-tunnel admin: copy buttons.  <button data-copy=\"ID\" hidden>\n"
    "// copies the text of #ID; without JavaScript it stays hidden.\n"
    "(function () {\n"
    "    'use strict';\n"
    "    function said(b, text) {\n"
    "        b.textContent = text;\n"
    "        setTimeout(function () { b.textContent = 'Copy'; }, 3000);\n"
    "    }\n"
    "    function select(el) {\n"
    "        var range = document.createRange(), sel = getSelection();\n"
    "        range.selectNodeContents(el);\n"
    "        sel.removeAllRanges();\n"
    "        sel.addRange(range);\n"
    "        try { return document.execCommand('copy'); }\n"
    "        catch (e) { return false; }\n"
    "    }\n"
    "    var buttons = document.querySelectorAll('button[data-copy]');\n"
    "    buttons.forEach(function (b) {\n"
    "        var el = document.getElementById(b.getAttribute('data-copy'));\n"
    "        if (!el) { return; }\n"
    "        b.hidden = false;\n"
    "        b.addEventListener('click', function () {\n"
    "            var text = el.textContent;\n"
    "            function fallback() {\n"
    "                said(b, select(el) ? 'Copied' : 'Press Ctrl+C');\n"
    "            }\n"
    "            if (navigator.clipboard && window.isSecureContext) {\n"
    "                navigator.clipboard.writeText(text).then(function () {\n"
    "                    said(b, 'Copied');\n"
    "                }, fallback);\n"
    "            } else {\n"
    "                fallback();\n"
    "            }\n"
    "        });\n"
    "    });\n"
    "}());\n";


/* /static/copy.js, like the stylesheet served without the database */
ngx_int_t
ngx_http_tunnel_admin_copy_script(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ctx->status = NGX_HTTP_OK;
    ngx_str_set(&ctx->content_type, "text/javascript; charset=utf-8");
    ngx_http_tunnel_admin_put(r, ctx, ngx_http_tunnel_admin_copy_js);

    return NGX_HTTP_TUNNEL_ADMIN_READY;
}


ngx_int_t
ngx_http_tunnel_admin_home(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ngx_int_t  rc;
    ngx_str_t  params[2];

    if (ctx->step == 0) {
        params[0] = ctx->user_id_text;
        params[1] = ctx->user_name;
        ctx->step = 1;

        return ngx_http_tunnel_admin_query(r, ctx,
                                           ngx_http_tunnel_admin_home_sql,
                                           2, params);
    }

    if (ctx->step == 1) {
        /* the query's result stays in ctx->res meanwhile */
        ctx->step = 2;

        rc = ngx_http_tunnel_admin_live_list(r, ctx, &ctx->user_name);
        if (rc != NGX_DECLINED) {
            return rc;
        }
    }

    ngx_http_tunnel_admin_page_start(r, ctx, "Your tunnels");
    ngx_http_tunnel_admin_flash(r, ctx);

    ngx_http_tunnel_admin_home_account(r, ctx);
    ngx_http_tunnel_admin_home_live(r, ctx);
    ngx_http_tunnel_admin_home_command(r, ctx);

    ctx->script = 1;
    ngx_http_tunnel_admin_put(r, ctx,
                              "<script src=\"/static/copy.js\"></script>\n");

    ngx_http_tunnel_admin_page_end(r, ctx);

    return NGX_HTTP_TUNNEL_ADMIN_READY;
}


static void
ngx_http_tunnel_admin_home_account(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ngx_str_t  keys, names;

    keys = ngx_http_tunnel_admin_cell(ctx, 0, 0);
    names = ngx_http_tunnel_admin_cell(ctx, 0, 1);

    ngx_http_tunnel_admin_put(r, ctx, "<div class=\"card\">\n<p>Signed in as "
                              "<strong>");
    ngx_http_tunnel_admin_esc(r, ctx, &ctx->user_name);
    ngx_http_tunnel_admin_put(r, ctx, "</strong>");

    if (ctx->is_admin) {
        ngx_http_tunnel_admin_put(r, ctx,
                                  " <span class=\"tag on\">admin</span>");
    }

    ngx_http_tunnel_admin_put(r, ctx, ".</p>\n<p>SSH keys: ");
    ngx_http_tunnel_admin_esc(r, ctx, &keys);
    ngx_http_tunnel_admin_put(r, ctx,
        " (<a href=\"/keys\">manage</a>).  Reserved names: ");

    if (names.len) {
        ngx_http_tunnel_admin_esc(r, ctx, &names);

    } else {
        ngx_http_tunnel_admin_put(r, ctx, "none");
    }

    ngx_http_tunnel_admin_put(r, ctx,
                              " (<a href=\"/names\">manage</a>).</p>\n");

    if (keys.len == 1 && keys.data[0] == '0') {
        ngx_http_tunnel_admin_put(r, ctx,
            "<p class=\"msg bad\">You have no SSH key yet: "
            "<a href=\"/keys\">add your public key</a> first, or ssh "
            "refuses the command below.</p>\n");
    }

    ngx_http_tunnel_admin_put(r, ctx, "</div>\n");
}


/* the user's live tunnels, from tunneld */
static void
ngx_http_tunnel_admin_home_live(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    size_t      i, n;
    json_t     *a, *t;
    ngx_str_t   name, url, user;

    ngx_http_tunnel_admin_put(r, ctx, "<h2>Live now</h2>\n");

    a = ngx_http_tunnel_admin_live_tunnels(ctx);

    if (a == NULL) {
        ngx_http_tunnel_admin_live_unavailable(r, ctx);
        return;
    }

    ngx_http_tunnel_admin_put(r, ctx, "<div class=\"card\" id=\"live-now\">"
                              "\n");

    n = json_array_size(a);

    for (i = 0; i < n; i++) {
        t = json_array_get(a, i);
        name = ngx_http_tunnel_admin_json_str(t, "name");
        url = ngx_http_tunnel_admin_json_str(t, "url");
        user = ngx_http_tunnel_admin_json_str(t, "user");

        /* asked with ?user=: never show another user's, whatever came */
        if (name.len == 0 || user.len != ctx->user_name.len
            || ngx_strncmp(user.data, ctx->user_name.data, user.len) != 0)
        {
            continue;
        }

        ngx_http_tunnel_admin_put(r, ctx, "<p class=\"live\"><strong "
                                  "class=\"mono\">");
        ngx_http_tunnel_admin_esc(r, ctx, &name);
        ngx_http_tunnel_admin_put(r, ctx, "</strong> is up at ");

        if (url.len > 7 && (ngx_strncmp(url.data, "http://", 7) == 0
                            || ngx_strncmp(url.data, "https://", 8) == 0))
        {
            ngx_http_tunnel_admin_put(r, ctx, "<a class=\"mono\" href=\"");
            ngx_http_tunnel_admin_esc(r, ctx, &url);
            ngx_http_tunnel_admin_put(r, ctx, "\">");
            ngx_http_tunnel_admin_esc(r, ctx, &url);
            ngx_http_tunnel_admin_put(r, ctx, "</a>");

        } else {
            ngx_http_tunnel_admin_esc(r, ctx, &url);
        }

        ngx_http_tunnel_admin_put(r, ctx, "</p>\n");
    }

    ngx_http_tunnel_admin_put(r, ctx, n ? "<p class=\"hint\">Counters, "
        "and Kick, on <a href=\"/tunnels\">My tunnels</a>.</p>\n</div>\n"
        : "<p class=\"muted\">None of your tunnels is up right now: start "
          "one with the command below.</p>\n</div>\n");
}


/* the command, its copy button and what it gives */
static void
ngx_http_tunnel_admin_home_command(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ngx_str_t                           name, host;
    ngx_uint_t                          reserved;
    ngx_http_tunnel_admin_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_tunnel_admin_module);

    name = ngx_http_tunnel_admin_cell(ctx, 0, 2);
    reserved = (name.len != 0);

    if (!reserved) {
        name = ngx_http_tunnel_admin_cell(ctx, 0, 3);
    }

    if (name.len == 0) {
        /* 200 candidates all taken: ssh -R 80:... picks a random name */
        ngx_str_set(&name, "myapp");
    }

    host = amcf->ssh_host.len ? amcf->ssh_host : r->headers_in.server;

    ngx_http_tunnel_admin_put(r, ctx,
        "<h2>Start a tunnel</h2>\n<div class=\"card\">\n"
        "<p>With one of your keys, run this on the machine where your app "
        "listens on port 3000 (or put your app's port instead of 3000):</p>\n"
        "<div class=\"cmd\"><code class=\"copy mono\" id=\"tunnel-command\">"
        "ssh ");

    if (amcf->ssh_port != 22) {
        ngx_http_tunnel_admin_printf(r, ctx, "-p %ui ", amcf->ssh_port);
    }

    ngx_http_tunnel_admin_put(r, ctx, "-R ");
    ngx_http_tunnel_admin_esc(r, ctx, &name);
    ngx_http_tunnel_admin_put(r, ctx, ":80:localhost:3000 ");
    ngx_http_tunnel_admin_esc(r, ctx, &ctx->user_name);
    ngx_http_tunnel_admin_put(r, ctx, "@");
    ngx_http_tunnel_admin_esc(r, ctx, &host);
    ngx_http_tunnel_admin_put(r, ctx,
        "</code> <button class=\"link\" type=\"button\" "
        "data-copy=\"tunnel-command\" hidden>Copy</button></div>\n"
        "<p>Your app then answers at ");
    ngx_http_tunnel_admin_tunnel_url(r, ctx, &name);
    ngx_http_tunnel_admin_put(r, ctx,
        " for as long as ssh runs; Ctrl-C stops the tunnel.</p>\n"
        "<p class=\"hint\">");

    ngx_http_tunnel_admin_put(r, ctx, "<span class=\"mono\">");
    ngx_http_tunnel_admin_esc(r, ctx, &name);

    if (reserved) {
        ngx_http_tunnel_admin_put(r, ctx,
            "</span> is your reserved name: nobody else can take it.");

    } else {
        ngx_http_tunnel_admin_put(r, ctx,
            "</span> is free right now: <a href=\"/names\">reserve it</a> "
            "to keep it yours.");
    }

    ngx_http_tunnel_admin_put(r, ctx,
        "  Without a name (<span class=\"mono\">-R 80:localhost:3000</span>)"
        " you get your reserved name (the first in name order if "
        "you have several), or a random one.  ssh prints your "
        "tunnel's URL and every request; this page lists it under Live now "
        "while ssh runs.</p>\n</div>\n");
}


/* the URL a tunnel of that name gets, as a link */
static void
ngx_http_tunnel_admin_tunnel_url(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_str_t *name)
{
    u_char                             *p;
    ngx_str_t                           url, before, after, host;
    ngx_http_tunnel_admin_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_tunnel_admin_module);

    if (amcf->tunnel_url.len) {
        /* checked at load: exactly one "%s" */
        p = (u_char *) ngx_strnstr(amcf->tunnel_url.data, "%s",
                                   amcf->tunnel_url.len);
        before.data = amcf->tunnel_url.data;
        before.len = p - before.data;
        after.data = p + 2;
        after.len = amcf->tunnel_url.data + amcf->tunnel_url.len - after.data;

    } else {
        host = r->headers_in.host ? r->headers_in.host->value
                                  : r->headers_in.server;

        ngx_str_set(&before, "http://");
#if (NGX_HTTP_SSL)
        if (r->connection->ssl) {
            ngx_str_set(&before, "https://");
        }
#endif
        after.data = ngx_pnalloc(r->pool, host.len + 1);
        if (after.data == NULL) {
            return;
        }

        after.data[0] = '.';
        ngx_memcpy(after.data + 1, host.data, host.len);
        after.len = host.len + 1;
    }

    url.len = before.len + name->len + after.len + 1;
    url.data = ngx_pnalloc(r->pool, url.len);
    if (url.data == NULL) {
        return;
    }

    p = ngx_cpymem(url.data, before.data, before.len);
    p = ngx_cpymem(p, name->data, name->len);
    p = ngx_cpymem(p, after.data, after.len);

    if (ngx_strlchr(after.data, after.data + after.len, '/') == NULL) {
        *p++ = '/';
    }

    url.len = p - url.data;

    ngx_http_tunnel_admin_put(r, ctx, "<a class=\"mono\" id=\"tunnel-url\" "
                              "href=\"");
    ngx_http_tunnel_admin_esc(r, ctx, &url);
    ngx_http_tunnel_admin_put(r, ctx, "\">");
    ngx_http_tunnel_admin_esc(r, ctx, &url);
    ngx_http_tunnel_admin_put(r, ctx, "</a>");
}
