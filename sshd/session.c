/*
 * SSH sessions (see session.h): the state machine from accept to
 * disconnect.  Does not pump bytes (pump.c) nor decide names (forward.c).
 *
 * Every libssh call that can read from the socket (poll, message_get,
 * channel writes, flushes) may run channel callbacks re-entrantly; those
 * callbacks only set flags or write to Unix sockets.  All freeing happens
 * in tnl_session_sweep, posted to the end of the loop iteration.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libssh/server.h>

#include "activation.h"
#include "db.h"
#include "forward.h"
#include "keys.h"
#include "log.h"
#include "metrics.h"
#include "pump.h"
#include "server.h"
#include "session.h"
#include "startups.h"


#define TNL_SESSION_TEXT_MAX     16384
#define TNL_SESSION_POLLS        64    /* ssh_event_dopoll per wake-up */
#define TNL_SESSION_READ         4096  /* libssh's read per poll */
#define TNL_SESSION_TEXT_DELAY   10    /* ms a request line may wait */
#define TNL_SESSION_TEXT_BATCH   4096  /* ... unless this much waits */
#define TNL_SESSION_MESSAGES     64    /* messages handled per pass */
#define TNL_SESSION_AUTH_TRIES   10
#define TNL_SESSION_LINGER_MS    1000

/*
 * OpenSSH (9.2) applies ServerAliveInterval x ServerAliveCountMax as a
 * read timeout while it waits for the answer to its auth request (it
 * sends no keepalive then: "Connection to HOST timed out"), so a key
 * waiting for approval is sent an SSH_MSG_IGNORE this often; any packet
 * restarts that timeout.  5 s keeps a client with -o ServerAliveInterval=2
 * (x 3) waiting; 1,000 waiting sessions cost 200 small writes a second.
 */
#define TNL_SESSION_WAIT_KEEPALIVE_MS  5000


/*
 * The cipher offer.  Among the ciphers both sides offer, the client's
 * order decides, and OpenSSH's client asks for chacha20-poly1305 first,
 * then AES-CTR (with an HMAC), then AES-GCM.  On CPUs with AES
 * instructions AES-GCM costs far less per byte (OpenSSH here: 901 MB/s
 * with aes128-gcm, 405 MB/s with chacha20), and the client, which
 * encrypts every byte of a download, is the busiest process of a tunnel.
 * Every OpenSSH since 6.2 (2013) has AES-GCM, so an OpenSSH client is
 * offered AES-GCM only and negotiates it without any option; a client we
 * do not recognise is offered everything, AES-GCM first.  An OpenSSH
 * client configured without AES-GCM (Ciphers in ssh_config) is refused
 * with "no matching cipher found"; tnl_session_set_ciphers (a
 * command-line option) restores a wider offer.  Compression is never
 * offered: it costs more CPU than it saves on the links tunnels use.
 */
#define TNL_CIPHERS_OPENSSH  "aes128-gcm@openssh.com,aes256-gcm@openssh.com"
#define TNL_CIPHERS_ANY      "aes128-gcm@openssh.com,aes256-gcm@openssh.com," \
                             "chacha20-poly1305@openssh.com," \
                             "aes256-ctr,aes192-ctr,aes128-ctr"


static char           *tnl_session_ciphers;   /* set: offered to all */


/*
 * --kex, --macs, --hostkey-algorithms.  Unset, libssh's defaults are
 * offered (curve25519-sha256 first; no post-quantum hybrid exists in
 * libssh 0.10).  The candidates are every name libssh 0.10 or OpenSSH
 * 9.x knows; those this libssh accepts are the supported ones named in
 * an error.  "none" is never a MAC we offer.
 */
static const char  *tnl_algo_candidates[TNL_ALGO_N][16] = {
    {
        "curve25519-sha256", "curve25519-sha256@libssh.org",
        "ecdh-sha2-nistp256", "ecdh-sha2-nistp384", "ecdh-sha2-nistp521",
        "diffie-hellman-group18-sha512", "diffie-hellman-group16-sha512",
        "diffie-hellman-group-exchange-sha256",
        "diffie-hellman-group14-sha256", "diffie-hellman-group14-sha1",
        "diffie-hellman-group-exchange-sha1", "diffie-hellman-group1-sha1",
        "sntrup761x25519-sha512@openssh.com", "mlkem768x25519-sha256",
        NULL
    },
    {
        "hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com",
        "hmac-sha1-etm@openssh.com", "hmac-sha2-256", "hmac-sha2-512",
        "hmac-sha1", NULL
    },
    {
        "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521", "rsa-sha2-512", "rsa-sha2-256", "ssh-rsa",
        NULL
    },
};

static const char  *tnl_algo_option[TNL_ALGO_N] = {
    "--kex", "--macs", "--hostkey-algorithms"
};

static char        *tnl_session_algos[TNL_ALGO_N];   /* set: offered */
static tnl_session_t  *tnl_sessions;
static int             tnl_sessions_n;
static int             tnl_sessions_unauth;    /* TNL_AUTH_NONE only */
static uint64_t        tnl_session_counter;


static void tnl_session_io_handler(tnl_io_t *io, uint32_t events);
static void tnl_session_timer_handler(tnl_timer_t *t);
static int tnl_session_client_alive(tnl_session_t *s);
static int tnl_alive_init(tnl_loop_t *loop);
static void tnl_alive_link(tnl_session_t *s, tnl_session_t **slot);
static void tnl_alive_unlink(tnl_session_t *s);
static void tnl_alive_add(tnl_session_t *s, uint64_t step);
static void tnl_alive_del(tnl_session_t *s);
static void tnl_alive_tick(tnl_timer_t *t);
static int tnl_session_lost(tnl_session_t *s);
static void tnl_session_text_timer_handler(tnl_timer_t *t);
static void tnl_session_offer(tnl_session_t *s);
static void tnl_session_process(tnl_session_t *s);
static void tnl_session_process_posted(void *data);
static void tnl_session_sweep(void *data);
static void tnl_session_message(tnl_session_t *s, ssh_message msg);
static int tnl_session_request_allowed(tnl_session_t *s, int type,
    int subtype);
static void tnl_session_finish(tnl_session_t *s);
static void tnl_session_set_auth(tnl_session_t *s, tnl_auth_state_e auth);


int
tnl_sessions_unauthenticated(void)
{
    return tnl_sessions_unauth;
}


int
tnl_sessions_count(void)
{
    return tnl_sessions_n;
}


/*
 * --max-startups is full and a connection from a source holding `load`
 * unauthenticated connections came: the oldest unauthenticated session of
 * this worker whose source holds at least two more gives it its place
 * (closed at once, out of the counts).  Many addresses that each hold a
 * few silent connections can then no longer keep every other address
 * out, and the place taken is never taken back by the source it was
 * taken from (its load is one lower then).  Returns 1 when a place was
 * freed, 0 when none may be taken.
 */
int
tnl_sessions_evict_startup(unsigned load)
{
    tnl_session_t  *s, *victim = NULL;
    unsigned        n, most = 0;

    for (s = tnl_sessions; s != NULL; s = s->next) {
        if (!s->startup || s->closing || s->auth != TNL_AUTH_NONE) {
            continue;
        }

        n = tnl_startups_token_load(s->startup_token);

        if (n < load + 2) {
            continue;
        }

        if (victim == NULL || n > most
            || (n == most && s->started_ms < victim->started_ms))
        {
            victim = s;
            most = n;
        }
    }

    if (victim == NULL) {
        return 0;
    }

    victim->startup = 0;
    tnl_startups_release(victim->startup_token);

    tnl_session_close(victim, NULL, "its place was given to a connection "
                      "from an address holding fewer (--max-startups "
                      "full)");
    tnl_session_finish(victim);

    return 1;
}


const char *
tnl_session_eol(tnl_session_t *s)
{
    /*
     * "\r\n" even without a pty: text queued before the pty request must
     * not staircase on the raw terminal that follows
     */
    (void) s;
    return "\r\n";
}


int
tnl_session_set_ciphers(const char *list)
{
    ssh_session  ssh;
    char        *copy;
    int          rc;

    if (list == NULL || list[0] == '\0') {
        free(tnl_session_ciphers);
        tnl_session_ciphers = NULL;
        return 0;
    }

    /* let libssh judge the names: it keeps those it knows */
    ssh = ssh_new();
    if (ssh == NULL) {
        return -1;
    }

    rc = ssh_options_set(ssh, SSH_OPTIONS_CIPHERS_C_S, list);
    ssh_free(ssh);

    if (rc != SSH_OK) {
        return -1;
    }

    copy = strdup(list);
    if (copy == NULL) {
        return -1;
    }

    free(tnl_session_ciphers);
    tnl_session_ciphers = copy;

    return 0;
}


/* 1 if libssh supports this one algorithm name for kind */
static int
tnl_algo_supported(ssh_session ssh, tnl_algo_e kind, const char *name)
{
    int  rc;

    switch (kind) {
    case TNL_ALGO_KEX:
        rc = ssh_options_set(ssh, SSH_OPTIONS_KEY_EXCHANGE, name);
        break;
    case TNL_ALGO_MACS:
        rc = ssh_options_set(ssh, SSH_OPTIONS_HMAC_C_S, name);
        break;
    default:
        rc = ssh_options_set(ssh, SSH_OPTIONS_HOSTKEYS, name);
        break;
    }

    return rc == SSH_OK;
}


