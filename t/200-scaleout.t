#!/usr/bin/perl

# Scale-out (docs/SCALING.md): two nodes, each nginx + tunneld, on one
# Redis and one PostgreSQL.  A tunnel held by node B is served through
# node A's public port (node A's nginx forwards to node B's internal
# listener): plain requests, a 64 MiB download, a chunked upload, SSE and
# a WebSocket echo.  The internal listener refuses requests without the
# node secret and with a hop count above 1, and never forwards again.
# Kick through node A closes node B's tunnel.  Node B's tunneld killed:
# its routes and node record expire, node A answers the offline page
# quickly meanwhile, and the client reconnecting to node A gets its name.

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib", "$Bin/../tools/lib";

use Test::More;
use Time::HiRes qw(time sleep);
use IO::Socket::UNIX;
use IO::Select;
use Socket qw(SOCK_STREAM);
use JSON::PP;
use Digest::SHA;

use NgxTunnel::Test;
use NgxTunnel::Stack;

watchdog(400);

my $secret = 'scaleout-test-secret-' . join '', map { int rand 10 } 1 .. 16;

# node A also serves the web UI: its dashboard kicks a tunnel held on B
my $na = start_stack(admin => 1, node => 'node-a',
    node_port => NgxTunnel::Stack::free_port(), node_secret => $secret);

my $nb = NgxTunnel::Stack->new(
    root        => repo_root(),
    dir         => "$na->{_test_dir}/stack-b",
    http_port   => NgxTunnel::Stack::free_port(),
    ssh_port    => NgxTunnel::Stack::free_port(),
    domain      => 'localhost',
    node        => 'node-b',
    node_port   => NgxTunnel::Stack::free_port(),
    node_secret => $secret,
    workers     => 1,           # one process: SIGKILL takes the node down
    share       => $na,
);
$nb->{_test_dir} = $na->{_test_dir};
$nb->start_nginx;
$nb->start_tunneld;

my $pa = $na->http_port;
my $pb = $nb->http_port;
my ($ia, $ib) = ($na->node_port, $nb->node_port);

# --- node records -------------------------------------------------------------

sub node_rec {
    my ($id) = @_;
    my %h = split /\n/, eval { $na->redis_cli('HGETALL', "tunnel:node:$id") }
        // '';
    return \%h;
}

ok(wait_until(10, sub { node_rec('node-b')->{address} }),
    'node-b advertised');
is(node_rec('node-b')->{address}, "127.0.0.1:$ib",
    'node-b: the address of its internal listener');
is(node_rec('node-a')->{address}, "127.0.0.1:$ia",
    'node-a: the address of its internal listener');
like(node_rec('node-b')->{version}, qr/^\d+\.\d+/, 'with a version');
my $nttl = $na->redis_cli('PTTL', 'tunnel:node:node-b');
ok($nttl > 0 && $nttl <= 10000, "with the routes' TTL ($nttl ms)");

# --- a tunnel on node B, requests through node A -------------------------------

my $alice = new_user($na, 'alice');
my $be = start_backend($na, 'one');

my $ssh_x = start_ssh($nb, key => $alice->{key}, user => 'alice',
    remote => "xb:80:localhost:$be->{port}");
my $route = wait_route($na, 'xb', 10);
ok($route, 'xb is up') or diag($ssh_x->output);
is($route && $route->{node}, 'node-b', 'held by node-b');

