#!/usr/bin/perl

# Fault matrix, row 1 (issue 14): Redis stopped for 10 s during a request
# loop, then started again.
#
#   - live tunnels keep serving from nginx's per-worker route cache while
#     the cached entry is valid (tunnel_cache_ttl, 5 s here; a keepalive
#     connection stays on the worker that cached the route), then answer
#     the 503 page;
#   - a name nobody asked for before fails fast with the 503 page: the max
#     latency of every request in the loop is measured and bounded;
#   - tunneld keeps every SSH session: the clients stay connected, no
#     close row reaches the audit log, the session ids stay the same;
#   - after the restart (an empty Redis: the stack's Redis persists
#     nothing) every route is back within 5 s, each pointing at a socket
#     that exists and accepts connections, and every URL serves again.
#
# t/050-failures.t checks the single-tunnel version of this (503 within
# the lookup timeout, a new tunnel refused while Redis is down).

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib";

use IO::Socket::UNIX;
use Socket qw(SOCK_STREAM);
use Test::More;
use Time::HiRes qw(time sleep);

use NgxTunnel::Test;

watchdog(240);

my $CACHE_TTL = 5;
my $DOWN = 10;

my $s = start_stack(lookup_timeout => '1s', cache_ttl => "${CACHE_TTL}s");
my $port = $s->env->{HTTP_PORT};

my $alice = new_user($s, 'alice');
my $bob = new_user($s, 'bob');
my $be = start_backend($s, 'one');

# rdsidle: no request at all, so no counter changes while Redis is down
my @a_names = ((map { "rds$_" } 1 .. 3), 'rdsidle');
my $ssh_a = start_ssh($s, key => $alice->{key}, user => 'alice',
    remote => [ map { "$_:80:localhost:$be->{port}" } @a_names ]);
# rdska: never requested before the cache warm-up below
my $ssh_b = start_ssh($s, key => $bob->{key}, user => 'bob',
    remote => [ map { "$_:80:localhost:$be->{port}" } qw(rdsbob rdska) ]);
my @names = (@a_names, 'rdsbob', 'rdska');
my @served = grep { !/^(?:rdska|rdsidle)$/ } @names;
my @busy = grep { $_ ne 'rdsidle' } @names;

my %route;
for my $n (@names) {
    $route{$n} = wait_route($s, $n, 10);
    ok($route{$n}, "$n up") or diag($ssh_a->output, $ssh_b->output);
}
is(status_body($s, $_), '200 hello from backend one', "$_ serves")
    for @served;

# the live fields (live.c: key fingerprint, counters) are published
my %fp = ((map { $_ => $alice->{fingerprint} } @a_names),
          rdsbob => $bob->{fingerprint}, rdska => $bob->{fingerprint});
