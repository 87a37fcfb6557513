
/*
 * Web sessions, cookies and CSRF tokens of the admin pages.
 *
 * A session cookie carries 256 random bits (base64url); PostgreSQL keeps only
 * their SHA-256 (sessions.token_hash), so a leaked table leaks no session.
 * Every request asks, in one statement, whether the install still needs its
 * setup (no administrator can sign in) and has any user, and whose valid
 * session the cookie is, pushing the idle expiry forward.
 *
 * CSRF: tunnel pages on sibling subdomains are same-site with the admin, so
 * SameSite=Lax does not stop them from posting here.  Signed-in forms carry
 * the session's csrf_secret (hex), compared in constant time.  Forms used
 * before signing in (setup, login, join) carry the value of a separate
 * random cookie (double submit): a sibling subdomain cannot plant a
 * "__Host-" cookie, so it cannot know or choose that value.
 *
 * A POST must also come from this site's own page where the browser says
 * where it comes from: Sec-Fetch-Site other than same-origin (or none), or
 * an Origin other than this Host, is refused before the token is looked
 * at.  (Our pages send "Referrer-Policy: no-referrer", so Chromium sends
 * "Origin: null" on their forms: null passes, the token still decides.)
 *
 * Cookies are host-only with the "__Host-" prefix, Secure, HttpOnly,
 * SameSite=Lax, Path=/.  Browsers keep Secure cookies over plain HTTP only
 * on localhost: elsewhere the admin must be served over HTTPS.
 */

#include "ngx_http_tunnel_admin_module.h"

#include <sys/random.h>
#include <openssl/sha.h>


static const char  ngx_http_tunnel_admin_session_sql[] =
    "WITH s AS ("
    "  UPDATE sessions SET last_seen_at = now(),"
    "         idle_expires_at = LEAST(expires_at,"
    "                                 now() + make_interval(secs => $2))"
    "   WHERE token_hash = $1::bytea"
    "     AND now() < expires_at AND now() < idle_expires_at"
    "  RETURNING user_id, csrf_secret)"
    " SELECT tunnel_admin_needs_setup(), u.id, u.name, u.is_admin,"
    "        encode(s.csrf_secret, 'hex'), EXISTS (SELECT 1 FROM users)"
    "   FROM (SELECT 1) AS one"
    "   LEFT JOIN (s JOIN users u ON u.id = s.user_id AND NOT u.disabled)"
    "     ON true";


static const char  ngx_http_tunnel_admin_session_create_sql[] =
    "WITH u AS ("
    "  UPDATE users SET last_login_at = now()"
    "   WHERE id = $1 AND NOT disabled RETURNING id, name),"
    " old AS ("
    "  DELETE FROM sessions WHERE user_id = $1"
    "     AND (expires_at < now() OR idle_expires_at < now())),"
    " fail AS ("
    "  DELETE FROM login_failures WHERE client_addr = $6"
    "     AND user_name IN (SELECT name FROM u)),"
    " audit AS ("
    "  INSERT INTO tunnel_events (event, actor_id, client_addr, user_id)"
    "  SELECT 'login', id, $6, id FROM u WHERE $8::boolean)"
    " INSERT INTO sessions (user_id, token_hash, csrf_secret, expires_at,"
    "                       idle_expires_at, client_addr, user_agent)"
    " SELECT u.id, $2::bytea, $3::bytea, now() + make_interval(secs => $4),"
    "        now() + make_interval(secs => $5), $6, $7"
    "   FROM u"
    " RETURNING encode(csrf_secret, 'hex')";


static ngx_int_t ngx_http_tunnel_admin_bytea_param(ngx_pool_t *pool,
    u_char *bytes, size_t len, ngx_str_t *param);
static ngx_int_t ngx_http_tunnel_admin_is_token(ngx_str_t *s, size_t bytes);
static ngx_int_t ngx_http_tunnel_admin_equal(ngx_str_t *a, ngx_str_t *b);
static ngx_int_t ngx_http_tunnel_admin_guest_token(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);


ngx_int_t
ngx_http_tunnel_admin_random(u_char *buf, size_t len)
{
    ssize_t  n;

    while (len) {
        n = getrandom(buf, len, 0);

        if (n == -1) {
            if (ngx_errno == NGX_EINTR) {
                continue;
            }

            return NGX_ERROR;
        }

        buf += n;
        len -= n;
    }

    return NGX_OK;
}