int
tnl_session_set_algorithms(tnl_algo_e kind, const char *list, char *err,
    size_t size)
{
    ssh_session   ssh;
    const char  **c;
    char         *copy, *name, *save;
    size_t        len;
    int           bad, first;

    if (list == NULL || list[0] == '\0') {
        free(tnl_session_algos[kind]);
        tnl_session_algos[kind] = NULL;
        return 0;
    }

    ssh = ssh_new();
    copy = strdup(list);

    if (ssh == NULL || copy == NULL) {
        snprintf(err, size, "out of memory");
        free(copy);
        if (ssh != NULL) {
            ssh_free(ssh);
        }
        return -1;
    }

    /* every entry must be known: a typo would silently offer less */

    bad = 0;

    for (name = strtok_r(copy, ",", &save); name != NULL;
         name = strtok_r(NULL, ",", &save))
    {
        if (strcmp(name, "none") == 0
            || !tnl_algo_supported(ssh, kind, name))
        {
            bad = 1;
            break;
        }
    }

    if (!bad && list[0] != ',' && list[strlen(list) - 1] != ','
        && strstr(list, ",,") == NULL)
    {
        ssh_free(ssh);
        free(tnl_session_algos[kind]);
        tnl_session_algos[kind] = strdup(list);
        free(copy);
        return tnl_session_algos[kind] != NULL ? 0 : -1;
    }

    len = (size_t) snprintf(err, size, "%s: \"%s\" is not an algorithm "
                            "this server supports%s; supported: ",
                            tnl_algo_option[kind],
                            bad ? name : "(an empty entry)",
                            bad && (strstr(name, "sntrup") != NULL
                                    || strstr(name, "mlkem") != NULL)
                            ? " (libssh 0.10 has no post-quantum key "
                              "exchange)" : "");
    first = 1;

    for (c = tnl_algo_candidates[kind]; *c != NULL && len < size; c++) {
        if (tnl_algo_supported(ssh, kind, *c)) {
            len += (size_t) snprintf(err + len, size - len, "%s%s",
                                     first ? "" : ",", *c);
            first = 0;
        }
    }

    ssh_free(ssh);
    free(copy);

    return -1;
}


int
tnl_session_hostkey_usable(ssh_key key, char *err, size_t size)
{
    const char  *list, *names;
    char         buf[256], *name, *save;

    list = tnl_session_algos[TNL_ALGO_HOSTKEYS];
    if (list == NULL) {
        return 0;
    }

    /* the signature algorithms this key can make */

    switch (ssh_key_type(key)) {
    case SSH_KEYTYPE_RSA:
        names = "rsa-sha2-512,rsa-sha2-256,ssh-rsa";
        break;
    default:
        names = ssh_key_type_to_char(ssh_key_type(key));
        if (names == NULL) {
            names = "?";
        }
        break;
    }

    snprintf(buf, sizeof(buf), "%s", list);

    for (name = strtok_r(buf, ",", &save); name != NULL;
         name = strtok_r(NULL, ",", &save))
    {
        if (strstr(names, name) != NULL) {
            return 0;
        }
    }

    snprintf(err, size, "--hostkey-algorithms \"%s\" names none the host "
             "key can sign with (it needs one of: %s); add one, or use a "
             "host key of a listed type", list, names);

    return -1;
}


static int
tnl_session_set_algos(tnl_session_t *s)
{
    static const enum ssh_options_e  opts[TNL_ALGO_N][2] = {
        { SSH_OPTIONS_KEY_EXCHANGE, SSH_OPTIONS_KEY_EXCHANGE },
        { SSH_OPTIONS_HMAC_C_S, SSH_OPTIONS_HMAC_S_C },
        { SSH_OPTIONS_HOSTKEYS, SSH_OPTIONS_HOSTKEYS },
    };

    int  i;

    for (i = 0; i < TNL_ALGO_N; i++) {
        if (tnl_session_algos[i] != NULL
            && (ssh_options_set(s->ssh, opts[i][0], tnl_session_algos[i])
                != SSH_OK
                || ssh_options_set(s->ssh, opts[i][1], tnl_session_algos[i])
                   != SSH_OK))
        {
            return -1;
        }
    }

    return 0;
}


static int
tnl_session_set_offer(tnl_session_t *s, const char *ciphers)
{
    if (ssh_options_set(s->ssh, SSH_OPTIONS_CIPHERS_C_S, ciphers) != SSH_OK
        || ssh_options_set(s->ssh, SSH_OPTIONS_CIPHERS_S_C, ciphers)
           != SSH_OK
        || ssh_options_set(s->ssh, SSH_OPTIONS_COMPRESSION_C_S, "none")
           != SSH_OK
        || ssh_options_set(s->ssh, SSH_OPTIONS_COMPRESSION_S_C, "none")
           != SSH_OK
        || tnl_session_set_algos(s) != 0)
    {
        tnl_log_error("session %s: cannot set the cipher offer: %s", s->id,
                      ssh_get_error(s->ssh));
        return -1;
    }

    return 0;
}


/* "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n": an OpenSSH of 6.2 or later */
static int
tnl_session_openssh_gcm(const char *line)
{
    static const char  prefix[] = "SSH-2.0-OpenSSH_";

    unsigned long  major, minor;
    char          *end;

    if (strncmp(line, prefix, sizeof(prefix) - 1) != 0) {
        return 0;
    }

    line += sizeof(prefix) - 1;

    if (*line < '0' || *line > '9') {
        return 0;
    }

    major = strtoul(line, &end, 10);
    if (*end != '.' || end[1] < '0' || end[1] > '9') {
        return 0;
    }

    minor = strtoul(end + 1, NULL, 10);

    return major > 6 || (major == 6 && minor >= 2);
}


/*
 * Chooses the cipher offer from the client's identification line, read
 * with MSG_PEEK before libssh reads it: libssh sends its KEXINIT as soon
 * as it has parsed that line, so this must run before each of our polls
 * until the line is there.  A line not complete in one peek (it comes in
 * one segment in practice), or a session whose banner libssh already
 * took, keeps the offer made at accept (every cipher).
 */
static void
tnl_session_offer(tnl_session_t *s)
{
    char     buf[256];
    ssize_t  n;

    if (ssh_get_clientbanner(s->ssh) != NULL) {
        s->offer_pending = 0;                /* too late: keep the offer */
        return;
    }

    n = recv(s->io.fd, buf, sizeof(buf) - 1, MSG_PEEK | MSG_DONTWAIT);

    if (n == -1 && (errno == EAGAIN || errno == EINTR)) {
        return;                              /* nothing yet */
    }

    s->offer_pending = 0;

    if (n <= 0) {
        return;                              /* libssh will see why */
    }

    buf[n] = '\0';

    if (memchr(buf, '\n', (size_t) n) == NULL
        || !tnl_session_openssh_gcm(buf))
    {
        return;
    }

    if (tnl_session_set_offer(s, TNL_CIPHERS_OPENSSH) == 0
        && ssh_server_init_kex(s->ssh) != SSH_OK)
    {
        tnl_log_warn("session %s: cannot change the cipher offer: %s",
                     s->id, ssh_get_error(s->ssh));
    }
}


/*
 * The drain calls this before libssh reads the socket (drain.h), so the
 * offer is chosen even when the client's line arrives between the first
 * look at accept and libssh's first read (ssh_handle_key_exchange reads
 * at once): without it an OpenSSH client was sometimes offered chacha20.
 */
static void
tnl_session_offer_hook(void *data)
{
    tnl_session_t  *s = data;

    if (s->offer_pending) {
        tnl_session_offer(s);
    }

    if (!s->offer_pending) {
        s->drain.before_read = NULL;
    }
}


