
/*
 * ngx_http_tunnel_admin_module: directives, routing and the dispatcher.
 *
 * `tunnel_admin;` makes a location's content handler route the request URI
 * to one page of the control plane.  Every request goes through the same
 * explicit states: read the form (POST), ask PostgreSQL who the session
 * belongs to (and whether the install still needs its setup), apply the
 * access rule of the route and the CSRF check, then run the page's own
 * steps.  A
 * step that waits (a query, a password job) returns and is re-entered
 * through ngx_http_tunnel_admin_resume() when it completes.
 *
 * This file does not build HTML (html.c and the page files do) and does not
 * own any connection (pg.c does).
 */

#include "ngx_http_tunnel_admin_module.h"


static ngx_int_t ngx_http_tunnel_admin_handler(ngx_http_request_t *r);
static void ngx_http_tunnel_admin_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_tunnel_admin_run(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
static ngx_int_t ngx_http_tunnel_admin_gate(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
static const ngx_http_tunnel_admin_route_t *ngx_http_tunnel_admin_route(
    ngx_http_request_t *r, ngx_str_t *arg);
static void ngx_http_tunnel_admin_ctx_cleanup(void *data);

static char *ngx_http_tunnel_admin(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_tunnel_admin_login_limit(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_tunnel_admin_api_conf(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static void *ngx_http_tunnel_admin_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_tunnel_admin_init_main_conf(ngx_conf_t *cf, void *conf);
static ngx_int_t ngx_http_tunnel_admin_resolve_hosts(ngx_conf_t *cf,
    char *hosts, ngx_str_t *addrs);
static ngx_int_t ngx_http_tunnel_admin_with_hostaddr(ngx_conf_t *cf,
    ngx_http_tunnel_admin_main_conf_t *amcf, PQconninfoOption *opts,
    ngx_str_t *addrs);
static char *ngx_http_tunnel_admin_check_conninfo(ngx_conf_t *cf,
    ngx_http_tunnel_admin_main_conf_t *amcf);
static void *ngx_http_tunnel_admin_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_tunnel_admin_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static char *ngx_http_tunnel_admin_check_ssh_host(ngx_conf_t *cf,
    void *post, void *data);
static char *ngx_http_tunnel_admin_check_tunnel_url(ngx_conf_t *cf,
    void *post, void *data);
static ngx_int_t ngx_http_tunnel_admin_init_process(ngx_cycle_t *cycle);
static void ngx_http_tunnel_admin_exit_process(ngx_cycle_t *cycle);



static ngx_conf_post_handler_pt  ngx_http_tunnel_admin_ssh_host_post =
    ngx_http_tunnel_admin_check_ssh_host;

static ngx_conf_num_bounds_t  ngx_http_tunnel_admin_ssh_port_bounds = {
    ngx_conf_check_num_bounds, 1, 65535
};

static ngx_conf_post_handler_pt  ngx_http_tunnel_admin_tunnel_url_post =
    ngx_http_tunnel_admin_check_tunnel_url;


static ngx_command_t  ngx_http_tunnel_admin_commands[] = {

    { ngx_string("tunnel_admin"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_tunnel_admin,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("tunnel_admin_database"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_tunnel_admin_main_conf_t, conninfo),
      NULL },

    { ngx_string("tunnel_admin_database_pool"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_tunnel_admin_main_conf_t, pool_size),
      NULL },

    { ngx_string("tunnel_admin_database_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_tunnel_admin_main_conf_t, db_timeout),
      NULL },

    { ngx_string("tunnel_admin_name_quota"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_tunnel_admin_main_conf_t, name_quota),
      NULL },

    { ngx_string("tunnel_admin_session_idle"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_tunnel_admin_main_conf_t, session_idle),
      NULL },

    { ngx_string("tunnel_admin_session_lifetime"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_tunnel_admin_main_conf_t, session_lifetime),
      NULL },

    { ngx_string("tunnel_admin_login_limit"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE2|NGX_CONF_TAKE3|NGX_CONF_TAKE4,
      ngx_http_tunnel_admin_login_limit,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("tunnel_admin_invite_hours"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_tunnel_admin_main_conf_t, invite_hours),
      NULL },

    { ngx_string("tunnel_admin_base_url"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_tunnel_admin_main_conf_t, base_url),
      NULL },

    { ngx_string("tunnel_admin_ssh_host"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_tunnel_admin_main_conf_t, ssh_host),
      &ngx_http_tunnel_admin_ssh_host_post },

    { ngx_string("tunnel_admin_ssh_port"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_tunnel_admin_main_conf_t, ssh_port),
      &ngx_http_tunnel_admin_ssh_port_bounds },

    { ngx_string("tunnel_admin_tunnel_url"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_tunnel_admin_main_conf_t, tunnel_url),
      &ngx_http_tunnel_admin_tunnel_url_post },

    { ngx_string("tunnel_admin_api"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_tunnel_admin_api_conf,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_tunnel_admin_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    ngx_http_tunnel_admin_create_main_conf, /* create main configuration */
    ngx_http_tunnel_admin_init_main_conf,  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_tunnel_admin_create_loc_conf, /* create location configuration */
    ngx_http_tunnel_admin_merge_loc_conf   /* merge location configuration */
};


ngx_module_t  ngx_http_tunnel_admin_module = {
    NGX_MODULE_V1,
    &ngx_http_tunnel_admin_module_ctx,     /* module context */
    ngx_http_tunnel_admin_commands,        /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_tunnel_admin_init_process,    /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_tunnel_admin_exit_process,    /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


/*
 * The URL space.  "/join/" and "/password/" are the only prefixes: the rest
 * of the path is the invitation or password link token.  Paths are matched
 * exactly, never normalised further than nginx already did.
 */
static ngx_http_tunnel_admin_route_t  ngx_http_tunnel_admin_routes[] = {

    { ngx_string("/static/admin.css"), 0, NGX_HTTP_TUNNEL_ADMIN_ANYONE,
      ngx_http_tunnel_admin_css, NULL },

    { ngx_string("/static/copy.js"), 0, NGX_HTTP_TUNNEL_ADMIN_ANYONE,
      ngx_http_tunnel_admin_copy_script, NULL },

    { ngx_string("/static/tunnels.js"), 0, NGX_HTTP_TUNNEL_ADMIN_ANYONE,
      ngx_http_tunnel_admin_tunnels_script, NULL },

    { ngx_string("/static/icon.svg"), 0, NGX_HTTP_TUNNEL_ADMIN_ANYONE,
      ngx_http_tunnel_admin_icon, NULL },

    { ngx_string("/favicon.ico"), 0, NGX_HTTP_TUNNEL_ADMIN_ANYONE,
      ngx_http_tunnel_admin_icon, NULL },

    { ngx_string("/setup"), 0, NGX_HTTP_TUNNEL_ADMIN_SETUP,
      ngx_http_tunnel_admin_setup_get, ngx_http_tunnel_admin_setup_post },

    { ngx_string("/login"), 0, NGX_HTTP_TUNNEL_ADMIN_GUEST,
      ngx_http_tunnel_admin_login_get, ngx_http_tunnel_admin_login_post },

    { ngx_string("/logout"), 0, NGX_HTTP_TUNNEL_ADMIN_USER,
      NULL, ngx_http_tunnel_admin_logout_post },

    { ngx_string("/join/"), 1, NGX_HTTP_TUNNEL_ADMIN_GUEST,
      ngx_http_tunnel_admin_join_get, ngx_http_tunnel_admin_join_post },

    { ngx_string("/password/"), 1, NGX_HTTP_TUNNEL_ADMIN_GUEST,
      ngx_http_tunnel_admin_passlink_get,
      ngx_http_tunnel_admin_passlink_post },

    { ngx_string("/"), 0, NGX_HTTP_TUNNEL_ADMIN_USER,
      ngx_http_tunnel_admin_home, NULL },

    { ngx_string("/tunnels"), 0, NGX_HTTP_TUNNEL_ADMIN_USER,
      ngx_http_tunnel_admin_tunnels_get, ngx_http_tunnel_admin_tunnels_post },

    { ngx_string("/tunnels.json"), 0, NGX_HTTP_TUNNEL_ADMIN_USER,
      ngx_http_tunnel_admin_tunnels_json, NULL },

    { ngx_string("/admin/tunnels"), 0, NGX_HTTP_TUNNEL_ADMIN_ADMIN,
      ngx_http_tunnel_admin_tunnels_get, ngx_http_tunnel_admin_tunnels_post },

    { ngx_string("/admin/tunnels.json"), 0, NGX_HTTP_TUNNEL_ADMIN_ADMIN,
      ngx_http_tunnel_admin_tunnels_json, NULL },

    { ngx_string("/keys"), 0, NGX_HTTP_TUNNEL_ADMIN_USER,
      ngx_http_tunnel_admin_keys_get, ngx_http_tunnel_admin_keys_post },

    { ngx_string("/names"), 0, NGX_HTTP_TUNNEL_ADMIN_USER,
      ngx_http_tunnel_admin_names_get, ngx_http_tunnel_admin_names_post },

    { ngx_string("/admin/invites"), 0, NGX_HTTP_TUNNEL_ADMIN_ADMIN,
      ngx_http_tunnel_admin_invites_get, ngx_http_tunnel_admin_invites_post },

    { ngx_string("/admin/users"), 0, NGX_HTTP_TUNNEL_ADMIN_ADMIN,
      ngx_http_tunnel_admin_users_get, ngx_http_tunnel_admin_users_post },

    { ngx_string("/activate"), 0, NGX_HTTP_TUNNEL_ADMIN_USER,
      ngx_http_tunnel_admin_activate_get,
      ngx_http_tunnel_admin_activate_post },

    { ngx_string("/admin/activations"), 0, NGX_HTTP_TUNNEL_ADMIN_ADMIN,
      ngx_http_tunnel_admin_activations_get,
      ngx_http_tunnel_admin_activations_post },

    { ngx_string("/admin/audit"), 0, NGX_HTTP_TUNNEL_ADMIN_ADMIN,
      ngx_http_tunnel_admin_audit_get, NULL },

    { ngx_null_string, 0, 0, NULL, NULL }
};


static ngx_int_t
ngx_http_tunnel_admin_handler(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    ngx_pool_cleanup_t           *cln;
    ngx_http_tunnel_admin_ctx_t  *ctx;

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_tunnel_admin_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_tunnel_admin_ctx_cleanup;
    cln->data = ctx;

    ctx->request = r;
    ctx->db_rc = NGX_OK;
    ngx_http_set_ctx(r, ctx, ngx_http_tunnel_admin_module);

    ctx->route = ngx_http_tunnel_admin_route(r, &ctx->arg);

    if (ctx->route == NULL) {
        ngx_http_discard_request_body(r);
        ngx_http_tunnel_admin_message(r, ctx, NGX_HTTP_NOT_FOUND,
                                      "Page not found",
                                      "There is no page at this address.",
                                      "/", "Go to the start page");
        return ngx_http_tunnel_admin_send(r, ctx);
    }

    if (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD)) {
        if (ctx->route->get == NULL) {
            goto not_allowed;
        }

    } else if (r->method & NGX_HTTP_POST) {
        if (ctx->route->post == NULL) {
            goto not_allowed;
        }

        ctx->post = 1;

    } else {
        goto not_allowed;
    }

    if (ctx->route->access == NGX_HTTP_TUNNEL_ADMIN_ANYONE) {
        ngx_http_discard_request_body(r);
        ctx->route->get(r, ctx);
        return ngx_http_tunnel_admin_send(r, ctx);
    }

    (void) ngx_http_tunnel_admin_cookie(r,
                   NGX_HTTP_TUNNEL_ADMIN_SESSION_COOKIE, &ctx->session_token);
    (void) ngx_http_tunnel_admin_cookie(r, NGX_HTTP_TUNNEL_ADMIN_CSRF_COOKIE,
                                        &ctx->csrf_cookie);

    if (ctx->post) {
        if (r->headers_in.content_length_n > NGX_HTTP_TUNNEL_ADMIN_BODY_MAX) {
            ngx_http_discard_request_body(r);
            ngx_http_tunnel_admin_message(r, ctx,
                NGX_HTTP_REQUEST_ENTITY_TOO_LARGE, "Too much text",
                "The form sent more text than this site accepts.", "/",
                "Go to the start page");
            return ngx_http_tunnel_admin_send(r, ctx);
        }

        r->request_body_in_single_buf = 1;

        rc = ngx_http_read_client_request_body(r,
                                         ngx_http_tunnel_admin_body_handler);
        if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
            return rc;
        }

        return NGX_DONE;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    r->main->count++;
    ngx_http_tunnel_admin_resume(r);

    return NGX_DONE;

not_allowed:

    ngx_http_discard_request_body(r);
    ngx_http_tunnel_admin_message(r, ctx, NGX_HTTP_NOT_ALLOWED,
                                  "Not allowed",
                                  "This page does not accept that method.",
                                  "/", "Go to the start page");
    return ngx_http_tunnel_admin_send(r, ctx);
}


static void
ngx_http_tunnel_admin_body_handler(ngx_http_request_t *r)
{
    ngx_http_tunnel_admin_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_tunnel_admin_module);

    if (ngx_http_tunnel_admin_form_parse(r, ctx) != NGX_OK) {
        ctx->state = NGX_HTTP_TUNNEL_ADMIN_ST_DONE;
        ngx_http_tunnel_admin_message(r, ctx, NGX_HTTP_BAD_REQUEST,
            "The form could not be read",
            "The form arrived incomplete or too large.  Go back, reload "
            "the page and try again.", "/", "Go to the start page");
    }

    ngx_http_tunnel_admin_resume(r);
}


/*
 * The dispatcher's entry: called once by the handler and again after each
 * query or password job completes.  Finalizes the request when the page is
 * composed.  Callers running from an event (pg.c, password.c) run the
 * posted requests afterwards.
 */
void
ngx_http_tunnel_admin_resume(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    ngx_http_tunnel_admin_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_tunnel_admin_module);
    ctx->waiting = 0;

    if (ctx->state == NGX_HTTP_TUNNEL_ADMIN_ST_DONE) {
        rc = NGX_HTTP_TUNNEL_ADMIN_READY;

    } else {
        rc = ngx_http_tunnel_admin_run(r, ctx);
    }

    if (rc == NGX_HTTP_TUNNEL_ADMIN_WAIT) {
        ctx->waiting = 1;

        /* notice a client that goes away while we wait (aborts the wait) */
        r->read_event_handler = ngx_http_test_reading;
        return;
    }

    if (rc != NGX_HTTP_TUNNEL_ADMIN_READY) {
        ngx_http_tunnel_admin_message(r, ctx,
            NGX_HTTP_INTERNAL_SERVER_ERROR, "Something went wrong",
            "The server could not complete this request.  Try again; if it "
            "keeps failing, the operator will find details in the error "
            "log.", "/", "Go to the start page");
    }

    ctx->state = NGX_HTTP_TUNNEL_ADMIN_ST_DONE;
    ctx->finished = 1;
    r->read_event_handler = ngx_http_block_reading;

    ngx_http_finalize_request(r, ngx_http_tunnel_admin_send(r, ctx));
}


static ngx_int_t
ngx_http_tunnel_admin_run(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ngx_int_t  rc;

    for ( ;; ) {

        switch (ctx->state) {

        case NGX_HTTP_TUNNEL_ADMIN_ST_AUTH:
            rc = ngx_http_tunnel_admin_session_query(r, ctx);
            if (rc != NGX_HTTP_TUNNEL_ADMIN_WAIT) {
                return rc;
            }

            ctx->state = NGX_HTTP_TUNNEL_ADMIN_ST_AUTH_WAIT;
            return rc;

        case NGX_HTTP_TUNNEL_ADMIN_ST_AUTH_WAIT:
            if (ctx->db_rc != NGX_OK) {
                return ngx_http_tunnel_admin_unavailable(r, ctx);
            }

            rc = ngx_http_tunnel_admin_session_result(r, ctx);
            if (rc != NGX_OK) {
                return rc;
            }

            rc = ngx_http_tunnel_admin_gate(r, ctx);
            if (rc != NGX_DECLINED) {
                return rc;
            }

            ctx->state = NGX_HTTP_TUNNEL_ADMIN_ST_PAGE;
            ctx->step = 0;
            break;

        case NGX_HTTP_TUNNEL_ADMIN_ST_PAGE:
            if (ctx->db_rc != NGX_OK) {
                return ngx_http_tunnel_admin_unavailable(r, ctx);
            }

            return (ctx->post && !ctx->render) ? ctx->route->post(r, ctx)
                                               : ctx->route->get(r, ctx);

        default: /* NGX_HTTP_TUNNEL_ADMIN_ST_DONE */
            return NGX_HTTP_TUNNEL_ADMIN_READY;
        }
    }
}


/*
 * Access rules and the CSRF check, once we know who asks.  Returns
 * NGX_DECLINED to go on to the page, READY when a redirect or an error page
 * has been composed instead.
 */
static ngx_int_t
ngx_http_tunnel_admin_gate(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ngx_uint_t  access;

    access = ctx->route->access;

    /*
     * While no administrator can sign in, visitors go to /setup; but where
     * users exist (made with tunnelctl) the pages that let them in stay
     * open: /login, /join/ (tunnelctl invite create --admin) and
     * /password/ (tunnelctl's one-time links), and someone signed in so
     * keeps their pages.
     */
    if (ctx->needs_setup) {
        if (access != NGX_HTTP_TUNNEL_ADMIN_SETUP && !ctx->logged_in
            && (!ctx->any_users || access != NGX_HTTP_TUNNEL_ADMIN_GUEST))
        {
            return ngx_http_tunnel_admin_redirect(r, ctx, "/setup");
        }

    } else if (access == NGX_HTTP_TUNNEL_ADMIN_SETUP) {
        return ngx_http_tunnel_admin_message(r, ctx,
                   NGX_HTTP_TUNNEL_ADMIN_GONE, "Setup is done",
                   "This installation already has its administrator.  Sign "
                   "in instead.", "/login", "Sign in");
    }

    if (access >= NGX_HTTP_TUNNEL_ADMIN_USER && !ctx->logged_in) {
        return ngx_http_tunnel_admin_login_redirect(r, ctx);
    }

    if (access == NGX_HTTP_TUNNEL_ADMIN_ADMIN && !ctx->is_admin) {
        return ngx_http_tunnel_admin_message(r, ctx, NGX_HTTP_FORBIDDEN,
                   "Administrators only",
                   "This page is for administrators of this installation.  "
                   "Ask one if you need something done here.", "/",
                   "Go to the start page");
    }

    if (!ctx->post) {
        return NGX_DECLINED;
    }

    if (ngx_http_tunnel_admin_same_origin(r) != NGX_OK) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "tunnel: admin: rejected a form on \"%V\" posted "
                      "from another page than this site's (Origin or "
                      "Sec-Fetch-Site)", &r->uri);
        goto refused;
    }

    if (ctx->logged_in && access >= NGX_HTTP_TUNNEL_ADMIN_USER) {
        if (ngx_http_tunnel_admin_csrf_ok(r, ctx) == NGX_OK) {
            return NGX_DECLINED;
        }

    } else if (ngx_http_tunnel_admin_guest_csrf(r, ctx) == NGX_OK) {
        return NGX_DECLINED;
    }

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "tunnel: admin: rejected a form with a missing or wrong "
                  "csrf token on \"%V\"", &r->uri);

refused:

    return ngx_http_tunnel_admin_message(r, ctx, NGX_HTTP_FORBIDDEN,
               "This form has expired",
               "The form was not sent from this site's own page, or it is "
               "too old, or your browser did not keep this site's cookie.  "
               "Open the page again and resend it (this site needs cookies, "
               "and HTTPS unless it runs on localhost).", "/",
               "Go to the start page");
}


/*
 * The page for "no database": pg.c shows it too.  The JSON twins of the
 * tunnels pages answer JSON, which their poller shows.
 */
ngx_int_t
ngx_http_tunnel_admin_unavailable(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    if (ctx->route != NULL
        && ctx->route->get == ngx_http_tunnel_admin_tunnels_json)
    {
        return ngx_http_tunnel_admin_tunnels_json_error(r, ctx,
                   "database_unavailable",
                   "The database is not answering.  Tunnels keep working; "
                   "this page tries again every second.");
    }

    return ngx_http_tunnel_admin_message(r, ctx,
               NGX_HTTP_SERVICE_UNAVAILABLE,
               "The database is not answering",
               "The control panel cannot reach its database right now.  "
               "Tunnels keep working.  Try again in a minute; if it lasts, "
               "tell the operator of this installation.", NULL, NULL);
}


static const ngx_http_tunnel_admin_route_t *
ngx_http_tunnel_admin_route(ngx_http_request_t *r, ngx_str_t *arg)
{
    ngx_http_tunnel_admin_route_t  *rt;

    for (rt = ngx_http_tunnel_admin_routes; rt->path.len; rt++) {

        if (rt->prefix) {
            if (r->uri.len > rt->path.len
                && ngx_strncmp(r->uri.data, rt->path.data, rt->path.len) == 0)
            {
                arg->data = r->uri.data + rt->path.len;
                arg->len = r->uri.len - rt->path.len;
                return rt;
            }

            continue;
        }

        if (r->uri.len == rt->path.len
            && ngx_strncmp(r->uri.data, rt->path.data, rt->path.len) == 0)
        {
            return rt;
        }
    }

    return NULL;
}


static void
ngx_http_tunnel_admin_ctx_cleanup(void *data)
{
    ngx_http_tunnel_admin_ctx_t  *ctx = data;

    if (ctx->res) {
        PQclear(ctx->res);
        ctx->res = NULL;
    }
}


/* results */

ngx_str_t
ngx_http_tunnel_admin_cell(ngx_http_tunnel_admin_ctx_t *ctx, int row, int col)
{
    ngx_str_t  s;

    if (ctx->res == NULL || row >= PQntuples(ctx->res)
        || col >= PQnfields(ctx->res) || PQgetisnull(ctx->res, row, col))
    {
        ngx_str_null(&s);
        return s;
    }

    s.data = (u_char *) PQgetvalue(ctx->res, row, col);
    s.len = PQgetlength(ctx->res, row, col);

    return s;
}


ngx_int_t
ngx_http_tunnel_admin_cell_is(ngx_http_tunnel_admin_ctx_t *ctx, int row,
    int col, const char *text)
{
    ngx_str_t  s;

    s = ngx_http_tunnel_admin_cell(ctx, row, col);

    return s.len == ngx_strlen(text)
           && ngx_strncmp(s.data, text, s.len) == 0;
}


/* a cell copied to r->pool: it outlives the result ("" for NULL) */
ngx_int_t
ngx_http_tunnel_admin_cell_copy(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, int row, int col, ngx_str_t *copy)
{
    ngx_str_t  s;

    s = ngx_http_tunnel_admin_cell(ctx, row, col);

    copy->len = s.len;
    copy->data = ngx_pnalloc(r->pool, s.len + 1);
    if (copy->data == NULL) {
        return NGX_ERROR;
    }

    /* a NULL cell has no data to copy: memcpy() from NULL is undefined
     * even for 0 bytes (UBSan, t/100-admin-keys.t) */
    if (s.len) {
        ngx_memcpy(copy->data, s.data, s.len);
    }

    copy->data[s.len] = '\0';

    return NGX_OK;
}


/* configuration */

static char *
ngx_http_tunnel_admin(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_tunnel_admin_loc_conf_t   *alcf = conf;

    ngx_http_core_loc_conf_t           *clcf;
    ngx_http_tunnel_admin_main_conf_t  *amcf;

    if (alcf->enable != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    alcf->enable = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_tunnel_admin_handler;

    amcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_tunnel_admin_module);
    amcf->enabled = 1;

    if (amcf->thread_pool == NULL) {
        /* the "default" pool: nginx gives it 32 threads unless configured */
        amcf->thread_pool = ngx_thread_pool_add(cf, NULL);
        if (amcf->thread_pool == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


/*
 * tunnel_admin_login_limit N TIME [address=N] [user=N]: failed sign-ins
 * allowed per window per (address, name), per address and per account;
 * why three, in sql/007_login_limits.sql
 */
static char *
ngx_http_tunnel_admin_login_limit(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_tunnel_admin_main_conf_t  *amcf = conf;

    ngx_int_t    n;
    ngx_str_t   *value, v;
    ngx_uint_t   i, *limit;

    if (amcf->login_limit != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    n = ngx_atoi(value[1].data, value[1].len);
    if (n <= 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid number of failures \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    amcf->login_limit = n;

    amcf->login_window = ngx_parse_time(&value[2], 1);
    if (amcf->login_window == (time_t) NGX_ERROR || amcf->login_window == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid window \"%V\"", &value[2]);
        return NGX_CONF_ERROR;
    }

    for (i = 3; i < cf->args->nelts; i++) {
        v = value[i];

        if (v.len > 8 && ngx_strncmp(v.data, "address=", 8) == 0) {
            limit = &amcf->login_addr_limit;
            v.data += 8;
            v.len -= 8;

        } else if (v.len > 5 && ngx_strncmp(v.data, "user=", 5) == 0) {
            limit = &amcf->login_user_limit;
            v.data += 5;
            v.len -= 5;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\": expected "
                               "address=N or user=N", &value[i]);
            return NGX_CONF_ERROR;
        }

        n = ngx_atoi(v.data, v.len);
        if (n <= 0 || *limit != NGX_CONF_UNSET_UINT) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid or repeated \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        *limit = n;
    }

    return NGX_CONF_OK;
}


/*
 * tunnel_admin_api: marks the location through which the admin module asks
 * tunneld's management API (a proxy_pass to SOCKET_DIR/api.sock).  Placed
 * inside that location, so nginx itself tells us its name; it must be a
 * plain prefix location ending in '/' and `internal` (checked in
 * init_main_conf, once the whole http block is read): the API must never
 * answer a request from outside.
 */
static char *
ngx_http_tunnel_admin_api_conf(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_core_loc_conf_t           *clcf;
    ngx_http_tunnel_admin_main_conf_t  *amcf;

    amcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_tunnel_admin_module);
    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (amcf->api_clcf) {
        return "is duplicate: one location may lead to tunneld's API";
    }

    if (clcf->named || clcf->exact_match || clcf->noregex
#if (NGX_PCRE)
        || clcf->regex
#endif
        || clcf->name.len < 2 || clcf->name.data[0] != '/'
        || clcf->name.data[clcf->name.len - 1] != '/')
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"tunnel_admin_api\" belongs in a plain prefix "
                           "location ending in '/', such as "
                           "\"location /_tunneld/ { internal; "
                           "tunnel_admin_api; proxy_pass "
                           "http://unix:/path/api.sock:/; }\"");
        return NGX_CONF_ERROR;
    }

    amcf->api_clcf = clcf;
    amcf->api_location = clcf->name;

    return NGX_CONF_OK;
}


static void *
ngx_http_tunnel_admin_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_tunnel_admin_main_conf_t  *amcf;

    amcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_tunnel_admin_main_conf_t));
    if (amcf == NULL) {
        return NULL;
    }

    amcf->pool_size = NGX_CONF_UNSET_UINT;
    amcf->db_timeout = NGX_CONF_UNSET_MSEC;
    amcf->name_quota = NGX_CONF_UNSET_UINT;
    amcf->session_idle = NGX_CONF_UNSET;
    amcf->session_lifetime = NGX_CONF_UNSET;
    amcf->login_limit = NGX_CONF_UNSET_UINT;
    amcf->login_addr_limit = NGX_CONF_UNSET_UINT;
    amcf->login_user_limit = NGX_CONF_UNSET_UINT;
    amcf->login_window = NGX_CONF_UNSET;
    amcf->invite_hours = NGX_CONF_UNSET_UINT;
    amcf->ssh_port = NGX_CONF_UNSET_UINT;

    return amcf;
}


static char *
ngx_http_tunnel_admin_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_tunnel_admin_main_conf_t  *amcf = conf;

    u_char  *p;

    ngx_conf_init_uint_value(amcf->pool_size, 4);
    ngx_conf_init_msec_value(amcf->db_timeout, 3000);
    ngx_conf_init_uint_value(amcf->name_quota, 3);
    ngx_conf_init_value(amcf->session_idle, 3600);
    ngx_conf_init_value(amcf->session_lifetime, 12 * 3600);
    ngx_conf_init_uint_value(amcf->login_limit, 5);
    ngx_conf_init_uint_value(amcf->login_addr_limit, 30);
    ngx_conf_init_uint_value(amcf->login_user_limit, 20);
    ngx_conf_init_value(amcf->login_window, 15 * 60);
    ngx_conf_init_uint_value(amcf->invite_hours, 72);
    ngx_conf_init_uint_value(amcf->ssh_port, 22);

    if (amcf->pool_size == 0 || amcf->pool_size > 64) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "tunnel_admin_database_pool must be 1..64");
        return NGX_CONF_ERROR;
    }

    if (amcf->invite_hours == 0
        || amcf->invite_hours > NGX_HTTP_TUNNEL_ADMIN_INVITE_HOURS_MAX)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "tunnel_admin_invite_hours must be 1..%d",
                           NGX_HTTP_TUNNEL_ADMIN_INVITE_HOURS_MAX);
        return NGX_CONF_ERROR;
    }

    if (amcf->session_idle > amcf->session_lifetime) {
        amcf->session_idle = amcf->session_lifetime;
    }

    /* libpq wants C strings */
    p = ngx_pnalloc(cf->pool, amcf->conninfo.len + 1);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    *ngx_cpymem(p, amcf->conninfo.data, amcf->conninfo.len) = '\0';
    amcf->conninfo.data = p;

    while (amcf->base_url.len && amcf->base_url.data[amcf->base_url.len - 1]
                                 == '/')
    {
        amcf->base_url.len--;
    }

    if (amcf->api_clcf && !amcf->api_clcf->internal) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "the location \"%V\" of \"tunnel_admin_api\" "
                           "must be \"internal\": tunneld's API would "
                           "answer anyone who asks for it",
                           &amcf->api_location);
        return NGX_CONF_ERROR;
    }

    if (amcf->enabled && amcf->conninfo.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"tunnel_admin\" needs \"tunnel_admin_database\" "
                           "at the http level");
        return NGX_CONF_ERROR;
    }

    return ngx_http_tunnel_admin_check_conninfo(cf, amcf);
}


