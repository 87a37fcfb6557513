
/*
 * Invitations: /admin/invites (administrators create, list and revoke
 * them) and /join/<token> (the invitee picks a user name and a password
 * and is signed in).  No other way to create an account exists.
 *
 * A token is 144 random bits, base64url, shown once in the link; the
 * database keeps only sha256 of its text (tunnel_admin_invite_create() and
 * tunnel_admin_join() in sql/002_admin.sql, which tunnelctl uses too).
 * Using one is a row-locked function: single use even under concurrent
 * joins.
 */

#include "ngx_http_tunnel_admin_module.h"


typedef enum {
    NGX_HTTP_TUNNEL_ADMIN_JOIN_CHECK = 0,     /* validate, start hashing */
    NGX_HTTP_TUNNEL_ADMIN_JOIN_HASHED,        /* use the invitation */
    NGX_HTTP_TUNNEL_ADMIN_JOIN_JOINED,        /* sign in */
    NGX_HTTP_TUNNEL_ADMIN_JOIN_SIGNED_IN
} ngx_http_tunnel_admin_join_step_e;


static const char  ngx_http_tunnel_admin_invites_sql[] =
    "SELECT i.id, i.note, i.is_admin,"
    "       to_char(i.created_at, 'YYYY-MM-DD HH24:MI'),"
    "       to_char(i.expires_at, 'YYYY-MM-DD HH24:MI'),"
    "       CASE WHEN i.revoked_at IS NOT NULL THEN 'revoked'"
    "            WHEN i.used_at IS NOT NULL THEN 'used'"
    "            WHEN i.expires_at <= now() THEN 'expired'"
    "            ELSE 'open' END,"
    "       u.name, c.name"
    "  FROM invitations i"
    "  LEFT JOIN users u ON u.id = i.used_by"
    "  LEFT JOIN users c ON c.id = i.created_by"
    " ORDER BY i.created_at DESC, i.id DESC LIMIT 200";

static const char  ngx_http_tunnel_admin_invite_create_sql[] =
    "SELECT tunnel_admin_invite_create($1, $2, $3, $4, $5, $6)";

static const char  ngx_http_tunnel_admin_invite_revoke_sql[] =
    "WITH rev AS ("
    "  UPDATE invitations SET revoked_at = now()"
    "   WHERE id = $1 AND revoked_at IS NULL AND used_at IS NULL"
    "  RETURNING id),"
    " audit AS ("
    "  INSERT INTO tunnel_events (event, actor_id, client_addr, detail)"
    "  SELECT 'invite_revoked', $2, $3, 'invitation ' || id FROM rev)"
    " SELECT id FROM rev";

static const char  ngx_http_tunnel_admin_join_check_sql[] =
    "SELECT CASE WHEN revoked_at IS NOT NULL THEN 'revoked'"
    "            WHEN used_at IS NOT NULL THEN 'used'"
    "            WHEN expires_at <= now() THEN 'expired'"
    "            ELSE 'open' END, is_admin"
    "  FROM invitations WHERE token_hash = $1::bytea";

static const char  ngx_http_tunnel_admin_join_sql[] =
    "SELECT r_status, r_user_id"
    "  FROM tunnel_admin_join($1::bytea, $2, $3, $4)";


