
/*
 * /keys: every user adds and removes the SSH public keys that may open
 * their tunnels.  A pasted line is validated and fingerprinted by
 * ngx_http_tunnel_admin_sshkey_parse(); the row goes into ssh_keys, whose
 * NOTIFY trigger makes tunneld reload its key table within 2 s.  A
 * fingerprint belongs to one user only (ssh_keys_fingerprint_key).  A user
 * only ever sees and removes their own keys.
 */

#include "ngx_http_tunnel_admin_module.h"


static const char  ngx_http_tunnel_admin_keys_sql[] =
    "SELECT id, key_type, fingerprint, comment,"
    "       to_char(created_at, 'YYYY-MM-DD'),"
    "       coalesce(to_char(last_used_at, 'YYYY-MM-DD HH24:MI'), 'never')"
    "  FROM ssh_keys WHERE user_id = $1 ORDER BY created_at, id";

/* the second column is evaluated on the snapshot before the insert */
static const char  ngx_http_tunnel_admin_key_add_sql[] =
    "WITH ins AS ("
    "  INSERT INTO ssh_keys (user_id, key_type, key_base64, fingerprint,"
    "                        comment)"
    "  VALUES ($1, $2, $3, $4, $5)"
    "  ON CONFLICT (fingerprint) DO NOTHING RETURNING id),"
    " audit AS ("
    "  INSERT INTO tunnel_events (event, actor_id, client_addr, user_id,"
    "                             fingerprint, detail)"
    "  SELECT 'key_added', $1, $6, $1, $4, rtrim($2 || ' ' || $5) FROM ins)"
    " SELECT (SELECT id FROM ins),"
    "        (SELECT user_id = $1 FROM ssh_keys WHERE fingerprint = $4)";

static const char  ngx_http_tunnel_admin_key_delete_sql[] =
    "WITH del AS ("
    "  DELETE FROM ssh_keys WHERE id = $1 AND user_id = $2"
    "  RETURNING id, user_id, fingerprint, key_type, comment),"
    " audit AS ("
    "  INSERT INTO tunnel_events (event, actor_id, client_addr, user_id,"
    "                             fingerprint, detail)"
    "  SELECT 'key_removed', $2, $3, user_id, fingerprint,"
    "         rtrim(key_type || ' ' || comment) FROM del)"
    " SELECT id FROM del";


