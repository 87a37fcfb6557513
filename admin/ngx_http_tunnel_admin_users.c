
/*
 * /admin/users: administrators list the users (role, keys, created, last
 * sign-in, tunnels up) and disable, enable, delete, promote or demote them,
 * or make a one-time password link for one (passlink.c) and see it once.
 * Each action is tunnel_admin_user_action() (sql/002_admin.sql), which
 * re-checks that the actor is an enabled administrator and never leaves the
 * installation without one.  Disabling ends the user's web sessions; tunneld
 * sees users.disabled through the NOTIFY trigger, drops their keys and
 * closes their live tunnels.
 *
 * An administrator's own row offers none of disable, demote or delete, and
 * the server refuses them for oneself too: each would lock the person
 * doing it out of this page (another administrator can do it).  Deleting
 * asks for a ticked box that says what it deletes.
 *
 * "Tunnels up" is counted from the live state: one list call to tunneld's
 * API (tunnels.c; at most 1000 tunnels, in name order), counted per user,
 * so a SIGKILLed node's tunnels stop counting once their routes expire.
 * When the API does not answer the column shows "?" and the page says why.
 */

#include "ngx_http_tunnel_admin_module.h"


static const char  ngx_http_tunnel_admin_users_sql[] =
    "SELECT u.id, u.name, u.is_admin, u.disabled,"
    "       to_char(u.created_at, 'YYYY-MM-DD'),"
    "       coalesce(to_char(u.last_login_at, 'YYYY-MM-DD HH24:MI'),"
    "                'never'),"
    "       (SELECT count(*) FROM ssh_keys k WHERE k.user_id = u.id)"
    "  FROM users u ORDER BY u.name";

static const char  ngx_http_tunnel_admin_user_action_sql[] =
    "SELECT tunnel_admin_user_action($1, $2, $3, $4)";


static void ngx_http_tunnel_admin_user_button(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_str_t *id, const char *action,
    const char *label, ngx_uint_t danger);
static void ngx_http_tunnel_admin_user_delete(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_str_t *id, int row);
static void ngx_http_tunnel_admin_user_tunnels(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, json_t *live, int row);