static ngx_int_t ngx_http_tunnel_admin_invites_list(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
static void ngx_http_tunnel_admin_invite_by(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, int row, int col);
static ngx_int_t ngx_http_tunnel_admin_invite_create(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
static ngx_int_t ngx_http_tunnel_admin_join_refused(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_str_t *status);


ngx_int_t
ngx_http_tunnel_admin_invites_get(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    if (ctx->step == 0) {
        ctx->step = 1;
        return ngx_http_tunnel_admin_query(r, ctx,
                                           ngx_http_tunnel_admin_invites_sql,
                                           0, NULL);
    }

    return ngx_http_tunnel_admin_invites_list(r, ctx);
}


static ngx_int_t
ngx_http_tunnel_admin_invites_list(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    int                                 i, n;
    ngx_str_t                           id, *hours;
    ngx_uint_t                          open;
    ngx_http_tunnel_admin_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_tunnel_admin_module);

    ngx_http_tunnel_admin_page_start(r, ctx, "Invitations");
    ngx_http_tunnel_admin_flash(r, ctx);

    if (ctx->s1.len) {
        /* just created: the only time the link can be shown */
        ngx_http_tunnel_admin_put(r, ctx,
            "<div class=\"msg good\"><p>Invitation created.  Send this link "
            "to the person you invite; it is shown only now and works "
            "once:</p>\n<p class=\"copy mono\" id=\"invite-link\">");
        ngx_http_tunnel_admin_esc(r, ctx, &ctx->s1);
        ngx_http_tunnel_admin_put(r, ctx, "</p></div>\n");
    }

    ngx_http_tunnel_admin_put(r, ctx,
        "<div class=\"card\">\n<h2>New invitation</h2>\n");
    ngx_http_tunnel_admin_form_start(r, ctx, "/admin/invites", "create",
                                     NULL, NULL);

    ngx_http_tunnel_admin_printf(r, ctx,
        "<label for=\"f-hours\">Valid for (hours)</label>\n"
        "<input id=\"f-hours\" name=\"hours\" type=\"number\" min=\"1\" "
        "max=\"%d\" value=\"", NGX_HTTP_TUNNEL_ADMIN_INVITE_HOURS_MAX);

    hours = ctx->msg.len ? ngx_http_tunnel_admin_field(ctx, "hours") : NULL;

    if (hours && hours->len) {
        ngx_http_tunnel_admin_esc(r, ctx, hours);

    } else {
        ngx_http_tunnel_admin_printf(r, ctx, "%ui", amcf->invite_hours);
    }

    ngx_http_tunnel_admin_put(r, ctx, "\">\n");

    ngx_http_tunnel_admin_input(r, ctx, "Note (who is it for?)", "note",
                                "text", "off", "Only administrators see it.",
                                ctx->msg.len != 0);

    ngx_http_tunnel_admin_put(r, ctx,
        "<p><label class=\"inline\"><input type=\"checkbox\" name=\"admin\" "
        "value=\"1\"");

    if (ctx->msg.len && ngx_http_tunnel_admin_field(ctx, "admin")) {
        ngx_http_tunnel_admin_put(r, ctx, " checked");
    }

    ngx_http_tunnel_admin_put(r, ctx,
        "> Make them an administrator</label></p>\n"
        "<div class=\"actions\"><button type=\"submit\">Create the "
        "link</button></div>\n</form>\n</div>\n"
        "<h2>All invitations</h2>\n");

    n = PQntuples(ctx->res);

    if (n == 0) {
        ngx_http_tunnel_admin_put(r, ctx,
                                  "<p class=\"muted\">None yet.</p>\n");
        ngx_http_tunnel_admin_page_end(r, ctx);
        return NGX_HTTP_TUNNEL_ADMIN_READY;
    }

    ngx_http_tunnel_admin_put(r, ctx,
        "<table>\n<thead><tr><th>Note</th><th>Status</th>"
        "<th class=\"opt\">Created</th><th>Expires</th><th></th></tr>"
        "</thead>\n<tbody>\n");

    for (i = 0; i < n; i++) {
        open = ngx_http_tunnel_admin_cell_is(ctx, i, 5, "open");

        ngx_http_tunnel_admin_put(r, ctx, "<tr><td>");
        ngx_http_tunnel_admin_esc_cell(r, ctx, i, 1);

        if (ngx_http_tunnel_admin_cell_is(ctx, i, 2, "t")) {
            ngx_http_tunnel_admin_put(r, ctx,
                                      " <span class=\"tag on\">admin</span>");
        }

        ngx_http_tunnel_admin_put(r, ctx,
                                  open ? "</td><td><span class=\"tag on\">"
                                       : "</td><td><span class=\"tag\">");
        ngx_http_tunnel_admin_esc_cell(r, ctx, i, 5);
        ngx_http_tunnel_admin_put(r, ctx, "</span>");
        ngx_http_tunnel_admin_invite_by(r, ctx, i, 6);

        ngx_http_tunnel_admin_put(r, ctx, "</td><td class=\"opt\">");
        ngx_http_tunnel_admin_esc_cell(r, ctx, i, 3);
        ngx_http_tunnel_admin_invite_by(r, ctx, i, 7);

        ngx_http_tunnel_admin_put(r, ctx, "</td><td data-label=\"Expires\">");
        ngx_http_tunnel_admin_esc_cell(r, ctx, i, 4);
        ngx_http_tunnel_admin_put(r, ctx, "</td><td>");

        if (open) {
            id = ngx_http_tunnel_admin_cell(ctx, i, 0);
            ngx_http_tunnel_admin_form_start(r, ctx, "/admin/invites",
                                             "revoke", "id", &id);
            ngx_http_tunnel_admin_put(r, ctx,
                "<button class=\"danger\" type=\"submit\">Revoke</button>"
                "</form>");
        }

        ngx_http_tunnel_admin_put(r, ctx, "</td></tr>\n");
    }

    ngx_http_tunnel_admin_put(r, ctx, "</tbody>\n</table>\n");
    ngx_http_tunnel_admin_page_end(r, ctx);

    return NGX_HTTP_TUNNEL_ADMIN_READY;
}


/* " by <name>" when the cell holds a user name */
static void
ngx_http_tunnel_admin_invite_by(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, int row, int col)
{
    ngx_str_t  name;

    name = ngx_http_tunnel_admin_cell(ctx, row, col);

    if (name.len) {
        ngx_http_tunnel_admin_put(r, ctx, " by ");
        ngx_http_tunnel_admin_esc(r, ctx, &name);
    }
}


ngx_int_t
ngx_http_tunnel_admin_invites_post(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ngx_str_t  *id, params[3];

    if (ngx_http_tunnel_admin_field_is(ctx, "action", "create")) {
        return ngx_http_tunnel_admin_invite_create(r, ctx);
    }

    if (!ngx_http_tunnel_admin_field_is(ctx, "action", "revoke")) {
        return ngx_http_tunnel_admin_form_error(r, ctx,
                   NGX_HTTP_TUNNEL_ADMIN_INVALID, "Unknown action.");
    }

    if (ctx->step == 0) {
        id = ngx_http_tunnel_admin_field(ctx, "id");

        if (id == NULL || !ngx_http_tunnel_admin_is_id(id)) {
            return ngx_http_tunnel_admin_form_error(r, ctx,
                       NGX_HTTP_TUNNEL_ADMIN_INVALID,
                       "No such invitation.");
        }

        params[0] = *id;
        params[1] = ctx->user_id_text;
        params[2] = r->connection->addr_text;

        ctx->step = 1;
        return ngx_http_tunnel_admin_query(r, ctx,
                                   ngx_http_tunnel_admin_invite_revoke_sql,
                                   3, params);
    }

    if (PQntuples(ctx->res) == 0) {
        return ngx_http_tunnel_admin_form_error(r, ctx,
                   NGX_HTTP_TUNNEL_ADMIN_INVALID,
                   "That invitation is already used, revoked, or gone.");
    }

    return ngx_http_tunnel_admin_redirect(r, ctx,
                                   "/admin/invites?done=invite-revoked");
}


static ngx_int_t
ngx_http_tunnel_admin_invite_create(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ngx_int_t   hours;
    ngx_str_t  *h, *note, token, params[6];

    if (ctx->step == 0) {
        h = ngx_http_tunnel_admin_field(ctx, "hours");
        note = ngx_http_tunnel_admin_field(ctx, "note");

        hours = (h && h->len) ? ngx_atoi(h->data, h->len) : NGX_ERROR;

        if (hours == NGX_ERROR || hours < 1
            || hours > NGX_HTTP_TUNNEL_ADMIN_INVITE_HOURS_MAX)
        {
            return ngx_http_tunnel_admin_form_error(r, ctx,
                       NGX_HTTP_TUNNEL_ADMIN_INVALID,
                       "The validity must be a whole number of hours, from "
                       "1 to 8760 (one year).");
        }

        if (note) {
            ngx_http_tunnel_admin_trim(note);
        }

        if (note && ngx_utf8_length(note->data, note->len)
                    > NGX_HTTP_TUNNEL_ADMIN_NOTE_MAX)
        {
            return ngx_http_tunnel_admin_form_error(r, ctx,
                       NGX_HTTP_TUNNEL_ADMIN_INVALID,
                       "The note is too long (at most 200 characters).");
        }

        if (ngx_http_tunnel_admin_token(r->pool,
                                        NGX_HTTP_TUNNEL_ADMIN_INVITE_BYTES,
                                        &token)
            != NGX_OK
            || ngx_http_tunnel_admin_link(r, "/join/", &token, &ctx->s1)
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        params[0] = token;
        ngx_http_tunnel_admin_bool_param(&params[1],
                                  ngx_http_tunnel_admin_field(ctx, "admin")
                                  != NULL);
        params[2] = *h;

        if (note) {
            params[3] = *note;

        } else {
            ngx_str_set(&params[3], "");
        }

        params[4] = ctx->user_id_text;
        params[5] = r->connection->addr_text;

        ctx->step = 1;

        return ngx_http_tunnel_admin_query(r, ctx,
                                   ngx_http_tunnel_admin_invite_create_sql,
                                   6, params);
    }

    if (ctx->step == 1) {
        ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                      "tunnel: admin: \"%V\" created an invitation",
                      &ctx->user_name);

        /* now the list, with the new link on top */
        ctx->render = 1;
        ctx->step = 0;

        return ngx_http_tunnel_admin_invites_get(r, ctx);
    }

    return NGX_ERROR;
}


/*
 * A link to hand out, base + path + token, in r->pool: the base is
 * tunnel_admin_base_url, else this request's host (invitations, password
 * links).
 */
ngx_int_t
ngx_http_tunnel_admin_link(ngx_http_request_t *r, const char *path,
    ngx_str_t *token, ngx_str_t *link)
{
    size_t                              len;
    u_char                             *p;
    ngx_str_t                           base, host;
    ngx_http_tunnel_admin_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_tunnel_admin_module);

    ngx_str_null(&host);

    if (amcf->base_url.len) {
        base = amcf->base_url;

    } else {
        if (r->headers_in.host) {
            host = r->headers_in.host->value;

        } else {
            host = r->headers_in.server;
        }

#if (NGX_HTTP_SSL)
        if (r->connection->ssl) {
            ngx_str_set(&base, "https://");
        } else
#endif
        {
            ngx_str_set(&base, "http://");
        }
    }

    len = base.len + host.len + ngx_strlen(path) + token->len;

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    link->data = p;
    p = ngx_cpymem(p, base.data, base.len);

    /* no host with a base URL: memcpy() from NULL is undefined even for
     * 0 bytes (UBSan, t/100-admin-invites.t) */
    if (host.len) {
        p = ngx_cpymem(p, host.data, host.len);
    }

    p = ngx_cpymem(p, path, ngx_strlen(path));
    p = ngx_cpymem(p, token->data, token->len);
    link->len = p - link->data;

    return NGX_OK;
}


