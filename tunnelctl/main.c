/*
 * tunnelctl main: command dispatch (of commands and of their
 * sub-commands), usage text and the two error printers every command
 * uses.  It parses nothing beyond the command words: each command parses
 * its own arguments.  Exit status: 0 done, 1 failed, 2 bad
 * command line (see tunnelctl.h).
 *
 * Environment: DATABASE_URL is read by db.c when a command needs the
 * database; TUNNELD_API (and TUNNELD_API_TOKEN) by api.c for the commands
 * that act on live tunnels (tunnels, kick), which go through tunneld's
 * management API like the web dashboard.
 */

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tunnelctl.h"


static const tnl_ctl_command_t  tnl_ctl_commands[] = {
    { "migrate", tnl_ctl_migrate },
    { "user",    tnl_ctl_user },
    { "key",     tnl_ctl_key },
    { "name",    tnl_ctl_name },
    { "invite",  tnl_ctl_invite },
    { "system-name", tnl_ctl_system_name },
    { "tunnels", tnl_ctl_tunnels },
    { "kick",    tnl_ctl_kick },
    { "activation", tnl_ctl_activation },
    { "login-failures", tnl_ctl_login_failures },
    { NULL, NULL }
};


static const char  tnl_ctl_usage_text[] =
"usage: tunnelctl COMMAND [ARGUMENTS]\n"
"\n"
"The operator's tool of ngx-tunnel: database schema, users, SSH keys,\n"
"reserved and system tunnel names and invitations to the web admin.\n"
"\n"
"commands:\n"
"  migrate                   create or update the database schema\n"
"  user add NAME [--admin] [--hours N] [--base-url URL]\n"
"                            add a user (NAME: 1 to 32 characters a-z 0-9\n"
"                            _ -, starting with a letter) and print a\n"
"                            one-time link URL/password/TOKEN where they\n"
"                            set their web password (valid N hours, 1 to\n"
"                            8760, default 72)\n"
"  user password NAME [--hours N] [--base-url URL]\n"
"                            print a new one-time password link for NAME\n"
"                            (forgotten password); older links stop working\n"
"  user list                 list users: name, role, disabled, keys, created\n"
"  user disable NAME         refuse NAME's keys, end their web sessions;\n"
"                            tunneld closes their tunnels within 2 s\n"
"  user enable NAME          accept NAME's keys and web logins again\n"
"  user remove NAME          delete NAME with their keys and reserved names\n"
"                            (the last enabled admin can be neither\n"
"                            disabled nor removed)\n"
"  user unlock NAME          let NAME sign in to the web admin again now:\n"
"                            the same as 'login-failures clear --user NAME'\n"
"  key add USER FILE|-       register USER's SSH public key, read from FILE\n"
"                            (e.g. ~/.ssh/id_ed25519.pub) or from standard\n"
"                            input; prints its SHA256 fingerprint\n"
"  key list [USER]           list keys: fingerprint, type, user, comment,\n"
"                            created, last used\n"
"  key remove FINGERPRINT    delete a key (SHA256:... as 'key list' shows)\n"
"  name reserve NAME USER    reserve the tunnel name NAME for USER only\n"
"  name release NAME         make NAME free for anyone again\n"
"  name list [USER]          list reserved names\n"
"  system-name list          list the system names: nobody may open or\n"
"                            reserve them (www, admin, api, ...)\n"
"  system-name add NAME...   add system names; tunneld and the web admin\n"
"                            apply the change within 2 s\n"
"  system-name remove NAME...\n"
"                            make names usable by tunnels again\n"
"  invite create [--admin] [--hours N] [--note TEXT] [--base-url URL]\n"
"                            print a single-use sign-up link\n"
"                            URL/join/TOKEN for the web admin; --admin: the\n"
"                            new user is an admin; valid N hours (1 to 8760,\n"
"                            default 72); the note (at most 200 characters)\n"
"                            is shown in the lists.  The token is printed\n"
"                            once and only its SHA-256 is stored\n"
"  invite list               list invitations: id, status (open, used by\n"
"                            whom, expired, revoked), role, created,\n"
"                            expires, created by, note\n"
"  invite revoke ID          make an unused invitation unusable\n"
"  tunnels [--user USER] [--json]\n"
"                            list the live tunnels of every node: name,\n"
"                            user, client, node, up for, bytes in and out,\n"
"                            requests, last request (tunneld's API)\n"
"  kick NAME [--reason TEXT] [--session]\n"
"                            close a live tunnel on whichever node holds\n"
"                            it; its ssh client is told TEXT (at most 200\n"
"                            characters); --session closes the whole SSH\n"
"                            session.  Not a ban: it may reconnect\n"
"  activation list           list the pending device-flow codes of unknown\n"
"                            keys waiting in ssh: id, fingerprint, type,\n"
"                            client, created, expires\n"
"  activation approve CODE --user USER\n"
"                            add the key waiting with CODE (as ssh printed\n"
"                            it, e.g. WDJB-MJHT) to USER's keys; its ssh\n"
"                            session goes on\n"
"  activation deny CODE|ID   refuse it; its ssh session is closed\n"
"  login-failures list       the failed web sign-ins of the last day: name\n"
"                            as typed (folded), address, count, last,\n"
"                            whether the name is an account\n"
"  login-failures clear [--user NAME] [--address ADDR]\n"
"                            forget failed sign-ins (all of them without\n"
"                            options), lifting the wait the sign-in page\n"
"                            states; leaves an audit row\n"
"\n"
"environment:\n"
"  DATABASE_URL      PostgreSQL URI or conninfo, e.g.\n"
"                    postgresql:///ngx_tunnel?host=/run/postgresql\n"
"  TUNNEL_ADMIN_URL  the web admin's address for the links of 'invite\n"
"                    create', 'user add' and 'user password', e.g.\n"
"                    https://admin.example.com (--base-url wins); unset:\n"
"                    they print the path (/join/TOKEN, /password/TOKEN)\n"
"  TUNNELD_API       tunneld's management API for 'tunnels' and 'kick':\n"
"                    the path of its api.sock (SOCKET_DIR/api.sock), or\n"
"                    http://HOST:PORT with TUNNELD_API_TOKEN\n"
"\n"
"Times are shown in UTC.  Exit status: 0 done, 1 failed (the message says\n"
"why and what to do), 2 bad command line.\n";


