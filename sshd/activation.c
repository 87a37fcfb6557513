/*
 * The device flow (see activation.h): codes, their rows in PostgreSQL, the
 * waiting sessions and how a decision reaches them.
 *
 * States of a record: CREATING (tunnel_activation_create in flight; a
 * "taken" answer draws another code, a few times), PENDING (row id known,
 * in the pending list, expiry timer set), then gone: approved (the
 * session got in), denied, expired, or its session left.  Every way out
 * of PENDING cancels the row (tunnel_activation_cancel deletes it unless
 * it was decided: decided rows are history), fire and forget.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "activation.h"
#include "db.h"
#include "keys.h"
#include "log.h"
#include "server.h"
#include "session.h"


#define TNL_ACT_ALPHABET       "BCDFGHJKLMNPQRSTVWXZ"   /* RFC 8628 6.1 */
#define TNL_ACT_CODE_LEN       8
#define TNL_ACT_TRIES          5      /* codes drawn when one is taken */
#define TNL_ACT_QUERY_MS       5000   /* a person waits for create */
#define TNL_ACT_CANCEL_MS      60000
#define TNL_ACT_CHECK_MS       10000  /* fallback check of pending ids */
#define TNL_ACT_CHECK_BATCH    1000
#define TNL_ACT_RELOAD_MS      10000  /* a key registered a moment ago */


enum {
    TNL_ACT_CHECK_NONE = 0,
    TNL_ACT_CHECK_ASKED,       /* in the check in flight, no row seen yet */
    TNL_ACT_CHECK_APPROVED,
    TNL_ACT_CHECK_DENIED,
};


struct tnl_activation_s {
    tnl_activation_t   *next;          /* pending list */
    tnl_activation_t   *prev;
    tnl_session_t      *session;       /* NULL once the session left */
    tnl_db_query_t     *query;         /* create in flight */
    int64_t             id;            /* the row, once created */
    tnl_timer_t         expiry;
    int                 tries;
    unsigned            pending:1;     /* in the list */
    unsigned            approved:1;    /* NOTIFY said so */
    unsigned            reload_wait:1; /* no code: the key is registered,
                                          our table not reloaded yet */
    unsigned            check:3;       /* TNL_ACT_CHECK_*: the fallback */
    char                code[TNL_ACT_CODE_LEN + 2];   /* "XXXX-XXXX" */
    char                fp[64];
    char                type[48];      /* "ssh-ed25519" */
    char                shown_type[16];   /* "ED25519", as ssh-keygen */
    char               *base64;
};


tnl_activation_conf_t  tnl_activation_conf = {
    1, 600, 3, 1000
};


static tnl_loop_t        *tnl_act_loop;
static tnl_activation_t  *tnl_act_pending;
static int                tnl_act_npending;
static tnl_timer_t        tnl_act_check_timer;
static tnl_db_query_t    *tnl_act_check_query;


static const char  tnl_act_sql_create[] =
    "SELECT r_status, r_id FROM tunnel_activation_create("
    "sha256(convert_to($1, 'UTF8')), decode($2, 'hex'), $3, $4, $5, $6,"
    " $7, $8, $9::integer, $10::integer, $11::integer)";

static const char  tnl_act_sql_cancel[] =
    "SELECT tunnel_activation_cancel($1::bigint)";

static const char  tnl_act_sql_check[] =
    "SELECT id, CASE WHEN approved_at IS NOT NULL THEN 'approved'"
    " WHEN denied_at IS NOT NULL THEN 'denied' ELSE 'pending' END"
    " FROM activation_codes WHERE id = ANY($1::bigint[])";


static void tnl_act_create_done(void *data, PGresult *res,
    const char *error);
static void tnl_act_expired(tnl_timer_t *t);
static void tnl_act_refuse(tnl_activation_t *a, const char *why);
static void tnl_act_try_approved(tnl_activation_t *a);