static ngx_int_t ngx_http_tunnel_admin_key_add(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
static ngx_int_t ngx_http_tunnel_admin_key_delete(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);


ngx_int_t
ngx_http_tunnel_admin_keys_get(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    int         i, n;
    ngx_str_t   id, *key;

    if (ctx->step == 0) {
        ctx->step = 1;
        return ngx_http_tunnel_admin_query(r, ctx,
                                           ngx_http_tunnel_admin_keys_sql,
                                           1, &ctx->user_id_text);
    }

    ngx_http_tunnel_admin_page_start(r, ctx, "SSH keys");
    ngx_http_tunnel_admin_flash(r, ctx);

    n = PQntuples(ctx->res);

    if (n == 0) {
        ngx_http_tunnel_admin_put(r, ctx,
            "<p class=\"muted\">You have no keys yet: add one below to open "
            "tunnels.</p>\n");

    } else {
        ngx_http_tunnel_admin_put(r, ctx,
            "<table>\n<thead><tr><th>Key</th><th>Fingerprint</th>"
            "<th class=\"opt\">Added</th><th class=\"opt\">Last used</th>"
            "<th></th></tr></thead>\n<tbody>\n");

        for (i = 0; i < n; i++) {
            ngx_http_tunnel_admin_put(r, ctx, "<tr><td>");

            if (ngx_http_tunnel_admin_cell(ctx, i, 3).len) {
                ngx_http_tunnel_admin_esc_cell(r, ctx, i, 3);
                ngx_http_tunnel_admin_put(r, ctx, "<br>");
            }

            ngx_http_tunnel_admin_put(r, ctx, "<span class=\"tag\">");
            ngx_http_tunnel_admin_esc_cell(r, ctx, i, 1);
            ngx_http_tunnel_admin_put(r, ctx,
                                      "</span></td><td class=\"mono\">");
            ngx_http_tunnel_admin_esc_cell(r, ctx, i, 2);
            ngx_http_tunnel_admin_put(r, ctx, "</td><td class=\"opt\">");
            ngx_http_tunnel_admin_esc_cell(r, ctx, i, 4);
            ngx_http_tunnel_admin_put(r, ctx, "</td><td class=\"opt\">");
            ngx_http_tunnel_admin_esc_cell(r, ctx, i, 5);
            ngx_http_tunnel_admin_put(r, ctx, "</td><td>");

            id = ngx_http_tunnel_admin_cell(ctx, i, 0);
            ngx_http_tunnel_admin_form_start(r, ctx, "/keys", "delete", "id",
                                             &id);
            ngx_http_tunnel_admin_put(r, ctx,
                "<button class=\"danger\" type=\"submit\">Remove</button>"
                "</form></td></tr>\n");
        }

        ngx_http_tunnel_admin_put(r, ctx, "</tbody>\n</table>\n");
    }

    ngx_http_tunnel_admin_put(r, ctx,
                              "<h2>Add a key</h2>\n<div class=\"card\">\n");
    ngx_http_tunnel_admin_form_start(r, ctx, "/keys", "add", NULL, NULL);

    ngx_http_tunnel_admin_put(r, ctx,
        "<label for=\"f-key\">Public key</label>\n"
        "<textarea id=\"f-key\" name=\"key\" spellcheck=\"false\" "
        "placeholder=\"ssh-ed25519 AAAAC3Nza... you@laptop\">");

    key = ctx->msg.len ? ngx_http_tunnel_admin_field(ctx, "key") : NULL;
    if (key) {
        ngx_http_tunnel_admin_esc(r, ctx, key);
    }

    ngx_http_tunnel_admin_put(r, ctx,
        "</textarea>\n<p class=\"hint\">Paste the line of your public key "
        "file, for example the output of <code>cat "
        "~/.ssh/id_ed25519.pub</code>.  No key yet?  Create one with "
        "<code>ssh-keygen -t ed25519</code>.  Accepted: ssh-ed25519, "
        "ecdsa-sha2-nistp256/384/521, ssh-rsa (2048 bits or more), "
        "sk-ssh-ed25519 and sk-ecdsa security keys.</p>\n"
        "<div class=\"actions\"><button type=\"submit\">Add the key</button>"
        "</div>\n</form>\n</div>\n");

    ngx_http_tunnel_admin_page_end(r, ctx);

    return NGX_HTTP_TUNNEL_ADMIN_READY;
}


ngx_int_t
ngx_http_tunnel_admin_keys_post(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    if (ngx_http_tunnel_admin_field_is(ctx, "action", "add")) {
        return ngx_http_tunnel_admin_key_add(r, ctx);
    }

    if (ngx_http_tunnel_admin_field_is(ctx, "action", "delete")) {
        return ngx_http_tunnel_admin_key_delete(r, ctx);
    }

    return ngx_http_tunnel_admin_form_error(r, ctx,
                                            NGX_HTTP_TUNNEL_ADMIN_INVALID,
                                            "Unknown action.");
}


static ngx_int_t
ngx_http_tunnel_admin_key_add(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ngx_str_t                        *line, params[6];
    const char                       *err;
    ngx_http_tunnel_admin_sshkey_t    key;

    if (ctx->step == 0) {
        line = ngx_http_tunnel_admin_field(ctx, "key");

        if (line == NULL) {
            err = "Paste your public key.";

        } else {
            err = ngx_http_tunnel_admin_sshkey_parse(r->pool, line, &key);
        }

        if (err) {
            return ngx_http_tunnel_admin_form_error(r, ctx,
                                       NGX_HTTP_TUNNEL_ADMIN_INVALID, err);
        }

        params[0] = ctx->user_id_text;
        params[1] = key.type;
        params[2] = key.base64;
        params[3] = key.fingerprint;
        params[4] = key.comment;
        params[5] = r->connection->addr_text;

        ctx->s1 = key.fingerprint;
        ctx->step = 1;

        return ngx_http_tunnel_admin_query(r, ctx,
                                           ngx_http_tunnel_admin_key_add_sql,
                                           6, params);
    }

    if (ngx_http_tunnel_admin_cell(ctx, 0, 0).len == 0) {
        return ngx_http_tunnel_admin_form_error(r, ctx,
                   NGX_HTTP_TUNNEL_ADMIN_INVALID,
                   ngx_http_tunnel_admin_cell_is(ctx, 0, 1, "t")
                   ? "You have already added this key."
                   : "This key belongs to another account.  Each key can "
                     "belong to one account only: create a new key for "
                     "this one (ssh-keygen -t ed25519).");
    }

    ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                  "tunnel: admin: \"%V\" added key %V",
                  &ctx->user_name, &ctx->s1);

    return ngx_http_tunnel_admin_redirect(r, ctx, "/keys?done=key-added");
}


static ngx_int_t
ngx_http_tunnel_admin_key_delete(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ngx_str_t  *id, params[3];

    if (ctx->step == 0) {
        id = ngx_http_tunnel_admin_field(ctx, "id");

        if (!ngx_http_tunnel_admin_is_id(id)) {
            return ngx_http_tunnel_admin_form_error(r, ctx,
                       NGX_HTTP_TUNNEL_ADMIN_INVALID, "No such key.");
        }

        params[0] = *id;
        params[1] = ctx->user_id_text;
        params[2] = r->connection->addr_text;
        ctx->step = 1;

        return ngx_http_tunnel_admin_query(r, ctx,
                                       ngx_http_tunnel_admin_key_delete_sql,
                                       3, params);
    }

    if (PQntuples(ctx->res) == 0) {
        return ngx_http_tunnel_admin_form_error(r, ctx,
                   NGX_HTTP_TUNNEL_ADMIN_INVALID,
                   "No such key (maybe it was already removed).");
    }

    return ngx_http_tunnel_admin_redirect(r, ctx, "/keys?done=key-removed");
}
