#!/usr/bin/perl

# Slowloris (SECURITY.md): hundreds of connections that send a request
# header one byte every few seconds, held open (reconnected when dropped)
# for the whole phase, against
#   * nginx's public port (the stack's nginx with the slow-client timeouts
#     nginx.conf.example recommends, read from that file): a normal client
#     keeps being served through a tunnel, and nginx drops each slow
#     connection at the timeout;
#   * tunneld's management API on its Unix socket and on `--api HOST:PORT`:
#     more slow connections than the API's cap (256 per worker), so without
#     the "a newcomer replaces the oldest unfinished request" rule of
#     sshd/api.c every normal request would get 503 busy.
# A normal client sends one request every 0.1 s meanwhile: all must
# succeed; the test prints p50/p99 latency, the drop counts and when the
# slow connections were dropped.

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib", "$Bin/../tools/lib";

use IO::Select;
use IO::Socket::INET;
use IO::Socket::UNIX;
use Socket qw(SOCK_STREAM);
use Test::More;
use Time::HiRes qw(time sleep);

use NgxTunnel::Stack;
use NgxTunnel::Test;

watchdog(420);

# the timeouts nginx.conf.example recommends, as it writes them
my $example = read_file(repo_root() . '/nginx.conf.example');
my @timeouts = $example =~ /^[ ]{4}((?:client_header_timeout|client_body_timeout
    |send_timeout|keepalive_timeout|reset_timedout_connection)\s[^;]+;)$/xmg;
is(scalar @timeouts, 5, 'nginx.conf.example sets the five slow-client '
   . 'directives') or diag(join "\n", @timeouts);
my ($header_timeout) = $example =~ /^    client_header_timeout (\d+)s;$/m;
is($header_timeout, 10, 'nginx.conf.example: client_header_timeout 10s');

my $api_port = NgxTunnel::Stack::free_port();
my $s = start_stack(
    tunneld_args     => ['--api', "127.0.0.1:$api_port"],
    nginx_http_extra => join '', map { "    $_\n" } @timeouts);
my $port = $s->env->{HTTP_PORT};
my $api_sock = $s->socket_dir . '/api.sock';

my $alice = new_user($s, 'alice');
my $be = start_backend($s, 'one');
my $ssh = start_ssh($s, key => $alice->{key}, user => 'alice',
    remote => "steady:80:localhost:$be->{port}");
ok(wait_route($s, 'steady', 15), 'tunnel up') or diag($ssh->output);


# one whole request on a fresh connection, bounded; returns (ok, seconds,
# what came back)
sub one_request {
    my ($connect, $req, $want) = @_;
    my $t0 = time;
    my $c = $connect->() or return (0, time - $t0, "connect: $!");
    $c->blocking(0);
    my $deadline = $t0 + 10;
    my $sel = IO::Select->new($c);
    my $off = 0;
    while ($off < length $req && time < $deadline) {
        next unless $sel->can_write(0.2);
        my $n = syswrite $c, $req, length($req) - $off, $off;
        last unless defined $n;
        $off += $n;
    }
    my $got = '';
    while (time < $deadline) {
        next unless $sel->can_read(0.2);
        my $n = sysread $c, $got, 65536, length $got;
        last unless $n;
    }
    close $c;
    return (($got =~ $want ? 1 : 0), time - $t0, $got);
}


