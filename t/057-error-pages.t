#!/usr/bin/perl

# Error pages with context (issue 8, point 8): the 404 hint shows this
# installation's ssh command (-p PORT and the real host), and the 502 page
# names the cause tunneld knows -- the ssh client refused the channel
# (nothing listens on its local port), the app closed without answering,
# the client did not answer the open in time -- passed by tunneld as
# X-Tunnel-Error, which never reaches the browser.  Normal requests and
# the app's own error statuses other than 502 are unaffected.

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib";

use IO::Socket::INET;
use POSIX ();
use Test::More;
use Time::HiRes qw(time sleep);

use NgxTunnel::Test;

watchdog(180);

my $s = start_stack();
my $port = $s->env->{HTTP_PORT};
my $ssh_port = $s->env->{SSH_PORT};

my $gina = new_user($s, 'gina');
my $be = start_backend($s, 'one');


# --- 404: the exact command for this installation -----------------------------

{
    my $r = http_get($s, 'nosuch', '/');
    is($r->{status}, 404, 'unknown name: 404');
    like(page_text($r->{body}),
        qr/\Qstart it again with ssh -R nosuch:80:localhost:PORT -p $ssh_port localhost (PORT: your app's port on your machine).\E/,
        '404: the hint has -p and the ssh host') or diag($r->{body});
}


# --- a normal tunnel: unaffected ---------------------------------------------

my $ok = start_ssh($s, key => $gina->{key}, user => 'gina',
    remote => "fine:80:localhost:$be->{port}");
ok(wait_route($s, 'fine', 10), 'fine: tunnel up') or diag($ok->output);
my $r = http_get($s, 'fine', '/');
is("$r->{status} $r->{body}", '200 hello from backend one', 'fine: 200');
$r = http_get($s, 'fine', '/nothing-here');
is($r->{status}, 404, "fine: the app's own 404 passes through");
unlike($r->{body}, qr/No tunnel/, "fine: ... with the app's body");
$ok->stop;


# --- refused: nothing listens on the client's local port ---------------------

{
    my $dead = NgxTunnel::Stack::free_port();
    my $ssh = start_ssh($s, key => $gina->{key}, user => 'gina',
        remote => "refusing:80:localhost:$dead");
    ok(wait_route($s, 'refusing', 10), 'refused: tunnel up')
        or diag($ssh->output);
    my $r = http_get($s, 'refusing', '/');
    is($r->{status}, 502, 'refused: 502');
    like(page_text($r->{body}),
        qr/^Tunnel offline Tunnel "refusing": nothing answers on the ssh client's machine The tunnel is up, but on the machine that runs ssh -R nothing listens at the local address it forwards to \(the localhost:PORT of ssh -R refusing:80:localhost:PORT \): the connection was refused\. Start your app there, or correct that address, then reload this page\.$/,
        'refused: the page says exactly what to do') or diag($r->{body});
    ok(!exists $r->{headers}{'x-tunnel-error'},
        'refused: X-Tunnel-Error does not reach the browser');
    $ssh->stop;
}


# --- closed: the app accepts, reads, closes without a byte -------------------

{
    my $lsn = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
        Listen => 8, ReuseAddr => 1) or die "listen: $!";
    my $lport = $lsn->sockport;
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        # the test's handlers (which stop the stack) are not the child's
        $SIG{$_} = 'DEFAULT' for qw(TERM INT ALRM);
        while (my $c = $lsn->accept) {
            my $buf;
            sysread $c, $buf, 65536;
            close $c;
        }
        POSIX::_exit(0);
    }
    close $lsn;
    push @NgxTunnel::Test::KIDS, [$pid, 'closing app'];

    my $ssh = start_ssh($s, key => $gina->{key}, user => 'gina',
        remote => "closing:80:localhost:$lport");
    ok(wait_route($s, 'closing', 10), 'closed: tunnel up')
        or diag($ssh->output);
    my $r = http_get($s, 'closing', '/');
    is($r->{status}, 502, 'closed: 502');
    like(page_text($r->{body}),
        qr/^Tunnel offline Tunnel "closing": the app closed the connection The tunnel is up and the app behind it accepted the connection, but closed \(or reset\) it without answering\./,
        'closed: the page says the app closed without answering')
        or diag($r->{body});
    ok(!exists $r->{headers}{'x-tunnel-error'},
        'closed: X-Tunnel-Error does not reach the browser');
    $ssh->stop;
    kill 'TERM', $pid;
    waitpid $pid, 0;
}


# --- timeout: the ssh client does not answer the channel open --------------

{
    my $ssh = start_ssh($s, key => $gina->{key}, user => 'gina',
        remote => "stalled:80:localhost:$be->{port}");
    ok(wait_route($s, 'stalled', 10), 'timeout: tunnel up')
        or diag($ssh->output);
    my $pid = $ssh->pid;
    kill 'STOP', $pid;
    my $t0 = time;
    my $r = http_get($s, 'stalled', '/', timeout => 20);
    my $dt = time - $t0;
    kill 'CONT', $pid;
    is($r->{status}, 502, sprintf 'timeout: 502 after %.1f s', $dt);
    ok($dt > 9 && $dt < 13, 'timeout: after the 10 s open limit');
    like(page_text($r->{body}),
        qr/^Tunnel offline Tunnel "stalled": no answer in time The tunnel is up, but the ssh client did not connect to the app in time/,
        'timeout: the page says so') or diag($r->{body});
    ok($ssh->alive, 'timeout: the session survives');
    $r = http_get($s, 'stalled', '/');
    is("$r->{status} $r->{body}", '200 hello from backend one',
        'timeout: once the client answers again, the tunnel serves');
    $ssh->stop;
}

check_logs($s, allow_tunneld => [qr/did not answer a channel open/]);

$s->stop_all;
done_testing;
