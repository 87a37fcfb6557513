
/*
 * /names: every user reserves tunnel names that nobody else may claim, up
 * to tunnel_admin_name_quota, and releases them.  Administrators see every
 * reservation and may release anyone's.  A name follows the tunnel name
 * rule (one DNS label, common/tnl_name.c) and must not be a system name
 * (table system_names, the one list tunneld and tunnelctl read too).  The
 * system list, the quota and the ownership check are one row-locked
 * function, tunnel_admin_reserve_name() (sql/002_admin.sql, 003); tunneld
 * learns about changes through the NOTIFY trigger of reserved_names.
 *
 * A reservation of a name that became a system name later (tunnelctl
 * system-name add) stays in the table but counts for nothing, as in
 * tunneld: the page shows it "kept for the system now" and leaves it out
 * of the quota (sql/008_system_wins.sql does the same when reserving).
 *
 * After a reservation the page asks tunneld (GET /tunnels/NAME, api.c)
 * whether another user's tunnel is live on the name: it keeps the name
 * until it closes, and the page says so rather than "yours now".
 */

#include "ngx_http_tunnel_admin_module.h"

#include <tnl_name.h>


static const char  ngx_http_tunnel_admin_names_sql[] =
    "SELECT r.name, u.name, r.user_id = $1,"
    "       to_char(r.created_at, 'YYYY-MM-DD'),"
    "       EXISTS (SELECT 1 FROM system_names s WHERE s.name = r.name)"
    "  FROM reserved_names r JOIN users u ON u.id = r.user_id"
    " WHERE r.user_id = $1 OR $2::boolean"
    " ORDER BY r.user_id = $1 DESC, r.name";

static const char  ngx_http_tunnel_admin_name_reserve_sql[] =
    "SELECT tunnel_admin_reserve_name($1, $2, $3, $4)";

static const char  ngx_http_tunnel_admin_name_release_sql[] =
    "WITH rel AS ("
    "  DELETE FROM reserved_names"
    "   WHERE name = $1 AND (user_id = $2 OR $3::boolean)"
    "  RETURNING name, user_id),"
    " audit AS ("
    "  INSERT INTO tunnel_events (event, actor_id, client_addr, user_id,"
    "                             name)"
    "  SELECT 'name_released', $2, $4, user_id, name FROM rel)"
    " SELECT name FROM rel";