sub pct {
    my ($p, @v) = @_;
    @v = sort { $a <=> $b } @v;
    return 0 unless @v;
    my $i = int($p / 100 * $#v + 0.5);
    return $v[$i];
}


# Holds $n slow connections for $secs while the normal client runs.
# Returns { ok, failed, p50, p99, dropped, drop_after (sorted), first }.
sub slowloris {
    my (%o) = @_;
    my ($n, $secs, $every) = ($o{n}, $o{secs}, $o{every} // 3);
    my (%slow, @lat, @drop_after, $failed_msg);
    my ($ok, $failed, $dropped, $refused, $reopen) = (0, 0, 0, 0, 0);

    my $open = sub {
        my $c = $o{connect}->() or do { $refused++; return };
        $c->blocking(0);
        # the request line and the start of a header: never finished
        syswrite $c, "GET /tunnels HTTP/1.1\r\nHost: slow\r\nX-Slow: ";
        $slow{fileno $c} = { c => $c, opened => time,
                             next => time + rand $every };
    };

    my $t_open = time;
    $open->() for 1 .. $n;
    my $held = keys %slow;
    diag(sprintf "$o{what}: %d slow connections opened in %.2f s "
         . "(%d refused)", $held, time - $t_open, $refused);

    my $end = time + $secs;
    my $next_normal = time;
    while (time < $end) {
        # the slow ones: a byte when due; a close (or an answer: 408, 503)
        # is a drop, and the attacker opens another at once
        my $sel = IO::Select->new(map { $_->{c} } values %slow);
        for my $c ($sel->can_read(0)) {
            my $e = delete $slow{fileno $c} or next;
            my $buf = '';
            sysread $c, $buf, 4096;
            close $c;
            $dropped++;
            $reopen++;
            push @drop_after, time - $e->{opened};
        }
        # bounded: at most 20 new ones a turn (about 1,000 a second)
        for (1 .. ($reopen < 20 ? $reopen : 20)) {
            $open->();
            $reopen--;
        }
        for my $e (values %slow) {
            next if time < $e->{next};
            syswrite $e->{c}, 'x';
            $e->{next} = time + $every;
        }

        if (time >= $next_normal) {
            my ($good, $dt, $got) = one_request($o{connect}, $o{request},
                                                $o{want});
            push @lat, $dt;
            if ($good) {
                $ok++;
            } else {
                $failed++;
                $failed_msg //= substr($got, 0, 200);
            }
            $next_normal = time + 0.1;
        }
        sleep 0.02;
    }

    my $left = keys %slow;
    close $_->{c} for values %slow;
    diag("$o{what}: first failed answer: $failed_msg") if defined $failed_msg;
    @drop_after = sort { $a <=> $b } @drop_after;
    diag(sprintf "$o{what}: normal client %d ok, %d failed; latency "
         . "p50 %.1f ms, p99 %.1f ms, max %.1f ms",
         $ok, $failed, 1000 * pct(50, @lat), 1000 * pct(99, @lat),
         1000 * pct(100, @lat));
    diag(sprintf "$o{what}: %d slow connections dropped by the server "
         . "(%s), %d still held at the end",
         $dropped, @drop_after
             ? sprintf('after %.1f s median, %.1f s min', pct(50, @drop_after),
                       $drop_after[0])
             : 'none', $left);
    return { ok => $ok, failed => $failed, p50 => pct(50, @lat),
             p99 => pct(99, @lat), dropped => $dropped,
             drop_after => \@drop_after, refused => $refused };
}


# --- nginx's public port ------------------------------------------------------

{
    my $r = slowloris(
        what    => 'nginx',
        n       => 500,
        secs    => 20,
        connect => sub {
            IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => 3);
        },
        request => "GET / HTTP/1.1\r\nHost: steady.localhost:$port\r\n"
                 . "Connection: close\r\n\r\n",
        want    => qr{\AHTTP/1\.1 200 .*hello from backend one}s);
    is($r->{failed}, 0, 'nginx: every normal request succeeded');
    cmp_ok($r->{ok}, '>=', 20, 'nginx: the normal client kept going');
    cmp_ok($r->{p99}, '<', 3, 'nginx: p99 under 3 s');
    cmp_ok($r->{dropped}, '>=', 400,
        'nginx: the slow connections were dropped (client_header_timeout)');
    cmp_ok($r->{drop_after}[0] // 0, '>=', $header_timeout - 1,
        "nginx: none before the ${header_timeout} s client_header_timeout");
    cmp_ok($r->{drop_after}[-1] // 99, '<', $header_timeout + 5,
        'nginx: none held much past it');
}


# --- tunneld's management API: Unix socket, then TCP --------------------------

for my $case (
    [ 'API (unix socket)', sub {
          IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $api_sock) } ],
    [ 'API (--api TCP)', sub {
          IO::Socket::INET->new(PeerAddr => '127.0.0.1',
              PeerPort => $api_port, Proto => 'tcp', Timeout => 3) } ])
{
    my ($what, $connect) = @$case;
    # more than the cap of every worker together
    my $n = 256 * $s->{workers} + 100;
    my $r = slowloris(
        what    => $what,
        n       => $n,
        secs    => 15,
        connect => $connect,
        request => "GET /healthz HTTP/1.1\r\nHost: tunneld\r\n\r\n",
        want    => qr{\AHTTP/1\.1 200 });
    is($r->{failed}, 0, "$what: every normal request succeeded "
       . "($n slow connections)");
    cmp_ok($r->{ok}, '>=', 20, "$what: the normal client kept going");
    cmp_ok($r->{p99}, '<', 3, "$what: p99 under 3 s");
    cmp_ok($r->{dropped}, '>', 0, "$what: slow connections were dropped");
    cmp_ok($r->{drop_after}[-1] // 99, '<', 12,
        "$what: none held past the 10 s read deadline");
}

like(read_file($s->log_path('tunneld')),
     qr/API: \d+ connections \(the cap\): closing the oldest one/,
     'tunneld logged that it made room');

# --- DNS rebinding: the TCP listener without a token -------------------------

# Found by the attacker pass: a page of another site, in a browser on this
# machine, reaches a loopback listener once its name resolves to
# 127.0.0.1, and reads /tunnels (users, client addresses, key
# fingerprints) as same-origin.  The browser sends that name as Host: a
# listener without a token takes only IP addresses and dot-less names.

{
    my $tcp = sub { IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $api_port, Proto => 'tcp', Timeout => 3) };
    for my $host ("rebind.attacker.example:$api_port", 'evil.example',
                  'localhost.attacker.example')
    {
        my (undef, undef, $got) = one_request($tcp,
            "GET /tunnels HTTP/1.1\r\nHost: $host\r\n\r\n", qr/x/);
        like($got, qr{\AHTTP/1\.1 421 Misdirected Request\r\n},
            "API (--api TCP, no token): Host $host: 421");
        unlike($got, qr/"tunnels"/, '... no tunnel list in the answer');
    }
    for my $host ("127.0.0.1:$api_port", 'localhost', "[::1]:$api_port",
                  'tunneld')
    {
        my ($ok) = one_request($tcp,
            "GET /tunnels HTTP/1.1\r\nHost: $host\r\n\r\n",
            qr{\AHTTP/1\.1 200 .*"tunnels"}s);
        ok($ok, "API (--api TCP, no token): Host $host: 200 with the list");
    }
    my (undef, undef, $got) = one_request($tcp,
        "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", qr/x/);
    like($got, qr{\AHTTP/1\.1 400 }, 'API: Host sent twice: 400');
}

# the tunnel served through all of it
is(status_body($s, 'steady'), '200 hello from backend one',
   'the tunnel still serves');
ok($ssh->alive, 'its ssh client is still connected');
$ssh->stop;

check_logs($s);
$s->stop_all;
done_testing;
