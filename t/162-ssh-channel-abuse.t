#!/usr/bin/perl

# Abuse inside an authenticated SSH session (issue 14): thousands of
# channel opens, tcpip-forward requests one after the other and all at
# once, global requests of other names (answered, and never read),
# window-adjust floods, an oversize packet, channel data beyond the
# window.  Each is refused or closes the abuser's session (the limits:
# --max-channels, --max-requests, --max-pending-requests; the packet and
# window rules of libssh and tunneld), while another user's tunnel keeps
# answering HTTP through nginx: every one of its requests during each
# abuse must succeed; their latency p50/p99 is printed.
#
# The hostile client is t/tools/ssh_abuse.py (paramiko: it sends packets
# no well-behaved client API sends).

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib";

use IPC::Run qw(start);
use IO::Socket::INET;
use Socket qw(SOL_SOCKET SO_RCVBUF);
use Time::HiRes qw(time sleep);
use Test::More;

use NgxTunnel::Test;

watchdog(600);

my $py = '/usr/bin/python3';
plan skip_all => 'python3-paramiko is not installed (tools/install-deps)'
    unless system($py, '-c', 'import paramiko') == 0;

my $s = start_stack();
my $eve = new_user($s, 'eve');
my $bob = new_user($s, 'bob');
my $be = start_backend($s, 'bob');
my $port = $s->env->{SSH_PORT};

my $bssh = start_ssh($s, key => $bob->{key}, user => 'bob',
    remote => "bobapp:80:localhost:$be->{port}");
ok(wait_route($s, 'bobapp', 20), "bob's tunnel is up");
sleep 2.5;    # eve's key reaches tunneld's table (start_ssh waits the same)

{
    my @lat;
    for my $n (1 .. 100) {
        my $t0 = time;
        http_get($s, 'bobapp', "/?n=$n", timeout => 10);
        push @lat, (time - $t0) * 1000;
    }
    note(sprintf "baseline, no abuse: bob's requests: 100, latency p50 "
        . "%.1f ms, p99 %.1f ms", pct(50, @lat), pct(99, @lat));
}

sub rss_kb {
    my $kb = 0;
    for my $pid ($s->tunneld_pids) {
        open my $fh, '<', "/proc/$pid/status" or next;
        while (<$fh>) { $kb += $1 if /^VmRSS:\s+(\d+)/ }
    }
    return $kb;
}