ngx_int_t
ngx_http_tunnel_admin_users_get(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    int         i, n;
    json_t     *live;
    ngx_int_t   rc;
    ngx_str_t   id;
    ngx_uint_t  admin, disabled, self;

    if (ctx->step == 0) {
        ctx->step = 1;
        return ngx_http_tunnel_admin_query(r, ctx,
                                           ngx_http_tunnel_admin_users_sql,
                                           0, NULL);
    }

    if (ctx->step == 1) {
        /* the users stay in ctx->res meanwhile */
        ctx->step = 2;

        rc = ngx_http_tunnel_admin_live_list(r, ctx, NULL);
        if (rc != NGX_DECLINED) {
            return rc;
        }
    }

    live = ngx_http_tunnel_admin_live_tunnels(ctx);

    ngx_http_tunnel_admin_page_start(r, ctx, "Users");
    ngx_http_tunnel_admin_flash(r, ctx);

    if (ctx->s3.len) {
        /* just made: the only time the link can be shown */
        ngx_http_tunnel_admin_put(r, ctx,
            "<div class=\"msg good\"><p>Password link for <strong>");
        ngx_http_tunnel_admin_esc(r, ctx, &ctx->s1);
        ngx_http_tunnel_admin_put(r, ctx,
            "</strong> created.  Send it to them; it is shown only now, "
            "works once, and replaces their earlier links:</p>\n"
            "<p class=\"copy mono\" id=\"password-link\">");
        ngx_http_tunnel_admin_esc(r, ctx, &ctx->s3);
        ngx_http_tunnel_admin_put(r, ctx, "</p></div>\n");
    }

    ngx_http_tunnel_admin_put(r, ctx,
        "<p>New users join with an <a href=\"/admin/invites\">invitation"
        "</a>.  Disabling a user signs them out and closes their tunnels "
        "within seconds.  Tunnels up: live now, on every node (details on "
        "<a href=\"/admin/tunnels\">All tunnels</a>).</p>\n");

    if (live == NULL) {
        ngx_http_tunnel_admin_put(r, ctx, "<p class=\"msg bad\" "
            "id=\"live-state\">Tunnels up is unknown (?): live state "
            "unavailable, tunneld's management API is not answering.</p>\n");

    } else if (json_is_string(json_object_get(ctx->api_json,
                                              "next_cursor")))
    {
        ngx_http_tunnel_admin_printf(r, ctx, "<p class=\"hint\">More than "
            "%d tunnels are live: Tunnels up counts the first %d by name."
            "</p>\n", NGX_HTTP_TUNNEL_ADMIN_API_LIMIT,
            NGX_HTTP_TUNNEL_ADMIN_API_LIMIT);
    }

    ngx_http_tunnel_admin_put(r, ctx,
        "<table>\n<thead><tr><th>User</th><th>Keys</th>"
        "<th>Tunnels up</th><th class=\"opt\">Created</th>"
        "<th class=\"opt\">Last sign-in</th><th>Actions</th></tr></thead>\n"
        "<tbody>\n");

    n = PQntuples(ctx->res);

    for (i = 0; i < n; i++) {
        id = ngx_http_tunnel_admin_cell(ctx, i, 0);
        admin = ngx_http_tunnel_admin_cell_is(ctx, i, 2, "t");
        disabled = ngx_http_tunnel_admin_cell_is(ctx, i, 3, "t");

        ngx_http_tunnel_admin_put(r, ctx, "<tr><td>");
        ngx_http_tunnel_admin_esc_cell(r, ctx, i, 1);

        if (admin) {
            ngx_http_tunnel_admin_put(r, ctx,
                                      " <span class=\"tag on\">admin</span>");
        }

        if (disabled) {
            ngx_http_tunnel_admin_put(r, ctx,
                                   " <span class=\"tag off\">disabled</span>");
        }

        ngx_http_tunnel_admin_put(r, ctx, "</td><td data-label=\"Keys\">");
        ngx_http_tunnel_admin_esc_cell(r, ctx, i, 6);
        ngx_http_tunnel_admin_put(r, ctx,
                                  "</td><td data-label=\"Tunnels up\">");
        ngx_http_tunnel_admin_user_tunnels(r, ctx, live, i);
        ngx_http_tunnel_admin_put(r, ctx, "</td><td class=\"opt date\">");
        ngx_http_tunnel_admin_esc_cell(r, ctx, i, 4);
        ngx_http_tunnel_admin_put(r, ctx, "</td><td class=\"opt date\">");
        ngx_http_tunnel_admin_esc_cell(r, ctx, i, 5);
        ngx_http_tunnel_admin_put(r, ctx, "</td><td>");

        self = (id.len == ctx->user_id_text.len
                && ngx_strncmp(id.data, ctx->user_id_text.data, id.len) == 0);

        if (self) {
            ngx_http_tunnel_admin_put(r, ctx,
                "<span class=\"muted\">your account</span></td></tr>\n");
            continue;
        }

        if (disabled) {
            ngx_http_tunnel_admin_user_button(r, ctx, &id, "enable",
                                              "Enable", 0);
        } else {
            ngx_http_tunnel_admin_user_button(r, ctx, &id, "disable",
                                              "Disable", 1);
        }

        if (admin) {
            ngx_http_tunnel_admin_user_button(r, ctx, &id, "demote",
                                              "Demote", 0);
        } else {
            ngx_http_tunnel_admin_user_button(r, ctx, &id, "promote",
                                              "Make admin", 0);
        }

        ngx_http_tunnel_admin_user_button(r, ctx, &id, "password-link",
                                          "Password link", 0);
        ngx_http_tunnel_admin_user_delete(r, ctx, &id, i);

        ngx_http_tunnel_admin_put(r, ctx, "</td></tr>\n");
    }

    ngx_http_tunnel_admin_put(r, ctx, "</tbody>\n</table>\n");
    ngx_http_tunnel_admin_page_end(r, ctx);

    return NGX_HTTP_TUNNEL_ADMIN_READY;
}