/*
 * libpq resolves a host name with getaddrinfo(), a blocking call that
 * would stall the whole worker at every connect.  A name in host= is
 * therefore resolved here, once, at load time (as nginx resolves
 * proxy_pass names), and the conninfo handed to libpq gets hostaddr= with
 * the numbers; host= stays for TLS verification and .pgpass.  A changed
 * address needs a reload.  Parsing the conninfo here also reports a
 * malformed one at load time.
 */
static char *
ngx_http_tunnel_admin_check_conninfo(ngx_conf_t *cf,
    ngx_http_tunnel_admin_main_conf_t *amcf)
{
    char               *err, *hosts;
    char               *rv;
    const char         *hostaddr;
    ngx_str_t           addrs;
    PQconninfoOption   *opts, *o;

    if (amcf->conninfo.len == 0) {
        return NGX_CONF_OK;
    }

    err = NULL;
    opts = PQconninfoParse((const char *) amcf->conninfo.data, &err);

    if (opts == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"tunnel_admin_database\": %s",
                           err ? err : "out of memory");
        if (err) {
            PQfreemem(err);
        }

        return NGX_CONF_ERROR;
    }

    rv = NGX_CONF_OK;
    hosts = NULL;
    hostaddr = NULL;

    for (o = opts; o->keyword; o++) {
        if (ngx_strcmp(o->keyword, "host") == 0) {
            hosts = o->val;

        } else if (ngx_strcmp(o->keyword, "hostaddr") == 0) {
            hostaddr = o->val;
        }
    }

    if (hosts == NULL || (hostaddr && hostaddr[0])) {
        goto done;
    }

    if (ngx_http_tunnel_admin_resolve_hosts(cf, hosts, &addrs) != NGX_OK) {
        rv = NGX_CONF_ERROR;
        goto done;
    }

    if (addrs.len == 0) {
        goto done;                  /* sockets and numbers only */
    }

    if (ngx_http_tunnel_admin_with_hostaddr(cf, amcf, opts, &addrs)
        != NGX_OK)
    {
        rv = NGX_CONF_ERROR;
    }

