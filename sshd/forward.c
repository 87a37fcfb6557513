/*
 * tcpip-forward and cancel-tcpip-forward (see forward.h).  Decides the
 * tunnel name, creates the Unix socket, claims the name, answers the
 * client (in request order, a refusal once its explanation was shown),
 * and tears it all down.  Does not carry bytes (pump.c).
 *
 * Bind address -> name: "" / "localhost" (what "-R 80:..." and "-R :80"
 * send) and wildcard addresses mean "give me a name": the user's reserved
 * name, else a random readable one.  "NAME" or "NAME.DOMAIN" asks for
 * NAME.  The address is echoed verbatim when opening forwarded-tcpip
 * channels: OpenSSH matches the open against what it asked for.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <libssh/server.h>

#include "tnl_name.h"
#include "db.h"
#include "forward.h"
#include "live.h"
#include "metrics.h"
#include "keys.h"
#include "log.h"
#include "pump.h"
#include "routes.h"
#include "server.h"
#include "session.h"
#include "worker.h"


#define TNL_FORWARD_RANDOM_TRIES  4
#define TNL_FORWARD_BACKLOG       511
#define TNL_FORWARD_PAUSE_MS      250   /* accept after EMFILE */

/*
 * A refusal with text waits for the session channel.  OpenSSH sends the
 * "session" channel open right after its tcpip-forward requests, so a
 * client that has not opened one within TNL_REPLY_NO_CHANNEL_MS of the
 * request is a -N client: it gets the refusal at once.
 */
#define TNL_REPLY_NO_CHANNEL_MS   500

/*
 * Once the text was written to the channel and libssh's output flushed, the
 * refusal still waits TNL_REPLY_SHOWN_MS.  OpenSSH 9.2's client_loop()
 * puts channel data into the channel's buffer and writes it to the
 * terminal only in its next loop turn, after poll; a REQUEST_FAILURE read
 * in the same turn as the data is handled first, and with
 * ExitOnForwardFailure it fatal()s with the text still in that buffer.
 * Measured on loopback with OpenSSH 9.2 and "-tt -o ExitOnForwardFailure=yes",
 * 20 tries each: sent right after the flush the text showed 6 times (the
 * two packets were mostly read together); 2 ms and 10 ms: 20/20 on an idle
 * machine but 18/20 and 19/20 with both cores busy; 100 ms: 20/20 in both.
 * The client exits about 0.1 s later than it would; only refusals wait.
 */
#define TNL_REPLY_SHOWN_MS        100

/* a refusal is never held longer than this after its request came */
#define TNL_REPLY_HOLD_MAX_MS     2000


static const char  *tnl_adjectives[] = {
    "amber", "brave", "calm", "clever", "crisp", "dusty", "eager", "fancy",
    "gentle", "happy", "jolly", "keen", "lively", "lucky", "merry", "misty",
    "noble", "polite", "proud", "quick", "quiet", "rapid", "rosy", "shiny",
    "silent", "snowy", "sunny", "swift", "tidy", "vivid", "witty", "zesty",
};

static const char  *tnl_nouns[] = {
    "badger", "beacon", "canyon", "comet", "falcon", "fern", "forest",
    "harbor", "heron", "island", "lagoon", "lantern", "maple", "meadow",
    "otter", "panda", "pebble", "pine", "planet", "puffin", "river",
    "robin", "rocket", "sparrow", "summit", "tiger", "tulip", "valley",
    "walrus", "willow", "wombat", "zebra",
};


static void tnl_forward_claimed(tnl_route_t *route,
    tnl_claim_status_e status, const char *detail, void *data);
static void tnl_forward_lost(tnl_route_t *route, void *data);
static void tnl_forward_resume(tnl_timer_t *t);


static uint32_t
tnl_forward_random(void)
{
    uint32_t  r;

    if (getrandom(&r, sizeof(r), 0) != sizeof(r)) {
        r = (uint32_t) random();
    }

    return r;
}


