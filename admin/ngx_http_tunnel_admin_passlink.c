
/*
 * /password/<token>: a one-time link sets a user's password.  tunnelctl
 * prints such links (`tunnelctl user add NAME`, `tunnelctl user password
 * NAME`) for accounts made on the command line, and administrators make
 * them on /admin/users (ngx_http_tunnel_admin_password_link()) for someone
 * who forgot theirs.  The page names the account, takes the new password
 * twice (the rules of setup and join), hashes it in the thread pool and
 * signs the user in.
 *
 * The database keeps only sha256 of the token's text; the check and the use
 * are tunnel_admin_password_token_check() and tunnel_admin_password_set()
 * (sql/003_first_hour.sql), the latter row-locked so that a link works
 * once under concurrent posts.  Using a link ends the user's other web
 * sessions.  The page is open before setup is done, so that a user made
 * with `tunnelctl user add NAME --admin` can become the administrator with
 * it.
 */

#include "ngx_http_tunnel_admin_module.h"


typedef enum {
    NGX_HTTP_TUNNEL_ADMIN_PASSLINK_CHECK = 0,   /* is the link usable? */
    NGX_HTTP_TUNNEL_ADMIN_PASSLINK_CHECKED,     /* validate, start hashing */
    NGX_HTTP_TUNNEL_ADMIN_PASSLINK_HASHED,      /* use the link */
    NGX_HTTP_TUNNEL_ADMIN_PASSLINK_SET,         /* sign in */
    NGX_HTTP_TUNNEL_ADMIN_PASSLINK_SIGNED_IN
} ngx_http_tunnel_admin_passlink_step_e;


static const char  ngx_http_tunnel_admin_passlink_check_sql[] =
    "SELECT r_status, r_user_id, r_user_name"
    "  FROM tunnel_admin_password_token_check($1::bytea)";

static const char  ngx_http_tunnel_admin_passlink_set_sql[] =
    "SELECT r_status, r_user_id, r_user_name"
    "  FROM tunnel_admin_password_set($1::bytea, $2, $3)";

static const char  ngx_http_tunnel_admin_passlink_create_sql[] =
    "SELECT tunnel_admin_password_token_create($1, u.id, $3, $4, $5),"
    "       u.name"
    "  FROM users u WHERE u.id = $2";


static ngx_int_t ngx_http_tunnel_admin_passlink_refused(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_uint_t checked);


ngx_int_t
ngx_http_tunnel_admin_passlink_get(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ngx_str_t    param, name;
    const char  *title;

    if (ctx->step == 0) {
        if (ngx_http_tunnel_admin_link_token(r, ctx, &param) != NGX_OK) {
            return ngx_http_tunnel_admin_passlink_refused(r, ctx, 0);
        }

        ctx->step = 1;
        return ngx_http_tunnel_admin_query(r, ctx,
                                     ngx_http_tunnel_admin_passlink_check_sql,
                                     1, &param);
    }

    if (!ngx_http_tunnel_admin_cell_is(ctx, 0, 0, "ok")) {
        return ngx_http_tunnel_admin_passlink_refused(r, ctx, 1);
    }

    name = ngx_http_tunnel_admin_cell(ctx, 0, 2);

    title = ngx_http_tunnel_admin_sentence(r, "Set the password for %V",
                                           &name);
    if (title == NULL) {
        return NGX_ERROR;
    }

    ngx_http_tunnel_admin_page_start(r, ctx, title);
    ngx_http_tunnel_admin_flash(r, ctx);

    if (ctx->logged_in) {
        ngx_http_tunnel_admin_put(r, ctx,
            "<p class=\"msg bad\">You are signed in as ");
        ngx_http_tunnel_admin_esc(r, ctx, &ctx->user_name);
        ngx_http_tunnel_admin_put(r, ctx,
            ".  Setting this password signs you in as ");
        ngx_http_tunnel_admin_esc(r, ctx, &name);
        ngx_http_tunnel_admin_put(r, ctx, " instead.</p>\n");
    }

    ngx_http_tunnel_admin_put(r, ctx,
        "<div class=\"card\">\n<p>Choose the password of the account "
        "<strong>");
    ngx_http_tunnel_admin_esc(r, ctx, &name);
    ngx_http_tunnel_admin_put(r, ctx,
        "</strong>.  This link works once; other web sessions of this "
        "account are signed out.</p>\n"
        "<form method=\"post\" action=\"/password/");
    ngx_http_tunnel_admin_esc(r, ctx, &ctx->arg);
    ngx_http_tunnel_admin_put(r, ctx, "\">\n");
    ngx_http_tunnel_admin_csrf_field(r, ctx);

    ngx_http_tunnel_admin_input(r, ctx, "Password", "password", "password",
        "new-password", "At least 12 characters, not your user name.  A "
        "few unrelated words make a good one.", 0);
    ngx_http_tunnel_admin_input(r, ctx, "Password again", "password2",
        "password", "new-password", NULL, 0);

    ngx_http_tunnel_admin_put(r, ctx,
        "<div class=\"actions\"><button type=\"submit\">Set the password"
        "</button></div>\n</form>\n</div>\n");

    ngx_http_tunnel_admin_page_end(r, ctx);

    return NGX_HTTP_TUNNEL_ADMIN_READY;
}