/* one line on stderr: "tunnelctl: ", the message, then end */
static void
tnl_ctl_message(const char *end, const char *fmt, va_list ap)
{
    fputs("tunnelctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(end, stderr);
}


void
tnl_ctl_error(const char *fmt, ...)
{
    va_list  ap;

    va_start(ap, fmt);
    tnl_ctl_message("\n", fmt, ap);
    va_end(ap);
}


int
tnl_ctl_usage_error(const char *fmt, ...)
{
    va_list  ap;

    va_start(ap, fmt);
    tnl_ctl_message(": see 'tunnelctl --help'\n", fmt, ap);
    va_end(ap);

    return TNL_CTL_USAGE;
}


int
tnl_ctl_subcommand(const char *group, const tnl_ctl_command_t *commands,
    int argc, char **argv)
{
    char                      names[256];
    size_t                    len;
    const tnl_ctl_command_t  *cmd;

    if (argc > 0) {
        for (cmd = commands; cmd->name != NULL; cmd++) {
            if (strcmp(cmd->name, argv[0]) == 0) {
                return cmd->run(argc - 1, argv + 1);
            }
        }

        return tnl_ctl_usage_error("unknown command '%s %s'", group, argv[0]);
    }

    /* "add, list or remove" */
    len = 0;
    names[0] = '\0';

    for (cmd = commands; cmd->name != NULL && len < sizeof(names); cmd++) {
        len += snprintf(names + len, sizeof(names) - len, "%s%s",
                        cmd == commands ? ""
                        : (cmd + 1)->name == NULL ? " or " : ", ",
                        cmd->name);
    }

    return tnl_ctl_usage_error("'%s' needs %s", group, names);
}


static int
tnl_ctl_wants_help(int argc, char **argv)
{
    int  i;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            return 0;
        }

        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            return 1;
        }
    }

    return argc > 1 && strcmp(argv[1], "help") == 0;
}


int
main(int argc, char **argv)
{
    int                       rc;
    const tnl_ctl_command_t  *cmd;

    if (tnl_ctl_wants_help(argc, argv)) {
        fputs(tnl_ctl_usage_text, stdout);
        return TNL_CTL_OK;
    }

    if (argc < 2) {
        fputs(tnl_ctl_usage_text, stderr);
        return TNL_CTL_USAGE;
    }

    for (cmd = tnl_ctl_commands; cmd->name != NULL; cmd++) {
        if (strcmp(cmd->name, argv[1]) == 0) {
            break;
        }
    }

    if (cmd->name == NULL) {
        return tnl_ctl_usage_error("unknown command \"%s\"", argv[1]);
    }

    rc = cmd->run(argc - 2, argv + 2);

    if (fflush(stdout) != 0 || ferror(stdout)) {
        tnl_ctl_error("cannot write the output: %m");
        return TNL_CTL_FAIL;
    }

    return rc;
}
