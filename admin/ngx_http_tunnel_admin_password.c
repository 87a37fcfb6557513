
/*
 * Passwords of the admin pages: argon2id hashing and verification, the
 * rules a new password and a user name must follow, and the first step of
 * the two forms that create an account (setup, join).
 *
 * argon2id costs tens of milliseconds of CPU and ~19 MiB by design, which
 * would stall every connection of the worker: it runs in nginx's "default"
 * thread pool.  A job is heap memory owned by this file: it is freed by its
 * completion handler on the event loop, also when the request went away
 * meanwhile (the r->pool cleanup only clears the job's request pointer).
 * Password copies are wiped before they are freed.
 *
 * Parameters follow the OWASP minimum for argon2id (m = 19 MiB, t = 2,
 * p = 1); a stored PHC string carries its own parameters, so raising them
 * later keeps old hashes valid.
 */

#include "ngx_http_tunnel_admin_module.h"

#include <argon2.h>


#define NGX_HTTP_TUNNEL_ADMIN_ARGON2_T     2
#define NGX_HTTP_TUNNEL_ADMIN_ARGON2_M     19456
#define NGX_HTTP_TUNNEL_ADMIN_ARGON2_P     1
#define NGX_HTTP_TUNNEL_ADMIN_SALT_LEN     16
#define NGX_HTTP_TUNNEL_ADMIN_HASH_LEN     32
#define NGX_HTTP_TUNNEL_ADMIN_ENCODED_MAX  160


typedef struct {
    ngx_thread_task_t      task;
    ngx_http_request_t    *request;        /* NULL once the request is gone */
    ngx_pool_cleanup_t    *cleanup;
    unsigned               verify:1;
    unsigned               dummy:1;        /* unknown user: hash, say no */
    char                  *password;       /* heap, NUL-terminated */
    size_t                 password_len;
    char                  *hash;           /* heap, verify only */
    u_char                 salt[NGX_HTTP_TUNNEL_ADMIN_SALT_LEN];
    char                   encoded[NGX_HTTP_TUNNEL_ADMIN_ENCODED_MAX];
    int                    rc;
} ngx_http_tunnel_admin_pw_job_t;


static ngx_int_t ngx_http_tunnel_admin_password_job(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_str_t *password, ngx_str_t *hash);
static void ngx_http_tunnel_admin_password_thread(void *data, ngx_log_t *log);
static void ngx_http_tunnel_admin_password_done(ngx_event_t *ev);
static void ngx_http_tunnel_admin_password_cleanup(void *data);
static void ngx_http_tunnel_admin_password_free(
    ngx_http_tunnel_admin_pw_job_t *job);


/*
 * Starts hashing: on resume ctx->pw_rc is NGX_OK and ctx->pw_hash the PHC
 * string.
 */
ngx_int_t
ngx_http_tunnel_admin_password_hash(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_str_t *password)
{
    return ngx_http_tunnel_admin_password_job(r, ctx, password, NULL);
}


/*
 * Starts verifying: on resume ctx->pw_rc is NGX_OK (match) or NGX_DECLINED.
 * With hash NULL (unknown user) the password is hashed instead, so both
 * cases cost the same time, and the answer is NGX_DECLINED.
 */
ngx_int_t
ngx_http_tunnel_admin_password_verify(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_str_t *password, ngx_str_t *hash)
{
    static ngx_str_t  none = ngx_null_string;

    return ngx_http_tunnel_admin_password_job(r, ctx, password,
                                              hash ? hash : &none);
}


