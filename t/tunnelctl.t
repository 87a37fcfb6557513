#!/usr/bin/perl
# tunnelctl and the schema against a private PostgreSQL (started by
# tools/lib/NgxTunnel/Stack.pm in a temp dir, stopped by PID at the end):
# migrate (idempotent, two at once, a failing migration rolls back), users,
# keys (fingerprints equal to ssh-keygen -lf, private keys and malformed
# keys refused, duplicates name their owner), reserved names, the NOTIFY
# triggers tunneld listens to, invitations (token form, the link with and
# without a base URL, only sha256 of the token stored, --hours bounds,
# statuses in 'invite list', revoke), user disable/enable/remove through
# tunnel_admin_user_action (never zero enabled admins, disabling ends web
# sessions and, with tunneld and Redis started for it, closes the user's
# live tunnel), login-failures list|clear and user unlock (folded names,
# an audit row), and the errors for a missing DATABASE_URL and a server
# that is down.  Every error is one line on stderr, exit 1; command line
# mistakes exit 2.

use strict;
use warnings;

use FindBin;
use File::Temp qw(tempdir);
use IPC::Run ();
use Test::More;
use Digest::SHA qw(sha256_hex);
use Time::HiRes qw(sleep time);

my $root;
BEGIN { $root = "$FindBin::Bin/.." }
use lib "$root/tools/lib", "$root/t/lib";
use NgxTunnel::Stack;
use NgxTunnel::Test qw(start_ssh wait_route wait_no_route wait_until
                       tail_log watchdog);

watchdog(300);

# TUNNELCTL: test another build of it (e.g. with -fsanitize=address)
my $bin = $ENV{TUNNELCTL} // ($ENV{NGX_TUNNEL_BUILD} // "$root/build") . "/tunnelctl";
BAIL_OUT("$bin not built: run 'make build/tunnelctl'") unless -x $bin;

my $LOCK = '7955459708354981484';   # tunnelctl/migrate.c
my $TS   = qr/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/;

