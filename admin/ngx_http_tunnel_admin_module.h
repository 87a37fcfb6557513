
/*
 * ngx_http_tunnel_admin_module: types and functions shared by the files of
 * the web control plane (first-run setup, login, invitations, SSH keys,
 * reserved names, users), an nginx content handler talking to PostgreSQL
 * with non-blocking libpq.
 *
 * It does not serve tunnels (ngx_http_tunnel_module does) and never talks
 * to Redis: its changes are rows in PostgreSQL, which tunneld follows
 * through the NOTIFY triggers of sql/001_schema.sql, except what is live
 * (the dashboard and Kick), which it asks tunneld's management API through
 * nginx itself (api.c: a subrequest to an internal proxy location).
 *
 * Ownership: configuration lives in cf->pool; the request context, the page
 * being built and the parsed form live in r->pool.  The PostgreSQL
 * connections and the query in flight on them are per-worker heap memory
 * owned by ngx_http_tunnel_admin_pg.c; password jobs running in the thread
 * pool are heap memory owned by ngx_http_tunnel_admin_password.c.  Neither
 * ever holds a bare request pointer past an r->pool cleanup.
 */

#ifndef _NGX_HTTP_TUNNEL_ADMIN_MODULE_H_INCLUDED_
#define _NGX_HTTP_TUNNEL_ADMIN_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <ngx_thread_pool.h>

#include <libpq-fe.h>
#include <jansson.h>

#include "ngx_http_tunnel_admin_parse.h"


#define NGX_HTTP_TUNNEL_ADMIN_TOKEN_BYTES   32      /* session, csrf */
#define NGX_HTTP_TUNNEL_ADMIN_INVITE_BYTES  18      /* 144 bits */
#define NGX_HTTP_TUNNEL_ADMIN_INVITE_HOURS_MAX  8760   /* as tunnelctl */
#define NGX_HTTP_TUNNEL_ADMIN_NOTE_MAX      200     /* invitation notes */
#define NGX_HTTP_TUNNEL_ADMIN_SHA256_HEX    64
#define NGX_HTTP_TUNNEL_ADMIN_MAX_PARAMS    8
#define NGX_HTTP_TUNNEL_ADMIN_BODY_MAX      (64 * 1024)

/* typographic quotes around a value named in a message */
#define NGX_HTTP_TUNNEL_ADMIN_LQ  "\xe2\x80\x9c"
#define NGX_HTTP_TUNNEL_ADMIN_RQ  "\xe2\x80\x9d"

#define NGX_HTTP_TUNNEL_ADMIN_SESSION_COOKIE  "__Host-tunnel_session"
#define NGX_HTTP_TUNNEL_ADMIN_CSRF_COOKIE     "__Host-tunnel_csrf"


typedef struct ngx_http_tunnel_admin_ctx_s    ngx_http_tunnel_admin_ctx_t;
typedef struct ngx_http_tunnel_admin_route_s  ngx_http_tunnel_admin_route_t;


typedef struct {
    ngx_str_t                  conninfo;       /* NUL-terminated */
    ngx_uint_t                 pool_size;      /* connections per worker */
    ngx_msec_t                 db_timeout;     /* per query, per connect */
    ngx_uint_t                 name_quota;
    time_t                     session_idle;
    time_t                     session_lifetime;
    ngx_uint_t                 login_limit;    /* per address and name */
    ngx_uint_t                 login_addr_limit;   /* per address */
    ngx_uint_t                 login_user_limit;   /* per account */
    time_t                     login_window;
    ngx_uint_t                 invite_hours;   /* default expiry */
    ngx_str_t                  base_url;       /* for invitation links */
    ngx_str_t                  ssh_host;       /* in the start page's */
    ngx_uint_t                 ssh_port;       /*   command; unset: Host */
    ngx_str_t                  tunnel_url;     /* "http://%s.DOMAIN:PORT" */
    ngx_str_t                  api_location;   /* "/_tunneld/", or empty */
    ngx_http_core_loc_conf_t  *api_clcf;       /* that location */
    ngx_thread_pool_t         *thread_pool;    /* argon2id runs there */
    ngx_uint_t                 enabled;        /* a location uses us */
} ngx_http_tunnel_admin_main_conf_t;


typedef struct {
    ngx_flag_t                 enable;
} ngx_http_tunnel_admin_loc_conf_t;


/* a form came back with a validation error (nginx has no status line) */
#define NGX_HTTP_TUNNEL_ADMIN_INVALID  422
#define NGX_HTTP_TUNNEL_ADMIN_GONE     410


/* what a page handler returns */
#define NGX_HTTP_TUNNEL_ADMIN_WAIT    NGX_AGAIN   /* query or job started */
#define NGX_HTTP_TUNNEL_ADMIN_READY   NGX_OK      /* response composed */