int
tnl_session_accept(tnl_loop_t *loop, ssh_bind bind, int fd,
    const char *client, int local_port, uint32_t startup_token)
{
    tnl_session_t  *s;
    int             rc;

    s = calloc(1, sizeof(tnl_session_t));
    if (s == NULL) {
        close(fd);
        return -1;
    }

    s->loop = loop;
    s->local_port = local_port;
    s->started_ms = tnl_now_ms();
    snprintf(s->client, sizeof(s->client), "%s", client);
    snprintf(s->id, sizeof(s->id), "%s/%ld/%llu", tnl_conf.node,
             (long) getpid(), (unsigned long long) ++tnl_session_counter);

    s->ssh = ssh_new();
    if (s->ssh == NULL) {
        close(fd);
        free(s);
        return -1;
    }

    if (ssh_bind_accept_fd(bind, s->ssh, fd) != SSH_OK) {
        tnl_log_error("session %s: cannot set up ssh on the connection "
                      "from %s: %s", s->id, client, ssh_get_error(bind));
        ssh_free(s->ssh);
        close(fd);   /* ssh_free closes it only if it got that far */
        free(s);
        return -1;
    }

    /* accepted fds are blocking in libssh's eyes until told otherwise */
    ssh_set_blocking(s->ssh, 0);

    /*
     * Before libssh's first read: the read-ahead (no read-ahead if this
     * fails: libssh then reads 4 KB at a time), and the hook that chooses
     * the cipher offer before libssh can take the client's line
     * (tnl_session_offer_hook).  libssh closes the fd through close(),
     * which detaches it (drain.c), on every error path below.
     */
    (void) tnl_drain_attach(&s->drain, fd);

    ssh_set_counters(s->ssh, &s->sock_count, &s->pkt_count);
    s->msg_check = 1;

    /*
     * The offer for any client; an OpenSSH client gets AES-GCM only once
     * its identification line is seen (this first look, or before each
     * poll until then: tnl_session_offer)
     */

    if (tnl_session_set_offer(s, tnl_session_ciphers != NULL
                                 ? tnl_session_ciphers : TNL_CIPHERS_ANY)
        != 0)
    {
        ssh_free(s->ssh);
        free(s);
        return -1;
    }

    if (tnl_session_ciphers == NULL) {
        s->io.fd = fd;                        /* for the peek only */
        s->offer_pending = 1;
        tnl_session_offer(s);

        if (s->offer_pending && s->drain.fd == fd) {
            s->drain.before_read = tnl_session_offer_hook;
            s->drain.before_data = s;
        }
    }

    rc = ssh_handle_key_exchange(s->ssh);   /* SSH_AGAIN: goes on in polls */
    if (rc == SSH_ERROR) {
        tnl_log_warn("session %s: key exchange with %s failed: %s",
                     s->id, client, ssh_get_error(s->ssh));
        ssh_free(s->ssh);
        free(s);
        return -1;
    }

    s->event = ssh_event_new();
    if (s->event == NULL || ssh_event_add_session(s->event, s->ssh) != SSH_OK)
    {
        tnl_log_error("session %s: cannot create its ssh_event", s->id);
        if (s->event != NULL) {
            ssh_event_free(s->event);
        }
        ssh_free(s->ssh);
        free(s);
        return -1;
    }

    tnl_io_init(&s->io, loop, fd, tnl_session_io_handler, s);
    if (tnl_io_set(&s->io, EPOLLIN | EPOLLOUT) == -1) {
        tnl_log_error("session %s: epoll: %s", s->id, strerror(errno));
        ssh_event_remove_session(s->event, s->ssh);
        ssh_event_free(s->event);
        ssh_free(s->ssh);
        free(s);
        return -1;
    }

    /*
     * The grace runs from now, not from the loop's cached time: a busy
     * or descheduled wake-up that accepts late would otherwise shorten it
     * (seen: 1.3 s of 6 with 2,500 connections on a loaded machine)
     */
    tnl_time_update();
    tnl_timer_init(&s->timer, loop, tnl_session_timer_handler, s);
    tnl_timer_add(&s->timer, (uint64_t) tnl_conf.login_grace * 1000);
    tnl_timer_init(&s->text_timer, loop, tnl_session_text_timer_handler, s);

    s->next = tnl_sessions;
    if (tnl_sessions != NULL) {
        tnl_sessions->prev = s;
    }
    tnl_sessions = s;
    tnl_sessions_n++;
    tnl_sessions_unauth++;
    s->startup = 1;
    s->startup_token = startup_token;

    tnl_log_debug("session %s: connection from %s", s->id, client);

    return 0;
}


static void
tnl_session_io_handler(tnl_io_t *io, uint32_t events)
{
    tnl_session_t  *s = io->data;
    uint64_t        before;
    int             i, polls;

    if (s->finished) {
        return;
    }

    if (s->offer_pending) {
        tnl_session_offer(s);
    }

    /*
     * libssh reads at most 4 KB per poll: several polls per wake-up save
     * epoll round trips on bulk transfers, bounded so other sessions are
     * not starved.  A read that did not fill libssh's 4 KB emptied the
     * socket (and the read-ahead, drain.h), so one more poll would find
     * nothing: stop there (the socket is level-triggered: anything
     * arriving later wakes us again; bytes left read ahead when the
     * budget ends do through tnl_session_update_io).  With the read-ahead
     * a poll costs no system call while it holds bytes, and one recv
     * feeds 16 of libssh's reads.
     */

    /*
     * Reading waits (the pass below still flushes) while libssh's message
     * queue has a backlog, or while it holds output the client has not
     * taken: a client that floods requests and never reads the answers
     * (libssh answers unknown global requests and keepalives itself)
     * would otherwise grow both without bound.  The socket is then
     * watched for writing only (tnl_session_update_io).
     */

    polls = (s->msg_backlog || s->write_blocked || s->abusive)
            ? 0 : TNL_SESSION_POLLS;

    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        if (polls) {
            tnl_drain_hint(&s->drain);

        } else {
            tnl_drain_ready(&s->drain);
        }
    }

    /* the kernel said writable: libssh's next POLLOUT poll needs no call */
    if ((events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) == EPOLLOUT) {
        tnl_drain_hint_write(&s->drain);
    }

    for (i = 0; i < polls; i++) {
        before = s->sock_count.in_bytes;

        if (ssh_event_dopoll(s->event, 0) != SSH_OK
            || s->sock_count.in_bytes - before < TNL_SESSION_READ)
        {
            break;
        }
    }

    tnl_drain_unhint(&s->drain);

    tnl_session_process(s);
}


void
tnl_session_post_process(tnl_session_t *s)
{
    if (s->process_posted || s->finished) {
        return;
    }

    if (tnl_loop_post(s->loop, tnl_session_process_posted, s) == 0) {
        s->process_posted = 1;
    }
}


static void
tnl_session_process_posted(void *data)
{
    tnl_session_t  *s = data;

    s->process_posted = 0;

    if (!s->finished) {
        tnl_session_process(s);
    }
}


void
tnl_session_post_sweep(tnl_session_t *s)
{
    if (s->sweep_posted) {
        return;
    }

    if (tnl_loop_post(s->loop, tnl_session_sweep, s) == 0) {
        s->sweep_posted = 1;
    }
}


static int
tnl_session_is_gone(tnl_session_t *s)
{
    int  status;

    status = ssh_get_status(s->ssh);

    return (status & (SSH_CLOSED | SSH_CLOSED_ERROR))
           || !ssh_is_connected(s->ssh);
}


/*
 * Whether the connection died under the session rather than being closed
 * by the client: the kernel gave up on it (TCP_USER_TIMEOUT, keepalive
 * probes unanswered: ETIMEDOUT) or its network is gone.  libssh keeps
 * only the text of the socket error ("Socket error: " and strerror), so
 * that is what is compared.  An EOF or a reset is the client's doing (a
 * killed client's kernel closes its connection): "client quit".
 */
static int
tnl_session_lost(tnl_session_t *s)
{
    static const int  lost[] = { ETIMEDOUT, EHOSTUNREACH, ENETUNREACH,
                                 ENETDOWN, EHOSTDOWN };
    const char       *err, *why;
    size_t            i, n, len;

    if (ssh_get_error_code(s->ssh) != SSH_FATAL) {
        return 0;
    }

    err = ssh_get_error(s->ssh);
    len = strlen(err);

    for (i = 0; i < sizeof(lost) / sizeof(lost[0]); i++) {
        why = strerror(lost[i]);
        n = strlen(why);
        if (len >= n && strcmp(err + len - n, why) == 0) {
            return 1;
        }
    }

    return 0;
}


/* writes queued text as far as the session channel's window allows */
static void
tnl_session_flush_text(tnl_session_t *s)
{
    uint32_t  win;
    size_t    n;
    int       rc;

    if (s->chan == NULL || !s->shell || s->text_len == 0 || s->chan_closed
        || (s->text_hold && !s->closing) || !ssh_channel_is_open(s->chan))
    {
        return;
    }

    win = ssh_channel_window_size(s->chan);
    n = s->text_len < win ? s->text_len : win;
    if (n == 0) {
        return;
    }

    rc = ssh_channel_write(s->chan, s->text, (uint32_t) n);
    if (rc <= 0) {
        return;     /* 0 during a re-key: retried after the next poll */
    }

    memmove(s->text, s->text + rc, s->text_len - (size_t) rc);
    s->text_len -= (size_t) rc;
}


static void
tnl_session_vprintf(tnl_session_t *s, int later, const char *fmt,
    va_list ap)
{
    char     line[1024];
    size_t   queued;
    int      n;

    /*
     * Text may come before the shell request (a forward is refused before
     * OpenSSH opens its session channel, or between the open and the
     * shell request): it waits for the shell, and a held refusal waits for
     * it (forward.c).  With -N, or on an exec channel, it is never shown and
     * is bounded like the rest.
     */

    if (s->auth != TNL_AUTH_OK || s->chan_closed || s->finished) {
        return;
    }

    n = vsnprintf(line, sizeof(line), fmt, ap);

    if (n <= 0) {
        return;
    }

    if ((size_t) n >= sizeof(line)) {
        n = sizeof(line) - 1;
    }

    if (s->text == NULL) {
        s->text = malloc(TNL_SESSION_TEXT_MAX);
        if (s->text == NULL) {
            return;
        }
    }

    /* a person who cannot keep up loses request lines, not memory */

    if (s->text_len + (size_t) n > TNL_SESSION_TEXT_MAX) {
        s->text_dropped++;
        return;
    }

    queued = s->text_len;

    memcpy(s->text + s->text_len, line, (size_t) n);
    s->text_len += (size_t) n;

    /*
     * A line per request, each in its own packet, would wake the client
     * once more per request: such lines wait a little and go together.
     * Any other text goes now, and takes what waits with it, in order.
     */

    if (later && s->text_len < TNL_SESSION_TEXT_BATCH
        && (queued == 0 || s->text_hold))
    {
        if (queued == 0) {
            s->text_hold = 1;
            tnl_timer_add(&s->text_timer, TNL_SESSION_TEXT_DELAY);
        }
        return;
    }

    s->text_hold = 0;
    tnl_timer_del(&s->text_timer);

    tnl_session_post_process(s);
}


void
tnl_session_printf(tnl_session_t *s, const char *fmt, ...)
{
    va_list  ap;

    va_start(ap, fmt);
    tnl_session_vprintf(s, 0, fmt, ap);
    va_end(ap);
}


void
tnl_session_printf_later(tnl_session_t *s, const char *fmt, ...)
{
    va_list  ap;

    va_start(ap, fmt);
    tnl_session_vprintf(s, 1, fmt, ap);
    va_end(ap);
}


static void
tnl_session_text_timer_handler(tnl_timer_t *t)
{
    tnl_session_t  *s = t->data;

    s->text_hold = 0;
    tnl_session_post_process(s);
}