done:

    PQconninfoFree(opts);

    return rv;
}


/*
 * hosts: libpq's comma-separated host list.  addrs: the matching hostaddr
 * list ("" for a socket directory, the number for a number, the first IPv4
 * address, else IPv6, of a name), or empty when no entry is a name.
 */
static ngx_int_t
ngx_http_tunnel_admin_resolve_hosts(ngx_conf_t *cf, char *hosts,
    ngx_str_t *addrs)
{
    int               rc, family, named;
    char             *host, *next;
    u_char           *p, *last;
    u_char            addr[sizeof(struct in6_addr)];
    char              text[NGX_INET6_ADDRSTRLEN + 1];
    struct addrinfo   hints, *res;

    addrs->len = 0;
    addrs->data = ngx_pnalloc(cf->pool, 1024);
    if (addrs->data == NULL) {
        return NGX_ERROR;
    }

    p = addrs->data;
    last = p + 1024;
    named = 0;

    for (host = hosts; host; host = next) {
        next = strchr(host, ',');
        if (next) {
            *next++ = '\0';
        }

        text[0] = '\0';

        if (host[0] == '\0' || host[0] == '/' || host[0] == '@') {
            /* a socket directory: libpq wants an empty hostaddr entry */

        } else if (inet_pton(AF_INET, host, addr) == 1
                   || inet_pton(AF_INET6, host, addr) == 1)
        {
            ngx_cpystrn((u_char *) text, (u_char *) host, sizeof(text));

        } else {
            named = 1;
            res = NULL;

            for (family = AF_INET; ; family = AF_INET6) {
                ngx_memzero(&hints, sizeof(hints));
                hints.ai_family = family;
                hints.ai_socktype = SOCK_STREAM;

                rc = getaddrinfo(host, NULL, &hints, &res);
                if (rc == 0 || family == AF_INET6) {
                    break;
                }
            }

            if (rc != 0 || res == NULL
                || getnameinfo(res->ai_addr, res->ai_addrlen, text,
                               sizeof(text), NULL, 0, NI_NUMERICHOST) != 0)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"tunnel_admin_database\": cannot "
                                   "resolve host \"%s\": %s; fix the name "
                                   "or give a numeric address", host,
                                   rc ? gai_strerror(rc) : "no address");
                if (res) {
                    freeaddrinfo(res);
                }

                return NGX_ERROR;
            }

            freeaddrinfo(res);
        }

        if (last - p < (ssize_t) (ngx_strlen(text) + 2)) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"tunnel_admin_database\": too many hosts");
            return NGX_ERROR;
        }

        p = ngx_sprintf(p, "%s%s", p == addrs->data ? "" : ",", text);
    }

    *p = '\0';
    addrs->len = named ? (size_t) (p - addrs->data) : 0;

    return NGX_OK;
}


