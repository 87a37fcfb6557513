
/*
 * The live tunnels: /admin/tunnels (an administrator: every tunnel) and
 * /tunnels (a user: their own), their JSON twins /admin/tunnels.json and
 * /tunnels.json polled by /static/tunnels.js, and Kick.
 *
 * Every view asks tunneld's API (api.c) for at most 1000 tunnels, in name
 * order; a user's view asks with ?user=THEM, so another user's tunnel never
 * reaches their page (and is filtered out again here, should the API ever
 * answer more).  Filtering (?q=, a substring of name, user or client),
 * sorting (?sort=COLUMN&dir=asc|desc) and paging (?page=, 100 rows) happen
 * here, on that list.  Without JavaScript the page is complete and has a
 * Refresh link; with it, the table body is re-rendered from the JSON every
 * second.
 *
 * Kick: a POST (CSRF token) of action=kick and the name shows a confirm page
 * with an optional reason; its POST (confirm=yes) asks GET /tunnels/NAME for
 * the owner (a user may kick only their own), then DELETE
 * /tunnels/NAME?reason=&by=WEB_USER, and redirects to the list, which says
 * what happened.
 *
 * Also here: the start page's list of one's own tunnels and the users page's
 * count of tunnels up use ngx_http_tunnel_admin_live_list().
 */

#include "ngx_http_tunnel_admin_module.h"

#include "tnl_name.h"


#define NGX_HTTP_TUNNEL_ADMIN_PER_PAGE   100
#define NGX_HTTP_TUNNEL_ADMIN_Q_MAX      100
#define NGX_HTTP_TUNNEL_ADMIN_REASON_MAX 200


typedef struct {
    json_t                     *obj;
    ngx_str_t                   name;
    ngx_str_t                   url;
    ngx_str_t                   user;
    ngx_str_t                   client;
    ngx_str_t                   node;
    int64_t                     started;
    int64_t                     bytes_in;
    int64_t                     bytes_out;
    int64_t                     requests;
    int64_t                     streams;      /* open now */
    int64_t                     last;         /* -1: never */
} ngx_http_tunnel_admin_live_t;


typedef enum {
    NGX_HTTP_TUNNEL_ADMIN_COL_NAME = 0,
    NGX_HTTP_TUNNEL_ADMIN_COL_USER,
    NGX_HTTP_TUNNEL_ADMIN_COL_CLIENT,
    NGX_HTTP_TUNNEL_ADMIN_COL_NODE,
    NGX_HTTP_TUNNEL_ADMIN_COL_UP,
    NGX_HTTP_TUNNEL_ADMIN_COL_IN,
    NGX_HTTP_TUNNEL_ADMIN_COL_OUT,
    NGX_HTTP_TUNNEL_ADMIN_COL_REQUESTS,
    NGX_HTTP_TUNNEL_ADMIN_COL_STREAMS,
    NGX_HTTP_TUNNEL_ADMIN_COL_LAST,
    NGX_HTTP_TUNNEL_ADMIN_NCOLS
} ngx_http_tunnel_admin_col_e;


typedef struct {
    const char                 *key;          /* ?sort= */
    const char                 *label;
    unsigned                    num:1;        /* right-aligned */
    unsigned                    opt:1;        /* hidden on narrow screens */
} ngx_http_tunnel_admin_col_t;


static ngx_http_tunnel_admin_col_t  ngx_http_tunnel_admin_cols[] = {
    { "name",     "Name",          0, 0 },
    { "user",     "User",          0, 0 },
    { "client",   "Client",        0, 1 },
    { "node",     "Node",          0, 1 },
    { "up",       "Up for",        1, 0 },
    { "in",       "Bytes in",      1, 0 },
    { "out",      "Bytes out",     1, 0 },
    { "requests", "Requests",      1, 0 },
    { "streams",  "Open streams",  1, 1 },
    { "last",     "Last request",  1, 0 },
};


typedef struct {
    ngx_uint_t                  admin_view;   /* /admin/tunnels */
    const char                 *base;         /* the page's path */
    ngx_uint_t                  sort;         /* a column */
    ngx_uint_t                  desc;
    ngx_str_t                   q;            /* lower case */
    ngx_uint_t                  page;         /* from 1 */
    ngx_uint_t                  pages;
    ngx_uint_t                  total;        /* fetched from the API */
    ngx_uint_t                  more;         /* the API had more */
    ngx_array_t                *rows;         /* matching, sorted */
    time_t                      now;
} ngx_http_tunnel_admin_view_t;


static ngx_int_t ngx_http_tunnel_admin_view_init(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_http_tunnel_admin_view_t *v);
static ngx_int_t ngx_http_tunnel_admin_view_rows(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_http_tunnel_admin_view_t *v);
static int ngx_http_tunnel_admin_live_cmp(const void *a, const void *b,
    void *arg);
static void ngx_http_tunnel_admin_live_row(ngx_http_tunnel_admin_live_t *t,
    json_t *obj);
static ngx_int_t ngx_http_tunnel_admin_live_matches(
    ngx_http_tunnel_admin_live_t *t, ngx_str_t *q);
static void ngx_http_tunnel_admin_view_link(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_http_tunnel_admin_view_t *v,
    const char *path, ngx_uint_t sort, ngx_uint_t desc, ngx_uint_t page);