/*
 * End of a pass: sends what libssh still holds (libssh writes a packet at
 * once only if its last write was followed by a poll; otherwise it queues
 * it for the next poll, so the packets the streams wrote in this loop
 * iteration go out together here), watches the socket for writing only while
 * bytes remain (libssh's own SSH_WRITE_PENDING is set after every write,
 * and watching on it would cost two epoll_ctl and a wake-up per packet),
 * and re-arms reading from nginx once everything is out.
 *
 * Any poll of the pass after the message queue was read (this flush, a
 * stream's write or channel open) may have parsed packets, hence queued
 * messages that no readiness will announce; so may the per-pass limit
 * leave some.  Then the socket is watched for writing too: its (almost
 * immediate) readiness brings a pass in the next loop iteration, after
 * the other ready fds (a posted pass would run in this one, and could
 * follow itself while packets keep coming).
 */
/*
 * libssh 0.10.6 closes the session's socket itself when it sees EOF or an
 * error (ssh_socket_close on its exception path).  The kernel then drops
 * the fd from epoll, and the number can at once be taken by a new
 * connection (an SSH client, nginx on a tunnel socket, an API client): an
 * epoll_ctl on it from here would remove or change that connection's
 * registration, which then never wakes up (seen: the first API request
 * after a client that disconnected before auth got no answer).  1 when
 * the socket is gone (io is then forgotten, never touched again).
 */
static int
tnl_session_fd_gone(tnl_session_t *s)
{
    if (s->io.active && ssh_get_fd(s->ssh) != s->io.fd) {
        tnl_io_forget(&s->io);
    }

    return !s->io.active;
}


static void
tnl_session_update_io(tnl_session_t *s)
{
    uint32_t  ev;
    int       pending, more;

    if (tnl_session_fd_gone(s)) {
        return;
    }

    pending = (ssh_blocking_flush(s->ssh, 0) == SSH_AGAIN);
    s->unflushed = 0;

    more = !s->closing
           && (s->msg_check || s->pkt_count.in_packets != s->msg_packets);

    /* nginx's reads pause while the client does not take our bytes */

    if ((unsigned) pending != s->write_blocked) {
        s->write_blocked = pending;
        tnl_pump_update_interest(s);
    }

    /* unsent output: read nothing more until the client takes it */
    ev = pending ? EPOLLOUT : EPOLLIN;

    /*
     * bytes read ahead (drain.h) wake no epoll: the (almost immediate)
     * write readiness brings the pass that hands them to libssh
     */
    if (more || (tnl_drain_buffered(&s->drain) && !s->abusive)) {
        ev |= EPOLLOUT;
    }

    (void) tnl_io_set(&s->io, ev);
}


static void
tnl_session_process(tnl_session_t *s)
{
    ssh_message  msg;
    int          i;

    if (s->closing) {
        tnl_session_flush_text(s);

        /*
         * with a session channel, let the client close it and hang up
         * itself (it would otherwise report a broken pipe); the linger
         * timer bounds the wait
         */

        if (tnl_session_is_gone(s)
            || ((s->abusive || s->chan == NULL || s->chan_closed)
                && (s->abusive || s->text_len == 0)
                && ssh_blocking_flush(s->ssh, 0) != SSH_AGAIN))
        {
            tnl_session_finish(s);
            return;
        }

        tnl_session_update_io(s);
        return;
    }

    /*
     * Messages come only from packets: with no packet parsed since the
     * queue was last found empty, ssh_message_get would only poll
     */

    if (s->msg_check || s->pkt_count.in_packets != s->msg_packets) {
        s->msg_check = 1;

        for (i = 0; i < TNL_SESSION_MESSAGES && !s->closing; i++) {
            msg = ssh_message_get(s->ssh);  /* never blocks: non-blocking */
            if (msg == NULL) {
                s->msg_check = 0;
                s->msg_packets = s->pkt_count.in_packets;
                break;
            }

            tnl_session_message(s, msg);
        }

        s->msg_backlog = s->msg_check && !s->closing;
    }

    if (s->closing) {
        tnl_session_process(s);
        return;
    }

    tnl_pump_process(s);

    tnl_forward_summary(s);

    tnl_session_flush_text(s);

    /* after the text: a held refusal goes once its explanation is out */
    tnl_forward_replies_run(s);

    /* no tunnel up: close (exit status 1) once the refusals went out */
    if (s->no_tunnel && s->replies == NULL) {
        tnl_session_close(s, NULL, "no tunnel open");
        return;
    }

    if (s->quit) {
        tnl_session_close(s, "Closing your tunnels, bye.", "client quit");
        return;
    }

    if (s->chan_closed) {
        tnl_session_close(s, NULL, "client quit");
        return;
    }

    if (tnl_session_is_gone(s)) {
        tnl_session_close(s, NULL, s->auth != TNL_AUTH_OK
                                   ? "client disconnected before auth"
                                   : tnl_session_lost(s)
                                   ? "connection lost"
                                   : "client quit");
        return;
    }

    tnl_session_update_io(s);
}


static void
tnl_session_timer_handler(tnl_timer_t *t)
{
    tnl_session_t  *s = t->data;

    if (s->closing) {
        tnl_log_debug("session %s: linger time over", s->id);
        tnl_session_finish(s);
        return;
    }

    /* a key waiting for approval has its own expiry (activation.c) */
    if (s->auth == TNL_AUTH_NONE) {
        tnl_metric_add(TNL_M_LOGIN_GRACE_EXPIRED, 1);
        tnl_session_close(s, NULL, "login grace time over");
        return;
    }

    if (s->auth == TNL_AUTH_PENDING) {
        /* mid-userauth, a client takes a global request as a protocol
           error: only an IGNORE, for the NAT mappings */
        if (ssh_send_ignore(s->ssh, "") != SSH_OK) {
            tnl_session_close(s, NULL, "connection lost");
            return;
        }

        tnl_timer_add(&s->timer, TNL_SESSION_WAIT_KEEPALIVE_MS);
        tnl_session_post_process(s);
        return;
    }

    if (tnl_session_client_alive(s) != 0) {
        return;
    }

    tnl_timer_add(&s->timer, (uint64_t) tnl_conf.keepalive * 1000);
    tnl_session_post_process(s);
}


/*
 * The client-alive check (OpenSSH's ClientAliveInterval/CountMax): every
 * --keepalive seconds, a "keepalive@openssh.com" global request with
 * want-reply, which every client answers (OpenSSH with REQUEST_FAILURE).
 * A client whose process hangs (SIGSTOP, a stuck machine) while its
 * kernel still acknowledges every segment is invisible to TCP keepalive
 * and TCP_USER_TIMEOUT; it is found here: any packet from the client
 * (libssh's packet counter moved) proves it alive, and --keepalive-count
 * N intervals in a row without one close the session: as with OpenSSH's
 * ClientAliveCountMax, a client that stopped answering is dropped between
 * N and N + 1 intervals after its last packet.
 *
 * libssh consumes the answer itself.  ssh_send_keepalive() in 0.10.6 is
 * ssh_global_request(): it queues the request and polls once without
 * waiting (the session is non-blocking), leaving the request pending; the
 * next call only collects the answer (no new request), and while none
 * came it sends nothing.  Hence the second call when the first sent
 * nothing: the client answered, so the state is free again.  Neither call
 * blocks: the poll is of this session's own ssh_event, with timeout 0.
 */
static int
tnl_session_client_alive(tnl_session_t *s)
{
    uint64_t  sent;

    if (s->pkt_count.in_packets != s->alive_packets) {
        s->alive_packets = s->pkt_count.in_packets;
        s->alive_missed = 0;

    } else if (++s->alive_missed >= (unsigned) tnl_conf.keepalive_count) {
        tnl_log_info("session %s: no packet from %s in %u keepalive "
                     "intervals of %d s", s->id, s->client,
                     s->alive_missed, tnl_conf.keepalive);
        tnl_session_close(s, NULL,
                          "connection lost (no answer to keepalives)");
        return -1;
    }

    /* reading waits while the message queue has a backlog (see above) */
    if (s->msg_backlog || s->abusive) {
        return 0;
    }

    sent = s->pkt_count.out_packets;

    (void) ssh_send_keepalive(s->ssh);

    if (s->pkt_count.out_packets == sent) {
        (void) ssh_send_keepalive(s->ssh);
    }

    if (s->pkt_count.out_packets != sent) {
        tnl_metric_add(TNL_M_ALIVE_PROBES, 1);

    } else if (ssh_send_ignore(s->ssh, "") != SSH_OK) {
        /* still pending: an IGNORE keeps TCP_USER_TIMEOUT's data flowing */
        tnl_session_close(s, NULL, "connection lost");
        return -1;
    }

    return 0;
}


/*
 * The alive wheel.  A timer per session woke the loop once per probe and
 * updated the timer heap each time (at 20,000 sessions some 15 cold
 * sessions' timers read per probe), and each answer came back in a
 * wake-up of its own: ~57 us of tunneld's CPU per probe at 20,000 idle
 * tunnels (docs/BENCHMARKS.md).  Instead the probes of a worker go out on
 * one tick, every TNL_ALIVE_TICK_MS (a tenth of that below a 20 s
 * interval, so the tick divides every interval): a session's probes fall
 * on the tick at or after one interval from its login, then exactly one
 * interval apart.  The wheel has a slot per tick of one interval (and
 * two more), each slot the list of the sessions due then; a tick takes
 * its slot's sessions off one list, no heap, no per-session timer.  The
 * answers to a tick's probes arrive together, and one epoll_wait returns
 * many of them.  At most TNL_ALIVE_BATCH probes a pass: the rest of a
 * tick waits for the next loop iteration (the timer re-armed at 1 ms), so
 * other sessions' I/O is never held up for long.
 */