/*
 * adjective-noun-NN, never a system name nor a name someone reserved (an
 * operator may put any name on either list): a few draws, then the last
 * one, which the claim may still refuse as taken (and then draw again)
 */
static void
tnl_forward_random_name(char *out)
{
    uint32_t  r;
    int       i;

    for (i = 0; i < 8; i++) {
        r = tnl_forward_random();

        snprintf(out, TNL_NAME_MAX + 1, "%s-%s-%02u",
                 tnl_adjectives[r % 32], tnl_nouns[(r / 32) % 32],
                 (unsigned) (10 + (r / 1024) % 90));

        if (!tnl_keys_is_system(out) && tnl_keys_reserved_owner(out) == 0) {
            return;
        }
    }
}


static int
tnl_forward_is_wildcard(const char *addr)
{
    static const char  *any[] = {
        "", "localhost", "*", "0.0.0.0", "::", "127.0.0.1", "::1", NULL
    };
    int                 i;

    for (i = 0; any[i] != NULL; i++) {
        if (strcmp(addr, any[i]) == 0) {
            return 1;
        }
    }

    return 0;
}


static tnl_forward_t *
tnl_forward_find_name(tnl_session_t *s, const char *name)
{
    tnl_forward_t  *f;

    for (f = s->forwards; f != NULL; f = f->next) {
        if (f->state != TNL_FORWARD_CLOSED && strcmp(f->name, name) == 0) {
            return f;
        }
    }

    return NULL;
}


/*
 * "-R 0:..." lets us pick the port the client then matches channel opens
 * against: 80 when free, else one no other forward of this session with
 * the same bind address uses (two equal address/port pairs would be
 * ambiguous to the client)
 */
static int
tnl_forward_free_port(tnl_session_t *s, const char *addr)
{
    tnl_forward_t  *f;
    int             port;

    for (port = 80; port < 65536; port = (port == 80) ? 10000 : port + 1) {
        for (f = s->forwards; f != NULL; f = f->next) {
            if (f->state != TNL_FORWARD_CLOSED && f->bind_port == port
                && strcmp(f->bind_address, addr) == 0)
            {
                break;
            }
        }

        if (f == NULL) {
            return port;
        }
    }

    return 80;
}


void
tnl_forward_public_url(const char *name, char *out, size_t size)
{
    const char  *t, *p;

    /* the template comes from the operator; only its first %s is ours */

    t = tnl_conf.public_url;
    p = strstr(t, "%s");

    if (p == NULL) {
        snprintf(out, size, "%s", t);
        return;
    }

    snprintf(out, size, "%.*s%s%s", (int) (p - t), t, name, p + 2);
}


/* "Your tunnel is up" per active forward, oldest first (list: newest first) */
static unsigned
tnl_forward_print_up(tnl_session_t *s, tnl_forward_t *f)
{
    unsigned  n;
    char      url[512];

    if (f == NULL) {
        return 0;
    }

    n = tnl_forward_print_up(s, f->next);

    if (f->state != TNL_FORWARD_ACTIVE) {
        return n;
    }

    tnl_forward_public_url(f->name, url, sizeof(url));
    tnl_session_printf(s, "Your tunnel is up: %s%s", url, tnl_session_eol(s));

    return n + 1;
}


void
tnl_forward_summary(tnl_session_t *s)
{
    const char  *eol;
    unsigned     up;

    if (s->summary_done || !s->shell || s->closing
        || s->fw_up + s->fw_refused < s->fw_asked)
    {
        return;
    }

    s->summary_done = 1;
    eol = tnl_session_eol(s);

    up = tnl_forward_print_up(s, s->forwards);

    if (up > 0) {
        if (s->fw_refused > 0) {
            tnl_session_printf(s, "Not opened: %s (see above).%s",
                               s->refused_names, eol);
        }

        tnl_session_printf(s, "Press Ctrl-C to stop your tunnel%s.%s",
                           up > 1 ? "s" : "", eol);
        return;
    }

    if (s->fw_asked == 0) {
        tnl_session_printf(s, "No tunnel is open: you asked for none. "
                           "Add -R NAME:80:localhost:PORT to your ssh "
                           "command.%s", eol);

    } else if (s->refused_names[0] != '\0') {
        tnl_session_printf(s, "No tunnel is open: %s %s refused (see "
                           "above).%s", s->refused_names,
                           s->fw_refused > 1 ? "were" : "was", eol);

    } else {
        tnl_session_printf(s, "No tunnel is open (see above).%s", eol);
    }

    s->no_tunnel = 1;
    s->exit_status = 1;
}


