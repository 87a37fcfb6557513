#!/usr/bin/perl

# Failure paths: a route whose socket is gone (502 offline page), nothing
# listening on the client's local port (502), Redis stopped (503 within
# the lookup timeout, SSH sessions kept, routes re-registered when it
# returns), tunneld stopped cleanly (routes released at once) and killed
# (routes expire within 15 s, nginx never hangs), the host key surviving
# restarts, stale sockets removed at start.

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib";

use IPC::Run ();
use Test::More;
use Time::HiRes qw(time sleep);

use NgxTunnel::Test;

watchdog(300);

my $s = start_stack(lookup_timeout => '1s', cache_ttl => '5s');
my $port = $s->env->{HTTP_PORT};
my $sockdir = $s->socket_dir;

my $alice = new_user($s, 'alice');
my $be = start_backend($s, 'one');


sub keyscan {
    my ($out, $err) = ('', '');
    IPC::Run::run(['ssh-keyscan', '-T', '5', '-t', 'ed25519',
                   '-p', $s->env->{SSH_PORT}, '127.0.0.1'],
                  '<', \undef, '>', \$out, '2>', \$err,
                  IPC::Run::timeout(15));
    my ($key) = $out =~ /^\S+ (ssh-ed25519 \S+)$/m;
    return $key // "no key: $out$err";
}


# timed GET: returns ($status or 'error: ...', seconds)
sub timed_get {
    my ($name, %o) = @_;
    my $t0 = time;
    my $r = eval { http_get($s, $name, '/', timeout => 10, %o) };
    return ($r ? $r->{status} : "error: $@", time - $t0, $r);
}


# --- route present, socket gone: 502 offline page --------------------------------

{
    my $ghost = "$sockdir/t-00000000deadbeef.sock";
    $s->redis_cli('HSET', 'tunnel:route:ghost', socket => $ghost,
        user => 'alice', user_id => 1, session => 'elsewhere/1/1',
        node => 'elsewhere', started => time, client => '127.0.0.1:1');
    $s->redis_cli('EXPIRE', 'tunnel:route:ghost', 60);
    my ($st, $dt, $r) = timed_get('ghost');
    is($st, 502, 'socket gone: 502');
    like(page_text($r ? $r->{body} : ''), qr/tunnel "ghost" is offline/i,
        'socket gone: "tunnel ghost is offline" page');
    like($r ? $r->{headers}{'content-type'} // '' : '', qr{^text/html},
        'socket gone: html page');
    ok($dt < 2, sprintf 'socket gone: answered at once (%.2f s)', $dt);
    $s->redis_cli('DEL', 'tunnel:route:ghost');
    $s->redis_cli('PUBLISH', 'tunnel:invalidate', 'ghost');
}


# --- nothing listening on the client's local port: 502 ------------------------------

{
    my $dead = NgxTunnel::Stack::free_port();
    my $ssh = start_ssh($s, key => $alice->{key}, user => 'alice',
        remote => "deadport:80:localhost:$dead");
    ok(wait_route($s, 'deadport', 10), 'dead local port: tunnel up')
        or diag($ssh->output);
    for my $i (1 .. 2) {
        my ($st, $dt, $r) = timed_get('deadport');
        is($st, 502, "dead local port: 502 ($i)");
        like(page_text($r ? $r->{body} : ''),
            qr/Tunnel "deadport": nothing answers on the ssh client's machine/,
            "dead local port: the page names the cause ($i)");
        ok($dt < 5, sprintf "dead local port: no hang (%.2f s)", $dt);
    }
    ok($ssh->alive, 'dead local port: the ssh session stays up');
    $ssh->stop;
}


# --- Redis stopped and started again ------------------------------------------------

my $ssh = start_ssh($s, key => $alice->{key}, user => 'alice',
    remote => "steady:80:localhost:$be->{port}");
my $route = wait_route($s, 'steady', 10);
ok($route, 'steady tunnel up') or diag($ssh->output);
my ($st) = timed_get('steady');
is($st, 200, 'steady: 200 before Redis stops');

{
    $s->stop_redis;
    my $t_stop = time;

    my ($st, $dt) = timed_get('neverseen');
    is($st, 503, 'Redis down: uncached name answers 503');
    ok($dt < 3, sprintf 'Redis down: 503 within the lookup timeout (%.2f s)',
        $dt);

    # a new tunnel cannot be registered while Redis is down: refused, the
    # user is told to retry
    my ($rc) = run_ssh($s, key => $alice->{key}, user => 'alice',
        remote => "latecomer:80:localhost:$be->{port}", timeout => 15);
    ok($rc != 0 && $rc != -1, "Redis down: new tunnel refused (exit $rc)");
    my $late = start_ssh($s, key => $alice->{key}, user => 'alice',
        session => 1, exit_on_forward_failure => 0,
        remote => "latecomer:80:localhost:$be->{port}");
    ok($late->wait_for(qr/retry|try again/i, 8),
        'Redis down: the session tells the user to retry')
        or diag($late->output);
    $late->stop;

    # cached routes may serve until the cache TTL (5 s); after that: 503
    my $wait = $t_stop + 6 - time;
    sleep $wait if $wait > 0;
    ($st, $dt) = timed_get('steady');
    is($st, 503, 'Redis down, cache expired: live name answers 503');
    ok($dt < 3, sprintf 'Redis down: 503 quickly (%.2f s)', $dt);

    sleep 2;    # > 8 s down in all: several missed heartbeats
    ok($ssh->alive, 'Redis down: tunneld keeps the SSH session');

    $s->start_redis;
    my $t_start = time;
    $route = wait_route($s, 'steady', 15);
    ok($route, sprintf 'Redis back: route re-registered (%.2f s)',
        time - $t_start) or diag(tail_log($s, 'tunneld'));
    my $ok = wait_until(15, sub { (timed_get('steady'))[0] eq '200' });
    ok($ok, sprintf 'Redis back: the URL works again (%.2f s)',
        time - $t_start) or diag(tail_log($s, 'nginx'));
    my ($st2, $dt2, $r2) = timed_get('steady');
    is($r2 && "$r2->{status} $r2->{body}", '200 hello from backend one',
        'Redis back: reaches the backend');
    ($st2) = timed_get('neverseen');
    is($st2, 404, 'Redis back: unknown name 404 again');
}


