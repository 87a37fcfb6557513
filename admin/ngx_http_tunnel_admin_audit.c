
/*
 * /admin/audit: administrators read the audit log (tunnel_events, see
 * sql/004_audit.sql), newest first: tunnels opened and closed with the
 * reason, sign-ins, invitations, keys, names and user changes, with who
 * did it, to whom, when (UTC) and from which address.
 *
 * Filters are GET arguments of a plain form (works without JavaScript):
 * user (the actor or the subject), name (a tunnel, reserved or system
 * name), kind, from and to (UTC, "YYYY-MM-DD" or "YYYY-MM-DD HH:MM"; a
 * date alone as "to" includes that day).  Paging is by keyset: 100 rows a
 * page, "before" is the id of the last row shown, so a page stays the
 * same while new rows arrive.  Bad filter values are said so on the page,
 * never sent to PostgreSQL.
 *
 * Read-only: this page writes nothing, and it never shows a secret (the
 * log holds none).
 */

#include "ngx_http_tunnel_admin_module.h"


#define NGX_HTTP_TUNNEL_ADMIN_AUDIT_PAGE      100
#define NGX_HTTP_TUNNEL_ADMIN_AUDIT_TEXT_MAX  64


/* one row more than a page: tells whether an older page exists */
static const char  ngx_http_tunnel_admin_audit_sql[] =
    "SELECT e.id, to_char(e.at AT TIME ZONE 'UTC',"
    "                     'YYYY-MM-DD HH24:MI:SS'),"
    "       e.event, e.actor_name, e.user_name, e.name, e.client_addr,"
    "       e.detail,"
    "       CASE WHEN e.event IN ('key_added', 'key_removed', 'refused')"
    "            THEN e.fingerprint END"
    "  FROM tunnel_events e"
    " WHERE ($1::bigint IS NULL OR e.id < $1::bigint)"
    "   AND ($2::text IS NULL OR e.user_name = $2 OR e.actor_name = $2)"
    "   AND ($3::text IS NULL OR e.name = $3)"
    "   AND ($4::text IS NULL OR e.event = $4)"
    "   AND ($5::text IS NULL"
    "        OR e.at >= $5::timestamp AT TIME ZONE 'UTC')"
    "   AND ($6::text IS NULL"
    "        OR e.at < (CASE WHEN length($6) = 10"
    "                        THEN $6::timestamp + interval '1 day'"
    "                        ELSE $6::timestamp END) AT TIME ZONE 'UTC')"
    " ORDER BY e.id DESC LIMIT 101";


/* the kinds of the check (sql/004, 006, 007), in the order the form lists */
static const char  *ngx_http_tunnel_admin_audit_kinds[] = {
    "open", "close", "takeover", "kick", "refused", "auth",
    "login", "login_failed", "login_failures_cleared", "logout", "setup",
    "join", "key_activated", "activation_denied",
    "invite_created", "invite_revoked", "password_link", "password_set",
    "key_added", "key_removed", "name_reserved", "name_released",
    "user_added", "user_disabled", "user_enabled", "user_removed",
    "user_promoted", "user_demoted",
    "system_name_added", "system_name_removed",
    NULL
};


typedef struct {
    ngx_str_t   before;
    ngx_str_t   user;
    ngx_str_t   name;
    ngx_str_t   kind;
    ngx_str_t   from;
    ngx_str_t   to;
} ngx_http_tunnel_admin_audit_filter_t;


static ngx_int_t ngx_http_tunnel_admin_audit_args(ngx_http_request_t *r,
    ngx_http_tunnel_admin_audit_filter_t *f, const char **err);
static ngx_int_t ngx_http_tunnel_admin_audit_text(ngx_http_request_t *r,
    const char *name, ngx_str_t *value);
static ngx_int_t ngx_http_tunnel_admin_audit_time(ngx_str_t *s);
static void ngx_http_tunnel_admin_audit_form(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_http_tunnel_admin_audit_filter_t *f);
static void ngx_http_tunnel_admin_audit_rows(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_http_tunnel_admin_audit_filter_t *f);
static void ngx_http_tunnel_admin_audit_link(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, const char *key, ngx_str_t *value);
static void ngx_http_tunnel_admin_audit_query(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_http_tunnel_admin_audit_filter_t *f,
    ngx_str_t *before);
static void ngx_http_tunnel_admin_audit_arg(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, const char *key, ngx_str_t *value,
    ngx_uint_t *first);