sub pct {
    my ($p, @v) = @_;
    return 0 unless @v;
    @v = sort { $a <=> $b } @v;
    return $v[int($p / 100 * $#v + 0.5)];
}

# runs the abuse tool (bounded) while bob's tunnel is asked for pages;
# returns (hash of the tool's key=value output, its full output)
sub abuse {
    my ($what, @args) = @_;
    my ($out, $err) = ('', '');
    my $h = start([$py, "$Bin/tools/ssh_abuse.py", '127.0.0.1', $port,
                   'eve', $eve->{key}, @args],
                  '<', \undef, '>', \$out, '2>', \$err,
                  IPC::Run::timeout(120));
    my (@lat, $bad);
    my $rss0 = rss_kb();
    my $deadline = time + 110;
    my $n = 0;
    while ($h->pumpable && time < $deadline && $n < 5000) {
        my $t0 = time;
        my $r = eval { http_get($s, 'bobapp', "/?n=$n", timeout => 10) };
        push @lat, (time - $t0) * 1000;
        $bad++ unless $r && $r->{status} == 200
            && $r->{body} eq 'hello from backend bob';
        $n++;
        eval { $h->pump_nb };
    }
    my $rss_max = rss_kb();
    eval { $h->finish } or eval { $h->kill_kill };
    my %kv;
    for my $line (split /\n/, $out) {
        $kv{$1} = $2 while $line =~ /(\w+)=(\S*)/g;
    }
    diag("$what: tool: $out$err") if $err =~ /Traceback/;
    note("$what: tool: $_") for grep { /^end=|disconnect_message/ }
        split /\n/, $out;
    ok($n > 0 && !$bad, "$what: bob's tunnel answered all $n requests "
        . "during the abuse");
    note(sprintf "%s: bob's requests: %d, latency p50 %.1f ms, p99 %.1f ms,"
        . " max %.1f ms; tunneld RSS %d -> %d kB", $what, $n,
        pct(50, @lat), pct(99, @lat), pct(100, @lat), $rss0, $rss_max);
    $kv{rss_growth_kb} = $rss_max - $rss0;
    return (\%kv, $out);
}

sub tunneld_log_has {
    my ($re) = @_;
    return wait_until(5, sub {
        grep { /$re/ } log_lines($s->log_path('tunneld'))
    });
}

{
    my ($r, $out) = abuse('channel opens', 'channels', 5000);
    is($r->{disconnected}, 1, 'channel opens: the session is closed');
    ok($r->{done} >= 16 && $r->{done} <= 18,
        "channel opens: closed at the 17th open ($r->{done} tried)");
    is($r->{refused}, $r->{done} - 1, 'channel opens: all but the first '
        . '(the session channel) refused');
    ok(tunneld_log_has(qr/more than 16 channel opens in one session/),
        'channel opens: logged');
}

{
    my ($r) = abuse('tcpip-forward x 20', 'forwards', 20);
    is($r->{refused}, 12, 'tcpip-forward one by one: 8 granted '
        . '(--max-forwards), the next 12 refused');
    is($r->{disconnected}, 0, 'tcpip-forward one by one: refusals alone '
        . 'do not close the session');
    ok(wait_no_route($s, 'abuse0', 10),
        "tcpip-forward one by one: the session's routes are released");
}

{
    my ($r, $out) = abuse('tcpip-forward + cancel x 2000',
        'forward-cancel', 2000);
    is($r->{disconnected}, 1, 'forward/cancel cycles: the session is '
        . 'closed');
    ok($r->{done} >= 300 && $r->{done} <= 340,
        "forward/cancel cycles: closed after about 300 requests "
        . "($r->{done} sent)");
    like($out, qr/more_than_300_requests_a_minute/,
        'forward/cancel cycles: the DISCONNECT message says which limit');
    ok(tunneld_log_has(qr/more than 300 requests a minute/),
        'forward/cancel cycles: logged');
    ok(wait_no_route($s, 'cycle0', 10)
       && !grep({ route_of($s, "cycle$_") } 0 .. $r->{done} / 2),
        'forward/cancel cycles: no route left');
}

{
    my ($r, $out) = abuse('tcpip-forward pipelined', 'forwards-pipelined',
        5000);
    is($r->{disconnected}, 1, 'tcpip-forward pipelined: the session is '
        . 'closed');
    ok(tunneld_log_has(qr/more than 64 forward requests waiting/),
        'tcpip-forward pipelined: closed by --max-pending-requests (64)');
    ok(wait_no_route($s, 'pipe0', 10),
        'tcpip-forward pipelined: no route left');
}

{
    my ($r) = abuse('other global requests', 'globals', 3000);
    is($r->{refused}, 3000, 'other global requests: all 3000 refused');
    is($r->{disconnected}, 0, 'other global requests: answered (libssh '
        . 'does), the session stays');
}

{
    my ($r) = abuse('global requests never read', 'globals-noread', 8);
    note("global requests never read: $r->{sent} sent ($r->{sent_bytes} "
        . "bytes) in 8 s; tunneld RSS grew $r->{rss_growth_kb} kB");
    ok($r->{sent_bytes} < 64 * 1024 * 1024,
        'global requests never read: tunneld stops reading (sent '
        . "$r->{sent_bytes} bytes, under 64 MiB)");
    SKIP: {
        skip "RSS bound: ASan holds freed memory in its quarantine (SANITIZE=1: LeakSanitizer checks leaks instead)" , 1 if $ENV{NGX_TUNNEL_SANITIZE};
        ok($r->{rss_growth_kb} < 32 * 1024,
            "global requests never read: tunneld's memory grew "
            . "$r->{rss_growth_kb} kB (< 32 MiB)");
    }
    is($r->{answers_after}, 'yes',
        'global requests never read: the session answers once read again');
}

{
    my ($r) = abuse('window-adjust flood', 'window-adjust', 5);
    note("window-adjust flood: $r->{done} adjusts in 5 s");
    ok($r->{done} > 1000, "window-adjust flood: $r->{done} sent");
    is($r->{answers_after}, 'yes', 'window-adjust flood: overflowing '
        . 'increments only touch that channel (libssh 0.10.6 wraps the '
        . 'window); the session still answers');
}

{
    my ($r) = abuse('packet of 200,000 bytes', 'oversize', 200000);
    is($r->{answers_after}, 'yes', 'a 200,000-byte packet is accepted');
    ($r) = abuse('packet of 300,000 bytes', 'oversize', 300000);
    is($r->{answers_after}, 'no', 'a 300,000-byte packet (over libssh\'s '
        . '262,144) ends the session');
    is($r->{disconnected}, 1, 'a 300,000-byte packet: disconnected');
}

{
    # eve's tunnel "flood"; a browser that never reads its response
    my ($out, $err) = ('', '');
    my $h = start([$py, "$Bin/tools/ssh_abuse.py", '127.0.0.1', $port,
                   'eve', $eve->{key}, 'window-ignore', 'flood', 64],
                  '<', \undef, '>', \$out, '2>', \$err,
                  IPC::Run::timeout(120));
    ok(wait_until(20, sub { $h->pump_nb; $out =~ /forward-up/ }),
        'window ignored: the tunnel is up');
    wait_route($s, 'flood', 10);
    my $c = IO::Socket::INET->new(Proto => 'tcp');
    setsockopt($c, SOL_SOCKET, SO_RCVBUF, 4096);
    $c->connect(Socket::pack_sockaddr_in($s->env->{HTTP_PORT},
        Socket::inet_aton('127.0.0.1'))) or die "connect: $!";
    print $c "GET / HTTP/1.1\r\nHost: flood.localhost\r\n\r\n";
    my $rss0 = rss_kb();
    my $rss_max = $rss0;
    wait_until(60, sub {
        my $kb = rss_kb();
        $rss_max = $kb if $kb > $rss_max;
        eval { $h->pump_nb };
        return !$h->pumpable;
    });
    eval { $h->finish } or eval { $h->kill_kill };
    my ($sent) = $out =~ /sent_bytes=(\d+)/;
    note("window ignored: client sent " . ($sent // '?') . " bytes; "
        . "tunneld RSS $rss0 -> $rss_max kB");
    like($out, qr/disconnected=1/, 'window ignored: the session is closed');
    like($out, qr/channel_data_beyond_the_window/,
        'window ignored: the DISCONNECT message says why');
    SKIP: {
        skip "RSS bound: ASan holds freed memory in its quarantine (SANITIZE=1: LeakSanitizer checks leaks instead)", 1 if $ENV{NGX_TUNNEL_SANITIZE};
        ok($rss_max - $rss0 < 16 * 1024,
            'window ignored: tunneld held at most 16 MiB more (grew '
            . ($rss_max - $rss0) . ' kB)');
    }
    ok(tunneld_log_has(qr/channel data beyond the window/),
        'window ignored: logged');
    close $c;
}

ok($bssh->alive, "bob's ssh client is still connected after all of it");
is(status_body($s, 'bobapp'), '200 hello from backend bob',
    "bob's tunnel still answers");

$bssh->stop;
check_logs($s, allow_nginx => [qr/upstream (?:sent no valid|prematurely)/],
    allow_tunneld => [qr/closing the session|Packet len|read_packet|too high|closed|error|socket/i]);
$s->stop_all;

done_testing();
