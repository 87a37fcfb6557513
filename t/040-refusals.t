#!/usr/bin/perl

# What tunneld refuses: unknown keys (with the fingerprint and how to
# register it), local forwarding (-L, -W: direct-tcpip), commands (exec),
# subsystems (sftp); and what it takes away: a removed key or a disabled
# user closes the live session and its tunnel.

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib";

use IO::Socket::INET;
use Test::More;
use Time::HiRes qw(time sleep);

use NgxTunnel::Test;

watchdog(240);

# admin => 1: the web UI is served, and tunneld knows its keys page;
# --no-activation: an unknown key gets the refusal, not a code (the device
# flow is t/120-activation-ssh.t)
my $s = start_stack(admin => 1, tunneld_args => ['--no-activation']);
my $port = $s->env->{HTTP_PORT};

my $alice = new_user($s, 'alice');
my $be = start_backend($s, 'one');


# --- unknown key --------------------------------------------------------------

{
    my $k = new_key($s, 'stranger');
    my ($rc, $out, $err) = run_ssh($s, key => $k->{key}, user => 'stranger',
        remote => "stranger:80:localhost:$be->{port}", timeout => 15);
    is($rc, 255, 'unknown key: ssh fails (255)');
    like($err, qr/Permission denied \(publickey\)/,
        'unknown key: permission denied, publickey only')
        or diag("out: $out\nerr: $err");
    like($err, qr/\Q$k->{fingerprint}\E/,
        'unknown key: the banner shows the fingerprint as ssh-keygen -lf')
        or diag("fingerprint $k->{fingerprint}\nerr: $err");
    like($err, qr/tunnelctl key add/,
        'unknown key: the banner says how to register the key');
    # the exact keys page of this installation (tunneld --admin-url, which
    # the dev stack passes), not just "the web interface"
    like($err, qr{^To use it, add its public key \(the \.pub file\) on your keys page:\r?\n    \Qhttp://localhost:$port/keys\E\r?$}m,
        'unknown key: the banner gives the URL of the keys page')
        or diag("err: $err");
    is($s->redis_cli('KEYS', 'tunnel:route:*'), '',
        'unknown key: nothing registered');

    # the same key works once registered (reload within 2 s)
    my ($rc2, $o2, $e2) = $s->tunnelctl('user', 'add', 'stranger');
    ($rc2, $o2, $e2) = $s->tunnelctl('key', 'add', 'stranger', $k->{pub});
    is($rc2, 0, 'tunnelctl key add') or diag("$o2$e2");
    # tunneld reloads keys within 2 s of the change (NOTIFY tunnel_keys):
    # start_ssh waits that long before using the key
    $NgxTunnel::Test::KEY_READY{$k->{key}} = time + 2.2;
    my $t0 = time;
    my $ssh = start_ssh($s, key => $k->{key}, user => 'stranger',
        remote => "stranger:80:localhost:$be->{port}");
    my $route = wait_route($s, 'stranger', 10);
    ok($route, 'newly registered key: tunnel opens')
        or diag($ssh->output);
    diag(sprintf 'ssh to route: %.2f s', time - $t0) if $route;
    $ssh->stop;
}


# --- local forwarding (direct-tcpip) ------------------------------------------------

{
    # -L: the local listener is ssh's own; the channel open must fail
    my $lport = NgxTunnel::Stack::free_port();
    my $ssh = start_ssh($s, key => $alice->{key}, user => 'alice',
        extra => ['-L', "127.0.0.1:$lport:127.0.0.1:$be->{port}"]);
    my $c;
    wait_until(10, sub {
        $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
            PeerPort => $lport, Timeout => 2);
    });
    ok($c, '-L: ssh listens locally') or diag($ssh->output);
    SKIP: {
        skip 'no local listener', 2 unless $c;
        print $c "GET / HTTP/1.0\r\nHost: x\r\n\r\n";
        my $got = '';
        my $sel = IO::Select->new($c);
        my $deadline = time + 10;
        while (time < $deadline) {
            next unless $sel->can_read(0.5);
            my $n = sysread $c, $got, 4096, length $got;
            last unless $n;
        }
        unlike($got, qr/hello from backend/, '-L: nothing reaches the backend');
        ok($ssh->wait_for(qr/open failed/, 5),
            '-L: ssh reports the channel open refused')
            or diag($ssh->output);
    }
    $ssh->stop;

    my ($rc, $out, $err) = run_ssh($s, key => $alice->{key}, user => 'alice',
        no_mode => 1, extra => ['-W', "127.0.0.1:$be->{port}"],
        timeout => 15);
    ok($rc != 0 && $rc != -1, "-W: ssh fails by itself (exit $rc)");
    unlike($out, qr/HTTP|hello/, '-W: nothing from the backend');
    like($err, qr/open failed|forwarding failed|prohibited/i,
        '-W: refusal reported') or diag("err: $err");
}