ngx_int_t
ngx_http_tunnel_admin_audit_get(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ngx_str_t                              params[6];
    const char                            *err;
    ngx_http_tunnel_admin_audit_filter_t   f;

    err = NULL;

    if (ngx_http_tunnel_admin_audit_args(r, &f, &err) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ctx->step == 0 && err == NULL) {
        params[0] = f.before;
        params[1] = f.user;
        params[2] = f.name;
        params[3] = f.kind;
        params[4] = f.from;
        params[5] = f.to;

        ctx->step = 1;
        return ngx_http_tunnel_admin_query(r, ctx,
                                           ngx_http_tunnel_admin_audit_sql,
                                           6, params);
    }

    ngx_http_tunnel_admin_page_start(r, ctx, "Audit log");

    ngx_http_tunnel_admin_put(r, ctx,
        "<p>What happened on this installation, newest first: tunnels "
        "opened and closed (with the reason), sign-ins, invitations, keys, "
        "names and changes to users.  Times are UTC.</p>\n");

    ngx_http_tunnel_admin_audit_form(r, ctx, &f);

    if (err) {
        ngx_http_tunnel_admin_put(r, ctx, "<p class=\"msg bad\">");
        ngx_http_tunnel_admin_esc_c(r, ctx, err);
        ngx_http_tunnel_admin_put(r, ctx, "</p>\n");
        ctx->form_status = NGX_HTTP_BAD_REQUEST;

    } else {
        ngx_http_tunnel_admin_audit_rows(r, ctx, &f);
    }

    ngx_http_tunnel_admin_page_end(r, ctx);

    return NGX_HTTP_TUNNEL_ADMIN_READY;
}


