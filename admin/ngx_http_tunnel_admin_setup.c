
/*
 * /setup: the first person to open a fresh installation creates its first
 * administrator.  The dispatcher sends every other URL here while no user
 * exists, and answers 410 here once one does.  The insert itself is
 * tunnel_admin_setup() (sql/002_admin.sql), which makes two setups racing
 * each other create exactly one administrator; the loser gets the same 410
 * page as a late visitor.
 */

#include "ngx_http_tunnel_admin_module.h"


typedef enum {
    NGX_HTTP_TUNNEL_ADMIN_SETUP_CHECK = 0,   /* validate, start hashing */
    NGX_HTTP_TUNNEL_ADMIN_SETUP_HASHED,      /* insert the admin */
    NGX_HTTP_TUNNEL_ADMIN_SETUP_CREATED,     /* sign them in */
    NGX_HTTP_TUNNEL_ADMIN_SETUP_SIGNED_IN
} ngx_http_tunnel_admin_setup_step_e;


static const char  ngx_http_tunnel_admin_setup_sql[] =
    "SELECT r_user_id FROM tunnel_admin_setup($1, $2)";


ngx_int_t
ngx_http_tunnel_admin_setup_get(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ngx_http_tunnel_admin_page_start(r, ctx, "Set up ngx-tunnel");
    ngx_http_tunnel_admin_flash(r, ctx);

    ngx_http_tunnel_admin_put(r, ctx,
        "<div class=\"card\">\n"
        "<p>This installation has no users yet.  Create its first "
        "administrator: you.  Everyone else joins by invitation.</p>\n"
        "<form method=\"post\" action=\"/setup\">\n");
    ngx_http_tunnel_admin_csrf_field(r, ctx);

    ngx_http_tunnel_admin_input(r, ctx, "User name", "name", "text",
        "username", "Lower-case letters a-z, digits, '-' and '_'; starts "
        "with a letter; at most 32 characters.", 1);
    ngx_http_tunnel_admin_input(r, ctx, "Password", "password", "password",
        "new-password", "At least 12 characters, not your user name.  A "
        "few unrelated words make a good one.", 0);
    ngx_http_tunnel_admin_input(r, ctx, "Password again", "password2",
        "password", "new-password", NULL, 0);

    ngx_http_tunnel_admin_put(r, ctx,
        "<div class=\"actions\"><button type=\"submit\">Create the "
        "administrator</button></div>\n</form>\n</div>\n");

    ngx_http_tunnel_admin_page_end(r, ctx);

    return NGX_HTTP_TUNNEL_ADMIN_READY;
}


ngx_int_t
ngx_http_tunnel_admin_setup_post(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ngx_str_t  params[2], id;

    switch (ctx->step) {

    case NGX_HTTP_TUNNEL_ADMIN_SETUP_CHECK:
        ctx->step = NGX_HTTP_TUNNEL_ADMIN_SETUP_HASHED;
        return ngx_http_tunnel_admin_account_start(r, ctx);

    case NGX_HTTP_TUNNEL_ADMIN_SETUP_HASHED:
        if (ctx->pw_rc != NGX_OK) {
            return NGX_ERROR;
        }

        params[0] = ctx->s1;
        params[1] = ctx->pw_hash;
        ctx->step = NGX_HTTP_TUNNEL_ADMIN_SETUP_CREATED;

        return ngx_http_tunnel_admin_query(r, ctx,
                                           ngx_http_tunnel_admin_setup_sql,
                                           2, params);

    case NGX_HTTP_TUNNEL_ADMIN_SETUP_CREATED:
        id = ngx_http_tunnel_admin_cell(ctx, 0, 0);

        if (id.len == 0) {
            return ngx_http_tunnel_admin_message(r, ctx,
                       NGX_HTTP_TUNNEL_ADMIN_GONE, "Setup is done",
                       "Someone else finished the setup a moment ago.  Sign "
                       "in with the account they created, or ask them for "
                       "an invitation.", "/login", "Sign in");
        }

        ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                      "tunnel: admin: first administrator \"%V\" created",
                      &ctx->s1);

        ctx->step = NGX_HTTP_TUNNEL_ADMIN_SETUP_SIGNED_IN;

        return ngx_http_tunnel_admin_sign_in_new(r, ctx, &id);

    default: /* NGX_HTTP_TUNNEL_ADMIN_SETUP_SIGNED_IN */
        return ngx_http_tunnel_admin_welcome(r, ctx);
    }
}