#define TNL_ALIVE_TICK_MS  1000
#define TNL_ALIVE_BATCH    16


static tnl_session_t  **tnl_alive_slots;
static uint64_t         tnl_alive_nslots;
static uint64_t         tnl_alive_tick_ms;
static uint64_t         tnl_alive_cursor;   /* the next tick to run */
static unsigned         tnl_alive_n;        /* sessions in the wheel */
static tnl_timer_t      tnl_alive_timer;


static int
tnl_alive_init(tnl_loop_t *loop)
{
    if (tnl_alive_slots != NULL) {
        return 0;
    }

    tnl_alive_tick_ms = (tnl_conf.keepalive >= 20) ? TNL_ALIVE_TICK_MS
                                                   : TNL_ALIVE_TICK_MS / 10;
    tnl_alive_nslots = (uint64_t) tnl_conf.keepalive * 1000
                       / tnl_alive_tick_ms + 2;

    tnl_alive_slots = calloc(tnl_alive_nslots, sizeof(tnl_session_t *));
    if (tnl_alive_slots == NULL) {
        return -1;
    }

    tnl_timer_init(&tnl_alive_timer, loop, tnl_alive_tick, NULL);

    return 0;
}


/* into a slot's list (the caller counts) */
static void
tnl_alive_link(tnl_session_t *s, tnl_session_t **slot)
{
    s->alive_next = *slot;
    if (*slot != NULL) {
        (*slot)->alive_pprev = &s->alive_next;
    }
    s->alive_pprev = slot;
    *slot = s;
}


/* off the list it is in, a slot's or the tick's own (the caller counts) */
static void
tnl_alive_unlink(tnl_session_t *s)
{
    *s->alive_pprev = s->alive_next;
    if (s->alive_next != NULL) {
        s->alive_next->alive_pprev = s->alive_pprev;
    }

    s->alive_next = NULL;
    s->alive_pprev = NULL;
}


static void
tnl_alive_add(tnl_session_t *s, uint64_t step)
{
    uint64_t  now;

    if (tnl_alive_n++ == 0) {
        /* the slots before now are empty: start the ticks afresh */
        now = tnl_now_ms();
        tnl_alive_cursor = now / tnl_alive_tick_ms;

        if (!tnl_timer_is_set(&tnl_alive_timer)) {
            tnl_timer_add(&tnl_alive_timer, (tnl_alive_cursor + 1)
                                            * tnl_alive_tick_ms - now);
        }
    }

    s->alive_step = step;
    tnl_alive_link(s, &tnl_alive_slots[step % tnl_alive_nslots]);
}


static void
tnl_alive_del(tnl_session_t *s)
{
    if (s->alive_pprev == NULL) {
        return;
    }

    tnl_alive_unlink(s);
    tnl_alive_n--;
}


/* one session's tick: the check, the probe, its next tick */
static void
tnl_session_alive(tnl_session_t *s, uint64_t now_step)
{
    uint64_t  next, steps;

    if (tnl_session_client_alive(s) != 0) {
        return;                            /* closed */
    }

    steps = (uint64_t) tnl_conf.keepalive * 1000 / tnl_alive_tick_ms;
    next = s->alive_step + steps;

    if (next <= now_step) {
        next = now_step + steps;           /* the loop was held up */
    }

    tnl_alive_add(s, next);

    /*
     * No full pass (tnl_session_process) for a probe: only what it can
     * have left, output the kernel did not take (EPOLLOUT) or packets
     * libssh's poll parsed (a pass from the loop, tnl_session_update_io),
     * or a connection found dead on the send
     */

    if (tnl_session_is_gone(s)) {
        tnl_session_post_process(s);
        return;
    }

    tnl_session_update_io(s);
}


static void
tnl_alive_tick(tnl_timer_t *t)
{
    tnl_session_t  **slot, *list, *s;
    uint64_t         now, now_step;
    unsigned         done;

    now = tnl_now_ms();
    now_step = now / tnl_alive_tick_ms;
    done = 0;

    while (tnl_alive_cursor <= now_step) {
        slot = &tnl_alive_slots[tnl_alive_cursor % tnl_alive_nslots];

        /*
         * The slot's sessions are taken off it and walked once: the ones
         * due now are probed (and queued again, into another slot or
         * into this one for a later turn), the others, a turn of the
         * wheel later, go back.  What is queued into the slot meanwhile
         * is never walked again in this tick.  A session closed meanwhile
         * leaves this list as it would the slot (tnl_alive_del).
         */

        list = *slot;
        *slot = NULL;
        if (list != NULL) {
            list->alive_pprev = &list;
        }

        while ((s = list) != NULL) {
            tnl_alive_unlink(s);

            if (s->alive_step > tnl_alive_cursor) {
                tnl_alive_link(s, slot);    /* a wheel's turn later */
                continue;
            }

            if (done++ == TNL_ALIVE_BATCH) {

                /* the rest after the loop's I/O (1 ms: a timer added at
                   0 would fire again in this same pass of the loop) */

                tnl_alive_link(s, slot);

                while ((s = list) != NULL) {
                    tnl_alive_unlink(s);
                    tnl_alive_link(s, slot);
                }

                tnl_timer_add(t, 1);
                return;
            }

            tnl_alive_n--;
            tnl_session_alive(s, now_step);
        }

        tnl_alive_cursor++;
    }

    if (tnl_alive_n > 0) {
        tnl_timer_add(t, (now_step + 1) * tnl_alive_tick_ms - now);
    }
}


/* session channel callbacks: flags only, never free here */

static int
tnl_session_chan_data(ssh_session session, ssh_channel channel, void *data,
    uint32_t len, int is_stderr, void *userdata)
{
    tnl_session_t  *s = userdata;
    const char     *p = data;
    uint32_t        i;

    (void) session;
    (void) channel;
    (void) is_stderr;

    for (i = 0; s->shell && i < len; i++) {
        if (p[i] == 0x03 || p[i] == 0x04) {    /* Ctrl-C, Ctrl-D */
            s->quit = 1;
            tnl_session_post_process(s);
            break;
        }
    }

    return (int) len;
}


static void
tnl_session_chan_close(ssh_session session, ssh_channel channel,
    void *userdata)
{
    tnl_session_t  *s = userdata;

    (void) session;
    (void) channel;

    s->chan_closed = 1;
    tnl_session_post_process(s);
}


/* auth */

static void
tnl_session_banner(tnl_session_t *s, const char *text)
{
    ssh_string  str;

    str = ssh_string_from_char(text);
    if (str == NULL) {
        return;
    }

    (void) ssh_send_issue_banner(s->ssh, str);
    ssh_string_free(str);
}


static int
tnl_session_fingerprint(ssh_key key, char *out, size_t size)
{
    unsigned char  *hash = NULL;
    size_t          hlen = 0;
    char           *fp;

    if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen)
        != SSH_OK)
    {
        return -1;
    }

    fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hlen);
    ssh_clean_pubkey_hash(&hash);

    if (fp == NULL) {
        return -1;
    }

    snprintf(out, size, "%s", fp);
    ssh_string_free_char(fp);

    return 0;
}


static void
tnl_session_auth_failed(tnl_session_t *s, ssh_message msg)
{
    ssh_message_auth_set_methods(msg, SSH_AUTH_METHOD_PUBLICKEY);
    ssh_message_reply_default(msg);

    if (++s->auth_failures >= TNL_SESSION_AUTH_TRIES) {
        tnl_session_close(s, NULL, "too many authentication attempts");
    }
}


static void
tnl_session_auth_unknown(tnl_session_t *s, const char *fp, const char *user,
    const char *why)
{
    char            text[1536];
    tnl_db_event_t  ev;
    int             n;

    tnl_log_info("session %s: unknown key %s (user \"%s\") from %s",
                 s->id, fp, user ? user : "", s->client);

    memset(&ev, 0, sizeof(ev));
    ev.event = "refused";
    ev.fingerprint = fp;
    ev.client = s->client;
    ev.session = s->id;
    ev.detail = why ? why : "unknown key";
    tnl_db_log_event(&ev);

    /* why no activation code was issued, first */
    n = snprintf(text, sizeof(text), "%s%s%s", why ? "\n" : "",
                 why ? why : "", why ? "\n" : "");

    /*
     * OpenSSH tries each of the person's keys in turn: one banner per
     * unknown key; it shows them all, also when a later key succeeds
     */

    if (tnl_conf.admin_url != NULL) {
        snprintf(text + n, sizeof(text) - n,
                 "\n"
                 "This SSH key is not registered with this tunnel server:\n"
                 "    %s\n"
                 "To use it, add its public key (the .pub file) on your keys "
                 "page:\n"
                 "    %s/keys\n"
                 "(or the operator runs: tunnelctl key add USER FILE.pub),\n"
                 "then connect again.\n"
                 "\n", fp, tnl_conf.admin_url);

    } else {
        snprintf(text + n, sizeof(text) - n,
                 "\n"
                 "This SSH key is not registered with this tunnel server:\n"
                 "    %s\n"
                 "To use it, ask the operator of this server to register its "
                 "public key\n"
                 "(the .pub file):  tunnelctl key add USER FILE.pub\n"
                 "then connect again.\n"
                 "\n", fp);
    }

    tnl_session_banner(s, text);
}