/* the filters from the query string: unset ones are null strings */
static ngx_int_t
ngx_http_tunnel_admin_audit_args(ngx_http_request_t *r,
    ngx_http_tunnel_admin_audit_filter_t *f, const char **err)
{
    ngx_uint_t  i, found;

    if (ngx_http_tunnel_admin_audit_text(r, "before", &f->before) != NGX_OK
        || ngx_http_tunnel_admin_audit_text(r, "user", &f->user) != NGX_OK
        || ngx_http_tunnel_admin_audit_text(r, "name", &f->name) != NGX_OK
        || ngx_http_tunnel_admin_audit_text(r, "kind", &f->kind) != NGX_OK
        || ngx_http_tunnel_admin_audit_text(r, "from", &f->from) != NGX_OK
        || ngx_http_tunnel_admin_audit_text(r, "to", &f->to) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (f->before.len && (!ngx_http_tunnel_admin_is_id(&f->before)
                          || f->before.len > 18))
    {
        *err = "That page of the log does not exist: start again from the "
               "newest entries.";
        ngx_str_null(&f->before);
    }

    if (f->kind.len) {
        found = 0;

        for (i = 0; ngx_http_tunnel_admin_audit_kinds[i]; i++) {
            if (f->kind.len == ngx_strlen(ngx_http_tunnel_admin_audit_kinds[i])
                && ngx_strncmp(f->kind.data,
                               ngx_http_tunnel_admin_audit_kinds[i],
                               f->kind.len) == 0)
            {
                found = 1;
                break;
            }
        }

        if (!found) {
            *err = "Unknown kind of entry: choose one from the list.";
        }
    }

    if ((f->from.len && ngx_http_tunnel_admin_audit_time(&f->from) != NGX_OK)
        || (f->to.len && ngx_http_tunnel_admin_audit_time(&f->to) != NGX_OK))
    {
        *err = "Give times as YYYY-MM-DD or YYYY-MM-DD HH:MM (UTC), for "
               "example 2030-01-31 or 2030-01-31 14:05.";
    }

    return NGX_OK;
}


/*
 * One argument, URL-decoded ("+" is a space, as forms send it), trimmed,
 * cut to 64 bytes on a character boundary; absent or empty: a null string
 * (an SQL NULL: no filter).
 */
static ngx_int_t
ngx_http_tunnel_admin_audit_text(ngx_http_request_t *r, const char *name,
    ngx_str_t *value)
{
    u_char     *dst, *src, *p;
    ngx_str_t   raw;

    ngx_str_null(value);

    if (ngx_http_tunnel_admin_arg(r, name, &raw) != NGX_OK || raw.len == 0) {
        return NGX_OK;
    }

    value->data = ngx_pnalloc(r->pool, raw.len + 1);
    if (value->data == NULL) {
        return NGX_ERROR;
    }

    for (p = raw.data; p < raw.data + raw.len; p++) {
        if (*p == '+') {
            break;
        }
    }

    if (p < raw.data + raw.len) {
        /* a copy with spaces: the argument lives in the request line */
        src = ngx_pnalloc(r->pool, raw.len);
        if (src == NULL) {
            return NGX_ERROR;
        }

        for (p = raw.data, dst = src; p < raw.data + raw.len; p++) {
            *dst++ = (*p == '+') ? ' ' : *p;
        }

        raw.data = src;
    }

    src = raw.data;
    dst = value->data;
    ngx_unescape_uri(&dst, &src, raw.len, 0);
    value->len = dst - value->data;

    ngx_http_tunnel_admin_trim(value);

    if (value->len > NGX_HTTP_TUNNEL_ADMIN_AUDIT_TEXT_MAX) {
        value->len = NGX_HTTP_TUNNEL_ADMIN_AUDIT_TEXT_MAX;
        while (value->len && (value->data[value->len] & 0xc0) == 0x80) {
            value->len--;
        }
    }

    /* PostgreSQL refuses text with NUL or broken UTF-8: not a filter */
    if (ngx_utf8_length(value->data, value->len) == (size_t) NGX_ERROR
        || ngx_strlchr(value->data, value->data + value->len, '\0') != NULL)
    {
        ngx_str_set(value, "?");
    }

    if (value->len == 0) {
        ngx_str_null(value);
    }

    return NGX_OK;
}


/*
 * "YYYY-MM-DD", optionally followed by " HH:MM" or " HH:MM:SS" ("T" also
 * separates, as datetime-local inputs send it), a real date: PostgreSQL
 * must never see a value it would refuse.  The "T" becomes a space.
 */
static ngx_int_t
ngx_http_tunnel_admin_audit_time(ngx_str_t *s)
{
    u_char     *p;
    ngx_int_t   year, month, day, hour, min, sec, mdays;

    static const ngx_int_t  days[] = {
        31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
    };

    p = s->data;

    if ((s->len != 10 && s->len != 16 && s->len != 19)
        || p[4] != '-' || p[7] != '-')
    {
        return NGX_ERROR;
    }

    year = ngx_atoi(p, 4);
    month = ngx_atoi(p + 5, 2);
    day = ngx_atoi(p + 8, 2);

    if (year < 1970 || year > 9999 || month < 1 || month > 12 || day < 1) {
        return NGX_ERROR;
    }

    mdays = days[month - 1];
    if (month == 2
        && ((year % 4 == 0 && year % 100 != 0) || year % 400 == 0))
    {
        mdays = 29;
    }

    if (day > mdays) {
        return NGX_ERROR;
    }

    if (s->len == 10) {
        return NGX_OK;
    }

    if ((p[10] != ' ' && p[10] != 'T') || p[13] != ':') {
        return NGX_ERROR;
    }

    hour = ngx_atoi(p + 11, 2);
    min = ngx_atoi(p + 14, 2);
    sec = 0;

    if (s->len == 19) {
        if (p[16] != ':') {
            return NGX_ERROR;
        }

        sec = ngx_atoi(p + 17, 2);
    }

    if (hour < 0 || hour > 23 || min < 0 || min > 59 || sec < 0 || sec > 59)
    {
        return NGX_ERROR;
    }

    p[10] = ' ';        /* our own copy (audit_text) */

    return NGX_OK;
}


static void
ngx_http_tunnel_admin_audit_form(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_http_tunnel_admin_audit_filter_t *f)
{
    ngx_uint_t   i;
    const char  *kind;

    ngx_http_tunnel_admin_put(r, ctx,
        "<form method=\"get\" action=\"/admin/audit\" class=\"card filters\">"
        "\n<div class=\"row\">\n"
        "<div><label for=\"f-user\">User</label>"
        "<input type=\"text\" id=\"f-user\" name=\"user\" value=\"");
    ngx_http_tunnel_admin_esc(r, ctx, &f->user);
    ngx_http_tunnel_admin_put(r, ctx,
        "\"></div>\n"
        "<div><label for=\"f-name\">Name</label>"
        "<input type=\"text\" id=\"f-name\" name=\"name\" value=\"");
    ngx_http_tunnel_admin_esc(r, ctx, &f->name);
    ngx_http_tunnel_admin_put(r, ctx,
        "\"></div>\n"
        "<div><label for=\"f-kind\">Kind</label>"
        "<select id=\"f-kind\" name=\"kind\">"
        "<option value=\"\">any</option>");

    for (i = 0; ngx_http_tunnel_admin_audit_kinds[i]; i++) {
        kind = ngx_http_tunnel_admin_audit_kinds[i];

        ngx_http_tunnel_admin_printf(r, ctx, "<option%s>%s</option>",
            (f->kind.len == ngx_strlen(kind)
             && ngx_strncmp(f->kind.data, kind, f->kind.len) == 0)
            ? " selected" : "", kind);
    }

    ngx_http_tunnel_admin_put(r, ctx,
        "</select></div>\n"
        "<div><label for=\"f-from\">From (UTC)</label>"
        "<input type=\"text\" id=\"f-from\" name=\"from\" "
        "placeholder=\"YYYY-MM-DD HH:MM\" value=\"");
    ngx_http_tunnel_admin_esc(r, ctx, &f->from);
    ngx_http_tunnel_admin_put(r, ctx,
        "\"></div>\n"
        "<div><label for=\"f-to\">To (UTC)</label>"
        "<input type=\"text\" id=\"f-to\" name=\"to\" "
        "placeholder=\"YYYY-MM-DD HH:MM\" value=\"");
    ngx_http_tunnel_admin_esc(r, ctx, &f->to);
    ngx_http_tunnel_admin_put(r, ctx,
        "\"></div>\n</div>\n"
        "<div class=\"actions\"><button type=\"submit\">Filter</button> "
        "<a href=\"/admin/audit\">Clear</a></div>\n</form>\n");
}


static void
ngx_http_tunnel_admin_audit_rows(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_http_tunnel_admin_audit_filter_t *f)
{
    int         i, n, shown;
    ngx_str_t   s, fp, last;

    n = PQntuples(ctx->res);
    shown = n > NGX_HTTP_TUNNEL_ADMIN_AUDIT_PAGE
            ? NGX_HTTP_TUNNEL_ADMIN_AUDIT_PAGE : n;

    if (n == 0) {
        ngx_http_tunnel_admin_put(r, ctx,
            "<p class=\"muted\" id=\"audit-empty\">No entries");
        ngx_http_tunnel_admin_put(r, ctx, f->before.len ? " older than these."
                                                        : " match.");
        ngx_http_tunnel_admin_put(r, ctx, "</p>\n");
        goto paging;
    }

    ngx_http_tunnel_admin_put(r, ctx,
        "<table class=\"audit\">\n<thead><tr><th>When (UTC)</th>"
        "<th>Kind</th><th>Who</th><th>User</th><th>Name</th>"
        "<th>Address</th><th>Detail</th></tr></thead>\n<tbody>\n");

    for (i = 0; i < shown; i++) {
        s = ngx_http_tunnel_admin_cell(ctx, i, 0);
        ngx_http_tunnel_admin_put(r, ctx, "<tr id=\"ev-");
        ngx_http_tunnel_admin_esc(r, ctx, &s);
        ngx_http_tunnel_admin_put(r, ctx, "\"><td class=\"date\">");
        ngx_http_tunnel_admin_esc_cell(r, ctx, i, 1);
        ngx_http_tunnel_admin_put(r, ctx,
                                  "</td><td data-label=\"Kind\">"
                                  "<span class=\"tag\">");
        ngx_http_tunnel_admin_esc_cell(r, ctx, i, 2);
        ngx_http_tunnel_admin_put(r, ctx,
                                  "</span></td><td data-label=\"Who\">");
        s = ngx_http_tunnel_admin_cell(ctx, i, 3);
        ngx_http_tunnel_admin_audit_link(r, ctx, "user", &s);
        ngx_http_tunnel_admin_put(r, ctx, "</td><td data-label=\"User\">");
        s = ngx_http_tunnel_admin_cell(ctx, i, 4);
        ngx_http_tunnel_admin_audit_link(r, ctx, "user", &s);
        ngx_http_tunnel_admin_put(r, ctx, "</td><td data-label=\"Name\">");
        s = ngx_http_tunnel_admin_cell(ctx, i, 5);
        ngx_http_tunnel_admin_audit_link(r, ctx, "name", &s);
        ngx_http_tunnel_admin_put(r, ctx,
                                  "</td><td data-label=\"Address\">");
        ngx_http_tunnel_admin_esc_cell(r, ctx, i, 6);
        ngx_http_tunnel_admin_put(r, ctx,
                                  "</td><td data-label=\"Detail\">");
        ngx_http_tunnel_admin_esc_cell(r, ctx, i, 7);

        fp = ngx_http_tunnel_admin_cell(ctx, i, 8);
        if (fp.len) {
            ngx_http_tunnel_admin_put(r, ctx, " <span class=\"mono\">");
            ngx_http_tunnel_admin_esc(r, ctx, &fp);
            ngx_http_tunnel_admin_put(r, ctx, "</span>");
        }

        ngx_http_tunnel_admin_put(r, ctx, "</td></tr>\n");
    }

    ngx_http_tunnel_admin_put(r, ctx, "</tbody>\n</table>\n");

paging:

    ngx_http_tunnel_admin_put(r, ctx, "<p class=\"paging\">");

    if (f->before.len) {
        ngx_http_tunnel_admin_put(r, ctx, "<a id=\"audit-newest\" href=\"");
        ngx_http_tunnel_admin_audit_query(r, ctx, f, NULL);
        ngx_http_tunnel_admin_put(r, ctx, "\">Newest</a> ");
    }

    if (n > NGX_HTTP_TUNNEL_ADMIN_AUDIT_PAGE) {
        last = ngx_http_tunnel_admin_cell(ctx, shown - 1, 0);
        ngx_http_tunnel_admin_put(r, ctx, "<a id=\"audit-older\" href=\"");
        ngx_http_tunnel_admin_audit_query(r, ctx, f, &last);
        ngx_http_tunnel_admin_put(r, ctx, "\">Older entries</a>");
    }

    ngx_http_tunnel_admin_put(r, ctx, "</p>\n");
}


/* a user or name cell: a link that filters by it ("" for NULL) */
static void
ngx_http_tunnel_admin_audit_link(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, const char *key, ngx_str_t *value)
{
    ngx_uint_t  first;

    if (value->len == 0) {
        return;
    }

    first = 1;

    ngx_http_tunnel_admin_put(r, ctx, "<a href=\"/admin/audit");
    ngx_http_tunnel_admin_audit_arg(r, ctx, key, value, &first);
    ngx_http_tunnel_admin_put(r, ctx, "\">");
    ngx_http_tunnel_admin_esc(r, ctx, value);
    ngx_http_tunnel_admin_put(r, ctx, "</a>");
}


/* /admin/audit with the current filters and, if given, a page cursor */
static void
ngx_http_tunnel_admin_audit_query(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_http_tunnel_admin_audit_filter_t *f,
    ngx_str_t *before)
{
    ngx_uint_t  first;

    first = 1;

    ngx_http_tunnel_admin_put(r, ctx, "/admin/audit");
    ngx_http_tunnel_admin_audit_arg(r, ctx, "user", &f->user, &first);
    ngx_http_tunnel_admin_audit_arg(r, ctx, "name", &f->name, &first);
    ngx_http_tunnel_admin_audit_arg(r, ctx, "kind", &f->kind, &first);
    ngx_http_tunnel_admin_audit_arg(r, ctx, "from", &f->from, &first);
    ngx_http_tunnel_admin_audit_arg(r, ctx, "to", &f->to, &first);

    if (before) {
        ngx_http_tunnel_admin_audit_arg(r, ctx, "before", before, &first);
    }
}


/* "?key=value" or "&key=value", URL-escaped, then HTML-escaped */
static void
ngx_http_tunnel_admin_audit_arg(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, const char *key, ngx_str_t *value,
    ngx_uint_t *first)
{
    size_t     n;
    ngx_str_t  escaped;

    if (value->len == 0) {
        return;
    }

    n = ngx_escape_uri(NULL, value->data, value->len, NGX_ESCAPE_ARGS);

    escaped.len = value->len + 2 * n;
    escaped.data = ngx_pnalloc(r->pool, escaped.len);
    if (escaped.data == NULL) {
        return;
    }

    ngx_escape_uri(escaped.data, value->data, value->len, NGX_ESCAPE_ARGS);

    ngx_http_tunnel_admin_printf(r, ctx, "%s%s=", *first ? "?" : "&amp;",
                                 key);
    ngx_http_tunnel_admin_esc(r, ctx, &escaped);

    *first = 0;
}