sub get_via {
    my ($s, $name, $path, %o) = @_;
    my $port = $s->http_port;
    return http_request(port => $port, host => "$name.localhost:$port",
        path => $path // '/', %o);
}

# 200 requests through node A, on one keepalive client connection
{
    my ($ok, $fail) = (0, 0);
    my $conn;
    my $t0 = time;
    for my $i (1 .. 200) {
        my $r = eval { get_via($na, "xb", "/", conn => $conn) };
        if ($r && $r->{status} == 200
            && $r->{body} eq 'hello from backend one')
        {
            $ok++;
            $conn = ($r->{headers}{connection} // '') =~ /close/i
                ? undef : $r->{conn};
        } else {
            $fail++;
            diag($@ || "status $r->{status}: $r->{body}") if $fail <= 3;
            $conn = undef;
        }
    }
    my $dt = time - $t0;
    is($ok, 200, sprintf('200 requests through node A to node B\'s tunnel: '
        . '%d ok, %d failed', $ok, $fail));
    diag(sprintf('cross-node: 200 requests in %.2f s (%.0f req/s)',
        $dt, 200 / $dt));

    # the same through node B itself: the ratio, not an absolute claim
    # (both are dominated by the test backend, whose separate header and
    # body writes meet delayed ACKs on a reused connection: about 40 ms)
    $conn = undef;
    $t0 = time;
    my $okb = 0;
    for my $i (1 .. 200) {
        my $r = eval { get_via($nb, "xb", "/", conn => $conn) };
        $okb++ if $r && $r->{status} == 200;
        $conn = $r ? $r->{conn} : undef;
    }
    my $dtb = time - $t0;
    is($okb, 200, '200 requests through node B directly');
    diag(sprintf('direct: 200 requests in %.2f s (%.0f req/s); '
        . 'cross-node costs x%.2f', $dtb, 200 / $dtb, $dt / $dtb));
}

my @acc = grep { /tunnel=xb / } log_lines($na->access_log);
# node A pools its connections to node B's internal listener
{
    my %conns;
    for (log_lines($nb->nginx_dir . '/internal.log')) {
        $conns{$1} = $2 if /^(\S+) (\d+) "xb\.localhost"/;
    }
    my $n = keys %conns;
    my $max = (sort { $b <=> $a } values %conns)[0] // 0;
    ok($n >= 1 && $n <= 8 && $max >= 50, sprintf('the 200 forwarded '
        . 'requests came over %d pooled connection(s), up to %d requests '
        . 'each', $n, $max));
}

my @other = grep { !/upstream=127\.0\.0\.1:$ib\b/ } @acc;
ok(@acc >= 200 && !@other,
    "node A's access log: every xb request went to 127.0.0.1:$ib")
    or diag($other[0] // 'no xb line');

# what the tunnel sees: the client address, none of the node headers, even
# when the client sends them itself
{
    my $r = get_via($na, 'xb', '/headers',
        headers => [['X-Tunnel-Node-Auth' => 'forged'],
                    ['X-Tunnel-Hop' => '7']]);
    is($r->{status}, 200, 'headers through node A with forged node headers: '
        . '200 (the client\'s are replaced)');
    my $h = eval { decode_json($r->{body}) } || {};
    ok(!exists $h->{'x-tunnel-node-auth'} && !exists $h->{'x-tunnel-hop'},
        'the tunnel sees neither node header') or diag($r->{body});
    is($h->{'x-forwarded-for'}, '127.0.0.1',
        'X-Forwarded-For: the client, as node A saw it');
    is($h->{'x-forwarded-host'}, "xb.localhost:$pa",
        'X-Forwarded-Host: the host the client asked node A for');

    $r = get_via($nb, 'xb', '/headers',
        headers => [['X-Tunnel-Node-Auth' => 'forged'],
                    ['X-Tunnel-Hop' => '7']]);
    $h = eval { decode_json($r->{body}) } || {};
    ok($r->{status} == 200 && !exists $h->{'x-tunnel-node-auth'}
        && !exists $h->{'x-tunnel-hop'},
        'local tunnel on node B: client-sent node headers stripped too');
}

# 64 MiB download through node A
{
    my $n = 64 * 1024 * 1024;
    my $d = Digest::SHA->new(256);
    my $got = 0;
    my $t0 = time;
    my $r = eval {
        get_via($na, 'xb', "/bytes/$n", timeout => 120,
            on_body => sub { $d->add($_[0]); $got += length $_[0] });
    };
    my $dt = time - $t0;
    is($r && $r->{status}, 200, '64 MiB download through node A: 200')
        or diag($@);
    is($got, $n, '64 MiB download: every byte');
    is($d->hexdigest, pattern_sha256($n), '64 MiB download: sha256');
    diag(sprintf('64 MiB cross-node download in %.2f s (%.0f MB/s)',
        $dt, $n / 1e6 / $dt));
}

# chunked upload through node A, never buffered whole
{
    my $n = 16 * 1024 * 1024;
    my $t0 = time;
    my $r = eval {
        get_via($na, 'xb', '/sha256', method => 'POST', timeout => 120,
            body_gen => pattern_gen($n), chunked => 1);
    };
    is($r && $r->{body}, pattern_sha256($n),
        sprintf('16 MiB chunked upload through node A: sha256 (%.2f s)',
            time - $t0)) or diag($@);
    is($r && $r->{headers}{'x-body-length'}, $n, '... every byte');
}

# server-sent events through node A arrive as they are sent
{
    my @ev;
    my $t0 = time;
    my $buf = '';
    my $r = eval {
        get_via($na, 'xb', '/sse', timeout => 15, on_body => sub {
            $buf .= $_[0];
            push @ev, time - $t0 while $buf =~ s/^.*?\n\n//s;
        });
    };
    is(scalar @ev, 3, 'SSE through node A: three events') or diag($@);
    ok(@ev == 3 && $ev[0] < 0.8 && $ev[2] - $ev[0] > 1.6,
        sprintf('SSE: not buffered (events at %s s)',
            join ', ', map { sprintf '%.2f', $_ } @ev));
}

# WebSocket echo through node A
{
    my $r = eval { ws_handshake($na, 'xb', '/ws') };
    is($r && $r->{status}, 101, 'WebSocket through node A: 101') or diag($@);
    ok($r && $r->{accept_ok}, 'WebSocket: accept key');
    if ($r && $r->{status} == 101) {
        my $c = $r->{conn};
        my $t0 = time;
        ws_send($c, 0x1, 'hello across nodes');
        my @f = ws_recv($c, 5);
        is($f[2], 'hello across nodes', sprintf('WebSocket: text echo '
            . '(%.1f ms)', (time - $t0) * 1000));
        my $big = pattern_bytes(300_000);
        ws_send($c, 0x2, $big);
        @f = ws_recv($c, 10);
        ok(defined $f[2] && $f[2] eq $big, 'WebSocket: 300 kB binary echo');
        ws_send($c, 0x8, pack('n', 1000));
        @f = ws_recv($c, 5);
        is($f[1], 0x8, 'WebSocket: close answered');
    }
}


# --- the internal listener ----------------------------------------------------

sub internal {
    my ($port, $name, @h) = @_;
    my $r = eval {
        http_request(port => $port, host => "$name.localhost",
            path => '/', headers => \@h, timeout => 10);
    };
    return $r || { status => 0, body => $@ };
}

my $auth = ['X-Tunnel-Node-Auth' => $secret];
my $r = internal($ib, 'xb');
is($r->{status}, 403, 'internal listener, no credential: 403');
$r = internal($ib, 'xb', ['X-Tunnel-Node-Auth' => $secret . 'x'],
    ['X-Tunnel-Hop' => 1]);
is($r->{status}, 403, 'wrong credential (one byte longer): 403');
$r = internal($ib, 'xb', ['X-Tunnel-Node-Auth' => 'y' . substr($secret, 1)],
    ['X-Tunnel-Hop' => 1]);
is($r->{status}, 403, 'wrong credential (same length): 403');
$r = internal($ib, 'xb', $auth, ['X-Tunnel-Hop' => 2]);
is($r->{status}, 508, 'hop count 2: 508 Loop Detected');
like($r->{reason}, qr/Loop Detected/, '... with its reason phrase');
$r = internal($ib, 'xb', $auth);
is($r->{status}, 400, 'no hop count: 400');
$r = internal($ib, 'xb', $auth, ['X-Tunnel-Hop' => 1]);
is("$r->{status} $r->{body}", '200 hello from backend one',
    'credential and hop 1: served from the local tunnel');
$r = internal($ia, 'xb', $auth, ['X-Tunnel-Hop' => 1]);
is($r->{status}, 502, 'node A\'s internal listener, tunnel on node B: 502, '
    . 'never a second hop');
like(page_text($r->{body}), qr/Tunnel "xb" is offline/, "... the offline page");
ok((grep { /internal listener refused a request from 127\.0\.0\.1: no /
           && /X-Tunnel-Node-Auth/ } log_lines($nb->log_path('nginx'))),
    'the refusal is logged, naming the header');
ok((grep { /forwarded request for "xb" refused: its route is on node "node-b"/ }
           log_lines($na->log_path('nginx'))),
    'the refused second hop is logged');
$r = internal($pb, 'xb', ['X-Tunnel-Hop' => 9]);
is($r->{status}, 200, 'the public port ignores a client\'s hop header');


# --- configuration mistakes are refused at load time ---------------------------

sub nginx_t {
    my ($http, $server) = @_;
    my $dir = "$na->{_test_dir}/conf-check";
    mkdir $dir;
    my $module = $na->bin('ngx_http_tunnel_module.so');
    open my $fh, '>', "$dir/nginx.conf" or die "$dir/nginx.conf: $!\n";
    print $fh "load_module $module;\npid $dir/nginx.pid;\n"
        . "error_log $dir/error.log;\nevents {}\nhttp {\n"
        . "access_log off;\ntunnel_redis unix:$dir/redis.sock;\n"
        . "tunnel_domain localhost;\n$http\n"
        . "upstream tunnels { tunnel_balancer; server 127.0.0.1:1; }\n"
        . "server { listen 127.0.0.1:1; location / { tunnel_lookup; $server "
        . "proxy_pass http://tunnels; } }\n}\n";
    close $fh;
    # under SANITIZE=1 the module needs libasan preloaded, as the stack's
    # own nginx gets it
    local %ENV = (%ENV, $na->sanitizer_env('nginx'));
    my $out = `/usr/sbin/nginx -t -p $dir/ -c $dir/nginx.conf -e $dir/error.log 2>&1`;
    return ($? == 0, $out);
}

{
    open my $fh, '>', "$na->{_test_dir}/short.secret" or die;
    print $fh "tooshort\n";
    close $fh;
    my $good = $na->dir . '/node.secret';
    my ($ok, $out) = nginx_t("tunnel_node_id n1;", '');
    ok(!$ok && $out =~ /"tunnel_node_id" and "tunnel_node_secret_file" go together/,
        'tunnel_node_id without a secret: refused');
    ($ok, $out) = nginx_t('', 'tunnel_internal on;');
    ok(!$ok && $out =~ /"tunnel_internal" needs "tunnel_node_id"/,
        'tunnel_internal without a node id: refused');
    ($ok, $out) = nginx_t("tunnel_node_id n1; tunnel_node_secret_file "
        . "$na->{_test_dir}/short.secret;", '');
    ok(!$ok && $out =~ /must be at least 16 characters/,
        'a short secret: refused');
    ($ok, $out) = nginx_t("tunnel_node_id n1; tunnel_node_secret_file $good;",
        'tunnel_internal on;');
    ok($ok, 'node id, secret and an internal location: accepted')
        or diag($out);
}


# --- kick through node A of a tunnel on node B ---------------------------------

sub api_a {
    my ($method, $path) = @_;
    my $c = IO::Socket::UNIX->new(Type => SOCK_STREAM,
        Peer => $na->socket_dir . '/api.sock') or die "api: $!\n";
    print $c "$method $path HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n";
    my $buf = '';
    my $sel = IO::Select->new($c);
    my $deadline = time + 10;
    while (time < $deadline) {
        last unless $sel->can_read($deadline - time);
        my $n = sysread $c, $buf, 65536, length $buf;
        last unless $n;
    }
    my ($head, $body) = split /\r\n\r\n/, $buf, 2;
    my ($st) = ($head // '') =~ /^HTTP\/1\.1 (\d+)/;
    $body //= '';
    if ($head =~ /transfer-encoding:\s*chunked/i) {
        my $out = '';
        while ($body =~ s/^([0-9a-f]+)\r\n//) {
            my $n = hex $1;
            last if $n == 0;
            $out .= substr($body, 0, $n, '');
            $body =~ s/^\r\n//;
        }
        $body = $out;
    }
    return { status => $st // 0, json => eval { decode_json($body) } };
}

{
    my $ssh_k = start_ssh($nb, key => $alice->{key}, user => 'alice',
        remote => "xk:80:localhost:$be->{port}");
    ok(wait_route($na, 'xk', 10), 'xk up on node-b') or diag($ssh_k->output);
    my $l = api_a(GET => '/tunnels?node=node-b');
    is_deeply([ sort map { $_->{name} } @{ $l->{json}{tunnels} || [] } ],
        [qw(xb xk)], 'node A\'s API lists node B\'s tunnels');
    my $t0 = time;
    my $k = api_a(DELETE => '/tunnels/xk?reason=cross-node%20kick');
    is($k->{status}, 200, 'DELETE /tunnels/xk on node A: 200');
    my $rc = $ssh_k->finish(3);
    my $dt = time - $t0;
    ok($rc != -1 && $dt < 1,
        sprintf('node B\'s client exits %.3f s after the kick on node A', $dt));
    like($ssh_k->output, qr/closed by an administrator: cross-node kick/,
        '... told why');
    ok(wait_no_route($na, 'xk', 5), 'its route is gone');
}

# the same from node A's dashboard (/admin/tunnels: the confirm form, then
# the kick), as an operator does it
{
    require NgxTunnel::AdminTest;
    my $ua = NgxTunnel::AdminTest::UA->new("http://localhost:$pa");
    my $r = $ua->get('/setup');
    $r = $ua->post('/setup', { name => 'alice', password => 'scale out pw',
        password2 => 'scale out pw',
        csrf => NgxTunnel::AdminTest::csrf($r) });
    is($r->{status}, 303, 'node A\'s web UI: alice becomes the administrator');

    my $ssh_w = start_ssh($nb, key => $alice->{key}, user => 'alice',
        remote => "xw:80:localhost:$be->{port}");
    ok(wait_route($na, 'xw', 10), 'xw up on node-b') or diag($ssh_w->output);
    $r = $ua->get('/admin/tunnels');
    like($r->{content}, qr/\bxw\b/, 'node A\'s dashboard lists xw')
        or diag(substr($r->{content}, 0, 400));
    my $csrf = NgxTunnel::AdminTest::csrf($r);
    my $t0 = time;
    $r = $ua->post('/admin/tunnels', { action => 'kick', name => 'xw',
        confirm => 'yes', reason => 'dashboard kick', csrf => $csrf });
    is($r->{status}, 303, 'Kick on node A\'s dashboard: 303')
        or diag("$r->{status} " . substr($r->{content} // '', 0, 400));
    my $rc = $ssh_w->finish(3);
    my $dt = time - $t0;
    ok($rc != -1 && $dt < 1,
        sprintf('node B\'s client exits %.3f s after the dashboard kick', $dt));
    like($ssh_w->output, qr/closed by an administrator: dashboard kick/,
        '... told why');
    ok(wait_no_route($na, 'xw', 5), 'its route is gone');
}


# --- node B's tunneld killed ----------------------------------------------------

{
    my $ssh_d = start_ssh($nb, key => $alice->{key}, user => 'alice',
        remote => "xd:80:localhost:$be->{port}", exit_on_forward_failure => 1);
    ok(wait_route($na, 'xd', 10), 'xd up on node-b') or diag($ssh_d->output);
    is(status_body($na, 'xd'), '200 hello from backend one',
        'xd through node A');

    # node B's nginx down, its tunneld alive: node A cannot reach it
    $nb->stop_nginx;
    my $t0 = time;
    my $r = eval { get_via($na, 'xd', '/', timeout => 10) };
    my $dt = time - $t0;
    is($r && $r->{status}, 502, sprintf('node B\'s nginx down: node A answers '
        . '502 in %.1f ms', 1000 * $dt)) or diag($@);
    like($r && page_text($r->{body}), qr/Tunnel "xd" is offline/,
        '... the offline page of xd');
    $nb->start_nginx;
    is(status_body($na, 'xd'), '200 hello from backend one',
        'node B\'s nginx back: served again (node address asked again)');

    my $t_kill = time;
    $nb->stop_tunneld(signal => "KILL");
    $ssh_d->stop;

    my (@lat, %st, $gone, $node_gone);
    my $bad = '';
    while (time - $t_kill < 25) {
        my $t0 = time;
        my $r = eval { get_via($na, 'xd', '/', timeout => 10) };
        my $dt = time - $t0;
        my $status = $r ? $r->{status} : 'error';
        $status .= ' (not the offline page)'
            if $status eq '502' && page_text($r->{body}) !~ /Tunnel "xd" is offline/;
        if (!route_of($na, 'xd')) {
            $gone //= time - $t_kill;
        }
        $node_gone //= time - $t_kill unless node_rec('node-b')->{address};
        last if defined $gone && defined $node_gone && $status eq '404';
        # the route expired before the node record: no such tunnel now
        if (defined $gone && $status eq '404') {
            sleep 0.2;
            next;
        }
        $st{$status}++;
        push @lat, $dt;
        $bad = "$status " . ($r ? page_text($r->{body}) : $@)
            if $status ne '502' && !$bad;
        sleep 0.2;
    }
    @lat = sort { $a <=> $b } @lat;
    ok(defined $gone && $gone <= 15,
        sprintf('node B\'s route vanishes %.1f s after the kill', $gone // -1));
    ok(defined $node_gone && $node_gone <= 15,
        sprintf('node B\'s record vanishes %.1f s after the kill',
            $node_gone // -1));
    is_deeply([ keys %st ], ['502'],
        sprintf('meanwhile node A answered %d requests, all 502', scalar @lat))
        or diag("first other answer: $bad");
    ok(@lat && $lat[-1] < 1.5,
        sprintf('the offline page comes quickly: median %.1f ms, max %.1f ms',
            1000 * $lat[@lat / 2], 1000 * $lat[-1]));
    # every worker of node A: a 502 the other node marked "offline" also
    # dropped the worker's cached route (a killed tunneld publishes no
    # invalidation), so none serves a stale 502 after the route expired
    my @after = map { get_via($na, 'xd', '/')->{status} } 1 .. 6;
    is("@after", '404 404 404 404 404 404',
        'afterwards: no such tunnel (404), from every worker');

    # the client reconnects, to node A this time
    my $ssh_r = start_ssh($na, key => $alice->{key}, user => 'alice',
        remote => "xd:80:localhost:$be->{port}");
    my $nr = wait_route($na, 'xd', 10);
    is($nr && $nr->{node}, 'node-a', 'reconnected to node A: xd is back, '
        . 'held by node-a') or diag($ssh_r->output);
    is(status_body($na, 'xd'), '200 hello from backend one',
        'served by node A');
    is(get_via($nb, 'xd', '/')->{status}, 200,
        'and through node B\'s nginx, forwarded to node A');
    $ssh_r->stop;
}

check_logs($na, allow_nginx => [
    # node B's nginx stopped for a moment
    qr/connect\(\) failed \(111: Connection refused\) while connecting to upstream.*upstream: "http:\/\/127\.0\.0\.1:$ib\//,
]);
check_logs($nb, allow_nginx => [
    qr/internal listener refused/,
    # its tunneld was killed: the socket file stays, nobody listens
    qr/connect\(\) to unix:\S+ failed \(111: Connection refused\)/,
]);

$ssh_x->stop;
$nb->stop_all;
$na->stop_all;
done_testing();