static void
tnl_reply_timer_handler(tnl_timer_t *t)
{
    tnl_reply_t  *rp = t->data;

    tnl_forward_replies_run(rp->session);      /* may free rp */
}


/* queues msg for its reply; NULL (msg still the caller's) when full */
static tnl_reply_t *
tnl_reply_new(tnl_session_t *s, ssh_message msg)
{
    tnl_reply_t  *rp, **pp;
    char          why[128];

    /* unanswered forward requests per session: more closes the session */
    if (s->nreplies >= (unsigned) tnl_conf.max_pending) {
        snprintf(why, sizeof(why), "more than %d forward requests waiting "
                 "for an answer (--max-pending-requests)",
                 tnl_conf.max_pending);
        tnl_session_abuse(s, why);
        return NULL;
    }

    rp = calloc(1, sizeof(tnl_reply_t));
    if (rp == NULL) {
        return NULL;
    }

    rp->session = s;
    rp->request = msg;
    rp->state = TNL_REPLY_WAITING;
    rp->asked_ms = tnl_now_ms();
    tnl_timer_init(&rp->timer, s->loop, tnl_reply_timer_handler, rp);

    for (pp = &s->replies; *pp != NULL; pp = &(*pp)->next) {
        /* void */
    }

    *pp = rp;
    s->nreplies++;

    return rp;
}


static void
tnl_reply_free(tnl_reply_t *rp)
{
    tnl_session_t  *s = rp->session;
    tnl_reply_t   **pp;

    for (pp = &s->replies; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == rp) {
            *pp = rp->next;
            s->nreplies--;
            break;
        }
    }

    tnl_timer_del(&rp->timer);

    if (rp->request != NULL) {
        ssh_message_free(rp->request);
    }

    free(rp);
}


/* sets the outcome; sends it (and what waited behind it) if it may go */
static void
tnl_reply_decide(tnl_reply_t *rp, tnl_reply_state_e state, int port)
{
    tnl_session_t  *s = rp->session;
    size_t          len;

    rp->state = state;
    rp->port = (uint16_t) port;

    if (rp->forward) {
        if (state == TNL_REPLY_SUCCESS) {
            s->fw_up++;

        } else {
            s->fw_refused++;
            len = strlen(s->refused_names);
            snprintf(s->refused_names + len, sizeof(s->refused_names) - len,
                     "%s%s", len ? ", " : "", rp->what);
        }

        /* the summary may be due (tnl_forward_summary) */
        tnl_session_post_process(s);
    }

    tnl_forward_replies_run(rp->session);
}


/*
 * How long a refusal is still held: 0 to send it now, else milliseconds
 * until the next look (the session pass also looks again whenever the
 * session makes progress: shell request, text flushed).
 */
static uint64_t
tnl_reply_hold(tnl_session_t *s, tnl_reply_t *rp, uint64_t now)
{
    uint64_t  age;

    age = now - rp->asked_ms;

    if (age >= TNL_REPLY_HOLD_MAX_MS) {
        return 0;
    }

    if (s->chan == NULL) {
        /* -N sends no channel open: do not keep it waiting */
        return age < TNL_REPLY_NO_CHANNEL_MS
               ? TNL_REPLY_NO_CHANNEL_MS - age : 0;
    }

    if (s->chan_closed || !ssh_channel_is_open(s->chan)) {
        return 0;                  /* nowhere to show the text any more */
    }

    /*
     * the channel is open; the pty and shell requests are on their way, or
     * the text waits for the channel's window or for the socket
     */

    if (!s->shell || s->text_len > 0
        || (ssh_get_poll_flags(s->ssh) & SSH_WRITE_PENDING))
    {
        rp->shown_ms = 0;
        return TNL_REPLY_HOLD_MAX_MS - age;
    }

    if (rp->shown_ms == 0) {
        rp->shown_ms = now;
    }

    if (now - rp->shown_ms < TNL_REPLY_SHOWN_MS) {
        return TNL_REPLY_SHOWN_MS - (now - rp->shown_ms);
    }

    return 0;
}