ngx_int_t
ngx_http_tunnel_admin_join_get(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ngx_str_t  param, status;

    if (ctx->step == 0 && !ctx->render) {
        if (ngx_http_tunnel_admin_link_token(r, ctx, &param) != NGX_OK) {
            return ngx_http_tunnel_admin_join_refused(r, ctx, NULL);
        }

        ctx->step = 1;
        return ngx_http_tunnel_admin_query(r, ctx,
                                        ngx_http_tunnel_admin_join_check_sql,
                                        1, &param);
    }

    if (!ctx->render) {
        status = ngx_http_tunnel_admin_cell(ctx, 0, 0);

        if (PQntuples(ctx->res) != 1
            || !ngx_http_tunnel_admin_cell_is(ctx, 0, 0, "open"))
        {
            return ngx_http_tunnel_admin_join_refused(r, ctx,
                                          PQntuples(ctx->res) ? &status
                                                              : NULL);
        }
    }

    ngx_http_tunnel_admin_page_start(r, ctx, "Join ngx-tunnel");
    ngx_http_tunnel_admin_flash(r, ctx);

    if (ctx->logged_in) {
        ngx_http_tunnel_admin_put(r, ctx,
            "<p class=\"msg bad\">You are signed in as ");
        ngx_http_tunnel_admin_esc(r, ctx, &ctx->user_name);
        ngx_http_tunnel_admin_put(r, ctx,
            ".  Joining creates another account and signs you in with "
            "it.</p>\n");
    }

    ngx_http_tunnel_admin_put(r, ctx,
        "<div class=\"card\">\n<p>You were invited to open tunnels here.  "
        "Choose your user name and a password.</p>\n"
        "<form method=\"post\" action=\"/join/");
    ngx_http_tunnel_admin_esc(r, ctx, &ctx->arg);
    ngx_http_tunnel_admin_put(r, ctx, "\">\n");
    ngx_http_tunnel_admin_csrf_field(r, ctx);

    ngx_http_tunnel_admin_input(r, ctx, "User name", "name", "text",
        "username", "Lower-case letters a-z, digits, '-' and '_'; starts "
        "with a letter; at most 32 characters.  It appears in logs and to "
        "administrators.", 1);
    ngx_http_tunnel_admin_input(r, ctx, "Password", "password", "password",
        "new-password", "At least 12 characters, not your user name.", 0);
    ngx_http_tunnel_admin_input(r, ctx, "Password again", "password2",
        "password", "new-password", NULL, 0);

    ngx_http_tunnel_admin_put(r, ctx,
        "<div class=\"actions\"><button type=\"submit\">Create my "
        "account</button></div>\n</form>\n</div>\n");

    ngx_http_tunnel_admin_page_end(r, ctx);

    return NGX_HTTP_TUNNEL_ADMIN_READY;
}


