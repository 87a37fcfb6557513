
/*
 * /activate and /admin/activations: the web side of the device flow
 * (issue 10, after RFC 8628).  ssh on a new machine printed a code such as
 * WDJB-MJHT for a key tunneld has verified but does not know; a signed-in
 * user opens /activate?code=WDJB-MJHT (a sign-in comes back here, code
 * kept: login.c), sees what the code is for and approves it (the key joins
 * their keys, tunneld lets the waiting session in) or denies it.
 * Administrators list every pending code on /admin/activations and deny
 * any of them.
 *
 * Looking a code up is a GET (/activate?code=...): it changes nothing but
 * the wrong-code count, so the link ssh prints shows the key at once.
 * Approving and denying are POSTs with the session's CSRF token.
 *
 * Codes are guessable in principle (20^8), so wrong entries are limited:
 * a code that is well formed but unknown is a failure
 * (tunnel_activation_note_failure), and with more than
 * NGX_HTTP_TUNNEL_ADMIN_ACTIVATE_LIMIT failures in the last
 * NGX_HTTP_TUNNEL_ADMIN_ACTIVATE_WINDOW seconds from the client address or
 * the web session, /activate answers 429 without looking codes up.  A
 * malformed code (a vowel, a digit, 7 letters) is refused before any
 * lookup and not counted: it cannot match anything.
 *
 * Everything is in sql/005_activation.sql: tunnel_activation_lookup(),
 * _decide() (adds the key, NOTIFY tunnel_activation), _note_failure(),
 * _failures().  Only the SHA-256 of a code's 8 letters travels to the
 * database (common/tnl_code.c folds what was typed).
 */

#include "ngx_http_tunnel_admin_module.h"

#include "tnl_code.h"


#define NGX_HTTP_TUNNEL_ADMIN_ACTIVATE_LIMIT   5     /* failures, more: 429 */
#define NGX_HTTP_TUNNEL_ADMIN_ACTIVATE_WINDOW  60    /* seconds */


/* steps of /activate (GET: look up; POST: decide) */
typedef enum {
    NGX_HTTP_TUNNEL_ADMIN_ACT_START = 0,     /* read the code, count */
    NGX_HTTP_TUNNEL_ADMIN_ACT_COUNTED,       /* limit, then look up/decide */
    NGX_HTTP_TUNNEL_ADMIN_ACT_ANSWERED,      /* the lookup or the decision */
    NGX_HTTP_TUNNEL_ADMIN_ACT_AUDITED,       /* decision recorded */
    NGX_HTTP_TUNNEL_ADMIN_ACT_NOTED          /* an unknown code counted */
} ngx_http_tunnel_admin_act_step_e;


/* the session's row, for the per-session count ($2: sha256 of the cookie) */
#define NGX_HTTP_TUNNEL_ADMIN_ACT_SESSION                                    \
    "(SELECT id FROM sessions WHERE token_hash = $2::bytea)"

static const char  ngx_http_tunnel_admin_act_failures_sql[] =
    "SELECT r_by_addr, r_by_session, r_retry_after"
    "  FROM tunnel_activation_failures($1, "
    NGX_HTTP_TUNNEL_ADMIN_ACT_SESSION ", $3)";

static const char  ngx_http_tunnel_admin_act_note_sql[] =
    "SELECT tunnel_activation_note_failure($1, "
    NGX_HTTP_TUNNEL_ADMIN_ACT_SESSION ")";

/* times in UTC, with how long ago / how long to go in seconds */
static const char  ngx_http_tunnel_admin_act_lookup_sql[] =
    "SELECT r_status, r_id, r_fingerprint, r_key_type, r_client_addr,"
    "       r_requested_name,"
    "       to_char(r_created_at AT TIME ZONE 'UTC',"
    "               'YYYY-MM-DD HH24:MI:SS'),"
    "       to_char(r_expires_at AT TIME ZONE 'UTC',"
    "               'YYYY-MM-DD HH24:MI:SS'),"
    "       greatest(0, floor(extract(epoch FROM now() - r_created_at)))"
    "           ::integer,"
    "       greatest(0, ceil(extract(epoch FROM r_expires_at - now())))"
    "           ::integer"
    "  FROM tunnel_activation_lookup($1::bytea)";

static const char  ngx_http_tunnel_admin_act_decide_sql[] =
    "SELECT r_status, r_id, r_fingerprint"
    "  FROM tunnel_activation_decide($1::bytea, $2, $3, $4)";

/* an administrator denies by row id: the row's hash is the code */
static const char  ngx_http_tunnel_admin_act_deny_id_sql[] =
    "SELECT r_status, r_id, r_fingerprint"
    "  FROM tunnel_activation_decide("
    "         (SELECT user_code_hash FROM activation_codes WHERE id = $1),"
    "         $2, false, $3)";

static const char  ngx_http_tunnel_admin_act_pending_sql[] =
    "SELECT id, key_type, fingerprint, coalesce(client_addr, '?'),"
    "       to_char(created_at AT TIME ZONE 'UTC', 'HH24:MI'),"
    "       to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'),"
    "       greatest(0, ceil(extract(epoch FROM expires_at - now())))"
    "           ::integer,"
    "       requested_name"
    "  FROM activation_codes"
    " WHERE approved_at IS NULL AND denied_at IS NULL AND expires_at > now()"
    " ORDER BY created_at, id";