/* 8 letters, uniform over the alphabet (bytes past 240 are redrawn) */

static int
tnl_act_draw(char *code)
{
    unsigned char  buf[32];
    size_t         i, n;
    ssize_t        got;

    n = 0;

    while (n < TNL_ACT_CODE_LEN) {
        got = getrandom(buf, sizeof(buf), GRND_NONBLOCK);
        if (got <= 0) {
            if (got == -1 && errno == EINTR) {
                continue;
            }
            return -1;
        }

        for (i = 0; i < (size_t) got && n < TNL_ACT_CODE_LEN; i++) {
            if (buf[i] < 240) {
                code[n + (n >= 4)] = TNL_ACT_ALPHABET[buf[i] % 20];
                n++;
            }
        }
    }

    code[4] = '-';
    code[9] = '\0';

    return 0;
}


static const char *
tnl_act_shown_type(enum ssh_keytypes_e t)
{
    switch (t) {
    case SSH_KEYTYPE_ED25519:     return "ED25519";
    case SSH_KEYTYPE_RSA:         return "RSA";
    case SSH_KEYTYPE_DSS:         return "DSA";
    case SSH_KEYTYPE_ECDSA_P256:
    case SSH_KEYTYPE_ECDSA_P384:
    case SSH_KEYTYPE_ECDSA_P521:  return "ECDSA";
    case SSH_KEYTYPE_SK_ECDSA:    return "ECDSA-SK";
    case SSH_KEYTYPE_SK_ED25519:  return "ED25519-SK";
    default:                      return NULL;   /* certificates too */
    }
}


static void
tnl_act_free(tnl_activation_t *a)
{
    tnl_timer_del(&a->expiry);
    free(a->base64);
    free(a);
}


static void
tnl_act_cancel_row(tnl_activation_t *a)
{
    const char  *params[1];
    char         id[24];

    if (a->id == 0) {
        return;
    }

    snprintf(id, sizeof(id), "%" PRId64, a->id);
    params[0] = id;

    /* fire and forget: an unanswered row expires and is deleted anyway */
    (void) tnl_db_query(tnl_act_sql_cancel, 1, params, TNL_ACT_CANCEL_MS,
                        NULL, NULL);
}


static void
tnl_act_unlink(tnl_activation_t *a)
{
    if (!a->pending) {
        return;
    }

    if (a->prev != NULL) {
        a->prev->next = a->next;
    } else {
        tnl_act_pending = a->next;
    }
    if (a->next != NULL) {
        a->next->prev = a->prev;
    }

    a->next = NULL;
    a->prev = NULL;
    a->pending = 0;
    tnl_act_npending--;

    if (tnl_act_npending == 0) {
        tnl_timer_del(&tnl_act_check_timer);
    }
}


/* the record is over: the session (if any) lets go, the row is cancelled */

static void
tnl_act_end(tnl_activation_t *a)
{
    if (a->session != NULL) {
        tnl_session_activation_detach(a->session);
        a->session = NULL;
    }

    tnl_act_unlink(a);
    tnl_act_cancel_row(a);
    tnl_act_free(a);
}


/* denied, expired, or the code vanished: one line, the session closes */

static void
tnl_act_close(tnl_activation_t *a, const char *text)
{
    tnl_session_t  *s = a->session;

    tnl_act_end(a);

    if (s != NULL) {
        tnl_session_activation_ended(s, text);
    }
}


