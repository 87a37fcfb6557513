#!/usr/bin/perl

# Bytes through the tunnel: a 100 MB download and 20 MB uploads byte-exact,
# WebSocket echo, server-sent events arriving as they are sent, 50
# concurrent requests on one tunnel, and nginx's upstream keepalive reusing
# one SSH channel (proved with the backend's connection serial numbers).

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib";

use Digest::SHA;
use IO::Select;
use Test::More;
use Time::HiRes qw(time sleep);

use NgxTunnel::Test;

watchdog(300);

my $s = start_stack();
my $port = $s->env->{HTTP_PORT};

my $alice = new_user($s, 'alice');
my $be = start_backend($s, 'stream');

my $ssh = start_ssh($s, key => $alice->{key}, user => 'alice',
    remote => "stream:80:localhost:$be->{port}");
ok(wait_route($s, 'stream', 10), 'tunnel up')
    or diag($ssh->output, tail_log($s, 'tunneld'));


# --- 100 MB download ---------------------------------------------------------------

{
    my $n = 100 * 1024 * 1024;
    my $d = Digest::SHA->new(256);
    my $got = 0;
    my $t0 = time;
    my $r = eval {
        http_get($s, 'stream', "/bytes/$n", timeout => 120,
            on_body => sub { $d->add($_[0]); $got += length $_[0] });
    };
    my $dt = time - $t0;
    is($r && $r->{status}, 200, '100 MB download: 200') or diag($@);
    is($r && $r->{headers}{'content-length'}, $n,
        '100 MB download: Content-Length');
    is($got, $n, '100 MB download: byte count');
    is($d->hexdigest, pattern_sha256($n), '100 MB download: sha256');
    diag(sprintf '100 MB download: %.2f s, %.1f MB/s', $dt, 100 / $dt);
}


# --- 20 MB uploads ------------------------------------------------------------------

for my $mode ('content-length', 'chunked') {
    my $n = 20 * 1024 * 1024;
    my $t0 = time;
    my $r = eval {
        http_get($s, 'stream', '/sha256', method => 'POST', timeout => 120,
            body_gen => pattern_gen($n),
            ($mode eq 'chunked' ? (chunked => 1) : (length => $n)));
    };
    my $dt = time - $t0;
    is($r && $r->{status}, 200, "20 MB upload ($mode): 200") or diag($@);
    is($r && $r->{headers}{'x-body-length'}, $n,
        "20 MB upload ($mode): backend got every byte");
    is($r && $r->{body}, pattern_sha256($n), "20 MB upload ($mode): sha256");
    diag(sprintf "20 MB upload ($mode): %.2f s", $dt);
}


# --- WebSocket echo -----------------------------------------------------------------

