
/*
 * /login and /logout.
 *
 * Signing in: the typed name is folded (trimmed, lower case) as users.name
 * is stored.  Failed attempts are rows of login_failures (sql/002), counted
 * by tunnel_admin_login_check() (sql/007, where the reasoning is): per
 * (address, name) strictly, per address loosely, per existing account as a
 * slow-down that never refuses it where it has signed in before.  Over a
 * limit the form is refused, with the real wait, without checking the
 * password; `tunnelctl login-failures clear` lifts it.  An unknown user
 * costs the same argon2id work as a wrong password and gets the same
 * sentence.  A disabled account is only named as such after the right
 * password.
 *
 * Back to the page: a signed-out visitor of a page listed in
 * ngx_http_tunnel_admin_return_paths (the app's own pages: /names from a
 * bookmark, /activate?code=... opened from a terminal on a phone) is sent
 * to /login?next=PATH%3FQUERY, and returns there after signing in.  Only
 * those exact paths, with a query of plain characters, are ever followed:
 * nothing in a request can send the browser to another site.
 */

#include "ngx_http_tunnel_admin_module.h"


typedef enum {
    NGX_HTTP_TUNNEL_ADMIN_LOGIN_LOOKUP = 0,  /* counts and the user row */
    NGX_HTTP_TUNNEL_ADMIN_LOGIN_VERIFY,      /* start argon2id */
    NGX_HTTP_TUNNEL_ADMIN_LOGIN_VERIFIED,    /* sign in, or note failure */
    NGX_HTTP_TUNNEL_ADMIN_LOGIN_FAILED,      /* failure noted: say so */
    NGX_HTTP_TUNNEL_ADMIN_LOGIN_SIGNED_IN
} ngx_http_tunnel_admin_login_step_e;


static const char  ngx_http_tunnel_admin_login_sql[] =
    "SELECT * FROM tunnel_admin_login_check($1, $2, $3, $4, $5, $6)";

/* the audit row names who was typed: maybe nobody's account */
static const char  ngx_http_tunnel_admin_login_failed_sql[] =
    "WITH old AS ("
    "  DELETE FROM login_failures WHERE at < now() - interval '1 day'),"
    " audit AS ("
    "  INSERT INTO tunnel_events (event, actor_name, client_addr, user_id,"
    "                             detail)"
    "  SELECT 'login_failed', $2, $1, u.id,"
    "         CASE WHEN u.id IS NULL THEN 'no such user'"
    "              ELSE 'wrong password' END"
    "    FROM (SELECT 1) AS one LEFT JOIN users u ON u.name = $2)"
    " INSERT INTO login_failures (client_addr, user_name) VALUES ($1, $2)";

static const char  ngx_http_tunnel_admin_logout_sql[] =
    "WITH del AS ("
    "  DELETE FROM sessions WHERE token_hash = $1::bytea RETURNING user_id),"
    " audit AS ("
    "  INSERT INTO tunnel_events (event, actor_id, client_addr, user_id)"
    "  SELECT 'logout', user_id, $2, user_id FROM del)"
    " SELECT 1";


/*
 * the pages a sign-in returns to, with their query: the pages of the
 * navigation (not "/", where a sign-in goes anyway, nor the .json of the
 * live updates, nor forms that only POST)
 */
static ngx_str_t  ngx_http_tunnel_admin_return_paths[] = {
    ngx_string("/activate"),
    ngx_string("/keys"),
    ngx_string("/names"),
    ngx_string("/tunnels"),
    ngx_string("/admin/tunnels"),
    ngx_string("/admin/users"),
    ngx_string("/admin/invites"),
    ngx_string("/admin/activations"),
    ngx_string("/admin/audit"),
    ngx_null_string
};

#define NGX_HTTP_TUNNEL_ADMIN_NEXT_MAX  128