static int
tnl_act_send_create(tnl_activation_t *a)
{
    const char     *params[11];
    char            device[65], seconds[16], per_addr[16], total[16];
    char            letters[TNL_ACT_CODE_LEN + 1];
    unsigned char   rnd[32];
    int             i;

    if (tnl_act_draw(a->code) == -1
        || getrandom(rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t) sizeof(rnd))
    {
        tnl_log_error("activation: getrandom failed: %s", strerror(errno));
        return -1;
    }

    /*
     * The device code of RFC 8628 is the SSH session itself here; the
     * column wants a unique hash, so a random one stands in for it.
     */
    for (i = 0; i < 32; i++) {
        snprintf(device + 2 * i, 3, "%02x", rnd[i]);
    }

    snprintf(seconds, sizeof(seconds), "%d", tnl_activation_conf.ttl);
    snprintf(per_addr, sizeof(per_addr), "%d",
             tnl_activation_conf.max_per_addr);
    snprintf(total, sizeof(total), "%d", tnl_activation_conf.max_total);

    /* the hash is of the 8 letters, upper case, without the dash */
    memcpy(letters, a->code, 4);
    memcpy(letters + 4, a->code + 5, 4);
    letters[8] = '\0';

    params[0] = letters;
    params[1] = device;
    params[2] = a->fp;
    params[3] = a->type;
    params[4] = a->base64;
    params[5] = a->session->client;
    params[6] = tnl_conf.node;
    params[7] = a->session->id;
    params[8] = seconds;
    params[9] = per_addr;
    params[10] = total;

    a->query = tnl_db_query(tnl_act_sql_create, 11, params,
                            TNL_ACT_QUERY_MS, tnl_act_create_done, a);

    return a->query != NULL ? 0 : -1;
}


int
tnl_activation_start(tnl_session_t *s, ssh_key key, const char *fp)
{
    tnl_activation_t  *a;
    const char        *shown, *type;

    shown = tnl_act_shown_type(ssh_key_type(key));
    type = ssh_key_type_to_char(ssh_key_type(key));

    if (shown == NULL || type == NULL || s->activation != NULL) {
        return -1;
    }

    a = calloc(1, sizeof(tnl_activation_t));
    if (a == NULL) {
        return -1;
    }

    if (ssh_pki_export_pubkey_base64(key, &a->base64) != SSH_OK) {
        free(a);
        return -1;
    }

    a->session = s;
    snprintf(a->fp, sizeof(a->fp), "%s", fp);
    snprintf(a->type, sizeof(a->type), "%s", type);
    snprintf(a->shown_type, sizeof(a->shown_type), "%s", shown);
    tnl_timer_init(&a->expiry, tnl_act_loop, tnl_act_expired, a);

    if (tnl_act_send_create(a) == -1) {
        tnl_act_free(a);
        return -1;
    }

    s->activation = a;

    return 0;
}


void
tnl_activation_abandon(tnl_session_t *s)
{
    tnl_activation_t  *a = s->activation;

    if (a == NULL) {
        return;
    }

    s->activation = NULL;
    a->session = NULL;

    if (a->query != NULL) {
        /* the answer may name a row: tnl_act_create_done cancels it */
        return;
    }

    tnl_act_end(a);
}


/* the text an ssh user sees while waiting (the USERAUTH banner) */

static void
tnl_act_banner(tnl_activation_t *a, char *text, size_t size)
{
    char  expires[64];
    int   ttl, n;

    ttl = tnl_activation_conf.ttl;

    if (ttl >= 120 && ttl % 60 == 0) {
        snprintf(expires, sizeof(expires), "%d minutes", ttl / 60);
    } else {
        snprintf(expires, sizeof(expires), "%d second%s", ttl,
                 ttl == 1 ? "" : "s");
    }

    n = snprintf(text, size,
                 "\n"
                 "This key is not registered here yet.\n"
                 "  key:  %s %s\n", a->shown_type, a->fp);

    if (tnl_conf.admin_url != NULL) {
        n += snprintf(text + n, size - n,
                      "  open: %s/activate?code=%s\n",
                      tnl_conf.admin_url, a->code);
    } else {
        n += snprintf(text + n, size - n,
                      "  ask:  the operator of this server to run\n"
                      "        tunnelctl activation approve %s "
                      "--user NAME\n", a->code);
    }

    if (n > 0 && (size_t) n < size) {
        snprintf(text + n, size - n,
                 "  code: %s   (expires in %s)\n"
                 "Waiting for approval... (Ctrl-C to cancel)\n"
                 "\n", a->code, expires);
    }
}