void
tnl_forward_replies_run(tnl_session_t *s)
{
    tnl_reply_t  *rp;
    uint64_t      hold;
    unsigned      sent;

    sent = 0;

    while (!s->closing && !s->finished && (rp = s->replies) != NULL) {

        switch (rp->state) {

        case TNL_REPLY_WAITING:
            goto done;

        case TNL_REPLY_SUCCESS:
            /* a port is sent back only when the client asked for port 0 */
            (void) ssh_message_global_request_reply_success(rp->request,
                                                            rp->port);
            break;

        case TNL_REPLY_REFUSED:
            hold = tnl_reply_hold(s, rp, tnl_now_ms());
            if (hold > 0) {
                tnl_timer_add(&rp->timer, hold);
                goto done;
            }

            /* fall through */

        case TNL_REPLY_FAILURE:
            (void) ssh_message_reply_default(rp->request);
            break;
        }

        tnl_reply_free(rp);
        sent++;
    }

done:

    if (sent) {
        /* the replies may wait in libssh's buffer for the socket */
        tnl_session_post_process(s);
    }
}


/* drops every reply unsent (the session is closing or gone) */
static void
tnl_forward_replies_drop(tnl_session_t *s)
{
    tnl_forward_t  *f;

    for (f = s->forwards; f != NULL; f = f->next) {
        f->reply = NULL;
    }

    while (s->replies != NULL) {
        tnl_reply_free(s->replies);
    }
}


/* decides the forward's reply, which it then forgets */
static void
tnl_forward_answer(tnl_forward_t *f, tnl_reply_state_e state)
{
    tnl_reply_t  *rp;

    rp = f->reply;
    if (rp == NULL) {
        return;
    }

    f->reply = NULL;
    tnl_reply_decide(rp, state, f->bind_port);
}


static int
tnl_forward_listen(tnl_forward_t *f)
{
    struct sockaddr_un  sa;
    uint32_t            r[2];
    int                 fd, n;

    r[0] = tnl_forward_random();
    r[1] = tnl_forward_random();

    n = snprintf(f->socket_path, sizeof(f->socket_path), "%s/t-%08x%08x.sock",
                 tnl_conf.socket_dir, r[0], r[1]);
    if (n < 0 || (size_t) n >= sizeof(f->socket_path)) {
        tnl_log_error("socket dir \"%s\" is too long for a Unix socket path",
                      tnl_conf.socket_dir);
        f->socket_path[0] = '\0';
        return -1;
    }

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        tnl_log_error("socket(AF_UNIX): %s", strerror(errno));
        f->socket_path[0] = '\0';
        return -1;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, f->socket_path, (size_t) n + 1);

    if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) == -1) {
        /*
         * ENOSPC (no inode left), EROFS, EACCES, EDQUOT: the directory,
         * not this client; the tunnels already up keep their sockets
         */
        tnl_log_error("cannot create the socket of tunnel %s in \"%s\": "
                      "%s; new tunnels are refused until the socket "
                      "directory has room and is writable",
                      f->name, tnl_conf.socket_dir, strerror(errno));
        close(fd);
        f->socket_path[0] = '\0';
        return -1;
    }

    /* the directory (0750) is the real fence; the socket is 0660 */

    if (chmod(f->socket_path, 0660) == -1
        || (tnl_conf.socket_gid != (gid_t) -1
            && chown(f->socket_path, (uid_t) -1, tnl_conf.socket_gid) == -1)
        || listen(fd, TNL_FORWARD_BACKLOG) == -1)
    {
        tnl_log_error("socket \"%s\": %s", f->socket_path, strerror(errno));
        close(fd);
        unlink(f->socket_path);
        f->socket_path[0] = '\0';
        return -1;
    }

    f->fd = fd;
    tnl_io_init(&f->io, f->session->loop, fd, tnl_pump_accept_handler, f);

    /* silent until the claim answers, but counted (tnl_loop_ios) */
    (void) tnl_io_set(&f->io, 0);

    return 0;
}


