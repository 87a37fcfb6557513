#!/usr/bin/perl

# tunneld's operator side: the --config file (name = value with the long
# option names; the command line wins over the file, the file over
# DATABASE_URL/REDIS_URL), mistakes in it named by file and line,
# --log-format json (every line one JSON object), the service manager's
# readiness protocol (READY=1 on $NOTIFY_SOCKET only once every worker has
# PostgreSQL and Redis, STOPPING=1 at shutdown; a single process waits for
# Redis before READY) and SIGHUP (logged, nothing stops).  Also: every
# option in `tunneld --help` is in the example config file and in
# docs/DEPLOY.md, and nothing else is.

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib";

use IO::Socket::UNIX;
use IPC::Run ();
use JSON::PP ();
use POSIX qw(:sys_wait_h);
use Socket qw(SOCK_DGRAM);
use Test::More;
use Time::HiRes qw(time sleep);

use NgxTunnel::Test;

watchdog(240);

my $root = repo_root();
my $bin = ($ENV{NGX_TUNNEL_BUILD} // "$root/build") . "/tunneld";
my $tmp = File::Temp::tempdir('ngx-tunnel-conf.XXXXXX', TMPDIR => 1,
    CLEANUP => 1);

sub write_file {
    my ($path, $text) = @_;
    open my $fh, '>', $path or die "$path: $!";
    print $fh $text;
    close $fh or die "$path: $!";
    return $path;
}

sub run_tunneld {
    my (@args) = @_;
    my ($out, $err) = ('', '');
    IPC::Run::run([$bin, @args], '<', \undef, '>', \$out, '2>', \$err,
        IPC::Run::timeout(10));
    return ($? >> 8, $out, $err);
}


# --- every option in one place: --help, the example file, the docs ---------

my (undef, $help) = run_tunneld('--help');
my @opts = $help =~ /^\s+--([a-z][a-z-]*)/mg;
ok(scalar(@opts) >= 20, scalar(@opts) . ' options in --help');
my %seen;
is(scalar(grep { $seen{$_}++ } @opts), 0, 'no option twice in --help');

my $example = read_file("$root/dist/tunneld.conf");
# the options section only (other tables name programs and files)
my ($deploy) = read_file("$root/docs/DEPLOY.md")
    =~ /^## tunneld's options\n(.*?)(?=^## )/ms;
$deploy //= '';
for my $o (grep { $_ ne 'help' && $_ ne 'config' } @opts) {
    like($example, qr/^#?\s*\Q$o\E\s*=/m, "dist/tunneld.conf has $o");
    like($deploy, qr/^\| `\Q$o\E`/m, "docs/DEPLOY.md has $o");
}
my @in_file = $example =~ /^#?\s*([a-z][a-z-]+)\s*=/mg;
is_deeply([grep { !$seen{$_} } @in_file], [],
    'the example file names no option --help lacks');
my @in_docs = $deploy =~ /^\| `([a-z][a-z-]+)`/mg;
is_deeply([grep { !$seen{$_} } @in_docs], [],
    'docs/DEPLOY.md names no option --help lacks');

# the example parses: every line commented out or valid (no database: the
# check stops there, after the file was read)
{
    my ($rc, undef, $err) = run_tunneld('--config',
        "$root/dist/tunneld.conf", '--database-url', '',
        '--redis-url', 'unix:/nonexistent');
    is($rc, 2, 'the example config parses (then: no database)');
    like($err, qr/^tunneld: no database/, '... and says what is missing')
        or diag($err);
}


# --- mistakes in the file: exit 2, FILE:LINE and what to do ---------------

my @bad = (
    [ "# fine\n\nworkerz = 2\n", qr/:3: unknown option "workerz"/ ],
    [ "workers = 0\n", qr/:1: workers wants a number from 1 to 64/ ],
    [ "listen 127.0.0.1:22\n", qr/:1: expected "name = value"/ ],
    [ "log-format = xml\n", qr/:1: log-format wants "text" or "json"/ ],
    [ "debug = maybe\n", qr/:1: debug wants yes or no/ ],
    [ "config = /etc/other\n", qr/:1: unknown option "config"/ ],
);
my $n = 0;
for my $b (@bad) {
    my $f = write_file("$tmp/bad" . ++$n . '.conf', $b->[0]);
    my ($rc, undef, $err) = run_tunneld('--config', $f);
    is($rc, 2, "bad config $n: exit 2");
    like($err, qr/^tunneld: \Q$f\E$b->[1]/, "bad config $n: says where")
        or diag($err);
}
{
    my ($rc, undef, $err) = run_tunneld('--config', "$tmp/missing.conf");
    is($rc, 2, 'missing config file: exit 2');
    like($err, qr/cannot read --config "\Q$tmp\E\/missing.conf": No such/,
        '... named');
    # a '/' would end the node id inside session ids (NODE/PID/N): routes
    # would name node "a", and node "a"'s sweep after a crash would take
    # node "a/b"'s routes (found by the attacker pass)
    ($rc, undef, $err) = run_tunneld('--node', 'a/b');
    is($rc, 2, '--node a/b: exit 2');
    like($err, qr/^tunneld: --node wants 1 to 255 letters, digits, '\.', '-' or '_' \(unique per tunneld\), not "a\/b"/,
        '--node a/b: says what a node id may hold') or diag($err);
    ($rc, undef, $err) = run_tunneld('--workers', '0');
    like($err, qr/^tunneld: --workers wants a number from 1 to 64/,
        'command line mistakes still name the option with --');
}


# --- precedence and JSON lines, in a stack ---------------------------------

# the stack passes --listen, --domain, --database-url ... on the command
# line: the file's values for those must lose, the rest must count
my $conf = write_file("$tmp/tunneld.conf", <<"CONF");
# a comment, then options
node = node-from-file
domain = wrong.example
database-url = postgresql:///nonexistent?host=/nonexistent
listen = 127.0.0.1:1
log-format = json
workers = 1
keepalive = "45"
CONF

my $notify_path = "$tmp/notify.sock";
my $notify = IO::Socket::UNIX->new(Type => SOCK_DGRAM, Local => $notify_path)
    or die "notify socket: $!";
$notify->blocking(0);
$ENV{NOTIFY_SOCKET} = $notify_path;

my $s = start_stack(workers => 2,
    tunneld_args => ['--config', $conf]);
my $tlog = $s->log_path('tunneld');

sub notes {
    my ($secs) = @_;
    my @got;
    my $deadline = time + $secs;
    while (time < $deadline) {
        my $msg;
        if (defined $notify->recv($msg, 4096) && length $msg) {
            push @got, $msg;
            next;
        }
        sleep 0.05;
    }
    return @got;
}

my @lines = grep { length } log_lines($tlog);
my @json = grep { defined } map { eval { JSON::PP::decode_json($_) } }
    @lines;
is(scalar(@json), scalar(@lines), 'log-format = json: every line is JSON')
    or diag(join "\n", grep { !eval { JSON::PP::decode_json($_) } } @lines);
ok(!grep({ !defined $_->{time} || $_->{time}
           !~ /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/ } @json),
   'every JSON line has an RFC 3339 UTC time');
ok(!grep({ ($_->{level} // '') !~ /^(?:error|warn|info|debug)$/
           || ($_->{pid} // '') !~ /^\d+$/ || !defined $_->{msg} } @json),
   'every JSON line has level, pid and msg');

my $sup = $s->pid('tunneld');
my @started = grep { ($_->{msg} // '') =~ /^started: worker/ } @json;
is(scalar(@started), 2,
   'workers = 1 in the file loses to the command line (--workers 2)');
like($started[0]{msg} // '', qr/node "node-from-file" domain "localhost"/,
    'node from the file, domain from the command line');
like($started[0]{proc} // '', qr/^w[12]$/, 'a worker line has proc "wN"');
ok(grep({ ($_->{proc} // '') eq 'sup' && $_->{pid} == $sup } @json),
   'supervisor lines have proc "sup" and its pid');

# the file's database URL would not work: tunneld loaded the key table
ok(grep({ ($_->{msg} // '') =~ /^db: loaded \d+ key/ } @json),
   'database-url from the command line, not the file');

# a client's bytes stay inside one JSON string
my $u = new_user($s, 'jsonuser');
my $r = run_ssh($s, key => $u->{key}, user => $u->{name},
    remote => "bad\"name:80:localhost:1", timeout => 20);
@lines = grep { length } log_lines($tlog);
is(scalar(grep { !eval { JSON::PP::decode_json($_); 1 } } @lines), 0,
   'still every line JSON after a quoted name from a client');


# --- readiness: one READY=1 once both workers have PostgreSQL and Redis ---

my @n = notes(0.5);
my @ready = grep { /^READY=1$/m } @n;
is(scalar(@ready), 1, 'one READY=1 for the supervisor and its 2 workers')
    or diag(explain(\@n));
like($ready[0] // '', qr/^STATUS=2 workers accepting SSH connections$/m,
     'with a STATUS line');
@json = map { JSON::PP::decode_json($_) } grep { length } log_lines($tlog);
my $text = join "\n", map { $_->{msg} } @json;
is(scalar(() = $text =~ /^ready: PostgreSQL and Redis are up$/mg), 2,
   'each worker logged that it is ready');
like($text, qr/^ready: 2 workers$/m, 'the supervisor logged it too');

# a worker restarted later does not send READY again
my @w = $s->tunneld_pids;
kill 'KILL', $w[0];
ok(wait_until(15, sub { 3 == grep { /ready: PostgreSQL and Redis are up/ }
                              log_lines($tlog) }),
   'the restarted worker is ready again');
is(scalar(grep { /READY=1/ } notes(0.5)), 0, '... and READY=1 is not sent twice');

# SIGHUP: logged, nothing stops
kill 'HUP', $sup;
ok(wait_until(5, sub { grep { /SIGHUP: nothing to reload/ } log_lines($tlog) }),
   'SIGHUP is logged');
sleep 0.5;
ok($s->running('tunneld'), 'tunneld still runs after SIGHUP');
my @after = $s->tunneld_pids;
is(scalar(@after), 2, '... with both workers');

$s->stop_tunneld;
ok(grep({ /^STOPPING=1$/m } notes(0.5)), 'STOPPING=1 at shutdown');


# --- a single process: READY=1 waits for Redis; the file beats the env ----

my $one = write_file("$tmp/one.conf", <<"CONF");
database-url = ${\ $s->database_url }
redis-url = ${\ $s->redis_url }
workers = 1
CONF
mkdir "$tmp/one-sockets";
$s->stop_redis;
my $one_log = "$tmp/one.log";
my $pid = fork // die "fork: $!";
if ($pid == 0) {
    open STDIN, '<', '/dev/null';
    open STDOUT, '>>', $one_log;
    open STDERR, '>>', $one_log;
    $ENV{DATABASE_URL} = 'postgresql:///env-loses?host=/nonexistent';
    $ENV{REDIS_URL} = 'unix:/nonexistent/redis.sock';
    { exec { $bin } $bin, '--config', $one, '--listen',
          '127.0.0.1:' . NgxTunnel::Stack::free_port(),
          '--socket-dir', "$tmp/one-sockets", '--host-key', "$tmp/one-key",
          '--allow-root' }
    POSIX::_exit(127);
}
ok(wait_until(10, sub { read_file($one_log) =~ /db: loaded \d+ key/ }),
   'single process: database-url from the file beats DATABASE_URL')
    or diag(read_file($one_log));
is(scalar(grep { /READY=1/ } notes(2)), 0, 'no READY=1 while Redis is down');
$s->start_redis;
@n = notes(3);
is(scalar(grep { /^READY=1$/m } @n), 1, 'READY=1 once Redis is up')
    or diag(read_file($one_log));
like(read_file($one_log), qr/^tunneld: info: ready: PostgreSQL and Redis are up$/m,
     'text log line (the default format) without a process tag');
kill 'HUP', $pid;
sleep 0.3;
is(waitpid($pid, WNOHANG), 0, 'single process survives SIGHUP');
kill 'TERM', $pid;
my $deadline = time + 10;
sleep 0.05 while waitpid($pid, WNOHANG) == 0 && time < $deadline;
is($? >> 8, 0, 'single process exits 0 on TERM');
ok(grep({ /^STOPPING=1$/m } notes(0.3)), 'single process: STOPPING=1');

delete $ENV{NOTIFY_SOCKET};
@json = map { JSON::PP::decode_json($_) } grep { length } log_lines($tlog);
my @err = grep { $_->{level} eq 'error'
                 && $_->{msg} !~ /^worker \d \(pid \d+\) was killed/ } @json;
is(scalar(@err), 0, 'tunneld (JSON) log: no unexpected error')
    or diag(explain(\@err));
# Redis was stopped on purpose above
check_logs($s, allow_nginx => [qr/tunnel: redis \w+ link to .* (?:lost|failed)/]);

done_testing();