static void
tnl_act_expired(tnl_timer_t *t)
{
    tnl_activation_t  *a = t->data;
    char               text[256];

    if (a->reload_wait) {
        tnl_log_warn("session %s: key %s is registered but was not in the "
                     "key table within %d s", a->session ? a->session->id
                                                        : "-", a->fp,
                     TNL_ACT_RELOAD_MS / 1000);
        tnl_act_refuse(a, "This key is registered, but the tunnel server "
                       "has not loaded it yet: connect again in a few "
                       "seconds, or ask the operator.");
        return;
    }

    tnl_log_info("activation: code %" PRId64 " for %s expired", a->id,
                 a->fp);

    snprintf(text, sizeof(text), "The code %s expired before anyone "
             "approved it: no tunnel was opened. Connect again for a new "
             "code.", a->code);

    tnl_act_close(a, text);
}


static void
tnl_act_check_start(void)
{
    if (!tnl_timer_is_set(&tnl_act_check_timer)) {
        tnl_timer_add(&tnl_act_check_timer, TNL_ACT_CHECK_MS);
    }
}


/* the row exists: the session waits */

static void
tnl_act_created(tnl_activation_t *a, int64_t id)
{
    tnl_session_t  *s = a->session;
    char            text[1024];

    a->id = id;
    a->pending = 1;
    a->next = tnl_act_pending;
    if (tnl_act_pending != NULL) {
        tnl_act_pending->prev = a;
    }
    tnl_act_pending = a;
    tnl_act_npending++;

    tnl_timer_add(&a->expiry, (uint64_t) tnl_activation_conf.ttl * 1000);
    tnl_act_check_start();

    tnl_log_info("session %s: key %s waits for approval (code %" PRId64
                 ", from %s)", s->id, a->fp, id, s->client);

    tnl_act_banner(a, text, sizeof(text));
    tnl_session_activation_pending(s, text);
}


/* no code: the session gets today's refusal, with why */

static void
tnl_act_refuse(tnl_activation_t *a, const char *why)
{
    tnl_session_t  *s = a->session;

    tnl_act_end(a);
    tnl_session_activation_refused(s, why);
}


/*
 * The key is in ssh_keys but not in our table: added a moment ago (the
 * README's "key add" then ssh at once), and the NOTIFY-driven reload has
 * not come yet.  No code: the session waits, like an approved one, for
 * the reload that lets it in (or says its account is disabled), at most
 * TNL_ACT_RELOAD_MS, then gets today's refusal.
 */
static void
tnl_act_wait_reload(tnl_activation_t *a)
{
    a->reload_wait = 1;
    a->pending = 1;
    a->next = tnl_act_pending;
    if (tnl_act_pending != NULL) {
        tnl_act_pending->prev = a;
    }
    tnl_act_pending = a;
    tnl_act_npending++;

    tnl_timer_add(&a->expiry, TNL_ACT_RELOAD_MS);

    tnl_log_info("session %s: key %s is registered, waiting for the key "
                 "table to load it", a->session->id, a->fp);

    tnl_act_try_approved(a);
}