/*
 * The only text an `ssh -N` client shows is the USERAUTH banner, and it
 * must go before the auth success (RFC 4252 5.4); the forward request, and
 * so a random name, comes later.  Say who signed in and where tunnels
 * appear; a reserved name is known already.  A client with a session
 * channel shows the banner too, and the server cannot tell the two apart
 * yet: every line must be true in both modes (what is up, or refused,
 * the session text says: tnl_forward_summary).
 *
 * The key decides who signs in; the user name the client sent (ssh's
 * local login name unless the person typed one) is not used: the banner
 * says so when it differs from the key's owner.
 */
static void
tnl_session_auth_banner(tnl_session_t *s, const tnl_key_t *key,
    const char *sent_user)
{
    char         text[1280], url[512], reserved_url[512];
    const char  *reserved;
    int          n;

    tnl_forward_public_url("NAME", url, sizeof(url));

    if (sent_user != NULL && sent_user[0] != '\0'
        && strcmp(sent_user, key->user) != 0)
    {
        n = snprintf(text, sizeof(text),
                     "\nngx-tunnel: signed in as %s (by your key; the user "
                     "name \"%.64s\" that ssh sent is not used).\n",
                     key->user, sent_user);

    } else {
        n = snprintf(text, sizeof(text), "\nngx-tunnel: signed in as %s.\n",
                     key->user);
    }

    n += snprintf(text + n, sizeof(text) - n,
                  "  -R NAME:80:localhost:PORT serves your app at %s\n", url);

    reserved = tnl_keys_reserved_name_of(key->user_id);

    if (reserved != NULL) {
        tnl_forward_public_url(reserved, reserved_url, sizeof(reserved_url));
        n += snprintf(text + n, sizeof(text) - n,
                      "  -R 80:localhost:PORT serves it at %s "
                      "(your name)\n", reserved_url);
    } else {
        n += snprintf(text + n, sizeof(text) - n,
                      "  -R 80:localhost:PORT gets a random name, printed "
                      "when the tunnel is up (not with -N)\n");
    }

    if ((size_t) n < sizeof(text)) {
        snprintf(text + n, sizeof(text) - n, "\n");
    }

    tnl_session_banner(s, text);
}


static void
tnl_session_auth_ok(tnl_session_t *s, const tnl_key_t *key, const char *fp,
    ssh_message msg)
{
    tnl_db_event_t  ev;

    tnl_session_auth_banner(s, key, ssh_message_auth_user(msg));
    tnl_metric_add(TNL_M_AUTH_OK, 1);

    if (ssh_message_auth_reply_success(msg, 0) != SSH_OK) {
        tnl_session_close(s, NULL, "cannot send auth success");
        return;
    }

    tnl_session_set_auth(s, TNL_AUTH_OK);
    s->user_id = key->user_id;
    snprintf(s->user, sizeof(s->user), "%s", key->user);
    snprintf(s->fingerprint, sizeof(s->fingerprint), "%s", fp);

    tnl_log_info("session %s: user \"%s\" key %s from %s",
                 s->id, s->user, s->fingerprint, s->client);

    memset(&ev, 0, sizeof(ev));
    ev.event = "auth";
    ev.user_id = s->user_id;
    ev.fingerprint = s->fingerprint;
    ev.client = s->client;
    ev.session = s->id;
    tnl_db_log_event(&ev);
    tnl_db_key_used(s->fingerprint);

    /* the login grace (or the wait's IGNOREs) end: the alive ticks start */
    tnl_timer_del(&s->timer);

    if (tnl_alive_init(s->loop) == 0) {
        tnl_alive_add(s, (tnl_now_ms() + (uint64_t) tnl_conf.keepalive * 1000
                          + tnl_alive_tick_ms - 1) / tnl_alive_tick_ms);

    } else {
        /* no memory for the wheel: a timer of its own, as before */
        tnl_timer_add(&s->timer, (uint64_t) tnl_conf.keepalive * 1000);
    }
}


/*
 * ssh_message_auth_pubkey and ssh_message_auth_publickey_state are marked
 * deprecated in 0.10.6 (in favour of the auth callbacks), but they are
 * the only way to read a queued auth message, and queued messages are the
 * only way to answer tcpip-forward late (see session.h).
 */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

/*
 * An unknown key (issue 10): the query ("would you accept it?") gets
 * PK_OK, so that OpenSSH signs; the signed request, its signature checked
 * by libssh, is held unanswered while activation.c issues a code.  The
 * key of a disabled user, or any unknown key with --no-activation, gets
 * the refusal.  Returns 1 when it took msg.
 */
static int
tnl_session_auth_activate(tnl_session_t *s, ssh_message msg, ssh_key pubkey,
    enum ssh_publickey_state_e state, const char *fp)
{
    if (tnl_keys_is_disabled(fp) || !tnl_activation_conf.enabled) {
        tnl_metric_add(TNL_M_AUTH_UNKNOWN_KEY, 1);
        tnl_session_auth_unknown(s, fp, ssh_message_auth_user(msg), NULL);
        tnl_session_auth_failed(s, msg);
        return 0;
    }

    switch (state) {

    case SSH_PUBLICKEY_STATE_NONE:
        ssh_message_auth_reply_pk_ok_simple(msg);
        return 0;

    case SSH_PUBLICKEY_STATE_VALID:
        if (tnl_activation_start(s, pubkey, fp) == -1) {
            tnl_metric_add(TNL_M_AUTH_UNKNOWN_KEY, 1);
            tnl_session_auth_unknown(s, fp, ssh_message_auth_user(msg),
                                     "This kind of key cannot be activated "
                                     "here.");
            tnl_session_auth_failed(s, msg);
            return 0;
        }

        /* answered later: tnl_session_activation_* */
        s->auth_msg = msg;
        snprintf(s->fingerprint, sizeof(s->fingerprint), "%s", fp);
        return 1;

    default:
        tnl_log_warn("session %s: bad signature for key %s from %s",
                     s->id, fp, s->client);
        tnl_session_auth_failed(s, msg);
        return 0;
    }
}


static int
tnl_session_auth(tnl_session_t *s, ssh_message msg)
{
    enum ssh_publickey_state_e   state;
    const tnl_key_t             *key;
    ssh_key                      pubkey;
    char                         fp[64];

    /* OpenSSH waits for the held request; another client gets a no */
    if (s->auth == TNL_AUTH_OK || s->auth_msg != NULL) {
        ssh_message_reply_default(msg);
        return 0;
    }

    if (!s->kex_counted) {
        /* the first userauth request comes after the key exchange */
        s->kex_counted = 1;
        tnl_metric_add(TNL_M_HANDSHAKES, 1);
    }

    if (ssh_message_subtype(msg) != SSH_AUTH_METHOD_PUBLICKEY) {
        if (ssh_message_subtype(msg) != SSH_AUTH_METHOD_NONE) {
            tnl_metric_add(TNL_M_AUTH_OTHER, 1);
        }
        ssh_message_auth_set_methods(msg, SSH_AUTH_METHOD_PUBLICKEY);
        ssh_message_reply_default(msg);
        return 0;
    }

    pubkey = ssh_message_auth_pubkey(msg);
    state = ssh_message_auth_publickey_state(msg);

    if (pubkey == NULL || tnl_session_fingerprint(pubkey, fp, sizeof(fp)))
    {
        tnl_session_auth_failed(s, msg);
        return 0;
    }

    if (!tnl_keys_loaded()) {
        if (!s->key_banner) {
            s->key_banner = 1;
            tnl_session_banner(s, "\nThe tunnel server is starting up and "
                               "cannot check keys yet: retry in a few "
                               "seconds.\n\n");
        }
        tnl_log_warn("session %s: key list not loaded yet, refusing %s",
                     s->id, fp);
        tnl_metric_add(TNL_M_AUTH_NOT_READY, 1);
        tnl_session_auth_failed(s, msg);
        return 0;
    }

    key = tnl_keys_find(fp);

    if (key == NULL) {
        return tnl_session_auth_activate(s, msg, pubkey, state, fp);
    }

    switch (state) {

    case SSH_PUBLICKEY_STATE_NONE:
        /* a query: "would you accept this key?"; the signature follows */
        ssh_message_auth_reply_pk_ok_simple(msg);
        return 0;

    case SSH_PUBLICKEY_STATE_VALID:
        tnl_session_auth_ok(s, key, fp, msg);
        return 0;

    default:
        tnl_log_warn("session %s: bad signature for key %s from %s",
                     s->id, fp, s->client);
        tnl_session_auth_failed(s, msg);
        return 0;
    }
}

#pragma GCC diagnostic pop


/* channels */

static void
tnl_session_channel_open(tnl_session_t *s, ssh_message msg)
{
    ssh_channel  chan;

    switch (ssh_message_subtype(msg)) {

    case SSH_CHANNEL_SESSION:
        if (s->chan != NULL) {
            ssh_message_reply_default(msg);
            return;
        }

        chan = ssh_message_channel_request_open_reply_accept(msg);
        if (chan == NULL) {
            tnl_session_close(s, NULL, "cannot accept the session channel");
            return;
        }

        s->chan = chan;
        memset(&s->chan_cb, 0, sizeof(s->chan_cb));
        s->chan_cb.userdata = s;
        s->chan_cb.channel_data_function = tnl_session_chan_data;
        s->chan_cb.channel_close_function = tnl_session_chan_close;
        ssh_callbacks_init(&s->chan_cb);
        ssh_set_channel_callbacks(chan, &s->chan_cb);
        return;

    case SSH_CHANNEL_DIRECT_TCPIP:
        tnl_log_info("session %s: refused direct-tcpip to %s:%d",
                     s->id,
                     ssh_message_channel_request_open_destination(msg),
                     ssh_message_channel_request_open_destination_port(msg));
        tnl_session_printf(s, "Local forwarding (-L, -D, -W) is not "
                           "supported here: this server only publishes "
                           "your local app with -R.%s",
                           tnl_session_eol(s));
        ssh_message_reply_default(msg);
        return;

    default:
        ssh_message_reply_default(msg);
        return;
    }
}