ngx_int_t
ngx_http_tunnel_admin_passlink_post(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ngx_int_t    rc;
    ngx_str_t    params[3], id;
    const char  *err;

    switch (ctx->step) {

    case NGX_HTTP_TUNNEL_ADMIN_PASSLINK_CHECK:
        if (ngx_http_tunnel_admin_link_token(r, ctx, &ctx->s2) != NGX_OK)
        {
            return ngx_http_tunnel_admin_passlink_refused(r, ctx, 0);
        }

        ctx->step = NGX_HTTP_TUNNEL_ADMIN_PASSLINK_CHECKED;
        return ngx_http_tunnel_admin_query(r, ctx,
                                     ngx_http_tunnel_admin_passlink_check_sql,
                                     1, &ctx->s2);

    case NGX_HTTP_TUNNEL_ADMIN_PASSLINK_CHECKED:
        if (!ngx_http_tunnel_admin_cell_is(ctx, 0, 0, "ok")) {
            return ngx_http_tunnel_admin_passlink_refused(r, ctx, 1);
        }

        if (ngx_http_tunnel_admin_cell_copy(r, ctx, 0, 2, &ctx->s1) != NGX_OK)
        {
            return NGX_ERROR;
        }

        err = ngx_http_tunnel_admin_password_weak(
                  ngx_http_tunnel_admin_field(ctx, "password"),
                  ngx_http_tunnel_admin_field(ctx, "password2"), &ctx->s1);
        if (err) {
            return ngx_http_tunnel_admin_form_error(r, ctx,
                       NGX_HTTP_TUNNEL_ADMIN_INVALID, err);
        }

        ctx->step = NGX_HTTP_TUNNEL_ADMIN_PASSLINK_HASHED;
        return ngx_http_tunnel_admin_password_hash(r, ctx,
                   ngx_http_tunnel_admin_field(ctx, "password"));

    case NGX_HTTP_TUNNEL_ADMIN_PASSLINK_HASHED:
        if (ctx->pw_rc != NGX_OK) {
            return NGX_ERROR;
        }

        params[0] = ctx->s2;
        params[1] = ctx->pw_hash;
        params[2] = r->connection->addr_text;
        ctx->step = NGX_HTTP_TUNNEL_ADMIN_PASSLINK_SET;

        return ngx_http_tunnel_admin_query(r, ctx,
                                       ngx_http_tunnel_admin_passlink_set_sql,
                                       3, params);

    case NGX_HTTP_TUNNEL_ADMIN_PASSLINK_SET:
        if (!ngx_http_tunnel_admin_cell_is(ctx, 0, 0, "ok")) {
            /* another post with the same link won the row lock */
            return ngx_http_tunnel_admin_passlink_refused(r, ctx, 1);
        }

        ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                      "tunnel: admin: \"%V\" set their password with a "
                      "one-time link", &ctx->s1);

        id = ngx_http_tunnel_admin_cell(ctx, 0, 1);
        ctx->step = NGX_HTTP_TUNNEL_ADMIN_PASSLINK_SIGNED_IN;

        return ngx_http_tunnel_admin_sign_in_new(r, ctx, &id);

    default: /* NGX_HTTP_TUNNEL_ADMIN_PASSLINK_SIGNED_IN */
        rc = ngx_http_tunnel_admin_session_created(r, ctx);
        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        /* NGX_DECLINED: disabled meanwhile; /login will say so */
        return ngx_http_tunnel_admin_redirect(r, ctx, rc == NGX_OK
                                   ? "/?done=password-set"
                                   : "/login?done=password-set-login");
    }
}