typedef ngx_int_t (*ngx_http_tunnel_admin_page_pt)(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);


/* who may open a page */
#define NGX_HTTP_TUNNEL_ADMIN_ANYONE     0   /* also before setup (css) */
#define NGX_HTTP_TUNNEL_ADMIN_GUEST      1   /* after setup, no login */
#define NGX_HTTP_TUNNEL_ADMIN_SETUP      2   /* only before setup */
#define NGX_HTTP_TUNNEL_ADMIN_USER       3
#define NGX_HTTP_TUNNEL_ADMIN_ADMIN      4


struct ngx_http_tunnel_admin_route_s {
    ngx_str_t                       path;      /* exact, or prefix if '/' */
    ngx_uint_t                      prefix;
    ngx_uint_t                      access;
    ngx_http_tunnel_admin_page_pt   get;
    ngx_http_tunnel_admin_page_pt   post;
};


/* dispatcher states (ngx_http_tunnel_admin_module.c) */
typedef enum {
    NGX_HTTP_TUNNEL_ADMIN_ST_AUTH = 0,   /* send the session query */
    NGX_HTTP_TUNNEL_ADMIN_ST_AUTH_WAIT,
    NGX_HTTP_TUNNEL_ADMIN_ST_PAGE,       /* run the page's own steps */
    NGX_HTTP_TUNNEL_ADMIN_ST_DONE
} ngx_http_tunnel_admin_state_e;


typedef struct {
    ngx_str_t                  name;
    ngx_str_t                  value;
} ngx_http_tunnel_admin_field_t;


struct ngx_http_tunnel_admin_ctx_s {
    ngx_http_request_t                *request;
    const ngx_http_tunnel_admin_route_t *route;
    ngx_http_tunnel_admin_state_e      state;
    ngx_uint_t                         step;      /* the page's own state */
    ngx_str_t                          arg;       /* path after a prefix */
    unsigned                           post:1;
    unsigned                           waiting:1; /* async op in flight */
    unsigned                           finished:1;
    unsigned                           render:1;  /* POST shows the GET */
    unsigned                           script:1;  /* page loads a script */
    unsigned                           no_cache:1; /* typed, yet no-store */
    unsigned                           wide:1;    /* a wide table */
    unsigned                           audit_login:1; /* session_create */

    /* request input */
    ngx_array_t                       *form;      /* of ..._field_t */
    ngx_str_t                          session_token;   /* cookie value */
    ngx_str_t                          csrf_cookie;     /* cookie value */

    /* who is asking, filled by the session query */
    unsigned                           needs_setup:1; /* no admin can sign in */
    unsigned                           any_users:1;
    unsigned                           logged_in:1;
    unsigned                           is_admin:1;
    int64_t                            user_id;
    ngx_str_t                          user_id_text;
    ngx_str_t                          user_name;
    ngx_str_t                          csrf;      /* of the session */
    ngx_str_t                          guest_csrf; /* of the csrf cookie */

    /* the last query: result owned here, cleared with r->pool */
    PGresult                          *res;
    ngx_int_t                          db_rc;     /* NGX_OK, else failed */

    /* the last password job */
    ngx_int_t                          pw_rc;     /* NGX_OK, NGX_DECLINED */
    ngx_str_t                          pw_hash;   /* from a hash job */

    /* the last call to tunneld's API (api.c) */
    ngx_uint_t                         api_status; /* 0: no answer */
    json_t                            *api_json;  /* owned, or NULL */
    unsigned                           api_done:1;
    unsigned                           api_cleanup:1;

    /* page-specific scratch, kept between steps */
    ngx_str_t                          s1;
    ngx_str_t                          s2;
    ngx_str_t                          s3;
    ngx_str_t                          msg;       /* error to show */
    ngx_str_t                          note;      /* success to show */

    /* the response */
    ngx_uint_t                         status;
    ngx_uint_t                         form_status; /* with ctx->msg */
    ngx_str_t                          content_type; /* default HTML */
    ngx_str_t                          location;  /* redirect if set */
    ngx_buf_t                         *out;
};


extern ngx_module_t  ngx_http_tunnel_admin_module;


/* module.c: the dispatcher, re-entered after every async completion */
void ngx_http_tunnel_admin_resume(ngx_http_request_t *r);
ngx_int_t ngx_http_tunnel_admin_unavailable(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);

/* api.c: tunneld's management API through an internal location */
#define NGX_HTTP_TUNNEL_ADMIN_API_LIMIT  1000    /* tunnels per view */
ngx_int_t ngx_http_tunnel_admin_api(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_uint_t method, const char *path,
    ngx_str_t *args);
ngx_int_t ngx_http_tunnel_admin_api_ok(ngx_http_tunnel_admin_ctx_t *ctx);
ngx_str_t ngx_http_tunnel_admin_json_str(json_t *obj, const char *key);
json_int_t ngx_http_tunnel_admin_json_int(json_t *obj, const char *key);
u_char *ngx_http_tunnel_admin_arg_escape(u_char *dst, ngx_str_t *src);

