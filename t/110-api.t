#!/usr/bin/perl

# The management API (docs/API.md) with real parts: tunneld's Unix socket
# and a TCP listener with a token, real ssh -R clients, nginx in front.
# Checks the JSON of every endpoint, filters and paging, live counters,
# bad input, kicks (timed: route gone through nginx and ssh client told
# and gone in under 1 s), a kick of a tunnel held by a second tunneld
# sharing the Redis, the API being out of reach of nginx's public hosts,
# and stale state vanishing after SIGKILL of that second tunneld.

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib", "$Bin/../tools/lib";

use File::Temp ();
use IO::Select;
use IO::Socket::INET;
use IO::Socket::UNIX;
use JSON::PP;
use POSIX ();
use Socket qw(SOCK_STREAM);
use Test::More;
use Time::HiRes qw(time sleep);

use NgxTunnel::Stack;
use NgxTunnel::Test;

watchdog(300);

my $token = 'test-token-' . join '', map { sprintf '%02x', int rand 256 }
    1 .. 16;
my $api_port = NgxTunnel::Stack::free_port();

my $token_dir = File::Temp::tempdir('ngx-tunnel-api.XXXXXX', TMPDIR => 1,
    CLEANUP => 1);
my $token_file = "$token_dir/api-token";
{
    open my $fh, '>', $token_file or die "$token_file: $!\n";
    print $fh "$token\n";
    close $fh;
    chmod 0600, $token_file;
}

my $s = start_stack(admin => 1, tunneld_args => [
    '--api', "127.0.0.1:$api_port", '--api-token-file', $token_file ]);
my $port = $s->env->{HTTP_PORT};
my $sock = $s->socket_dir . '/api.sock';
my $json = JSON::PP->new->canonical;