/* how many live tunnels the user of that row has, or "?" */
static void
ngx_http_tunnel_admin_user_tunnels(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, json_t *live, int row)
{
    size_t      i, n, up;
    ngx_str_t   name, user;

    if (live == NULL) {
        ngx_http_tunnel_admin_put(r, ctx, "?");
        return;
    }

    name = ngx_http_tunnel_admin_cell(ctx, row, 1);
    n = json_array_size(live);
    up = 0;

    for (i = 0; i < n; i++) {
        user = ngx_http_tunnel_admin_json_str(json_array_get(live, i),
                                              "user");

        if (user.len == name.len
            && ngx_strncmp(user.data, name.data, name.len) == 0)
        {
            up++;
        }
    }

    ngx_http_tunnel_admin_printf(r, ctx, "%uz", up);
}


static void
ngx_http_tunnel_admin_user_button(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_str_t *id, const char *action,
    const char *label, ngx_uint_t danger)
{
    ngx_http_tunnel_admin_form_start(r, ctx, "/admin/users", action, "id",
                                     id);

    ngx_http_tunnel_admin_printf(r, ctx,
        "<button class=\"%s\" type=\"submit\">%s</button></form> ",
        danger ? "danger" : "link", label);
}


/*
 * Delete, in a box of its own with the checkbox it needs, labelled with
 * what it deletes: works without JavaScript, and the box cannot be read as
 * guarding the other buttons.
 */
static void
ngx_http_tunnel_admin_user_delete(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_str_t *id, int row)
{
    ngx_http_tunnel_admin_put(r, ctx, "<span class=\"confirm\">");
    ngx_http_tunnel_admin_form_start(r, ctx, "/admin/users", "delete", "id",
                                     id);
    ngx_http_tunnel_admin_printf(r, ctx,
        "<label class=\"inline\"><input type=\"checkbox\" "
        "name=\"confirm\" value=\"yes\" required id=\"del-%V\"> "
        "Delete ", id);
    ngx_http_tunnel_admin_esc_cell(r, ctx, row, 1);
    ngx_http_tunnel_admin_put(r, ctx,
        " with their keys and names</label> "
        "<button class=\"danger\" type=\"submit\">Delete</button></form>"
        "</span>");
}