static ngx_int_t ngx_http_tunnel_admin_next_ok(ngx_str_t *next);
static ngx_int_t ngx_http_tunnel_admin_login_next(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_str_t *next);
static ngx_int_t ngx_http_tunnel_admin_login_lookup(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
static ngx_int_t ngx_http_tunnel_admin_login_verify(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
static ngx_int_t ngx_http_tunnel_admin_login_verified(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);


ngx_int_t
ngx_http_tunnel_admin_login_get(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ngx_int_t  has_next;
    ngx_str_t  next;

    has_next = (ngx_http_tunnel_admin_login_next(r, ctx, &next) == NGX_OK);

    if (ctx->logged_in && !ctx->render) {
        return ngx_http_tunnel_admin_redirect(r, ctx,
                                   has_next ? (char *) next.data : "/");
    }

    ngx_http_tunnel_admin_page_start(r, ctx, "Sign in");
    ngx_http_tunnel_admin_flash(r, ctx);

    ngx_http_tunnel_admin_put(r, ctx,
        "<div class=\"card\">\n<form method=\"post\" action=\"/login\">\n");
    ngx_http_tunnel_admin_csrf_field(r, ctx);

    if (has_next) {
        ngx_http_tunnel_admin_put(r, ctx,
                            "<input type=\"hidden\" name=\"next\" value=\"");
        ngx_http_tunnel_admin_esc(r, ctx, &next);
        ngx_http_tunnel_admin_put(r, ctx, "\">\n");
    }

    ngx_http_tunnel_admin_input(r, ctx, "User name", "name", "text",
                                "username", NULL, 1);
    ngx_http_tunnel_admin_input(r, ctx, "Password", "password", "password",
                                "current-password", NULL, 0);

    ngx_http_tunnel_admin_put(r, ctx,
        "<div class=\"actions\"><button type=\"submit\">Sign in</button>"
        "</div>\n</form>\n</div>\n"
        "<p class=\"muted\">Forgot your password?  Ask an administrator "
        "for a password link (the Users page, or <code>tunnelctl user "
        "password NAME</code>).</p>\n"
        "<p class=\"muted\">No account?  This installation is private: ask "
        "an administrator for an invitation link.</p>\n");

    ngx_http_tunnel_admin_page_end(r, ctx);

    return NGX_HTTP_TUNNEL_ADMIN_READY;
}


ngx_int_t
ngx_http_tunnel_admin_login_post(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ngx_int_t   rc;
    ngx_str_t   params[2], next;

    switch (ctx->step) {

    case NGX_HTTP_TUNNEL_ADMIN_LOGIN_LOOKUP:
        return ngx_http_tunnel_admin_login_lookup(r, ctx);

    case NGX_HTTP_TUNNEL_ADMIN_LOGIN_VERIFY:
        return ngx_http_tunnel_admin_login_verify(r, ctx);

    case NGX_HTTP_TUNNEL_ADMIN_LOGIN_VERIFIED:
        if (ctx->pw_rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (ctx->pw_rc == NGX_OK) {
            return ngx_http_tunnel_admin_login_verified(r, ctx);
        }

        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "tunnel: admin: failed sign-in as \"%V\" from %V",
                      &ctx->s1, &r->connection->addr_text);

        params[0] = r->connection->addr_text;
        params[1] = ctx->s1;
        ctx->step = NGX_HTTP_TUNNEL_ADMIN_LOGIN_FAILED;

        return ngx_http_tunnel_admin_query(r, ctx,
                                      ngx_http_tunnel_admin_login_failed_sql,
                                      2, params);

    case NGX_HTTP_TUNNEL_ADMIN_LOGIN_FAILED:
        return ngx_http_tunnel_admin_form_error(r, ctx, NGX_HTTP_FORBIDDEN,
                   "Wrong user name or password.");

    default: /* NGX_HTTP_TUNNEL_ADMIN_LOGIN_SIGNED_IN */
        rc = ngx_http_tunnel_admin_session_created(r, ctx);
        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (rc == NGX_DECLINED) {
            return ngx_http_tunnel_admin_form_error(r, ctx,
                       NGX_HTTP_FORBIDDEN,
                       "This account is disabled.  Ask an administrator.");
        }

        if (ngx_http_tunnel_admin_login_next(r, ctx, &next) == NGX_OK) {
            return ngx_http_tunnel_admin_redirect(r, ctx,
                                                  (char *) next.data);
        }

        return ngx_http_tunnel_admin_redirect(r, ctx, "/?done=signed-in");
    }
}


/*
 * The way to /login for a signed-out visitor: with ?next= when the page
 * is one to come back to (a GET of a return path, query included).
 */
ngx_int_t
ngx_http_tunnel_admin_login_redirect(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    u_char     *p, *loc;
    size_t      i;
    ngx_str_t   next;

    if (ctx->post || !(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_http_tunnel_admin_redirect(r, ctx, "/login");
    }

    next.len = r->uri.len + (r->args.len ? 1 + r->args.len : 0);
    next.data = ngx_pnalloc(r->pool, next.len);
    if (next.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(next.data, r->uri.data, r->uri.len);
    if (r->args.len) {
        *p++ = '?';
        ngx_memcpy(p, r->args.data, r->args.len);
    }

    if (!ngx_http_tunnel_admin_next_ok(&next)) {
        return ngx_http_tunnel_admin_redirect(r, ctx, "/login");
    }

    /* next_ok() leaves '?', '=' and '&' to escape: 3 bytes each at most */
    loc = ngx_pnalloc(r->pool, sizeof("/login?next=") + 3 * next.len);
    if (loc == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(loc, "/login?next=", sizeof("/login?next=") - 1);

    for (i = 0; i < next.len; i++) {
        switch (next.data[i]) {
        case '?':
            p = ngx_cpymem(p, "%3F", 3);
            break;
        case '=':
            p = ngx_cpymem(p, "%3D", 3);
            break;
        case '&':
            p = ngx_cpymem(p, "%26", 3);
            break;
        default:
            *p++ = next.data[i];
        }
    }

    *p = '\0';

    return ngx_http_tunnel_admin_redirect(r, ctx, (char *) loc);
}


/* 1 if next is a return path, alone or with a query of plain characters */
static ngx_int_t
ngx_http_tunnel_admin_next_ok(ngx_str_t *next)
{
    u_char      c;
    size_t      i;
    ngx_str_t  *path;

    if (next->len > NGX_HTTP_TUNNEL_ADMIN_NEXT_MAX) {
        return 0;
    }

    for (path = ngx_http_tunnel_admin_return_paths; path->len; path++) {
        if (next->len >= path->len
            && ngx_strncmp(next->data, path->data, path->len) == 0
            && (next->len == path->len || next->data[path->len] == '?'))
        {
            break;
        }
    }

    if (path->len == 0) {
        return 0;
    }

    for (i = path->len + 1; i < next->len; i++) {
        c = next->data[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'
              || c == '=' || c == '&'))
        {
            return 0;
        }
    }

    return 1;
}


/*
 * The "next" of the sign-in form (a POST) or of /login's query (a GET,
 * percent-decoded), NUL-terminated in r->pool.  NGX_OK if there is one
 * and it is a return path.
 */
static ngx_int_t
ngx_http_tunnel_admin_login_next(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_str_t *next)
{
    u_char     *src, *dst;
    ngx_str_t  *field, raw;

    if (ctx->post) {
        field = ngx_http_tunnel_admin_field(ctx, "next");
        if (field == NULL) {
            return NGX_DECLINED;
        }

        raw = *field;
        src = NULL;

    } else {
        if (ngx_http_tunnel_admin_arg(r, "next", &raw) != NGX_OK) {
            return NGX_DECLINED;
        }

        src = raw.data;
    }

    if (raw.len > NGX_HTTP_TUNNEL_ADMIN_NEXT_MAX * 3) {
        return NGX_DECLINED;
    }

    next->data = ngx_pnalloc(r->pool, raw.len + 1);
    if (next->data == NULL) {
        return NGX_DECLINED;
    }

    if (src) {
        dst = next->data;
        ngx_unescape_uri(&dst, &src, raw.len, 0);
        next->len = dst - next->data;

    } else {
        next->len = ngx_cpymem(next->data, raw.data, raw.len) - next->data;
    }

    next->data[next->len] = '\0';

    return ngx_http_tunnel_admin_next_ok(next) ? NGX_OK : NGX_DECLINED;
}


static ngx_int_t
ngx_http_tunnel_admin_login_lookup(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ngx_str_t                          *name, *password, params[6];
    ngx_http_tunnel_admin_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_tunnel_admin_module);

    name = ngx_http_tunnel_admin_field(ctx, "name");
    password = ngx_http_tunnel_admin_field(ctx, "password");

    if (name) {
        ngx_http_tunnel_admin_trim(name);
    }

    if (name == NULL || name->len == 0 || password == NULL
        || password->len == 0)
    {
        return ngx_http_tunnel_admin_form_error(r, ctx,
                   NGX_HTTP_TUNNEL_ADMIN_INVALID,
                   "Type your user name and your password.");
    }

    if (password->len > NGX_HTTP_TUNNEL_ADMIN_PASSWORD_MAX) {
        password->len = NGX_HTTP_TUNNEL_ADMIN_PASSWORD_MAX;
    }

    /*
     * what we look up and count failures under: folded as users.name is
     * stored (" CAROL " is carol), cut on a character boundary
     */
    ctx->s1.len = ngx_min(name->len, 64);
    ctx->s1.data = ngx_pnalloc(r->pool, ctx->s1.len);
    if (ctx->s1.data == NULL) {
        return NGX_ERROR;
    }

    ngx_strlow(ctx->s1.data, name->data, ctx->s1.len);

    if (name->len > 64) {
        while (ctx->s1.len && (name->data[ctx->s1.len] & 0xc0) == 0x80) {
            ctx->s1.len--;
        }
    }

    params[0] = r->connection->addr_text;
    params[1] = ctx->s1;

    if (ngx_http_tunnel_admin_number_param(r->pool, amcf->login_window,
                                           &params[2])
        != NGX_OK
        || ngx_http_tunnel_admin_number_param(r->pool, amcf->login_limit,
                                              &params[3])
           != NGX_OK
        || ngx_http_tunnel_admin_number_param(r->pool, amcf->login_addr_limit,
                                              &params[4])
           != NGX_OK
        || ngx_http_tunnel_admin_number_param(r->pool, amcf->login_user_limit,
                                              &params[5])
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    ctx->step = NGX_HTTP_TUNNEL_ADMIN_LOGIN_VERIFY;

    return ngx_http_tunnel_admin_query(r, ctx,
                                       ngx_http_tunnel_admin_login_sql,
                                       6, params);
}


static ngx_int_t
ngx_http_tunnel_admin_login_verify(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ngx_str_t   *password, s, hash;
    ngx_int_t    wait;
    const char  *msg;

    s = ngx_http_tunnel_admin_cell(ctx, 0, 0);

    if (s.len) {
        wait = ngx_atoi(s.data, s.len);
        if (wait == NGX_ERROR) {
            return NGX_ERROR;
        }

        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "tunnel: admin: sign-in as \"%V\" from %V refused: "
                      "too many failures, %i s to wait", &ctx->s1,
                      &r->connection->addr_text, wait);

        /* the whole minutes to wait, at least one */
        wait = (wait + 59) / 60;

        msg = ngx_http_tunnel_admin_sentence(r,
                  "Too many failed sign-ins.  Wait %i minute%s, then try "
                  "again, or ask an administrator to clear them.",
                  wait, wait == 1 ? "" : "s");
        if (msg == NULL) {
            return NGX_ERROR;
        }

        return ngx_http_tunnel_admin_form_error(r, ctx,
                   NGX_HTTP_TOO_MANY_REQUESTS, msg);
    }

    /* keep the user id and the disabled flag: the result goes away */
    if (ngx_http_tunnel_admin_cell_copy(r, ctx, 0, 1, &ctx->s2) != NGX_OK) {
        return NGX_ERROR;
    }

    ctx->s3.len = 0;
    if (ngx_http_tunnel_admin_cell_is(ctx, 0, 3, "t")) {
        ngx_str_set(&ctx->s3, "t");
    }

    hash = ngx_http_tunnel_admin_cell(ctx, 0, 2);
    password = ngx_http_tunnel_admin_field(ctx, "password");

    ctx->step = NGX_HTTP_TUNNEL_ADMIN_LOGIN_VERIFIED;

    /* the job copies the hash before the result is freed */
    return ngx_http_tunnel_admin_password_verify(r, ctx, password,
                                  (ctx->s2.len && hash.len) ? &hash : NULL);
}


static ngx_int_t
ngx_http_tunnel_admin_login_verified(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    if (ctx->s3.len) {
        return ngx_http_tunnel_admin_form_error(r, ctx, NGX_HTTP_FORBIDDEN,
                   "This account is disabled.  Ask an administrator.");
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "tunnel: admin: \"%V\" signed in from %V",
                  &ctx->s1, &r->connection->addr_text);

    ctx->user_name = ctx->s1;
    ctx->step = NGX_HTTP_TUNNEL_ADMIN_LOGIN_SIGNED_IN;
    ctx->audit_login = 1;

    return ngx_http_tunnel_admin_session_create(r, ctx, &ctx->s2);
}


ngx_int_t
ngx_http_tunnel_admin_logout_post(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ngx_str_t  params[2], empty;

    if (ctx->step == 0) {
        if (ngx_http_tunnel_admin_sha256_param(r->pool, &ctx->session_token,
                                               &params[0])
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        params[1] = r->connection->addr_text;
        ctx->step = 1;

        return ngx_http_tunnel_admin_query(r, ctx,
                                           ngx_http_tunnel_admin_logout_sql,
                                           2, params);
    }

    ngx_str_set(&empty, "");
    if (ngx_http_tunnel_admin_set_cookie(r,
                                         NGX_HTTP_TUNNEL_ADMIN_SESSION_COOKIE,
                                         &empty, 0)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_tunnel_admin_redirect(r, ctx, "/login");
}