/* refuses a request that got no forward; text (if any) is shown first */
static void
tnl_forward_refuse(tnl_session_t *s, tnl_reply_t *rp, const char *text)
{
    tnl_metric_add(TNL_M_TUNNELS_REFUSED, 1);

    if (text == NULL) {
        tnl_reply_decide(rp, TNL_REPLY_FAILURE, 0);
        return;
    }

    tnl_session_printf(s, "%s%s", text, tnl_session_eol(s));
    tnl_reply_decide(rp, TNL_REPLY_REFUSED, 0);
}


/* picks the name for a request; 0, or -1 with a message for the person */
static int
tnl_forward_pick_name(tnl_session_t *s, const char *addr, char *name,
    unsigned *auto_name, char *why, size_t why_size)
{
    const char  *err, *reserved;
    int64_t      owner;

    *auto_name = 0;

    if (tnl_forward_is_wildcard(addr)) {
        reserved = tnl_keys_reserved_name_of(s->user_id);

        if (reserved != NULL && tnl_forward_find_name(s, reserved) == NULL) {
            snprintf(name, TNL_NAME_MAX + 1, "%s", reserved);
            return 0;
        }

        *auto_name = 1;
        tnl_forward_random_name(name);
        return 0;
    }

    if (tnl_host_to_name(addr, strlen(addr), tnl_conf.domain,
                         strlen(tnl_conf.domain), name) != 0
        && tnl_name_validate(addr, strlen(addr), name, &err) != 0)
    {
        snprintf(why, why_size, "\"%.64s\" cannot be a tunnel name: %s.",
                 addr, err);
        return -1;
    }

    if (tnl_keys_is_system(name)) {
        snprintf(why, why_size, "The name %s is kept for the system; pick "
                 "another with -R othername:80:localhost:PORT", name);
        return -1;
    }

    owner = tnl_keys_reserved_owner(name);
    if (owner != 0 && owner != s->user_id) {
        snprintf(why, why_size, "The name %s is reserved by another user; "
                 "pick another with -R othername:80:localhost:PORT", name);
        return -1;
    }

    if (tnl_forward_find_name(s, name) != NULL) {
        snprintf(why, why_size, "You already forward %s in this session.",
                 name);
        return -1;
    }

    return 0;
}


static void
tnl_forward_claim(tnl_forward_t *f)
{
    tnl_session_t  *s = f->session;

    f->route = tnl_route_new(f->name, f->socket_path, s->user, s->user_id,
                             s->id, s->client, tnl_forward_lost, f);
    if (f->route == NULL) {
        tnl_forward_answer(f, TNL_REPLY_FAILURE);
        tnl_forward_close(f, "out of memory");
        return;
    }

    f->tries++;

    /* may answer before returning (Redis down): nothing follows this call */
    tnl_route_claim(f->route, tnl_forward_claimed);
}


/* queues msg's reply, or disposes of msg; NULL when it cannot be queued */
static tnl_reply_t *
tnl_forward_reply_new(tnl_session_t *s, ssh_message msg)
{
    tnl_reply_t  *rp;

    rp = tnl_reply_new(s, msg);
    if (rp != NULL) {
        return rp;
    }

    if (!s->closing) {
        (void) ssh_message_reply_default(msg);     /* out of memory */
    }

    ssh_message_free(msg);

    return NULL;
}