/* "bytes" random bytes as base64url without padding, in pool */
ngx_int_t
ngx_http_tunnel_admin_token(ngx_pool_t *pool, size_t bytes, ngx_str_t *token)
{
    u_char     raw[64];
    ngx_str_t  src;

    if (bytes > sizeof(raw) || ngx_http_tunnel_admin_random(raw, bytes)
                               != NGX_OK)
    {
        return NGX_ERROR;
    }

    token->data = ngx_pnalloc(pool, ngx_base64_encoded_length(bytes));
    if (token->data == NULL) {
        return NGX_ERROR;
    }

    src.data = raw;
    src.len = bytes;
    ngx_encode_base64url(token, &src);

    ngx_explicit_memzero(raw, sizeof(raw));

    return NGX_OK;
}


/* 1 if s is base64url text (RFC 4648 section 5), padding excluded */
ngx_int_t
ngx_http_tunnel_admin_is_base64url(ngx_str_t *s)
{
    size_t  i;
    u_char  c;

    for (i = 0; i < s->len; i++) {
        c = s->data[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '-' || c == '_'))
        {
            return 0;
        }
    }

    return 1;
}


/* bytes as a bytea text parameter: "\x" and two hex digits a byte */
static ngx_int_t
ngx_http_tunnel_admin_bytea_param(ngx_pool_t *pool, u_char *bytes,
    size_t len, ngx_str_t *param)
{
    param->data = ngx_pnalloc(pool, 2 + 2 * len);
    if (param->data == NULL) {
        return NGX_ERROR;
    }

    param->data[0] = '\\';
    param->data[1] = 'x';
    param->len = ngx_hex_dump(param->data + 2, bytes, len) - param->data;

    return NGX_OK;
}


/* SHA-256 of "in" as a bytea text parameter */
ngx_int_t
ngx_http_tunnel_admin_sha256_param(ngx_pool_t *pool, ngx_str_t *in,
    ngx_str_t *param)
{
    u_char  md[SHA256_DIGEST_LENGTH];

    SHA256(in->data, in->len, md);

    return ngx_http_tunnel_admin_bytea_param(pool, md, sizeof(md), param);
}


/*
 * The token of a one-time link (/join/<token>, /password/<token>) in
 * ctx->arg as a bytea parameter (its SHA-256); NGX_DECLINED if it cannot
 * be one of ours (length, alphabet).
 */
ngx_int_t
ngx_http_tunnel_admin_link_token(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_str_t *param)
{
    if (ctx->arg.len < 16 || ctx->arg.len > 128
        || !ngx_http_tunnel_admin_is_base64url(&ctx->arg))
    {
        return NGX_DECLINED;
    }

    return ngx_http_tunnel_admin_sha256_param(r->pool, &ctx->arg, param);
}


ngx_int_t
ngx_http_tunnel_admin_set_cookie(ngx_http_request_t *r, const char *name,
    ngx_str_t *value, time_t max_age)
{
    size_t            len;
    ngx_table_elt_t  *h;

    len = ngx_strlen(name) + 1 + value->len
          + sizeof("; Path=/; Max-Age=") - 1 + NGX_TIME_T_LEN
          + sizeof("; Secure; HttpOnly; SameSite=Lax") - 1;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->value.data = ngx_pnalloc(r->pool, len);
    if (h->value.data == NULL) {
        return NGX_ERROR;
    }

    h->value.len = ngx_sprintf(h->value.data,
                               "%s=%V; Path=/; Max-Age=%T; Secure; "
                               "HttpOnly; SameSite=Lax",
                               name, value, max_age)
                   - h->value.data;

    h->hash = 1;
    ngx_str_set(&h->key, "Set-Cookie");

    return NGX_OK;
}