static ngx_int_t
ngx_http_tunnel_admin_password_job(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx, ngx_str_t *password, ngx_str_t *hash)
{
    ngx_pool_cleanup_t                 *cln;
    ngx_http_tunnel_admin_pw_job_t     *job;
    ngx_http_tunnel_admin_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_tunnel_admin_module);

    if (password->len > NGX_HTTP_TUNNEL_ADMIN_PASSWORD_MAX) {
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    job = ngx_calloc(sizeof(ngx_http_tunnel_admin_pw_job_t),
                     r->connection->log);
    if (job == NULL) {
        return NGX_ERROR;
    }

    job->password = ngx_alloc(password->len + 1, r->connection->log);
    if (job->password == NULL) {
        goto failed;
    }

    *ngx_cpymem(job->password, password->data, password->len) = '\0';
    job->password_len = password->len;

    if (hash && hash->len) {
        job->verify = 1;
        job->hash = ngx_alloc(hash->len + 1, r->connection->log);
        if (job->hash == NULL) {
            goto failed;
        }

        *ngx_cpymem(job->hash, hash->data, hash->len) = '\0';

    } else if (hash) {
        job->dummy = 1;
    }

    if (ngx_http_tunnel_admin_random(job->salt, sizeof(job->salt))
        != NGX_OK)
    {
        goto failed;
    }

    job->task.ctx = job;
    job->task.handler = ngx_http_tunnel_admin_password_thread;
    job->task.event.handler = ngx_http_tunnel_admin_password_done;
    job->task.event.data = job;
    job->task.event.log = ngx_cycle->log;

    if (ngx_thread_task_post(amcf->thread_pool, &job->task) != NGX_OK) {
        goto failed;
    }

    job->request = r;
    job->cleanup = cln;
    cln->handler = ngx_http_tunnel_admin_password_cleanup;
    cln->data = job;

    ctx->pw_rc = NGX_DECLINED;
    ngx_str_null(&ctx->pw_hash);

    return NGX_HTTP_TUNNEL_ADMIN_WAIT;

failed:

    ngx_http_tunnel_admin_password_free(job);
    return NGX_ERROR;
}


/* in a pool thread: touches only the job */
static void
ngx_http_tunnel_admin_password_thread(void *data, ngx_log_t *log)
{
    ngx_http_tunnel_admin_pw_job_t  *job = data;

    if (job->verify) {
        job->rc = argon2id_verify(job->hash, job->password,
                                  job->password_len);
        return;
    }

    job->rc = argon2id_hash_encoded(NGX_HTTP_TUNNEL_ADMIN_ARGON2_T,
                                    NGX_HTTP_TUNNEL_ADMIN_ARGON2_M,
                                    NGX_HTTP_TUNNEL_ADMIN_ARGON2_P,
                                    job->password, job->password_len,
                                    job->salt, sizeof(job->salt),
                                    NGX_HTTP_TUNNEL_ADMIN_HASH_LEN,
                                    job->encoded, sizeof(job->encoded));
}


/* back on the event loop */
static void
ngx_http_tunnel_admin_password_done(ngx_event_t *ev)
{
    size_t                           len;
    ngx_connection_t                *c;
    ngx_http_request_t              *r;
    ngx_http_tunnel_admin_ctx_t     *ctx;
    ngx_http_tunnel_admin_pw_job_t  *job = ev->data;

    r = job->request;

    if (r == NULL) {
        ngx_http_tunnel_admin_password_free(job);
        return;
    }

    job->cleanup->handler = NULL;

    ctx = ngx_http_get_module_ctx(r, ngx_http_tunnel_admin_module);

    ctx->pw_rc = NGX_DECLINED;

    if (job->verify) {
        if (job->rc == ARGON2_OK) {
            ctx->pw_rc = NGX_OK;

        } else if (job->rc != ARGON2_VERIFY_MISMATCH) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "tunnel: admin: cannot verify a password hash: %s",
                          argon2_error_message(job->rc));
        }

    } else if (job->dummy) {
        ctx->pw_rc = NGX_DECLINED;

    } else if (job->rc == ARGON2_OK) {
        len = ngx_strlen(job->encoded);
        ctx->pw_hash.data = ngx_pnalloc(r->pool, len);

        if (ctx->pw_hash.data) {
            ngx_memcpy(ctx->pw_hash.data, job->encoded, len);
            ctx->pw_hash.len = len;
            ctx->pw_rc = NGX_OK;
        }

    } else {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "tunnel: admin: cannot hash a password: %s",
                      argon2_error_message(job->rc));
        ctx->pw_rc = NGX_ERROR;
    }

    ngx_http_tunnel_admin_password_free(job);

    c = r->connection;

    ngx_http_tunnel_admin_resume(r);
    ngx_http_run_posted_requests(c);
}