my %req0 = map { $_ => 1 } @served;
my %live0;
ok(wait_until(5, sub {
    for my $n (@names) {
        my %h = route_of($s, $n);
        $live0{$n} = \%h if ($h{fingerprint} // '') eq $fp{$n}
                            && ($h{requests} // 0) >= ($req0{$n} // 0);
    }
    keys %live0 == @names;
}), 'live fields published: fingerprint, requests');

# the audit rows of the opens are written (PostgreSQL is up): wait for
# them so that the count below compares like with like
my $opens = 0;
wait_until(10, sub {
    $opens = sql_query($s,
        "SELECT count(*) FROM tunnel_events WHERE event = 'open'");
    $opens >= @names;
});
is($opens, scalar @names, 'open rows in the audit log');
my $closes0 = sql_query($s,
    "SELECT count(*) FROM tunnel_events WHERE event = 'close'");


# one request: (status or 'error: ...', seconds, response)
sub timed {
    my ($name, %o) = @_;
    my $t0 = time;
    my $r = eval { http_get($s, $name, '/', timeout => 10, %o) };
    return ($r ? $r->{status} : "error: $@", time - $t0, $r);
}


# --- cache warm-up on one keepalive connection --------------------------------
#
# A name whose route this worker has never looked up: the lookup just
# before the stop caches it, so the entry is valid until $t_cached + TTL.
# Everything before used fresh connections, but on a random worker: the
# other names may sit in this worker's cache already, older.

my $ka = http_connect($port);
my ($st, $dt, $r) = timed('rdska', conn => $ka);
is($st, 200, 'keepalive connection: 200 before the stop');
my $t_cached = time;

$s->stop_redis;
my $t_stop = time;
diag(sprintf 'Redis stopped %.2f s after the route was cached',
    $t_stop - $t_cached);


# --- the loop while Redis is down ----------------------------------------------

my (%seen, @slow, @bad_new, @bad_live, @ka_log);
my ($max, $max_new, $max_live, $n_req) = (0, 0, 0, 0);
my ($ka_valid_ok, $ka_valid_n, $ka_expired_503, $ka_expired_n) = (0) x 4;
my $i = 0;
while (time < $t_stop + $DOWN) {
    $i++;

    # a name never looked up: 503 page at once
    my ($st, $dt, $r) = timed("fresh$i");
    $n_req++;
    $max = $dt if $dt > $max;
    $max_new = $dt if $dt > $max_new;
    $seen{"new $st"}++;
    push @bad_new, "$st in " . sprintf('%.2f s', $dt)
        unless $st eq '503' && page_text($r->{body})
            =~ /Tunnel lookup unavailable.*retry in a moment/i;

    # a live name on a fresh connection (any worker): cached 200 or 503
    my $live = $busy[$i % @busy];
    ($st, $dt, $r) = timed($live);
    $n_req++;
    $max = $dt if $dt > $max;
    $max_live = $dt if $dt > $max_live;
    $seen{"live $st"}++;
    push @bad_live, "$live: $st"
        unless ($st eq '200' && $r->{body} eq 'hello from backend one')
            || $st eq '503';

    # the keepalive connection: its worker cached rdska at $t_cached
    my $t = time;
    ($st, $dt, $r) = timed('rdska', conn => $ka);
    $n_req++;
    $max = $dt if $dt > $max;
    push @ka_log, sprintf('%.1f:%s', $t - $t_cached, $st);
    if ($t + $dt < $t_cached + $CACHE_TTL - 0.5) {
        $ka_valid_n++;
        $ka_valid_ok++ if $st eq '200' && $r->{body} eq 'hello from backend one';
    } elsif ($t > $t_cached + $CACHE_TTL + 0.5) {
        $ka_expired_n++;
        $ka_expired_503++ if $st eq '503';
    }
    if ($st !~ /^\d+$/) {
        $ka = http_connect($port);    # should not happen: reported above
    }
    sleep 0.1;
}
my $down_for = time - $t_stop;

diag(sprintf 'Redis down %.1f s: %d requests, max latency %.3f s '
    . '(new names %.3f s, live names %.3f s)', $down_for, $n_req, $max,
    $max_new, $max_live);
diag('statuses: ' . join ', ', map { "$_ x$seen{$_}" } sort keys %seen);
# runs of one status: "0.0-4.9 s 200 x48"
my @runs;
for my $e (@ka_log) {
    my ($at, $code) = split /:/, $e, 2;
    if (@runs && $runs[-1][2] eq $code) {
        $runs[-1][1] = $at;
        $runs[-1][3]++;
    } else {
        push @runs, [$at, $at, $code, 1];
    }
}
diag('keepalive connection, seconds after caching: '
    . join ', ', map { "$_->[0]-$_->[1] s: $_->[2] x$_->[3]" } @runs);

ok($max < 2, sprintf 'Redis down: no request hangs (max %.3f s < 2 s)', $max);
is(scalar @bad_new, 0, 'Redis down: every new name answers the 503 page')
    or diag(join ', ', @bad_new[0 .. ($#bad_new > 9 ? 9 : $#bad_new)]);
is(scalar @bad_live, 0, 'Redis down: live names answer 200 or 503, '
    . 'nothing else') or diag(join ', ', @bad_live);
ok($ka_valid_n >= 3 && $ka_valid_ok == $ka_valid_n,
    "Redis down: the cached route keeps serving while valid "
    . "($ka_valid_ok of $ka_valid_n requests 200)");
ok($ka_expired_n >= 3 && $ka_expired_503 == $ka_expired_n,
    "Redis down: once the cache entry expired the name answers 503 "
    . "($ka_expired_503 of $ka_expired_n)");

my $alive = grep { $_->alive } $ssh_a, $ssh_b;
is($alive, 2, "Redis down $DOWN s: both ssh clients stay connected");


# --- Redis back -------------------------------------------------------------------

$s->start_redis;
my $t_start = time;
my %back;
my $all = wait_until(15, sub {
    for my $n (@names) {
        next if $back{$n};
        my %h = route_of($s, $n);
        $back{$n} = time - $t_start if %h;
    }
    return keys %back == @names;
});
my ($slowest) = sort { $b <=> $a } values %back;
$slowest //= 99;
ok($all && $slowest <= 5, sprintf 'Redis back: all %d routes back in '
    . '%.2f s (<= 5 s)', scalar @names, $slowest)
    or diag(tail_log($s, 'tunneld'));
diag('route back after: ' . join ', ',
    map { sprintf '%s %.2f s', $_, $back{$_} // -1 } @names);

# re-registration writes the route's own fields; the live ones (what the
# dashboard shows) follow at the next stats tick, not at the next change:
# rdsidle's counters do not change (checked before the socket probe
# below, which opens a stream on each)
my %full;
wait_until(5, sub {
    for my $n (@names) {
        my %h = route_of($s, $n);
        $full{$n} //= time - $t_start
            if ($h{fingerprint} // '') eq $fp{$n}
               && ($h{requests} // 0) >= $live0{$n}{requests};
    }
    keys %full == @names;
});
is(scalar keys %full, scalar @names, sprintf 'Redis back: every route has '
    . 'its key fingerprint and counters again (last after %.2f s)',
    (sort { $b <=> $a } values %full)[0] // -1);

# every route in Redis belongs to a live session and a live socket
my @keys = grep { length } split /\n/,
    $s->redis_cli('--scan', '--pattern', 'tunnel:route:*');
is(scalar @keys, scalar @names, 'Redis back: exactly the live routes: '
    . join ' ', sort @keys);
my @dead;
for my $k (@keys) {
    my ($n) = $k =~ /^tunnel:route:(.*)$/;
    my %h = route_of($s, $n);
    my $c = IO::Socket::UNIX->new(Type => SOCK_STREAM,
        Peer => $h{socket} // '');
    push @dead, "$n -> " . ($h{socket} // 'no socket') unless $c;
    close $c if $c;
    push @dead, "$n: session changed"
        if $route{$n} && ($h{session} // '') ne $route{$n}{session};
}
is(scalar @dead, 0, 'Redis back: no route points at a dead socket, and '
    . 'each keeps its session') or diag(join ', ', @dead);


my %ok;
my $t_serve = time;
wait_until(10, sub {
    for my $n (@names) {
        $ok{$n} //= time - $t_start
            if status_body($s, $n) eq '200 hello from backend one';
    }
    return keys %ok == @names;
});
is(scalar keys %ok, scalar @names, sprintf 'Redis back: every URL serves '
    . 'again (last after %.2f s)',
    (sort { $b <=> $a } values %ok)[0] // -1)
    or diag(tail_log($s, 'nginx'));
($st) = timed('neverseen');
is($st, 404, 'Redis back: an unknown name is a 404 again');

$alive = grep { $_->alive } $ssh_a, $ssh_b;
is($alive, 2, 'Redis back: both ssh clients still connected');
sleep 1;    # a close row would be written within the audit batch delay
is(sql_query($s, "SELECT count(*) FROM tunnel_events WHERE event = 'close'"),
    $closes0, 'no tunnel was closed: no close row in the audit log');
is(sql_query($s, "SELECT count(*) FROM tunnel_events WHERE event = 'open'"),
    $opens, 'and no tunnel was reopened');

$ssh_a->stop;
$ssh_b->stop;

my $redis_err = qr/redis|\bEVAL\b|registry|lookup of "[^"]+" (?:failed|timed out)/i;
check_logs($s, allow_nginx => [$redis_err], allow_tunneld => [$redis_err]);

$s->stop_all;
done_testing;