# --- tunneld stopped cleanly: routes released, host key kept ------------------------------

my $key0 = keyscan();
like($key0, qr/^ssh-ed25519 /, 'host key: ed25519');
my $keyfile = read_file($s->host_key_path);
is((stat $s->host_key_path)[2] & 07777, 0600, 'host key file mode 0600');

{
    my $t0 = time;
    $s->stop_tunneld(signal => 'TERM');
    ok(wait_no_route($s, 'steady', 3),
        sprintf 'tunneld TERM: route released (%.2f s)', time - $t0);
    is($ssh->finish(10) != -1 ? 'exited' : 'hung', 'exited',
        'tunneld TERM: ssh client disconnected');
    my @left = glob "$sockdir/t-*.sock";
    is(scalar @left, 0, 'tunneld TERM: tunnel sockets removed');

    $s->start_tunneld;
    is(keyscan(), $key0, 'host key identical after restart');
    is(read_file($s->host_key_path), $keyfile, 'host key file unchanged');
}


# --- tunneld killed: routes expire, nginx never hangs ---------------------------------

{
    $ssh = start_ssh($s, key => $alice->{key}, user => 'alice',
        remote => "victim:80:localhost:$be->{port}");
    $route = wait_route($s, 'victim', 10);
    ok($route, 'victim tunnel up') or diag($ssh->output);
    my ($st) = timed_get('victim');
    is($st, 200, 'victim: 200');
    my $sock = $route ? $route->{socket} : '';

    $s->stop_tunneld(signal => 'KILL');
    my $t_kill = time;

    is($ssh->finish(10) != -1 ? 'exited' : 'hung', 'exited',
        'tunneld KILL: ssh client notices');

    my (@bad, %seen);
    my $gone = wait_until(16, sub {
        my ($st, $dt) = timed_get('victim');
        $seen{$st}++;
        push @bad, sprintf('%s in %.2f s', $st, $dt)
            if $dt > 3 || $st !~ /^(?:404|502)$/;
        return !route_of($s, 'victim');
    });
    my $dt = time - $t_kill;
    ok($gone && $dt <= 15,
        sprintf 'tunneld KILL: route gone from Redis in %.2f s (<= 15)', $dt);
    is(scalar @bad, 0, 'tunneld KILL: nginx answers 404/502 quickly, never hangs')
        or diag(join ', ', @bad);
    diag('statuses while expiring: '
        . join ', ', map { "$_ x$seen{$_}" } sort keys %seen);
    # an expired key publishes no invalidation, but a worker drops its
    # cached route as soon as connecting to the route's socket fails, so
    # the next request asks Redis again: 404 right after the route expired,
    # not up to tunnel_cache_ttl (5 s) later.  1 s leaves room for one 502
    # per worker (2) that still held the route.
    my $t_gone = time;
    my $st2 = '';
    wait_until(1, sub { ($st2) = timed_get('victim'); $st2 eq '404' });
    is($st2, 404, sprintf 'tunneld KILL: 404 right after the route expired '
        . '(%.2f s)', time - $t_gone);

    ok(-e $sock, 'stale socket left by the killed tunneld') if $sock;
    $s->start_tunneld;
    ok(!-e $sock, 'restart: stale tunnel socket removed') if $sock;
    is(keyscan(), $key0, 'host key identical after kill and restart');

    $ssh = start_ssh($s, key => $alice->{key}, user => 'alice',
        remote => "victim:80:localhost:$be->{port}");
    ok(wait_route($s, 'victim', 10), 'after restart: tunnel up again')
        or diag($ssh->output);
    my ($st3, $dt3, $r3) = timed_get('victim');
    is($r3 && "$r3->{status} $r3->{body}", '200 hello from backend one',
        'after restart: serves again');
    $ssh->stop;
}

my $redis_err = qr/redis|\bEVAL\b|registry/i;
check_logs($s,
    allow_nginx => [
        qr/connect\(\) to unix:\S+ failed \((?:2: No such file or directory|111: Connection refused)\) while connecting to upstream/,
        qr/upstream prematurely closed connection/,
        qr/tunnel: socket "[^"]+" of tunnel "(?:ghost|victim)" no longer exists/,
        qr/recv\(\) failed \(104: Connection reset by peer\) while reading response header from upstream/,
        $redis_err,
    ],
    allow_tunneld => [$redis_err]);

$s->stop_all;
done_testing;