static void
tnl_session_refuse_exec(tnl_session_t *s, ssh_channel chan, const char *what)
{
    char  text[512];
    int   n;

    n = snprintf(text, sizeof(text),
                 "This is a tunnel server: it does not run %s.\n"
                 "Publish a local app with:  ssh -R myapp:80:localhost:3000 "
                 "-p %d %s\n", what, s->local_port, tnl_conf.domain);

    if (n > 0 && (size_t) n < sizeof(text) && s->chan == chan) {
        (void) ssh_channel_write_stderr(chan, text, (uint32_t) n);
    }

    (void) ssh_channel_request_send_exit_status(chan, 1);
    (void) ssh_channel_send_eof(chan);
    (void) ssh_channel_close(chan);
}


static void
tnl_session_channel_request(tnl_session_t *s, ssh_message msg)
{
    ssh_channel  chan;

    chan = ssh_message_channel_request_channel(msg);

    if (chan == NULL || chan != s->chan) {
        ssh_message_reply_default(msg);
        return;
    }

    switch (ssh_message_subtype(msg)) {

    case SSH_CHANNEL_REQUEST_PTY:
        s->pty = 1;
        ssh_message_channel_request_reply_success(msg);
        return;

    case SSH_CHANNEL_REQUEST_SHELL:
        /*
         * the auth banner said who signed in; which tunnels are up (or
         * why none is) follows once every forward is answered
         */
        s->shell = 1;
        ssh_message_channel_request_reply_success(msg);
        tnl_forward_summary(s);
        return;

    case SSH_CHANNEL_REQUEST_EXEC:
        tnl_log_info("session %s: refused exec \"%s\"", s->id,
                     ssh_message_channel_request_command(msg));
        ssh_message_channel_request_reply_success(msg);
        tnl_session_refuse_exec(s, chan, "commands");
        return;

    case SSH_CHANNEL_REQUEST_SUBSYSTEM:
        tnl_log_info("session %s: refused subsystem \"%s\"", s->id,
                     ssh_message_channel_request_subsystem(msg));
        ssh_message_channel_request_reply_success(msg);
        tnl_session_refuse_exec(s, chan, "sftp, scp or other subsystems");
        return;

    case SSH_CHANNEL_REQUEST_X11:
        tnl_session_printf(s, "X11 forwarding is not supported here.%s",
                           tnl_session_eol(s));
        ssh_message_reply_default(msg);
        return;

    default:
        /* env, window-change, agent, keepalive@openssh.com: politely no */
        ssh_message_reply_default(msg);
        return;
    }
}


/*
 * The request rate of a signed-in client: --max-requests a minute, as a
 * credit that refills continuously up to one minute's worth (a burst of
 * that many is fine).  Channel opens, channel requests, tcpip-forward and
 * cancel-tcpip-forward count; a terminal's window-change does not (a
 * resize sends many, and costs nothing).  Global requests libssh answers
 * itself (keepalive@openssh.com, unknown names) never reach us: they
 * cost a packet each, read no faster than the client takes the answers
 * (tnl_session_io_handler).  0 once the session was closed for it.
 */
static int
tnl_session_request_allowed(tnl_session_t *s, int type, int subtype)
{
    uint64_t  now, full, cost;
    char      why[128];

    if (type == SSH_REQUEST_CHANNEL
        && subtype == SSH_CHANNEL_REQUEST_WINDOW_CHANGE)
    {
        return 1;
    }

    now = tnl_now_ms();
    full = (uint64_t) tnl_conf.max_requests * 60000;
    cost = 60000;

    if (s->req_refill_ms == 0) {
        s->req_credit = full;                 /* the first request */

    } else {
        s->req_credit += (now - s->req_refill_ms)
                         * (uint64_t) tnl_conf.max_requests;
        if (s->req_credit > full) {
            s->req_credit = full;
        }
    }

    s->req_refill_ms = now;

    if (s->req_credit >= cost) {
        s->req_credit -= cost;
        return 1;
    }

    snprintf(why, sizeof(why), "more than %d requests a minute "
             "(--max-requests)", tnl_conf.max_requests);
    tnl_session_abuse(s, why);

    return 0;
}


void
tnl_session_abuse(tnl_session_t *s, const char *why)
{
    char  text[256];

    if (s->closing) {
        return;
    }

    tnl_log_warn("session %s: user \"%s\" from %s: %s: closing the session",
                 s->id, s->user, s->client, why);

    snprintf(text, sizeof(text), "Closed: %s.", why);

    /* not the client's choice: scripts should notice */
    s->exit_status = 1;
    s->abusive = 1;
    tnl_session_close(s, text, why);
}


static void
tnl_session_message(tnl_session_t *s, ssh_message msg)
{
    char  why[128];
    int   type, subtype;

    type = ssh_message_type(msg);
    subtype = ssh_message_subtype(msg);

    if (type == SSH_REQUEST_AUTH) {
        if (!tnl_session_auth(s, msg)) {
            ssh_message_free(msg);
        }
        return;
    }

    if (type == SSH_REQUEST_SERVICE || s->auth != TNL_AUTH_OK) {
        /* service: "ssh-userauth" is accepted; anything else pre-auth: no */
        ssh_message_reply_default(msg);
        ssh_message_free(msg);
        return;
    }

    if (!tnl_session_request_allowed(s, type, subtype)) {
        ssh_message_reply_default(msg);
        ssh_message_free(msg);
        return;
    }

    switch (type) {

    case SSH_REQUEST_CHANNEL_OPEN:
        if (++s->chan_opens > (unsigned) tnl_conf.max_channels) {
            ssh_message_reply_default(msg);
            snprintf(why, sizeof(why), "more than %d channel opens in one "
                     "session (--max-channels)", tnl_conf.max_channels);
            tnl_session_abuse(s, why);
            break;
        }

        tnl_session_channel_open(s, msg);
        break;

    case SSH_REQUEST_CHANNEL:
        tnl_session_channel_request(s, msg);
        break;

    case SSH_REQUEST_GLOBAL:
        if (subtype == SSH_GLOBAL_REQUEST_TCPIP_FORWARD) {
            tnl_forward_request(s, msg);
            return;                                  /* took msg */
        }

        if (subtype == SSH_GLOBAL_REQUEST_CANCEL_TCPIP_FORWARD) {
            tnl_forward_cancel(s, msg);
            return;                                  /* took msg */
        }

        ssh_message_reply_default(msg);
        break;

    default:
        ssh_message_reply_default(msg);
        break;
    }

    ssh_message_free(msg);
}


/* teardown */

void
tnl_session_close(tnl_session_t *s, const char *text, const char *reason)
{
    tnl_forward_t  *f;
    tnl_stream_t   *st;
    uint64_t        secs;

    if (s->closing) {
        return;
    }

    s->closing = 1;
    snprintf(s->close_reason, sizeof(s->close_reason), "tunnel server: %s",
             reason);

    tnl_alive_del(s);

    /*
     * a closing session reads nothing from the message queue: a backlog
     * found before must not keep reading paused (with EPOLLIN watched, the
     * loop would wake for the client's bytes without reading them until
     * the linger ends, and never see its channel close)
     */
    s->msg_backlog = 0;

    /* a code still waiting is cancelled: nothing stays behind */
    tnl_activation_abandon(s);

    secs = (tnl_now_ms() - s->started_ms) / 1000;

    if (s->auth == TNL_AUTH_OK) {
        tnl_log_info("session %s: closed after %llus (user \"%s\"): %s",
                     s->id, (unsigned long long) secs, s->user, reason);

    } else {
        tnl_log_info("session %s: closed before auth (%s): %s",
                     s->id, s->client, reason);
    }

    for (f = s->forwards; f != NULL; f = f->next) {
        tnl_forward_close(f, reason);
    }

    for (st = s->streams; st != NULL; st = st->next) {
        tnl_stream_abort(st);
    }

    s->text_hold = 0;
    tnl_timer_del(&s->text_timer);

    if (s->chan != NULL && !s->chan_closed && s->auth == TNL_AUTH_OK) {
        if (text != NULL) {
            tnl_session_printf(s, "%s%s", text, tnl_session_eol(s));
        }
        tnl_session_flush_text(s);

        if (ssh_channel_is_open(s->chan)) {
            (void) ssh_channel_request_send_exit_status(s->chan,
                                                        s->exit_status);
            (void) ssh_channel_send_eof(s->chan);
            (void) ssh_channel_close(s->chan);
        }
    }

    /* let the text and the EOF reach the client, within bounds */

    tnl_timer_add(&s->timer, TNL_SESSION_LINGER_MS);
    tnl_session_post_process(s);
    tnl_session_post_sweep(s);
}