ngx_int_t
ngx_http_tunnel_admin_session_query(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ngx_str_t                           params[2];
    ngx_http_tunnel_admin_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_tunnel_admin_module);

    ngx_str_null(&params[0]);

    if (ngx_http_tunnel_admin_is_token(&ctx->session_token,
                                       NGX_HTTP_TUNNEL_ADMIN_TOKEN_BYTES))
    {
        if (ngx_http_tunnel_admin_sha256_param(r->pool, &ctx->session_token,
                                               &params[0])
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ngx_http_tunnel_admin_number_param(r->pool, amcf->session_idle,
                                           &params[1])
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_tunnel_admin_query(r, ctx,
                                       ngx_http_tunnel_admin_session_sql,
                                       2, params);
}


ngx_int_t
ngx_http_tunnel_admin_session_result(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ngx_str_t   s;
    ngx_uint_t  access;

    if (ctx->res == NULL || PQntuples(ctx->res) != 1) {
        return NGX_ERROR;
    }

    ctx->needs_setup = ngx_http_tunnel_admin_cell_is(ctx, 0, 0, "t");
    ctx->any_users = ngx_http_tunnel_admin_cell_is(ctx, 0, 5, "t");

    s = ngx_http_tunnel_admin_cell(ctx, 0, 1);

    if (s.len) {
        ctx->logged_in = 1;
        ctx->user_id = ngx_atoof(s.data, s.len);
        ctx->is_admin = ngx_http_tunnel_admin_cell_is(ctx, 0, 3, "t");

        if (ngx_http_tunnel_admin_cell_copy(r, ctx, 0, 1, &ctx->user_id_text)
            != NGX_OK
            || ngx_http_tunnel_admin_cell_copy(r, ctx, 0, 2, &ctx->user_name)
               != NGX_OK
            || ngx_http_tunnel_admin_cell_copy(r, ctx, 0, 4, &ctx->csrf)
               != NGX_OK)
        {
            return NGX_ERROR;
        }

    } else if (ctx->session_token.len) {
        /* expired, revoked or made up: let the browser forget it */
        ngx_str_set(&s, "");
        if (ngx_http_tunnel_admin_set_cookie(r,
                                        NGX_HTTP_TUNNEL_ADMIN_SESSION_COOKIE,
                                        &s, 0)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    access = ctx->route->access;

    if (access == NGX_HTTP_TUNNEL_ADMIN_GUEST
        || access == NGX_HTTP_TUNNEL_ADMIN_SETUP)
    {
        return ngx_http_tunnel_admin_guest_token(r, ctx);
    }

    return NGX_OK;
}


/*
 * The double-submit token of forms used before signing in: the cookie's
 * value if it has the right shape, else a new one.  A POST never gets a new
 * one here (it would then match nothing and be refused, as it should).
 */
static ngx_int_t
ngx_http_tunnel_admin_guest_token(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    if (ngx_http_tunnel_admin_is_token(&ctx->csrf_cookie,
                                       NGX_HTTP_TUNNEL_ADMIN_TOKEN_BYTES))
    {
        ctx->guest_csrf = ctx->csrf_cookie;
        return NGX_OK;
    }

    if (ctx->post) {
        return NGX_OK;
    }

    if (ngx_http_tunnel_admin_token(r->pool,
                                    NGX_HTTP_TUNNEL_ADMIN_TOKEN_BYTES,
                                    &ctx->guest_csrf)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* lives as long as a browser session would keep the form open */
    return ngx_http_tunnel_admin_set_cookie(r,
                                            NGX_HTTP_TUNNEL_ADMIN_CSRF_COOKIE,
                                            &ctx->guest_csrf, 12 * 3600);
}


ngx_int_t
ngx_http_tunnel_admin_csrf_ok(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ngx_str_t  *sent;

    sent = ngx_http_tunnel_admin_field(ctx, "csrf");

    if (sent == NULL || ctx->csrf.len != NGX_HTTP_TUNNEL_ADMIN_SHA256_HEX) {
        return NGX_DECLINED;
    }

    return ngx_http_tunnel_admin_equal(sent, &ctx->csrf);
}


static ngx_table_elt_t *
ngx_http_tunnel_admin_header_in(ngx_http_request_t *r, const char *name)
{
    size_t            len;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    len = ngx_strlen(name);
    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == len
            && ngx_strncasecmp(h[i].key.data, (u_char *) name, len) == 0)
        {
            return &h[i];
        }
    }
}


/*
 * NGX_OK unless the browser says the POST comes from another page than
 * ours (a tunnel page on a sibling host, another site).
 */
ngx_int_t
ngx_http_tunnel_admin_same_origin(ngx_http_request_t *r)
{
    u_char           *p, *last;
    ngx_str_t         host;
    ngx_table_elt_t  *h;

    h = ngx_http_tunnel_admin_header_in(r, "Sec-Fetch-Site");

    if (h && !(h->value.len == 11
               && ngx_strncasecmp(h->value.data, (u_char *) "same-origin",
                                  11) == 0)
        && !(h->value.len == 4
             && ngx_strncasecmp(h->value.data, (u_char *) "none", 4) == 0))
    {
        return NGX_DECLINED;
    }

    h = ngx_http_tunnel_admin_header_in(r, "Origin");

    if (h == NULL
        || (h->value.len == 4
            && ngx_strncmp(h->value.data, "null", 4) == 0))
    {
        return NGX_OK;
    }

    /* scheme://host[:port]: the host part must be the request's Host */
    p = ngx_strlcasestrn(h->value.data, h->value.data + h->value.len,
                         (u_char *) "://", 3 - 1);
    if (p == NULL || r->headers_in.host == NULL) {
        return NGX_DECLINED;
    }

    p += 3;
    last = h->value.data + h->value.len;
    host = r->headers_in.host->value;

    if ((size_t) (last - p) != host.len
        || ngx_strncasecmp(p, host.data, host.len) != 0)
    {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_tunnel_admin_guest_csrf(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ngx_str_t  *sent;

    sent = ngx_http_tunnel_admin_field(ctx, "csrf");

    if (sent == NULL || ctx->guest_csrf.len == 0) {
        return NGX_DECLINED;
    }

    return ngx_http_tunnel_admin_equal(sent, &ctx->guest_csrf);
}


/*
 * Signs user_id in: a new session row, its cookie, and the session's CSRF
 * token in ctx->csrf once ngx_http_tunnel_admin_session_created() has seen
 * the result.  A disabled user gets no row (and the caller a zero-row
 * result).
 */
ngx_int_t
ngx_http_tunnel_admin_session_create(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_str_t *user_id)
{
    u_char                              csrf[NGX_HTTP_TUNNEL_ADMIN_TOKEN_BYTES];
    ngx_str_t                           token, params[8];
    ngx_http_tunnel_admin_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_tunnel_admin_module);

    if (ngx_http_tunnel_admin_token(r->pool,
                                    NGX_HTTP_TUNNEL_ADMIN_TOKEN_BYTES, &token)
        != NGX_OK
        || ngx_http_tunnel_admin_random(csrf, sizeof(csrf)) != NGX_OK)
    {
        return NGX_ERROR;
    }

    params[0] = *user_id;

    if (ngx_http_tunnel_admin_sha256_param(r->pool, &token, &params[1])
        != NGX_OK
        || ngx_http_tunnel_admin_bytea_param(r->pool, csrf, sizeof(csrf),
                                             &params[2])
           != NGX_OK
        || ngx_http_tunnel_admin_number_param(r->pool, amcf->session_lifetime,
                                              &params[3])
           != NGX_OK
        || ngx_http_tunnel_admin_number_param(r->pool, amcf->session_idle,
                                              &params[4])
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    params[5] = r->connection->addr_text;

    if (r->headers_in.user_agent) {
        params[6] = r->headers_in.user_agent->value;
        if (params[6].len > 512) {
            params[6].len = 512;
        }

        /* the header may end inside a multi-byte character now: cut back */
        while (params[6].len && (params[6].data[params[6].len - 1] & 0x80)) {
            params[6].len--;
        }

    } else {
        ngx_str_null(&params[6]);
    }

    if (ngx_http_tunnel_admin_set_cookie(r,
                                         NGX_HTTP_TUNNEL_ADMIN_SESSION_COOKIE,
                                         &token, amcf->session_lifetime)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* /login leaves a "login" row; setup, join and links leave their own */
    ngx_http_tunnel_admin_bool_param(&params[7], ctx->audit_login);

    return ngx_http_tunnel_admin_query(r, ctx,
                                       ngx_http_tunnel_admin_session_create_sql,
                                       8, params);
}


/* NGX_OK: signed in; NGX_DECLINED: the user is disabled or gone */
ngx_int_t
ngx_http_tunnel_admin_session_created(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    if (ctx->res == NULL || PQntuples(ctx->res) != 1) {
        return NGX_DECLINED;
    }

    if (ngx_http_tunnel_admin_cell_copy(r, ctx, 0, 0, &ctx->csrf) != NGX_OK) {
        return NGX_ERROR;
    }

    ctx->logged_in = 1;

    return NGX_OK;
}


/* a token of ours: base64url of "bytes" random bytes, unpadded */
/*
 * Signs in the account a form has just created (setup, join): ctx->s1 is
 * its name.  The next step is ngx_http_tunnel_admin_welcome().
 */
ngx_int_t
ngx_http_tunnel_admin_sign_in_new(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_str_t *user_id)
{
    ctx->user_name = ctx->s1;

    /* the query copies user_id before the result holding it goes away */
    return ngx_http_tunnel_admin_session_create(r, ctx, user_id);
}


/* the new account is signed in: to the start page, which welcomes it */
ngx_int_t
ngx_http_tunnel_admin_welcome(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ngx_int_t  rc;

    rc = ngx_http_tunnel_admin_session_created(r, ctx);
    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    /* NGX_DECLINED: disabled or removed meanwhile; /login will say so */
    return ngx_http_tunnel_admin_redirect(r, ctx, rc == NGX_OK
                                                  ? "/?done=welcome"
                                                  : "/login");
}


static ngx_int_t
ngx_http_tunnel_admin_is_token(ngx_str_t *s, size_t bytes)
{
    if (s->len != ngx_base64_encoded_length(bytes) - (bytes % 3 ? 3 - bytes % 3
                                                                : 0))
    {
        return 0;
    }

    return ngx_http_tunnel_admin_is_base64url(s);
}


/* constant time for equal lengths */
static ngx_int_t
ngx_http_tunnel_admin_equal(ngx_str_t *a, ngx_str_t *b)
{
    size_t  i;
    u_char  d;

    if (a->len != b->len) {
        return NGX_DECLINED;
    }

    d = 0;

    for (i = 0; i < a->len; i++) {
        d |= a->data[i] ^ b->data[i];
    }

    return d == 0 ? NGX_OK : NGX_DECLINED;
}