/* rebuilds the conninfo as key='value' pairs plus hostaddr='addrs' */

static ngx_int_t
ngx_http_tunnel_admin_with_hostaddr(ngx_conf_t *cf,
    ngx_http_tunnel_admin_main_conf_t *amcf, PQconninfoOption *opts,
    ngx_str_t *addrs)
{
    size_t              len;
    u_char             *p, *v;
    PQconninfoOption   *o;

    len = sizeof("hostaddr=''") + addrs->len;

    for (o = opts; o->keyword; o++) {
        if (o->val) {
            len += ngx_strlen(o->keyword) + 2 * ngx_strlen(o->val) + 4;
        }
    }

    p = ngx_pnalloc(cf->pool, len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    amcf->conninfo.data = p;

    for (o = opts; o->keyword; o++) {
        if (o->val == NULL || ngx_strcmp(o->keyword, "hostaddr") == 0) {
            continue;
        }

        p = ngx_sprintf(p, "%s='", o->keyword);

        for (v = (u_char *) o->val; *v; v++) {
            if (*v == '\'' || *v == '\\') {
                *p++ = '\\';
            }

            *p++ = *v;
        }

        *p++ = '\'';
        *p++ = ' ';
    }

    p = ngx_sprintf(p, "hostaddr='%V'", addrs);
    *p = '\0';

    amcf->conninfo.len = p - amcf->conninfo.data;

    return NGX_OK;
}


/*
 * tunnel_admin_ssh_host: the host name users give ssh, shown in the
 * command of the start page.  A DNS name or an IP address: nothing a shell
 * or ssh would read as something else (an option, a user, a port).
 */
static char *
ngx_http_tunnel_admin_check_ssh_host(ngx_conf_t *cf, void *post, void *data)
{
    ngx_str_t  *host = data;

    size_t  i;
    u_char  c;

    if (host->len == 0 || host->len > 253 || host->data[0] == '-'
        || host->data[0] == '.')
    {
        goto invalid;
    }

    for (i = 0; i < host->len; i++) {
        c = host->data[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == ':'))
        {
            goto invalid;
        }
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid \"tunnel_admin_ssh_host\" \"%V\": give the "
                       "host name or address users connect ssh to, e.g. "
                       "tunnel.example.com (the port goes in "
                       "tunnel_admin_ssh_port)", host);
    return NGX_CONF_ERROR;
}