/* pg.c: the per-worker connection pool */
ngx_int_t ngx_http_tunnel_admin_pg_init_process(ngx_cycle_t *cycle);
void ngx_http_tunnel_admin_pg_exit_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_tunnel_admin_query(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, const char *sql, int nparams,
    ngx_str_t *params);
void ngx_http_tunnel_admin_bool_param(ngx_str_t *param, ngx_uint_t value);
ngx_int_t ngx_http_tunnel_admin_number_param(ngx_pool_t *pool, int64_t n,
    ngx_str_t *param);

/* form.c: request input */
ngx_int_t ngx_http_tunnel_admin_form_parse(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
ngx_str_t *ngx_http_tunnel_admin_field(ngx_http_tunnel_admin_ctx_t *ctx,
    const char *name);
ngx_int_t ngx_http_tunnel_admin_field_is(ngx_http_tunnel_admin_ctx_t *ctx,
    const char *name, const char *value);
ngx_int_t ngx_http_tunnel_admin_cookie(ngx_http_request_t *r,
    const char *name, ngx_str_t *value);
ngx_int_t ngx_http_tunnel_admin_arg(ngx_http_request_t *r, const char *name,
    ngx_str_t *value);
ngx_int_t ngx_http_tunnel_admin_arg_text(ngx_http_request_t *r,
    const char *name, ngx_str_t *value);
ngx_int_t ngx_http_tunnel_admin_is_id(ngx_str_t *s);

/* session.c: tokens, cookies, CSRF, the session query */
ngx_int_t ngx_http_tunnel_admin_random(u_char *buf, size_t len);
ngx_int_t ngx_http_tunnel_admin_token(ngx_pool_t *pool, size_t bytes,
    ngx_str_t *token);
ngx_int_t ngx_http_tunnel_admin_is_base64url(ngx_str_t *s);
ngx_int_t ngx_http_tunnel_admin_sha256_param(ngx_pool_t *pool,
    ngx_str_t *in, ngx_str_t *param);
ngx_int_t ngx_http_tunnel_admin_link_token(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_str_t *param);
ngx_int_t ngx_http_tunnel_admin_set_cookie(ngx_http_request_t *r,
    const char *name, ngx_str_t *value, time_t max_age);
ngx_int_t ngx_http_tunnel_admin_session_query(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
ngx_int_t ngx_http_tunnel_admin_session_result(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
ngx_int_t ngx_http_tunnel_admin_csrf_ok(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
ngx_int_t ngx_http_tunnel_admin_guest_csrf(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
ngx_int_t ngx_http_tunnel_admin_same_origin(ngx_http_request_t *r);
ngx_int_t ngx_http_tunnel_admin_session_create(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_str_t *user_id);
ngx_int_t ngx_http_tunnel_admin_session_created(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
ngx_int_t ngx_http_tunnel_admin_sign_in_new(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_str_t *user_id);
ngx_int_t ngx_http_tunnel_admin_welcome(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);

/* password.c: argon2id in the thread pool, the strength rule */
#define NGX_HTTP_TUNNEL_ADMIN_PASSWORD_MIN  12
#define NGX_HTTP_TUNNEL_ADMIN_PASSWORD_MAX  1024
ngx_int_t ngx_http_tunnel_admin_password_hash(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_str_t *password);
ngx_int_t ngx_http_tunnel_admin_password_verify(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_str_t *password, ngx_str_t *hash);
const char *ngx_http_tunnel_admin_password_weak(ngx_str_t *password,
    ngx_str_t *again, ngx_str_t *user);
const char *ngx_http_tunnel_admin_user_name_bad(ngx_str_t *name);
ngx_int_t ngx_http_tunnel_admin_account_start(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);

/* html.c: composing and sending pages */
void ngx_http_tunnel_admin_put(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, const char *raw);
void ngx_http_tunnel_admin_put_str(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_str_t *raw);
void ngx_http_tunnel_admin_esc(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_str_t *text);
void ngx_http_tunnel_admin_esc_c(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, const char *text);
void ngx_http_tunnel_admin_printf(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, const char *fmt, ...);
void ngx_http_tunnel_admin_page_start(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, const char *title);
void ngx_http_tunnel_admin_page_end(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
void ngx_http_tunnel_admin_csrf_field(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
void ngx_http_tunnel_admin_form_start(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, const char *url, const char *action,
    const char *field, ngx_str_t *value);
void ngx_http_tunnel_admin_esc_cell(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, int row, int col);
void ngx_http_tunnel_admin_flash(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
void ngx_http_tunnel_admin_input(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, const char *label, const char *name,
    const char *type, const char *autocomplete, const char *hint,
    ngx_uint_t keep);
const char *ngx_http_tunnel_admin_sentence(ngx_http_request_t *r,
    const char *fmt, ...);
ngx_str_t ngx_http_tunnel_admin_shorten(ngx_http_request_t *r,
    ngx_str_t *text);
ngx_int_t ngx_http_tunnel_admin_form_error(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_uint_t status, const char *msg);
ngx_int_t ngx_http_tunnel_admin_message(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_uint_t status, const char *title,
    const char *text, const char *next_href, const char *next_text);
ngx_int_t ngx_http_tunnel_admin_redirect(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, const char *location);
ngx_int_t ngx_http_tunnel_admin_send(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
ngx_int_t ngx_http_tunnel_admin_css(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
ngx_int_t ngx_http_tunnel_admin_icon(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
ngx_int_t ngx_http_tunnel_admin_copy_script(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);

/* results: text of a cell, NULL-safe */
ngx_str_t ngx_http_tunnel_admin_cell(ngx_http_tunnel_admin_ctx_t *ctx,
    int row, int col);
ngx_int_t ngx_http_tunnel_admin_cell_is(ngx_http_tunnel_admin_ctx_t *ctx,
    int row, int col, const char *text);
ngx_int_t ngx_http_tunnel_admin_cell_copy(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, int row, int col, ngx_str_t *copy);

/* sshkey.c: authorized_keys line validation */
typedef struct {
    ngx_str_t                  type;
    ngx_str_t                  base64;        /* canonical, re-encoded */
    ngx_str_t                  comment;
    ngx_str_t                  fingerprint;   /* "SHA256:..." */
} ngx_http_tunnel_admin_sshkey_t;

const char *ngx_http_tunnel_admin_sshkey_parse(ngx_pool_t *pool,
    ngx_str_t *line, ngx_http_tunnel_admin_sshkey_t *key);

/* the pages, one file per group */
ngx_int_t ngx_http_tunnel_admin_home(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
ngx_int_t ngx_http_tunnel_admin_setup_get(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
ngx_int_t ngx_http_tunnel_admin_setup_post(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
ngx_int_t ngx_http_tunnel_admin_login_get(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
ngx_int_t ngx_http_tunnel_admin_login_post(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
ngx_int_t ngx_http_tunnel_admin_logout_post(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
ngx_int_t ngx_http_tunnel_admin_login_redirect(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
ngx_int_t ngx_http_tunnel_admin_invites_get(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
ngx_int_t ngx_http_tunnel_admin_invites_post(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
ngx_int_t ngx_http_tunnel_admin_join_get(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
ngx_int_t ngx_http_tunnel_admin_join_post(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
ngx_int_t ngx_http_tunnel_admin_keys_get(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
ngx_int_t ngx_http_tunnel_admin_keys_post(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
ngx_int_t ngx_http_tunnel_admin_names_get(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
ngx_int_t ngx_http_tunnel_admin_names_post(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
ngx_int_t ngx_http_tunnel_admin_users_get(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
ngx_int_t ngx_http_tunnel_admin_users_post(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
ngx_int_t ngx_http_tunnel_admin_audit_get(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
ngx_int_t ngx_http_tunnel_admin_passlink_get(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
ngx_int_t ngx_http_tunnel_admin_passlink_post(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);

/* activate.c: the device flow's web side (issue 10) */
ngx_int_t ngx_http_tunnel_admin_activate_get(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
ngx_int_t ngx_http_tunnel_admin_activate_post(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
ngx_int_t ngx_http_tunnel_admin_activations_get(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
ngx_int_t ngx_http_tunnel_admin_activations_post(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);

/* tunnels.c: the live tunnels (dashboard, Kick, start page, users page) */
ngx_int_t ngx_http_tunnel_admin_tunnels_get(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
ngx_int_t ngx_http_tunnel_admin_tunnels_post(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
ngx_int_t ngx_http_tunnel_admin_tunnels_json(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
ngx_int_t ngx_http_tunnel_admin_tunnels_json_error(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, const char *error, const char *message);
ngx_int_t ngx_http_tunnel_admin_tunnels_script(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);
ngx_int_t ngx_http_tunnel_admin_live_list(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_str_t *user);
json_t *ngx_http_tunnel_admin_live_tunnels(ngx_http_tunnel_admin_ctx_t *ctx);
void ngx_http_tunnel_admin_live_unavailable(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx);

/* invites.c, passlink.c: links to hand out, one-time password links */
ngx_int_t ngx_http_tunnel_admin_link(ngx_http_request_t *r, const char *path,
    ngx_str_t *token, ngx_str_t *link);
ngx_int_t ngx_http_tunnel_admin_password_link(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_str_t *user_id);


#endif /* _NGX_HTTP_TUNNEL_ADMIN_MODULE_H_INCLUDED_ */