# --- exec and subsystems ----------------------------------------------------------

{
    my ($rc, $out, $err) = run_ssh($s, key => $alice->{key}, user => 'alice',
        no_mode => 1, command => ['echo', 'hi-from-exec'], timeout => 15);
    ok($rc != 0 && $rc != -1, "exec: refused, ssh exits non-zero ($rc)");
    unlike("$out$err", qr/^hi-from-exec/m, 'exec: the command did not run');

    ($rc, $out, $err) = run_ssh($s, key => $alice->{key}, user => 'alice',
        no_mode => 1, extra => ['-s'], command => ['sftp'], timeout => 15);
    ok($rc != 0 && $rc != -1, "sftp subsystem: refused ($rc)");
}


# --- a removed key and a disabled user lose their live session ---------------------------

{
    my $k2 = new_user($s, 'alice', exists => 1);
    my $ssh = start_ssh($s, key => $k2->{key}, user => 'alice',
        remote => "doomed:80:localhost:$be->{port}");
    ok(wait_route($s, 'doomed', 10), 'second key of alice: tunnel up')
        or diag($ssh->output);
    my ($rc, $o, $e) = $s->tunnelctl('key', 'remove', $k2->{fingerprint});
    is($rc, 0, 'tunnelctl key remove') or diag("$o$e");
    my $t0 = time;
    my $rc_ssh = $ssh->finish(6);
    ok($rc_ssh != -1, sprintf 'removed key: session closed (%.2f s)', time - $t0);
    ok(wait_no_route($s, 'doomed', 3), 'removed key: route released');

    my $bob = new_user($s, 'bob');
    $ssh = start_ssh($s, key => $bob->{key}, user => 'bob',
        remote => "bobs:80:localhost:$be->{port}");
    ok(wait_route($s, 'bobs', 10), 'bob: tunnel up') or diag($ssh->output);
    ($rc, $o, $e) = $s->tunnelctl('user', 'disable', 'bob');
    is($rc, 0, 'tunnelctl user disable bob') or diag("$o$e");
    $t0 = time;
    $rc_ssh = $ssh->finish(6);
    ok($rc_ssh != -1, sprintf 'disabled user: session closed (%.2f s)', time - $t0);
    ok(wait_no_route($s, 'bobs', 3), 'disabled user: route released');

    my ($rc3, $out3, $err3) = run_ssh($s, key => $bob->{key}, user => 'bob',
        remote => "bobs:80:localhost:$be->{port}", timeout => 15);
    is($rc3, 255, 'disabled user: cannot log in again');
}

# alice's first key is untouched by all of that
my $ssh = start_ssh($s, key => $alice->{key}, user => 'alice',
    remote => "still:80:localhost:$be->{port}");
ok(wait_route($s, 'still', 10), "alice's first key still works");
my $r = http_get($s, 'still', '/');
is("$r->{status} $r->{body}", '200 hello from backend one', 'and serves');
$ssh->stop;

check_logs($s);

$s->stop_all;
done_testing;