static void
tnl_act_create_done(void *data, PGresult *res, const char *error)
{
    tnl_activation_t  *a = data;
    const char        *status;
    char               why[256];
    int64_t            id;

    a->query = NULL;
    status = NULL;
    id = 0;

    if (res != NULL && PQntuples(res) == 1 && PQnfields(res) == 2) {
        status = PQgetvalue(res, 0, 0);
        id = PQgetisnull(res, 0, 1)
             ? 0 : strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    }

    if (a->session == NULL) {
        /* the client left meanwhile: a row made for it goes */
        if (status != NULL && strcmp(status, "ok") == 0) {
            a->id = id;
        }
        tnl_act_end(a);
        return;
    }

    if (status == NULL) {
        tnl_log_warn("session %s: no activation code for %s: %s",
                     a->session->id, a->fp, error ? error : "bad answer");
        tnl_act_refuse(a, "The tunnel server cannot issue an activation "
                       "code right now (its database does not answer): "
                       "try again in a minute.");
        return;
    }

    if (strcmp(status, "ok") == 0 && id > 0) {
        tnl_act_created(a, id);
        return;
    }

    if (strcmp(status, "taken") == 0 && ++a->tries < TNL_ACT_TRIES) {
        if (tnl_act_send_create(a) == 0) {
            return;
        }
    }

    if (strcmp(status, "registered") == 0) {
        tnl_act_wait_reload(a);
        return;
    }

    tnl_log_info("session %s: no activation code for %s from %s: %s",
                 a->session->id, a->fp, a->session->client, status);

    if (strcmp(status, "addr_limit") == 0) {
        snprintf(why, sizeof(why), "Too many keys from your address are "
                 "waiting for approval already (%d at most): approve or "
                 "cancel those first.", tnl_activation_conf.max_per_addr);

    } else if (strcmp(status, "full") == 0) {
        snprintf(why, sizeof(why), "Too many keys are waiting for approval "
                 "on this server right now: try again later.");

    } else {
        snprintf(why, sizeof(why), "The tunnel server could not issue an "
                 "activation code: try again in a minute.");
    }

    tnl_act_refuse(a, why);
}


/* approved and in the key table: in, exactly as a registered key */

static void
tnl_act_try_approved(tnl_activation_t *a)
{
    const tnl_key_t  *key;
    tnl_session_t    *s = a->session;

    if (tnl_keys_is_disabled(a->fp)) {
        tnl_act_close(a, "This key now belongs to a disabled account: no "
                      "tunnel was opened.");
        return;
    }

    /*
     * In the table is enough, approved or not yet told: the signature was
     * verified and the key is registered now (added through this code, or
     * by hand meanwhile); the row is cancelled if still undecided.
     */
    key = tnl_keys_find(a->fp);
    if (key == NULL) {
        return;                     /* the reload follows (tunnel_keys) */
    }

    tnl_log_info("session %s: key %s approved (code %" PRId64 ")", s->id,
                 a->fp, a->id);

    tnl_act_end(a);
    tnl_session_activation_approved(s, key);
}


void
tnl_activation_keys_changed(void)
{
    tnl_activation_t  *a, *next;

    for (a = tnl_act_pending; a != NULL; a = next) {
        next = a->next;
        tnl_act_try_approved(a);
    }
}


static tnl_activation_t *
tnl_act_find(int64_t id)
{
    tnl_activation_t  *a;

    for (a = tnl_act_pending; a != NULL; a = a->next) {
        if (a->id == id) {
            return a;
        }
    }

    return NULL;
}


static void
tnl_act_decided(tnl_activation_t *a, const char *what)
{
    if (strcmp(what, "approved") == 0) {
        a->approved = 1;
        tnl_act_try_approved(a);
        return;
    }

    if (strcmp(what, "denied") == 0) {
        tnl_log_info("activation: code %" PRId64 " for %s denied", a->id,
                     a->fp);
        tnl_act_close(a, "Activation denied: this key was not added and "
                      "no tunnel was opened.");
        return;
    }

    if (strcmp(what, "gone") == 0) {
        tnl_act_close(a, "The activation code was withdrawn: no tunnel "
                      "was opened. Connect again for a new code.");
    }
}


/* NOTIFY tunnel_activation '<id> approved|denied' (every worker hears) */

static void
tnl_act_notify(const char *payload)
{
    tnl_activation_t  *a;
    char              *end;
    int64_t            id;

    id = strtoll(payload, &end, 10);
    if (end == payload || *end != ' ') {
        tnl_log_warn("activation: unexpected notification \"%.64s\"",
                     payload);
        return;
    }

    a = tnl_act_find(id);
    if (a != NULL) {
        tnl_act_decided(a, end + 1);
    }
}