/*
 * tunnel_admin_tunnel_url: the URL a tunnel gets, "%s" standing for its
 * name, as tunneld's --public-url: http:// or https://, exactly one "%s"
 * in the host part, no other '%', nothing that needs quoting in a page.
 */
static char *
ngx_http_tunnel_admin_check_tunnel_url(ngx_conf_t *cf, void *post,
    void *data)
{
    ngx_str_t  *url = data;

    u_char      c, *p, *host, *last;
    ngx_uint_t  names;

    p = url->data;
    last = p + url->len;

    if (url->len > 7 && ngx_strncmp(p, "http://", 7) == 0) {
        host = p + 7;

    } else if (url->len > 8 && ngx_strncmp(p, "https://", 8) == 0) {
        host = p + 8;

    } else {
        goto invalid;
    }

    names = 0;

    for (p = host; p < last; p++) {
        c = *p;

        if (c == '%') {
            if (p + 1 == last || p[1] != 's') {
                goto invalid;
            }

            if (ngx_strlchr(host, p, '/') != NULL) {
                goto invalid;       /* the name is a host label */
            }

            names++;
            p++;
            continue;
        }

        if (c <= ' ' || c >= 0x7f || c == '"' || c == '\'' || c == '<'
            || c == '>' || c == '\\')
        {
            goto invalid;
        }
    }

    if (names != 1) {
        goto invalid;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid \"tunnel_admin_tunnel_url\" \"%V\": give "
                       "the URL of a tunnel with %%s for its name, as "
                       "tunneld's --public-url, e.g. "
                       "\"https://%%s.tunnel.example.com\"", url);
    return NGX_CONF_ERROR;
}


static void *
ngx_http_tunnel_admin_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_tunnel_admin_loc_conf_t  *alcf;

    alcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_tunnel_admin_loc_conf_t));
    if (alcf == NULL) {
        return NULL;
    }

    alcf->enable = NGX_CONF_UNSET;

    return alcf;
}


static char *
ngx_http_tunnel_admin_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_tunnel_admin_loc_conf_t  *prev = parent;
    ngx_http_tunnel_admin_loc_conf_t  *conf = child;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_tunnel_admin_init_process(ngx_cycle_t *cycle)
{
    return ngx_http_tunnel_admin_pg_init_process(cycle);
}


static void
ngx_http_tunnel_admin_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_tunnel_admin_pg_exit_process(cycle);
}