void
tnl_forward_request(tnl_session_t *s, ssh_message msg)
{
    tnl_forward_t  *f;
    tnl_reply_t    *rp;
    const char     *addr;
    char            name[TNL_NAME_MAX + 1];
    char            why[256];
    unsigned        auto_name;
    int             port;

    if (s->closing) {
        ssh_message_free(msg);           /* goes away with the session */
        return;
    }

    rp = tnl_forward_reply_new(s, msg);
    if (rp == NULL) {
        return;
    }

    addr = ssh_message_global_request_address(msg);
    port = ssh_message_global_request_port(msg);

    rp->forward = 1;
    s->fw_asked++;
    if (addr != NULL && !tnl_forward_is_wildcard(addr)) {
        snprintf(rp->what, sizeof(rp->what), "%.64s", addr);
    } else {
        snprintf(rp->what, sizeof(rp->what), "-R %d (no name)", port);
    }

    if (addr == NULL || port < 0 || port > 65535) {
        tnl_forward_refuse(s, rp, NULL);
        return;
    }

    if (s->nforwards >= tnl_conf.max_forwards) {
        tnl_log_info("session %s: refused forward \"%s\": limit of %d",
                     s->id, addr, tnl_conf.max_forwards);
        snprintf(why, sizeof(why), "You have reached the limit of %d tunnels "
                 "per connection.", tnl_conf.max_forwards);
        tnl_forward_refuse(s, rp, why);
        return;
    }

    if (tnl_forward_pick_name(s, addr, name, &auto_name, why, sizeof(why))) {
        tnl_log_info("session %s: refused forward \"%s\": %s",
                     s->id, addr, why);
        tnl_forward_refuse(s, rp, why);
        return;
    }

    /* each tunnel holds a socket, and its requests one fd each */
    if (tnl_worker_fds_short()) {
        tnl_worker_log_fd_shortage("descriptor reserve reached: refusing "
                                   "new tunnels", 0);
        tnl_log_info("session %s: refused forward \"%s\": at capacity",
                     s->id, addr);
        tnl_forward_refuse(s, rp, "This server is at capacity, try again "
                           "later.");
        return;
    }

    f = calloc(1, sizeof(tnl_forward_t));
    if (f == NULL) {
        tnl_forward_refuse(s, rp, NULL);
        return;
    }

    tnl_timer_init(&f->pause, s->loop, tnl_forward_resume, f);

    f->bind_address = strdup(addr);
    if (f->bind_address == NULL) {
        free(f);
        tnl_forward_refuse(s, rp, NULL);
        return;
    }

    f->session = s;
    f->state = TNL_FORWARD_CLAIMING;
    f->reply = rp;
    f->fd = -1;
    f->asked_port = port;
    f->bind_port = port ? port : tnl_forward_free_port(s, addr);
    f->auto_name = auto_name;
    f->started = time(NULL);
    snprintf(f->name, sizeof(f->name), "%s", name);

    f->next = s->forwards;
    s->forwards = f;
    s->nforwards++;

    if (tnl_forward_listen(f) == -1) {
        tnl_session_printf(s, "The server cannot create new tunnels right "
                           "now (no room or no write access for their "
                           "sockets). Existing tunnels keep working; please "
                           "retry later.%s", tnl_session_eol(s));
        tnl_forward_answer(f, TNL_REPLY_REFUSED);
        tnl_forward_close(f, "cannot create its socket");
        return;
    }

    tnl_forward_claim(f);
}