/* the ssh side is done: disconnect; the sweep frees the rest */
static void
tnl_session_finish(tnl_session_t *s)
{
    tnl_stream_t  *st;

    if (s->finished) {
        return;
    }

    s->finished = 1;

    tnl_timer_del(&s->timer);
    tnl_timer_del(&s->text_timer);
    tnl_alive_del(s);

    if (!tnl_session_fd_gone(s)) {
        tnl_io_del(&s->io);
    }

    /*
     * ssh_disconnect (and ssh_free) free every channel of the session in
     * 0.10.6: detach ours first and forget the pointers
     */

    for (st = s->streams; st != NULL; st = st->next) {
        if (st->chan != NULL) {
            ssh_remove_channel_callbacks(st->chan, &st->cb);
            st->chan = NULL;
        }
        if (st->state == TNL_STREAM_OPENING) {
            st->state = TNL_STREAM_CLOSED;
        }
    }

    if (s->chan != NULL) {
        ssh_remove_channel_callbacks(s->chan, &s->chan_cb);
        s->chan = NULL;
    }

    if (ssh_is_connected(s->ssh)) {
        /*
         * libssh 0.10.6 writes only while its socket is marked writable,
         * and every write clears that mark until a poll sees POLLOUT
         * again; ssh_disconnect then closes the fd, so the DISCONNECT
         * (with the text a -N client prints) was often dropped.  One
         * poll without waiting sets the mark on a writable socket.
         */
        (void) ssh_event_dopoll(s->event, 0);

        if (ssh_is_connected(s->ssh)) {
            (void) ssh_session_set_disconnect_message(s->ssh,
                                                      s->close_reason);
            ssh_disconnect(s->ssh);   /* sends DISCONNECT, closes the fd */
        }
    }

    tnl_session_post_sweep(s);
}


static void
tnl_session_free(tnl_session_t *s)
{
    tnl_alive_del(s);
    tnl_pump_sweep(s, 1);
    tnl_forward_sweep(s);

    tnl_activation_abandon(s);
    tnl_session_set_auth(s, TNL_AUTH_OK);    /* leaves the counts */

    if (s->auth_msg != NULL) {
        ssh_message_free(s->auth_msg);
        s->auth_msg = NULL;
    }

    if (s->prev != NULL) {
        s->prev->next = s->next;
    } else {
        tnl_sessions = s->next;
    }
    if (s->next != NULL) {
        s->next->prev = s->prev;
    }
    tnl_sessions_n--;

    ssh_event_remove_session(s->event, s->ssh);
    ssh_event_free(s->event);
    tnl_drain_detach(&s->drain);
    ssh_free(s->ssh);            /* frees the channels, closes the fd */

    free(s->text);
    free(s);
}


static void
tnl_session_sweep(void *data)
{
    tnl_session_t  *s = data;

    s->sweep_posted = 0;

    if (s->finished) {
        if (s->process_posted) {
            /* a process pass is still queued: free after it ran */
            tnl_session_post_sweep(s);
            return;
        }

        tnl_session_free(s);
        return;
    }

    tnl_pump_sweep(s, 0);
    tnl_forward_sweep(s);
}


/* the count of unauthenticated sessions follows s->auth */
static void
tnl_session_set_auth(tnl_session_t *s, tnl_auth_state_e auth)
{
    if (s->auth == auth) {
        return;
    }

    tnl_sessions_unauth -= (s->auth == TNL_AUTH_NONE);
    s->auth = auth;
    tnl_sessions_unauth += (auth == TNL_AUTH_NONE);

    /* never back to TNL_AUTH_NONE: out of the limits for good */
    if (s->startup && auth != TNL_AUTH_NONE) {
        s->startup = 0;
        tnl_startups_release(s->startup_token);
    }
}


/* the device flow answers (activation.c), never inside a libssh call */

void
tnl_session_activation_detach(tnl_session_t *s)
{
    s->activation = NULL;
}


void
tnl_session_activation_pending(tnl_session_t *s, const char *text)
{
    if (s->closing || s->auth_msg == NULL) {
        return;
    }

    /*
     * Waiting is not logging in: out of the --max-startups count (the
     * activation caps bound it), and the expiry replaces the login grace;
     * a keepalive keeps the client (and NAT mappings) from giving up.
     */
    tnl_session_set_auth(s, TNL_AUTH_PENDING);
    tnl_timer_add(&s->timer, TNL_SESSION_WAIT_KEEPALIVE_MS);

    tnl_session_banner(s, text);
    tnl_session_post_process(s);
}


void
tnl_session_activation_refused(tnl_session_t *s, const char *why)
{
    ssh_message  msg = s->auth_msg;

    if (msg == NULL || s->closing) {
        return;
    }

    s->auth_msg = NULL;
    tnl_session_set_auth(s, TNL_AUTH_NONE);

    tnl_metric_add(TNL_M_AUTH_UNKNOWN_KEY, 1);
    tnl_session_auth_unknown(s, s->fingerprint, ssh_message_auth_user(msg),
                             why);
    tnl_session_auth_failed(s, msg);
    ssh_message_free(msg);

    tnl_session_post_process(s);
}


void
tnl_session_activation_approved(tnl_session_t *s, const tnl_key_t *key)
{
    ssh_message  msg = s->auth_msg;
    char         fp[64];

    if (msg == NULL || s->closing) {
        return;
    }

    s->auth_msg = NULL;
    snprintf(fp, sizeof(fp), "%s", s->fingerprint);

    /* from here on exactly as a registered key's signed request */
    tnl_session_auth_ok(s, key, fp, msg);
    ssh_message_free(msg);

    tnl_session_post_process(s);
}


void
tnl_session_activation_ended(tnl_session_t *s, const char *text)
{
    /* a -N client shows the DISCONNECT message: that is the line */
    tnl_session_close(s, NULL, text);
    tnl_session_post_process(s);
}


/* handlers for other parts */

void
tnl_session_kick(const char *session_id)
{
    tnl_session_t  *s;

    for (s = tnl_sessions; s != NULL; s = s->next) {
        if (strcmp(s->id, session_id) == 0) {
            tnl_session_close(s, "Your tunnel was taken over by a newer "
                              "session of yours: this one is closed.",
                              "taken over");
            tnl_session_post_process(s);
            return;
        }
    }
}


void
tnl_sessions_keys_changed(void)
{
    tnl_session_t  *s;

    for (s = tnl_sessions; s != NULL; s = s->next) {
        if (s->auth != TNL_AUTH_OK || s->closing) {
            continue;
        }

        if (tnl_keys_find(s->fingerprint) == NULL) {
            /* not the client's choice: scripts should notice */
            s->exit_status = 1;
            tnl_session_close(s, "Your key was removed or your account "
                              "disabled: closing your tunnels.",
                              "user disabled or key removed");
        }
    }

    /* keys waiting for approval may be in the table now */
    tnl_activation_keys_changed();
}


void
tnl_sessions_close_all(const char *text, const char *reason)
{
    tnl_session_t  *s;

    for (s = tnl_sessions; s != NULL; s = s->next) {
        tnl_session_close(s, text, reason);
    }
}


void
tnl_session_close_tunnel(const char *session_id, const char *name,
    int whole_session, const char *by, const char *reason)
{
    tnl_session_t   *s;
    tnl_forward_t   *f, *target;
    tnl_db_event_t   ev;
    char             text[512], why[160];
    size_t           len, start;
    int              others;

    for (s = tnl_sessions; s != NULL; s = s->next) {
        if (strcmp(s->id, session_id) == 0) {
            break;
        }
    }

    if (s == NULL || s->closing) {
        return;
    }

    target = NULL;
    others = 0;

    for (f = s->forwards; f != NULL; f = f->next) {
        if (f->state != TNL_FORWARD_ACTIVE) {
            continue;
        }
        if (strcmp(f->name, name) == 0) {
            target = f;
        } else {
            others++;
        }
    }

    if (whole_session && others > 0) {
        /* every tunnel of the session goes: name them all */
        len = (size_t) snprintf(text, sizeof(text), "Your SSH session and "
                                "its tunnels (");
        start = len;
        for (f = s->forwards; f != NULL && len < sizeof(text); f = f->next) {
            if (f->state == TNL_FORWARD_ACTIVE) {
                len += (size_t) snprintf(text + len, sizeof(text) - len,
                                         "%s%s", len > start ? ", " : "",
                                         f->name);
            }
        }
        if (len < sizeof(text)) {
            snprintf(text + len, sizeof(text) - len, ") were closed by an "
                     "administrator");
        }

    } else {
        snprintf(text, sizeof(text), "Tunnel %s was closed by an "
                 "administrator", name);
    }

    /* one sentence: ": REASON." or "." (a reason's own stop is kept) */
    len = strlen(text);
    if (reason[0] != '\0') {
        snprintf(text + len, sizeof(text) - len, ": %s%s", reason,
                 strchr(".!?", reason[strlen(reason) - 1]) ? "" : ".");
    } else {
        snprintf(text + len, sizeof(text) - len, ".");
    }

    snprintf(why, sizeof(why), "kicked by %s", by[0] ? by : "the API");

    tnl_log_info("session %s: tunnel %s kicked by %s%s%s", s->id, name,
                 by[0] ? by : "the API", reason[0] ? ": " : "", reason);

    memset(&ev, 0, sizeof(ev));
    ev.event = "kick";
    ev.name = name;
    ev.user_id = s->user_id;
    ev.fingerprint = s->fingerprint;
    ev.client = s->client;
    ev.session = s->id;
    ev.detail = why;
    tnl_db_log_event(&ev);

    tnl_metric_add(TNL_M_TUNNELS_KICKED, 1);

    if (!whole_session && target != NULL && others > 0) {
        /* the session keeps its other tunnels */
        tnl_session_printf(s, "%s%s", text, tnl_session_eol(s));
        tnl_forward_close(target, why);
        tnl_session_post_process(s);
        return;
    }

    /* scripts notice: the tunnel did not end by the client's choice */
    s->exit_status = 1;

    /*
     * the audit log and the log say "kicked by WHO"; the text is the
     * DISCONNECT message a -N client prints
     */
    tnl_session_close(s, text, why);
    snprintf(s->close_reason, sizeof(s->close_reason), "tunnel server: %s",
             text);
    tnl_session_post_process(s);
}