ngx_int_t
ngx_http_tunnel_admin_users_post(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ngx_str_t   *id, *action, params[4];
    ngx_uint_t   i, self;

    static const char  *actions[] = {
        "disable", "enable", "delete", "promote", "demote", "password-link",
        NULL
    };

    if (ctx->step == 2) {
        /* a password link was made: show it once, on the list */
        if (PQntuples(ctx->res) != 1) {
            ngx_str_null(&ctx->s3);
            return ngx_http_tunnel_admin_form_error(r, ctx,
                       NGX_HTTP_TUNNEL_ADMIN_INVALID,
                       "No such user (maybe already deleted).");
        }

        if (ngx_http_tunnel_admin_cell_copy(r, ctx, 0, 1, &ctx->s1)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                      "tunnel: admin: \"%V\" made a password link for "
                      "\"%V\"", &ctx->user_name, &ctx->s1);

        ctx->render = 1;
        ctx->step = 0;

        return ngx_http_tunnel_admin_users_get(r, ctx);
    }

    if (ctx->step == 0) {
        id = ngx_http_tunnel_admin_field(ctx, "id");
        action = ngx_http_tunnel_admin_field(ctx, "action");

        if (!ngx_http_tunnel_admin_is_id(id) || action == NULL) {
            return ngx_http_tunnel_admin_form_error(r, ctx,
                       NGX_HTTP_TUNNEL_ADMIN_INVALID, "No such user.");
        }

        for (i = 0; actions[i]; i++) {
            if (action->len == ngx_strlen(actions[i])
                && ngx_strncmp(action->data, actions[i], action->len) == 0)
            {
                break;
            }
        }

        if (actions[i] == NULL) {
            return ngx_http_tunnel_admin_form_error(r, ctx,
                       NGX_HTTP_TUNNEL_ADMIN_INVALID, "Unknown action.");
        }

        self = (id->len == ctx->user_id_text.len
                && ngx_strncmp(id->data, ctx->user_id_text.data, id->len)
                   == 0);

        if (self && (ngx_strcmp(actions[i], "disable") == 0
                     || ngx_strcmp(actions[i], "demote") == 0
                     || ngx_strcmp(actions[i], "delete") == 0))
        {
            return ngx_http_tunnel_admin_form_error(r, ctx,
                       NGX_HTTP_TUNNEL_ADMIN_INVALID,
                       "You cannot disable, demote or delete your own "
                       "account here: it would lock you out of this page.  "
                       "Another administrator can do it.");
        }

        if (ngx_strcmp(actions[i], "password-link") == 0) {
            ctx->step = 2;
            return ngx_http_tunnel_admin_password_link(r, ctx, id);
        }

        if (ngx_strcmp(actions[i], "delete") == 0
            && !ngx_http_tunnel_admin_field_is(ctx, "confirm", "yes"))
        {
            return ngx_http_tunnel_admin_form_error(r, ctx,
                       NGX_HTTP_TUNNEL_ADMIN_INVALID,
                       "To delete a user, tick the box \"Delete ... with "
                       "their keys and names\" beside that user's Delete "
                       "button, then press Delete.");
        }

        params[0] = ctx->user_id_text;
        params[1] = *id;
        params[2] = *action;
        params[3] = r->connection->addr_text;

        ctx->s1 = *action;
        ctx->s2 = *id;
        ctx->step = 1;

        return ngx_http_tunnel_admin_query(r, ctx,
                                       ngx_http_tunnel_admin_user_action_sql,
                                       4, params);
    }

    if (ngx_http_tunnel_admin_cell_is(ctx, 0, 0, "last_admin")) {
        return ngx_http_tunnel_admin_form_error(r, ctx,
                   NGX_HTTP_TUNNEL_ADMIN_INVALID,
                   "This is the last enabled administrator: make someone "
                   "else an administrator first.");
    }

    if (ngx_http_tunnel_admin_cell_is(ctx, 0, 0, "unknown")) {
        return ngx_http_tunnel_admin_form_error(r, ctx,
                   NGX_HTTP_TUNNEL_ADMIN_INVALID,
                   "No such user (maybe already deleted).");
    }

    if (!ngx_http_tunnel_admin_cell_is(ctx, 0, 0, "ok")) {
        return ngx_http_tunnel_admin_message(r, ctx, NGX_HTTP_FORBIDDEN,
                   "Administrators only",
                   "Your account can no longer manage users.", "/",
                   "Go to the start page");
    }

    ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                  "tunnel: admin: \"%V\" did \"%V\" to user id %V",
                  &ctx->user_name, &ctx->s1, &ctx->s2);

    self = (ctx->s2.len == ctx->user_id_text.len
            && ngx_strncmp(ctx->s2.data, ctx->user_id_text.data,
                           ctx->s2.len) == 0);

    if (self && !(ctx->s1.len == 7
                  && ngx_strncmp(ctx->s1.data, "promote", 7) == 0))
    {
        /* no longer an admin, or no longer signed in */
        return ngx_http_tunnel_admin_redirect(r, ctx, "/");
    }

    return ngx_http_tunnel_admin_redirect(r, ctx,
                                          "/admin/users?done=user-updated");
}