{
    my $r = eval { ws_handshake($s, 'stream', '/ws') };
    is($r && $r->{status}, 101, 'WebSocket: 101 Switching Protocols')
        or diag($@);
    ok($r && $r->{accept_ok}, 'WebSocket: Sec-WebSocket-Accept correct');
    is(lc($r && $r->{headers}{upgrade} // ''), 'websocket',
        'WebSocket: Upgrade header');
    SKIP: {
        skip 'no WebSocket connection', 8 unless $r && $r->{status} == 101;
        my $c = $r->{conn};

        ws_send($c, 0x1, 'hello through the tunnel');
        my @f = ws_recv($c, 5);
        is("@f", '1 1 hello through the tunnel', 'WebSocket: text echo');

        my $big = pattern_bytes(300_000);
        ws_send($c, 0x2, $big);
        @f = ws_recv($c, 10);
        is($f[1], 2, 'WebSocket: binary frame back');
        ok(defined $f[2] && $f[2] eq $big, 'WebSocket: 300 KB binary echo exact');

        ws_send($c, 0x1, 'frag-', fin => 0);
        ws_send($c, 0x0, 'mented');
        @f = ws_recv($c, 5);
        is("@f", '1 1 frag-mented', 'WebSocket: fragmented message echoed');

        ws_send($c, 0x9, 'are you there');
        @f = ws_recv($c, 5);
        is("@f", '1 10 are you there', 'WebSocket: ping answered by pong');

        # an idle pause longer than nothing-special, then still alive
        sleep 1.5;
        ws_send($c, 0x1, 'after a pause');
        @f = ws_recv($c, 5);
        is("@f", '1 1 after a pause', 'WebSocket: alive after a pause');

        ws_send($c, 0x8, pack('n', 1000));
        @f = ws_recv($c, 5);
        is($f[1] && "$f[1] " . unpack('n', $f[2]), '8 1000',
            'WebSocket: close answered');
        my @eof = eval { ws_recv($c, 5) };
        is(scalar @eof, 0, 'WebSocket: connection closed after close');
    }
}


# --- server-sent events ------------------------------------------------------------

{
    my @events;
    my $t0 = time;
    my $buf = '';
    my $r = eval {
        http_get($s, 'stream', '/sse', timeout => 15, on_body => sub {
            $buf .= $_[0];
            while ($buf =~ s/^(.*?)\n\n//s) {
                push @events, [time - $t0, $1];
            }
        });
    };
    my $total = time - $t0;
    is($r && $r->{status}, 200, 'SSE: 200') or diag($@);
    is($r && $r->{headers}{'content-type'}, 'text/event-stream',
        'SSE: content type');
    is(join('|', map { $_->[1] } @events),
       "id: 1\ndata: event 1|id: 2\ndata: event 2|id: 3\ndata: event 3",
       'SSE: three events');
    if (@events == 3) {
        ok($events[0][0] < 0.8,
            sprintf 'SSE: first event arrives at once (%.2f s)', $events[0][0]);
        ok($events[2][0] - $events[0][0] > 1.6,
            sprintf 'SSE: events spread over time (%.2f s .. %.2f s)',
                $events[0][0], $events[2][0]);
        ok($events[1][0] > 0.8 && $events[1][0] < 1.8,
            sprintf 'SSE: second event about 1 s in (%.2f s)', $events[1][0]);
    } else {
        fail('SSE: timings') for 1 .. 3;
    }
    ok($total < 5, sprintf 'SSE: response ends after the last event (%.2f s)',
        $total);
}


# --- keepalive: one SSH channel carries successive requests ---------------------------
#
# The backend numbers its TCP connections.  The ssh client opens one TCP
# connection to the backend per forwarded-tcpip channel, and tunneld opens
# one channel per connection nginx makes to the tunnel socket.  So if
# nginx's upstream keepalive reuses its connection to the tunnel socket,
# every request on it is answered on the same backend connection.  One
# client connection to nginx keeps us on one worker (2 workers, each has
# its own keepalive cache).

{
    my $c = undef;
    my @serials;
    for my $i (1 .. 6) {
        my $r = eval { http_get($s, 'stream', '/conn', ($c ? (conn => $c) : ())) };
        last unless $r;
        $c = $r->{conn};
        push @serials, $r->{status} == 200 ? $r->{body} : "status $r->{status}";
        sleep 0.1;
    }
    is(scalar @serials, 6, 'keepalive: six sequential requests answered');
    like($serials[0] // '', qr/^\d+$/, 'keepalive: serial number');
    is(join(',', @serials), join(',', ($serials[0] // 'x') x 6),
        'keepalive: all requests on one backend connection (one channel)');

    # control: two overlapping slow requests need two channels, so their
    # serials differ (equal serials above therefore mean one channel)
    my @c = map { http_connect($port) } 1 .. 2;
    for my $c (@c) {
        syswrite $c->{sock}, "GET /slow?ms=1000 HTTP/1.1\r\n"
            . "Host: stream.localhost:$port\r\n\r\n";
    }
    my @x = map {
        my $c = $_;
        my $r = eval { http_request(conn => $c, host => 'x', read_only => 1) };
        $r ? $r->{headers}{'x-conn'} // 'none' : "error $@";
    } @c;
    like("@x", qr/^\d+ \d+$/, 'keepalive control: both slow requests answered');
    isnt($x[0], $x[1], 'keepalive control: overlapping requests, two channels');
    close $_->{sock} for @c;
}


# --- 50 concurrent requests on one tunnel ------------------------------------------------

{
    my $n = 50;
    my (%conn, @order);
    my $sel = IO::Select->new;
    my $t0 = time;
    for my $i (1 .. $n) {
        my $size = 50_000 + $i * 7919;
        my $path = $i % 5 == 0 ? "/slow?ms=300" : "/bytes/$size";
        my $c = http_connect($port);
        my $req = "GET $path HTTP/1.1\r\nHost: stream.localhost:$port\r\n"
            . "Connection: close\r\n\r\n";
        my $w = syswrite $c->{sock}, $req;
        die "short write" unless $w == length $req;
        $conn{fileno $c->{sock}} = { c => $c, i => $i, size => $size,
            path => $path, data => '', done => 0 };
        $sel->add($c->{sock});
    }
    my $deadline = time + 60;
    while ($sel->count && time < $deadline) {
        for my $fh ($sel->can_read(1)) {
            my $st = $conn{fileno $fh};
            my $got = sysread $fh, $st->{data}, 262144, length $st->{data};
            next if !defined $got && ($!{EAGAIN} || $!{EINTR});
            if (!$got) {
                $st->{done} = 1;
                $sel->remove($fh);
                close $fh;
            }
        }
    }
    my $dt = time - $t0;
    my ($ok, @bad) = (0);
    for my $st (sort { $a->{i} <=> $b->{i} } values %conn) {
        my ($head, $body) = split /\r\n\r\n/, $st->{data}, 2;
        my $want = $st->{path} =~ /slow/ ? 'slept 300'
                                         : pattern_bytes($st->{size});
        if ($st->{done} && ($head // '') =~ m{^HTTP/1\.1 200 }
            && defined $body && $body eq $want)
        {
            $ok++;
        } else {
            push @bad, "#$st->{i} $st->{path}: done=$st->{done} "
                . substr($head // '', 0, 80) . ' body '
                . length($body // '') . ' bytes';
        }
    }
    is($ok, $n, "50 concurrent requests all correct (in ${\ sprintf '%.2f', $dt} s)")
        or diag(join "\n", @bad[0 .. ($#bad > 9 ? 9 : $#bad)]);
}


# the tunnel survived all of it
my $r = http_get($s, 'stream', '/');
is("$r->{status} $r->{body}", '200 hello from backend stream',
    'tunnel still serves after the streaming tests');
ok($ssh->alive, 'ssh client still connected');

$ssh->stop;
check_logs($s);

$s->stop_all;
done_testing;
