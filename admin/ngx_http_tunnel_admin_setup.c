
/*
 * /setup: the first person to open an installation where no administrator
 * can sign in yet (tunnel_admin_needs_setup(), sql/003_first_hour.sql)
 * becomes its administrator.  That is a fresh installation, or one where
 * `tunnelctl user add` made users without a password: then the page says
 * so, and typing the name of such an account gives it this password and
 * makes it the administrator.  The dispatcher sends every other URL here
 * while setup is needed, and answers 410 here once it is not.  The write
 * is tunnel_admin_setup(), which makes two setups racing each other create
 * exactly one administrator ('done' for the loser: the same 410 page as a
 * late visitor) and never takes over an account that has a password
 * ('name_taken').
 */

#include "ngx_http_tunnel_admin_module.h"


typedef enum {
    NGX_HTTP_TUNNEL_ADMIN_SETUP_CHECK = 0,   /* validate, start hashing */
    NGX_HTTP_TUNNEL_ADMIN_SETUP_HASHED,      /* insert the admin */
    NGX_HTTP_TUNNEL_ADMIN_SETUP_CREATED,     /* sign them in */
    NGX_HTTP_TUNNEL_ADMIN_SETUP_SIGNED_IN
} ngx_http_tunnel_admin_setup_step_e;


static const char  ngx_http_tunnel_admin_setup_sql[] =
    "SELECT r_status, r_user_id FROM tunnel_admin_setup($1, $2, $3)";

ngx_int_t
ngx_http_tunnel_admin_setup_get(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ngx_http_tunnel_admin_page_start(r, ctx, "Set up ngx-tunnel");
    ngx_http_tunnel_admin_flash(r, ctx);

    if (ctx->any_users) {
        ngx_http_tunnel_admin_put(r, ctx,
            "<div class=\"card\" id=\"setup-users\">\n"
            "<p>This installation has users but no administrator who can "
            "sign in yet: accounts made with <code>tunnelctl user add</code> "
            "have no password until they set one.</p>\n"
            "<p>Enter the name of an existing account made with tunnelctl "
            "to give it a password and make it the administrator, or a new "
            "name to create the administrator.  Everyone else joins by "
            "invitation.</p>\n");

    } else {
        ngx_http_tunnel_admin_put(r, ctx,
            "<div class=\"card\">\n"
            "<p>This installation has no users yet.  Create its first "
            "administrator: you.  Everyone else joins by invitation.</p>\n");
    }

    ngx_http_tunnel_admin_put(r, ctx,
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
    ngx_str_t    params[3], id;
    const char  *msg;

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
        params[2] = r->connection->addr_text;
        ctx->step = NGX_HTTP_TUNNEL_ADMIN_SETUP_CREATED;

        return ngx_http_tunnel_admin_query(r, ctx,
                                           ngx_http_tunnel_admin_setup_sql,
                                           3, params);

    case NGX_HTTP_TUNNEL_ADMIN_SETUP_CREATED:
        if (ngx_http_tunnel_admin_cell_is(ctx, 0, 0, "name_taken")) {
            msg = ngx_http_tunnel_admin_sentence(r,
                      "The account " NGX_HTTP_TUNNEL_ADMIN_LQ "%V"
                      NGX_HTTP_TUNNEL_ADMIN_RQ " already has a password: "
                      "sign in with it, or choose another name.", &ctx->s1);

            return msg ? ngx_http_tunnel_admin_form_error(r, ctx,
                             NGX_HTTP_TUNNEL_ADMIN_INVALID, msg)
                       : NGX_ERROR;
        }

        if (ngx_http_tunnel_admin_cell_is(ctx, 0, 0, "disabled")) {
            msg = ngx_http_tunnel_admin_sentence(r,
                      "The account " NGX_HTTP_TUNNEL_ADMIN_LQ "%V"
                      NGX_HTTP_TUNNEL_ADMIN_RQ " is disabled: setup does "
                      "not enable it.  Choose another name (an operator can "
                      "enable it with tunnelctl user enable).", &ctx->s1);

            return msg ? ngx_http_tunnel_admin_form_error(r, ctx,
                             NGX_HTTP_TUNNEL_ADMIN_INVALID, msg)
                       : NGX_ERROR;
        }

        id = ngx_http_tunnel_admin_cell(ctx, 0, 1);

        if (!ngx_http_tunnel_admin_cell_is(ctx, 0, 0, "ok") || id.len == 0) {
            /* 'done' */
            return ngx_http_tunnel_admin_message(r, ctx,
                       NGX_HTTP_TUNNEL_ADMIN_GONE, "Setup is done",
                       "Someone else finished the setup a moment ago.  Sign "
                       "in with the account they created, or ask them for "
                       "an invitation.", "/login", "Sign in");
        }

        ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                      "tunnel: admin: first administrator \"%V\" set up",
                      &ctx->s1);

        ctx->step = NGX_HTTP_TUNNEL_ADMIN_SETUP_SIGNED_IN;

        return ngx_http_tunnel_admin_sign_in_new(r, ctx, &id);

    default: /* NGX_HTTP_TUNNEL_ADMIN_SETUP_SIGNED_IN */
        return ngx_http_tunnel_admin_welcome(r, ctx);
    }
}
