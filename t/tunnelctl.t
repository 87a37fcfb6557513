#!/usr/bin/perl
# tunnelctl and the schema against a private PostgreSQL (started by
# tools/lib/NgxTunnel/Stack.pm in a temp dir, stopped by PID at the end):
# migrate (idempotent, two at once, a failing migration rolls back), users,
# keys (fingerprints equal to ssh-keygen -lf, private keys and malformed
# keys refused, duplicates name their owner), reserved names, the NOTIFY
# triggers tunneld listens to, and the errors for a missing DATABASE_URL
# and a server that is down.  Every error is one line on stderr, exit 1;
# command line mistakes exit 2.

use strict;
use warnings;

use FindBin;
use File::Temp qw(tempdir);
use IPC::Run ();
use Test::More;
use Time::HiRes qw(sleep time);

my $root;
BEGIN { $root = "$FindBin::Bin/.." }
use lib "$root/tools/lib";
use NgxTunnel::Stack;

# TUNNELCTL: test another build of it (e.g. with -fsanitize=address)
my $bin = $ENV{TUNNELCTL} // "$root/build/tunnelctl";
BAIL_OUT("$bin not built: run 'make build/tunnelctl'") unless -x $bin;

my $LOCK = '7955459708354981484';   # tunnelctl/migrate.c
my $TS   = qr/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/;

my $dir = tempdir('tunnelctl-t.XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $dir;
my $keys = "$dir/keys";
mkdir $keys or die "mkdir $keys: $!";

my $s = NgxTunnel::Stack->new(root => $root, dir => "$dir/stack");
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

($rc, $out, $err) = ctl();
is($rc, 2, 'no command: exit 2');
like($err, qr/\Ausage: tunnelctl/, 'no command: usage on stderr');

fails([ctl('frobnicate')], 2,
      q{unknown command "frobnicate": see 'tunnelctl --help'},
      'unknown command');
fails([ctl('user')], 2,
      q{'user' needs add, list, disable, enable or remove: see }
      . q{'tunnelctl --help'}, 'user without subcommand');
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
fails([ctl('migrate', 'now')], 2,
      q{'migrate' takes no argument, not "now": see 'tunnelctl --help'},
      'migrate with an argument');


# --- before migrate ------------------------------------------------------

fails([ctl('user', 'list')], 1,
      q{cannot list users: the database has no ngx-tunnel schema }
      . q{(relation "users" does not exist): run 'tunnelctl migrate' first},
      'user list before migrate');


# --- migrate ----------------------------------------------------------------

($rc, $out, $err) = ctl('migrate');
is($rc, 0, 'migrate exit 0') or diag $err;
is($out, "applied 001_schema.sql\n", 'migrate applies 001');
is($err, '', 'migrate: no stderr');

($rc, $out, $err) = ctl('migrate');
is($rc, 0, 'second migrate exit 0');
is($out, "database is up to date\n", 'second migrate: up to date');
is($err, '', 'second migrate: no stderr (no NOTICE noise)');

is(sql('SELECT version, name FROM schema_migrations'), "1|001_schema.sql\n",
   'schema_migrations has one row');
is(sql(q{SELECT string_agg(tablename, ',' ORDER BY tablename)
         FROM pg_tables WHERE schemaname = 'public'}),
   "activation_codes,invitations,reserved_names,schema_migrations,"
   . "sessions,ssh_keys,tunnel_events,users\n", 'all tables exist');


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
              ["applied 001_schema.sql\n", "database is up to date\n"],
              'one applied, the other found it done');
    is_deeply(\@err,
              [("tunnelctl: another 'tunnelctl migrate' is running: "
                . "waiting for it\n") x 2], 'both said they wait');
    is(sql('SELECT version FROM schema_migrations', 'race'), "1\n",
       'race: one schema_migrations row');
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
              ["applied 001_schema.sql\n", "database is up to date\n"],
              'race2: applied exactly once');
}

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

($rc, $out, $err) = ctl('user', 'add', 'bob');
is_deeply([$rc, $out, $err], [0, qq{added user "bob"\n}, ''], 'user add');
($rc, $out, $err) = ctl('user', 'add', '--admin', 'alice');
is_deeply([$rc, $out, $err], [0, qq{added admin "alice"\n}, ''],
          'user add --admin');
($rc, $out, $err) = ctl('user', 'add', 'a-very_long-name-of-32-chars-xyz');
is($rc, 0, '32-character name accepted');

fails([ctl('user', 'add', 'bob')], 1,
      q{user "bob" already exists: see 'tunnelctl user list'},
      'duplicate user');
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