my $dir = tempdir('tunnelctl-t.XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $dir;
my $keys = "$dir/keys";
mkdir $keys or die "mkdir $keys: $!";

# ports of our own: tunneld runs for the disable test near the end
my $s = NgxTunnel::Stack->new(root => $root, dir => "$dir/stack",
                              http_port => NgxTunnel::Stack::free_port(),
                              ssh_port => NgxTunnel::Stack::free_port());
$s->start_postgres;

# tunnelctl with the stack's DATABASE_URL, or with %$env as the whole
# environment when given; returns (exit code, stdout, stderr)
sub ctl_env {
    my ($env, $stdin, @args) = @_;
    my ($out, $err) = ('', '');
    $stdin //= '';
    IPC::Run::run([$bin, @args], '<', \$stdin, '>', \$out, '2>', \$err,
        init => sub { %ENV = %$env }, IPC::Run::timeout(60));
    return ($? >> 8, $out, $err);
}

sub url_of {
    my ($db) = @_;
    (my $u = $s->database_url) =~ s{^postgresql:///ngx_tunnel\?}
                                   {postgresql:///$db?};
    return $u;
}

sub env_of { { PATH => $ENV{PATH}, DATABASE_URL => url_of($_[0]) } }

sub ctl    { ctl_env(env_of('ngx_tunnel'), undef, @_) }
sub ctl_in { my $in = shift; ctl_env(env_of('ngx_tunnel'), $in, @_) }

sub sql {
    my ($q, $db) = @_;
    my ($rc, $out, $err) = $s->psql_db($db // 'ngx_tunnel', $q);
    die "psql failed: $err" if $rc != 0;
    return $out;
}

# ($rc, $out, $err) is a failure with exactly this one-line message
sub fails {
    my ($r, $code, $msg, $name) = @_;
    my ($rc, $out, $err) = @$r;
    subtest $name => sub {
        is($rc, $code, "exit $code");
        is($out, '', 'nothing on stdout');
        if (ref $msg) {
            like($err, $msg, 'message');
        } else {
            is($err, "tunnelctl: $msg\n", 'message');
        }
        like($err, qr/\Atunnelctl: [^\n]+\n\z/, 'one line');
    };
}

sub keygen {
    my ($name, @opt) = @_;
    system('ssh-keygen', '-q', '-N', '', '-f', "$keys/$name", @opt) == 0
        or die "ssh-keygen $name failed";
    my $fp = `ssh-keygen -lf $keys/$name.pub`;
    my (undef, $sha) = split / /, $fp;
    return $sha;
}

my $TOKEN = qr/[A-Za-z0-9_-]{24}/;
my $HINT = "tunnelctl: hint: this is the path of the link on the web admin; "
         . "to print the whole link pass --base-url URL or export "
         . "TUNNEL_ADMIN_URL, e.g. https://admin.example.com\n";

sub ctl_url {
    my ($url, @args) = @_;
    return ctl_env({ %{ env_of('ngx_tunnel') }, TUNNEL_ADMIN_URL => $url },
                   undef, @args);
}

sub slurp {
    open my $fh, '<', $_[0] or die "$_[0]: $!";
    local $/;
    return scalar <$fh>;
}


# --- help and command line ---------------------------------------------

my ($rc, $out, $err) = ctl('--help');
is($rc, 0, '--help exits 0');
like($out, qr/\Ausage: tunnelctl COMMAND/, '--help prints usage');
like($out, qr/^  key add USER FILE\|-/m, 'usage lists key add');
is($err, '', '--help: no stderr');
like($out, qr/^  invite create \[--admin\] \[--hours N\] \[--note TEXT\] /m,
     'usage lists invite create');
like($out, qr/^  invite list  +list invitations/m, 'usage lists invite list');
like($out, qr/^  invite revoke ID  /m, 'usage lists invite revoke');
like($out, qr/^  TUNNEL_ADMIN_URL  /m, 'usage names TUNNEL_ADMIN_URL');
like($out, qr/^  user disable NAME  .*\n.*within 2 s$/m,
     'usage: disable closes tunnels');

($rc, $out, $err) = ctl();
is($rc, 2, 'no command: exit 2');
like($err, qr/\Ausage: tunnelctl/, 'no command: usage on stderr');

fails([ctl('frobnicate')], 2,
      q{unknown command "frobnicate": see 'tunnelctl --help'},
      'unknown command');
fails([ctl('user')], 2,
      q{'user' needs add, list, password, disable, enable, remove or }
      . q{unlock: see 'tunnelctl --help'}, 'user without subcommand');
fails([ctl('user', 'add')], 2,
      q{'user add' needs a NAME: see 'tunnelctl --help'}, 'user add no name');
fails([ctl('user', 'add', '-bob')], 2,
      q{unknown option "-bob" for 'user add': see 'tunnelctl --help'},
      'user add: a name starting with - is an option');
fails([ctl('user', 'add', 'bob', '--root')], 2,
      q{unknown option "--root" for 'user add': see 'tunnelctl --help'},
      'user add unknown option');
fails([ctl('key', 'add', 'bob')], 2,
      q{'key add' takes a USER and a FILE (or - for standard input): see }
      . q{'tunnelctl --help'}, 'key add without file');
fails([ctl('invite')], 2,
      q{'invite' needs create, list or revoke: see 'tunnelctl --help'},
      'invite without subcommand');
fails([ctl('invite', 'send')], 2,
      q{unknown command 'invite send': see 'tunnelctl --help'},
      'invite: unknown subcommand');
fails([ctl('invite', 'create', '--hours')], 2,
      q{--hours needs a value: see 'tunnelctl --help'},
      'invite create --hours without a value');
fails([ctl('invite', 'create', '--note')], 2,
      q{--note needs a value: see 'tunnelctl --help'},
      'invite create --note without a value');
fails([ctl('invite', 'create', '--base-url')], 2,
      q{--base-url needs a value: see 'tunnelctl --help'},
      'invite create --base-url without a value');
fails([ctl('invite', 'create', '--root')], 2,
      q{unknown option "--root" for 'invite create': see 'tunnelctl --help'},
      'invite create: unknown option');
fails([ctl('invite', 'create', 'carol')], 2,
      q{'invite create' takes only options, not "carol": see }
      . q{'tunnelctl --help'}, 'invite create: an argument');
fails([ctl('invite', 'list', 'all')], 2,
      q{'invite list' takes no argument, not "all": see 'tunnelctl --help'},
      'invite list: an argument');
fails([ctl('invite', 'revoke')], 2,
      q{'invite revoke' takes one ID: see 'tunnelctl --help'},
      'invite revoke without ID');
fails([ctl('invite', 'revoke', '1', '2')], 2,
      q{'invite revoke' takes one ID: see 'tunnelctl --help'},
      'invite revoke with two IDs');
fails([ctl('migrate', 'now')], 2,
      q{'migrate' takes no argument, not "now": see 'tunnelctl --help'},
      'migrate with an argument');


# --- before migrate ------------------------------------------------------

fails([ctl('user', 'list')], 1,
      q{cannot list users: the database has no ngx-tunnel schema }
      . q{(relation "users" does not exist): run 'tunnelctl migrate' first},
      'user list before migrate');
fails([ctl('invite', 'list')], 1,
      q{cannot list invitations: the database has no ngx-tunnel schema }
      . q{(relation "invitations" does not exist): run 'tunnelctl }
      . q{migrate' first}, 'invite list before migrate');


# --- migrate ----------------------------------------------------------------

# every file of sql/ in order: what a first migrate applies (other issues
# add migrations; these checks follow them)
my @MIGRATIONS = map { m{([^/]+)\z} } sort glob "$root/sql/[0-9]*_*.sql";
my $APPLIED = join '', map { "applied $_\n" } @MIGRATIONS;
my $ROWS = join '', map { /^0*(\d+)_/; "$1|$_\n" } @MIGRATIONS;
cmp_ok(scalar @MIGRATIONS, '>=', 2, 'sql/ has 001 and 002 at least');

($rc, $out, $err) = ctl('migrate');
is($rc, 0, 'migrate exit 0') or diag $err;
is($out, $APPLIED, 'migrate applies every migration, in order');
is($err, '', 'migrate: no stderr');

($rc, $out, $err) = ctl('migrate');
is($rc, 0, 'second migrate exit 0');
is($out, "database is up to date\n", 'second migrate: up to date');
is($err, '', 'second migrate: no stderr (no NOTICE noise)');

is(sql('SELECT version, name FROM schema_migrations ORDER BY version'),
   $ROWS, 'schema_migrations has one row per file');
# the tables of 001 and 002 (a later migration may add more)
is(sql(q{SELECT string_agg(tablename, ',' ORDER BY tablename)
         FROM pg_tables WHERE schemaname = 'public' AND tablename IN
         ('activation_codes', 'invitations', 'login_failures',
          'reserved_names', 'schema_migrations', 'sessions', 'ssh_keys',
          'tunnel_events', 'users')}),
   "activation_codes,invitations,login_failures,reserved_names,"
   . "schema_migrations,sessions,ssh_keys,tunnel_events,users\n",
   'all tables exist');


# two migrates at once, while a third party holds the lock: both wait, one
# applies, the other finds the work done
sql('CREATE DATABASE race', 'postgres');
{
    my ($hout, $herr) = ('', '');
    my $holder = IPC::Run::start(
        ['psql', '-X', '-q', '-t', '-A', '-d', url_of('race'),
         '-c', "SELECT pg_advisory_lock($LOCK)", '-c', 'SELECT pg_sleep(1)'],
        '<', \undef, '>', \$hout, '2>', \$herr, IPC::Run::timeout(30));

    my $deadline = time + 10;
    sleep 0.05 until time > $deadline
        || sql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
                AND granted", 'race') eq "1\n";

    my (@h, @out, @err);
    for my $i (0, 1) {
        ($out[$i], $err[$i]) = ('', '');
        push @h, IPC::Run::start([$bin, 'migrate'], '<', \undef,
            '>', \$out[$i], '2>', \$err[$i],
            init => sub { %ENV = %{ env_of('race') } },
            IPC::Run::timeout(30));
    }

    $deadline = time + 10;
    my $waiting = '';
    until (time > $deadline) {
        $waiting = sql("SELECT count(*) FROM pg_locks WHERE locktype =
                        'advisory' AND NOT granted", 'race');
        last if $waiting eq "2\n";
        sleep 0.05;
    }
    is($waiting, "2\n", 'both migrates wait for the lock');

    $holder->finish;
    my @rc = map { $_->finish; $_->full_result >> 8 } @h;
    is_deeply(\@rc, [0, 0], 'concurrent migrates both exit 0');
    is_deeply([sort @out],
              [$APPLIED, "database is up to date\n"],
              'one applied, the other found it done');
    is_deeply(\@err,
              [("tunnelctl: another 'tunnelctl migrate' is running: "
                . "waiting for it\n") x 2], 'both said they wait');
    is(sql('SELECT count(*) FROM schema_migrations', 'race'),
       scalar(@MIGRATIONS) . "\n", 'race: one schema_migrations row each');
}

# and without a third party: plain race on a fresh database
sql('CREATE DATABASE race2', 'postgres');
{
    my (@h, @out, @err);
    for my $i (0, 1) {
        ($out[$i], $err[$i]) = ('', '');
        push @h, IPC::Run::start([$bin, 'migrate'], '<', \undef,
            '>', \$out[$i], '2>', \$err[$i],
            init => sub { %ENV = %{ env_of('race2') } },
            IPC::Run::timeout(30));
    }
    my @rc = map { $_->finish; $_->full_result >> 8 } @h;
    is_deeply(\@rc, [0, 0], 'race2: both exit 0');
    is_deeply([sort @out],
              [$APPLIED, "database is up to date\n"],
              'race2: applied exactly once');
}

# a database whose schema predates 002 (its functions missing)
sql('DROP FUNCTION tunnel_admin_invite_create', 'race2');
fails([ctl_env(env_of('race2'), undef, 'invite', 'create')], 1,
      qr{^tunnelctl:\ cannot\ create\ the\ invitation:\ the\ database
         \ schema\ is\ older\ than\ this\ tunnelctl\ \(function
         \ tunnel_admin_invite_create\([^\n]*\):\ run\ 'tunnelctl
         \ migrate'\ first\n\z}x,
      'schema without the 002 functions: run migrate');

# a migration that fails leaves nothing of itself behind
sql('CREATE DATABASE clash', 'postgres');
sql('CREATE TABLE users (x int)', 'clash');
fails([ctl_env(env_of('clash'), undef, 'migrate')], 1,
      q{cannot apply migration 001_schema.sql (nothing of it was applied): }
      . q{relation "users" already exists}, 'failing migration');
is(sql(q{SELECT coalesce(to_regclass('ssh_keys')::text, 'none'),
         (SELECT count(*) FROM schema_migrations)}, 'clash'),
   "none|0\n", 'failing migration rolled back');


# --- users ------------------------------------------------------------------

($rc, $out, $err) = ctl('user', 'list');
is_deeply([$rc, $out, $err],
          [0, '', "tunnelctl: no users yet: add one with "
                  . "'tunnelctl user add NAME'\n"], 'user list, empty');

# the password link of 'user add' and 'user password': only the sha256 of
# its token is stored, with the user, the hours and no creator
sub password_token {
    my ($token, $cols) = @_;
    my $hash = sha256_hex($token);
    return sql("SELECT $cols FROM password_tokens t
                JOIN users u ON u.id = t.user_id
                WHERE t.token_hash = '\\x$hash'::bytea");
}

my $PWLINK = qr{one-time link for "([a-z-]+)" to set a web password};

($rc, $out, $err) = ctl('user', 'add', 'bob');
is($rc, 0, 'user add: exit 0');
like($out, qr{\Aadded\ user\ "bob"\n $PWLINK \ \(valid\ 72\ hours\):\n
               /password/$TOKEN\n\z}x, 'user add prints a password link');
is($err, $HINT, 'user add without a base: the hint on stderr');
my ($pw1) = $out =~ m{/password/(\S+)};
is(password_token($pw1 // '', q{u.name, u.is_admin, u.password_hash IS NULL,
                   t.created_by IS NULL, t.used_at IS NULL,
                   extract(epoch FROM t.expires_at - t.created_at)::bigint}),
   "bob|f|t|t|t|259200\n", 'link stored as sha256: bob, 72 h, by tunnelctl');
is(sql(qq{SELECT count(*) FROM password_tokens t
          WHERE strpos(t::text, '$pw1') > 0}), "0\n",
   'the password token itself is stored nowhere');

($rc, $out, $err) = ctl_url('http://localhost:8080/', 'user', 'add',
                            '--admin', 'alice', '--hours', '1');
like($out, qr{\Aadded\ admin\ "alice"\n $PWLINK \ \(valid\ 1\ hour\):\n
               http://localhost:8080/password/$TOKEN\n\z}x,
     'user add --admin --hours 1: the whole link with TUNNEL_ADMIN_URL');
is_deeply([$rc, $err], [0, ''], '... exit 0, nothing on stderr');
my ($pw2) = $out =~ m{/password/(\S+)};
is(password_token($pw2 // '', q{u.name, u.is_admin,
                   extract(epoch FROM t.expires_at - t.created_at)::bigint}),
   "alice|t|3600\n", 'admin alice, link valid 1 hour');
is(sql('SELECT tunnel_admin_needs_setup()'), "t\n",
   'an admin without password leaves the web setup open');
($rc, $out, $err) = ctl('user', 'add', 'a-very_long-name-of-32-chars-xyz',
                        '--base-url', 'https://admin.example.com');
is($rc, 0, '32-character name accepted');
like($out, qr{\nhttps://admin\.example\.com/password/$TOKEN\n\z},
     'user add --base-url');

fails([ctl('user', 'add', 'bob')], 1,
      q{user "bob" already exists: see 'tunnelctl user list'; a new }
      . q{password link: 'tunnelctl user password bob'},
      'duplicate user');
fails([ctl('user', 'add', 'zoe', '--hours', '0')], 1,
      q{--hours "0" is not valid: give a whole number of hours from 1 to }
      . q{8760 (one year)}, 'user add --hours 0');
fails([ctl('user', 'add', 'zoe', '--base-url', 'admin.example.com')], 1,
      q{--base-url "admin.example.com" is not the web admin's address: }
      . q{give http(s)://HOST[:PORT], e.g. https://admin.example.com},
      'user add --base-url without a scheme');
fails([ctl('user', 'add', 'zoe', '--hours')], 2,
      q{--hours needs a value: see 'tunnelctl --help'},
      'user add --hours without a value');
is(sql(q{SELECT count(*) FROM users WHERE name = 'zoe'}), "0\n",
   'refused options add no user');

# a fresh link for a forgotten password; the older one stops working
($rc, $out, $err) = ctl_url('http://localhost:8080', 'user', 'password',
                            'bob');
like($out, qr{\A $PWLINK \ \(valid\ 72\ hours;\ earlier\ links\ no\ longer
               \ work\):\nhttp://localhost:8080/password/$TOKEN\n\z}x,
     'user password prints a new link');
is_deeply([$rc, $err], [0, ''], '... exit 0, nothing on stderr');
my ($pw3) = $out =~ m{/password/(\S+)};
is(sql("SELECT r_status, r_user_name FROM tunnel_admin_password_token_check("
       . "'\\x" . sha256_hex($pw3 // '') . "'::bytea)"),
   "ok|bob\n", 'the new link is usable for bob');
is(sql("SELECT r_status FROM tunnel_admin_password_token_check("
       . "'\\x" . sha256_hex($pw1 // '') . "'::bytea)"),
   "expired\n", 'the link of user add no longer works');
fails([ctl('user', 'password', 'zed')], 1,
      q{no user named "zed": add it with 'tunnelctl user add zed'},
      'user password: unknown user');
fails([ctl('user', 'password')], 2,
      q{'user password' needs a NAME: see 'tunnelctl --help'},
      'user password without a name');
fails([ctl('user', 'password', 'bob', '--admin')], 2,
      q{unknown option "--admin" for 'user password': see }
      . q{'tunnelctl --help'}, 'user password --admin');
for my $bad ('Bob', '1bob', 'bo b', '', 'a' x 33, 'bob!', '_bob') {
    fails([ctl('user', 'add', $bad)], 1,
          qq{"$bad" is not a valid user name: use 1 to 32 characters }
          . q{a-z 0-9 _ -, starting with a letter},
          "invalid user name '$bad'");
}
is(sql('SELECT count(*) FROM users'), "3\n", 'three users stored');
is(sql("SELECT is_admin, disabled FROM users WHERE name = 'alice'"),
   "t|f\n", 'alice is admin');


# --- keys -------------------------------------------------------------------

my %fp = (
    ed25519 => keygen('ed', '-t', 'ed25519', '-C', 'bob@laptop'),
    rsa     => keygen('rsa', '-t', 'rsa', '-b', '3072', '-C', 'bob rsa key'),
    ecdsa   => keygen('ec', '-t', 'ecdsa', '-b', '384', '-C', ''),
);
like($fp{$_}, qr{^SHA256:[A-Za-z0-9+/]{43}$}, "ssh-keygen fingerprint $_")
    for sort keys %fp;

($rc, $out, $err) = ctl('key', 'add', 'bob', "$keys/ed.pub");
is_deeply([$rc, $out, $err], [0, "$fp{ed25519}\n", ''],
          'key add ed25519: prints the ssh-keygen fingerprint');
($rc, $out, $err) = ctl_in(slurp("$keys/rsa.pub"), 'key', 'add', 'bob', '-');
is_deeply([$rc, $out, $err], [0, "$fp{rsa}\n", ''],
          'key add rsa from stdin: same fingerprint as ssh-keygen');
($rc, $out, $err) = ctl_in("# alice's key\n\n" . slurp("$keys/ec.pub")
                           =~ s/\n/\r\n/r, 'key', 'add', 'alice', '-');
is_deeply([$rc, $out, $err], [0, "$fp{ecdsa}\n", ''],
          'key add ecdsa with a comment line and CRLF');

my (undef, $ed_b64) = split / /, slurp("$keys/ed.pub");
is(sql("SELECT k.key_type, k.key_base64, k.comment, u.name, k.last_used_at
        IS NULL FROM ssh_keys k JOIN users u ON u.id = k.user_id
        WHERE k.fingerprint = '$fp{ed25519}'"),
   "ssh-ed25519|$ed_b64|bob\@laptop|bob|t\n", 'ed25519 key stored');
is(sql("SELECT comment FROM ssh_keys WHERE fingerprint = '$fp{rsa}'"),
   "bob rsa key\n", 'comment with spaces stored');
is(sql("SELECT key_type, comment FROM ssh_keys
        WHERE fingerprint = '$fp{ecdsa}'"),
   "ecdsa-sha2-nistp384|\n", 'ecdsa key stored, empty comment');

fails([ctl('key', 'add', 'alice', "$keys/ed.pub")], 1,
      qq{this key ($fp{ed25519}) is already registered to user "bob": }
      . q{a key belongs to one user; remove it first with }
      . qq{'tunnelctl key remove $fp{ed25519}'}, 'duplicate key');
fails([ctl('key', 'add', 'carol', "$keys/ed.pub")], 1,
      q{no user named "carol": add it with 'tunnelctl user add carol'},
      'key add for an unknown user');
fails([ctl('key', 'add', 'bob', "$keys/ed")], 1,
      qq{"$keys/ed" is a private key, which must never leave its owner: }
      . q{give the public key instead (the .pub file next to it, or }
      . q{'ssh-keygen -y -f FILE')}, 'private key (OpenSSH format)');
system('ssh-keygen', '-q', '-t', 'rsa', '-b', '2048', '-m', 'PEM',
       '-N', 'secret-pass', '-f', "$keys/pem") == 0 or die 'ssh-keygen';
fails([ctl_in(slurp("$keys/pem"), 'key', 'add', 'bob', '-')], 1,
      q{standard input is a private key, which must never leave its owner: }
      . q{give the public key instead (the .pub file next to it, or }
      . q{'ssh-keygen -y -f FILE')}, 'private key (PEM, encrypted)');
fails([ctl('key', 'add', 'bob', "$keys/missing.pub")], 1,
      qq{cannot read "$keys/missing.pub": No such file or directory},
      'missing key file');

my $ec_b64 = (split / /, slurp("$keys/ec.pub"))[1];
my %bad = (
    'ssh-ed25519 AAAA!!!! x'         => 'the key data is not valid base64: '
                                        . 'copy the whole .pub line again',
    'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB== x' =>
        'the key data is not a valid ssh-ed25519 public key: copy the '
        . 'whole .pub line again',
    "ssh-rsa $ed_b64 x"              => 'the line says "ssh-rsa" but the key '
                                        . 'data is another type of key: copy '
                                        . 'the whole .pub line again',
    "ecdsa-sha2-nistp256 $ec_b64"    => 'the line says "ecdsa-sha2-nistp256" '
                                        . 'but the key data is another type '
                                        . 'of key: copy the whole .pub line '
                                        . 'again',
    'ssh-foo AAAA'                   => 'unknown key type "ssh-foo": expected '
                                        . 'an OpenSSH public key line such as '
                                        . q{'ssh-ed25519 AAAA... me@laptop'},
    'ssh-ed25519'                    => 'no key data after "ssh-ed25519": '
                                        . 'give the whole line of the .pub '
                                        . 'file',
    "from=\"10.0.0.1\" ssh-ed25519 $ed_b64" =>
        'options before the key type (from=, command=, ...) are not '
        . q{supported: give only 'TYPE BASE64 [COMMENT]'},
    'ssh-ed25519-cert-v01@openssh.com AAAA' =>
        'certificates are not supported: give the plain public key (the '
        . '.pub file without -cert)',
    'ssh-dss AAAAB3NzaC1kc3M=' => 'DSA keys are not supported: create an '
                                  . q{ed25519 key with 'ssh-keygen -t ed25519'},
    "ssh-ed25519 $ed_b64 bad\x01comment" =>
        'the comment contains control characters: remove them',
);
for my $line (sort keys %bad) {
    fails([ctl_in("$line\n", 'key', 'add', 'bob', '-')], 1,
          "standard input: $bad{$line}", "malformed key: $line");
}
fails([ctl_in("\n# nothing\n", 'key', 'add', 'bob', '-')], 1,
      'standard input holds no public key: give an OpenSSH public key file '
      . 'such as ~/.ssh/id_ed25519.pub', 'no key in input');
fails([ctl_in(slurp("$keys/ed.pub") . slurp("$keys/rsa.pub"),
              'key', 'add', 'bob', '-')], 1,
      'standard input holds 2 keys: add one key at a time', 'two keys');
system("ssh-keygen -e -f $keys/ed.pub > $keys/ed.rfc") == 0 or die;
fails([ctl('key', 'add', 'bob', "$keys/ed.rfc")], 1,
      qq{"$keys/ed.rfc" is an RFC 4716 (SSH2) public key: convert it with }
      . q{'ssh-keygen -i -f FILE' and add the output}, 'RFC 4716 key');
is(sql('SELECT count(*) FROM ssh_keys'), "3\n", 'still three keys');

($rc, $out, $err) = ctl('key', 'list');
is($rc, 0, 'key list exit 0');
is($err, '', 'key list: no stderr');
my @lines = split /\n/, $out;
is(scalar @lines, 4, 'key list: header and three keys');
like($lines[0], qr/^FINGERPRINT +TYPE +USER +COMMENT +CREATED +LAST USED$/,
     'key list header');
like($lines[1], qr/^\Q$fp{ecdsa}\E  ecdsa-sha2-nistp384  alice +$TS  never$/,
     'key list: alice first (by user), empty comment');
like($lines[2],
     qr/^\Q$fp{ed25519}\E  ssh-ed25519 +bob +bob\@laptop +$TS  never$/,
     'key list: bob ed25519');
like($lines[3], qr/^\Q$fp{rsa}\E  ssh-rsa +bob +bob rsa key +$TS  never$/,
     'key list: bob rsa');

sql("UPDATE ssh_keys SET last_used_at = '2030-01-02 03:04:05+00'
     WHERE fingerprint = '$fp{rsa}'");
($rc, $out, $err) = ctl('key', 'list', 'bob');
@lines = split /\n/, $out;
is(scalar @lines, 3, 'key list bob: two keys');
like($lines[2], qr/  2030-01-02T03:04:05Z$/, 'last used shown in UTC');
fails([ctl('key', 'list', 'zed')], 1,
      q{no user named "zed": add it with 'tunnelctl user add zed'},
      'key list for an unknown user');
($rc, $out, $err) = ctl('key', 'list', 'a-very_long-name-of-32-chars-xyz');
is_deeply([$rc, $out, $err],
          [0, '', q{tunnelctl: user "a-very_long-name-of-32-chars-xyz" has }
                  . q{no keys: add one with 'tunnelctl key add }
                  . qq{a-very_long-name-of-32-chars-xyz FILE'\n}],
          'key list for a user without keys');

($rc, $out, $err) = ctl('user', 'list');
is($rc, 0, 'user list exit 0');
is($err, '', 'user list: no stderr');
@lines = split /\n/, $out;
is(scalar @lines, 4, 'user list: header and three users');
like($lines[0], qr/^NAME +ROLE +DISABLED +KEYS +CREATED$/, 'user list header');
like($lines[1],
     qr/^a-very_long-name-of-32-chars-xyz  user   no        0     $TS$/,
     'user list: long name');
like($lines[2], qr/^alice {27}  admin  no        1     $TS$/,
     'user list: alice admin, 1 key');
like($lines[3], qr/^bob {29}  user   no        2     $TS$/,
     'user list: bob, 2 keys');

fails([ctl('key', 'remove', 'nonsense')], 1,
      q{"nonsense" is not a key fingerprint: give SHA256:... as }
      . q{'tunnelctl key list' or 'ssh-keygen -lf FILE' shows it},
      'key remove: not a fingerprint');
my $nofp = 'SHA256:' . ('A' x 43);
fails([ctl('key', 'remove', $nofp)], 1,
      "no key with fingerprint $nofp: see 'tunnelctl key list'",
      'key remove: unknown fingerprint');
($rc, $out, $err) = ctl('key', 'remove', $fp{rsa});
is_deeply([$rc, $out, $err],
          [0, qq{removed ssh-rsa key $fp{rsa} of user "bob"\n}, ''],
          'key remove');
(my $bare = $fp{ecdsa}) =~ s/^SHA256://;
($rc, $out, $err) = ctl('key', 'remove', $bare);
is_deeply([$rc, $out, $err],
          [0, qq{removed ecdsa-sha2-nistp384 key $fp{ecdsa} of user }
              . qq{"alice"\n}, ''],
          'key remove without the SHA256: prefix');
is(sql('SELECT fingerprint FROM ssh_keys'), "$fp{ed25519}\n",
   'one key left');


# --- reserved names ---------------------------------------------------------

($rc, $out, $err) = ctl('name', 'reserve', 'MyApp', 'bob');
is_deeply([$rc, $out, $err], [0, qq{reserved "myapp" for user "bob"\n}, ''],
          'name reserve folds case');
fails([ctl('name', 'reserve', 'myapp', 'alice')], 1,
      q{"myapp" is already reserved for user "bob": release it first with }
      . q{'tunnelctl name release myapp'}, 'name already reserved');
fails([ctl('name', 'reserve', '-x', 'bob')], 1,
      qr/^tunnelctl: "-x" is not a valid tunnel name: /,
      'invalid tunnel name');
fails([ctl('name', 'reserve', 'other', 'zed')], 1,
      q{no user named "zed": add it with 'tunnelctl user add zed'},
      'name reserve for an unknown user');
($rc, $out, $err) = ctl('name', 'list');
like($out, qr/\ANAME +USER +CREATED\nmyapp +bob +$TS\n\z/, 'name list');
($rc, $out, $err) = ctl('name', 'release', 'myapp');
is_deeply([$rc, $out, $err],
          [0, qq{released "myapp" (was reserved for user "bob")\n}, ''],
          'name release');
fails([ctl('name', 'release', 'myapp')], 1,
      q{"myapp" is not reserved: see 'tunnelctl name list'},
      'name release of a free name');

# system names: one list in the database, refused with the rule named
my $SYSTEM = q{ is a system name (kept for the installation's own hosts, }
           . q{see 'tunnelctl system-name list') and cannot be reserved: }
           . q{choose another name, or remove it from the system names }
           . q{with 'tunnelctl system-name remove };
fails([ctl('name', 'reserve', 'www', 'bob')], 1, qq{"www"${SYSTEM}www'},
      'name reserve www: refused, naming the name and the rule');
fails([ctl('name', 'reserve', 'Admin', 'alice')], 1,
      qq{"admin"${SYSTEM}admin'}, 'name reserve Admin: folded, refused');
is(sql(q{SELECT count(*) FROM reserved_names}), "0\n", 'nothing reserved');

($rc, $out, $err) = ctl('system-name', 'list');
is($rc, 0, 'system-name list: exit 0');
like($out, qr/\ANAME +RESERVED BY +ADDED\naccount +- +$TS\n/,
     'system-name list: header, sorted');
like($out, qr/^www +- +$TS$/m, 'system-name list has www');
is(scalar(() = $out =~ /\n/g), 27, 'the 26 names of the migration');

($rc, $out, $err) = ctl('name', 'reserve', 'shop', 'bob');
is($rc, 0, 'bob reserves shop');
($rc, $out, $err) = ctl('system-name', 'add', 'Shop', 'intranet', 'www');
is_deeply([$rc, $out, $err],
          [0, qq{added system name "shop" (user "bob" had reserved it: the }
              . qq{reservation stays but no longer counts)\n}
              . qq{added system name "intranet"\n}
              . qq{"www" is already a system name\n}, ''],
          'system-name add: several, folded, one line each');
($rc, $out, $err) = ctl('system-name', 'list');
like($out, qr/^shop +bob +$TS$/m,
     'system-name list shows who had reserved it');
fails([ctl('name', 'reserve', 'intranet', 'alice')], 1,
      qq{"intranet"${SYSTEM}intranet'}, 'an added system name is refused');
is(sql(q{SELECT tunnel_admin_reserve_name(
            (SELECT id FROM users WHERE name = 'alice'), 'intranet', 5)}),
   "system\n", 'the web admin\'s function refuses it too');

fails([ctl('system-name', 'remove', 'intranet', 'nosuch')], 1,
      q{"nosuch" is not a system name: see 'tunnelctl system-name list' }
      . q{(nothing was removed)}, 'system-name remove: unknown name');
is(sql(q{SELECT count(*) FROM system_names WHERE name = 'intranet'}), "1\n",
   '... and intranet stays (all or nothing)');
($rc, $out, $err) = ctl('system-name', 'remove', 'intranet', 'SHOP');
is_deeply([$rc, $out, $err],
          [0, qq{removed system name "intranet"\n}
              . qq{removed system name "shop"\n}, ''],
          'system-name remove: several');
($rc, $out, $err) = ctl('name', 'reserve', 'intranet', 'alice');
is_deeply([$rc, $out, $err],
          [0, qq{reserved "intranet" for user "alice"\n}, ''],
          'a removed system name can be reserved');
fails([ctl('system-name', 'add', 'bad_name')], 1,
      qr/^tunnelctl: "bad_name" is not a valid tunnel name: /,
      'system-name add: invalid name');
fails([ctl('system-name', 'add')], 2,
      q{'system-name add' needs at least one NAME: see 'tunnelctl --help'},
      'system-name add without a name');
fails([ctl('system-name')], 2,
      q{'system-name' needs list, add or remove: see 'tunnelctl --help'},
      'system-name without subcommand');
ctl('name', 'release', 'intranet');
ctl('name', 'release', 'shop');


# --- triggers: tunneld's reload signal --------------------------------------

# psql prints notifications received by its own session after each command
sub notified {
    my ($stmt) = @_;
    my ($rc, $out, $err) = $s->psql_db('ngx_tunnel', $stmt,
                                       '-c', 'LISTEN tunnel_keys');
    die "psql: $err" if $rc != 0;
    my @p = $out =~ /notification "tunnel_keys" with payload "(\w+)"/g;
    return join ',', sort @p;
}
is(notified("INSERT INTO users (name) VALUES ('trig')"), 'users',
   'insert users notifies');
is(notified("UPDATE users SET disabled = true WHERE name = 'trig'"), 'users',
   'disabling a user notifies');
is(notified("UPDATE users SET last_login_at = now()"), '',
   'last_login_at does not notify');
is(notified("UPDATE ssh_keys SET last_used_at = now()"), '',
   'last_used_at does not notify (tunneld writes it on every login)');
is(notified("INSERT INTO reserved_names (name, user_id)
             SELECT 'trig', id FROM users WHERE name = 'trig'"),
   'reserved_names', 'reserving a name notifies');
is(notified("DELETE FROM ssh_keys WHERE false"), 'ssh_keys',
   'ssh_keys delete notifies (statement level)');
is(notified("DELETE FROM users WHERE name = 'trig'"),
   'reserved_names,ssh_keys,users',
   'deleting a user notifies (and its cascades do)');
is(notified(q{INSERT INTO system_names (name) VALUES ('trig')}),
   'system_names', 'a system name change notifies (tunneld, web admin)');
sql(q{DELETE FROM system_names WHERE name = 'trig'});


# --- user disable, enable, remove -------------------------------------------

($rc, $out, $err) = ctl('user', 'disable', 'bob');
is_deeply([$rc, $out, $err], [0, qq{disabled user "bob"\n}, ''],
          'user disable');
is(sql("SELECT disabled FROM users WHERE name = 'bob'"), "t\n",
   'bob disabled');
($rc, $out, $err) = ctl('user', 'enable', 'bob');
is_deeply([$rc, $out, $err], [0, qq{enabled user "bob"\n}, ''],
          'user enable');
fails([ctl('user', 'disable', 'zed')], 1,
      q{no user named "zed": see 'tunnelctl user list'},
      'user disable: unknown user');
ctl('name', 'reserve', 'bobs', 'bob');
($rc, $out, $err) = ctl('user', 'remove', 'bob');
is_deeply([$rc, $out, $err],
          [0, qq{removed user "bob" (1 key(s), 1 reserved name(s))\n}, ''],
          'user remove');
is(sql('SELECT (SELECT count(*) FROM ssh_keys),
               (SELECT count(*) FROM reserved_names)'), "0|0\n",
   'keys and names of a removed user are gone');


# --- invitations ---------------------------------------------------------


# tunnelctl with TUNNEL_ADMIN_URL set to $url in its environment

# the row of the invitation made with $token, as psql prints it
sub invitation {
    my ($token, $cols) = @_;
    my $hash = sha256_hex($token);
    return sql("SELECT $cols FROM invitations
                WHERE token_hash = '\\x$hash'::bytea");
}

($rc, $out, $err) = ctl('invite', 'list');
is_deeply([$rc, $out, $err],
          [0, '', "tunnelctl: no invitations yet: create one with "
                  . "'tunnelctl invite create'\n"], 'invite list, empty');

# no base URL anywhere: the path, and how to get the whole link
($rc, $out, $err) = ctl('invite', 'create');
is($rc, 0, 'invite create: exit 0');
like($out, qr{\A/join/$TOKEN\n\z}, 'invite create: /join/ and 24 base64url '
                                   . 'characters');
is($err, $HINT, 'invite create without a base: one-line hint on stderr');
my ($tok1) = $out =~ m{/join/(\S+)};
$tok1 //= '';
is(length $tok1, 24, 'token: 24 characters (18 bytes, no padding)');
unlike($tok1, qr/[=+\/]/, 'token: no padding, no + or /');
is(invitation($tok1, "encode(token_hash, 'hex')"), sha256_hex($tok1) . "\n",
   'stored token_hash = sha256 of the token text');
is(invitation($tok1, q{is_admin, note, created_by IS NULL, used_at IS NULL,
                       revoked_at IS NULL,
                       extract(epoch FROM expires_at - created_at)::bigint}),
   "f||t|t|t|259200\n", 'defaults: user role, no note, by tunnelctl, 72 h');
is(sql(qq{SELECT count(*) FROM invitations i
          WHERE strpos(i::text, '$tok1') > 0}), "0\n",
   'the token itself is stored nowhere');

# the base from --base-url, trailing slash dropped; all options
($rc, $out, $err) = ctl('invite', 'create', '--admin', '--hours', '1',
                        '--note', 'for carol', '--base-url',
                        'http://localhost:8080/');
is($rc, 0, 'invite create --admin --hours --note --base-url: exit 0');
like($out, qr{\Ahttp://localhost:8080/join/$TOKEN\n\z},
     'link with --base-url');
is($err, '', 'with a base: nothing on stderr');
my ($tok2) = $out =~ m{/join/(\S+)};
$tok2 //= '';
is(invitation($tok2, q{is_admin, note,
                       extract(epoch FROM expires_at - created_at)::bigint}),
   "t|for carol|3600\n", 'admin role, note and 1 hour stored');

# TUNNEL_ADMIN_URL, and --base-url winning over it
($rc, $out, $err) = ctl_url('https://admin.example.com', 'invite', 'create');
like($out, qr{\Ahttps://admin\.example\.com/join/$TOKEN\n\z},
     'link with TUNNEL_ADMIN_URL');
is_deeply([$rc, $err], [0, ''], 'TUNNEL_ADMIN_URL: exit 0, no stderr');
my ($tok3) = $out =~ m{/join/(\S+)};
($rc, $out, $err) = ctl_url('https://admin.example.com', 'invite', 'create',
                            '--base-url', 'http://127.0.0.1:8080');
like($out, qr{\Ahttp://127\.0\.0\.1:8080/join/$TOKEN\n\z},
     '--base-url wins over TUNNEL_ADMIN_URL');
my ($tok4) = $out =~ m{/join/(\S+)};
($rc, $out, $err) = ctl_url('', 'invite', 'create', '--hours', '8760');
like($out, qr{\A/join/$TOKEN\n\z}, 'empty TUNNEL_ADMIN_URL: the path');
is($err, $HINT, 'empty TUNNEL_ADMIN_URL: the hint');
my ($tok5) = $out =~ m{/join/(\S+)};
is(invitation($tok5 // '',
              'extract(epoch FROM expires_at - created_at)::bigint'),
   8760 * 3600 . "\n", '--hours 8760 (the maximum) accepted');

my %tokens = map { ($_ // '') => 1 } $tok1, $tok2, $tok3, $tok4, $tok5;
is(scalar keys %tokens, 5, 'five different tokens');
is(sql('SELECT count(*), count(DISTINCT token_hash) FROM invitations'),
   "5|5\n", 'five invitations stored');

for my $h ('0', '8761', '-1', '1.5', 'abc', '', ' 5', '100000', '072x') {
    fails([ctl('invite', 'create', '--hours', $h)], 1,
          qq{--hours "$h" is not valid: give a whole number of hours from }
          . q{1 to 8760 (one year)}, "--hours '$h' refused");
}
fails([ctl('invite', 'create', '--base-url', 'admin.example.com')], 1,
      q{--base-url "admin.example.com" is not the web admin's address: }
      . q{give http(s)://HOST[:PORT], e.g. https://admin.example.com},
      '--base-url without a scheme');
fails([ctl('invite', 'create', '--base-url', 'https://')], 1,
      q{--base-url "https://" is not the web admin's address: }
      . q{give http(s)://HOST[:PORT], e.g. https://admin.example.com},
      '--base-url without a host');
fails([ctl_url('ftp://x', 'invite', 'create')], 1,
      q{TUNNEL_ADMIN_URL "ftp://x" is not the web admin's address: }
      . q{give http(s)://HOST[:PORT], e.g. https://admin.example.com},
      'TUNNEL_ADMIN_URL not http(s)');
fails([ctl('invite', 'create', '--note', 'x' x 201)], 1,
      'the note is too long (201 characters): at most 200',
      'note of 201 characters');
fails([ctl('invite', 'create', '--note', "two\nlines")], 1,
      'the note must be one line of text, without control characters',
      'note with a newline');
is(sql('SELECT count(*) FROM invitations'), "5\n",
   'refused invitations stored nothing');

# one invitation in each state
my ($ids) = sql('SELECT string_agg(id::text, \',\' ORDER BY id)
                 FROM invitations');
my ($id1, $id2, $id3, $id4, $id5) = split /,/, $ids =~ s/\n//r;
sql("UPDATE invitations SET expires_at = now() - interval '1 second'
     WHERE id = $id3");
is(sql("SELECT r_status FROM tunnel_admin_join(
            sha256(convert_to('$tok2', 'UTF8')), 'carol', NULL)"),
   "ok\n", 'the web join function accepts the token tunnelctl made');

($rc, $out, $err) = ctl('invite', 'revoke', $id4);
is_deeply([$rc, $out, $err], [0, "revoked invitation $id4\n", ''],
          'invite revoke');
is(sql("SELECT revoked_at IS NOT NULL FROM invitations WHERE id = $id4"),
   "t\n", 'revoked_at set');
is(sql("SELECT r_status FROM tunnel_admin_join(
            sha256(convert_to('$tok4', 'UTF8')), 'mallory', NULL)"),
   "revoked\n", 'a revoked token cannot be used');
fails([ctl('invite', 'revoke', $id4)], 1,
      "invitation $id4 is already revoked", 'revoke twice');
fails([ctl('invite', 'revoke', $id2)], 1,
      qq{invitation $id2 was already used by "carol": to lock that }
      . q{account, run 'tunnelctl user disable carol'}, 'revoke a used one');
fails([ctl('invite', 'revoke', '999999')], 1,
      q{no invitation 999999: see 'tunnelctl invite list'},
      'revoke an unknown id');
for my $bad ('x', '0', '-1', '1e3', '12345678901234567890') {
    fails([ctl('invite', 'revoke', $bad)], 1,
          qq{"$bad" is not an invitation id: give the number 'tunnelctl }
          . q{invite list' shows in the ID column}, "revoke id '$bad'");
}

($rc, $out, $err) = ctl('invite', 'list');
is($rc, 0, 'invite list: exit 0');
is($err, '', 'invite list: no stderr');
@lines = split /\n/, $out;
is(scalar @lines, 6, 'invite list: header and five invitations');
like($lines[0], qr/^ID +STATUS +ROLE +CREATED +EXPIRES +CREATED BY +NOTE$/,
     'invite list header');
like($lines[1], qr/^$id1 +open +user +$TS  $TS  - +$/, 'open');
like($lines[2], qr/^$id2 +used by carol  admin  $TS  $TS  - +for carol$/,
     'used by whom, admin, note');
like($lines[3], qr/^$id3 +expired +user +$TS  $TS  - +$/, 'expired');
like($lines[4], qr/^$id4 +revoked +user +$TS  $TS  - +$/, 'revoked');
like($lines[5], qr/^$id5 +open +user +$TS  $TS  - +$/, 'open, one year');
unlike($out, qr/\Q$tok1\E|\Q$tok2\E|\Q$tok5\E/, 'invite list shows no token');

# an expired invitation may still be revoked (as on the web admin)
($rc, $out, $err) = ctl('invite', 'revoke', $id3);
is_deeply([$rc, $out, $err], [0, "revoked invitation $id3\n", ''],
          'revoke an expired invitation');


# --- user disable, enable, remove: tunnel_admin_user_action ----------------

# carol (admin by invitation) and alice are the admins
($rc, $out, $err) = ctl('user', 'disable', 'carol');
is_deeply([$rc, $out, $err], [0, qq{disabled user "carol"\n}, ''],
          'an admin can be disabled while another is enabled');

# now alice is the only enabled admin (a disabled one does not count): she
# can be neither disabled nor removed
my $LAST = 'they are the only enabled admin and the installation must '
         . q{keep one: add another with 'tunnelctl user add NAME --admin' }
         . 'first';
fails([ctl('user', 'disable', 'alice')], 1,
      qq{cannot disable "alice": $LAST}, 'the last admin cannot be disabled');
fails([ctl('user', 'remove', 'alice')], 1,
      qq{cannot remove "alice": $LAST}, 'the last admin cannot be removed');
is(sql("SELECT name, disabled FROM users WHERE is_admin ORDER BY name"),
   "alice|f\ncarol|t\n", 'alice still there and enabled');

($rc, $out, $err) = ctl('user', 'enable', 'carol');
is_deeply([$rc, $out, $err], [0, qq{enabled user "carol"\n}, ''],
          'enable');
is(sql("SELECT disabled FROM users WHERE name = 'carol'"), "f\n",
   'carol enabled again');
($rc, $out, $err) = ctl('user', 'enable', 'carol');
is_deeply([$rc, $out, $err], [0, qq{enabled user "carol"\n}, ''],
          'enable an enabled user: no change, no error');

# disabling ends the user's web sessions
sql(q{INSERT INTO sessions (user_id, token_hash, csrf_secret, expires_at,
                            idle_expires_at)
      SELECT id, sha256(convert_to(name || n, 'UTF8')), '\x00',
             now() + interval '1 day', now() + interval '1 hour'
      FROM users, generate_series(1, 2) n
      WHERE name IN ('carol', 'alice')});
($rc, $out, $err) = ctl('user', 'disable', 'carol');
is_deeply([$rc, $out, $err], [0, qq{disabled user "carol"\n}, ''],
          'disable carol');
is(sql(q{SELECT u.name, count(s.id) FROM users u
         LEFT JOIN sessions s ON s.user_id = u.id
         WHERE u.name IN ('alice', 'carol') GROUP BY u.name
         ORDER BY u.name}), "alice|2\ncarol|0\n",
   "disable ended carol's web sessions, not alice's");
($rc, $out, $err) = ctl('user', 'list');
like($out, qr/^carol +admin  yes  /m, 'user list shows carol disabled');

for my $verb ('disable', 'enable', 'remove') {
    fails([ctl('user', $verb, 'nobody')], 1,
          q{no user named "nobody": see 'tunnelctl user list'},
          "user $verb: unknown user");
}

# a disabled admin may be removed; the invitation keeps that it was used
($rc, $out, $err) = ctl('user', 'remove', 'carol');
is_deeply([$rc, $out, $err],
          [0, qq{removed user "carol" (0 key(s), 0 reserved name(s))\n}, ''],
          'remove a disabled admin');
($rc, $out, $err) = ctl('invite', 'list');
like((split /\n/, $out)[2], qr/^$id2 +used \(user removed\)  admin  /,
     'invite list: used by a user removed since');
fails([ctl('invite', 'revoke', $id2)], 1,
      "invitation $id2 was already used (by a user removed since): "
      . 'nothing to revoke', 'revoke one used by a removed user');
fails([ctl('user', 'remove', 'alice')], 1,
      qq{cannot remove "alice": $LAST}, 'alice is the last admin again');


# --- login-failures list|clear, user unlock (sql/007) ----------------------

($rc, $out, $err) = ctl('login-failures', 'list');
is_deeply([$rc, $out, $err],
          [0, '', "tunnelctl: no failed sign-ins in the last day\n"],
          'login-failures list: none');
sql(q{INSERT INTO login_failures (client_addr, user_name) VALUES
      ('10.0.0.1', 'alice'), ('10.0.0.1', 'alice'), ('10.0.0.2', 'alice'),
      ('10.0.0.1', 'alicex'), ('10.0.0.3', 'bob')});
($rc, $out, $err) = ctl('login-failures', 'list');
is($rc, 0, 'login-failures list');
like($out, qr/^NAME +ADDRESS +FAILURES +LAST +ACCOUNT\n/, '... header');
like($out, qr/^alice +10\.0\.0\.1 +2 +$TS +yes$/m, '... counted per pair');
like($out, qr/^alicex +10\.0\.0\.1 +1 +$TS +no$/m, '... typos too');

($rc, $out, $err) = ctl('user', 'unlock', ' ALICE ');
is_deeply([$rc, $out, $err],
          [0, qq{cleared 3 failed sign-in(s) as "alice"\n}, ''],
          'user unlock: the name folded as the sign-in page does');
is(sql("SELECT user_name, client_addr FROM login_failures "
       . "ORDER BY user_name"), "alicex|10.0.0.1\nbob|10.0.0.3\n",
   '... only that name cleared');
like(sql("SELECT actor_name, user_name, detail FROM tunnel_events "
         . "WHERE event = 'login_failures_cleared' ORDER BY id DESC LIMIT 1"),
   qr/^tunnelctl \(\w+\)\|alice\|3 failure\(s\) of alice\n\z/,
   '... with an audit row');

($rc, $out, $err) = ctl('login-failures', 'clear', '--address', '10.0.0.1');
is_deeply([$rc, $out, $err],
          [0, qq{cleared 1 failed sign-in(s) from 10.0.0.1\n}, ''],
          'login-failures clear --address');
($rc, $out, $err) = ctl('login-failures', 'clear', '--user', 'nobody',
                        '--address', '10.0.0.3');
is_deeply([$rc, $out, $err],
          [0, qq{cleared 0 failed sign-in(s) as "nobody" from 10.0.0.3\n},
           ''], 'both options: both must match');
($rc, $out, $err) = ctl('login-failures', 'clear');
is_deeply([$rc, $out, $err], [0, qq{cleared 1 failed sign-in(s)\n}, ''],
          'login-failures clear: all');
is(sql("SELECT count(*) FROM login_failures"), "0\n", '... none left');
is(sql("SELECT count(*) FROM tunnel_events "
       . "WHERE event = 'login_failures_cleared'"), "4\n",
   'one audit row per clear');
fails([ctl('login-failures', 'clear', '--user')], 2,
      q{'login-failures clear' takes [--user NAME] [--address ADDR], not }
      . q{"--user": see 'tunnelctl --help'}, 'clear: option without value');
fails([ctl('user', 'unlock')], 2,
      q{'user unlock' takes one NAME: see 'tunnelctl --help'},
      'user unlock: no NAME');
fails([ctl('user', 'unlock', '  ')], 1,
      q{"" is not a user name as typed at sign-in: give 1 to 64 characters},
      'user unlock: empty NAME');


# --- user disable closes live tunnels (tunneld, Redis) ----------------------

# the whole path: tunnelctl -> tunnel_admin_user_action -> NOTIFY
# tunnel_keys -> tunneld reloads and closes dave's session and route
$s->start_redis;
$s->start_tunneld;
ctl('user', 'add', 'dave');
my $dave_fp = keygen('dave', '-t', 'ed25519', '-C', 'dave@test');
($rc, $out, $err) = ctl('key', 'add', 'dave', "$keys/dave.pub");
is_deeply([$rc, $out, $err], [0, "$dave_fp\n", ''], 'dave has a key');
sleep 2.5;   # tunneld reloads keys within 2 s of a change

my $ssh = start_ssh($s, key => "$keys/dave", user => 'dave',
                    remote => 'davesite:80:localhost:9');
my $route = wait_route($s, 'davesite', 10);
is($route && $route->{user}, 'dave', "dave's tunnel is up")
    or diag($ssh->output, tail_log($s, 'tunneld'));

my $t0 = time;
($rc, $out, $err) = ctl('user', 'disable', 'dave');
is_deeply([$rc, $out, $err], [0, qq{disabled user "dave"\n}, ''],
          'disable dave while his tunnel is up');
ok(wait_no_route($s, 'davesite', 5), "dave's route is gone");
ok(wait_until(5, sub { !$ssh->alive }), "dave's ssh session was closed");
my $took = time - $t0;
cmp_ok($took, '<=', 3, 'tunnel closed within 2 s of the disable (+1 s '
                       . 'margin)');
note(sprintf 'disable -> tunnel closed in %.2f s', $took);
$ssh->finish(5);

($rc, $out, $err) = ctl('user', 'enable', 'dave');
is_deeply([$rc, $out, $err], [0, qq{enabled user "dave"\n}, ''],
          'enable dave');
sleep 2.5;
$ssh = start_ssh($s, key => "$keys/dave", user => 'dave',
                 remote => 'davesite:80:localhost:9');
ok(wait_route($s, 'davesite', 10), 'enabled again: dave can open a tunnel')
    or diag($ssh->output, tail_log($s, 'tunneld'));
$ssh->stop;
$s->stop_tunneld;
$s->stop_redis;


# --- environment and server trouble ---------------------------------------

my $CONNECT = 'tunnelctl: cannot connect to the database (check '
            . 'DATABASE_URL and that PostgreSQL is running): ';
my $SOCKET_FAILED = qr/connection to server on socket "[^"]+" failed:/;

fails([ctl_env({ PATH => $ENV{PATH} }, undef, 'user', 'list')], 1,
      q{DATABASE_URL is not set: export it, e.g. DATABASE_URL=}
      . q{'postgresql:///ngx_tunnel?host=/run/postgresql'},
      'DATABASE_URL unset');
fails([ctl_env({ PATH => $ENV{PATH}, DATABASE_URL => url_of('nodb') },
               undef, 'user', 'list')], 1,
      qr/^\Q$CONNECT\E.*database "nodb" does not exist\n\z/,
      'database missing');

$s->stop_postgres;
fails([ctl('migrate')], 1,
      qr/^\Q$CONNECT\E$SOCKET_FAILED No such file or directory /,
      'server down');

done_testing();