ngx_int_t
ngx_http_tunnel_admin_join_post(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ngx_str_t  params[4], status, id;

    switch (ctx->step) {

    case NGX_HTTP_TUNNEL_ADMIN_JOIN_CHECK:
        if (ngx_http_tunnel_admin_link_token(r, ctx, &ctx->s2) != NGX_OK) {
            return ngx_http_tunnel_admin_join_refused(r, ctx, NULL);
        }

        ctx->step = NGX_HTTP_TUNNEL_ADMIN_JOIN_HASHED;
        return ngx_http_tunnel_admin_account_start(r, ctx);

    case NGX_HTTP_TUNNEL_ADMIN_JOIN_HASHED:
        if (ctx->pw_rc != NGX_OK) {
            return NGX_ERROR;
        }

        params[0] = ctx->s2;
        params[1] = ctx->s1;
        params[2] = ctx->pw_hash;
        params[3] = r->connection->addr_text;
        ctx->step = NGX_HTTP_TUNNEL_ADMIN_JOIN_JOINED;

        return ngx_http_tunnel_admin_query(r, ctx,
                                           ngx_http_tunnel_admin_join_sql,
                                           4, params);

    case NGX_HTTP_TUNNEL_ADMIN_JOIN_JOINED:
        status = ngx_http_tunnel_admin_cell(ctx, 0, 0);

        if (ngx_http_tunnel_admin_cell_is(ctx, 0, 0, "name_taken")) {
            return ngx_http_tunnel_admin_form_error(r, ctx,
                       NGX_HTTP_TUNNEL_ADMIN_INVALID,
                       "This user name is taken: choose another one.");
        }

        if (!ngx_http_tunnel_admin_cell_is(ctx, 0, 0, "ok")) {
            return ngx_http_tunnel_admin_join_refused(r, ctx,
                                               status.len ? &status : NULL);
        }

        ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                      "tunnel: admin: user \"%V\" joined by invitation",
                      &ctx->s1);

        id = ngx_http_tunnel_admin_cell(ctx, 0, 1);
        ctx->step = NGX_HTTP_TUNNEL_ADMIN_JOIN_SIGNED_IN;

        return ngx_http_tunnel_admin_sign_in_new(r, ctx, &id);

    default: /* NGX_HTTP_TUNNEL_ADMIN_JOIN_SIGNED_IN */
        return ngx_http_tunnel_admin_welcome(r, ctx);
    }
}


static ngx_int_t
ngx_http_tunnel_admin_join_refused(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_str_t *status)
{
    const char  *title, *text;

    if (status == NULL) {
        return ngx_http_tunnel_admin_message(r, ctx, NGX_HTTP_NOT_FOUND,
                   "This invitation link is not valid",
                   "The link may be incomplete: check that you copied all "
                   "of it.  Otherwise ask the person who invited you for a "
                   "new one.", "/login", "Sign in instead");
    }

    if (status->len == 7 && ngx_strncmp(status->data, "expired", 7) == 0) {
        title = "This invitation has expired";
        text = "Invitations are valid for a limited time.  Ask the person "
               "who invited you for a new link.";

    } else if (status->len == 4 && ngx_strncmp(status->data, "used", 4) == 0)
    {
        title = "This invitation was already used";
        text = "Each invitation creates one account.  If it was you, sign "
               "in; otherwise ask for a new link.";

    } else {
        title = "This invitation was revoked";
        text = "An administrator withdrew it.  Ask them for a new link if "
               "you still need one.";
    }

    return ngx_http_tunnel_admin_message(r, ctx, NGX_HTTP_TUNNEL_ADMIN_GONE,
                                         title, text, "/login", "Sign in");
}