static void
tnl_forward_up(tnl_forward_t *f, const char *takeover)
{
    tnl_session_t   *s = f->session;
    tnl_db_event_t   ev;
    char             url[512];

    f->state = TNL_FORWARD_ACTIVE;
    tnl_metric_add(TNL_M_TUNNELS_OPENED, 1);
    f->started = time(NULL);

    if (tnl_io_set(&f->io, EPOLLIN) == -1) {
        tnl_log_error("epoll (tunnel %s): %s", f->name, strerror(errno));
    }

    tnl_forward_answer(f, TNL_REPLY_SUCCESS);

    tnl_forward_public_url(f->name, url, sizeof(url));

    tnl_log_info("tunnel %s up: user \"%s\" session %s socket %s%s%s",
                 f->name, s->user, s->id, f->socket_path,
                 takeover ? " took over from " : "", takeover ? takeover : "");

    /* before the summary, the summary tells (tnl_forward_summary) */
    if (s->shell && s->summary_done) {
        tnl_session_printf(s, "Your tunnel is up: %s%s", url,
                           tnl_session_eol(s));
    }

    memset(&ev, 0, sizeof(ev));
    ev.event = takeover ? "takeover" : "open";
    ev.name = f->name;
    ev.user_id = s->user_id;
    ev.fingerprint = s->fingerprint;
    ev.client = s->client;
    ev.session = s->id;
    ev.detail = takeover;
    tnl_db_log_event(&ev);
}


static void
tnl_forward_claimed(tnl_route_t *route, tnl_claim_status_e status,
    const char *detail, void *data)
{
    tnl_forward_t  *f = data;
    tnl_session_t  *s = f->session;
    char            why[256];

    (void) route;

    if (f->state != TNL_FORWARD_CLAIMING) {
        return;
    }

    switch (status) {

    case TNL_CLAIM_CLAIMED:
        tnl_forward_up(f, NULL);
        return;

    case TNL_CLAIM_TAKEOVER:
        tnl_forward_up(f, detail);
        return;

    case TNL_CLAIM_TAKEN:
        tnl_route_release(f->route);        /* not ours: just frees it */
        f->route = NULL;

        if (f->auto_name && f->tries < TNL_FORWARD_RANDOM_TRIES) {
            tnl_forward_random_name(f->name);
            tnl_forward_claim(f);
            return;
        }

        tnl_log_info("tunnel %s: refused for user \"%s\": held by user "
                     "\"%s\"", f->name, s->user, detail ? detail : "?");
        snprintf(why, sizeof(why), "The name %s is in use by another user; "
                 "pick another with -R othername:80:localhost:PORT",
                 f->name);
        tnl_session_printf(s, "%s%s", why, tnl_session_eol(s));
        tnl_forward_answer(f, TNL_REPLY_REFUSED);
        tnl_forward_close(f, "name taken");
        return;

    default:
        tnl_log_warn("tunnel %s: claim failed: Redis unavailable", f->name);
        tnl_session_printf(s, "The tunnel registry is unavailable, retry in "
                           "a moment.%s", tnl_session_eol(s));
        tnl_forward_answer(f, TNL_REPLY_REFUSED);
        tnl_forward_close(f, "registry unavailable");
        return;
    }
}


static void
tnl_forward_lost(tnl_route_t *route, void *data)
{
    tnl_forward_t  *f = data;

    (void) route;

    tnl_session_printf(f->session, "Your tunnel %s was taken over by "
                       "another session and is closed.%s", f->name,
                       tnl_session_eol(f->session));
    tnl_forward_close(f, "taken over");
}


void
tnl_forward_cancel(tnl_session_t *s, ssh_message msg)
{
    tnl_forward_t  *f;
    tnl_reply_t    *rp;
    const char     *addr;
    int             port;

    if (s->closing) {
        ssh_message_free(msg);
        return;
    }

    /* OpenSSH wants no reply to a cancel; it still takes its turn */

    rp = tnl_forward_reply_new(s, msg);
    if (rp == NULL) {
        return;
    }

    addr = ssh_message_global_request_address(msg);
    port = ssh_message_global_request_port(msg);

    for (f = s->forwards; f != NULL; f = f->next) {
        if (f->state == TNL_FORWARD_ACTIVE && addr != NULL
            && strcmp(f->bind_address, addr) == 0
            && (f->asked_port == port || f->bind_port == port))
        {
            tnl_forward_close(f, "client quit");
            tnl_reply_decide(rp, TNL_REPLY_SUCCESS, 0);
            return;
        }
    }

    tnl_reply_decide(rp, TNL_REPLY_FAILURE, 0);
}