static void ngx_http_tunnel_admin_names_table(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_uint_t mine);
static ngx_int_t ngx_http_tunnel_admin_name_reserve(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
static ngx_int_t ngx_http_tunnel_admin_name_release(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
static ngx_int_t ngx_http_tunnel_admin_name_reserved(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
static const char *ngx_http_tunnel_admin_name_invalid(ngx_http_request_t *r,
    ngx_str_t *name);


ngx_int_t
ngx_http_tunnel_admin_names_get(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    int                                 i, n;
    ngx_str_t                           params[2];
    ngx_uint_t                          mine, counted;
    ngx_http_tunnel_admin_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_tunnel_admin_module);

    if (ctx->step == 0) {
        params[0] = ctx->user_id_text;
        ngx_http_tunnel_admin_bool_param(&params[1], ctx->is_admin);
        ctx->step = 1;

        return ngx_http_tunnel_admin_query(r, ctx,
                                           ngx_http_tunnel_admin_names_sql,
                                           2, params);
    }

    n = PQntuples(ctx->res);
    mine = 0;
    counted = 0;

    for (i = 0; i < n; i++) {
        if (ngx_http_tunnel_admin_cell_is(ctx, i, 2, "t")) {
            mine++;

            if (!ngx_http_tunnel_admin_cell_is(ctx, i, 4, "t")) {
                counted++;
            }
        }
    }

    ngx_http_tunnel_admin_page_start(r, ctx, "Names");
    ngx_http_tunnel_admin_flash(r, ctx);

    ngx_http_tunnel_admin_printf(r, ctx,
        "<p>A reserved name is yours even while no tunnel of yours is up: "
        "nobody else can claim it.  You use %ui of %ui.</p>\n",
        counted, amcf->name_quota);

    if (mine) {
        ngx_http_tunnel_admin_names_table(r, ctx, 1);
    }

    ngx_http_tunnel_admin_put(r, ctx,
        "<h2>Reserve a name</h2>\n<div class=\"card\">\n");
    ngx_http_tunnel_admin_form_start(r, ctx, "/names", "reserve", NULL, NULL);
    ngx_http_tunnel_admin_input(r, ctx, "Name", "name", "text", "off",
        "Letters a-z, digits and '-', 1 to 63 characters, not starting or "
        "ending with '-'.", ctx->msg.len != 0);
    ngx_http_tunnel_admin_put(r, ctx,
        "<div class=\"actions\"><button type=\"submit\">Reserve</button>"
        "</div>\n</form>\n</div>\n");

    if (ctx->is_admin) {
        ngx_http_tunnel_admin_put(r, ctx,
                                  "<h2>Reservations of other users</h2>\n");

        if (mine == (ngx_uint_t) n) {
            ngx_http_tunnel_admin_put(r, ctx,
                                      "<p class=\"muted\">None.</p>\n");

        } else {
            ngx_http_tunnel_admin_names_table(r, ctx, 0);
        }
    }

    ngx_http_tunnel_admin_page_end(r, ctx);

    return NGX_HTTP_TUNNEL_ADMIN_READY;
}


/*
 * The table of the user's own reservations (mine) or of everybody else's
 * (with an owner column), each with its release button.
 */
static void
ngx_http_tunnel_admin_names_table(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_uint_t mine)
{
    int        i, n;
    ngx_str_t  name;

    ngx_http_tunnel_admin_put(r, ctx, mine
        ? "<table>\n<thead><tr><th>Name</th><th class=\"opt\">Reserved"
          "</th><th></th></tr></thead>\n<tbody>\n"
        : "<table>\n<thead><tr><th>Name</th><th>User</th>"
          "<th class=\"opt\">Reserved</th><th></th></tr></thead>\n"
          "<tbody>\n");

    n = PQntuples(ctx->res);

    for (i = 0; i < n; i++) {
        if (ngx_http_tunnel_admin_cell_is(ctx, i, 2, "t") != (ngx_int_t) mine) {
            continue;
        }

        name = ngx_http_tunnel_admin_cell(ctx, i, 0);

        ngx_http_tunnel_admin_put(r, ctx, "<tr><td class=\"mono\">");
        ngx_http_tunnel_admin_esc(r, ctx, &name);

        if (ngx_http_tunnel_admin_cell_is(ctx, i, 4, "t")) {
            ngx_http_tunnel_admin_put(r, ctx, " <span class=\"tag\">kept "
                                      "for the system now</span>");
        }

        if (!mine) {
            ngx_http_tunnel_admin_put(r, ctx, "</td><td>");
            ngx_http_tunnel_admin_esc_cell(r, ctx, i, 1);
        }

        ngx_http_tunnel_admin_put(r, ctx, "</td><td class=\"opt\">");
        ngx_http_tunnel_admin_esc_cell(r, ctx, i, 3);
        ngx_http_tunnel_admin_put(r, ctx, "</td><td>");
        ngx_http_tunnel_admin_form_start(r, ctx, "/names", "release", "name",
                                         &name);
        ngx_http_tunnel_admin_put(r, ctx,
            "<button class=\"danger\" type=\"submit\">Release</button>"
            "</form></td></tr>\n");
    }

    ngx_http_tunnel_admin_put(r, ctx, "</tbody>\n</table>\n");
}


ngx_int_t
ngx_http_tunnel_admin_names_post(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    if (ngx_http_tunnel_admin_field_is(ctx, "action", "reserve")) {
        return ngx_http_tunnel_admin_name_reserve(r, ctx);
    }

    if (ngx_http_tunnel_admin_field_is(ctx, "action", "release")) {
        return ngx_http_tunnel_admin_name_release(r, ctx);
    }

    return ngx_http_tunnel_admin_form_error(r, ctx,
                                            NGX_HTTP_TUNNEL_ADMIN_INVALID,
                                            "Unknown action.");
}


static ngx_int_t
ngx_http_tunnel_admin_name_reserve(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    u_char                             *folded, *path;
    ngx_int_t                           rc;
    ngx_str_t                          *name, params[4];
    const char                         *msg;
    ngx_http_tunnel_admin_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_tunnel_admin_module);

    if (ctx->step == 0) {
        name = ngx_http_tunnel_admin_field(ctx, "name");

        if (name == NULL) {
            return ngx_http_tunnel_admin_form_error(r, ctx,
                       NGX_HTTP_TUNNEL_ADMIN_INVALID, "Type a name.");
        }

        ngx_http_tunnel_admin_trim(name);

        folded = ngx_pnalloc(r->pool, TNL_NAME_MAX + 1);
        if (folded == NULL) {
            return NGX_ERROR;
        }

        if (tnl_name_validate((const char *) name->data, name->len,
                              (char *) folded, NULL) != 0)
        {
            msg = ngx_http_tunnel_admin_name_invalid(r, name);
            if (msg == NULL) {
                return NGX_ERROR;
            }

            return ngx_http_tunnel_admin_form_error(r, ctx,
                       NGX_HTTP_TUNNEL_ADMIN_INVALID, msg);
        }

        ctx->s1.data = folded;
        ctx->s1.len = ngx_strlen(folded);

        params[0] = ctx->user_id_text;
        params[1] = ctx->s1;

        if (ngx_http_tunnel_admin_number_param(r->pool, amcf->name_quota,
                                               &params[2])
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        params[3] = r->connection->addr_text;
        ctx->step = 1;

        return ngx_http_tunnel_admin_query(r, ctx,
                                       ngx_http_tunnel_admin_name_reserve_sql,
                                       4, params);
    }

    if (ctx->step == 2) {
        return ngx_http_tunnel_admin_name_reserved(r, ctx);
    }

    if (ngx_http_tunnel_admin_cell_is(ctx, 0, 0, "ok")) {
        ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                      "tunnel: admin: \"%V\" reserved the name \"%V\"",
                      &ctx->user_name, &ctx->s1);

        /* is someone else's tunnel live on it?  It keeps the name */
        path = ngx_pnalloc(r->pool, sizeof("/tunnels/") + ctx->s1.len);
        if (path == NULL) {
            return NGX_ERROR;
        }

        *ngx_sprintf(path, "/tunnels/%V", &ctx->s1) = '\0';
        ctx->step = 2;

        rc = ngx_http_tunnel_admin_api(r, ctx, NGX_HTTP_GET, (char *) path,
                                       NULL);

        if (rc == NGX_DECLINED) {
            return ngx_http_tunnel_admin_name_reserved(r, ctx);
        }

        return rc;
    }

    if (ngx_http_tunnel_admin_cell_is(ctx, 0, 0, "mine")) {
        return ngx_http_tunnel_admin_form_error(r, ctx,
                   NGX_HTTP_TUNNEL_ADMIN_INVALID,
                   "You have already reserved this name.");
    }

    if (ngx_http_tunnel_admin_cell_is(ctx, 0, 0, "system")) {
        msg = ngx_http_tunnel_admin_sentence(r,
                  NGX_HTTP_TUNNEL_ADMIN_LQ "%V" NGX_HTTP_TUNNEL_ADMIN_RQ
                  " is kept for the system (the operator's list of host "
                  "names beside the tunnels): nobody can reserve or open "
                  "it.  Choose another name.", &ctx->s1);

        return msg ? ngx_http_tunnel_admin_form_error(r, ctx,
                         NGX_HTTP_TUNNEL_ADMIN_INVALID, msg)
                   : NGX_ERROR;
    }

    if (ngx_http_tunnel_admin_cell_is(ctx, 0, 0, "quota")) {
        return ngx_http_tunnel_admin_form_error(r, ctx,
                   NGX_HTTP_TUNNEL_ADMIN_INVALID,
                   "You have reserved as many names as you may.  Release "
                   "one first.");
    }

    return ngx_http_tunnel_admin_form_error(r, ctx,
               NGX_HTTP_TUNNEL_ADMIN_INVALID,
               "Someone else has reserved this name: choose another one.");
}


/*
 * The name ctx->s1 is reserved; tunneld answered GET /tunnels/NAME (or
 * not).  A live tunnel of another user keeps the name until it closes
 * (tunneld refuses the reserver meanwhile: "in use by another user"), so
 * the page says so instead of "yours now"; nobody is kicked.  No answer
 * from tunneld: the usual "yours now", as before the API was asked.
 */
static ngx_int_t
ngx_http_tunnel_admin_name_reserved(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    const char  *note;
    ngx_str_t    owner;

    if (ngx_http_tunnel_admin_api_ok(ctx)) {
        owner = ngx_http_tunnel_admin_json_str(ctx->api_json, "user");

        if (owner.len
            && (owner.len != ctx->user_name.len
                || ngx_strncmp(owner.data, ctx->user_name.data, owner.len)
                   != 0))
        {
            note = ngx_http_tunnel_admin_sentence(r,
                       "Reserved: it is yours once %V's tunnel on it "
                       "closes.", &owner);
            if (note == NULL) {
                return NGX_ERROR;
            }

            ctx->note.data = (u_char *) note;
            ctx->note.len = ngx_strlen(note);
            ctx->render = 1;
            ctx->step = 0;

            return ctx->route->get(r, ctx);
        }
    }

    return ngx_http_tunnel_admin_redirect(r, ctx,
                                          "/names?done=name-reserved");
}


static ngx_int_t
ngx_http_tunnel_admin_name_release(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ngx_str_t  *name, params[4];

    if (ctx->step == 0) {
        name = ngx_http_tunnel_admin_field(ctx, "name");

        if (name == NULL || name->len == 0 || name->len > TNL_NAME_MAX) {
            return ngx_http_tunnel_admin_form_error(r, ctx,
                       NGX_HTTP_TUNNEL_ADMIN_INVALID, "No such name.");
        }

        params[0] = *name;
        params[1] = ctx->user_id_text;
        ngx_http_tunnel_admin_bool_param(&params[2], ctx->is_admin);
        params[3] = r->connection->addr_text;
        ctx->step = 1;

        return ngx_http_tunnel_admin_query(r, ctx,
                                       ngx_http_tunnel_admin_name_release_sql,
                                       4, params);
    }

    if (PQntuples(ctx->res) == 0) {
        return ngx_http_tunnel_admin_form_error(r, ctx,
                   NGX_HTTP_TUNNEL_ADMIN_INVALID,
                   "This name is not reserved by you.");
    }

    return ngx_http_tunnel_admin_redirect(r, ctx,
                                          "/names?done=name-released");
}


/*
 * What is wrong with a name tnl_name_validate() refused, as a sentence that
 * names it (as typed, shortened if long) and says what to do, with a valid
 * spelling when one is obvious ("Bad_Name" -> "bad-name").  In r->pool.
 */
static const char *
ngx_http_tunnel_admin_name_invalid(ngx_http_request_t *r, ngx_str_t *name)
{
    u_char      fix[TNL_NAME_MAX + 1], c;
    size_t      i, n;
    ngx_str_t   typed, suggestion;
    ngx_uint_t  bad_char;

    if (name->len == 0) {
        return "Type a name: 1 to 63 letters a-z, digits 0-9 or '-'.";
    }

    typed = ngx_http_tunnel_admin_shorten(r, name);

    if (name->len > TNL_NAME_MAX) {
        return ngx_http_tunnel_admin_sentence(r,
                   NGX_HTTP_TUNNEL_ADMIN_LQ "%V" NGX_HTTP_TUNNEL_ADMIN_RQ
                   " is too long for a name: use at most 63 letters a-z, "
                   "digits 0-9 or '-'.", &typed);
    }

    bad_char = 0;
    n = 0;

    for (i = 0; i < name->len; i++) {
        c = ngx_tolower(name->data[i]);

        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-') {
            fix[n++] = c;
            continue;
        }

        bad_char = 1;

        if (n && fix[n - 1] != '-') {
            fix[n++] = '-';
        }
    }

    if (!bad_char && n >= 4 && ngx_strncmp(fix, "xn--", 4) == 0) {
        return ngx_http_tunnel_admin_sentence(r,
                   NGX_HTTP_TUNNEL_ADMIN_LQ "%V" NGX_HTTP_TUNNEL_ADMIN_RQ
                   " is not allowed: names starting with 'xn--' may be "
                   "shown by browsers as international look-alikes of "
                   "other names.  Choose another.", &typed);
    }

    if (!bad_char) {
        return ngx_http_tunnel_admin_sentence(r,
                   NGX_HTTP_TUNNEL_ADMIN_LQ "%V" NGX_HTTP_TUNNEL_ADMIN_RQ
                   " is not a valid name: it may not start or end with "
                   "'-'.", &typed);
    }

    while (n && fix[n - 1] == '-') {
        n--;
    }

    for (i = 0; i < n && fix[i] == '-'; i++) { /* void */ }

    suggestion.data = fix + i;
    suggestion.len = n - i;

    if (suggestion.len == 0) {
        return ngx_http_tunnel_admin_sentence(r,
                   NGX_HTTP_TUNNEL_ADMIN_LQ "%V" NGX_HTTP_TUNNEL_ADMIN_RQ
                   " is not a valid name: use only letters a-z, digits 0-9 "
                   "and '-' (not at the start or end).", &typed);
    }

    return ngx_http_tunnel_admin_sentence(r,
               NGX_HTTP_TUNNEL_ADMIN_LQ "%V" NGX_HTTP_TUNNEL_ADMIN_RQ
               " is not a valid name: use only letters a-z, digits 0-9 and "
               "'-' (not at the start or end), for example "
               NGX_HTTP_TUNNEL_ADMIN_LQ "%V" NGX_HTTP_TUNNEL_ADMIN_RQ ".",
               &typed, &suggestion);
}