/*
 * The page for a link that cannot be used, saying what to do instead: from
 * the status in ctx->res when checked (a check or set result), else the
 * link is malformed.
 */
static ngx_int_t
ngx_http_tunnel_admin_passlink_refused(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_uint_t checked)
{
    ngx_str_t    name;
    const char  *text;

    name = ngx_http_tunnel_admin_cell(ctx, 0, 2);

    if (!checked || ctx->res == NULL || PQntuples(ctx->res) != 1
        || ngx_http_tunnel_admin_cell_is(ctx, 0, 0, "unknown")
        || name.len == 0)
    {
        return ngx_http_tunnel_admin_message(r, ctx, NGX_HTTP_NOT_FOUND,
                   "This password link is not valid",
                   "The link may be incomplete: check that you copied all "
                   "of it.  Otherwise ask an administrator for a new one "
                   "(on the Users page, or with: tunnelctl user password "
                   "NAME).", "/login", "Sign in instead");
    }

    if (ngx_http_tunnel_admin_cell_is(ctx, 0, 0, "used")) {
        text = ngx_http_tunnel_admin_sentence(r,
                   "Each link sets a password once, and this one already "
                   "set the password of %V.  If that was you, sign in with "
                   "it.  Forgot it?  Ask an administrator for a new link "
                   "(on the Users page, or with: tunnelctl user password "
                   "%V).", &name, &name);

        return text ? ngx_http_tunnel_admin_message(r, ctx,
                          NGX_HTTP_TUNNEL_ADMIN_GONE,
                          "This password link was already used", text,
                          "/login", "Sign in")
                    : NGX_ERROR;
    }

    if (ngx_http_tunnel_admin_cell_is(ctx, 0, 0, "disabled")) {
        text = ngx_http_tunnel_admin_sentence(r,
                   "The account %V is disabled, so its password cannot be "
                   "set.  Ask an administrator to enable it (tunnelctl user "
                   "enable %V) and to send you a new link.", &name, &name);

        return text ? ngx_http_tunnel_admin_message(r, ctx,
                          NGX_HTTP_FORBIDDEN, "This account is disabled",
                          text, NULL, NULL)
                    : NGX_ERROR;
    }

    /* expired (or retired by a newer link for the same user) */
    text = ngx_http_tunnel_admin_sentence(r,
               "Password links work for a limited time, and only the newest "
               "link of an account works.  Ask an administrator for a new "
               "one (on the Users page, or with: tunnelctl user password "
               "%V).", &name);

    return text ? ngx_http_tunnel_admin_message(r, ctx,
                      NGX_HTTP_TUNNEL_ADMIN_GONE,
                      "This password link has expired", text, "/login",
                      "Sign in")
                : NGX_ERROR;
}


/*
 * An administrator's "password link" on /admin/users: a new one-time link
 * for user_id (earlier ones of that user stop working), valid for
 * tunnel_admin_invite_hours.  On resume the result holds one row (token id,
 * user name), none if the user is gone; ctx->s3 is the link to show once.
 */
ngx_int_t
ngx_http_tunnel_admin_password_link(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_str_t *user_id)
{
    ngx_str_t                           token, params[5];
    ngx_http_tunnel_admin_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_tunnel_admin_module);

    if (ngx_http_tunnel_admin_token(r->pool,
                                    NGX_HTTP_TUNNEL_ADMIN_INVITE_BYTES,
                                    &token)
        != NGX_OK
        || ngx_http_tunnel_admin_link(r, "/password/", &token, &ctx->s3)
           != NGX_OK
        || ngx_http_tunnel_admin_number_param(r->pool, amcf->invite_hours,
                                              &params[2])
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    params[0] = token;
    params[1] = *user_id;
    params[3] = ctx->user_id_text;
    params[4] = r->connection->addr_text;

    return ngx_http_tunnel_admin_query(r, ctx,
                                   ngx_http_tunnel_admin_passlink_create_sql,
                                   5, params);
}