static void
tnl_forward_resume(tnl_timer_t *t)
{
    tnl_forward_t  *f = t->data;

    if (f->state == TNL_FORWARD_ACTIVE && f->fd != -1) {
        (void) tnl_io_set(&f->io, EPOLLIN);
    }
}


void
tnl_forward_accept_pause(tnl_forward_t *f, int err)
{
    tnl_worker_log_fd_shortage("accept on a tunnel socket", err);

    /* nginx's connections wait in the backlog meanwhile */
    (void) tnl_io_set(&f->io, 0);
    tnl_timer_add(&f->pause, TNL_FORWARD_PAUSE_MS);
}


void
tnl_forward_close(tnl_forward_t *f, const char *reason)
{
    tnl_session_t   *s = f->session;
    tnl_stream_t    *st;
    tnl_db_event_t   ev;
    int              was_active;

    if (f->state == TNL_FORWARD_CLOSED) {
        return;
    }

    was_active = (f->state == TNL_FORWARD_ACTIVE);
    f->state = TNL_FORWARD_CLOSED;

    /* an undecided request is refused (or dropped with the session) */
    if (!s->closing) {
        tnl_forward_answer(f, TNL_REPLY_FAILURE);
    }

    f->reply = NULL;

    if (f->route != NULL) {
        tnl_route_release(f->route);
        f->route = NULL;
    }

    tnl_timer_del(&f->pause);

    if (f->fd != -1) {
        tnl_io_del(&f->io);
        close(f->fd);
        f->fd = -1;
    }

    if (f->socket_path[0] != '\0') {
        unlink(f->socket_path);
    }

    for (st = s->streams; st != NULL; st = st->next) {
        if (st->forward == f) {
            tnl_stream_abort(st);
            st->forward = NULL;
        }
    }

    if (was_active) {
        tnl_log_info("tunnel %s down (%s): user \"%s\" session %s "
                     "client %s up %lds in %llu out %llu streams %llu "
                     "requests %llu",
                     f->name, reason, s->user, s->id, s->client,
                     (long) (time(NULL) - f->started),
                     (unsigned long long) f->bytes_in,
                     (unsigned long long) f->bytes_out,
                     (unsigned long long) f->streams,
                     (unsigned long long) f->requests);

        memset(&ev, 0, sizeof(ev));
        ev.event = "close";
        ev.name = f->name;
        ev.user_id = s->user_id;
        ev.fingerprint = s->fingerprint;
        ev.client = s->client;
        ev.session = s->id;
        ev.bytes_in = (int64_t) f->bytes_in;
        ev.bytes_out = (int64_t) f->bytes_out;
        ev.streams = (int64_t) f->streams;
        ev.detail = reason;
        tnl_db_log_event(&ev);
    }

    tnl_session_post_sweep(s);
}


void
tnl_forward_sweep(tnl_session_t *s)
{
    tnl_forward_t  **pp, *f;

    if (s->closing || s->finished) {
        tnl_forward_replies_drop(s);
    }

    pp = &s->forwards;

    while (*pp != NULL) {
        f = *pp;

        if (f->state != TNL_FORWARD_CLOSED && !s->finished) {
            pp = &f->next;
            continue;
        }

        if (f->state != TNL_FORWARD_CLOSED) {
            /* session freed under an open forward: close it first */
            tnl_forward_close(f, "session closed");
        }

        *pp = f->next;
        s->nforwards--;
        free(f->bind_address);
        free(f);
    }
}


int
tnl_forward_live_stats(void *data, struct tnl_live_stats_s *st)
{
    tnl_forward_t  *f = data;

    if (f == NULL || f->state != TNL_FORWARD_ACTIVE) {
        return -1;
    }

    st->fingerprint = f->session->fingerprint;
    st->bytes_in = f->bytes_in;
    st->bytes_out = f->bytes_out;
    st->requests = f->requests;
    st->streams = f->streams;
    st->open_streams = f->open_streams;
    st->last_request = f->last_request;

    return 0;
}