# One request to the API; returns { status, headers, body, json }.
sub api {
    my ($method, $path, %o) = @_;
    my $c = $o{tcp}
        ? IO::Socket::INET->new(PeerAddr => '127.0.0.1',
              PeerPort => $api_port, Proto => 'tcp', Timeout => 5)
        : IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $sock);
    die "connect to the API: $!\n" unless $c;
    my $req = "$method $path HTTP/1.1\r\nHost: api\r\n";
    $req .= "$_\r\n" for @{ $o{headers} || [] };
    $req .= 'Content-Length: ' . length($o{body}) . "\r\n" if defined $o{body};
    $req .= "\r\n" . ($o{body} // '');
    print $c $req;
    my $buf = '';
    my $sel = IO::Select->new($c);
    my $deadline = time + ($o{timeout} // 10);
    while (time < $deadline) {
        last unless $sel->can_read($deadline - time);
        my $n = sysread $c, $buf, 65536, length $buf;
        last unless $n;
    }
    close $c;
    my ($head, $body) = split /\r\n\r\n/, $buf, 2;
    my @lines = split /\r\n/, $head // '';
    my ($status) = (shift(@lines) // '') =~ /^HTTP\/1\.1 (\d+)/;
    my %h = map { /^([^:]+):\s*(.*)$/ ? (lc $1, $2) : () } @lines;
    $body //= '';
    if (($h{'transfer-encoding'} // '') eq 'chunked') {
        my $out = '';
        while ($body =~ s/^([0-9a-f]+)\r\n//) {
            my $n = hex $1;
            last if $n == 0;
            $out .= substr($body, 0, $n, '');
            $body =~ s/^\r\n//;
        }
        $body = $out;
    }
    my $j = eval { $json->decode($body) };
    return { status => $status // 0, headers => \%h, body => $body,
             json => $j };
}


# --- status endpoints ------------------------------------------------------

my $r = api(GET => '/healthz');
is($r->{status}, 200, '/healthz: 200');
is_deeply([ @{ $r->{json} }{qw(status redis postgres)} ], [qw(ok up up)],
    '/healthz: redis and postgres up') or diag($r->{body});

$r = api(GET => '/metrics');
is($r->{status}, 200, '/metrics: 200');
like($r->{headers}{'content-type'}, qr{^text/plain; version=0\.0\.4},
    '/metrics: Prometheus text format');
for my $m (qw(tunneld_tunnels tunneld_sessions tunneld_handshakes_total
              tunneld_received_bytes_total tunneld_requests_total
              tunneld_redis_up tunneld_postgres_up
              tunneld_heartbeat_lag_seconds)) {
    like($r->{body}, qr/^# TYPE \Q$m\E (?:counter|gauge)$/m, "/metrics: $m");
}
like($r->{body}, qr/^tunneld_auth_failures_total\{reason="unknown_key"\} \d+$/m,
    '/metrics: auth failures by reason');

my $sock_mode = (stat $sock)[2] & 07777;
is(sprintf('%04o', $sock_mode), '0660', 'API socket is mode 0660');


# SSH clients that leave before authenticating, each followed at once by an
# API request: libssh closes such a socket itself, and its fd number goes
# to the next connection; tunneld once dropped that connection's epoll
# registration when tearing the old session down (the API request then
# hung until its 10 s timeout).  Answered every time now.
{
    my $slow = 0;
    for my $i (1 .. 40) {
        my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
            PeerPort => $s->env->{SSH_PORT}, Proto => 'tcp', Timeout => 5)
            or die "ssh port: $!\n";
        # as the dev stack's readiness probe: read the banner, leave
        my $line = <$c>;
        print $c "SSH-2.0-OpenSSH_9.2p1 probe\r\n" if $i % 2;
        close $c;
        my $t1 = time;
        my $h = api(GET => '/healthz', timeout => 3);
        $slow++ if $h->{status} != 200 || time - $t1 > 2;
    }
    is($slow, 0, 'API answers at once after clients that left before auth '
       . '(40 rounds)');
}


# --- tunnels up ------------------------------------------------------------

my $alice = new_user($s, 'alice');
my $bob = new_user($s, 'bob');
my $be = start_backend($s, 'one');

my $ssh_a = start_ssh($s, key => $alice->{key}, user => 'alice', session => 1,
    remote => [ "aone:80:localhost:$be->{port}",
                "atwo:80:localhost:$be->{port}" ]);
my $ssh_b = start_ssh($s, key => $bob->{key}, user => 'bob',
    remote => "bone:80:localhost:$be->{port}");
ok(wait_route($s, $_, 10), "$_ up") for qw(aone atwo bone);

$r = api(GET => '/tunnels');
is($r->{status}, 200, 'GET /tunnels: 200');
is($r->{headers}{'transfer-encoding'}, 'chunked',
    'GET /tunnels without limit streams');
my @names = map { $_->{name} } @{ $r->{json}{tunnels} || [] };
is_deeply(\@names, [qw(aone atwo bone)], 'every live tunnel, in name order')
    or diag($r->{body});
is($r->{json}{next_cursor}, undef, 'no next cursor');

my ($t) = grep { $_->{name} eq 'aone' } @{ $r->{json}{tunnels} || [] };
$t //= {};
is($t->{user}, 'alice', 'user');
like($t->{user_id}, qr/^\d+$/, 'user_id is a number');
is($t->{url}, "http://aone.localhost:$port", 'url');
like($t->{client}, qr/^127\.0\.0\.1:\d+$/, 'client address');
like($t->{session}, qr{^[^/]+/\d+/\d+$}, 'session id');
ok(length $t->{node}, 'node');
like($t->{started}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'started, RFC 3339');
ok(abs($t->{started_unix} - time) < 60, 'started_unix');
for my $k (qw(bytes_in bytes_out requests streams open_streams)) {
    ok(exists $t->{$k}, "field $k");
}

# counters rise within 2 s of traffic (the fingerprint comes with them)
is(status_body($s, 'aone'), '200 hello from backend one', "request $_")
    for 1 .. 3;
my $seen;
my $t0 = time;
ok(wait_until(4, sub {
    $seen = api(GET => '/tunnels/aone')->{json} // {};
    return ($seen->{requests} // 0) >= 3;
}), sprintf('requests counted within %.1f s', time - $t0))
    or diag($json->encode($seen));
ok(time - $t0 < 2.5, 'counters visible in under 2.5 s');
ok($seen->{bytes_in} > 0 && $seen->{bytes_out} > 0, 'bytes in and out');
is($seen->{fingerprint}, $alice->{fingerprint}, 'key fingerprint');
like($seen->{last_request} // '', qr/^\d{4}-/, 'last request time');
is(api(GET => '/tunnels/atwo')->{json}{requests}, 0, 'other tunnel: 0');

# filters and paging
is_deeply([ map { $_->{name} } @{ api(GET => '/tunnels?user=alice')
    ->{json}{tunnels} } ], [qw(aone atwo)], '?user=');
is_deeply([ map { $_->{name} } @{ api(GET => '/tunnels?name=a')
    ->{json}{tunnels} } ], [qw(aone atwo)], '?name= prefix');
is_deeply([ map { $_->{name} } @{ api(GET => "/tunnels?node=$t->{node}")
    ->{json}{tunnels} } ], [qw(aone atwo bone)], '?node=');
is(scalar @{ api(GET => '/tunnels?node=elsewhere')->{json}{tunnels} }, 0,
    '?node= of no node: none');

my @pages;
my $cursor = '';
for (1 .. 5) {
    $r = api(GET => "/tunnels?limit=2$cursor");
    push @pages, [ map { $_->{name} } @{ $r->{json}{tunnels} } ];
    last unless defined $r->{json}{next_cursor};
    $cursor = "&cursor=$r->{json}{next_cursor}";
}
is_deeply(\@pages, [[qw(aone atwo)], [qw(bone)]], 'paging by 2');

# bad input
$r = api(GET => '/tunnels/nosuch');
is($r->{status}, 404, 'unknown tunnel: 404');
is($r->{json}{error}, 'not_found', 'with a JSON error');
is(api(GET => '/tunnels/Bad_Name')->{status}, 400, 'malformed name: 400');
is(api(GET => '/tunnels?limit=0')->{status}, 400, 'limit=0: 400');
is(api(GET => '/tunnels?limit=x')->{status}, 400, 'limit=x: 400');
is(api(GET => '/tunnels?name=a%2Fb')->{status}, 400, 'bad prefix: 400');
is(api(GET => '/tunnels?user=%zz')->{status}, 400, 'bad escape: 400');
is(scalar @{ api(GET => '/tunnels?username=alice')->{json}{tunnels} }, 3,
    'an unknown parameter that contains a known name is ignored');
$r = api(POST => '/tunnels');
is($r->{status}, 405, 'POST /tunnels: 405');
is($r->{headers}{allow}, 'GET, HEAD', 'with Allow');
is(api(PUT => '/tunnels/aone')->{headers}{allow}, 'GET, HEAD, DELETE',
    'PUT /tunnels/NAME: Allow lists DELETE');
is(api(GET => '/nope')->{status}, 404, 'unknown path: 404');
is(api(GET => '/tunnels', headers => [ 'X-Big: ' . ('x' x 9000) ])
    ->{status}, 431, 'huge headers: 431');
is(api(DELETE => '/tunnels/aone', body => 'x' x 20000)->{status}, 413,
    'huge body: 413');
is(api(DELETE => '/tunnels/aone', body => '{not json')->{status}, 400,
    'bad JSON body: 400');
is(api(GET => '/tunnels', headers => ['Transfer-Encoding: chunked'])
    ->{status}, 501, 'chunked request body: 501');
$r = api(DELETE => '/tunnels/aone?reason=' . ('r' x 201));
is($r->{status}, 400, 'reason over 200 characters: 400');
ok(route_of($s, 'aone'), '... and nothing was closed');

# a client that half-closes after its request (nc -N, socat) gets its answer
{
    my $c = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $sock);
    print $c "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    shutdown $c, 1;
    my $got = '';
    my $sel = IO::Select->new($c);
    while ($sel->can_read(5)) { last unless sysread $c, $got, 4096, length $got }
    like($got, qr{^HTTP/1\.1 200 }, 'half-closed after the request: answered');
    $c = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $sock);
    print $c "GET /healthz HTTP/1.1\r\nHost: x\r\n";
    shutdown $c, 1;
    $got = '';
    $sel = IO::Select->new($c);
    while ($sel->can_read(5)) { last unless sysread $c, $got, 4096, length $got }
    like($got, qr{^HTTP/1\.1 400 }, 'half-closed mid-headers: 400 at once');
}
$r = api(HEAD => '/tunnels');
is($r->{status}, 200, 'HEAD /tunnels: 200');
is($r->{body}, '', '... and no body');

# a client that never finishes its request is dropped; tunnels unaffected
{
    my $c = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $sock);
    print $c "GET /tunnels HTTP/1.1\r\n";
    my $sel = IO::Select->new($c);
    my $t1 = time;
    my $got = '';
    while (time - $t1 < 15 && $sel->can_read(15 - (time - $t1))) {
        last unless sysread $c, $got, 4096, length $got;
    }
    like($got, qr{^HTTP/1\.1 408 }, sprintf('slow client: 408 after %.1f s',
        time - $t1));
    is(status_body($s, 'aone'), '200 hello from backend one',
        'tunnels keep serving');
}


# --- TCP listener with a token ---------------------------------------------

is(api(GET => '/healthz', tcp => 1)->{status}, 401, 'TCP without token: 401');
is(api(GET => '/healthz', tcp => 1,
       headers => [ 'Authorization: Bearer wrong' ])->{status}, 401,
    'TCP with a wrong token: 401');
is(api(GET => '/healthz', tcp => 1,
       headers => [ "Authorization: Bearer $token" ])->{status}, 200,
    'TCP with the token: 200');

{
    my $dir = "$s->{_test_dir}/badapi";
    mkdir $dir;
    my ($out, $err) = ('', '');
    my $ok = IPC::Run::run([ $s->bin('tunneld'), '--listen',
        '127.0.0.1:' . NgxTunnel::Stack::free_port(), '--socket-dir',
        "$dir/sockets", '--host-key', "$dir/key", '--database-url',
        $s->database_url, '--redis-url', $s->redis_url, '--workers', 1,
        '--api', '0.0.0.0:' . NgxTunnel::Stack::free_port(),
        '--allow-root' ],
        '<', \undef, '>', \$out, '2>', \$err, IPC::Run::timeout(20));
    ok(!$ok, 'a non-loopback --api without a token: tunneld refuses to start');
    like($err, qr/not a loopback address: give --api-token-file/,
        '... saying what to add');
}


# --- not reachable through nginx's public server blocks ----------------------

for my $host ("localhost:$port", "aone.localhost:$port") {
    my $res = http_request(port => $port, host => $host, path => '/tunnels');
    unlike($res->{body}, qr/"tunnels"\s*:/, "GET /tunnels via $host does not "
        . "reach the API (status $res->{status})");
}


# --- kicks -----------------------------------------------------------------

$t0 = time;
$r = api(DELETE => '/tunnels/atwo?reason=too%20much%20traffic&by=ops');
is($r->{status}, 200, 'DELETE /tunnels/atwo: 200');
is_deeply([ @{ $r->{json} }{qw(found name user scope)} ],
    [ JSON::PP::true, 'atwo', 'alice', 'tunnel' ], 'answer says found');
my $t404 = wait_until(2, sub {
    (eval { http_get($s, 'atwo', '/', timeout => 2)->{status} } // 0) == 404
});
ok($t404, sprintf('atwo answers 404 through nginx after %.3f s',
    time - $t0));
ok(time - $t0 < 1, 'kicked tunnel gone in under 1 s');
ok($ssh_a->wait_for(
    qr/Tunnel atwo was closed by an administrator: too much traffic/, 2),
    'the ssh client is told why') or diag($ssh_a->output);
is(status_body($s, 'aone'), '200 hello from backend one',
    'the session keeps its other tunnel');
ok($ssh_a->alive, 'and stays up');

$t0 = time;
$r = api(DELETE => '/tunnels/bone', body => '{"reason":"bye\u0007 now"}');
is($r->{json}{found}, JSON::PP::true, 'kick of a -N client\'s only tunnel');
my $rc = $ssh_b->finish(3);
my $dt = time - $t0;
ok($rc != -1 && $dt < 1, sprintf('its ssh exits in %.3f s (exit %s)', $dt,
    $rc));
like($ssh_b->output, qr/Tunnel bone was closed by an administrator: bye now/,
    'with the reason, control characters stripped');

# a kick for the session that was checked, after the name changed hands:
# nothing closed (the dashboard's owner check, then DELETE)
$r = api(DELETE => '/tunnels/aone?session_id=other%2F1%2F1');
is($r->{status}, 409, 'kick with a session id that does not hold the name: 409');
is($r->{json}{error}, 'changed_hands', '... changed_hands');
ok(route_of($s, 'aone'), '... and the tunnel stays');

$r = api(DELETE => '/tunnels/nosuch');
is($r->{status}, 404, 'kick of an unknown name: 404');
is($r->{json}{found}, JSON::PP::false, '... found false');

my $ssh_b2 = start_ssh($s, key => $bob->{key}, user => 'bob',
    remote => "bone:80:localhost:$be->{port}");
ok(wait_route($s, 'bone', 10), 'a kicked client can reconnect');
is(status_body($s, 'bone'), '200 hello from backend one', 'and serves');

$r = api(DELETE => '/tunnels/aone?session=1');
is($r->{json}{scope}, 'session', '?session=1 closes the session');
ok($ssh_a->finish(3) != -1, '... the ssh client exits');
like($ssh_a->output, qr/Tunnel aone was closed by an administrator\./,
    '... saying so, one sentence');


# --- a second tunneld on the same Redis: cluster-wide list and kick ----------

my $dir_b = "$s->{_test_dir}/node-b";
mkdir $dir_b;
my $ssh_port_b = NgxTunnel::Stack::free_port();
my $log_b = "$dir_b/tunneld.log";
my $pid_b = fork;
die "fork: $!\n" unless defined $pid_b;
if ($pid_b == 0) {
    open STDOUT, '>>', $log_b;
    open STDERR, '>>', $log_b;
    open STDIN, '<', '/dev/null';
    exec($s->bin('tunneld'), '--listen', "127.0.0.1:$ssh_port_b",
        '--socket-dir', "$dir_b/sockets", '--host-key', "$dir_b/key",
        '--node', 'node-b', '--workers', 1,
        '--public-url', "http://%s.localhost:$port",
        '--database-url', $s->database_url, '--redis-url', $s->redis_url,
        '--allow-root')
        or POSIX::_exit(127);
}
ok(wait_until(10, sub { (`cat $log_b 2>/dev/null` // '') =~ /db: loaded/ }),
    'node-b started');

# the same client command, to node-b's SSH port
sub start_ssh_b {
    local $s->{ssh_port} = $ssh_port_b;
    return start_ssh($s, @_);
}

my $ssh_c = start_ssh_b(key => $alice->{key}, user => 'alice',
    remote => "cnode:80:localhost:$be->{port}");
ok(wait_route($s, 'cnode', 10), 'a tunnel on node-b');
$r = api(GET => '/tunnels?node=node-b');
is_deeply([ map { $_->{name} } @{ $r->{json}{tunnels} } ], ['cnode'],
    'node A lists node-b\'s tunnel');

$t0 = time;
$r = api(DELETE => '/tunnels/cnode?reason=cross-node');
is($r->{json}{node}, 'node-b', 'kick through node A of node-b\'s tunnel');
$rc = $ssh_c->finish(3);
$dt = time - $t0;
ok($rc != -1 && $dt < 1, sprintf('node-b\'s client exits in %.3f s', $dt));
like($ssh_c->output, qr/closed by an administrator: cross-node/,
    'with the reason');

my $ssh_d = start_ssh_b(key => $alice->{key}, user => 'alice',
    remote => "dnode:80:localhost:$be->{port}");
ok(wait_route($s, 'dnode', 10), 'another tunnel on node-b');
kill 'KILL', $pid_b;
waitpid $pid_b, 0;
$t0 = time;
ok(wait_until(15, sub {
    !grep { $_->{name} eq 'dnode' } @{ api(GET => '/tunnels')->{json}{tunnels} }
}), sprintf('SIGKILLed node\'s tunnel leaves the list after %.1f s',
    time - $t0));
ok(time - $t0 <= 12, 'within the route TTL');
$ssh_d->stop;

$r = api(GET => '/metrics');
like($r->{body}, qr/^tunneld_tunnels_kicked_total [1-9]\d*$/m,
    '/metrics counts kicks');
like($r->{body}, qr/^tunneld_requests_total [1-9]\d*$/m,
    '/metrics counts requests');


# --- tunnelctl tunnels / kick: the same API ----------------------------------

my ($rc2, $out, $err) = $s->tunnelctl('tunnels');
is($rc2, 0, 'tunnelctl tunnels: exit 0');
like($out, qr/^NAME\s+USER\s+CLIENT\s+NODE\s+UP\s+IN\s+OUT\s+REQUESTS\s+LAST$/m,
    'a table with headers');
like($out, qr/^bone\s+bob\s+127\.0\.0\.1:\d+\s+\S+\s+\d+s\s/m,
    'bob\'s tunnel in it') or diag($out . $err);
($rc2, $out, $err) = $s->tunnelctl('tunnels', '--user', 'alice');
is($rc2, 0, 'tunnelctl tunnels --user alice: exit 0');
is($out, '', 'alice has none: nothing on stdout');
like($err, qr/user "alice" has no live tunnel/, 'and says so');
($rc2, $out) = $s->tunnelctl('tunnels', '--json');
is_deeply([ map { $_->{name} } @{ ($json->decode($out))->{tunnels} } ],
    ['bone'], 'tunnelctl tunnels --json: the API\'s JSON');

($rc2, $out, $err) = $s->tunnelctl('kick', 'bone', '--reason', 'maintenance');
is($rc2, 0, 'tunnelctl kick: exit 0');
like($out, qr/closed tunnel "bone" of user "bob"/, 'says what it closed');
ok($ssh_b2->finish(3) != -1, 'the ssh client exits');
like($ssh_b2->output, qr/closed by an administrator: maintenance/,
    'with the reason');
($rc2, $out, $err) = $s->tunnelctl('kick', 'bone');
is($rc2, 1, 'tunnelctl kick of a name not live: exit 1');
like($err, qr/no live tunnel is named "bone"/, 'says so');
($rc2, $out, $err) = $s->tunnelctl('kick', 'Bad_Name!');
is($rc2, 1, 'tunnelctl kick of a malformed name: exit 1');
{
    local $s->{dir} = "$s->{_test_dir}/nowhere";
    ($rc2, $out, $err) = $s->tunnelctl('tunnels');
}
is($rc2, 1, 'tunneld unreachable: exit 1');
like($err, qr/cannot reach tunneld's API at .*is tunneld running/,
    'says what to check');

# a whole session of several tunnels: named, one sentence
{
    my $ssh_e = start_ssh($s, key => $alice->{key}, user => 'alice',
        session => 1, remote => [ "eone:80:localhost:$be->{port}",
                                  "etwo:80:localhost:$be->{port}" ]);
    ok(wait_route($s, $_, 10), "$_ up") for qw(eone etwo);
    api(DELETE => '/tunnels/etwo?session=1&reason=session%20kick');
    ok($ssh_e->finish(3) != -1, 'a session of two tunnels kicked: ssh exits');
    like($ssh_e->output, qr/Your SSH session and its tunnels \((?:eone, etwo|etwo, eone)\) were closed by an administrator: session kick\./,
        '... naming both tunnels, one sentence');
    ok(!route_of($s, 'eone') && !route_of($s, 'etwo'), '... both routes gone');
}

# disabling a user closes their session with a non-zero exit status
{
    my $dave = new_user($s, 'dave');
    my $ssh_d = start_ssh($s, key => $dave->{key}, user => 'dave',
        session => 1, remote => "dnodea:80:localhost:$be->{port}");
    ok(wait_route($s, 'dnodea', 10), "dave's tunnel up");
    $s->tunnelctl('user', 'disable', 'dave');
    my $rc3 = $ssh_d->finish(5);
    is($rc3, 1, 'a disabled user\'s ssh exits with status 1');
    like($ssh_d->output, qr/Your key was removed or your account disabled/,
        '... saying why');
}

check_logs($s);

$s->stop_all;
done_testing;