static void ngx_http_tunnel_admin_tunnels_table(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_http_tunnel_admin_view_t *v);
static void ngx_http_tunnel_admin_tunnels_flash(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
static ngx_int_t ngx_http_tunnel_admin_kick_confirm(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_str_t *name);
static ngx_int_t ngx_http_tunnel_admin_kick_done(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, const char *done);
static u_char *ngx_http_tunnel_admin_fmt_bytes(u_char *p, int64_t n);
static u_char *ngx_http_tunnel_admin_fmt_age(u_char *p, int64_t secs);
static ngx_int_t ngx_http_tunnel_admin_valid_name(ngx_str_t *in,
    u_char *out);


/* the script of the live table: polls the JSON twin of the page */
static const char  ngx_http_tunnel_admin_tunnels_js[] =
    "// ngx-tunnel admin: the live tunnels table.  Polls the JSON twin of\n"
    "// this page every second and re-renders the table body; without\n"
    "// JavaScript the page is complete and has a Refresh link.\n"
    "(function () {\n"
    "    'use strict';\n"
    "    var table = document.getElementById('live');\n"
    "    if (!table || !window.fetch) { return; }\n"
    "    var body = table.tBodies[0];\n"
    "    var state = document.getElementById('live-state');\n"
    "    var count = document.getElementById('live-count');\n"
    "    var src = table.getAttribute('data-json');\n"
    "    var action = table.getAttribute('data-action');\n"
    "    var csrf = table.getAttribute('data-csrf');\n"
    "    var cols = ['user', 'client', 'node', 'up', 'in', 'out',\n"
    "                'requests', 'open_streams', 'last'];\n"
    "    var labels = ['User', 'Client', 'Node', 'Up for', 'Bytes in',\n"
    "                  'Bytes out', 'Requests', 'Open streams',\n"
    "                  'Last request'];\n"
    "    var opt = { client: 1, node: 1, open_streams: 1 };\n"
    "    var num = { up: 1, in: 1, out: 1, requests: 1,\n"
    "                open_streams: 1, last: 1 };\n"
    "    function el(tag, cls, text) {\n"
    "        var e = document.createElement(tag);\n"
    "        if (cls) { e.className = cls; }\n"
    "        if (text !== undefined) { e.textContent = text; }\n"
    "        return e;\n"
    "    }\n"
    "    function hidden(form, name, value) {\n"
    "        var i = el('input');\n"
    "        i.type = 'hidden'; i.name = name; i.value = value;\n"
    "        form.appendChild(i);\n"
    "    }\n"
    "    function row(t) {\n"
    "        var tr = el('tr'), td = el('td'), a;\n"
    "        tr.setAttribute('data-name', t.name);\n"
    "        if (/^https?:\\/\\//.test(t.url)) {\n"
    "            a = el('a', 'mono', t.name); a.href = t.url;\n"
    "            td.appendChild(a);\n"
    "        } else { td.textContent = t.name; }\n"
    "        tr.appendChild(td);\n"
    "        cols.forEach(function (c, i) {\n"
    "            var cls = (num[c] ? 'num' : '') + (opt[c] ? ' opt' : '');\n"
    "            var d = el('td', cls.trim(), String(t[c]));\n"
    "            d.setAttribute('data-label', labels[i]);\n"
    "            d.setAttribute('data-col', c);\n"
    "            tr.appendChild(d);\n"
    "        });\n"
    "        var f = el('form'), b = el('button', 'danger', 'Kick');\n"
    "        f.method = 'post'; f.action = action;\n"
    "        hidden(f, 'action', 'kick'); hidden(f, 'name', t.name);\n"
    "        hidden(f, 'csrf', csrf);\n"
    "        b.type = 'submit'; f.appendChild(b);\n"
    "        td = el('td'); td.appendChild(f); tr.appendChild(td);\n"
    "        return tr;\n"
    "    }\n"
    "    function render(d) {\n"
    "        var rows = document.createDocumentFragment();\n"
    "        if (!d.available) {\n"
    "            state.textContent = d.message;\n"
    "            state.className = 'msg bad';\n"
    "            return;\n"
    "        }\n"
    "        state.textContent = '';\n"
    "        state.className = '';\n"
    "        d.tunnels.forEach(function (t) { rows.appendChild(row(t)); });\n"
    "        if (!d.tunnels.length) {\n"
    "            var td = el('td', 'muted', d.count ? 'No tunnel on this '\n"
    "                + 'page.' : 'No live tunnel' + (d.q ? ' matches the '\n"
    "                + 'filter.' : '.'));\n"
    "            td.colSpan = 11;\n"
    "            var tr = el('tr'); tr.appendChild(td);\n"
    "            rows.appendChild(tr);\n"
    "        }\n"
    "        body.replaceChildren(rows);\n"
    "        count.textContent = d.summary;\n"
    "    }\n"
    "    function poll() {\n"
    "        fetch(src, { credentials: 'same-origin', cache: 'no-store',\n"
    "                     headers: { 'Accept': 'application/json' } })\n"
    "            .then(function (r) {\n"
    "                var json = (r.headers.get('Content-Type') || '')\n"
    "                    .indexOf('application/json') === 0;\n"
    "                if (!json) { throw new Error('signed out?'); }\n"
    "                return r.json();\n"
    "            })\n"
    "            .then(render, function () {\n"
    "                state.textContent = 'Not updating: reload the page '\n"
    "                    + '(you may have been signed out).';\n"
    "                state.className = 'msg bad';\n"
    "            })\n"
    "            .then(function () { setTimeout(poll, 1000); });\n"
    "    }\n"
    "    setTimeout(poll, 1000);\n"
    "}());\n";


ngx_int_t
ngx_http_tunnel_admin_tunnels_script(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ctx->status = NGX_HTTP_OK;
    ngx_str_set(&ctx->content_type, "text/javascript; charset=utf-8");
    ngx_http_tunnel_admin_put(r, ctx, ngx_http_tunnel_admin_tunnels_js);

    return NGX_HTTP_TUNNEL_ADMIN_READY;
}


/*
 * Asks for the live tunnels (all, or user's), at most 1000, in name order.
 * Returns WAIT, or NGX_DECLINED when no API is configured.
 */
ngx_int_t
ngx_http_tunnel_admin_live_list(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_str_t *user)
{
    u_char     *p;
    ngx_str_t   args;

    args.data = ngx_pnalloc(r->pool, sizeof("limit=1000&user=")
                                     + (user ? user->len * 3 : 0));
    if (args.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(args.data, "limit=%d", NGX_HTTP_TUNNEL_ADMIN_API_LIMIT);

    if (user) {
        p = ngx_cpymem(p, "&user=", 6);
        p = ngx_http_tunnel_admin_arg_escape(p, user);
    }

    args.len = p - args.data;

    return ngx_http_tunnel_admin_api(r, ctx, NGX_HTTP_GET, "/tunnels", &args);
}


/* the "tunnels" array of the last list, or NULL if there is none */
json_t *
ngx_http_tunnel_admin_live_tunnels(ngx_http_tunnel_admin_ctx_t *ctx)
{
    json_t  *a;

    if (!ngx_http_tunnel_admin_api_ok(ctx)) {
        return NULL;
    }

    a = json_object_get(ctx->api_json, "tunnels");

    return json_is_array(a) ? a : NULL;
}


void
ngx_http_tunnel_admin_live_unavailable(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ngx_http_tunnel_admin_put(r, ctx, "<p class=\"msg bad\" id=\"live-state\">"
        "Live state unavailable: tunneld's management API is not answering "
        "(or this installation does not configure it), so live tunnels "
        "cannot be shown right now.  Tunnels themselves are not affected.  "
        "Try again in a moment; if it lasts, tell the operator.</p>\n");
}


/* ?sort= ?dir= ?q= ?page= and who looks */
static ngx_int_t
ngx_http_tunnel_admin_view_init(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_http_tunnel_admin_view_t *v)
{
    ngx_int_t   n;
    ngx_str_t   s;
    ngx_uint_t  i;

    ngx_memzero(v, sizeof(ngx_http_tunnel_admin_view_t));

    v->admin_view = (ctx->route->access == NGX_HTTP_TUNNEL_ADMIN_ADMIN);
    v->base = v->admin_view ? "/admin/tunnels" : "/tunnels";
    v->now = ngx_time();
    v->page = 1;

    if (ngx_http_tunnel_admin_arg(r, "sort", &s) == NGX_OK) {
        for (i = 0; i < NGX_HTTP_TUNNEL_ADMIN_NCOLS; i++) {
            if (s.len == ngx_strlen(ngx_http_tunnel_admin_cols[i].key)
                && ngx_strncmp(s.data, ngx_http_tunnel_admin_cols[i].key,
                               s.len) == 0)
            {
                v->sort = i;
                break;
            }
        }
    }

    if (ngx_http_tunnel_admin_arg(r, "dir", &s) == NGX_OK
        && s.len == 4 && ngx_strncmp(s.data, "desc", 4) == 0)
    {
        v->desc = 1;
    }

    if (ngx_http_tunnel_admin_arg(r, "page", &s) == NGX_OK) {
        n = ngx_atoi(s.data, s.len);
        if (n > 0 && n < 100000) {
            v->page = n;
        }
    }

    if (ngx_http_tunnel_admin_arg_text(r, "q", &s) == NGX_OK) {
        ngx_http_tunnel_admin_trim(&s);

        if (s.len > NGX_HTTP_TUNNEL_ADMIN_Q_MAX) {
            s.len = NGX_HTTP_TUNNEL_ADMIN_Q_MAX;
        }

        v->q.data = ngx_pnalloc(r->pool, s.len + 1);
        if (v->q.data == NULL) {
            return NGX_ERROR;
        }

        ngx_strlow(v->q.data, s.data, s.len);
        v->q.data[s.len] = '\0';
        v->q.len = s.len;
    }

    return NGX_OK;
}


/* the answer's tunnels that match, sorted; pages counted */
static ngx_int_t
ngx_http_tunnel_admin_view_rows(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_http_tunnel_admin_view_t *v)
{
    size_t                         i, n;
    json_t                        *a, *obj;
    ngx_http_tunnel_admin_live_t  *t, row;

    a = ngx_http_tunnel_admin_live_tunnels(ctx);
    n = a ? json_array_size(a) : 0;

    v->rows = ngx_array_create(r->pool, n ? n : 1,
                               sizeof(ngx_http_tunnel_admin_live_t));
    if (v->rows == NULL) {
        return NGX_ERROR;
    }

    v->total = n;
    v->more = a && json_is_string(json_object_get(ctx->api_json,
                                                  "next_cursor"));

    for (i = 0; i < n; i++) {
        obj = json_array_get(a, i);
        if (!json_is_object(obj)) {
            continue;
        }

        ngx_http_tunnel_admin_live_row(&row, obj);

        if (row.name.len == 0) {
            continue;
        }

        /* a user's view: their own, whatever the API sent */
        if (!v->admin_view
            && (row.user.len != ctx->user_name.len
                || ngx_strncmp(row.user.data, ctx->user_name.data,
                               row.user.len) != 0))
        {
            continue;
        }

        if (!ngx_http_tunnel_admin_live_matches(&row, &v->q)) {
            continue;
        }

        t = ngx_array_push(v->rows);
        if (t == NULL) {
            return NGX_ERROR;
        }

        *t = row;
    }

    if (v->rows->nelts > 1) {
        qsort_r(v->rows->elts, v->rows->nelts,
                sizeof(ngx_http_tunnel_admin_live_t),
                ngx_http_tunnel_admin_live_cmp, v);
    }

    v->pages = (v->rows->nelts + NGX_HTTP_TUNNEL_ADMIN_PER_PAGE - 1)
               / NGX_HTTP_TUNNEL_ADMIN_PER_PAGE;

    if (v->pages == 0) {
        v->pages = 1;
    }

    if (v->page > v->pages) {
        v->page = v->pages;
    }

    return NGX_OK;
}


static void
ngx_http_tunnel_admin_live_row(ngx_http_tunnel_admin_live_t *t, json_t *obj)
{
    t->obj = obj;
    t->name = ngx_http_tunnel_admin_json_str(obj, "name");
    t->url = ngx_http_tunnel_admin_json_str(obj, "url");
    t->user = ngx_http_tunnel_admin_json_str(obj, "user");
    t->client = ngx_http_tunnel_admin_json_str(obj, "client");
    t->node = ngx_http_tunnel_admin_json_str(obj, "node");
    t->started = ngx_http_tunnel_admin_json_int(obj, "started_unix");
    t->bytes_in = ngx_http_tunnel_admin_json_int(obj, "bytes_in");
    t->bytes_out = ngx_http_tunnel_admin_json_int(obj, "bytes_out");
    t->requests = ngx_http_tunnel_admin_json_int(obj, "requests");
    t->streams = ngx_http_tunnel_admin_json_int(obj, "open_streams");
    t->last = ngx_http_tunnel_admin_json_int(obj, "last_request_unix");
}


static ngx_int_t
ngx_http_tunnel_admin_live_matches(ngx_http_tunnel_admin_live_t *t,
    ngx_str_t *q)
{
    ngx_str_t   *f[3];
    ngx_uint_t   i;

    if (q->len == 0) {
        return 1;
    }

    f[0] = &t->name;
    f[1] = &t->user;
    f[2] = &t->client;

    for (i = 0; i < 3; i++) {
        if (f[i]->len >= q->len
            && ngx_strlcasestrn(f[i]->data, f[i]->data + f[i]->len,
                                q->data, q->len - 1) != NULL)
        {
            return 1;
        }
    }

    return 0;
}


static int
ngx_http_tunnel_admin_str_cmp(ngx_str_t *a, ngx_str_t *b)
{
    int  rc;

    rc = ngx_strncmp(a->data, b->data, ngx_min(a->len, b->len));

    if (rc == 0) {
        rc = (a->len > b->len) - (a->len < b->len);
    }

    return rc;
}


static int
ngx_http_tunnel_admin_live_cmp(const void *one, const void *two, void *arg)
{
    const ngx_http_tunnel_admin_live_t  *a = one, *b = two;
    ngx_http_tunnel_admin_view_t        *v = arg;

    int      rc;
    int64_t  x, y;

    x = 0;
    y = 0;
    rc = 0;

    switch (v->sort) {

    case NGX_HTTP_TUNNEL_ADMIN_COL_USER:
        rc = ngx_http_tunnel_admin_str_cmp((ngx_str_t *) &a->user,
                                           (ngx_str_t *) &b->user);
        break;

    case NGX_HTTP_TUNNEL_ADMIN_COL_CLIENT:
        rc = ngx_http_tunnel_admin_str_cmp((ngx_str_t *) &a->client,
                                           (ngx_str_t *) &b->client);
        break;

    case NGX_HTTP_TUNNEL_ADMIN_COL_NODE:
        rc = ngx_http_tunnel_admin_str_cmp((ngx_str_t *) &a->node,
                                           (ngx_str_t *) &b->node);
        break;

    case NGX_HTTP_TUNNEL_ADMIN_COL_UP:
        /* the longest up is the largest: the earliest start */
        x = b->started;
        y = a->started;
        break;

    case NGX_HTTP_TUNNEL_ADMIN_COL_IN:
        x = a->bytes_in;
        y = b->bytes_in;
        break;

    case NGX_HTTP_TUNNEL_ADMIN_COL_OUT:
        x = a->bytes_out;
        y = b->bytes_out;
        break;

    case NGX_HTTP_TUNNEL_ADMIN_COL_REQUESTS:
        x = a->requests;
        y = b->requests;
        break;

    case NGX_HTTP_TUNNEL_ADMIN_COL_STREAMS:
        x = a->streams;
        y = b->streams;
        break;

    case NGX_HTTP_TUNNEL_ADMIN_COL_LAST:
        x = a->last;
        y = b->last;
        break;

    default: /* NGX_HTTP_TUNNEL_ADMIN_COL_NAME */
        break;
    }

    if (rc == 0) {
        rc = (x > y) - (x < y);
    }

    if (v->desc) {
        rc = -rc;
    }

    if (rc == 0) {
        /* names are unique: a stable order whatever the column */
        rc = ngx_http_tunnel_admin_str_cmp((ngx_str_t *) &a->name,
                                           (ngx_str_t *) &b->name);
        if (v->desc && v->sort == NGX_HTTP_TUNNEL_ADMIN_COL_NAME) {
            rc = -rc;
        }
    }

    return rc;
}


/* a link to this view with other sort, direction or page; q kept */
static void
ngx_http_tunnel_admin_view_link(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_http_tunnel_admin_view_t *v,
    const char *path, ngx_uint_t sort, ngx_uint_t desc, ngx_uint_t page)
{
    u_char     *p;
    ngx_str_t   q;

    ngx_http_tunnel_admin_printf(r, ctx, "%s?sort=%s&amp;dir=%s", path,
                                 ngx_http_tunnel_admin_cols[sort].key,
                                 desc ? "desc" : "asc");

    if (v->q.len) {
        q.data = ngx_pnalloc(r->pool, v->q.len * 3);
        if (q.data == NULL) {
            return;
        }

        p = ngx_http_tunnel_admin_arg_escape(q.data, &v->q);
        q.len = p - q.data;

        ngx_http_tunnel_admin_put(r, ctx, "&amp;q=");
        ngx_http_tunnel_admin_put_str(r, ctx, &q);
    }

    if (page > 1) {
        ngx_http_tunnel_admin_printf(r, ctx, "&amp;page=%ui", page);
    }
}


/* GET /admin/tunnels, /tunnels */
ngx_int_t
ngx_http_tunnel_admin_tunnels_get(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ngx_int_t                     rc;
    ngx_http_tunnel_admin_view_t  v;

    if (ngx_http_tunnel_admin_view_init(r, ctx, &v) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ctx->step == 0) {
        ctx->step = 1;

        rc = ngx_http_tunnel_admin_live_list(r, ctx,
                                     v.admin_view ? NULL : &ctx->user_name);
        if (rc != NGX_DECLINED) {
            return rc;
        }
    }

    if (ngx_http_tunnel_admin_view_rows(r, ctx, &v) != NGX_OK) {
        return NGX_ERROR;
    }

    ctx->wide = 1;
    ngx_http_tunnel_admin_page_start(r, ctx, v.admin_view ? "All tunnels"
                                                          : "My tunnels");
    ngx_http_tunnel_admin_tunnels_flash(r, ctx);

    if (ngx_http_tunnel_admin_live_tunnels(ctx) == NULL) {
        ngx_http_tunnel_admin_live_unavailable(r, ctx);
        ngx_http_tunnel_admin_put(r, ctx,
            "<p><a href=\"\">Try again</a></p>\n");
        ngx_http_tunnel_admin_page_end(r, ctx);
        ctx->status = NGX_HTTP_SERVICE_UNAVAILABLE;
        return NGX_HTTP_TUNNEL_ADMIN_READY;
    }

    ngx_http_tunnel_admin_tunnels_table(r, ctx, &v);

    ctx->script = 1;
    ngx_http_tunnel_admin_put(r, ctx,
                           "<script src=\"/static/tunnels.js\"></script>\n");
    ngx_http_tunnel_admin_page_end(r, ctx);

    return NGX_HTTP_TUNNEL_ADMIN_READY;
}


/* "3 live tunnels", "showing 101-200 of 250 live tunnels matching ..." */
static ngx_str_t
ngx_http_tunnel_admin_summary(ngx_http_request_t *r,
    ngx_http_tunnel_admin_view_t *v)
{
    u_char      *p;
    ngx_str_t    s;
    ngx_uint_t   n, first, last;

    s.data = ngx_pnalloc(r->pool, 512 + v->q.len);
    if (s.data == NULL) {
        s.len = 0;
        return s;
    }

    n = v->rows->nelts;
    first = (v->page - 1) * NGX_HTTP_TUNNEL_ADMIN_PER_PAGE + 1;
    last = ngx_min(n, v->page * NGX_HTTP_TUNNEL_ADMIN_PER_PAGE);

    p = s.data;

    if (v->pages > 1) {
        p = ngx_sprintf(p, "Showing %ui-%ui of ", first, last);
    }

    p = ngx_sprintf(p, "%ui live tunnel%s", n, n == 1 ? "" : "s");

    if (v->q.len) {
        p = ngx_sprintf(p, " matching " NGX_HTTP_TUNNEL_ADMIN_LQ "%V"
                        NGX_HTTP_TUNNEL_ADMIN_RQ, &v->q);
    }

    p = ngx_sprintf(p, ".");

    if (v->more) {
        p = ngx_sprintf(p, "  More than %d tunnels are live: this view "
                        "holds the first %d by name; filter to narrow it "
                        "(tunnelctl tunnels lists them all).",
                        NGX_HTTP_TUNNEL_ADMIN_API_LIMIT,
                        NGX_HTTP_TUNNEL_ADMIN_API_LIMIT);
    }

    s.len = p - s.data;

    return s;
}


static void
ngx_http_tunnel_admin_tunnels_table(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_http_tunnel_admin_view_t *v)
{
    u_char                        buf[64], *p;
    ngx_str_t                     s;
    ngx_uint_t                    i, c, first, last, desc;
    ngx_http_tunnel_admin_live_t *t;

    /* the filter, the refresh link, the summary */
    ngx_http_tunnel_admin_printf(r, ctx,
        "<div class=\"toolbar\">\n<form method=\"get\" action=\"%s\" "
        "role=\"search\"><input type=\"hidden\" name=\"sort\" value=\"%s\">"
        "<input type=\"hidden\" name=\"dir\" value=\"%s\">"
        "<label class=\"inline\" for=\"f-q\">Filter</label>"
        "<input type=\"search\" id=\"f-q\" name=\"q\" maxlength=\"100\" "
        "placeholder=\"name, user or client\" value=\"", v->base,
        ngx_http_tunnel_admin_cols[v->sort].key, v->desc ? "desc" : "asc");
    ngx_http_tunnel_admin_esc(r, ctx, &v->q);
    ngx_http_tunnel_admin_put(r, ctx, "\"> <button class=\"link\" "
                              "type=\"submit\">Filter</button></form>\n"
                              "<a id=\"refresh\" href=\"");
    ngx_http_tunnel_admin_view_link(r, ctx, v, v->base, v->sort, v->desc,
                                    v->page);
    ngx_http_tunnel_admin_put(r, ctx, "\">Refresh</a>\n</div>\n"
                              "<p id=\"live-state\"></p>\n"
                              "<p id=\"live-count\">");
    s = ngx_http_tunnel_admin_summary(r, v);
    ngx_http_tunnel_admin_esc(r, ctx, &s);
    ngx_http_tunnel_admin_put(r, ctx, "</p>\n");

    /* the table: the JSON twin and the kick form's parts for the script */
    ngx_http_tunnel_admin_put(r, ctx, "<table id=\"live\" data-json=\"");
    ngx_http_tunnel_admin_view_link(r, ctx, v,
                                    v->admin_view ? "/admin/tunnels.json"
                                                  : "/tunnels.json",
                                    v->sort, v->desc, v->page);
    ngx_http_tunnel_admin_printf(r, ctx, "\" data-action=\"%s\" "
                                 "data-csrf=\"", v->base);
    ngx_http_tunnel_admin_esc(r, ctx, &ctx->csrf);
    ngx_http_tunnel_admin_put(r, ctx, "\">\n<thead><tr>");

    for (c = 0; c < NGX_HTTP_TUNNEL_ADMIN_NCOLS; c++) {
        ngx_http_tunnel_admin_printf(r, ctx, "<th%s",
            ngx_http_tunnel_admin_cols[c].num
            ? (ngx_http_tunnel_admin_cols[c].opt ? " class=\"num opt\""
                                                 : " class=\"num\"")
            : (ngx_http_tunnel_admin_cols[c].opt ? " class=\"opt\"" : ""));

        if (c == v->sort) {
            ngx_http_tunnel_admin_printf(r, ctx, " aria-sort=\"%s\"",
                                    v->desc ? "descending" : "ascending");
        }

        /* a second click on the sorted column turns it round */
        desc = (c == v->sort) ? !v->desc : ngx_http_tunnel_admin_cols[c].num;

        ngx_http_tunnel_admin_put(r, ctx, "><a href=\"");
        ngx_http_tunnel_admin_view_link(r, ctx, v, v->base, c, desc, 1);
        ngx_http_tunnel_admin_printf(r, ctx, "\">%s%s</a></th>",
            ngx_http_tunnel_admin_cols[c].label,
            c != v->sort ? "" : v->desc ? " \xe2\x96\xbc" : " \xe2\x96\xb2");
    }

    ngx_http_tunnel_admin_put(r, ctx, "<th>Kick</th></tr></thead>\n<tbody>\n");

    first = (v->page - 1) * NGX_HTTP_TUNNEL_ADMIN_PER_PAGE;
    last = ngx_min(v->rows->nelts, first + NGX_HTTP_TUNNEL_ADMIN_PER_PAGE);
    t = v->rows->elts;

    for (i = first; i < last; i++) {
        ngx_http_tunnel_admin_put(r, ctx, "<tr data-name=\"");
        ngx_http_tunnel_admin_esc(r, ctx, &t[i].name);
        ngx_http_tunnel_admin_put(r, ctx, "\"><td>");

        if ((t[i].url.len > 7 && ngx_strncmp(t[i].url.data, "http://", 7)
                                 == 0)
            || (t[i].url.len > 8
                && ngx_strncmp(t[i].url.data, "https://", 8) == 0))
        {
            ngx_http_tunnel_admin_put(r, ctx, "<a class=\"mono\" href=\"");
            ngx_http_tunnel_admin_esc(r, ctx, &t[i].url);
            ngx_http_tunnel_admin_put(r, ctx, "\">");
            ngx_http_tunnel_admin_esc(r, ctx, &t[i].name);
            ngx_http_tunnel_admin_put(r, ctx, "</a>");

        } else {
            ngx_http_tunnel_admin_esc(r, ctx, &t[i].name);
        }

        ngx_http_tunnel_admin_put(r, ctx, "</td><td data-label=\"User\" "
                                  "data-col=\"user\">");
        ngx_http_tunnel_admin_esc(r, ctx, &t[i].user);
        ngx_http_tunnel_admin_put(r, ctx, "</td><td class=\"opt\" "
                                  "data-label=\"Client\" data-col=\"client\">");
        ngx_http_tunnel_admin_esc(r, ctx, &t[i].client);
        ngx_http_tunnel_admin_put(r, ctx, "</td><td class=\"opt\" "
                                  "data-label=\"Node\" data-col=\"node\">");
        ngx_http_tunnel_admin_esc(r, ctx, &t[i].node);

        p = ngx_http_tunnel_admin_fmt_age(buf, v->now - t[i].started);
        ngx_http_tunnel_admin_printf(r, ctx, "</td><td class=\"num\" "
                                     "data-label=\"Up for\" data-col=\"up\">"
                                     "%*s", p - buf, buf);

        p = ngx_http_tunnel_admin_fmt_bytes(buf, t[i].bytes_in);
        ngx_http_tunnel_admin_printf(r, ctx, "</td><td class=\"num\" "
                                     "data-label=\"Bytes in\" data-col=\"in\">"
                                     "%*s", p - buf, buf);

        p = ngx_http_tunnel_admin_fmt_bytes(buf, t[i].bytes_out);
        ngx_http_tunnel_admin_printf(r, ctx, "</td><td class=\"num\" "
                                     "data-label=\"Bytes out\" "
                                     "data-col=\"out\">%*s", p - buf, buf);

        ngx_http_tunnel_admin_printf(r, ctx, "</td><td class=\"num\" "
                                     "data-label=\"Requests\" "
                                     "data-col=\"requests\">%L</td>"
                                     "<td class=\"num opt\" "
                                     "data-label=\"Open streams\" "
                                     "data-col=\"open_streams\">%L",
                                     ngx_max(t[i].requests, 0),
                                     ngx_max(t[i].streams, 0));

        if (t[i].last > 0) {
            p = ngx_http_tunnel_admin_fmt_age(buf, v->now - t[i].last);
            p = ngx_cpymem(p, " ago", 4);

        } else {
            p = ngx_cpymem(buf, "never", 5);
        }

        ngx_http_tunnel_admin_printf(r, ctx, "</td><td class=\"num\" "
                                     "data-label=\"Last request\" "
                                     "data-col=\"last\">%*s</td><td>",
                                     p - buf, buf);

        ngx_http_tunnel_admin_form_start(r, ctx, v->base, "kick", "name",
                                         &t[i].name);
        ngx_http_tunnel_admin_put(r, ctx, "<button class=\"danger\" "
                                  "type=\"submit\">Kick</button></form>"
                                  "</td></tr>\n");
    }

    if (first == last) {
        ngx_http_tunnel_admin_printf(r, ctx,
            "<tr><td class=\"muted\" colspan=\"11\">%s</td></tr>\n",
            v->rows->nelts ? "No tunnel on this page."
            : v->q.len ? "No live tunnel matches the filter."
                       : "No live tunnel.");
    }

    ngx_http_tunnel_admin_put(r, ctx, "</tbody>\n</table>\n");

    if (v->pages > 1) {
        ngx_http_tunnel_admin_put(r, ctx, "<p class=\"pager\">");

        if (v->page > 1) {
            ngx_http_tunnel_admin_put(r, ctx, "<a rel=\"prev\" href=\"");
            ngx_http_tunnel_admin_view_link(r, ctx, v, v->base, v->sort,
                                            v->desc, v->page - 1);
            ngx_http_tunnel_admin_put(r, ctx, "\">Previous page</a>");
        }

        ngx_http_tunnel_admin_printf(r, ctx, "<span>Page %ui of %ui</span>",
                                     v->page, v->pages);

        if (v->page < v->pages) {
            ngx_http_tunnel_admin_put(r, ctx, "<a rel=\"next\" href=\"");
            ngx_http_tunnel_admin_view_link(r, ctx, v, v->base, v->sort,
                                            v->desc, v->page + 1);
            ngx_http_tunnel_admin_put(r, ctx, "\">Next page</a>");
        }

        ngx_http_tunnel_admin_put(r, ctx, "</p>\n");
    }

    ngx_http_tunnel_admin_put(r, ctx,
        "<p class=\"hint\">Bytes in: from the ssh client to visitors "
        "(responses); bytes out: from visitors to the client (requests).  "
        "Kick closes a tunnel at once and tells its ssh client why; the "
        "client may reconnect (disable the user to stop that).</p>\n");
}


/* ?done=kicked|gone&name=NAME after a kick */
static void
ngx_http_tunnel_admin_tunnels_flash(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    u_char     name[TNL_NAME_MAX + 1];
    ngx_str_t  done, arg;

    if (ctx->msg.len) {
        ngx_http_tunnel_admin_flash(r, ctx);
        return;
    }

    if (ngx_http_tunnel_admin_arg(r, "done", &done) != NGX_OK
        || ngx_http_tunnel_admin_arg(r, "name", &arg) != NGX_OK
        || !ngx_http_tunnel_admin_valid_name(&arg, name))
    {
        return;
    }

    if (done.len == 6 && ngx_strncmp(done.data, "kicked", 6) == 0) {
        ngx_http_tunnel_admin_put(r, ctx, "<p class=\"msg good\" "
                                  "id=\"flash\">Tunnel <strong>");
        ngx_http_tunnel_admin_esc_c(r, ctx, (char *) name);
        ngx_http_tunnel_admin_put(r, ctx, "</strong> was kicked: it is "
            "closed and its ssh client was told.</p>\n");

    } else if (done.len == 4 && ngx_strncmp(done.data, "gone", 4) == 0) {
        ngx_http_tunnel_admin_put(r, ctx, "<p class=\"msg good\" "
                                  "id=\"flash\">Tunnel <strong>");
        ngx_http_tunnel_admin_esc_c(r, ctx, (char *) name);
        ngx_http_tunnel_admin_put(r, ctx, "</strong> was no longer live: "
                                  "nothing to kick.</p>\n");
    }
}


/* GET /admin/tunnels.json, /tunnels.json: the same view, as JSON */
ngx_int_t
ngx_http_tunnel_admin_tunnels_json(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    u_char                         buf[64], *p;
    char                          *text;
    json_t                        *out, *list, *o;
    ngx_int_t                      rc;
    ngx_str_t                      s, url;
    ngx_uint_t                     i, first, last;
    ngx_http_tunnel_admin_live_t  *t;
    ngx_http_tunnel_admin_view_t   v;

    if (ngx_http_tunnel_admin_view_init(r, ctx, &v) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ctx->step == 0) {
        ctx->step = 1;

        rc = ngx_http_tunnel_admin_live_list(r, ctx,
                                     v.admin_view ? NULL : &ctx->user_name);
        if (rc != NGX_DECLINED) {
            return rc;
        }
    }

    if (ngx_http_tunnel_admin_view_rows(r, ctx, &v) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_str_set(&ctx->content_type, "application/json");
    ctx->no_cache = 1;
    ctx->status = NGX_HTTP_OK;

    if (ngx_http_tunnel_admin_live_tunnels(ctx) == NULL) {
        return ngx_http_tunnel_admin_tunnels_json_error(r, ctx,
                   "live_state_unavailable",
                   "Live state unavailable: tunneld's management API is "
                   "not answering.  Tunnels themselves are not affected; "
                   "this page tries again every second.");
    }

    list = json_array();
    if (list == NULL) {
        return NGX_ERROR;
    }

    first = (v.page - 1) * NGX_HTTP_TUNNEL_ADMIN_PER_PAGE;
    last = ngx_min(v.rows->nelts, first + NGX_HTTP_TUNNEL_ADMIN_PER_PAGE);
    t = v.rows->elts;

    for (i = first; i < last; i++) {
        url = t[i].url;
        o = json_pack("{s:s%, s:s%, s:s%, s:s%, s:s%, s:I, s:I, s:I, s:I,"
                      " s:I, s:I}",
                      "name", t[i].name.data, t[i].name.len,
                      "url", url.data, url.len,
                      "user", t[i].user.data, t[i].user.len,
                      "client", t[i].client.data, t[i].client.len,
                      "node", t[i].node.data, t[i].node.len,
                      "started_unix", (json_int_t) t[i].started,
                      "bytes_in", (json_int_t) ngx_max(t[i].bytes_in, 0),
                      "bytes_out", (json_int_t) ngx_max(t[i].bytes_out, 0),
                      "requests", (json_int_t) ngx_max(t[i].requests, 0),
                      "open_streams",
                      (json_int_t) ngx_max(t[i].streams, 0),
                      "last_request_unix", (json_int_t) t[i].last);
        if (o == NULL) {
            json_decref(list);
            return NGX_ERROR;
        }

        /* the cells as the page shows them */
        p = ngx_http_tunnel_admin_fmt_age(buf, v.now - t[i].started);
        json_object_set_new(o, "up", json_stringn((char *) buf, p - buf));
        p = ngx_http_tunnel_admin_fmt_bytes(buf, t[i].bytes_in);
        json_object_set_new(o, "in", json_stringn((char *) buf, p - buf));
        p = ngx_http_tunnel_admin_fmt_bytes(buf, t[i].bytes_out);
        json_object_set_new(o, "out", json_stringn((char *) buf, p - buf));

        if (t[i].last > 0) {
            p = ngx_http_tunnel_admin_fmt_age(buf, v.now - t[i].last);
            p = ngx_cpymem(p, " ago", 4);

        } else {
            p = ngx_cpymem(buf, "never", 5);
        }

        json_object_set_new(o, "last", json_stringn((char *) buf, p - buf));
        json_array_append_new(list, o);
    }

    s = ngx_http_tunnel_admin_summary(r, &v);

    out = json_pack("{s:b, s:o, s:I, s:I, s:b, s:I, s:I, s:I, s:s%, s:s,"
                    " s:s, s:s%, s:I}",
                    "available", 1,
                    "tunnels", list,
                    "count", (json_int_t) v.rows->nelts,
                    "total", (json_int_t) v.total,
                    "more", (int) v.more,
                    "page", (json_int_t) v.page,
                    "pages", (json_int_t) v.pages,
                    "per_page", (json_int_t) NGX_HTTP_TUNNEL_ADMIN_PER_PAGE,
                    "q", v.q.data ? (char *) v.q.data : "", v.q.len,
                    "sort", ngx_http_tunnel_admin_cols[v.sort].key,
                    "dir", v.desc ? "desc" : "asc",
                    "summary", s.data, s.len,
                    "now", (json_int_t) v.now);

    if (out == NULL) {
        return NGX_ERROR;
    }

    text = json_dumps(out, JSON_COMPACT);
    json_decref(out);

    if (text == NULL) {
        return NGX_ERROR;
    }

    ngx_http_tunnel_admin_put(r, ctx, text);
    ngx_http_tunnel_admin_put(r, ctx, "\n");
    free(text);

    return NGX_HTTP_TUNNEL_ADMIN_READY;
}


/*
 * The JSON twins' 503 when they cannot say what is live (tunneld's API or
 * the database not answering): {available: false, error, message}.
 * tunnels.js shows the message and keeps polling; an HTML page would read
 * as "signed out" there.
 */
ngx_int_t
ngx_http_tunnel_admin_tunnels_json_error(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, const char *error, const char *message)
{
    char    *text;
    json_t  *out;

    out = json_pack("{s:b, s:s, s:s}", "available", 0, "error", error,
                    "message", message);
    if (out == NULL) {
        return NGX_ERROR;
    }

    text = json_dumps(out, JSON_COMPACT);
    json_decref(out);

    if (text == NULL) {
        return NGX_ERROR;
    }

    ngx_str_set(&ctx->content_type, "application/json");
    ctx->no_cache = 1;
    ctx->status = NGX_HTTP_SERVICE_UNAVAILABLE;

    ngx_http_tunnel_admin_put(r, ctx, text);
    ngx_http_tunnel_admin_put(r, ctx, "\n");
    free(text);

    return NGX_HTTP_TUNNEL_ADMIN_READY;
}


/*
 * POST /admin/tunnels, /tunnels: action=kick, name=NAME.  Without
 * confirm=yes: the confirm page.  With it: check the owner, kick.
 */
ngx_int_t
ngx_http_tunnel_admin_tunnels_post(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    u_char                        name[TNL_NAME_MAX + 1], *p;
    size_t                        n;
    ngx_int_t                     rc;
    ngx_str_t                    *f, *reason, args, owner, session;
    ngx_http_tunnel_admin_view_t  v;

    if (ngx_http_tunnel_admin_view_init(r, ctx, &v) != NGX_OK) {
        return NGX_ERROR;
    }

    switch (ctx->step) {

    case 0:
        if (!ngx_http_tunnel_admin_field_is(ctx, "action", "kick")) {
            return ngx_http_tunnel_admin_message(r, ctx, NGX_HTTP_BAD_REQUEST,
                       "Unknown action", "This page only kicks tunnels.",
                       v.base, "Back to the tunnels");
        }

        f = ngx_http_tunnel_admin_field(ctx, "name");

        if (f == NULL || !ngx_http_tunnel_admin_valid_name(f, name)) {
            return ngx_http_tunnel_admin_message(r, ctx, NGX_HTTP_BAD_REQUEST,
                       "No such tunnel", "That is not a tunnel name.",
                       v.base, "Back to the tunnels");
        }

        ctx->s1.len = ngx_strlen(name);
        ctx->s1.data = ngx_pnalloc(r->pool, ctx->s1.len);
        if (ctx->s1.data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(ctx->s1.data, name, ctx->s1.len);

        if (!ngx_http_tunnel_admin_field_is(ctx, "confirm", "yes")) {
            return ngx_http_tunnel_admin_kick_confirm(r, ctx, &ctx->s1);
        }

        reason = ngx_http_tunnel_admin_field(ctx, "reason");
        if (reason) {
            ngx_http_tunnel_admin_trim(reason);
            ctx->s2 = *reason;
        }

        if (ngx_utf8_length(ctx->s2.data, ctx->s2.len)
            > NGX_HTTP_TUNNEL_ADMIN_REASON_MAX)
        {
            ctx->msg.data = (u_char *) "The reason is too long: at most "
                                       "200 characters.";
            ctx->msg.len = ngx_strlen(ctx->msg.data);
            ctx->form_status = NGX_HTTP_TUNNEL_ADMIN_INVALID;
            return ngx_http_tunnel_admin_kick_confirm(r, ctx, &ctx->s1);
        }

        /* who owns it, right now */
        p = ngx_pnalloc(r->pool, sizeof("/tunnels/") + ctx->s1.len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        *ngx_sprintf(p, "/tunnels/%V", &ctx->s1) = '\0';
        ctx->step = 1;

        rc = ngx_http_tunnel_admin_api(r, ctx, NGX_HTTP_GET, (char *) p,
                                       NULL);
        if (rc == NGX_DECLINED) {
            goto unavailable;
        }

        return rc;

    case 1:
        if (ctx->api_status == NGX_HTTP_NOT_FOUND) {
            return ngx_http_tunnel_admin_kick_done(r, ctx, "gone");
        }

        if (!ngx_http_tunnel_admin_api_ok(ctx)) {
            goto unavailable;
        }

        owner = ngx_http_tunnel_admin_json_str(ctx->api_json, "user");

        if (!ctx->is_admin
            && (owner.len != ctx->user_name.len
                || ngx_strncmp(owner.data, ctx->user_name.data, owner.len)
                   != 0))
        {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "tunnel: admin: refused a kick of tunnel \"%V\" "
                          "by \"%V\": it is not theirs", &ctx->s1,
                          &ctx->user_name);

            return ngx_http_tunnel_admin_message(r, ctx, NGX_HTTP_FORBIDDEN,
                       "Not your tunnel",
                       "You can kick only your own tunnels.  Nothing was "
                       "changed.", v.base, "Back to your tunnels");
        }

        /*
         * only the session whose owner was just checked: if the name
         * changed hands since, kick.lua does nothing (409), so a user can
         * never close someone else's tunnel that took the name meanwhile
         */
        session = ngx_http_tunnel_admin_json_str(ctx->api_json, "session");

        n = sizeof("reason=&by=&session_id=") + ctx->s2.len * 3
            + ctx->user_name.len * 3 + session.len * 3;

        args.data = ngx_pnalloc(r->pool, n);
        if (args.data == NULL) {
            return NGX_ERROR;
        }

        p = ngx_cpymem(args.data, "reason=", 7);
        p = ngx_http_tunnel_admin_arg_escape(p, &ctx->s2);
        p = ngx_cpymem(p, "&by=", 4);
        p = ngx_http_tunnel_admin_arg_escape(p, &ctx->user_name);
        p = ngx_cpymem(p, "&session_id=", 12);
        p = ngx_http_tunnel_admin_arg_escape(p, &session);
        args.len = p - args.data;

        p = ngx_pnalloc(r->pool, sizeof("/tunnels/") + ctx->s1.len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        *ngx_sprintf(p, "/tunnels/%V", &ctx->s1) = '\0';
        ctx->step = 2;

        rc = ngx_http_tunnel_admin_api(r, ctx, NGX_HTTP_DELETE, (char *) p,
                                       &args);
        if (rc == NGX_DECLINED) {
            goto unavailable;
        }

        return rc;

    default: /* 2: the kick's answer */
        if (ctx->api_status == NGX_HTTP_NOT_FOUND
            || ctx->api_status == NGX_HTTP_CONFLICT)
        {
            /* 409: another session holds the name now: not touched */
            return ngx_http_tunnel_admin_kick_done(r, ctx, "gone");
        }

        if (!ngx_http_tunnel_admin_api_ok(ctx)) {
            goto unavailable;
        }

        if (!json_is_true(json_object_get(ctx->api_json, "found"))) {
            return ngx_http_tunnel_admin_kick_done(r, ctx, "gone");
        }

        owner = ngx_http_tunnel_admin_json_str(ctx->api_json, "user");

        ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                      "tunnel: admin: \"%V\" kicked tunnel \"%V\" of \"%V\"",
                      &ctx->user_name, &ctx->s1, &owner);

        return ngx_http_tunnel_admin_kick_done(r, ctx, "kicked");
    }

unavailable:

    return ngx_http_tunnel_admin_message(r, ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
               "Live state unavailable",
               "tunneld's management API is not answering, so nothing was "
               "kicked.  Try again in a moment; if it lasts, tell the "
               "operator.", v.base, "Back to the tunnels");
}


static ngx_int_t
ngx_http_tunnel_admin_kick_confirm(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_str_t *name)
{
    const char                    *base;
    ngx_str_t                      reason;

    base = (ctx->route->access == NGX_HTTP_TUNNEL_ADMIN_ADMIN)
           ? "/admin/tunnels" : "/tunnels";

    ngx_http_tunnel_admin_page_start(r, ctx,
        ngx_http_tunnel_admin_sentence(r, "Kick %V?", name));
    ngx_http_tunnel_admin_flash(r, ctx);

    ngx_http_tunnel_admin_put(r, ctx, "<div class=\"card\">\n<p>Tunnel "
                              "<strong class=\"mono\">");
    ngx_http_tunnel_admin_esc(r, ctx, name);
    ngx_http_tunnel_admin_put(r, ctx, "</strong> closes at once: its URL "
        "answers \"not found\" and its ssh client is told it was closed by "
        "an administrator, with your reason.  The client may connect "
        "again.</p>\n");

    ngx_http_tunnel_admin_form_start(r, ctx, base, "kick", "name", name);
    ngx_http_tunnel_admin_put(r, ctx,
        "<input type=\"hidden\" name=\"confirm\" value=\"yes\">\n"
        "<label for=\"f-reason\">Reason (optional, shown to the ssh client)"
        "</label>\n<input id=\"f-reason\" name=\"reason\" type=\"text\" "
        "maxlength=\"200\" autocomplete=\"off\"");

    reason = ctx->s2;
    if (reason.len) {
        ngx_http_tunnel_admin_put(r, ctx, " value=\"");
        ngx_http_tunnel_admin_esc(r, ctx, &reason);
        ngx_http_tunnel_admin_put(r, ctx, "\"");
    }

    ngx_http_tunnel_admin_put(r, ctx, ">\n<p class=\"actions\">"
                              "<button class=\"danger\" type=\"submit\" "
                              "id=\"kick-confirm\">Kick ");
    ngx_http_tunnel_admin_esc(r, ctx, name);
    ngx_http_tunnel_admin_printf(r, ctx, "</button> <a href=\"%s\">Cancel"
                                 "</a></p>\n</form>\n</div>\n", base);
    ngx_http_tunnel_admin_page_end(r, ctx);

    return NGX_HTTP_TUNNEL_ADMIN_READY;
}


static ngx_int_t
ngx_http_tunnel_admin_kick_done(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, const char *done)
{
    const char  *location;

    location = ngx_http_tunnel_admin_sentence(r, "%s?done=%s&name=%V",
                   (ctx->route->access == NGX_HTTP_TUNNEL_ADMIN_ADMIN)
                   ? "/admin/tunnels" : "/tunnels", done, &ctx->s1);
    if (location == NULL) {
        return NGX_ERROR;
    }

    return ngx_http_tunnel_admin_redirect(r, ctx, location);
}


/* a tunnel name from a person: folded into out, or 0 */
static ngx_int_t
ngx_http_tunnel_admin_valid_name(ngx_str_t *in, u_char *out)
{
    if (in->len == 0 || in->len > TNL_NAME_MAX) {
        return 0;
    }

    return tnl_name_validate((const char *) in->data, in->len, (char *) out,
                             NULL) == 0;
}


/* 512 B, 1.5 KiB, 3.2 MiB ... */
static u_char *
ngx_http_tunnel_admin_fmt_bytes(u_char *p, int64_t n)
{
    double       v;
    ngx_uint_t   i;
    static char *units[] = { "KiB", "MiB", "GiB", "TiB", "PiB" };

    if (n < 0) {
        n = 0;
    }

    if (n < 1024) {
        return ngx_sprintf(p, "%L B", n);
    }

    v = (double) n / 1024;

    for (i = 0; v >= 1024 && i < 4; i++) {
        v /= 1024;
    }

    return ngx_sprintf(p, v < 10 ? "%.1f %s" : "%.0f %s", v, units[i]);
}


/* 45s, 12m 3s, 3h 4m, 2d 5h */
static u_char *
ngx_http_tunnel_admin_fmt_age(u_char *p, int64_t secs)
{
    if (secs < 0) {
        secs = 0;
    }

    if (secs < 60) {
        return ngx_sprintf(p, "%Ls", secs);
    }

    if (secs < 3600) {
        return ngx_sprintf(p, "%Lm %Ls", secs / 60, secs % 60);
    }

    if (secs < 86400) {
        return ngx_sprintf(p, "%Lh %Lm", secs / 3600, secs % 3600 / 60);
    }

    return ngx_sprintf(p, "%Ld %Lh", secs / 86400, secs % 86400 / 3600);
}