/*
 * The fallback: notifications sent while the connection to PostgreSQL
 * was down are lost, so the pending ids are asked for now and then, in
 * one query; a row that is gone (deleted by an operator) ends its wait.
 */

static void
tnl_act_check_done(void *data, PGresult *res, const char *error)
{
    tnl_activation_t  *a, *next;
    const char        *st;
    int                i, n;

    (void) data;

    tnl_act_check_query = NULL;

    if (res == NULL) {
        tnl_log_debug("activation: check failed: %s", error);
        for (a = tnl_act_pending; a != NULL; a = a->next) {
            a->check = TNL_ACT_CHECK_NONE;
        }
        goto again;
    }

    n = PQntuples(res);

    for (i = 0; i < n; i++) {
        a = tnl_act_find(strtoll(PQgetvalue(res, i, 0), NULL, 10));
        if (a == NULL || a->check != TNL_ACT_CHECK_ASKED) {
            continue;
        }

        st = PQgetvalue(res, i, 1);
        a->check = strcmp(st, "approved") == 0 ? TNL_ACT_CHECK_APPROVED
                   : strcmp(st, "denied") == 0 ? TNL_ACT_CHECK_DENIED
                   : TNL_ACT_CHECK_NONE;
    }

    /* decisions end records: the next one is taken first */

    for (a = tnl_act_pending; a != NULL; a = next) {
        next = a->next;

        switch (a->check) {
        case TNL_ACT_CHECK_ASKED:
            a->check = TNL_ACT_CHECK_NONE;
            tnl_act_decided(a, "gone");
            break;
        case TNL_ACT_CHECK_APPROVED:
            a->check = TNL_ACT_CHECK_NONE;
            tnl_act_decided(a, "approved");
            break;
        case TNL_ACT_CHECK_DENIED:
            a->check = TNL_ACT_CHECK_NONE;
            tnl_act_decided(a, "denied");
            break;
        default:
            break;
        }
    }

again:

    if (tnl_act_npending > 0) {
        tnl_act_check_start();
    }
}


static void
tnl_act_check(tnl_timer_t *t)
{
    tnl_activation_t  *a;
    const char        *params[1];
    char              *ids;
    size_t             size, len;
    int                n;

    (void) t;

    if (tnl_act_npending == 0 || tnl_act_check_query != NULL) {
        return;
    }

    size = (size_t) tnl_act_npending * 21 + 3;
    ids = malloc(size);
    if (ids == NULL) {
        tnl_act_check_start();
        return;
    }

    len = 0;
    ids[len++] = '{';

    for (a = tnl_act_pending, n = 0; a != NULL && n < TNL_ACT_CHECK_BATCH;
         a = a->next)
    {
        if (a->reload_wait) {
            continue;           /* no row: the key table decides */
        }
        len += snprintf(ids + len, size - len, "%s%" PRId64,
                        n ? "," : "", a->id);
        a->check = TNL_ACT_CHECK_ASKED;
        n++;
    }

    snprintf(ids + len, size - len, "}");
    params[0] = ids;

    tnl_act_check_query = tnl_db_query(tnl_act_sql_check, 1, params,
                                       TNL_ACT_QUERY_MS, tnl_act_check_done,
                                       NULL);
    free(ids);

    if (tnl_act_check_query == NULL) {
        for (a = tnl_act_pending; a != NULL; a = a->next) {
            a->check = TNL_ACT_CHECK_NONE;
        }
        tnl_act_check_start();
    }
}


int
tnl_activation_init(tnl_loop_t *loop)
{
    tnl_act_loop = loop;
    tnl_timer_init(&tnl_act_check_timer, loop, tnl_act_check, NULL);

    if (!tnl_activation_conf.enabled) {
        return 0;
    }

    return tnl_db_listen("tunnel_activation", tnl_act_notify);
}