static ngx_int_t ngx_http_tunnel_admin_act_code(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_str_t *shown, ngx_str_t *hash,
    const char **err);
static ngx_int_t ngx_http_tunnel_admin_act_count(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
static ngx_int_t ngx_http_tunnel_admin_act_over(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
static ngx_int_t ngx_http_tunnel_admin_act_note(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
static ngx_int_t ngx_http_tunnel_admin_act_session_param(
    ngx_http_request_t *r, ngx_http_tunnel_admin_ctx_t *ctx,
    ngx_str_t *param);
static ngx_int_t ngx_http_tunnel_admin_act_form(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
static ngx_int_t ngx_http_tunnel_admin_act_show(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_str_t *shown);
static ngx_int_t ngx_http_tunnel_admin_act_decided(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
static ngx_int_t ngx_http_tunnel_admin_act_result(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_str_t *shown);
static ngx_int_t ngx_http_tunnel_admin_act_unknown(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
static ngx_uint_t ngx_http_tunnel_admin_act_same_host(ngx_str_t *client,
    ngx_str_t *browser);
static void ngx_http_tunnel_admin_act_span(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_str_t *secs, const char *before,
    const char *after);


/*
 * A lookup counts towards the wrong-code limit, so it only happens when the
 * person asked for it: a URL typed, pasted or opened from outside the
 * browser (Sec-Fetch-Site: none, as from ssh's output) or our own form
 * (same-origin).  A page on a tunnel host (same-site: tunnel subdomains
 * share the site with this host, and SameSite cookies go along) or
 * anywhere else (cross-site) could otherwise make a signed-in browser use
 * up the limit and lock its owner out of /activate; it gets the form,
 * filled in, and one click looks the code up.  Browsers that send no such
 * header are let through.
 */
static ngx_uint_t
ngx_http_tunnel_admin_act_asked(ngx_http_request_t *r)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return 1;
            }
            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == sizeof("Sec-Fetch-Site") - 1
            && ngx_strncasecmp(h[i].key.data, (u_char *) "Sec-Fetch-Site",
                               sizeof("Sec-Fetch-Site") - 1) == 0)
        {
            return (h[i].value.len == 4
                    && ngx_strncmp(h[i].value.data, "none", 4) == 0)
                   || (h[i].value.len == 11
                       && ngx_strncmp(h[i].value.data, "same-origin", 11)
                          == 0);
        }
    }
}


/* GET /activate: the form, or what the code in ?code= is for */
ngx_int_t
ngx_http_tunnel_admin_activate_get(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ngx_int_t    rc;
    ngx_str_t    shown, hash;
    const char  *err;

    if (ctx->render) {
        /* a form sent back with ctx->msg, from either method */
        return ngx_http_tunnel_admin_act_form(r, ctx);
    }

    switch (ctx->step) {

    case NGX_HTTP_TUNNEL_ADMIN_ACT_START:
        if (!ngx_http_tunnel_admin_act_asked(r)) {
            return ngx_http_tunnel_admin_act_form(r, ctx);
        }

        rc = ngx_http_tunnel_admin_act_code(r, ctx, &shown, &hash, &err);

        if (rc == NGX_DECLINED) {
            return ngx_http_tunnel_admin_act_form(r, ctx);
        }

        if (rc != NGX_OK) {
            return err ? ngx_http_tunnel_admin_form_error(r, ctx,
                             NGX_HTTP_TUNNEL_ADMIN_INVALID, err)
                       : NGX_ERROR;
        }

        ctx->step = NGX_HTTP_TUNNEL_ADMIN_ACT_COUNTED;
        return ngx_http_tunnel_admin_act_count(r, ctx);

    case NGX_HTTP_TUNNEL_ADMIN_ACT_COUNTED:
        if (ngx_http_tunnel_admin_act_over(r, ctx) == NGX_OK) {
            return NGX_HTTP_TUNNEL_ADMIN_READY;
        }

        if (ngx_http_tunnel_admin_act_code(r, ctx, &shown, &hash, &err)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        ctx->step = NGX_HTTP_TUNNEL_ADMIN_ACT_ANSWERED;
        return ngx_http_tunnel_admin_query(r, ctx,
                                      ngx_http_tunnel_admin_act_lookup_sql,
                                      1, &hash);

    case NGX_HTTP_TUNNEL_ADMIN_ACT_ANSWERED:
        if (ngx_http_tunnel_admin_act_code(r, ctx, &shown, &hash, &err)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (ngx_http_tunnel_admin_cell_is(ctx, 0, 0, "unknown")) {
            ctx->step = NGX_HTTP_TUNNEL_ADMIN_ACT_NOTED;
            return ngx_http_tunnel_admin_act_note(r, ctx);
        }

        return ngx_http_tunnel_admin_act_show(r, ctx, &shown);

    default: /* NGX_HTTP_TUNNEL_ADMIN_ACT_NOTED */
        return ngx_http_tunnel_admin_act_unknown(r, ctx);
    }
}


/* POST /activate: action=approve|deny, code, csrf */
ngx_int_t
ngx_http_tunnel_admin_activate_post(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ngx_int_t    rc;
    ngx_str_t    shown, hash, params[4];
    ngx_uint_t   approve;
    const char  *err;

    approve = ngx_http_tunnel_admin_field_is(ctx, "action", "approve");

    switch (ctx->step) {

    case NGX_HTTP_TUNNEL_ADMIN_ACT_START:
        if (!approve && !ngx_http_tunnel_admin_field_is(ctx, "action", "deny"))
        {
            return ngx_http_tunnel_admin_form_error(r, ctx,
                       NGX_HTTP_TUNNEL_ADMIN_INVALID,
                       "Choose Approve or Deny.");
        }

        rc = ngx_http_tunnel_admin_act_code(r, ctx, &shown, &hash, &err);

        if (rc == NGX_ERROR && err == NULL) {
            return NGX_ERROR;
        }

        if (rc != NGX_OK) {
            return ngx_http_tunnel_admin_form_error(r, ctx,
                       NGX_HTTP_TUNNEL_ADMIN_INVALID,
                       err ? err : "Type the code your terminal shows.");
        }

        ctx->step = NGX_HTTP_TUNNEL_ADMIN_ACT_COUNTED;
        return ngx_http_tunnel_admin_act_count(r, ctx);

    case NGX_HTTP_TUNNEL_ADMIN_ACT_COUNTED:
        if (ngx_http_tunnel_admin_act_over(r, ctx) == NGX_OK) {
            return NGX_HTTP_TUNNEL_ADMIN_READY;
        }

        if (ngx_http_tunnel_admin_act_code(r, ctx, &shown, &hash, &err)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        params[0] = hash;
        params[1] = ctx->user_id_text;
        ngx_http_tunnel_admin_bool_param(&params[2], approve);
        params[3] = r->connection->addr_text;

        ctx->step = NGX_HTTP_TUNNEL_ADMIN_ACT_ANSWERED;
        return ngx_http_tunnel_admin_query(r, ctx,
                                      ngx_http_tunnel_admin_act_decide_sql,
                                      4, params);

    case NGX_HTTP_TUNNEL_ADMIN_ACT_ANSWERED:
        ctx->step = NGX_HTTP_TUNNEL_ADMIN_ACT_AUDITED;

        rc = ngx_http_tunnel_admin_act_decided(r, ctx);
        if (rc != NGX_DECLINED) {
            return rc;
        }

        /* fall through */

    case NGX_HTTP_TUNNEL_ADMIN_ACT_AUDITED:
        if (ngx_http_tunnel_admin_act_code(r, ctx, &shown, &hash, &err)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (ctx->s1.len == sizeof("unknown") - 1
            && ngx_strncmp(ctx->s1.data, "unknown", ctx->s1.len) == 0)
        {
            ctx->step = NGX_HTTP_TUNNEL_ADMIN_ACT_NOTED;
            return ngx_http_tunnel_admin_act_note(r, ctx);
        }

        return ngx_http_tunnel_admin_act_result(r, ctx, &shown);

    default: /* NGX_HTTP_TUNNEL_ADMIN_ACT_NOTED */
        return ngx_http_tunnel_admin_act_unknown(r, ctx);
    }
}


/*
 * The code of this request: the "code" field of a POST, else ?code=
 * (percent-decoded, '+' as a space).  NGX_OK with shown (XXXX-XXXX) and
 * hash (a bytea parameter), NGX_DECLINED when there is no code at all,
 * NGX_ERROR with *err set for a malformed code (NULL: out of memory).
 */
static ngx_int_t
ngx_http_tunnel_admin_act_code(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_str_t *shown, ngx_str_t *hash,
    const char **err)
{
    char        code[TNL_CODE_LEN + 1];
    u_char     *src, *dst, *p;
    ngx_str_t  *field, text, letters;

    *err = NULL;

    if (ctx->post) {
        field = ngx_http_tunnel_admin_field(ctx, "code");
        if (field == NULL) {
            return NGX_DECLINED;
        }

        text = *field;

    } else {
        if (ngx_http_tunnel_admin_arg(r, "code", &text) != NGX_OK) {
            return NGX_DECLINED;
        }

        p = ngx_pnalloc(r->pool, text.len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        for (src = text.data, dst = p; src < text.data + text.len; src++) {
            *dst++ = (*src == '+') ? ' ' : *src;
        }

        src = p;
        dst = p;
        ngx_unescape_uri(&dst, &src, text.len, 0);
        text.data = p;
        text.len = dst - p;
    }

    ngx_http_tunnel_admin_trim(&text);

    if (text.len == 0) {
        return NGX_DECLINED;
    }

    if (tnl_code_normalize((char *) text.data, text.len, code, err) != 0) {
        return NGX_ERROR;
    }

    shown->data = ngx_pnalloc(r->pool, TNL_CODE_SHOWN + 1);
    if (shown->data == NULL) {
        return NGX_ERROR;
    }

    tnl_code_show(code, (char *) shown->data);
    shown->len = TNL_CODE_SHOWN;

    letters.data = (u_char *) code;
    letters.len = TNL_CODE_LEN;

    return ngx_http_tunnel_admin_sha256_param(r->pool, &letters, hash);
}


/* $2 of the count queries: sha256 of the session cookie, as sessions has */
static ngx_int_t
ngx_http_tunnel_admin_act_session_param(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_str_t *param)
{
    return ngx_http_tunnel_admin_sha256_param(r->pool, &ctx->session_token,
                                              param);
}


/* asks how many wrong codes this address and this session sent lately */
static ngx_int_t
ngx_http_tunnel_admin_act_count(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ngx_str_t  params[3];

    params[0] = r->connection->addr_text;

    if (ngx_http_tunnel_admin_act_session_param(r, ctx, &params[1]) != NGX_OK
        || ngx_http_tunnel_admin_number_param(r->pool,
                                     NGX_HTTP_TUNNEL_ADMIN_ACTIVATE_WINDOW,
                                     &params[2])
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_tunnel_admin_query(r, ctx,
                                       ngx_http_tunnel_admin_act_failures_sql,
                                       3, params);
}


/*
 * Over the limit: composes the 429 page and returns NGX_OK; else
 * NGX_DECLINED (go on).
 */
static ngx_int_t
ngx_http_tunnel_admin_act_over(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ngx_int_t         by_addr, by_session, wait;
    ngx_str_t         s;
    const char       *text;
    ngx_table_elt_t  *h;

    s = ngx_http_tunnel_admin_cell(ctx, 0, 0);
    by_addr = ngx_atoi(s.data, s.len);
    s = ngx_http_tunnel_admin_cell(ctx, 0, 1);
    by_session = ngx_atoi(s.data, s.len);
    s = ngx_http_tunnel_admin_cell(ctx, 0, 2);
    wait = ngx_atoi(s.data, s.len);

    if (by_addr <= NGX_HTTP_TUNNEL_ADMIN_ACTIVATE_LIMIT
        && by_session <= NGX_HTTP_TUNNEL_ADMIN_ACTIVATE_LIMIT)
    {
        return NGX_DECLINED;
    }

    if (wait < 1) {
        wait = 1;
    }

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "tunnel: admin: activation code refused for \"%V\" from "
                  "%V: too many wrong codes (%i by address, %i by session)",
                  &ctx->user_name, &r->connection->addr_text, by_addr,
                  by_session);

    text = ngx_http_tunnel_admin_sentence(r,
               "Too many attempts: wait %i s, then type the code again.  "
               "Codes are short, so only a few wrong ones are accepted a "
               "minute.", wait);
    if (text == NULL) {
        return NGX_ERROR;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Retry-After");
    h->value.data = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
    if (h->value.data == NULL) {
        return NGX_ERROR;
    }

    h->value.len = ngx_sprintf(h->value.data, "%i", wait) - h->value.data;

    ngx_http_tunnel_admin_message(r, ctx, NGX_HTTP_TOO_MANY_REQUESTS,
                                  "Too many attempts", text, "/activate",
                                  "Back to the code form");
    return NGX_OK;
}


/* counts a well-formed code that matched nothing */
static ngx_int_t
ngx_http_tunnel_admin_act_note(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ngx_str_t  params[2];

    ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                  "tunnel: admin: \"%V\" sent an unknown activation code "
                  "from %V", &ctx->user_name, &r->connection->addr_text);

    params[0] = r->connection->addr_text;

    if (ngx_http_tunnel_admin_act_session_param(r, ctx, &params[1])
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_tunnel_admin_query(r, ctx,
                                       ngx_http_tunnel_admin_act_note_sql,
                                       2, params);
}


static ngx_int_t
ngx_http_tunnel_admin_act_unknown(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    return ngx_http_tunnel_admin_form_error(r, ctx, NGX_HTTP_NOT_FOUND,
               "No machine is waiting with this code.  Check it against "
               "your terminal (it expires after a few minutes: run the ssh "
               "command again for a new one).");
}


/* the code form (with ctx->msg if a code was wrong) */
static ngx_int_t
ngx_http_tunnel_admin_act_form(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ngx_str_t   shown, hash, *typed;
    const char  *err;

    ngx_http_tunnel_admin_page_start(r, ctx, "Activate a new machine");
    ngx_http_tunnel_admin_flash(r, ctx);

    ngx_http_tunnel_admin_put(r, ctx,
        "<div class=\"card\">\n"
        "<p>New machine?  Run the ssh command there with its key: ssh "
        "prints a code such as <code>WDJB-MJHT</code> and waits.  Type the "
        "code here to see the key and approve it; the key becomes yours "
        "and the ssh command goes on.</p>\n"
        "<form method=\"get\" action=\"/activate\">\n"
        "<label for=\"f-code\">Code</label>\n"
        "<input id=\"f-code\" name=\"code\" type=\"text\" "
        "autocomplete=\"off\" autocapitalize=\"characters\" "
        "spellcheck=\"false\" placeholder=\"XXXX-XXXX\"");

    /* what was typed: the code as XXXX-XXXX if it is one, else the text */
    ngx_str_null(&shown);
    typed = NULL;

    if (ngx_http_tunnel_admin_act_code(r, ctx, &shown, &hash, &err)
        != NGX_OK)
    {
        ngx_str_null(&shown);

        if (ctx->post) {
            typed = ngx_http_tunnel_admin_field(ctx, "code");

        } else if (ngx_http_tunnel_admin_arg(r, "code", &hash) == NGX_OK) {
            typed = &hash;      /* raw: shown escaped, never decoded */
        }
    }

    if (shown.len || (typed && typed->len)) {
        ngx_http_tunnel_admin_put(r, ctx, " value=\"");
        ngx_http_tunnel_admin_esc(r, ctx, shown.len ? &shown : typed);
        ngx_http_tunnel_admin_put(r, ctx, "\"");
    }

    ngx_http_tunnel_admin_put(r, ctx,
        ">\n<p class=\"hint\">8 letters; upper or lower case, the dash is "
        "optional.</p>\n"
        "<div class=\"actions\"><button type=\"submit\">Continue</button>"
        "</div>\n</form>\n</div>\n");

    if (ctx->is_admin) {
        ngx_http_tunnel_admin_put(r, ctx,
            "<p class=\"muted\">Administrators: "
            "<a href=\"/admin/activations\">pending codes</a> of every "
            "machine waiting.</p>\n");
    }

    ngx_http_tunnel_admin_page_end(r, ctx);

    return NGX_HTTP_TUNNEL_ADMIN_READY;
}


/* 127.0.0.0/8, ::1 or ::ffff:127.x.y.z: this machine */
static ngx_uint_t
ngx_http_tunnel_admin_act_loopback(u_char *host, size_t len)
{
    return (len > 4 && ngx_strncmp(host, "127.", 4) == 0)
           || (len == 3 && ngx_strncmp(host, "::1", 3) == 0)
           || (len > 11 && ngx_strncasecmp(host, (u_char *) "::ffff:127.",
                                           11) == 0);
}


/*
 * Does the ssh client's "ADDR:PORT" (tunneld writes "[V6]:PORT" for IPv6)
 * name the host of the browser's address?  Two loopback addresses are
 * the same machine (a browser on ::1, ssh on 127.0.0.1: `make run`).
 */
static ngx_uint_t
ngx_http_tunnel_admin_act_same_host(ngx_str_t *client, ngx_str_t *browser)
{
    u_char  *p, *host;
    size_t   len;

    p = ngx_strlchr(client->data, client->data + client->len, ']');

    if (client->len > 0 && client->data[0] == '[' && p != NULL) {
        host = client->data + 1;
        len = p - host;

    } else {
        host = client->data;
        len = client->len;

        for (p = client->data + client->len; p > client->data; p--) {
            if (p[-1] == ':') {
                len = p - 1 - client->data;
                break;
            }
        }
    }

    if (ngx_http_tunnel_admin_act_loopback(host, len)
        && ngx_http_tunnel_admin_act_loopback(browser->data, browser->len))
    {
        return 1;
    }

    return len == browser->len && len > 0
           && ngx_strncasecmp(host, browser->data, len) == 0;
}


/* a span of seconds: "3 min ago", "in 40 s" (before, after) */
static void
ngx_http_tunnel_admin_act_span(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_str_t *secs, const char *before,
    const char *after)
{
    ngx_int_t  n;

    n = ngx_atoi(secs->data, secs->len);

    if (n == NGX_ERROR) {
        return;
    }

    if (n < 60) {
        ngx_http_tunnel_admin_printf(r, ctx, "%s%i s%s", before, n, after);

    } else {
        ngx_http_tunnel_admin_printf(r, ctx, "%s%i min%s", before,
                                     (n + 30) / 60, after);
    }
}


/* what a looked-up code is for, with Approve and Deny if it is pending */
static ngx_int_t
ngx_http_tunnel_admin_act_show(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_str_t *shown)
{
    ngx_str_t   s;
    const char  *text;

    if (ngx_http_tunnel_admin_cell_is(ctx, 0, 0, "expired")) {
        text = ngx_http_tunnel_admin_sentence(r,
                   "The code %V has expired: nothing was changed.  Run the "
                   "ssh command again on that machine for a new code.",
                   shown);
        return text ? ngx_http_tunnel_admin_message(r, ctx,
                          NGX_HTTP_TUNNEL_ADMIN_GONE, "This code has expired",
                          text, "/activate", "Enter another code")
                    : NGX_ERROR;
    }

    if (!ngx_http_tunnel_admin_cell_is(ctx, 0, 0, "pending")) {
        /* approved or denied: whoever did it, it is done */
        text = ngx_http_tunnel_admin_sentence(r,
                   "The code %V was already approved or denied: a code "
                   "works once.  Run the ssh command again for a new one.",
                   shown);
        return text ? ngx_http_tunnel_admin_message(r, ctx,
                          NGX_HTTP_TUNNEL_ADMIN_GONE,
                          "This code was already used", text, "/activate",
                          "Enter another code")
                    : NGX_ERROR;
    }

    ngx_http_tunnel_admin_page_start(r, ctx, "Approve this key?");

    ngx_http_tunnel_admin_put(r, ctx,
        "<p class=\"msg bad\" id=\"act-warning\">Only approve a code you "
        "just saw in your own terminal, printed by an ssh command you "
        "started yourself.  Someone who sent you this code or a link to "
        "it, or asked you to type it here, would get access as you: their "
        "key would open tunnels in your name.</p>\n"
        "<table>\n<tbody>\n"
        "<tr><th>Code</th><td class=\"mono\" id=\"act-code\">");
    ngx_http_tunnel_admin_esc(r, ctx, shown);

    ngx_http_tunnel_admin_put(r, ctx,
        "</td></tr>\n<tr><th>Key</th><td><span class=\"tag\" "
        "id=\"act-type\">");
    ngx_http_tunnel_admin_esc_cell(r, ctx, 0, 3);
    ngx_http_tunnel_admin_put(r, ctx,
        "</span> <span class=\"mono\" id=\"act-fingerprint\">");
    ngx_http_tunnel_admin_esc_cell(r, ctx, 0, 2);

    ngx_http_tunnel_admin_put(r, ctx,
        "</span></td></tr>\n<tr><th>From</th><td><span class=\"mono\" "
        "id=\"act-client\">");
    ngx_http_tunnel_admin_esc_cell(r, ctx, 0, 4);
    ngx_http_tunnel_admin_put(r, ctx,
        "</span><br><span class=\"hint\">the address the ssh command "
        "connected from, as this server saw it</span></td></tr>\n"
        "<tr><th>This browser</th><td><span class=\"mono\" "
        "id=\"act-browser\">");
    ngx_http_tunnel_admin_esc(r, ctx, &r->connection->addr_text);
    ngx_http_tunnel_admin_put(r, ctx, "</span>");

    s = ngx_http_tunnel_admin_cell(ctx, 0, 4);
    if (!ngx_http_tunnel_admin_act_same_host(&s, &r->connection->addr_text)) {
        /* a server without a browser is the device flow's reason to be */
        ngx_http_tunnel_admin_put(r, ctx,
            "<br><span class=\"hint\" id=\"act-elsewhere\">not where the "
            "ssh command connected from: expected if you ran it on another "
            "machine of yours (a server), a reason to Deny if you did "
            "not</span>");
    }

    ngx_http_tunnel_admin_put(r, ctx,
        "</td></tr>\n<tr><th>Tunnel name</th><td id=\"act-name\">");

    s = ngx_http_tunnel_admin_cell(ctx, 0, 5);
    if (s.len) {
        ngx_http_tunnel_admin_put(r, ctx, "<span class=\"mono\">");
        ngx_http_tunnel_admin_esc(r, ctx, &s);
        ngx_http_tunnel_admin_put(r, ctx, "</span>");

    } else {
        ngx_http_tunnel_admin_put(r, ctx,
            "<span class=\"muted\">sent after approval</span>");
    }

    ngx_http_tunnel_admin_put(r, ctx,
        "</td></tr>\n<tr><th>Code made</th><td id=\"act-created\">");
    ngx_http_tunnel_admin_esc_cell(r, ctx, 0, 6);
    s = ngx_http_tunnel_admin_cell(ctx, 0, 8);
    ngx_http_tunnel_admin_act_span(r, ctx, &s, " UTC (", " ago)");

    ngx_http_tunnel_admin_put(r, ctx,
        "</td></tr>\n<tr><th>Expires</th><td id=\"act-expires\">");
    ngx_http_tunnel_admin_esc_cell(r, ctx, 0, 7);
    s = ngx_http_tunnel_admin_cell(ctx, 0, 9);
    ngx_http_tunnel_admin_act_span(r, ctx, &s, " UTC (in ", ")");

    /* one form, two buttons: no text field, so Enter submits nothing */
    ngx_http_tunnel_admin_put(r, ctx,
        "</td></tr>\n</tbody>\n</table>\n"
        "<form method=\"post\" action=\"/activate\">"
        "<input type=\"hidden\" name=\"code\" value=\"");
    ngx_http_tunnel_admin_esc(r, ctx, shown);
    ngx_http_tunnel_admin_put(r, ctx, "\">");
    ngx_http_tunnel_admin_csrf_field(r, ctx);
    ngx_http_tunnel_admin_put(r, ctx,
        "<div class=\"actions\">"
        "<button type=\"submit\" name=\"action\" value=\"approve\">"
        "Approve: add this key to my account</button> "
        "<button class=\"danger\" type=\"submit\" name=\"action\" "
        "value=\"deny\">Deny</button></div>\n</form>\n"
        "<p class=\"hint\">Approve adds the key to your SSH keys, with a "
        "comment saying when and from where; the waiting ssh command then "
        "opens its tunnel as you.  Deny stops it; nothing changes on your "
        "account.</p>\n");

    ngx_http_tunnel_admin_page_end(r, ctx);

    return NGX_HTTP_TUNNEL_ADMIN_READY;
}


/*
 * A decision came back: keeps status (s1), fingerprint (s2) and the code's
 * row id (s3), logs it, and hands it to the audit step.  Both POST pages
 * come through here.  Returns what the audit step returns: NGX_DECLINED
 * when there is nothing to wait for.
 */
static ngx_int_t
ngx_http_tunnel_admin_act_decided(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    if (ctx->res == NULL || PQntuples(ctx->res) != 1
        || ngx_http_tunnel_admin_cell_copy(r, ctx, 0, 0, &ctx->s1) != NGX_OK
        || ngx_http_tunnel_admin_cell_copy(r, ctx, 0, 2, &ctx->s2) != NGX_OK
        || ngx_http_tunnel_admin_cell_copy(r, ctx, 0, 1, &ctx->s3) != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                  "tunnel: admin: \"%V\" from %V: activation %V%s%V: %V",
                  &ctx->user_name, &r->connection->addr_text, &ctx->s3,
                  ctx->s2.len ? " of key " : "", &ctx->s2, &ctx->s1);

    /* the audit row is tunnel_activation_decide()'s (sql/006) */
    return NGX_DECLINED;
}


/* the page after Approve or Deny on /activate */
static ngx_int_t
ngx_http_tunnel_admin_act_result(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_str_t *shown)
{
    ngx_str_t    *status;
    ngx_uint_t    code;
    const char   *title, *text, *href, *link;

    status = &ctx->s1;
    href = "/activate";
    link = "Enter another code";

#define NGX_HTTP_TUNNEL_ADMIN_ACT_IS(word)                                    \
    (status->len == sizeof(word) - 1                                         \
     && ngx_strncmp(status->data, word, status->len) == 0)

    if (NGX_HTTP_TUNNEL_ADMIN_ACT_IS("approved")) {
        code = NGX_HTTP_OK;
        title = "Approved";
        text = ngx_http_tunnel_admin_sentence(r,
                   "Approved: the key %V is now yours; your ssh session "
                   "continues.  You find the key on your SSH keys page, "
                   "where you can remove it at any time.", &ctx->s2);
        href = "/keys";
        link = "See your SSH keys";

    } else if (NGX_HTTP_TUNNEL_ADMIN_ACT_IS("denied")) {
        code = NGX_HTTP_OK;
        title = "Denied";
        text = ngx_http_tunnel_admin_sentence(r,
                   "Denied: the key %V was not added, and the ssh command "
                   "waiting with code %V stops.  Nothing changed on your "
                   "account.", &ctx->s2, shown);
        href = "/";
        link = "Go to the start page";

    } else if (NGX_HTTP_TUNNEL_ADMIN_ACT_IS("already")) {
        code = NGX_HTTP_CONFLICT;
        title = "This code was already used";
        text = ngx_http_tunnel_admin_sentence(r,
                   "The code %V was already approved or denied: a code "
                   "works once.  Run the ssh command again for a new one.",
                   shown);

    } else if (NGX_HTTP_TUNNEL_ADMIN_ACT_IS("expired")) {
        code = NGX_HTTP_TUNNEL_ADMIN_GONE;
        title = "This code has expired";
        text = ngx_http_tunnel_admin_sentence(r,
                   "The code %V has expired: nothing was changed.  Run the "
                   "ssh command again on that machine for a new code.",
                   shown);

    } else if (NGX_HTTP_TUNNEL_ADMIN_ACT_IS("key_taken")) {
        code = NGX_HTTP_CONFLICT;
        title = "This key belongs to another account";
        text = ngx_http_tunnel_admin_sentence(r,
                   "The key %V was registered to another account meanwhile, "
                   "and a key belongs to one account only.  Nothing was "
                   "changed.  On that machine, make a new key (ssh-keygen "
                   "-t ed25519) and run the ssh command with it.", &ctx->s2);

    } else if (NGX_HTTP_TUNNEL_ADMIN_ACT_IS("disabled")) {
        code = NGX_HTTP_FORBIDDEN;
        title = "Your account is disabled";
        text = "Your account is disabled, so it cannot take new keys.  Ask "
               "an administrator of this installation.";
        href = NULL;
        link = NULL;

    } else {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "tunnel: admin: unexpected activation status \"%V\"",
                      status);
        return NGX_ERROR;
    }

#undef NGX_HTTP_TUNNEL_ADMIN_ACT_IS

    if (text == NULL) {
        return NGX_ERROR;
    }

    return ngx_http_tunnel_admin_message(r, ctx, code, title, text, href,
                                         link);
}


/* GET /admin/activations: every pending code, each with a Deny button */
ngx_int_t
ngx_http_tunnel_admin_activations_get(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    int        i, n;
    ngx_str_t  id, s, done;

    if (ctx->step == 0) {
        ctx->step = 1;
        return ngx_http_tunnel_admin_query(r, ctx,
                                       ngx_http_tunnel_admin_act_pending_sql,
                                       0, NULL);
    }

    ngx_http_tunnel_admin_page_start(r, ctx, "Pending activation codes");
    ngx_http_tunnel_admin_flash(r, ctx);

    if (ctx->msg.len == 0
        && ngx_http_tunnel_admin_arg(r, "done", &done) == NGX_OK
        && done.len == sizeof("denied") - 1
        && ngx_strncmp(done.data, "denied", done.len) == 0)
    {
        ngx_http_tunnel_admin_put(r, ctx,
            "<p class=\"msg good\">The code was denied: its ssh command "
            "stops and its key was not added.</p>\n");
    }

    ngx_http_tunnel_admin_put(r, ctx,
        "<p class=\"muted\">Machines whose key is not registered, waiting "
        "for someone to approve their code on <a href=\"/activate\">"
        "/activate</a>.  Codes are not shown (only their hash is stored); "
        "deny any you do not expect.</p>\n");

    n = PQntuples(ctx->res);

    if (n == 0) {
        ngx_http_tunnel_admin_put(r, ctx,
            "<p class=\"muted\" id=\"act-none\">No code is pending.</p>\n");
        ngx_http_tunnel_admin_page_end(r, ctx);
        return NGX_HTTP_TUNNEL_ADMIN_READY;
    }

    ngx_http_tunnel_admin_put(r, ctx,
        "<table id=\"act-pending\">\n<thead><tr><th>Id</th><th>Key</th>"
        "<th>Client</th><th class=\"opt\">Created</th><th>Expires</th>"
        "<th></th></tr></thead>\n<tbody>\n");

    for (i = 0; i < n; i++) {
        ngx_http_tunnel_admin_put(r, ctx, "<tr><td data-label=\"Id\">");
        ngx_http_tunnel_admin_esc_cell(r, ctx, i, 0);
        ngx_http_tunnel_admin_put(r, ctx, "</td><td><span class=\"tag\">");
        ngx_http_tunnel_admin_esc_cell(r, ctx, i, 1);
        ngx_http_tunnel_admin_put(r, ctx, "</span> <span class=\"mono\">");
        ngx_http_tunnel_admin_esc_cell(r, ctx, i, 2);
        ngx_http_tunnel_admin_put(r, ctx, "</span>");

        s = ngx_http_tunnel_admin_cell(ctx, i, 7);
        if (s.len) {
            ngx_http_tunnel_admin_put(r, ctx, "<br>name <span class=\"mono\">");
            ngx_http_tunnel_admin_esc(r, ctx, &s);
            ngx_http_tunnel_admin_put(r, ctx, "</span>");
        }

        /* codes live minutes: the time they were made, how long to go */
        ngx_http_tunnel_admin_put(r, ctx,
            "</td><td class=\"date\" data-label=\"Client\">");
        ngx_http_tunnel_admin_esc_cell(r, ctx, i, 3);
        ngx_http_tunnel_admin_put(r, ctx, "</td><td class=\"opt date\">");
        ngx_http_tunnel_admin_esc_cell(r, ctx, i, 4);
        ngx_http_tunnel_admin_put(r, ctx,
            " UTC</td><td class=\"date\" data-label=\"Expires\" "
            "title=\"");
        ngx_http_tunnel_admin_esc_cell(r, ctx, i, 5);
        ngx_http_tunnel_admin_put(r, ctx, " UTC\">");
        s = ngx_http_tunnel_admin_cell(ctx, i, 6);
        ngx_http_tunnel_admin_act_span(r, ctx, &s, "in ", "");
        ngx_http_tunnel_admin_put(r, ctx, "</td><td>");

        id = ngx_http_tunnel_admin_cell(ctx, i, 0);
        ngx_http_tunnel_admin_form_start(r, ctx, "/admin/activations", "deny",
                                         "id", &id);
        ngx_http_tunnel_admin_put(r, ctx,
            "<button class=\"danger\" type=\"submit\">Deny</button>"
            "</form></td></tr>\n");
    }

    ngx_http_tunnel_admin_put(r, ctx, "</tbody>\n</table>\n");
    ngx_http_tunnel_admin_page_end(r, ctx);

    return NGX_HTTP_TUNNEL_ADMIN_READY;
}


/* POST /admin/activations: action=deny, id, csrf */
ngx_int_t
ngx_http_tunnel_admin_activations_post(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ngx_int_t   rc;
    ngx_str_t  *id, params[3];

    switch (ctx->step) {

    case NGX_HTTP_TUNNEL_ADMIN_ACT_START:
        id = ngx_http_tunnel_admin_field(ctx, "id");

        if (!ngx_http_tunnel_admin_field_is(ctx, "action", "deny")
            || !ngx_http_tunnel_admin_is_id(id))
        {
            return ngx_http_tunnel_admin_form_error(r, ctx,
                       NGX_HTTP_TUNNEL_ADMIN_INVALID, "No such code.");
        }

        params[0] = *id;
        params[1] = ctx->user_id_text;
        params[2] = r->connection->addr_text;

        ctx->step = NGX_HTTP_TUNNEL_ADMIN_ACT_ANSWERED;
        return ngx_http_tunnel_admin_query(r, ctx,
                                      ngx_http_tunnel_admin_act_deny_id_sql,
                                      3, params);

    case NGX_HTTP_TUNNEL_ADMIN_ACT_ANSWERED:
        ctx->step = NGX_HTTP_TUNNEL_ADMIN_ACT_AUDITED;

        rc = ngx_http_tunnel_admin_act_decided(r, ctx);
        if (rc != NGX_DECLINED) {
            return rc;
        }

        /* fall through */

    default: /* NGX_HTTP_TUNNEL_ADMIN_ACT_AUDITED */
        if (ctx->s1.len == sizeof("denied") - 1
            && ngx_strncmp(ctx->s1.data, "denied", ctx->s1.len) == 0)
        {
            return ngx_http_tunnel_admin_redirect(r, ctx,
                                           "/admin/activations?done=denied");
        }

        if (ctx->s1.len == sizeof("expired") - 1
            && ngx_strncmp(ctx->s1.data, "expired", ctx->s1.len) == 0)
        {
            return ngx_http_tunnel_admin_form_error(r, ctx,
                       NGX_HTTP_TUNNEL_ADMIN_GONE,
                       "This code expired meanwhile: its ssh command has "
                       "stopped waiting.");
        }

        return ngx_http_tunnel_admin_form_error(r, ctx,
                   NGX_HTTP_TUNNEL_ADMIN_INVALID,
                   "This code is not pending any more: it was approved, "
                   "denied or cancelled meanwhile.");
    }
}