static void
ngx_http_tunnel_admin_password_cleanup(void *data)
{
    ngx_http_tunnel_admin_pw_job_t  *job = data;

    /* the thread still runs: its completion frees the job */
    job->request = NULL;
}


static void
ngx_http_tunnel_admin_password_free(ngx_http_tunnel_admin_pw_job_t *job)
{
    if (job->password) {
        ngx_explicit_memzero(job->password, job->password_len);
        ngx_free(job->password);
    }

    if (job->hash) {
        ngx_free(job->hash);
    }

    ngx_explicit_memzero(job->encoded, sizeof(job->encoded));
    ngx_free(job);
}


/* NULL if acceptable, else what to fix, for the page */
const char *
ngx_http_tunnel_admin_password_weak(ngx_str_t *password, ngx_str_t *again,
    ngx_str_t *user)
{
    u_char      *p, *last;
    ngx_uint_t   chars;

    if (password == NULL || password->len == 0) {
        return "Choose a password.";
    }

    if (again == NULL || again->len != password->len
        || ngx_strncmp(again->data, password->data, password->len) != 0)
    {
        return "The two passwords are not the same.";
    }

    if (password->len > NGX_HTTP_TUNNEL_ADMIN_PASSWORD_MAX) {
        return "The password is too long (at most 1024 bytes).";
    }

    chars = 0;
    p = password->data;
    last = p + password->len;

    while (p < last) {
        if (*p < 0x80) {
            p++;

        } else {
            (void) ngx_utf8_decode(&p, last - p);
        }

        chars++;
    }

    if (chars < NGX_HTTP_TUNNEL_ADMIN_PASSWORD_MIN) {
        return "The password is too short: use at least 12 characters.";
    }

    if (user && user->len == password->len
        && ngx_strncasecmp(user->data, password->data, user->len) == 0)
    {
        return "The password must not be the user name.";
    }

    return NULL;
}


/*
 * The first step of a form that creates an account (/setup, /join): checks
 * its fields name, password and password2, keeps the name in ctx->s1 and
 * starts hashing the password.  Returns WAIT (ctx->pw_rc, ctx->pw_hash on
 * resume), or READY with the form sent back saying what to fix.
 */
ngx_int_t
ngx_http_tunnel_admin_account_start(ngx_http_request_t *r,
    ngx_http_tunnel_admin_ctx_t *ctx)
{
    ngx_str_t   *name, *password;
    const char  *err;

    name = ngx_http_tunnel_admin_field(ctx, "name");
    password = ngx_http_tunnel_admin_field(ctx, "password");

    if (name) {
        ngx_http_tunnel_admin_trim(name);
    }

    err = ngx_http_tunnel_admin_user_name_bad(name);
    if (err == NULL) {
        err = ngx_http_tunnel_admin_password_weak(password,
                  ngx_http_tunnel_admin_field(ctx, "password2"), name);
    }

    if (err) {
        return ngx_http_tunnel_admin_form_error(r, ctx,
                                       NGX_HTTP_TUNNEL_ADMIN_INVALID, err);
    }

    ctx->s1 = *name;

    return ngx_http_tunnel_admin_password_hash(r, ctx, password);
}


/* the rule of users.name: ^[a-z][a-z0-9_-]{0,31}$ */
const char *
ngx_http_tunnel_admin_user_name_bad(ngx_str_t *name)
{
    size_t  i;

    if (name == NULL || name->len == 0) {
        return "Choose a user name.";
    }

    if (name->len > 32) {
        return "The user name is too long (at most 32 characters).";
    }

    if (name->data[0] < 'a' || name->data[0] > 'z') {
        return "The user name must start with a lower-case letter (a-z).";
    }

    for (i = 1; i < name->len; i++) {
        if (!((name->data[i] >= 'a' && name->data[i] <= 'z')
              || (name->data[i] >= '0' && name->data[i] <= '9')
              || name->data[i] == '-' || name->data[i] == '_'))
        {
            return "The user name may only use lower-case letters a-z, "
                   "digits, '-' and '_'.";
        }
    }

    return NULL;
}
